package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/recipe"
)

// Failover makes in.To the primary when in.From is (or may be) gone:
// pre-checks on the standby → approval (optional) → fence the old primary
// (read_only=ON if its database answers; stop its processes through its
// provider) → remove it from DNS → stop the stream, recording the last
// transaction applied (the RPO point) → promote the standby → point DNS at
// it and wait for every authoritative server → check the application.
// The old primary stays fenced: its database restarts read-only and DNS no
// longer names it; transactions it had that the standby lacks are listed
// as errant when it can be asked. Failback brings it back. There is no
// rollback: the old primary is presumed lost; a failed step is reported.
func Failover(ctx workflow.Context, in RunbookInput) (RunbookReport, error) {
	rb, r, err := newRunbook(ctx, RunbookFailover, &in)
	if err != nil {
		return RunbookReport{}, err
	}
	m := newMove(rb, r, in)
	if err := m.failoverPrechecks(); err != nil {
		return rb.finish(OutcomeAborted, err), nil
	}
	rb.rep.Plan = []string{
		fmt.Sprintf("fence %s: read_only=ON if it answers, stop its processes through its provider (%s)", m.from.Name, m.from.Provider),
		fmt.Sprintf("remove %s from %s", m.from.Address, r.DNS.Record),
		fmt.Sprintf("stop replication %s → %s and record the last transaction applied", m.from.Name, m.to.Name),
		fmt.Sprintf("promote %s: read_only=OFF", m.to.Name),
		fmt.Sprintf("point %s at %s and wait for every authoritative server", r.DNS.Record, m.to.Address),
		fmt.Sprintf("check %s's application through the new address (/healthz writable)", m.to.Name),
	}
	if in.DryRun {
		return rb.finish(OutcomeDryRun, nil), nil
	}
	if err := rb.approval(in); err != nil {
		return rb.finish(OutcomeAborted, err), nil
	}
	// Fencing may wait for a dead site's worker; taking the old primary out
	// of DNS and stopping the stream need nothing from it, so they run
	// meanwhile. Promotion waits for all three.
	fenced := m.fenceOld()
	if err := rb.step("dns remove", m.from.Name, func(ctx workflow.Context) (string, error) {
		var res dns.RemoveResult
		if err := workflow.ExecuteActivity(siteOptions(ctx, m.to.Name, "remove "+m.from.Address+" from "+r.DNS.Record, shortCall, pickUpTimeout, 5),
			dnsA.DNSRemove, dns.RemoveInput{DNS: r.DNS, Addr: m.from.Address}).Get(ctx, &res); err != nil {
			return "", err
		}
		return fmt.Sprintf("%v → %v (changed: %t)", res.Previous, res.Addrs, res.Changed), nil
	}); err != nil {
		return rb.finish(OutcomeFailed, err), nil
	}
	if err := m.stopStream(m.from.Name, m.to.Name); err != nil {
		return rb.finish(OutcomeFailed, err), nil
	}
	fenced.Wait(rb.ctx)
	m.recordApplied()
	if err := m.promote(); err != nil {
		return rb.finish(OutcomeFailed, err), nil
	}
	rb.undo = nil // no rollback to a lost primary
	if err := m.pointDNS(); err != nil {
		return rb.finish(OutcomeFailed, err), nil
	}
	if err := m.waitDNS(); err != nil {
		return rb.finish(OutcomeFailed, err), nil
	}
	if err := m.postCheck(); err != nil {
		return rb.finish(OutcomeFailed, err), nil
	}
	m.errant(true)
	return rb.finish(OutcomeCompleted, nil), nil
}

// failoverPrechecks: the standby's database answers; what it has applied
// is recorded. The stream's supervisor is not asked: it may be cached on
// the dead site's worker, and the checkpoint says the same.
func (m *move) failoverPrechecks() error {
	return m.rb.step("pre-checks", "", func(ctx workflow.Context) (string, error) {
		var dst dbadmin.StateResult
		if err := workflow.ExecuteActivity(siteOptions(ctx, m.to.Name, "state of "+m.to.Name, shortCall, pickUpTimeout, 3),
			dbA.DBState, dbadmin.StateInput{Site: m.to}).Get(ctx, &dst); err != nil {
			return "", err
		}
		stream := replicate.StreamName(m.r.App, m.from.Name, m.to.Name)
		applied := "nothing from " + m.from.Name
		for _, c := range dst.Checkpoints {
			if c.Stream == stream {
				applied = fmt.Sprintf("%s (source commit %s)", c.GTID, c.SourceTS.Format(time.RFC3339))
			}
		}
		return fmt.Sprintf("%s answers (read_only=%t, %s); applied %s", m.to.Name, dst.ReadOnly, dst.GTIDBinlogPos, applied), nil
	})
}

// fenceOld stops the old primary from taking writes by every means that
// still works, and records what did: read_only=ON when its database
// answers, and its processes stopped through its provider. Both run at
// once (each waits at most deadPickUpTimeout for a worker of a site that is
// probably gone), in the background: the caller waits on the returned group
// before promoting. Neither failing stops the failover — the old site is
// presumed dead, DNS no longer names it and its database restarts
// read-only — but the report says whether it was confirmed fenced.
func (m *move) fenceOld() workflow.WaitGroup {
	rb := m.rb
	wg := workflow.NewWaitGroup(rb.ctx)
	wg.Add(1)
	workflow.Go(rb.ctx, func(gctx workflow.Context) {
		defer wg.Done()
		var fence dbadmin.FenceResult
		err := rb.stepIn(gctx, "fence database", m.from.Name, func(ctx workflow.Context) (string, error) {
			if err := workflow.ExecuteActivity(siteOptions(ctx, m.from.Name, "fence "+m.from.Name, 30*time.Second, deadPickUpTimeout, 1),
				dbA.DBFence, dbadmin.FenceInput{Site: m.from}).Get(ctx, &fence); err != nil {
				return "database unreachable (expected when the site is down)", err
			}
			return fmt.Sprintf("read_only=ON at %s", fence.FinalGTID), nil
		})
		if err == nil {
			rb.rep.RPO.FinalGTID = fence.FinalGTID
		}
	})
	if m.from.Provider != recipe.ProviderLocal {
		rb.skip("fence by provider", m.from.Name, "the "+m.from.Provider+" provider cannot stop instances yet; relying on DNS removal")
	} else {
		wg.Add(1)
		workflow.Go(rb.ctx, func(gctx workflow.Context) {
			defer wg.Done()
			_ = rb.stepIn(gctx, "fence by provider", m.from.Name, func(ctx workflow.Context) (string, error) {
				var st local.SiteState
				// The local provider does not heartbeat: no heartbeat timeout.
				if err := workflow.ExecuteActivity(callOptions(ctx, m.from.Name, "stop "+m.from.Name+"'s processes", callTimes{startToClose: 2 * time.Minute}, deadPickUpTimeout, 2),
					localA.StopSite, local.SiteInput{Site: m.from}).Get(ctx, &st); err != nil {
					return "the site's worker did not answer: its processes may still run; DNS removal and read-only start keep it out", err
				}
				return "database and application stopped", nil
			})
		})
	}
	return wg
}

// recordApplied fills the RPO point from what the stream had applied.
func (m *move) recordApplied() {
	_ = m.rb.step("record rpo point", m.to.Name, func(ctx workflow.Context) (string, error) {
		var dst dbadmin.StateResult
		if err := workflow.ExecuteActivity(siteOptions(ctx, m.to.Name, "state of "+m.to.Name, shortCall, pickUpTimeout, 3),
			dbA.DBState, dbadmin.StateInput{Site: m.to}).Get(ctx, &dst); err != nil {
			return "", err
		}
		stream := replicate.StreamName(m.r.App, m.from.Name, m.to.Name)
		rpo := &m.rb.rep.RPO
		for _, c := range dst.Checkpoints {
			if c.Stream == stream {
				rpo.AppliedGTID = c.GTID
				if !c.SourceTS.IsZero() {
					rpo.LastSourceCommit = c.SourceTS
				}
			}
		}
		if rpo.FinalGTID != "" {
			if n, ok := positionBehind(rpo.AppliedGTID, rpo.FinalGTID); ok {
				rpo.LostTransactions, rpo.Exact = n, true
			}
		}
		if !rpo.LastSourceCommit.IsZero() && !rpo.Exact {
			rpo.LostSeconds = m.rb.rep.DetectedAt.Sub(rpo.LastSourceCommit).Seconds()
			if rpo.LostSeconds < 0 {
				rpo.LostSeconds = 0
			}
		}
		return fmt.Sprintf("applied %s (source commit %s); old primary final %s", orText(rpo.AppliedGTID, "nothing"),
			rpo.LastSourceCommit.Format(time.RFC3339Nano), orText(rpo.FinalGTID, "unknown")), nil
	})
}

// errant asks the old primary (if it answers) what it has that the new one
// lacks. optional: the old primary may well be down — a failover, whose
// RPO point the errant transactions are (they are lost). In a failback they
// are only listed: they were never the service's data.
func (m *move) errant(optional bool) (dbadmin.ErrantResult, error) {
	var res dbadmin.ErrantResult
	pick := pickUpTimeout
	attempts := int32(3)
	if optional {
		pick, attempts = deadPickUpTimeout, 1
	}
	err := m.rb.step("errant transactions", m.from.Name, func(ctx workflow.Context) (string, error) {
		err := workflow.ExecuteActivity(siteOptions(ctx, m.to.Name, "errant transactions of "+m.from.Name, shortCall, pick, attempts),
			dbA.DBErrant, dbadmin.ErrantInput{Old: m.from, New: m.to}).Get(ctx, &res)
		if err != nil {
			if optional {
				return "old primary did not answer: errant transactions are listed by failback", err
			}
			return "", err
		}
		m.rb.rep.Errant, m.rb.rep.ErrantCount = res.Errant, res.Count
		if optional && res.Count > 0 {
			rpo := &m.rb.rep.RPO
			rpo.LostTransactions, rpo.Exact = res.Count, res.CountExact
		}
		return fmt.Sprintf("%d errant (%s)", res.Count, orText(res.Errant, "none")), nil
	})
	return res, err
}

// Failback brings the old primary (in.To) back after a failover: pre-checks
// (the current primary in.From answers and is writable; the old site is
// started read-only) → errant check (by default a site with transactions
// the current primary never received is not brought back: the report lists
// them; it must be re-cloned) → approval (optional) → replicate current →
// old and wait until it has caught up → a switchover back, with RPO 0.
func Failback(ctx workflow.Context, in RunbookInput) (RunbookReport, error) {
	rb, r, err := newRunbook(ctx, RunbookFailback, &in)
	if err != nil {
		return RunbookReport{}, err
	}
	m := newMove(rb, r, in)
	// The old site: started (read-only) if it is local and down.
	if m.to.Provider == recipe.ProviderLocal {
		if err := rb.step("start old site", m.to.Name, func(ctx workflow.Context) (string, error) {
			var st local.SiteState
			if err := workflow.ExecuteActivity(callOptions(ctx, m.to.Name, "start "+m.to.Name+" (read-only)", callTimes{startToClose: 5 * time.Minute}, pickUpTimeout, 3),
				localA.StartSite, local.SiteInput{Site: m.to}).Get(ctx, &st); err != nil {
				return "", err
			}
			return "database (read_only=ON) and application running", nil
		}); err != nil {
			return rb.finish(OutcomeAborted, err), nil
		}
	}
	var dst dbadmin.StateResult
	if err := rb.step("pre-checks", "", func(ctx workflow.Context) (string, error) {
		var src dbadmin.StateResult
		if err := workflow.ExecuteActivity(siteOptions(ctx, m.from.Name, "state of "+m.from.Name, shortCall, pickUpTimeout, 3),
			dbA.DBState, dbadmin.StateInput{Site: m.from}).Get(ctx, &src); err != nil {
			return "", err
		}
		if src.ReadOnly {
			return "", fmt.Errorf("from: %s is read-only: it is not the primary", m.from.Name)
		}
		if err := workflow.ExecuteActivity(siteOptions(ctx, m.to.Name, "state of "+m.to.Name, shortCall, pickUpTimeout, 3),
			dbA.DBState, dbadmin.StateInput{Site: m.to}).Get(ctx, &dst); err != nil {
			return "", err
		}
		if !dst.ReadOnly {
			return "", fmt.Errorf("to: %s is writable: two writable sites must be resolved by hand first", m.to.Name)
		}
		return fmt.Sprintf("%s writable at %s; %s read-only at %s", m.from.Name, src.GTIDBinlogPos, m.to.Name, dst.GTIDBinlogPos), nil
	}); err != nil {
		return rb.finish(OutcomeAborted, err), nil
	}
	// Errant: what the returning site has that the current primary lacks.
	back := &move{rb: rb, r: r, in: in, from: m.to, to: m.from}
	res, err := back.errant(false)
	if err != nil {
		return rb.finish(OutcomeAborted, err), nil
	}
	reclone := res.Count > 0
	switch {
	case reclone && !in.Reclone:
		return rb.finish(OutcomeAborted, fmt.Errorf(
			"%s has %d transaction(s) %s never received (%s): it cannot follow %s; run failback with reclone (its data is set aside, not deleted) or discard them by hand",
			m.to.Name, res.Count, m.from.Name, res.Errant, m.from.Name)), nil
	case reclone && m.to.Provider != recipe.ProviderLocal:
		return rb.finish(OutcomeAborted, fmt.Errorf(
			"%s has %d transaction(s) %s never received (%s); re-cloning a %s site is not automatic: keep or snapshot its volume, destroy it, `drover clone --to %s`, then failback",
			m.to.Name, res.Count, m.from.Name, res.Errant, m.to.Provider, m.to.Name)), nil
	}
	rb.rep.Plan = append([]string{
		fmt.Sprintf("start replication %s → %s and wait until %s has caught up", m.from.Name, m.to.Name, m.to.Name),
	}, m.switchoverPlan()...)
	if reclone {
		rb.rep.Plan = append([]string{
			fmt.Sprintf("set %s's data aside (%d errant transaction(s) %s; kept on disk, not deleted)", m.to.Name, res.Count, res.Errant),
			fmt.Sprintf("rebuild %s from %s (CloneSite: copy at one GTID, replication from it)", m.to.Name, m.from.Name),
		}, rb.rep.Plan...)
	}
	if in.DryRun {
		return rb.finish(OutcomeDryRun, nil), nil
	}
	if err := rb.approval(in); err != nil {
		return rb.finish(OutcomeAborted, err), nil
	}
	if reclone {
		if err := m.reclone(ctx); err != nil {
			return rb.finish(OutcomeFailed, err), nil
		}
	}
	if err := rb.step("start replication", m.to.Name, func(ctx workflow.Context) (string, error) {
		return m.startStream(ctx, m.from.Name, m.to.Name)
	}); err != nil {
		return rb.finish(OutcomeFailed, err), nil
	}
	if err := rb.step("catch-up", m.to.Name, func(ctx workflow.Context) (string, error) {
		var src dbadmin.StateResult
		if err := workflow.ExecuteActivity(siteOptions(ctx, m.from.Name, "state of "+m.from.Name, shortCall, pickUpTimeout, 3),
			dbA.DBState, dbadmin.StateInput{Site: m.from}).Get(ctx, &src); err != nil {
			return "", err
		}
		timeout := orDefault(in.CatchUpTimeout, defaultCatchUp)
		var w dbadmin.WaitAppliedResult
		if err := workflow.ExecuteActivity(siteOptions(ctx, m.to.Name, "wait for "+src.GTIDBinlogPos+" at "+m.to.Name, timeout+time.Minute, pickUpTimeout, 3),
			dbA.DBWaitApplied, dbadmin.WaitAppliedInput{Target: m.to, Stream: replicate.StreamName(r.App, m.from.Name, m.to.Name),
				Want: src.GTIDBinlogPos, Timeout: recipe.Duration(timeout)}).Get(ctx, &w); err != nil {
			return "", err
		}
		return fmt.Sprintf("applied %s in %s", w.Applied, w.Waited.D().Round(time.Millisecond)), nil
	}); err != nil {
		return rb.finish(OutcomeFailed, err), nil
	}
	// The switchover back; its own pre-checks again (the stream must run).
	if err := m.switchoverPrechecks(); err != nil {
		return rb.finish(OutcomeFailed, err), nil
	}
	return m.switchover(), nil
}

// reclone sets the old primary's data aside and rebuilds it from the
// current primary with CloneSite (a child workflow). The data set aside is
// not restored if the clone fails: the report names where it is.
func (m *move) reclone(ctx workflow.Context) error {
	rb := m.rb
	run := workflow.GetInfo(ctx).WorkflowExecution.RunID
	if err := rb.step("set aside", m.to.Name, func(ctx workflow.Context) (string, error) {
		var res local.SetAsideResult
		if err := workflow.ExecuteActivity(callOptions(ctx, m.from.Name, "set aside "+m.to.Name, callTimes{startToClose: 5 * time.Minute}, pickUpTimeout, 3),
			localA.SetAsideSite, local.SetAsideInput{Site: m.to, Tag: run}).Get(ctx, &res); err != nil {
			return "", err
		}
		return fmt.Sprintf("stopped; its data kept in %s", orText(res.Dir, "(nothing to move)")), nil
	}); err != nil {
		return err
	}
	return rb.step("re-clone", m.to.Name, func(ctx workflow.Context) (string, error) {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: CloneWorkflowID(m.r.App, m.to.Name), TaskQueue: SharedTaskQueue,
			StaticSummary: fmt.Sprintf("re-clone %s from %s for failback", m.to.Name, m.from.Name)})
		var rep RunbookReport
		if err := workflow.ExecuteChildWorkflow(cctx, CloneSite, CloneInput{Recipe: m.in.Recipe, From: m.from.Name, To: m.to.Name}).Get(ctx, &rep); err != nil {
			return "", err
		}
		if rep.Outcome != OutcomeCompleted {
			return "", fmt.Errorf("clone %s from %s %s: %s", m.to.Name, m.from.Name, rep.Outcome, rep.Error)
		}
		return fmt.Sprintf("%s rebuilt from %s at GTID %s, replicating", m.to.Name, m.from.Name, rep.RPO.AppliedGTID), nil
	})
}
