package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/recipe"
)

// ReplicationWorkflowID is the ID of the supervisor of stream from → to.
func ReplicationWorkflowID(app, from, to string) string {
	return "replication-" + app + "-" + from + "-" + to
}

// Replication states reported by the status query.
const (
	ReplRunning      = "running"
	ReplLagging      = "lagging" // running, but lag exceeds the recipe's RPO SLA
	ReplPaused       = "paused"
	ReplRestarting   = "restarting"    // the stream failed transiently; backing off
	ReplNeedsReclone = "needs-reclone" // the binlog to resume from is gone
	ReplFailed       = "failed"        // a non-retryable error; fix, then resume
	ReplStopped      = "stopped"
)

// Update and query names of ReplicationSupervisor.
const (
	ReplicationStatusQuery = replicate.SupervisorStatusQuery
	ReplicationPause       = "pause"
	ReplicationResume      = "resume"
	ReplicationStop        = replicate.SupervisorStopUpdate
)

// ReplicationInput starts a supervisor. Carry is filled by the workflow
// itself across continue-as-new; leave it empty.
type ReplicationInput struct {
	Recipe        recipe.Recipe `json:"recipe"`
	From          string        `json:"from"`
	To            string        `json:"to"`
	StartPosition string        `json:"start_position,omitempty"`
	// MaxRun bounds one StreamBinlog activity run (default 1h).
	MaxRun recipe.Duration    `json:"max_run,omitempty"`
	Carry  *ReplicationStatus `json:"carry,omitempty"`
}

// ReplicationStatus answers the status query and is the workflow's result.
type ReplicationStatus struct {
	Stream   string             `json:"stream"`
	State    string             `json:"state"`
	Progress replicate.Progress `json:"progress"`
	// RPOSLA is the lag above which the state is "lagging".
	RPOSLA    recipe.Duration `json:"rpo_sla"`
	Restarts  int             `json:"restarts"`
	LastError string          `json:"last_error,omitempty"`
	ErrorType string          `json:"error_type,omitempty"`
	Paused    bool            `json:"paused"`
	Since     time.Time       `json:"since"` // when State last changed
	Runs      int             `json:"runs"`  // StreamBinlog runs started
}

// ReplicationSupervisor keeps one stream running forever: it runs
// StreamBinlog at the target site, restarts it after transient failures with
// backoff, stops in a visible needs-reclone or failed state when a retry
// cannot help, takes pause / resume / stop updates, raises "lagging" when the
// lag exceeds the recipe's RPO SLA, and continues-as-new when the history
// grows, after stopping the stream cleanly.
func ReplicationSupervisor(ctx workflow.Context, in ReplicationInput) (ReplicationStatus, error) {
	logger := workflow.GetLogger(ctx)
	r, err := validRecipe(in.Recipe)
	if err != nil {
		return ReplicationStatus{}, err
	}
	src, okS := r.Site(in.From)
	dst, okD := r.Site(in.To)
	if !okS || !okD || in.From == in.To {
		return ReplicationStatus{}, invalidInput(
			fmt.Sprintf("from/to: want two different sites of the recipe, got %q → %q", in.From, in.To))
	}
	maxRun := in.MaxRun.D()
	if maxRun <= 0 {
		maxRun = replicate.DefaultMaxRun
	}
	st := ReplicationStatus{Stream: replicate.StreamName(r.App, in.From, in.To), State: ReplRunning,
		RPOSLA: r.Policy.SLA.RPO, Since: workflow.Now(ctx)}
	if in.Carry != nil {
		st = *in.Carry
	}
	tagRun(ctx, r.App, in.To, "replication", st.State)
	setState := func(s string) {
		if st.State != s {
			logger.Info("replication state", "stream", st.Stream, "from", st.State, "to", s, "last_error", st.LastError)
			st.State, st.Since = s, workflow.Now(ctx)
			tagRun(ctx, "", "", "", s)
		}
	}

	stopRequested := false
	wake := workflow.NewBufferedChannel(ctx, 1) // nudges the main loop after an update; one pending nudge is enough
	if err := workflow.SetQueryHandler(ctx, ReplicationStatusQuery, func() (ReplicationStatus, error) { return st, nil }); err != nil {
		return st, err
	}
	notStopped := func() error {
		if stopRequested {
			return errors.New("the stream is stopping or stopped")
		}
		return nil
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, ReplicationPause, func(ctx workflow.Context) (ReplicationStatus, error) {
		st.Paused = true
		_ = wake.SendAsync(true)
		return st, nil
	}, workflow.UpdateHandlerOptions{Validator: func() error {
		if err := notStopped(); err != nil {
			return err
		}
		if st.Paused {
			return errors.New("already paused")
		}
		return nil
	}}); err != nil {
		return st, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, ReplicationResume, func(ctx workflow.Context) (ReplicationStatus, error) {
		st.Paused = false
		// Resuming is the operator's word that the cause was dealt with,
		// also when the failed stream had been paused meanwhile.
		if st.State == ReplFailed || st.State == ReplNeedsReclone || st.ErrorType != "" {
			st.LastError, st.ErrorType = "", ""
		}
		_ = wake.SendAsync(true)
		return st, nil
	}, workflow.UpdateHandlerOptions{Validator: func() error {
		if err := notStopped(); err != nil {
			return err
		}
		if !st.Paused && st.State != ReplFailed && st.State != ReplNeedsReclone {
			return fmt.Errorf("nothing to resume: the stream is %s", st.State)
		}
		return nil
	}}); err != nil {
		return st, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, ReplicationStop, func(ctx workflow.Context) (ReplicationStatus, error) {
		stopRequested = true
		_ = wake.SendAsync(true)
		return st, nil
	}, workflow.UpdateHandlerOptions{Validator: notStopped}); err != nil {
		return st, err
	}
	progress := workflow.GetSignalChannel(ctx, replicate.ProgressSignal)
	applyProgress := func(p replicate.Progress) {
		if p.At.Before(st.Progress.At) {
			return // an older signal arriving late
		}
		st.Progress = p
		if st.State == ReplRunning || st.State == ReplLagging || st.State == ReplRestarting {
			if st.RPOSLA > 0 && p.LagSeconds > st.RPOSLA.D().Seconds() {
				setState(ReplLagging)
			} else {
				setState(ReplRunning)
			}
		}
	}

	var ra *replicate.Activities
	backoff := time.Second
	for {
		if stopRequested {
			setState(ReplStopped)
			break
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			break
		}
		if st.Paused || st.State == ReplFailed || st.State == ReplNeedsReclone {
			if st.Paused {
				setState(ReplPaused)
			}
			// Wait for resume or stop, keeping progress signals drained.
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
			sel.AddReceive(progress, func(c workflow.ReceiveChannel, _ bool) {
				var p replicate.Progress
				c.Receive(ctx, &p)
				applyProgress(p) // ignores older reports; leaves paused, failed and needs-reclone as they are
			})
			sel.Select(ctx)
			if !st.Paused && (st.State == ReplPaused || st.State == ReplFailed || st.State == ReplNeedsReclone) && !stopRequested {
				setState(ReplRunning)
			}
			continue
		}

		actCtx, cancelAct := workflow.WithCancel(ctx)
		actCtx = workflow.WithActivityOptions(actCtx, workflow.ActivityOptions{
			TaskQueue:           SiteTaskQueue(dst.Name),
			StartToCloseTimeout: maxRun + 10*time.Minute,
			// A dead worker is noticed within this; the stream restarts elsewhere.
			HeartbeatTimeout: 10 * time.Second,
			// Retries are this loop's job: each restart is counted and visible.
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
			WaitForCancellation: true, // the stream finishes its transaction first
			Summary:             fmt.Sprintf("stream binlog %s → %s", src.Name, dst.Name),
		})
		st.Runs++
		runStartPos := st.Progress.Position
		fut := workflow.ExecuteActivity(actCtx, ra.StreamBinlog, replicate.StreamInput{
			App: r.App, Source: src, Target: dst, StartPosition: in.StartPosition, MaxRun: in.MaxRun,
			LagAlarm: st.RPOSLA,
		})
		if st.State != ReplLagging {
			setState(ReplRunning)
		}
		var actErr error
		var res replicate.StreamResult
		done, cancelled := false, false
		for !done {
			sel := workflow.NewSelector(ctx)
			sel.AddFuture(fut, func(f workflow.Future) {
				actErr = f.Get(ctx, &res)
				done = true
			})
			sel.AddReceive(progress, func(c workflow.ReceiveChannel, _ bool) {
				var p replicate.Progress
				c.Receive(ctx, &p)
				applyProgress(p)
			})
			sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
			sel.Select(ctx)
			if !done && !cancelled && (stopRequested || st.Paused || workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
				cancelAct() // the activity finishes its transaction and returns
				cancelled = true
			}
		}
		cancelAct()
		if actErr == nil {
			applyProgress(res.Progress)
			backoff = time.Second
			continue
		}
		var canceled *temporal.CanceledError
		if cancelled && errors.As(actErr, &canceled) {
			continue
		}
		st.LastError = actErr.Error()
		var appErr *temporal.ApplicationError
		if errors.As(actErr, &appErr) && appErr.NonRetryable() {
			st.ErrorType = appErr.Type()
			if appErr.Type() == "BinlogPurged" {
				setState(ReplNeedsReclone)
			} else {
				setState(ReplFailed)
			}
			logger.Error("replication stopped: a retry cannot fix this", "stream", st.Stream, "type", st.ErrorType, "error", st.LastError)
			continue
		}
		st.Restarts++
		if st.Progress.Position != runStartPos {
			backoff = time.Second // the run made progress: a fresh failure, not a persistent one
		}
		setState(ReplRestarting)
		logger.Warn("stream failed; restarting after backoff", "stream", st.Stream, "error", st.LastError,
			"restarts", st.Restarts, "backoff", backoff)
		// Back off, but stay responsive to stop and pause.
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, backoff)
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		sel.Select(ctx)
		cancelTimer()
		backoff = min(backoff*2, time.Minute)
	}

	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return st, err
	}
	if st.State == ReplStopped {
		return st, nil
	}
	// Drain progress signals so none is lost across continue-as-new.
	for {
		var p replicate.Progress
		if !progress.ReceiveAsync(&p) {
			break
		}
		applyProgress(p)
	}
	next := in
	next.Carry = &st
	return st, workflow.NewContinueAsNewError(ctx, ReplicationSupervisor, next)
}
