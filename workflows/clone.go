package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/activities/snapshot"
	"github.com/drover-sre/drover/recipe"
)

// RunbookClone is the kind of CloneSite's report.
const RunbookClone = "clone"

// CloneWorkflowID is the ID of the clone of site to: one at a time.
func CloneWorkflowID(app, to string) string { return "clone-" + app + "-" + to }

var snapA *snapshot.Activities

// CloneInput starts CloneSite: build site To of the recipe from nothing,
// as a consistent copy of From, and keep it in sync.
type CloneInput struct {
	Recipe recipe.Recipe `json:"recipe"`
	// From is the site copied (default: the recipe's primary).
	From string `json:"from,omitempty"`
	// To is the site created: it must be a site of the recipe.
	To string `json:"to"`
	// Schemas to copy; empty: every schema of From but system ones and
	// Drover's own.
	Schemas []string `json:"schemas,omitempty"`
	// CopyTimeout bounds the copy (default 2h).
	CopyTimeout recipe.Duration `json:"copy_timeout,omitempty"`
	// CopyWorkers is the number of sessions writing into To (default 4);
	// ChunkRows bounds a chunk, the unit a resumed copy keeps (default
	// 50,000 rows). Both trade speed for load on the two databases.
	CopyWorkers int `json:"copy_workers,omitempty"`
	ChunkRows   int `json:"chunk_rows,omitempty"`
}

// CloneSite creates site To from a recipe and makes it a warm standby of
// From: provision → wait until its database answers (read_only=ON, its own
// server_id and domain, Drover's accounts: the provider configures them) →
// copy From's database at one exact GTID → start ReplicationSupervisor
// From → To from that GTID (no gap, no overlap) → app tier at the
// recipe's size → register <to>.<zone> in DNS (not the public record: the
// site does not serve) → verify (probes, and every table compared between
// From and To at one GTID) → report. A failure at any step destroys what
// this run created, and only that. Cloning a site that is already a
// healthy, replicating standby of From is a no-op that says so.
//
// Local sites are provisioned by the local provider on From's worker (all
// local sites share one machine); the copy runs at To's worker, so To's
// worker must be running (the dev stack starts one per recipe site).
func CloneSite(ctx workflow.Context, in CloneInput) (RunbookReport, error) {
	r, err := validRecipe(in.Recipe)
	if err != nil {
		return RunbookReport{}, err
	}
	if in.From == "" {
		in.From = r.Primary
	}
	from, okF := r.Site(in.From)
	to, okT := r.Site(in.To)
	switch {
	case !okF:
		return RunbookReport{}, invalidInput(fmt.Sprintf("from: %q is not a site of app %s", in.From, r.App))
	case in.To == "":
		return RunbookReport{}, invalidInput("to: required (the site to create)")
	case !okT:
		return RunbookReport{}, invalidInput(fmt.Sprintf("to: %q is not a site of app %s", in.To, r.App))
	case in.To == in.From:
		return RunbookReport{}, invalidInput(fmt.Sprintf("to: %q is the site copied (from)", in.To))
	case in.CopyWorkers < 0 || in.CopyWorkers > 64:
		return RunbookReport{}, invalidInput(fmt.Sprintf("copy_workers: %d is not between 0 (default) and 64", in.CopyWorkers))
	case in.ChunkRows < 0:
		return RunbookReport{}, invalidInput(fmt.Sprintf("chunk_rows: %d is negative", in.ChunkRows))
	}
	if to.Provider != recipe.ProviderLocal {
		if err := to.ValidateCompute(true); err != nil {
			return RunbookReport{}, invalidInput("to: " + err.Error())
		}
	}
	now := workflow.Now(ctx)
	rep := &RunbookReport{Runbook: RunbookClone, App: r.App, From: in.From, To: in.To, StartedAt: now, DetectedAt: now, Steps: []Step{},
		SLARTOSeconds: r.Policy.SLA.RTO.D().Seconds(), SLARPOSeconds: r.Policy.SLA.RPO.D().Seconds()}
	rb := &runbook{ctx: ctx, rep: rep, logger: workflow.GetLogger(ctx)}
	if err := workflow.SetQueryHandler(ctx, RunbookProgressQuery, func() (RunbookReport, error) { return *rb.rep, nil }); err != nil {
		return RunbookReport{}, err
	}
	tagRun(ctx, r.App, in.To, RunbookClone, "running")
	c := &clone{rb: rb, r: r, in: in, from: from, to: to, runID: workflow.GetInfo(ctx).WorkflowExecution.RunID}
	rep.Plan = c.plan()
	if c.alreadyStandby() {
		return rb.finish(OutcomeCompleted, nil), nil
	}
	if err := c.run(); err != nil {
		if !rb.compensate() {
			return rb.finish(OutcomeFailed, fmt.Errorf("%w; and removing what this run created failed: see the steps", err)), nil
		}
		return rb.finish(OutcomeRolledBack, err), nil
	}
	return rb.finish(OutcomeCompleted, nil), nil
}

type clone struct {
	rb       *runbook
	r        recipe.Recipe
	in       CloneInput
	from, to recipe.Site
	runID    string
	gtid     string
}

func (c *clone) streamID() string { return ReplicationWorkflowID(c.r.App, c.from.Name, c.to.Name) }

func (c *clone) plan() []string {
	return []string{
		fmt.Sprintf("provision %s with the %s provider (database read_only=ON, app tier)", c.to.Name, c.to.Provider),
		fmt.Sprintf("copy %s's database into %s at one exact GTID", c.from.Name, c.to.Name),
		fmt.Sprintf("start replication %s → %s from that GTID", c.from.Name, c.to.Name),
		fmt.Sprintf("register %s.%s in DNS (standby: %s unchanged)", c.to.Name, c.r.DNS.Zone, c.r.DNS.Record),
		fmt.Sprintf("verify: probes, and every table compared between %s and %s at one GTID", c.from.Name, c.to.Name),
	}
}

// alreadyStandby reports (as a skipped step) a site that is already a
// replicating, read-only standby of From: nothing to do.
func (c *clone) alreadyStandby() bool {
	var st replicate.StreamState
	var state dbadmin.StateResult
	err := c.rb.step("existing site", c.to.Name, func(ctx workflow.Context) (string, error) {
		if err := workflow.ExecuteActivity(siteOptions(ctx, c.from.Name, "stream "+c.streamID(), shortCall, pickUpTimeout, 2),
			ctlA.StreamState, replicate.StreamRef{WorkflowID: c.streamID()}).Get(ctx, &st); err != nil {
			return "", err
		}
		if !st.Running {
			return "no replication into " + c.to.Name + ": cloning", nil
		}
		if err := workflow.ExecuteActivity(siteOptions(ctx, c.from.Name, "state of "+c.to.Name, shortCall, pickUpTimeout, 1),
			dbA.DBState, dbadmin.StateInput{Site: c.to}).Get(ctx, &state); err != nil {
			return "replication runs but the database does not answer: cloning", nil
		}
		return fmt.Sprintf("%s answers (read_only=%t) and replication %s is %s", c.to.Name, state.ReadOnly, c.streamID(), st.State), nil
	})
	if err == nil && st.Running && state.ReadOnly && (st.State == ReplRunning || st.State == ReplLagging) {
		c.rb.rep.Steps[len(c.rb.rep.Steps)-1].Outcome = StepSkipped
		c.rb.rep.Plan = []string{c.to.Name + " is already a replicating standby of " + c.from.Name + ": nothing to do"}
		return true
	}
	return false
}

// run does the steps; each registers the undo of what it created.
func (c *clone) run() error {
	rb := c.rb
	if err := c.provision(); err != nil {
		return err
	}
	if err := rb.step("wait ready", c.to.Name, func(ctx workflow.Context) (string, error) {
		var st dbadmin.StateResult
		if err := workflow.ExecuteActivity(siteOptions(ctx, c.from.Name, "state of "+c.to.Name, shortCall, pickUpTimeout, 10),
			dbA.DBState, dbadmin.StateInput{Site: c.to}).Get(ctx, &st); err != nil {
			return "", err
		}
		if !st.ReadOnly {
			return "", fmt.Errorf("%s's database is writable: a new standby must start read_only=ON", c.to.Name)
		}
		return fmt.Sprintf("database %s answers: read_only=ON, server_id %d, gtid_domain_id %d", st.Version, st.ServerID, st.GTIDDomainID), nil
	}); err != nil {
		return err
	}
	stream := replicate.StreamName(c.r.App, c.from.Name, c.to.Name)
	if err := rb.step("copy", c.to.Name, func(ctx workflow.Context) (string, error) {
		timeout := orDefault(c.in.CopyTimeout, 2*time.Hour)
		var res snapshot.CopyResult
		if err := workflow.ExecuteActivity(callOptions(ctx, c.to.Name, "copy "+c.from.Name+" → "+c.to.Name,
			// The copy heartbeats every 2 s: a worker that died mid-copy
			// is noticed in 10 s and the copy resumes at another attempt.
			callTimes{startToClose: timeout, heartbeat: 10 * time.Second}, pickUpTimeout, 5),
			snapA.SnapshotCopy, snapshot.CopyInput{CloneID: workflow.GetInfo(ctx).WorkflowExecution.ID + "/" + c.runID,
				Source: c.from, Target: c.to, Schemas: c.in.Schemas, Stream: stream,
				Workers: c.in.CopyWorkers, ChunkRows: c.in.ChunkRows}).Get(ctx, &res); err != nil {
			return "", err
		}
		c.gtid = res.GTID
		c.rb.rep.RPO.AppliedGTID = res.GTID
		return fmt.Sprintf("%d tables, %d rows, %d bytes at GTID %s in %.1f s (snapshot %s, attempt %d, %d chunks reused)",
			len(res.Tables), res.Rows, res.Bytes, res.GTID, res.DurationSeconds, res.SnapshotMethod, res.Attempt, res.ReusedChunks), nil
	}); err != nil {
		return err
	}
	if err := rb.step("start replication", c.to.Name, func(ctx workflow.Context) (string, error) {
		m := &move{rb: rb, r: c.r, in: RunbookInput{Recipe: c.in.Recipe}}
		return m.startStreamAt(ctx, c.from.Name, c.to.Name, c.gtid)
	}); err != nil {
		return err
	}
	rb.onUndo("start replication", c.to.Name, func(ctx workflow.Context) error {
		return workflow.ExecuteActivity(callOptions(ctx, c.from.Name, "stop "+c.streamID(), stopCall, pickUpTimeout, 3),
			ctlA.StreamStop, replicate.StreamRef{WorkflowID: c.streamID()}).Get(ctx, nil)
	})
	if err := c.registerDNS(); err != nil {
		return err
	}
	return c.verify()
}

// provision creates the site's compute (local: processes and a fresh
// database; cloud: instances) and registers its destruction.
func (c *clone) provision() error {
	rb := c.rb
	if c.to.Provider == recipe.ProviderLocal {
		err := rb.step("provision", c.to.Name, func(ctx workflow.Context) (string, error) {
			var st local.SiteState
			if err := workflow.ExecuteActivity(callOptions(ctx, c.from.Name, "start local site "+c.to.Name,
				callTimes{startToClose: 5 * time.Minute}, pickUpTimeout, 3),
				localA.StartSite, local.SiteInput{Site: c.to, Run: c.runID}).Get(ctx, &st); err != nil {
				return "", err
			}
			return fmt.Sprintf("local site %s running under %s", c.to.Name, st.Dir), nil
		})
		if err == nil {
			rb.onUndo("provision", c.to.Name, func(ctx workflow.Context) error {
				return workflow.ExecuteActivity(callOptions(ctx, c.from.Name, "destroy local site "+c.to.Name,
					callTimes{startToClose: 2 * time.Minute}, pickUpTimeout, 3),
					localA.DestroySite, local.SiteInput{Site: c.to, Run: c.runID}).Get(ctx, nil)
			})
		}
		return err
	}
	names, _ := provider.Names(c.to.Provider)
	in := provider.SiteInput{App: c.r.App, Site: c.to, Run: c.runID, Request: c.runID}
	err := rb.step("provision", c.to.Name, func(ctx workflow.Context) (string, error) {
		var st provider.SiteState
		if err := workflow.ExecuteActivity(callOptions(ctx, c.from.Name, c.to.Provider+" create "+c.to.Name,
			callTimes{startToClose: 20 * time.Minute, heartbeat: time.Minute}, pickUpTimeout, 5),
			names.Create, in).Get(ctx, &st); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d instance(s), %d created by this run", len(st.Instances), len(st.Created)), nil
	})
	if err == nil {
		rb.onUndo("provision", c.to.Name, func(ctx workflow.Context) error {
			return workflow.ExecuteActivity(callOptions(ctx, c.from.Name, c.to.Provider+" destroy "+c.to.Name,
				callTimes{startToClose: 20 * time.Minute, heartbeat: time.Minute}, pickUpTimeout, 5),
				names.Destroy, in).Get(ctx, nil)
		})
	}
	return err
}

// registerDNS names the new site in the zone (<to>.<zone>), idempotently;
// the public record is not touched: the standby does not serve.
func (c *clone) registerDNS() error {
	d := c.r.DNS
	d.Record = c.to.Name + "." + d.Zone
	var prev []string
	err := c.rb.step("dns register", c.to.Name, func(ctx workflow.Context) (string, error) {
		var p dns.PointResult
		if err := workflow.ExecuteActivity(callOptions(ctx, c.from.Name, "point "+d.Record+" at "+c.to.Address, pointCall, pickUpTimeout, 5),
			dnsA.DNSPoint, dns.PointInput{DNS: d, Addrs: []string{c.to.Address}}).Get(ctx, &p); err != nil {
			return "", err
		}
		prev = p.Previous
		return fmt.Sprintf("%s: %v → %v (changed: %t); %s unchanged", p.Record, p.Previous, p.Addrs, p.Changed, c.r.DNS.Record), nil
	})
	if err == nil && len(prev) == 0 {
		c.rb.onUndo("dns register", c.to.Name, func(ctx workflow.Context) error {
			return workflow.ExecuteActivity(callOptions(ctx, c.from.Name, "remove "+d.Record, pointCall, pickUpTimeout, 5),
				dnsA.DNSRemove, dns.RemoveInput{DNS: d, Addr: c.to.Address}).Get(ctx, nil)
		})
	}
	return err
}

// verify probes the new site from its own worker and compares every table.
func (c *clone) verify() error {
	if err := c.rb.step("verify probes", c.to.Name, func(ctx workflow.Context) (string, error) {
		var res probe.SitesResult
		if err := workflow.ExecuteActivity(callOptions(ctx, c.to.Name, "probe "+c.to.Name, quickCall, pickUpTimeout, 3),
			probeA.ProbeSites, probe.SitesInput{Recipe: c.r, Sites: []string{c.to.Name}}).Get(ctx, &res); err != nil {
			return "", err
		}
		if len(res.Sites) != 1 || !res.Sites[0].Up {
			return "", fmt.Errorf("%s is not healthy: failed %v", c.to.Name, res.Sites)
		}
		return fmt.Sprintf("%d checks up from %s", len(res.Sites[0].Checks), res.Vantage), nil
	}); err != nil {
		return err
	}
	return c.rb.step("verify data", c.to.Name, func(ctx workflow.Context) (string, error) {
		var res snapshot.CompareResult
		if err := workflow.ExecuteActivity(callOptions(ctx, c.to.Name, "compare "+c.from.Name+" and "+c.to.Name,
			callTimes{startToClose: time.Hour, heartbeat: 30 * time.Second}, pickUpTimeout, 3),
			snapA.SnapshotCompare, snapshot.CompareInput{Source: c.from, Target: c.to, Schemas: c.in.Schemas,
				Stream: replicate.StreamName(c.r.App, c.from.Name, c.to.Name)}).Get(ctx, &res); err != nil {
			return "", err
		}
		if !res.Equal {
			return "", fmt.Errorf("%s and %s differ at %s: %v", c.from.Name, c.to.Name, res.GTID, res.Differences)
		}
		return fmt.Sprintf("%d tables equal at %s", len(res.Tables), res.GTID), nil
	})
}
