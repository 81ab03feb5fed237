package workflows

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/activities/snapshot"
	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/recipe"
)

// RunbookDrill is the kind of a Drill's report.
const RunbookDrill = "drill"

// DrillWorkflowID is the ID of the app's drill: one at a time. Scheduled
// drills get this ID with the schedule's timestamp appended.
func DrillWorkflowID(app string) string { return "drill-" + app }

// DrillInput starts a Drill.
type DrillInput struct {
	Recipe recipe.Recipe `json:"recipe"`
	// Reason is free text for the report (e.g. "weekly drill").
	Reason string `json:"reason,omitempty"`
	// Site is the standby whose data the drill copies (default: the first
	// standby the primary replicates into).
	Site string `json:"site,omitempty"`
	// Address is the loopback address of the isolated drill site when the
	// standby is a local site (default: the recipe's drill.address; one of
	// them is required then, e.g. "127.0.0.4"): its database and app
	// listen there, on the standby's ports.
	Address string `json:"address,omitempty"`
	// Smoke replaces the recipe's smoke checks for this drill.
	Smoke []recipe.SmokeCheck `json:"smoke,omitempty"`
	// Disruptive runs a real switchover to the standby and back instead
	// of working on a copy.
	Disruptive bool `json:"disruptive,omitempty"`
	// CopyTimeout bounds the copy (default 1h).
	CopyTimeout recipe.Duration `json:"copy_timeout,omitempty"`
}

// DrillReport is a Drill's result and the answer of its progress query:
// the runbook timeline plus the verdict and the RTO and RPO the drill
// measured against the recipe's SLA.
type DrillReport struct {
	RunbookReport
	// Passed: every step worked, the smoke checks passed, the measured
	// RTO and RPO are within the SLA, and everything the drill created is
	// gone.
	Passed     bool     `json:"passed"`
	Failures   []string `json:"failures,omitempty"`
	Disruptive bool     `json:"disruptive,omitempty"`
	// DrillSite is the isolated site the drill built (non-disruptive).
	DrillSite string `json:"drill_site,omitempty"`
	// DetectionSeconds is how long the health monitor needs to confirm an
	// outage (shortest probe interval × largest failure threshold);
	// RecoverySeconds what the drill measured from the promotion's start
	// to the smoke checks passing, DNS update included. The would-be RTO
	// (RunbookReport.RTOSeconds) is their sum.
	DetectionSeconds float64 `json:"detection_seconds"`
	RecoverySeconds  float64 `json:"recovery_seconds"`
	// LagSeconds is the standby's replication lag when the drill began:
	// the RPO a failover at that moment would have had.
	LagSeconds float64                  `json:"lag_seconds"`
	RTOMet     bool                     `json:"rto_met"`
	RPOMet     bool                     `json:"rpo_met"`
	Smoke      []probe.SmokeCheckResult `json:"smoke,omitempty"`
	// CleanedUp is true when every creation of the drill was undone.
	CleanedUp bool `json:"cleaned_up"`
}

// Drill proves the recovery plan without touching production traffic: it
// copies the standby's database into an isolated drill site, promotes the
// copy, runs the application's smoke checks against it (a write and a read
// through the app), measures the RTO a failover would have had and the
// RPO (the standby's lag now), and then destroys everything it created —
// even when a step failed or the drill was cancelled. With Disruptive it
// runs a real Switchover to the standby and back instead, as child
// workflows under the runbook ID (never beside another runbook).
func Drill(ctx workflow.Context, in DrillInput) (DrillReport, error) {
	t, err := planDrill(in)
	if err != nil {
		return DrillReport{}, err
	}
	r, std, site, checks := t.r, t.std, t.site, t.checks
	now := workflow.Now(ctx)
	d := &drill{r: r, in: in, std: std, site: site, checks: checks, runID: workflow.GetInfo(ctx).WorkflowExecution.RunID}
	d.rep = DrillReport{RunbookReport: RunbookReport{Runbook: RunbookDrill, App: r.App, From: r.Primary, To: std.Name, Reason: in.Reason,
		StartedAt: now, DetectedAt: now, Steps: []Step{},
		SLARTOSeconds: r.Policy.SLA.RTO.D().Seconds(), SLARPOSeconds: r.Policy.SLA.RPO.D().Seconds()},
		Disruptive: in.Disruptive, DrillSite: site.Name, DetectionSeconds: detection(r).Seconds()}
	d.rb = &runbook{ctx: ctx, rep: &d.rep.RunbookReport, logger: workflow.GetLogger(ctx)}
	if err := workflow.SetQueryHandler(ctx, RunbookProgressQuery, func() (DrillReport, error) { return d.rep, nil }); err != nil {
		return DrillReport{}, err
	}
	tagRun(ctx, r.App, std.Name, RunbookDrill, "running")
	if in.Disruptive {
		d.rep.Plan = []string{
			fmt.Sprintf("measure %s's lag (the RPO now)", std.Name),
			fmt.Sprintf("switch over %s → %s (a real one: child workflow %s)", r.Primary, std.Name, RunbookWorkflowID(r.App)),
			fmt.Sprintf("switch back %s → %s", std.Name, r.Primary),
		}
		d.fail(d.disruptive(ctx))
		d.rep.CleanedUp = true
	} else {
		d.rep.Plan = []string{
			fmt.Sprintf("measure %s's lag (the RPO now)", std.Name),
			fmt.Sprintf("provision the isolated drill site %s (%s)", site.Name, orText(site.Address, site.Provider+" instances")),
			fmt.Sprintf("copy %s's database into it at one GTID", std.Name),
			fmt.Sprintf("register %s.%s, promote the copy, run %d smoke check(s) through its app", site.Name, r.DNS.Zone, len(checks)),
			"destroy everything the drill created, whatever happened",
		}
		d.fail(d.isolated())
		d.rep.CleanedUp = d.rb.compensate()
		if !d.rep.CleanedUp {
			d.rep.Failures = append(d.rep.Failures, "cleanup: something the drill created could not be removed (see the undo steps)")
		}
	}
	return d.finish(ctx), nil
}

// ValidateDrillInput checks a drill's input exactly as Drill does before
// it runs anything: the recipe, the standby, the smoke checks and, for an
// isolated drill, the drill site's address. The error is Drill's own
// InvalidInput error, whose message starts with the input field at fault
// ("site: …", "address: …", "smoke[0]: …", "invalid recipe: …"), so a
// client can refuse bad input before it starts or schedules a drill.
func ValidateDrillInput(in DrillInput) error {
	_, err := planDrill(in)
	return err
}

// drillTargets is what a valid DrillInput resolves to.
type drillTargets struct {
	r      recipe.Recipe // defaults applied
	std    recipe.Site   // the standby copied or switched to
	site   recipe.Site   // the isolated drill site (zero when disruptive)
	checks []recipe.SmokeCheck
}

// planDrill validates a drill's input and resolves its sites and checks.
func planDrill(in DrillInput) (drillTargets, error) {
	var t drillTargets
	var err error
	if t.r, err = validRecipe(in.Recipe); err != nil {
		return t, err
	}
	if t.std, err = drillStandby(t.r, in.Site); err != nil {
		return t, err
	}
	t.checks = in.Smoke
	if len(t.checks) == 0 {
		t.checks = t.r.Smoke
	}
	for i, c := range t.checks {
		if ps := c.Validate(fmt.Sprintf("smoke[%d]", i)); len(ps) > 0 {
			return t, invalidInput(ps.Error())
		}
	}
	if !in.Disruptive {
		addr := in.Address
		if addr == "" {
			addr = t.r.Drill.Address
		}
		if t.site, err = drillSite(t.std, addr); err != nil {
			return t, err
		}
	}
	return t, nil
}

type drill struct {
	r      recipe.Recipe
	in     DrillInput
	std    recipe.Site // the standby copied or switched to
	site   recipe.Site // the drill site (non-disruptive)
	checks []recipe.SmokeCheck
	runID  string
	rb     *runbook
	rep    DrillReport
}

func (d *drill) fail(err error) {
	if err != nil {
		d.rep.Failures = append(d.rep.Failures, errorMessage(err))
	}
}

// lag reads the standby's replication lag: the RPO of a failover now.
func (d *drill) lag() error {
	id := ReplicationWorkflowID(d.r.App, d.r.Primary, d.std.Name)
	return d.rb.step("measure rpo", d.std.Name, func(ctx workflow.Context) (string, error) {
		var st replicate.StreamState
		if err := workflow.ExecuteActivity(callOptions(ctx, d.std.Name, "stream "+id, quickCall, pickUpTimeout, 3),
			ctlA.StreamState, replicate.StreamRef{WorkflowID: id}).Get(ctx, &st); err != nil {
			return "", err
		}
		if !st.Running {
			return "", fmt.Errorf("replication %s is not running: a failover now would lose everything since it stopped", id)
		}
		d.rep.LagSeconds = st.Progress.LagSeconds
		d.rep.RPO = RPOPoint{AppliedGTID: st.Progress.Position, LastSourceCommit: st.Progress.LastSourceCommit,
			LostTransactions: st.Progress.LagTransactions, LostSeconds: st.Progress.LagSeconds}
		return fmt.Sprintf("%s is %s, %.1f s and %d transaction(s) behind %s", d.std.Name, st.State,
			st.Progress.LagSeconds, st.Progress.LagTransactions, d.r.Primary), nil
	})
}

// isolated is the non-disruptive drill; its creations are undone by the
// caller's compensate.
func (d *drill) isolated() error {
	rb := d.rb
	if err := d.lag(); err != nil {
		return err
	}
	via := d.std.Name // the drill site has no worker: the standby's serves it
	if err := d.provision(via); err != nil {
		return err
	}
	if err := rb.step("copy", d.site.Name, func(ctx workflow.Context) (string, error) {
		var res snapshot.CopyResult
		if err := workflow.ExecuteActivity(callOptions(ctx, via, "copy "+d.std.Name+" → "+d.site.Name,
			callTimes{startToClose: orDefault(d.in.CopyTimeout, time.Hour), heartbeat: 10 * time.Second}, pickUpTimeout, 3),
			snapA.SnapshotCopy, snapshot.CopyInput{CloneID: workflow.GetInfo(ctx).WorkflowExecution.ID + "/" + d.runID,
				Source: d.std, Target: d.site}).Get(ctx, &res); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d tables, %d rows at %s's GTID %s in %.1f s", len(res.Tables), res.Rows, d.std.Name, res.GTID, res.DurationSeconds), nil
	}); err != nil {
		return err
	}

	// From here the clock runs as it would in a failover: promote, name,
	// serve.
	recoveryStart := workflow.Now(rb.ctx)
	dnsCfg := d.r.DNS
	dnsCfg.Record = d.site.Name + "." + dnsCfg.Zone
	var prev []string
	if err := rb.step("dns register", d.site.Name, func(ctx workflow.Context) (string, error) {
		var p dns.PointResult
		if err := workflow.ExecuteActivity(callOptions(ctx, via, "point "+dnsCfg.Record, pointCall, pickUpTimeout, 5),
			dnsA.DNSPoint, dns.PointInput{DNS: dnsCfg, Addrs: []string{d.site.Address}}).Get(ctx, &p); err != nil {
			return "", err
		}
		prev = p.Previous
		return fmt.Sprintf("%s → %v (the public name %s untouched)", p.Record, p.Addrs, d.r.DNS.Record), nil
	}); err != nil {
		return err
	}
	if len(prev) == 0 {
		rb.onUndo("dns register", d.site.Name, func(ctx workflow.Context) error {
			return workflow.ExecuteActivity(callOptions(ctx, via, "remove "+dnsCfg.Record, pointCall, pickUpTimeout, 5),
				dnsA.DNSRemove, dns.RemoveInput{DNS: dnsCfg, Addr: d.site.Address}).Get(ctx, nil)
		})
	}
	if err := rb.step("promote", d.site.Name, func(ctx workflow.Context) (string, error) {
		var p dbadmin.PromoteResult
		if err := workflow.ExecuteActivity(callOptions(ctx, via, "promote "+d.site.Name, quickCall, pickUpTimeout, 3),
			dbA.DBPromote, dbadmin.PromoteInput{Site: d.site}).Get(ctx, &p); err != nil {
			return "", err
		}
		return fmt.Sprintf("read_only=OFF (changed: %t)", p.Changed), nil
	}); err != nil {
		return err
	}
	if err := d.smoke(via); err != nil {
		return err
	}
	d.rep.RecoverySeconds = workflow.Now(rb.ctx).Sub(recoveryStart).Seconds()
	return nil
}

// provision creates the drill site: local processes, or cloud instances
// from the standby's compute block (their addresses become the site's).
// The undo is registered before the step: a creation that fails half-way
// must still be removed, and destroying with the run id removes only what
// this run created.
func (d *drill) provision(via string) error {
	rb := d.rb
	if d.site.Provider == recipe.ProviderLocal {
		in := local.SiteInput{Site: d.site, Run: d.runID}
		rb.onUndo("provision", d.site.Name, func(ctx workflow.Context) error {
			var st local.SiteState
			if err := workflow.ExecuteActivity(callOptions(ctx, via, "destroy drill site "+d.site.Name,
				callTimes{startToClose: 2 * time.Minute}, pickUpTimeout, 3), localA.DestroySite, in).Get(ctx, &st); err != nil {
				return err
			}
			if st.Running() {
				return fmt.Errorf("drill site %s still runs after destroy", d.site.Name)
			}
			return nil
		})
		return rb.step("provision", d.site.Name, func(ctx workflow.Context) (string, error) {
			var st local.SiteState
			if err := workflow.ExecuteActivity(callOptions(ctx, via, "start drill site "+d.site.Name,
				callTimes{startToClose: 5 * time.Minute}, pickUpTimeout, 3), localA.StartSite, in).Get(ctx, &st); err != nil {
				return "", err
			}
			return fmt.Sprintf("isolated site %s at %s (no replication, not in the public name) under %s", d.site.Name, d.site.Address, st.Dir), nil
		})
	}
	names, _ := provider.Names(d.site.Provider)
	in := provider.SiteInput{App: d.r.App, Site: d.site, Run: d.runID, Request: d.runID}
	cloudCall := callTimes{startToClose: 20 * time.Minute, heartbeat: time.Minute}
	rb.onUndo("provision", d.site.Name, func(ctx workflow.Context) error {
		return workflow.ExecuteActivity(callOptions(ctx, via, d.site.Provider+" destroy "+d.site.Name, cloudCall, pickUpTimeout, 5),
			names.Destroy, in).Get(ctx, nil)
	})
	return rb.step("provision", d.site.Name, func(ctx workflow.Context) (string, error) {
		var st provider.SiteState
		if err := workflow.ExecuteActivity(callOptions(ctx, via, d.site.Provider+" create "+d.site.Name, cloudCall, pickUpTimeout, 5),
			names.Create, in).Get(ctx, &st); err != nil {
			return "", err
		}
		var dbIP, appIP string
		for _, i := range st.Instances {
			switch {
			case i.Role == provider.RoleDB && dbIP == "":
				dbIP = i.PrivateIP
			case i.Role == provider.RoleApp && appIP == "":
				appIP = i.PrivateIP
			}
		}
		if appIP == "" {
			appIP = dbIP // a single-instance site runs both
		}
		if dbIP == "" {
			return "", fmt.Errorf("%s created %d instance(s) but none is a database with a private address", d.site.Provider, len(st.Instances))
		}
		site, err := withAddresses(d.site, dbIP, appIP)
		if err != nil {
			return "", err
		}
		d.site = site
		return fmt.Sprintf("%d %s instance(s), %d created by this run: database %s, app %s", len(st.Instances), d.site.Provider,
			len(st.Created), dbIP, appIP), nil
	})
}

// smoke waits for the app to see its database writable, then runs the
// checks once.
func (d *drill) smoke(via string) error {
	base := d.site.App.Endpoints[0]
	if err := d.rb.step("app writable", d.site.Name, func(ctx workflow.Context) (string, error) {
		return waitWritable(ctx, via, d.site.Name, base+"/healthz", postCheckFor)
	}); err != nil {
		return err
	}
	if len(d.checks) == 0 {
		d.rb.skip("smoke checks", d.site.Name, "the recipe has no app.smoke checks: only the health probe ran")
		return nil
	}
	return d.rb.step("smoke checks", d.site.Name, func(ctx workflow.Context) (string, error) {
		var res probe.SmokeResult
		token := "drill" + strings.ReplaceAll(d.runID, "-", "")[:12]
		if err := workflow.ExecuteActivity(callOptions(ctx, via, "smoke "+base, callTimes{startToClose: time.Minute}, pickUpTimeout, 1),
			probeA.SmokeHTTP, probe.SmokeInput{Site: d.site.Name, BaseURL: base, Checks: d.checks, Token: token}).Get(ctx, &res); err != nil {
			return "", err
		}
		d.rep.Smoke = res.Checks
		var parts []string
		for _, c := range res.Checks {
			s := fmt.Sprintf("%s: %d in %d ms", c.Name, c.StatusCode, c.LatencyMS)
			if !c.Passed {
				s = c.Name + ": " + c.Error
			}
			parts = append(parts, s)
		}
		if !res.Passed {
			return strings.Join(parts, "; "), fmt.Errorf("smoke check failed")
		}
		return strings.Join(parts, "; "), nil
	})
}

// disruptive switches over to the standby and back, as child workflows.
func (d *drill) disruptive(ctx workflow.Context) error {
	if err := d.lag(); err != nil {
		return err
	}
	there, err := d.switchover(ctx, d.r.Primary, d.std.Name)
	if err != nil {
		return err
	}
	d.rep.RecoverySeconds = there.RTOSeconds
	back, err := d.switchover(ctx, d.std.Name, d.r.Primary)
	if err != nil {
		return err
	}
	d.rep.RPO = there.RPO
	d.rep.WriteUnavailableSeconds = max(there.WriteUnavailableSeconds, back.WriteUnavailableSeconds)
	return nil
}

func (d *drill) switchover(ctx workflow.Context, from, to string) (RunbookReport, error) {
	var rep RunbookReport
	err := d.rb.step("switchover", to, func(ctx workflow.Context) (string, error) {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: RunbookWorkflowID(d.r.App), TaskQueue: SharedTaskQueue})
		if err := workflow.ExecuteChildWorkflow(cctx, Switchover, RunbookInput{Recipe: d.in.Recipe, From: from, To: to,
			Reason: "disruptive drill " + workflow.GetInfo(ctx).WorkflowExecution.ID}).Get(ctx, &rep); err != nil {
			return "", err
		}
		if rep.Outcome != OutcomeCompleted {
			return "", fmt.Errorf("switchover %s → %s %s: %s", from, to, rep.Outcome, rep.Error)
		}
		return fmt.Sprintf("%s → %s: RTO %.1f s, write unavailability %.2f s, RPO %d transaction(s)", from, to,
			rep.RTOSeconds, rep.WriteUnavailableSeconds, rep.RPO.LostTransactions), nil
	})
	return rep, err
}

// finish judges the drill against the SLA, emits its metrics and tags.
func (d *drill) finish(ctx workflow.Context) DrillReport {
	rep := &d.rep
	completedSteps := len(rep.Failures) == 0
	if completedSteps {
		// The RTO a failover would have had; RunbookReport.finish leaves it
		// alone (no WritableAt: nothing served the public name).
		rep.RTOSeconds = rep.DetectionSeconds + rep.RecoverySeconds
		rep.RTOMet = rep.RTOSeconds <= rep.SLARTOSeconds
		rep.RPOMet = rep.LagSeconds <= rep.SLARPOSeconds
		if !rep.RTOMet {
			rep.Failures = append(rep.Failures, fmt.Sprintf("rto: %.1f s would exceed the SLA of %.0f s", rep.RTOSeconds, rep.SLARTOSeconds))
		}
		if !rep.RPOMet {
			rep.Failures = append(rep.Failures, fmt.Sprintf("rpo: %.1f s of lag exceeds the SLA of %.0f s", rep.LagSeconds, rep.SLARPOSeconds))
		}
	}
	rep.Passed = len(rep.Failures) == 0
	outcome := OutcomeCompleted
	var err error
	if !rep.Passed {
		outcome = OutcomeFailed
		err = fmt.Errorf("%s", strings.Join(rep.Failures, "; "))
	}
	d.rb.finish(outcome, err)
	metrics.RecordDrill(workflow.GetMetricsHandler(ctx), d.r.App, rep.Passed, rep.EndedAt)
	state := "passed"
	if !rep.Passed {
		state = "failed"
	}
	tagRun(ctx, d.r.App, d.std.Name, RunbookDrill, state)
	return *rep
}

// drillStandby is the standby a drill works on.
func drillStandby(r recipe.Recipe, name string) (recipe.Site, error) {
	if name == "" {
		for _, st := range r.Replication {
			if st.From == r.Primary {
				name = st.To
				break
			}
		}
		if name == "" {
			return recipe.Site{}, invalidInput(fmt.Sprintf("site: the recipe replicates from %s into no site: name the standby", r.Primary))
		}
	}
	s, ok := r.Site(name)
	switch {
	case !ok:
		return s, invalidInput(fmt.Sprintf("site: %q is not a site of app %s", name, r.App))
	case name == r.Primary:
		return s, invalidInput(fmt.Sprintf("site: %q is the primary; a drill copies a standby", name))
	}
	return s, nil
}

// drillSite is the isolated copy of standby std: its own name, server_id
// and GTID domain (so nothing it writes can be mistaken for the standby's),
// the same ports, accounts, secret references and compute block. A local
// drill site listens on addr; a cloud one gets the addresses of the
// instances the provider creates.
func drillSite(std recipe.Site, addr string) (recipe.Site, error) {
	s := std
	s.Name = "drill-" + std.Name
	s.DB.ServerID += 1000
	s.DB.GTIDDomainID += 1000
	s.App.Instances = 1
	if std.Provider != recipe.ProviderLocal {
		if err := std.ValidateCompute(true); err != nil {
			return recipe.Site{}, invalidInput(fmt.Sprintf("site %s: a drill creates instances from its %s block: %v", std.Name, std.Provider, err))
		}
		return s, nil
	}
	ip := net.ParseIP(addr)
	if addr == "" || ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return recipe.Site{}, invalidInput(fmt.Sprintf("address: %q: a local drill needs an IPv4 loopback address of its own (e.g. 127.0.0.4; or set the recipe's drill.address)", addr))
	}
	if addr == std.Address || addr == std.DB.Host {
		return recipe.Site{}, invalidInput(fmt.Sprintf("address: %s is the standby's own address", addr))
	}
	return withAddresses(s, addr, addr)
}

// withAddresses points a site's database at dbAddr and its app endpoints
// (ports kept) at appAddr.
func withAddresses(s recipe.Site, dbAddr, appAddr string) (recipe.Site, error) {
	s.Address, s.DB.Host = appAddr, dbAddr
	eps := s.App.Endpoints
	s.App.Endpoints = nil
	for _, e := range eps {
		u, err := url.Parse(e)
		if err != nil {
			return recipe.Site{}, invalidInput(fmt.Sprintf("site %s: app endpoint %q: %v", s.Name, e, err))
		}
		if p := u.Port(); p != "" {
			u.Host = net.JoinHostPort(appAddr, p)
		} else {
			u.Host = appAddr
		}
		s.App.Endpoints = append(s.App.Endpoints, u.String())
	}
	return s, nil
}

// detection is how long the health monitor takes to confirm an outage
// with the recipe's probes: the shortest interval times the largest
// failure threshold.
func detection(r recipe.Recipe) time.Duration {
	var interval time.Duration
	threshold := 0
	for _, p := range r.Probes {
		if interval == 0 || p.Interval.D() < interval {
			interval = p.Interval.D()
		}
		threshold = max(threshold, p.FailureThreshold)
	}
	return interval * time.Duration(threshold)
}
