package workflows

import (
	"fmt"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/recipe"
)

// HealthMonitorWorkflowID is the ID of an application's health monitor.
func HealthMonitorWorkflowID(app string) string { return "health-" + app }

// HealthStatusQuery answers with the monitor's MonitorStatus.
const HealthStatusQuery = "status"

// Site health states.
const (
	HealthUnknown = "unknown" // no round has judged it yet
	HealthUp      = "up"
	HealthSuspect = "suspect" // failing, below the failure threshold
	HealthDown    = "down"    // failed FailureThreshold rounds in a row
	HealthRising  = "recovering"
)

// MonitorInput starts a HealthMonitor. Zero values take the recipe's:
// the shortest probe interval, the largest failure and recovery thresholds.
type MonitorInput struct {
	Recipe recipe.Recipe `json:"recipe"`
	// Primary is the site that is primary now (default: the recipe's).
	Primary           string          `json:"primary,omitempty"`
	Interval          recipe.Duration `json:"interval,omitempty"`
	FailureThreshold  int             `json:"failure_threshold,omitempty"`
	RecoveryThreshold int             `json:"recovery_threshold,omitempty"`
	// Cooldown is how long after a runbook the monitor starts no automatic
	// failover (default 10m): no ping-pong.
	Cooldown recipe.Duration `json:"cooldown,omitempty"`
	// RoundsPerRun bounds one run's history; the monitor then continues as
	// new (default 300).
	RoundsPerRun int            `json:"rounds_per_run,omitempty"`
	Carry        *MonitorStatus `json:"carry,omitempty"`
}

// Vote is one vantage point's verdict on a site in the last round.
type Vote struct {
	Vantage string   `json:"vantage"`
	Verdict string   `json:"verdict"` // up, down, or no-answer (the vantage's worker did not answer)
	Failed  []string `json:"failed,omitempty"`
}

// SiteHealth is the monitor's view of one site.
type SiteHealth struct {
	Site                 string    `json:"site"`
	State                string    `json:"state"`
	ConsecutiveFailures  int       `json:"consecutive_failures"`
	ConsecutiveSuccesses int       `json:"consecutive_successes"`
	Since                time.Time `json:"since"` // when State last changed
	ReadOnly             *bool     `json:"read_only,omitempty"`
	Votes                []Vote    `json:"votes"`
}

// MonitorStatus answers the status query and is carried across runs.
type MonitorStatus struct {
	App               string        `json:"app"`
	Primary           string        `json:"primary"`
	Rounds            int           `json:"rounds"`
	Interval          time.Duration `json:"interval"`
	FailureThreshold  int           `json:"failure_threshold"`
	RecoveryThreshold int           `json:"recovery_threshold"`
	Sites             []SiteHealth  `json:"sites"`
	// StandbyLagSeconds is the lag of the stream primary → standby as its
	// supervisor last reported it while the primary was up; it is the
	// RPO an automatic failover would accept.
	StandbyLagSeconds float64   `json:"standby_lag_seconds"`
	StandbyLagAt      time.Time `json:"standby_lag_at,omitempty"`
	// LastDecision says what the monitor did or did not do about a down
	// primary, and why.
	LastDecision   string    `json:"last_decision,omitempty"`
	LastDecisionAt time.Time `json:"last_decision_at,omitempty"`
	LastRunbookAt  time.Time `json:"last_runbook_at,omitempty"`
	Runbooks       []string  `json:"runbooks,omitempty"` // runbooks it started: "failover east → west at …: outcome"
}

func (st *MonitorStatus) site(name string) *SiteHealth {
	for i := range st.Sites {
		if st.Sites[i].Site == name {
			return &st.Sites[i]
		}
	}
	return nil
}

// HealthMonitor probes every site from every site's worker each interval.
// A site is down after FailureThreshold consecutive rounds in which a
// majority of the vantage points that answered judged it down (and at
// least one of them was another site); it is up again after
// RecoveryThreshold good rounds. When the primary is down, the policy
// allows automatic failover, a standby is up with its last reported lag
// within policy.max_rpo, and no runbook ran within the cool-down, it starts
// Failover as runbook-<app> (one runbook per application). Otherwise it
// records why not, in the status query, the log and the UI's details.
func HealthMonitor(ctx workflow.Context, in MonitorInput) (MonitorStatus, error) {
	r, err := validRecipe(in.Recipe)
	if err != nil {
		return MonitorStatus{}, err
	}
	st := MonitorStatus{App: r.App, Primary: in.Primary}
	if in.Carry != nil {
		st = *in.Carry
	}
	if st.Primary == "" {
		st.Primary = r.Primary
	}
	if _, ok := r.Site(st.Primary); !ok {
		return st, invalidInput(fmt.Sprintf("primary: %q is not a site of app %s", st.Primary, r.App))
	}
	tagRun(ctx, r.App, st.Primary, "monitor", "watching")
	st.Interval, st.FailureThreshold, st.RecoveryThreshold = monitorSettings(r, in)
	if len(st.Sites) == 0 {
		for _, s := range r.Sites {
			st.Sites = append(st.Sites, SiteHealth{Site: s.Name, State: HealthUnknown, Since: workflow.Now(ctx)})
		}
	}
	cooldown := orDefault(in.Cooldown, 10*time.Minute)
	rounds := in.RoundsPerRun
	if rounds <= 0 {
		rounds = 300
	}
	if err := workflow.SetQueryHandler(ctx, HealthStatusQuery, func() (MonitorStatus, error) { return st, nil }); err != nil {
		return st, err
	}
	logger := workflow.GetLogger(ctx)
	var inFlight workflow.Future // the failover it started, while it runs
	for i := 0; ; i++ {
		if inFlight == nil && (i >= rounds || workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
			in.Carry = &st
			return st, workflow.NewContinueAsNewError(ctx, HealthMonitor, in)
		}
		roundStart := workflow.Now(ctx)
		monitorRound(ctx, r, &st)
		if inFlight != nil && inFlight.IsReady() {
			var rep RunbookReport
			err := inFlight.Get(ctx, &rep)
			inFlight = nil
			outcome := rep.Outcome
			if err != nil {
				outcome = "error: " + errorMessage(err)
			} else if rep.Outcome == OutcomeCompleted {
				st.Primary = rep.To
			}
			st.Runbooks[len(st.Runbooks)-1] += ": " + outcome
			logger.Info("failover runbook ended", "app", r.App, "outcome", outcome, "primary", st.Primary)
		}
		if inFlight == nil {
			if f := decide(ctx, r, &st, cooldown); f != nil {
				inFlight = f
			}
		}
		workflow.SetCurrentDetails(ctx, monitorDetails(&st))
		if wait := st.Interval - workflow.Now(ctx).Sub(roundStart); wait > 0 {
			_ = workflow.Sleep(ctx, wait)
		}
	}
}

func monitorSettings(r recipe.Recipe, in MonitorInput) (interval time.Duration, fail, rec int) {
	interval, fail, rec = in.Interval.D(), in.FailureThreshold, in.RecoveryThreshold
	for _, p := range r.Probes {
		if in.Interval <= 0 && p.Interval > 0 && (interval <= 0 || p.Interval.D() < interval) {
			interval = p.Interval.D()
		}
		if in.FailureThreshold <= 0 && p.FailureThreshold > fail {
			fail = p.FailureThreshold
		}
		if in.RecoveryThreshold <= 0 && p.RecoveryThreshold > rec {
			rec = p.RecoveryThreshold
		}
	}
	if interval <= 0 {
		interval = recipe.DefaultProbeInterval.D()
	}
	if fail <= 0 {
		fail = recipe.DefaultFailureThreshold
	}
	if rec <= 0 {
		rec = recipe.DefaultRecoveryThreshold
	}
	return interval, fail, rec
}

// monitorRound asks every vantage point for its verdicts (a vantage whose
// worker does not pick the task up within the interval abstains), updates
// each site's counters, and refreshes the standby's lag while the primary
// is up.
func monitorRound(ctx workflow.Context, r recipe.Recipe, st *MonitorStatus) {
	st.Rounds++
	futures := make([]workflow.Future, len(r.Sites))
	for i, v := range r.Sites {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              SiteTaskQueue(v.Name),
			ScheduleToStartTimeout: st.Interval,
			StartToCloseTimeout:    st.Interval + 10*time.Second,
			Summary:                "health round " + fmt.Sprint(st.Rounds) + " from " + v.Name,
			RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		futures[i] = workflow.ExecuteActivity(actx, probeA.ProbeSites, probe.SitesInput{Recipe: r})
	}
	votes := map[string][]Vote{}
	readOnly := map[string]*bool{}
	for i, v := range r.Sites {
		var res probe.SitesResult
		if err := futures[i].Get(ctx, &res); err != nil {
			for _, s := range r.Sites {
				votes[s.Name] = append(votes[s.Name], Vote{Vantage: v.Name, Verdict: "no-answer"})
			}
			continue
		}
		for _, sv := range res.Sites {
			verdict := "up"
			if !sv.Up {
				verdict = "down"
			}
			votes[sv.Site] = append(votes[sv.Site], Vote{Vantage: v.Name, Verdict: verdict, Failed: sv.Failed})
			if sv.ReadOnly != nil {
				readOnly[sv.Site] = sv.ReadOnly
			}
		}
	}
	now := workflow.Now(ctx)
	for _, s := range r.Sites {
		h := st.site(s.Name)
		h.Votes, h.ReadOnly = votes[s.Name], readOnly[s.Name]
		down, up, others := 0, 0, 0
		for _, v := range h.Votes {
			switch v.Verdict {
			case "down":
				down++
				if v.Vantage != s.Name {
					others++
				}
			case "up":
				up++
			}
		}
		if down+up == 0 {
			continue // nobody answered: no information this round
		}
		failed := down > up && others > 0
		prev := h.State
		if failed {
			h.ConsecutiveFailures++
			h.ConsecutiveSuccesses = 0
			if h.ConsecutiveFailures >= st.FailureThreshold {
				h.State = HealthDown
			} else if h.State != HealthDown {
				h.State = HealthSuspect
			}
		} else {
			h.ConsecutiveSuccesses++
			h.ConsecutiveFailures = 0
			switch {
			case h.State == HealthDown && h.ConsecutiveSuccesses < st.RecoveryThreshold:
				h.State = HealthRising
			case h.State == HealthRising && h.ConsecutiveSuccesses < st.RecoveryThreshold:
			default:
				h.State = HealthUp
			}
		}
		if h.State != prev {
			h.Since = now
			workflow.GetLogger(ctx).Info("site health changed", "app", r.App, "site", s.Name, "from", prev, "to", h.State,
				"failures", h.ConsecutiveFailures, "votes", describeVotes(h.Votes))
		}
	}
	if p := st.site(st.Primary); p != nil && p.State == HealthUp {
		if standby, ok := standbyOf(r, st.Primary); ok {
			sctx := siteOptions(ctx, standby, "lag of "+st.Primary+" → "+standby, 10*time.Second, st.Interval, 1)
			var ss replicate.StreamState
			if err := workflow.ExecuteActivity(sctx, ctlA.StreamState,
				replicate.StreamRef{WorkflowID: ReplicationWorkflowID(r.App, st.Primary, standby)}).Get(ctx, &ss); err == nil && ss.Running {
				st.StandbyLagSeconds, st.StandbyLagAt = ss.Progress.LagSeconds, now
			}
		}
	}
}

// standbyOf is the first site the recipe replicates primary into.
func standbyOf(r recipe.Recipe, primary string) (string, bool) {
	for _, s := range r.Replication {
		if s.From == primary {
			return s.To, true
		}
	}
	for _, s := range r.Replication { // after a failover the recipe's stream points the other way
		if s.To == primary {
			return s.From, true
		}
	}
	return "", false
}

// decide starts Failover when the primary is confirmed down and every
// condition holds; otherwise it records why not.
func decide(ctx workflow.Context, r recipe.Recipe, st *MonitorStatus, cooldown time.Duration) workflow.Future {
	p := st.site(st.Primary)
	if p == nil || p.State != HealthDown {
		return nil
	}
	now := workflow.Now(ctx)
	standby, ok := standbyOf(r, st.Primary)
	why := ""
	var sh *SiteHealth
	if ok {
		sh = st.site(standby)
	}
	switch {
	case !r.Policy.AutoFailover:
		why = fmt.Sprintf("primary %s is down; auto_failover is off: a human decides (drover failover --to %s)", st.Primary, orText(standby, "SITE"))
	case !ok:
		why = fmt.Sprintf("primary %s is down; the recipe names no standby it replicates into", st.Primary)
	case sh.State != HealthUp:
		why = fmt.Sprintf("primary %s is down; standby %s is %s: no failover to an unhealthy site", st.Primary, standby, sh.State)
	case st.StandbyLagAt.IsZero():
		why = fmt.Sprintf("primary %s is down; the lag of %s is unknown (never reported while the primary was up)", st.Primary, standby)
	case st.StandbyLagSeconds > r.Policy.MaxRPO.D().Seconds():
		why = fmt.Sprintf("primary %s is down; standby %s lagged %.1fs, more than policy.max_rpo %s", st.Primary, standby, st.StandbyLagSeconds, r.Policy.MaxRPO)
	case !st.LastRunbookAt.IsZero() && now.Sub(st.LastRunbookAt) < cooldown:
		why = fmt.Sprintf("primary %s is down; cool-down: a runbook ran %s ago (cool-down %s)", st.Primary, now.Sub(st.LastRunbookAt).Round(time.Second), cooldown)
	}
	if why != "" {
		if st.LastDecision != why {
			workflow.GetLogger(ctx).Warn("no automatic failover", "app", r.App, "reason", why)
		}
		st.LastDecision, st.LastDecisionAt = why, now
		return nil
	}
	detected := p.Since
	reason := fmt.Sprintf("health monitor: %s down for %d rounds (%s); standby %s up, lag %.1fs ≤ max_rpo %s",
		st.Primary, p.ConsecutiveFailures, describeVotes(p.Votes), standby, st.StandbyLagSeconds, r.Policy.MaxRPO)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            RunbookWorkflowID(r.App),
		TaskQueue:             SharedTaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:         fmt.Sprintf("automatic failover %s → %s", st.Primary, standby),
	})
	f := workflow.ExecuteChildWorkflow(cctx, Failover, RunbookInput{Recipe: r, From: st.Primary, To: standby, DetectedAt: detected, Reason: reason})
	err := f.GetChildWorkflowExecution().Get(ctx, nil)
	st.LastRunbookAt, st.LastDecisionAt = now, now
	if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		st.LastDecision = fmt.Sprintf("primary %s is down; a runbook for %s is already running: not starting another", st.Primary, r.App)
		return nil
	}
	if err != nil {
		st.LastDecision = "failover could not start: " + errorMessage(err)
		return nil
	}
	st.LastDecision = "started failover " + st.Primary + " → " + standby + ": " + reason
	st.Runbooks = append(st.Runbooks, fmt.Sprintf("failover %s → %s at %s", st.Primary, standby, now.Format(time.RFC3339)))
	workflow.GetLogger(ctx).Info("automatic failover started", "app", r.App, "from", st.Primary, "to", standby, "reason", reason)
	return f
}

func describeVotes(vs []Vote) string {
	var parts []string
	for _, v := range vs {
		s := v.Vantage + ":" + v.Verdict
		if len(v.Failed) > 0 {
			s += " (" + strings.Join(v.Failed, ", ") + ")"
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func monitorDetails(st *MonitorStatus) string {
	var parts []string
	for _, s := range st.Sites {
		parts = append(parts, s.Site+" "+s.State)
	}
	d := fmt.Sprintf("round %d, primary %s; %s", st.Rounds, st.Primary, strings.Join(parts, ", "))
	if st.LastDecision != "" {
		d += "\nlast decision: " + st.LastDecision
	}
	return d
}
