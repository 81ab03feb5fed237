package workflows

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
)

// Activity receivers: workflows call activities through typed nil pointers.
var (
	dbA    *dbadmin.Activities
	dnsA   *dns.Activities
	probeA *probe.Activities
	ctlA   *replicate.Control
	localA *local.Provider
)

// Timeouts of runbook steps.
const (
	pickUpTimeout     = 30 * time.Second // a live site's worker picks a task up well within this
	deadPickUpTimeout = 3 * time.Second  // for a site that may be down: a live worker picks up within milliseconds
	shortCall         = time.Minute
	defaultCatchUp    = 2 * time.Minute
	defaultDNSWait    = 2 * time.Minute
	postCheckFor      = 30 * time.Second
	// waitHeartbeat is the heartbeat timeout of the waits that heartbeat
	// every second or two (DBWaitApplied, DNSAnswers).
	waitHeartbeat = 10 * time.Second
)

// Times of the switchover's calls. A call whose worker dies after doing its
// work is retried only when these expire: they bound what a worker crash
// costs the runbook — between fence and promote, in write unavailability —
// so each is as short as the call's own worst case allows.
var (
	// quickCall: calls that answer in well under a second at a healthy
	// site (read a database's state, read_only=OFF, one HTTP probe with
	// its 2 s timeout). Above the 5 s database dial timeout, so that an
	// unreachable database fails with its own error, not a timeout.
	quickCall = callTimes{startToClose: 2 * dbadmin.DefaultDialTimeout}
	// fenceCall: DBFence may block 25 s after the 5 s dial (three lock
	// waits of 5 s, then a 10 s drain); it heartbeats every second all the
	// while, so a dead worker is noticed within the heartbeat timeout.
	fenceCall = callTimes{startToClose: dbadmin.DefaultDialTimeout + 3*dbadmin.DefaultLockWaitTimeout + dbadmin.DefaultDrainTimeout + 5*time.Second,
		heartbeat: 5 * dbadmin.FenceHeartbeat}
	// pointCall: DNSPoint heartbeats every dns.DefaultHeartbeatInterval
	// and, with a cloud driver, waits up to dns.DefaultSyncTimeout for the
	// change to propagate.
	pointCall = callTimes{startToClose: dns.DefaultSyncTimeout + time.Minute, heartbeat: 3 * dns.DefaultHeartbeatInterval}
	// stopCall: StreamStop heartbeats every second once the supervisor has
	// accepted the stop, but the stop update waits for one of the
	// supervisor's workflow tasks first — up to a sticky-queue timeout
	// (5 s) more when the worker that ran the previous one died.
	stopCall = callTimes{startToClose: 2 * time.Minute, heartbeat: 15 * time.Second}
)

// move holds what a runbook knows about the two sites.
type move struct {
	rb       *runbook
	r        recipe.Recipe
	in       RunbookInput
	from, to recipe.Site
}

func newMove(rb *runbook, r recipe.Recipe, in RunbookInput) *move {
	from, _ := r.Site(in.From)
	to, _ := r.Site(in.To)
	return &move{rb: rb, r: r, in: in, from: from, to: to}
}

func (m *move) streamID(from, to string) string { return ReplicationWorkflowID(m.r.App, from, to) }

// Switchover moves the primary role from in.From to in.To with no data
// loss: pre-checks → approval (optional) → fence the primary → wait until the
// standby applied its last transaction → stop the stream → promote the
// standby → point DNS at it and wait for every authoritative server → check
// the application through the new address → replicate back to the old
// primary. A failure before traffic moves runs the compensations in
// reverse: the old primary is writable again and DNS unchanged. The result
// is the report; bad input fails at once (InvalidInput).
func Switchover(ctx workflow.Context, in RunbookInput) (RunbookReport, error) {
	rb, r, err := newRunbook(ctx, RunbookSwitchover, &in)
	if err != nil {
		return RunbookReport{}, err
	}
	m := newMove(rb, r, in)
	if err := m.switchoverPrechecks(); err != nil {
		return rb.finish(OutcomeAborted, err), nil
	}
	m.rb.rep.Plan = m.switchoverPlan()
	if in.DryRun {
		return rb.finish(OutcomeDryRun, nil), nil
	}
	if err := rb.approval(in); err != nil {
		return rb.finish(OutcomeAborted, err), nil
	}
	return m.switchover(), nil
}

func (m *move) switchoverPlan() []string {
	plan := []string{
		fmt.Sprintf("fence %s: read_only=ON, kill client connections", m.from.Name),
		fmt.Sprintf("wait until %s has applied %s's last transaction (at most %s)", m.to.Name, m.from.Name, orDefault(m.in.CatchUpTimeout, defaultCatchUp)),
		fmt.Sprintf("stop replication %s → %s", m.from.Name, m.to.Name),
		fmt.Sprintf("promote %s: read_only=OFF", m.to.Name),
		fmt.Sprintf("point %s at %s and wait for every authoritative server", m.r.DNS.Record, m.to.Address),
		fmt.Sprintf("check %s's application through the new address (/healthz writable)", m.to.Name),
	}
	if !m.in.NoReverse {
		plan = append(plan, fmt.Sprintf("start replication %s → %s (%s stays read-only)", m.to.Name, m.from.Name, m.from.Name))
	}
	return plan
}

// switchoverPrechecks: both databases answer, the primary is writable, the
// standby read-only, the stream runs and its lag is within bounds.
func (m *move) switchoverPrechecks() error {
	maxLag := orDefault(m.in.MaxLag, m.r.Policy.MaxRPO.D())
	return m.rb.step("pre-checks", "", func(ctx workflow.Context) (string, error) {
		var src, dst dbadmin.StateResult
		if err := workflow.ExecuteActivity(callOptions(ctx, m.from.Name, "state of "+m.from.Name, quickCall, pickUpTimeout, 3),
			dbA.DBState, dbadmin.StateInput{Site: m.from}).Get(ctx, &src); err != nil {
			return "", err
		}
		if src.ReadOnly {
			return "", fmt.Errorf("from: %s is read-only: it is not the primary", m.from.Name)
		}
		if err := workflow.ExecuteActivity(callOptions(ctx, m.to.Name, "state of "+m.to.Name, quickCall, pickUpTimeout, 3),
			dbA.DBState, dbadmin.StateInput{Site: m.to}).Get(ctx, &dst); err != nil {
			return "", err
		}
		if !dst.ReadOnly {
			return "", fmt.Errorf("to: %s is writable already: two writable sites must be resolved by hand first", m.to.Name)
		}
		var st replicate.StreamState
		id := m.streamID(m.from.Name, m.to.Name)
		if err := workflow.ExecuteActivity(siteOptions(ctx, m.to.Name, "stream "+id, shortCall, pickUpTimeout, 3),
			ctlA.StreamState, replicate.StreamRef{WorkflowID: id}).Get(ctx, &st); err != nil {
			return "", err
		}
		if !st.Running || (st.State != ReplRunning && st.State != ReplLagging) {
			return "", fmt.Errorf("replication %s → %s is not running (%s %s)", m.from.Name, m.to.Name, orText(st.State, "no supervisor"), st.LastError)
		}
		lag := time.Duration(st.Progress.LagSeconds * float64(time.Second))
		if lag > maxLag {
			return "", fmt.Errorf("%s lags %s behind %s, more than %s", m.to.Name, lag.Round(time.Millisecond), m.from.Name, maxLag)
		}
		return fmt.Sprintf("%s writable at %s; %s read-only at %s; stream %s, lag %s (bound %s)",
			m.from.Name, src.GTIDBinlogPos, m.to.Name, dst.GTIDBinlogPos, st.State, lag.Round(time.Millisecond), maxLag), nil
	})
}

// switchover runs the changing steps (after pre-checks and approval).
func (m *move) switchover() RunbookReport {
	rb := m.rb
	var fence dbadmin.FenceResult
	err := rb.step("fence", m.from.Name, func(ctx workflow.Context) (string, error) {
		if err := workflow.ExecuteActivity(callOptions(ctx, m.from.Name, "fence "+m.from.Name, fenceCall, pickUpTimeout, 3),
			dbA.DBFence, dbadmin.FenceInput{Site: m.from}).Get(ctx, &fence); err != nil {
			return "", err
		}
		return fmt.Sprintf("read_only=ON at %s, %d client connection(s) killed", fence.FinalGTID, len(fence.Killed)), nil
	})
	if err != nil {
		return m.rollBack(err)
	}
	// Writes stop when read_only=ON takes effect, somewhere inside the
	// fence step: count from its start. Its end would understate the figure
	// when the fence was retried after a crash (the first attempt fenced,
	// its result was lost, the retry came a timeout later).
	fencedAt := rb.rep.Steps[len(rb.rep.Steps)-1].Started
	rb.rep.RPO.FinalGTID = fence.FinalGTID
	rb.onUndo("fence", m.from.Name, m.promoteFn(m.from))

	stream := replicate.StreamName(m.r.App, m.from.Name, m.to.Name)
	err = rb.step("catch-up", m.to.Name, func(ctx workflow.Context) (string, error) {
		var w dbadmin.WaitAppliedResult
		timeout := orDefault(m.in.CatchUpTimeout, defaultCatchUp)
		if err := workflow.ExecuteActivity(callOptions(ctx, m.to.Name, "wait for "+fence.FinalGTID+" at "+m.to.Name,
			callTimes{startToClose: timeout + time.Minute, heartbeat: waitHeartbeat}, pickUpTimeout, 3),
			dbA.DBWaitApplied, dbadmin.WaitAppliedInput{Target: m.to, Stream: stream, Want: fence.FinalGTID, Timeout: recipe.Duration(timeout)}).Get(ctx, &w); err != nil {
			return "", err
		}
		rb.rep.RPO.AppliedGTID = w.Applied
		return fmt.Sprintf("applied %s in %s", w.Applied, w.Waited.D().Round(time.Millisecond)), nil
	})
	if err != nil {
		return m.rollBack(err)
	}
	if err := m.stopStream(m.from.Name, m.to.Name); err != nil {
		return m.rollBack(err)
	}
	rb.onUndo("stop replication", m.to.Name, m.startStreamFn(m.from.Name, m.to.Name))

	if err := m.promote(); err != nil {
		return m.rollBack(err)
	}
	rb.rep.WriteUnavailableSeconds = rb.rep.Steps[len(rb.rep.Steps)-1].Ended.Sub(fencedAt).Seconds()
	rb.rep.RPO.Exact = true
	if err := m.pointDNS(); err != nil {
		return m.rollBack(err)
	}
	rb.undo = nil // traffic has moved: from here on, failures are reported, not rolled back
	if err := m.waitDNS(); err != nil {
		return rb.finish(OutcomeFailed, err)
	}
	if err := m.postCheck(); err != nil {
		return rb.finish(OutcomeFailed, err)
	}
	if m.in.NoReverse {
		rb.skip("start replication", m.from.Name, "no_reverse set")
	} else if err := rb.step("start replication", m.from.Name, func(ctx workflow.Context) (string, error) {
		return m.startStream(ctx, m.to.Name, m.from.Name)
	}); err != nil {
		return rb.finish(OutcomeFailed, err)
	}
	return rb.finish(OutcomeCompleted, nil)
}

// rollBack runs the compensations after a failure before traffic moved.
func (m *move) rollBack(cause error) RunbookReport {
	if len(m.rb.undo) == 0 {
		return m.rb.finish(OutcomeAborted, cause)
	}
	if !m.rb.compensate() {
		return m.rb.finish(OutcomeFailed, fmt.Errorf("%w; and a compensation failed: see the steps", cause))
	}
	return m.rb.finish(OutcomeRolledBack, cause)
}

func (m *move) promoteFn(s recipe.Site) func(workflow.Context) error {
	return func(ctx workflow.Context) error {
		return workflow.ExecuteActivity(callOptions(ctx, s.Name, "promote "+s.Name, quickCall, pickUpTimeout, 5),
			dbA.DBPromote, dbadmin.PromoteInput{Site: s}).Get(ctx, nil)
	}
}

// promote makes the new primary writable; its compensation fences it again.
func (m *move) promote() error {
	err := m.rb.step("promote", m.to.Name, func(ctx workflow.Context) (string, error) {
		var p dbadmin.PromoteResult
		if err := workflow.ExecuteActivity(callOptions(ctx, m.to.Name, "promote "+m.to.Name, quickCall, pickUpTimeout, 3),
			dbA.DBPromote, dbadmin.PromoteInput{Site: m.to}).Get(ctx, &p); err != nil {
			return "", err
		}
		return fmt.Sprintf("read_only=OFF at %s (changed: %t)", p.GTIDBinlogPos, p.Changed), nil
	})
	if err == nil {
		m.rb.onUndo("promote", m.to.Name, func(ctx workflow.Context) error {
			return workflow.ExecuteActivity(callOptions(ctx, m.to.Name, "fence "+m.to.Name, fenceCall, pickUpTimeout, 5),
				dbA.DBFence, dbadmin.FenceInput{Site: m.to}).Get(ctx, nil)
		})
	}
	return err
}

// pointDNS replaces the public record with the new primary's address.
func (m *move) pointDNS() error {
	err := m.rb.step("dns switch", m.to.Name, func(ctx workflow.Context) (string, error) {
		var p dns.PointResult
		if err := workflow.ExecuteActivity(callOptions(ctx, m.to.Name, "point "+m.r.DNS.Record+" at "+m.to.Address, pointCall, pickUpTimeout, 5),
			dnsA.DNSPoint, dns.PointInput{DNS: m.r.DNS, Addrs: []string{m.to.Address}}).Get(ctx, &p); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: %v → %v (changed: %t)", p.Record, p.Previous, p.Addrs, p.Changed), nil
	})
	return err
}

// waitDNS waits until every authoritative server answers the new address;
// then the new primary is reachable by name and writable (RTO ends).
func (m *move) waitDNS() error {
	return m.rb.step("dns verify", "", func(ctx workflow.Context) (string, error) {
		wait := orDefault(m.in.DNSTimeout, defaultDNSWait)
		var a dns.AnswersResult
		err := workflow.ExecuteActivity(callOptions(ctx, m.to.Name, "wait for every server to answer "+m.to.Address,
			callTimes{startToClose: wait + time.Minute, heartbeat: waitHeartbeat}, pickUpTimeout, 3),
			dnsA.DNSAnswers, dns.AnswersInput{DNS: m.r.DNS, Want: []string{m.to.Address}, WaitFor: recipe.Duration(wait)}).Get(ctx, &a)
		if err != nil {
			return "", err
		}
		if !a.Converged {
			return describeAnswers(a), fmt.Errorf("not every authoritative server answers %s after %s", m.to.Address, wait)
		}
		m.rb.rep.WritableAt = workflow.Now(ctx)
		return describeAnswers(a), nil
	})
}

func describeAnswers(a dns.AnswersResult) string {
	var parts []string
	for _, ans := range a.Answers {
		parts = append(parts, fmt.Sprintf("%s says %v", ans.Server, ans.Addrs))
	}
	return strings.Join(parts, "; ")
}

// postCheck asks the application at the new address, as a client that
// resolved the public name would, whether it can write.
func (m *move) postCheck() error {
	return m.rb.step("post-check", m.to.Name, func(ctx workflow.Context) (string, error) {
		if len(m.to.App.Endpoints) == 0 {
			return "no app endpoints in the recipe", nil
		}
		return waitWritable(ctx, m.to.Name, m.to.Name, publicURL(m.to.App.Endpoints[0], m.to.Address, "/healthz"), postCheckFor)
	})
}

// waitWritable probes the app health URL u of site from the worker of via,
// once a second, until the app answers and says its database is writable,
// for at most within.
func waitWritable(ctx workflow.Context, via, site, u string, within time.Duration) (string, error) {
	deadline := workflow.Now(ctx).Add(within)
	var last probe.HTTPResult
	for attempt := 1; ; attempt++ {
		if err := workflow.ExecuteActivity(callOptions(ctx, via, "GET "+u, quickCall, pickUpTimeout, 3),
			probeA.ProbeHTTP, probe.HTTPInput{Site: site, URL: u}).Get(ctx, &last); err != nil {
			return "", err
		}
		if last.Up && last.Writable != nil && *last.Writable {
			return fmt.Sprintf("%s: %d, writable, %d ms (attempt %d)", u, last.StatusCode, last.LatencyMS, attempt), nil
		}
		if !workflow.Now(ctx).Before(deadline) {
			return "", fmt.Errorf("%s not writable after %s: status %d %s", u, within, last.StatusCode, last.Error)
		}
		_ = workflow.Sleep(ctx, time.Second)
	}
}

// publicURL is endpoint with its host replaced by addr (what the public
// name resolves to), and path.
func publicURL(endpoint, addr, path string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return strings.TrimSuffix(endpoint, "/") + path
	}
	if port := u.Port(); port != "" {
		u.Host = net.JoinHostPort(addr, port)
	} else {
		u.Host = addr
	}
	u.Path = path
	return u.String()
}

// stopStream stops the supervisor of from → to and waits for its end.
func (m *move) stopStream(from, to string) error {
	id := m.streamID(from, to)
	return m.rb.step("stop replication", to, func(ctx workflow.Context) (string, error) {
		var st replicate.StreamState
		err := workflow.ExecuteActivity(callOptions(ctx, m.to.Name, "stop "+id, stopCall, pickUpTimeout, 3),
			ctlA.StreamStop, replicate.StreamRef{WorkflowID: id}).Get(ctx, &st)
		if err != nil {
			return "", err
		}
		if st.Progress.LastGTID != "" {
			m.rb.rep.RPO.LastSourceCommit = st.Progress.LastSourceCommit
		}
		if !st.Running && st.State == "" {
			return id + " was not running", nil
		}
		return fmt.Sprintf("%s stopped at %s", id, st.Progress.Position), nil
	})
}

func (m *move) startStreamFn(from, to string) func(workflow.Context) error {
	return func(ctx workflow.Context) error {
		_, err := m.startStream(ctx, from, to)
		return err
	}
}

// startStream starts (or finds running) the supervisor of from → to as an
// abandoned child: it outlives the runbook.
func (m *move) startStream(ctx workflow.Context, from, to string) (string, error) {
	return m.startStreamAt(ctx, from, to, "")
}

// startStreamAt is startStream with the position a target that never
// applied anything from this source starts at (a clone's GTID).
func (m *move) startStreamAt(ctx workflow.Context, from, to, start string) (string, error) {
	id := m.streamID(from, to)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		TaskQueue:             SharedTaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:         fmt.Sprintf("replication %s → %s", from, to),
	})
	f := workflow.ExecuteChildWorkflow(cctx, ReplicationSupervisor, ReplicationInput{Recipe: m.in.Recipe, From: from, To: to, StartPosition: start})
	err := f.GetChildWorkflowExecution().Get(ctx, nil)
	if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return id + " already running", nil
	}
	if err != nil {
		return "", err
	}
	return id + " started", nil
}

func orDefault(d recipe.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return d.D()
	}
	return def
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// positionBehind counts the transactions of have that applied lacks, when
// both parse; ok is false otherwise.
func positionBehind(applied, have string) (uint64, bool) {
	a, err1 := replication.ParsePosition(applied)
	h, err2 := replication.ParsePosition(have)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return a.Behind(h), true
}
