package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/recipe"
)

// Runbook kinds, workflow names and handler names.
const (
	RunbookSwitchover = "switchover"
	RunbookFailover   = "failover"
	RunbookFailback   = "failback"

	// RunbookProgressQuery answers with the RunbookReport so far.
	RunbookProgressQuery = "progress"
	// RunbookApproveUpdate decides the approval gate (ApprovalDecision).
	RunbookApproveUpdate = "approve"
)

// RunbookWorkflowID is the one workflow ID every runbook of an application
// uses, so that only one runs at a time: a second start while one runs is
// refused (or attached to) by Temporal, and alert storms collapse.
func RunbookWorkflowID(app string) string { return "runbook-" + app }

// Outcomes of a runbook.
const (
	OutcomeCompleted  = "completed"   // traffic is on the new primary, which is writable
	OutcomeDryRun     = "dry-run"     // pre-checks ran, nothing changed
	OutcomeAborted    = "aborted"     // stopped before any change (pre-check, approval)
	OutcomeRolledBack = "rolled-back" // a step failed before traffic moved; compensations ran
	OutcomeFailed     = "failed"      // a step failed and the state needs an operator (see steps)
)

// Step outcomes.
const (
	StepRunning     = "running"
	StepOK          = "ok"
	StepFailed      = "failed"
	StepSkipped     = "skipped"
	StepCompensated = "compensated" // done, then undone by a compensation
)

// RunbookInput starts Switchover, Failover or Failback. Sites carry secret
// references only.
type RunbookInput struct {
	Recipe recipe.Recipe `json:"recipe"`
	// To is the site that becomes primary.
	To string `json:"to"`
	// From is the current primary (default: the recipe's primary).
	From string `json:"from,omitempty"`
	// ApproveBy, when set, makes the runbook wait after its pre-checks for
	// an "approve" update from this person before it changes anything.
	ApproveBy string `json:"approve_by,omitempty"`
	// ApprovalTimeout bounds that wait (default 15m); a timeout aborts.
	ApprovalTimeout recipe.Duration `json:"approval_timeout,omitempty"`
	// DryRun runs the pre-checks and reports the plan; nothing changes.
	DryRun bool `json:"dry_run,omitempty"`
	// MaxLag is the most replication lag the standby may have for a
	// switchover to start (default: the recipe's policy.max_rpo).
	MaxLag recipe.Duration `json:"max_lag,omitempty"`
	// CatchUpTimeout bounds the wait for the standby to apply the fenced
	// primary's last transaction (default 2m); a timeout rolls back.
	CatchUpTimeout recipe.Duration `json:"catch_up_timeout,omitempty"`
	// DNSTimeout bounds the wait for every authoritative server to answer
	// the new address (default 2m).
	DNSTimeout recipe.Duration `json:"dns_timeout,omitempty"`
	// NoReverse skips starting replication from the new primary back to
	// the old one at the end of a switchover.
	NoReverse bool `json:"no_reverse,omitempty"`
	// DetectedAt is when the outage was confirmed (set by the health
	// monitor); RTO counts from it. Default: the runbook's start.
	DetectedAt time.Time `json:"detected_at,omitempty"`
	// Reason is free text for the report (e.g. the alert that started it).
	Reason string `json:"reason,omitempty"`
	// Reclone (failback only): when the old primary has transactions the
	// current primary never received, set its data aside (kept on disk,
	// local sites: sites/<name>.aside-<run>) and rebuild it with CloneSite
	// from the current primary, instead of stopping.
	Reclone bool `json:"reclone,omitempty"`
}

// ApprovalDecision is the argument of the "approve" update.
type ApprovalDecision struct {
	By      string `json:"by"`
	Approve bool   `json:"approve"`
	Comment string `json:"comment,omitempty"`
}

// Step is one entry of a runbook's timeline.
type Step struct {
	Name    string    `json:"name"`
	Site    string    `json:"site,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitempty"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
}

// Seconds is the step's duration.
func (s Step) Seconds() float64 {
	if s.Ended.IsZero() {
		return 0
	}
	return s.Ended.Sub(s.Started).Seconds()
}

// RPOPoint is what a promotion kept: the last source transaction the new
// primary had applied, and what the old primary had that it did not.
type RPOPoint struct {
	// AppliedGTID is the new primary's position in the old primary's
	// domains when it was promoted.
	AppliedGTID string `json:"applied_gtid,omitempty"`
	// FinalGTID is the old primary's last position when it is known
	// (switchover: read after fencing; failover: only if it answered).
	FinalGTID string `json:"final_gtid,omitempty"`
	// LastSourceCommit is the source commit time of AppliedGTID's
	// transaction as the stream last reported it.
	LastSourceCommit time.Time `json:"last_source_commit,omitempty"`
	// LostTransactions is how many transactions the old primary had that
	// the new one did not; Exact says whether the figure is certain (it is
	// not when the old primary was unreachable).
	LostTransactions uint64  `json:"lost_transactions"`
	LostSeconds      float64 `json:"lost_seconds"`
	Exact            bool    `json:"exact"`
}

// RunbookReport is a runbook's result and the answer of its progress query.
type RunbookReport struct {
	Runbook    string    `json:"runbook"`
	App        string    `json:"app"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Reason     string    `json:"reason,omitempty"`
	Outcome    string    `json:"outcome,omitempty"` // empty while running
	Error      string    `json:"error,omitempty"`
	DryRun     bool      `json:"dry_run,omitempty"`
	Plan       []string  `json:"plan,omitempty"`
	ApprovedBy string    `json:"approved_by,omitempty"`
	Steps      []Step    `json:"steps"`
	StartedAt  time.Time `json:"started_at"`
	EndedAt    time.Time `json:"ended_at,omitempty"`
	// DetectedAt starts the RTO clock; WritableAt stops it: the new primary
	// is writable and every authoritative DNS server answers its address.
	DetectedAt time.Time `json:"detected_at"`
	WritableAt time.Time `json:"writable_at,omitempty"`
	RTOSeconds float64   `json:"rto_seconds,omitempty"`
	// WriteUnavailableSeconds is how long no site accepted writes: from
	// fencing the old primary to promoting the new one (switchover), an
	// upper bound: from the fence step's start to the promote step's end.
	WriteUnavailableSeconds float64  `json:"write_unavailable_seconds,omitempty"`
	RPO                     RPOPoint `json:"rpo"`
	// Errant lists, as a GTID position, the old primary's transactions the
	// new primary never received (empty when there are none or unknown).
	Errant      string `json:"errant,omitempty"`
	ErrantCount uint64 `json:"errant_count,omitempty"`
	// SLA figures of the recipe, for comparison.
	SLARTOSeconds float64 `json:"sla_rto_seconds"`
	SLARPOSeconds float64 `json:"sla_rpo_seconds"`
}

// runbook is the bookkeeping a runbook workflow shares: the report, the
// step timeline and the compensations of the steps done so far.
type runbook struct {
	ctx    workflow.Context
	rep    *RunbookReport
	undo   []compensation
	logger interface {
		Info(string, ...interface{})
		Warn(string, ...interface{})
	}
}

type compensation struct {
	step string
	site string
	do   func(ctx workflow.Context) error
}

// newRunbook validates the input, resolves From and To, and registers the
// progress query. It returns a non-retryable InvalidInput error naming the
// field for bad input.
func newRunbook(ctx workflow.Context, kind string, in *RunbookInput) (*runbook, recipe.Recipe, error) {
	r, err := validRecipe(in.Recipe)
	if err != nil {
		return nil, r, err
	}
	if in.From == "" {
		in.From = r.Primary
	}
	if _, ok := r.Site(in.From); !ok {
		return nil, r, invalidInput(fmt.Sprintf("from: %q is not a site of app %s", in.From, r.App))
	}
	if in.To == "" {
		return nil, r, invalidInput("to: required (the site that becomes primary)")
	}
	if _, ok := r.Site(in.To); !ok {
		return nil, r, invalidInput(fmt.Sprintf("to: %q is not a site of app %s", in.To, r.App))
	}
	if in.To == in.From {
		return nil, r, invalidInput(fmt.Sprintf("to: %q is already the primary (from)", in.To))
	}
	now := workflow.Now(ctx)
	rep := &RunbookReport{Runbook: kind, App: r.App, From: in.From, To: in.To, Reason: in.Reason,
		DryRun: in.DryRun, StartedAt: now, DetectedAt: in.DetectedAt, Steps: []Step{},
		SLARTOSeconds: r.Policy.SLA.RTO.D().Seconds(), SLARPOSeconds: r.Policy.SLA.RPO.D().Seconds()}
	if rep.DetectedAt.IsZero() {
		rep.DetectedAt = now
	}
	rb := &runbook{ctx: ctx, rep: rep, logger: workflow.GetLogger(ctx)}
	if err := workflow.SetQueryHandler(ctx, RunbookProgressQuery, func() (RunbookReport, error) { return *rb.rep, nil }); err != nil {
		return nil, r, err
	}
	tagRun(ctx, r.App, in.To, kind, "running")
	return rb, r, nil
}

// step runs fn as a named step of the timeline. The workflow's current
// details (shown in the UI) name the step in progress.
func (rb *runbook) step(name, site string, fn func(ctx workflow.Context) (string, error)) error {
	return rb.stepIn(rb.ctx, name, site, fn)
}

// stepIn is step on ctx: the context of the workflow goroutine it runs in
// (steps may run side by side).
func (rb *runbook) stepIn(ctx workflow.Context, name, site string, fn func(ctx workflow.Context) (string, error)) error {
	rb.rep.Steps = append(rb.rep.Steps, Step{Name: name, Site: site, Started: workflow.Now(ctx), Outcome: StepRunning})
	i := len(rb.rep.Steps) - 1
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("%s %s → %s: %s %s", rb.rep.Runbook, rb.rep.From, rb.rep.To, name, site))
	detail, err := fn(ctx)
	s := &rb.rep.Steps[i]
	s.Ended, s.Detail, s.Outcome = workflow.Now(ctx), detail, StepOK
	if err != nil {
		// A failing step's detail is what it wants said besides the error
		// (what the failure means); never its success summary.
		s.Outcome = StepFailed
		if s.Detail != "" {
			s.Detail += ": "
		}
		s.Detail += errorMessage(err)
		rb.logger.Warn("runbook step failed", "runbook", rb.rep.Runbook, "step", name, "site", site, "error", err)
		return errors.New(strings.TrimSpace(name+" "+site) + ": " + errorMessage(err))
	}
	rb.logger.Info("runbook step done", "runbook", rb.rep.Runbook, "step", name, "site", site, "detail", detail)
	return nil
}

// skip records a step that was not needed, and why.
func (rb *runbook) skip(name, site, why string) {
	now := workflow.Now(rb.ctx)
	rb.rep.Steps = append(rb.rep.Steps, Step{Name: name, Site: site, Started: now, Ended: now, Outcome: StepSkipped, Detail: why})
}

// onUndo registers the compensation of the step just done.
func (rb *runbook) onUndo(step, site string, do func(ctx workflow.Context) error) {
	rb.undo = append(rb.undo, compensation{step: step, site: site, do: do})
}

// compensate runs the registered compensations in reverse order, each as a
// step of its own, on a disconnected context so that a cancelled runbook
// still puts things back. It reports whether all of them succeeded.
func (rb *runbook) compensate() bool {
	ok := true
	dctx, _ := workflow.NewDisconnectedContext(rb.ctx)
	saved := rb.ctx
	rb.ctx = dctx
	defer func() { rb.ctx = saved }()
	for i := len(rb.undo) - 1; i >= 0; i-- {
		c := rb.undo[i]
		if err := rb.step("undo "+c.step, c.site, func(ctx workflow.Context) (string, error) { return "", c.do(ctx) }); err != nil {
			ok = false
			continue
		}
		for j := len(rb.rep.Steps) - 1; j >= 0; j-- {
			if s := &rb.rep.Steps[j]; s.Name == c.step && s.Site == c.site && s.Outcome == StepOK {
				s.Outcome = StepCompensated
				break
			}
		}
	}
	rb.undo = nil
	return ok
}

// finish closes the report with an outcome and counts it in the worker's
// metrics (not while replaying).
func (rb *runbook) finish(outcome string, err error) RunbookReport {
	rb.rep.Outcome, rb.rep.EndedAt = outcome, workflow.Now(rb.ctx)
	if err != nil {
		rb.rep.Error = errorMessage(err)
	}
	if !rb.rep.WritableAt.IsZero() {
		rb.rep.RTOSeconds = rb.rep.WritableAt.Sub(rb.rep.DetectedAt).Seconds()
	}
	workflow.SetCurrentDetails(rb.ctx, fmt.Sprintf("%s %s → %s: %s", rb.rep.Runbook, rb.rep.From, rb.rep.To, outcome))
	metrics.RecordRunbook(workflow.GetMetricsHandler(rb.ctx), rb.rep.App, rb.rep.Runbook, outcome, rb.rep.EndedAt.Sub(rb.rep.StartedAt))
	tagRun(rb.ctx, "", "", "", outcome)
	rb.logger.Info("runbook finished", "runbook", rb.rep.Runbook, "app", rb.rep.App, "outcome", outcome,
		"rto_seconds", rb.rep.RTOSeconds, "error", rb.rep.Error)
	return *rb.rep
}

// approval waits for the approve update when in.ApproveBy is set. It
// returns nil when approved, an error (for the report) when rejected or
// timed out.
func (rb *runbook) approval(in RunbookInput) error {
	if in.ApproveBy == "" {
		return nil
	}
	var decision *ApprovalDecision
	waiting := true
	err := workflow.SetUpdateHandlerWithOptions(rb.ctx, RunbookApproveUpdate, func(ctx workflow.Context, d ApprovalDecision) (string, error) {
		decision = &d
		if d.Approve {
			return "approved by " + d.By, nil
		}
		return "rejected by " + d.By, nil
	}, workflow.UpdateHandlerOptions{Validator: func(d ApprovalDecision) error {
		switch {
		case !waiting:
			return errors.New("this runbook is not waiting for an approval")
		case decision != nil:
			return errors.New("already decided")
		case d.By != in.ApproveBy:
			return fmt.Errorf("by: this runbook waits for %q, not %q", in.ApproveBy, d.By)
		}
		return nil
	}})
	if err != nil {
		return err
	}
	timeout := in.ApprovalTimeout.D()
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	return rb.step("approval", "", func(ctx workflow.Context) (string, error) {
		defer func() { waiting = false }()
		ok, err := workflow.AwaitWithTimeout(ctx, timeout, func() bool { return decision != nil })
		if err != nil {
			return "", err
		}
		if !ok {
			return "", temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("no decision from %s within %s", in.ApproveBy, timeout), "ApprovalTimeout", nil)
		}
		if !decision.Approve {
			return decision.Comment, temporal.NewNonRetryableApplicationError("rejected by "+decision.By, "ApprovalRejected", nil)
		}
		rb.rep.ApprovedBy = decision.By
		return "approved by " + decision.By + commentSuffix(decision.Comment), nil
	})
}

func commentSuffix(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

// errorMessage is an error's message without Temporal's wrapping noise:
// what the activity (or workflow code) said, not the chain of wrappers.
func errorMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Message() != "" {
		return ae.Message()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "timed out (" + te.TimeoutType().String() + "): the site's worker did not answer in time"
	}
	return err.Error()
}

// siteOptions are the activity options of a runbook step at site: a worker
// of that site must pick it up within pickUp (a dead site's worker is
// noticed quickly), and transient failures are retried a bounded number of
// times.
func siteOptions(ctx workflow.Context, site, summary string, startToClose, pickUp time.Duration, attempts int32) workflow.Context {
	return callOptions(ctx, site, summary, callTimes{startToClose: startToClose, heartbeat: heartbeatFor(startToClose)}, pickUp, attempts)
}

// callTimes bounds one attempt of a call: StartToClose, and the heartbeat
// timeout of a call that heartbeats (0: it does not). An attempt whose
// worker died is retried only when one of them expires, so they are also
// how long a worker crash holds a runbook up.
type callTimes struct {
	startToClose, heartbeat time.Duration
}

// callOptions is siteOptions with the call's times given explicitly.
func callOptions(ctx workflow.Context, site, summary string, t callTimes, pickUp time.Duration, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              SiteTaskQueue(site),
		ScheduleToStartTimeout: pickUp,
		StartToCloseTimeout:    t.startToClose,
		HeartbeatTimeout:       t.heartbeat,
		Summary:                summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 5 * time.Second,
			MaximumAttempts: attempts,
		},
	})
}

// heartbeatFor gives long waits a heartbeat timeout (a dead worker is
// noticed within it); short calls need none.
func heartbeatFor(startToClose time.Duration) time.Duration {
	if startToClose > time.Minute {
		return 20 * time.Second
	}
	return 0
}
