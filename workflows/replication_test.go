package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
)

// The mocked StreamBinlog runs use After, which waits on the workflow clock:
// the test environment skips time while they "run", so an hour-long run
// costs nothing. A run blocking on ctx.Done() would not: the environment
// only skips time when no activity is running, and its cancellation does
// not wait for the activity anyway.

// replT0 is the wall time the mocked streams' progress reports are stamped
// from.
var replT0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

// newReplEnv returns an environment for ReplicationSupervisor that cannot
// hang: the workflow times out after a day of workflow time (a loop that
// keeps starting runs ends there) and the test fails after 10s of wall time
// without progress.
func newReplEnv() (*testsuite.TestWorkflowEnvironment, *replicate.Activities) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(10 * time.Second)
	env.SetWorkflowRunTimeout(24 * time.Hour)
	var ra *replicate.Activities
	env.RegisterActivity(ra)
	return env, ra
}

func replInput() ReplicationInput {
	return ReplicationInput{Recipe: testRecipe(), From: "east", To: "west"}
}

// streamForever mocks every further run as a healthy stream that reaches
// MaxRun after an hour of workflow time; pause, stop and continue-as-new
// cancel it before.
func streamForever(env *testsuite.TestWorkflowEnvironment, ra *replicate.Activities) {
	env.OnActivity(ra.StreamBinlog, mock.Anything, mock.Anything).After(time.Hour).
		Return(replicate.StreamResult{Reason: "max-run"}, nil)
}

// failUnexpectedRuns fails every run beyond those the test mocked with a
// non-retryable error, so that a surplus run parks the supervisor in
// "failed" (and shows up in Runs) instead of looping. Register it last.
func failUnexpectedRuns(env *testsuite.TestWorkflowEnvironment, ra *replicate.Activities) {
	env.OnActivity(ra.StreamBinlog, mock.Anything, mock.Anything).
		Return(replicate.StreamResult{}, temporal.NewNonRetryableApplicationError("unexpected StreamBinlog run", "UnexpectedRun", nil)).Maybe()
}

func progressAt(at time.Duration, pos string, lag float64) replicate.Progress {
	return replicate.Progress{Stats: replication.Stats{Position: pos, LagSeconds: lag}, At: replT0.Add(at)}
}

func signalAt(env *testsuite.TestWorkflowEnvironment, d time.Duration, p replicate.Progress) {
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(replicate.ProgressSignal, p) }, d)
}

// statusAt is the answer of the status query at one workflow time.
type statusAt struct {
	st    ReplicationStatus
	err   error
	taken bool
}

func queryAt(env *testsuite.TestWorkflowEnvironment, d time.Duration) *statusAt {
	s := &statusAt{}
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(ReplicationStatusQuery)
		if err == nil {
			err = v.Get(&s.st)
		}
		s.err, s.taken = err, true
	}, d)
	return s
}

func (s *statusAt) get(t *testing.T) ReplicationStatus {
	t.Helper()
	require.True(t, s.taken, "the status query never ran")
	require.NoError(t, s.err)
	return s.st
}

// outcome is what became of one update.
type outcome struct {
	name      string
	accepted  bool
	rejected  error
	completed bool
	result    ReplicationStatus
	err       error
}

// updatesAt sends the named updates, in order, at workflow time d.
func updatesAt(env *testsuite.TestWorkflowEnvironment, d time.Duration, names ...string) []*outcome {
	var out []*outcome
	for _, n := range names {
		out = append(out, &outcome{name: n})
	}
	env.RegisterDelayedCallback(func() {
		for _, o := range out {
			env.UpdateWorkflow(o.name, "", &testsuite.TestUpdateCallback{
				OnAccept: func() { o.accepted = true },
				OnReject: func(err error) { o.rejected = err },
				OnComplete: func(res any, err error) {
					o.completed, o.err = true, err
					if st, ok := res.(ReplicationStatus); ok {
						o.result = st
					}
				},
			})
		}
	}, d)
	return out
}

func updateAt(env *testsuite.TestWorkflowEnvironment, d time.Duration, name string) *outcome {
	return updatesAt(env, d, name)[0]
}

func (o *outcome) requireAccepted(t *testing.T) ReplicationStatus {
	t.Helper()
	require.NoError(t, o.rejected, "update %s", o.name)
	require.True(t, o.accepted, "update %s was not accepted", o.name)
	require.True(t, o.completed, "update %s did not complete", o.name)
	require.NoError(t, o.err, "update %s", o.name)
	return o.result
}

func (o *outcome) requireRejected(t *testing.T, msg string) {
	t.Helper()
	require.False(t, o.accepted, "update %s was accepted", o.name)
	require.Error(t, o.rejected, "update %s was not rejected", o.name)
	require.Contains(t, o.rejected.Error(), msg, "update %s", o.name)
}

// startedRun is one StreamBinlog run as the worker saw it.
type startedRun struct {
	taskQueue string
	heartbeat time.Duration
	in        replicate.StreamInput
	err       error
}

// runRecorder records the StreamBinlog runs the supervisor starts; the
// listener runs on the activity's goroutine.
type runRecorder struct {
	mu   sync.Mutex
	runs []startedRun
}

func recordRuns(env *testsuite.TestWorkflowEnvironment) *runRecorder {
	r := &runRecorder{}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		var in replicate.StreamInput
		err := args.Get(&in)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.runs = append(r.runs, startedRun{taskQueue: info.TaskQueue, heartbeat: info.HeartbeatTimeout, in: in, err: err})
	})
	return r
}

func (r *runRecorder) started() []startedRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]startedRun(nil), r.runs...)
}

// countAt records how many runs had started by workflow time d.
func (r *runRecorder) countAt(env *testsuite.TestWorkflowEnvironment, d time.Duration) *int {
	n := new(int)
	env.RegisterDelayedCallback(func() { *n = len(r.started()) }, d)
	return n
}

func stoppedResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) ReplicationStatus {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res ReplicationStatus
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, ReplStopped, res.State)
	return res
}

// A transient failure is restarted after a backoff and counted; a purged
// binlog stops the stream in needs-reclone until an operator acts.
func TestReplicationTransientFailureThenBinlogPurged(t *testing.T) {
	env, ra := newReplEnv()
	env.OnActivity(ra.StreamBinlog, mock.Anything, mock.Anything).After(10*time.Second).
		Return(replicate.StreamResult{}, errors.New("read binlog: connection reset by peer")).Once()
	env.OnActivity(ra.StreamBinlog, mock.Anything, mock.Anything).
		Return(replicate.StreamResult{}, temporal.NewNonRetryableApplicationError("binlog 1-1-42 purged on east", "BinlogPurged", nil)).Once()
	failUnexpectedRuns(env, ra)

	streaming := queryAt(env, 5*time.Second)
	backingOff := queryAt(env, 10500*time.Millisecond) // run 1 failed at 10s; run 2 starts at 11s
	purged := queryAt(env, time.Minute)
	stop := updateAt(env, 2*time.Minute, ReplicationStop)

	env.ExecuteWorkflow(ReplicationSupervisor, replInput())
	res := stoppedResult(t, env)
	env.AssertExpectations(t)

	st := streaming.get(t)
	require.Equal(t, ReplRunning, st.State)
	require.Equal(t, "petclinic-east-west", st.Stream)
	require.Equal(t, recipe.Duration(30*time.Second), st.RPOSLA)
	require.Equal(t, 1, st.Runs)
	require.Zero(t, st.Restarts)

	st = backingOff.get(t)
	require.Equal(t, ReplRestarting, st.State)
	require.Equal(t, 1, st.Restarts)
	require.Equal(t, 1, st.Runs)
	require.Contains(t, st.LastError, "connection reset by peer")
	require.Empty(t, st.ErrorType, "a retryable error has no error type")

	st = purged.get(t)
	require.Equal(t, ReplNeedsReclone, st.State)
	require.Equal(t, "BinlogPurged", st.ErrorType)
	require.Contains(t, st.LastError, "binlog 1-1-42 purged on east")
	require.Equal(t, 2, st.Runs)
	require.Equal(t, 1, st.Restarts, "a non-retryable error is not a restart")

	stop.requireAccepted(t)
	require.Equal(t, 2, res.Runs)
	require.Equal(t, 1, res.Restarts)
	require.Equal(t, "BinlogPurged", res.ErrorType, "stopping keeps the last failure visible")
}

// A non-retryable error parks the stream in failed; resume clears the error
// and starts a new run. Pause while failed is accepted and turns the state
// into paused (the error stays visible) without starting a run; resume then
// starts one.
func TestReplicationFailedResumeAndPause(t *testing.T) {
	env, ra := newReplEnv()
	runs := recordRuns(env)
	schema := temporal.NewNonRetryableApplicationError("apply to west: table petclinic.owners: schema mismatch", "SchemaMismatch", nil)
	env.OnActivity(ra.StreamBinlog, mock.Anything, mock.Anything).After(10*time.Second).
		Return(replicate.StreamResult{}, schema).Twice()
	streamForever(env, ra)

	failed := queryAt(env, time.Minute)
	failedRuns := runs.countAt(env, time.Minute)
	resume := updateAt(env, 2*time.Minute, ReplicationResume)
	resumed := queryAt(env, 2*time.Minute+5*time.Second) // run 2 fails at 2m10s
	failedAgain := queryAt(env, 3*time.Minute)
	pause := updateAt(env, 4*time.Minute, ReplicationPause)
	paused := queryAt(env, 5*time.Minute)
	pausedRuns := runs.countAt(env, 5*time.Minute)
	resume2 := updateAt(env, 6*time.Minute, ReplicationResume)
	running := queryAt(env, 7*time.Minute)
	stop := updateAt(env, 8*time.Minute, ReplicationStop)

	env.ExecuteWorkflow(ReplicationSupervisor, replInput())
	res := stoppedResult(t, env)
	env.AssertExpectations(t)

	st := failed.get(t)
	require.Equal(t, ReplFailed, st.State)
	require.Equal(t, "SchemaMismatch", st.ErrorType)
	require.Contains(t, st.LastError, "schema mismatch")
	require.Equal(t, 1, st.Runs)
	require.Zero(t, st.Restarts, "a failed stream is not restarted")
	require.Equal(t, 1, *failedRuns)

	resume.requireAccepted(t)
	st = resumed.get(t)
	require.Equal(t, ReplRunning, st.State)
	require.Equal(t, 2, st.Runs)
	require.Empty(t, st.ErrorType, "resume clears the failure")
	require.Empty(t, st.LastError)

	st = failedAgain.get(t)
	require.Equal(t, ReplFailed, st.State)
	require.Equal(t, 2, st.Runs)

	require.True(t, pause.requireAccepted(t).Paused)
	st = paused.get(t)
	require.Equal(t, ReplPaused, st.State, "pause replaces failed by paused")
	require.True(t, st.Paused)
	require.Equal(t, "SchemaMismatch", st.ErrorType, "the failure stays visible while paused")
	require.Contains(t, st.LastError, "schema mismatch")
	require.Equal(t, 2, st.Runs, "pause starts no run")
	require.Equal(t, 2, *pausedRuns)

	resume2.requireAccepted(t)
	st = running.get(t)
	require.Equal(t, ReplRunning, st.State)
	require.False(t, st.Paused)
	require.Equal(t, 3, st.Runs)

	stop.requireAccepted(t)
	require.Equal(t, 3, res.Runs)
	require.Len(t, runs.started(), 3)
	env.AssertActivityNumberOfCalls(t, "StreamBinlog", 3)
}

func TestReplicationUpdateValidators(t *testing.T) {
	env, ra := newReplEnv()
	runs := recordRuns(env)
	cancelled := 0
	env.SetOnActivityCanceledListener(func(*activity.Info) { cancelled++ })
	streamForever(env, ra)

	resumeRunning := updateAt(env, time.Minute, ReplicationResume)
	pause := updateAt(env, 2*time.Minute, ReplicationPause)
	pauseAgain := updateAt(env, 3*time.Minute, ReplicationPause)
	paused := queryAt(env, 3*time.Minute+30*time.Second)
	resume := updateAt(env, 4*time.Minute, ReplicationResume)
	running := queryAt(env, 4*time.Minute+30*time.Second)
	// The stop is accepted and cancels the run; the updates that follow
	// it, before the run has even ended, are rejected.
	afterStop := updatesAt(env, 5*time.Minute, ReplicationStop, ReplicationPause, ReplicationResume, ReplicationStop)

	env.ExecuteWorkflow(ReplicationSupervisor, replInput())
	res := stoppedResult(t, env)
	env.AssertExpectations(t)

	resumeRunning.requireRejected(t, "nothing to resume: the stream is running")
	require.True(t, pause.requireAccepted(t).Paused)
	pauseAgain.requireRejected(t, "already paused")

	st := paused.get(t)
	require.Equal(t, ReplPaused, st.State)
	require.True(t, st.Paused)
	require.Equal(t, 1, st.Runs)

	resume.requireAccepted(t)
	st = running.get(t)
	require.Equal(t, ReplRunning, st.State)
	require.False(t, st.Paused)
	require.Equal(t, 2, st.Runs)

	afterStop[0].requireAccepted(t)
	for _, o := range afterStop[1:] {
		o.requireRejected(t, "the stream is stopping or stopped")
	}
	require.Equal(t, 2, res.Runs)
	require.Len(t, runs.started(), 2)
	require.Equal(t, 2, cancelled, "pause and stop each cancel the running stream")
}

// Lag above the recipe's RPO SLA (30s) is "lagging", at or below it
// "running"; a progress report older than the last one is ignored.
func TestReplicationLagAgainstRPO(t *testing.T) {
	env, ra := newReplEnv()
	streamForever(env, ra)

	signalAt(env, 1*time.Minute, progressAt(1*time.Minute, "1-1-10", 45))
	lagging := queryAt(env, 1*time.Minute+30*time.Second)
	signalAt(env, 2*time.Minute, progressAt(2*time.Minute, "1-1-20", 5))
	caughtUp := queryAt(env, 2*time.Minute+30*time.Second)
	signalAt(env, 3*time.Minute, progressAt(90*time.Second, "1-1-15", 300)) // late and older
	late := queryAt(env, 3*time.Minute+30*time.Second)
	signalAt(env, 4*time.Minute, progressAt(4*time.Minute, "1-1-30", 30))
	atSLA := queryAt(env, 4*time.Minute+30*time.Second)
	stop := updateAt(env, 5*time.Minute, ReplicationStop)

	env.ExecuteWorkflow(ReplicationSupervisor, replInput())
	res := stoppedResult(t, env)
	stop.requireAccepted(t)

	st := lagging.get(t)
	require.Equal(t, ReplLagging, st.State)
	require.Equal(t, 45.0, st.Progress.LagSeconds)
	require.Equal(t, "1-1-10", st.Progress.Position)

	st = caughtUp.get(t)
	require.Equal(t, ReplRunning, st.State)
	require.Equal(t, "1-1-20", st.Progress.Position)

	st = late.get(t)
	require.Equal(t, ReplRunning, st.State, "an older report must not raise lagging")
	require.Equal(t, "1-1-20", st.Progress.Position, "an older report must not replace a newer one")
	require.Equal(t, 5.0, st.Progress.LagSeconds)
	require.True(t, st.Progress.At.Equal(replT0.Add(2*time.Minute)), "%v", st.Progress.At)

	st = atSLA.get(t)
	require.Equal(t, ReplRunning, st.State, "lag equal to the SLA is within it")

	require.Equal(t, 1, res.Runs)
	require.Equal(t, "1-1-30", res.Progress.Position)
}

// While paused, progress reports are still taken, but never change the
// state, and an older one does not replace a newer one.
func TestReplicationProgressWhilePaused(t *testing.T) {
	env, ra := newReplEnv()
	streamForever(env, ra)

	pause := updateAt(env, time.Minute, ReplicationPause)
	signalAt(env, 2*time.Minute, progressAt(2*time.Minute, "1-1-40", 120)) // the stream's last report
	signalAt(env, 3*time.Minute, progressAt(90*time.Second, "1-1-30", 0))  // a late, older one
	paused := queryAt(env, 4*time.Minute)
	stop := updateAt(env, 5*time.Minute, ReplicationStop)

	env.ExecuteWorkflow(ReplicationSupervisor, replInput())
	stoppedResult(t, env)
	pause.requireAccepted(t)
	stop.requireAccepted(t)

	st := paused.get(t)
	require.Equal(t, ReplPaused, st.State, "lag does not turn a paused stream into lagging")
	require.Equal(t, "1-1-40", st.Progress.Position, "an older report must not replace a newer one")
	require.Equal(t, 120.0, st.Progress.LagSeconds)
}

// The stream runs at the target site, with the recipe's stream and the RPO
// SLA as its lag alarm.
func TestReplicationRunsStreamAtTarget(t *testing.T) {
	env, ra := newReplEnv()
	runs := recordRuns(env)
	r := testRecipe()
	east, _ := r.Site("east")
	west, _ := r.Site("west")
	env.OnActivity(ra.StreamBinlog, mock.Anything, mock.MatchedBy(func(in replicate.StreamInput) bool {
		return in.App == "petclinic" && in.Source.Name == "east" && in.Target.Name == "west"
	})).After(time.Hour).Return(replicate.StreamResult{Reason: "max-run"}, nil).Once()
	failUnexpectedRuns(env, ra)
	stop := updateAt(env, time.Minute, ReplicationStop)

	in := replInput()
	in.StartPosition = "1-1-100"
	in.MaxRun = recipe.Duration(15 * time.Minute)
	env.ExecuteWorkflow(ReplicationSupervisor, in)
	res := stoppedResult(t, env)
	stop.requireAccepted(t)
	env.AssertExpectations(t)

	require.Equal(t, 1, res.Runs)
	started := runs.started()
	require.Len(t, started, 1)
	got := started[0]
	require.NoError(t, got.err)
	require.Equal(t, "drover-site-west", got.taskQueue)
	require.Equal(t, 10*time.Second, got.heartbeat)
	require.Equal(t, replicate.StreamInput{
		App: "petclinic", Source: east, Target: west,
		StartPosition: "1-1-100", MaxRun: recipe.Duration(15 * time.Minute),
		LagAlarm: recipe.Duration(30 * time.Second),
	}, got.in)
}

// Restarts back off 1s, 2s, 4s…; a run that ends cleanly resets the backoff.
func TestReplicationRestartBackoff(t *testing.T) {
	env, ra := newReplEnv()
	var timers []time.Duration
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { timers = append(timers, d) })
	reset := errors.New("read binlog: connection reset by peer")
	env.OnActivity(ra.StreamBinlog, mock.Anything, mock.Anything).Return(replicate.StreamResult{}, reset).Times(3)
	env.OnActivity(ra.StreamBinlog, mock.Anything, mock.Anything).After(time.Hour).
		Return(replicate.StreamResult{Reason: "max-run"}, nil).Once()
	env.OnActivity(ra.StreamBinlog, mock.Anything, mock.Anything).Return(replicate.StreamResult{}, reset).Once()
	streamForever(env, ra)

	// Runs: fail at 0s, 1s, 3s; run 4 from 7s to 1h0m7s; run 5 fails; run
	// 6 starts at 1h0m8s.
	st := queryAt(env, time.Hour+time.Minute)
	stop := updateAt(env, time.Hour+2*time.Minute, ReplicationStop)

	env.ExecuteWorkflow(ReplicationSupervisor, replInput())
	res := stoppedResult(t, env)
	stop.requireAccepted(t)
	env.AssertExpectations(t)

	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, time.Second}, timers)
	s := st.get(t)
	require.Equal(t, ReplRunning, s.State)
	require.Equal(t, 6, s.Runs)
	require.Equal(t, 4, s.Restarts)
	require.Equal(t, 6, res.Runs)
}

func TestReplicationRejectsInvalidInput(t *testing.T) {
	badPort := testRecipe()
	badPort.Sites[1].DB.Port = 70000
	for name, tc := range map[string]struct {
		in   ReplicationInput
		want string
	}{
		"same site":      {ReplicationInput{Recipe: testRecipe(), From: "east", To: "east"}, `got "east" → "east"`},
		"unknown source": {ReplicationInput{Recipe: testRecipe(), From: "north", To: "west"}, `got "north" → "west"`},
		"unknown target": {ReplicationInput{Recipe: testRecipe(), From: "east", To: "north"}, `got "east" → "north"`},
		"invalid recipe": {ReplicationInput{Recipe: badPort, From: "east", To: "west"}, "invalid recipe: sites[1].db.port: must be 1-65535"},
	} {
		t.Run(name, func(t *testing.T) {
			env, ra := newReplEnv()
			failUnexpectedRuns(env, ra)
			env.ExecuteWorkflow(ReplicationSupervisor, tc.in)
			require.True(t, env.IsWorkflowCompleted())
			err := env.GetWorkflowError()
			require.Error(t, err)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "%v", err)
			require.True(t, appErr.NonRetryable())
			require.Equal(t, "InvalidInput", appErr.Type())
			require.Contains(t, appErr.Error(), tc.want)
			env.AssertActivityNumberOfCalls(t, "StreamBinlog", 0)
		})
	}
}

// When the server suggests continue-as-new, the supervisor cancels the
// running stream and continues as new with the same input and its status
// as Carry.
func TestReplicationContinuesAsNew(t *testing.T) {
	env, ra := newReplEnv()
	cancelled := 0
	env.SetOnActivityCanceledListener(func(*activity.Info) { cancelled++ })
	streamForever(env, ra)
	env.RegisterDelayedCallback(func() {
		env.SetContinueAsNewSuggested(true)
		env.SignalWorkflow(replicate.ProgressSignal, progressAt(5*time.Minute, "1-1-50", 45))
	}, 5*time.Minute)

	in := replInput()
	in.StartPosition = "1-1-1"
	env.ExecuteWorkflow(ReplicationSupervisor, in)
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can), "want continue-as-new, got %v", err)
	require.Equal(t, "ReplicationSupervisor", can.WorkflowType.Name)
	require.Equal(t, 1, cancelled, "the stream is cancelled before continuing as new")

	var next ReplicationInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, "east", next.From)
	require.Equal(t, "west", next.To)
	require.Equal(t, "1-1-1", next.StartPosition)
	require.Equal(t, "petclinic", next.Recipe.App)
	require.NotNil(t, next.Carry)
	c := *next.Carry
	require.Equal(t, "petclinic-east-west", c.Stream)
	require.Equal(t, ReplLagging, c.State)
	require.Equal(t, 1, c.Runs)
	require.Equal(t, "1-1-50", c.Progress.Position)
	require.Equal(t, recipe.Duration(30*time.Second), c.RPOSLA)
}

// A continued run starts from its Carry: counters go on, the last progress
// is kept and older reports stay ignored.
func TestReplicationResumesFromCarry(t *testing.T) {
	env, ra := newReplEnv()
	streamForever(env, ra)
	carry := ReplicationStatus{Stream: "petclinic-east-west", State: ReplLagging, RPOSLA: recipe.Duration(30 * time.Second),
		Progress: progressAt(5*time.Minute, "1-1-50", 45), Restarts: 2, Runs: 4, LastError: "read binlog: connection reset by peer",
		Since: replT0}
	signalAt(env, time.Minute, progressAt(4*time.Minute, "1-1-45", 0)) // older than the carried report
	st := queryAt(env, 2*time.Minute)
	stop := updateAt(env, 3*time.Minute, ReplicationStop)

	in := replInput()
	in.Carry = &carry
	env.ExecuteWorkflow(ReplicationSupervisor, in)
	res := stoppedResult(t, env)
	stop.requireAccepted(t)

	s := st.get(t)
	require.Equal(t, ReplLagging, s.State)
	require.Equal(t, 5, s.Runs)
	require.Equal(t, 2, s.Restarts)
	require.Equal(t, "1-1-50", s.Progress.Position)
	require.Equal(t, carry.LastError, s.LastError)
	require.Equal(t, 5, res.Runs)
}
