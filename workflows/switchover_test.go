package workflows

import (
	"context"
	"errors"
	"strings"
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

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/recipe"
)

// world is a fake of two sites for runbook unit tests: read_only flags, the
// DNS record, the streams that run. The activity fakes change it the way the
// real activities change the real sites, so tests assert on end states
// (who is writable, where DNS points) rather than on call lists. The real
// activities are tested against real servers in their packages and in
// tests/.
type world struct {
	mu        sync.Mutex
	readOnly  map[string]bool
	record    []string
	streams   map[string]bool // supervisor workflow IDs running
	failStep  string          // activity name that fails (non-retryable)
	stopped   map[string]bool // sites stopped by the provider
	dnsCalls  int
	calls     []string
	unwritten bool                  // the app reports not writable
	errant    *dbadmin.ErrantResult // what DBErrant finds (default: nothing)
	stopTakes time.Duration         // how long StopSite takes (workflow time)
}

var (
	anyCtx                     = mock.Anything
	anyArg                     = mock.Anything
	activityOptionsSkipInvalid = activity.RegisterOptions{SkipInvalidStructFunctions: true}
)

func newWorld() *world {
	return &world{readOnly: map[string]bool{"east": false, "west": true}, record: []string{"127.0.0.2"},
		streams: map[string]bool{"replication-petclinic-east-west": true}, stopped: map[string]bool{}}
}

func (w *world) enter(name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, name)
	if w.failStep == name {
		return temporal.NewNonRetryableApplicationError(name+" failed (test)", "Test", nil)
	}
	return nil
}

func (w *world) writable() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, s := range []string{"east", "west"} {
		if !w.readOnly[s] && !w.stopped[s] {
			out = append(out, s)
		}
	}
	return out
}

// register installs the fakes as the activities' implementations.
func (w *world) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivity(&dbadmin.Activities{})
	env.RegisterActivity(&dns.Activities{})
	env.RegisterActivity(&probe.Activities{})
	env.RegisterActivity(&replicate.Control{})
	env.RegisterActivityWithOptions(&local.Provider{}, activityOptionsSkipInvalid)
	env.OnActivity("DBState", anyCtx, anyArg).Return(func(_ context.Context, in dbadmin.StateInput) (dbadmin.StateResult, error) {
		if err := w.enter("DBState"); err != nil {
			return dbadmin.StateResult{}, err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		res := dbadmin.StateResult{Site: in.Site.Name, ReadOnly: w.readOnly[in.Site.Name], GTIDBinlogPos: "1-1-100"}
		if in.Site.Name == "west" {
			res.Checkpoints = []dbadmin.Checkpoint{{Stream: "petclinic-east-west", GTID: "1-1-97", SourceTS: time.Unix(1000, 0).UTC()}}
		}
		return res, nil
	})
	env.OnActivity("DBFence", anyCtx, anyArg).Return(func(_ context.Context, in dbadmin.FenceInput) (dbadmin.FenceResult, error) {
		if err := w.enter("DBFence " + in.Site.Name); err != nil {
			return dbadmin.FenceResult{}, err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.readOnly[in.Site.Name] = true
		return dbadmin.FenceResult{Site: in.Site.Name, FinalGTID: "1-1-100"}, nil
	})
	env.OnActivity("DBPromote", anyCtx, anyArg).Return(func(_ context.Context, in dbadmin.PromoteInput) (dbadmin.PromoteResult, error) {
		if err := w.enter("DBPromote " + in.Site.Name); err != nil {
			return dbadmin.PromoteResult{}, err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.readOnly[in.Site.Name] = false
		return dbadmin.PromoteResult{Site: in.Site.Name, Changed: true, GTIDBinlogPos: "1-1-100"}, nil
	})
	env.OnActivity("DBWaitApplied", anyCtx, anyArg).Return(func(_ context.Context, in dbadmin.WaitAppliedInput) (dbadmin.WaitAppliedResult, error) {
		return dbadmin.WaitAppliedResult{Site: in.Target.Name, Want: in.Want, Applied: in.Want}, w.enter("DBWaitApplied")
	})
	env.OnActivity("DBErrant", anyCtx, anyArg).Return(func(_ context.Context, in dbadmin.ErrantInput) (dbadmin.ErrantResult, error) {
		if err := w.enter("DBErrant"); err != nil {
			return dbadmin.ErrantResult{}, err
		}
		if w.stopped[in.Old.Name] {
			return dbadmin.ErrantResult{}, errors.New("old primary unreachable")
		}
		if w.errant != nil {
			return *w.errant, nil
		}
		return dbadmin.ErrantResult{Old: in.Old.Name, New: in.New.Name}, nil
	})
	env.OnActivity("StreamState", anyCtx, anyArg).Return(func(_ context.Context, in replicate.StreamRef) (replicate.StreamState, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		st := replicate.StreamState{WorkflowID: in.WorkflowID, Running: w.streams[in.WorkflowID]}
		if st.Running {
			st.State = ReplRunning
			st.Progress.LagSeconds = 0.2
		}
		return st, nil
	})
	env.OnActivity("StreamStop", anyCtx, anyArg).Return(func(_ context.Context, in replicate.StreamRef) (replicate.StreamState, error) {
		if err := w.enter("StreamStop"); err != nil {
			return replicate.StreamState{}, err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.streams, in.WorkflowID)
		return replicate.StreamState{WorkflowID: in.WorkflowID, State: ReplStopped}, nil
	})
	env.OnActivity("DNSPoint", anyCtx, anyArg).Return(func(_ context.Context, in dns.PointInput) (dns.PointResult, error) {
		if err := w.enter("DNSPoint"); err != nil {
			return dns.PointResult{}, err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		prev := w.record
		w.record = in.Addrs
		w.dnsCalls++
		return dns.PointResult{Addrs: in.Addrs, Previous: prev, Changed: true}, nil
	})
	env.OnActivity("DNSRemove", anyCtx, anyArg).Return(func(_ context.Context, in dns.RemoveInput) (dns.RemoveResult, error) {
		if err := w.enter("DNSRemove"); err != nil {
			return dns.RemoveResult{}, err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		prev := w.record
		var rest []string
		for _, a := range w.record {
			if a != in.Addr {
				rest = append(rest, a)
			}
		}
		w.record = rest
		return dns.RemoveResult{Previous: prev, Addrs: rest, Changed: len(rest) != len(prev)}, nil
	})
	env.OnActivity("DNSAnswers", anyCtx, anyArg).Return(func(_ context.Context, in dns.AnswersInput) (dns.AnswersResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		conv := strings.Join(w.record, ",") == strings.Join(in.Want, ",")
		return dns.AnswersResult{Want: in.Want, Converged: conv, Answers: []dns.Answer{{Server: "127.0.0.1:5354"}}}, nil
	})
	env.OnActivity("ProbeHTTP", anyCtx, anyArg).Return(func(_ context.Context, in probe.HTTPInput) (probe.HTTPResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		wr := !w.unwritten
		return probe.HTTPResult{Site: in.Site, EndpointResult: probe.EndpointResult{URL: in.URL, Up: true, StatusCode: 200, Writable: &wr}}, nil
	})
	// Stopping a site takes stopTakes of workflow time, so a test can see
	// whether later steps wait for it.
	env.OnActivity("StopSite", anyCtx, anyArg).After(w.stopTakes).Return(func(_ context.Context, in local.SiteInput) (local.SiteState, error) {
		if err := w.enter("StopSite " + in.Site.Name); err != nil {
			return local.SiteState{}, err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.stopped[in.Site.Name] = true
		return local.SiteState{Site: in.Site.Name}, nil
	})
	env.OnActivity("StartSite", anyCtx, anyArg).Return(func(_ context.Context, in local.SiteInput) (local.SiteState, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.stopped, in.Site.Name)
		return local.SiteState{Site: in.Site.Name}, nil
	})
	// A supervisor started as a child runs (as far as StreamState can
	// tell) from the moment it starts; its mocked body does nothing.
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.streams[info.WorkflowExecution.ID] = true
	})
	env.OnWorkflow(ReplicationSupervisor, anyCtx, anyArg).Return(ReplicationStatus{State: ReplRunning}, nil)
}

func runbookEnv(t *testing.T, w *world) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(10 * time.Second)
	env.SetWorkflowRunTimeout(24 * time.Hour)
	w.register(env)
	return env
}

func runbookResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) RunbookReport {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var rep RunbookReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	return rep
}

func stepNames(rep RunbookReport) string {
	var out []string
	for _, s := range rep.Steps {
		out = append(out, s.Name+"="+s.Outcome)
	}
	return strings.Join(out, " ")
}

func TestSwitchoverMovesPrimaryAndReplicatesBack(t *testing.T) {
	w := newWorld()
	env := runbookEnv(t, w)
	env.ExecuteWorkflow(Switchover, RunbookInput{Recipe: testRecipe(), To: "west"})
	rep := runbookResult(t, env)
	require.Equal(t, OutcomeCompleted, rep.Outcome, rep.Error)
	require.Equal(t, []string{"west"}, w.writable())
	require.Equal(t, []string{"127.0.0.3"}, w.record)
	require.True(t, w.streams["replication-petclinic-west-east"], "reverse replication started")
	require.False(t, w.streams["replication-petclinic-east-west"], "forward stream stopped")
	require.Equal(t, "pre-checks=ok fence=ok catch-up=ok stop replication=ok promote=ok dns switch=ok dns verify=ok post-check=ok start replication=ok", stepNames(rep))
	require.True(t, rep.RPO.Exact)
	require.Zero(t, rep.RPO.LostTransactions)
	require.Equal(t, "1-1-100", rep.RPO.FinalGTID)
	require.False(t, rep.WritableAt.IsZero())
	require.GreaterOrEqual(t, rep.RTOSeconds, 0.0)
}

// Every failure before traffic moves puts things back: the old primary is
// writable again, the standby read-only, DNS unchanged, the stream running.
func TestSwitchoverCompensatesAFailureBeforeTrafficMoves(t *testing.T) {
	for _, fail := range []string{"DBPromote west", "DNSPoint", "StreamStop", "DBWaitApplied"} {
		t.Run(fail, func(t *testing.T) {
			w := newWorld()
			w.failStep = fail
			env := runbookEnv(t, w)
			env.ExecuteWorkflow(Switchover, RunbookInput{Recipe: testRecipe(), To: "west"})
			rep := runbookResult(t, env)
			require.Equal(t, OutcomeRolledBack, rep.Outcome, stepNames(rep))
			require.Contains(t, rep.Error, fail)
			require.Equal(t, []string{"east"}, w.writable(), "the old primary is the only writable site")
			require.Equal(t, []string{"127.0.0.2"}, w.record, "DNS unchanged")
			require.True(t, w.streams["replication-petclinic-east-west"], "the forward stream runs again")
			require.False(t, w.streams["replication-petclinic-west-east"])
			for _, s := range rep.Steps {
				require.NotEqual(t, StepOK, s.Outcome+"|"+s.Name, "fence must be compensated")
				if s.Name == "fence" {
					require.Equal(t, StepCompensated, s.Outcome)
				}
			}
		})
	}
}

func TestSwitchoverAbortsOnPrechecks(t *testing.T) {
	w := newWorld()
	delete(w.streams, "replication-petclinic-east-west")
	env := runbookEnv(t, w)
	env.ExecuteWorkflow(Switchover, RunbookInput{Recipe: testRecipe(), To: "west"})
	rep := runbookResult(t, env)
	require.Equal(t, OutcomeAborted, rep.Outcome)
	require.Contains(t, rep.Error, "replication east → west is not running")
	require.Equal(t, []string{"east"}, w.writable())
	require.NotContains(t, strings.Join(w.calls, ","), "DBFence")
}

func TestSwitchoverDryRunChangesNothing(t *testing.T) {
	w := newWorld()
	env := runbookEnv(t, w)
	env.ExecuteWorkflow(Switchover, RunbookInput{Recipe: testRecipe(), To: "west", DryRun: true})
	rep := runbookResult(t, env)
	require.Equal(t, OutcomeDryRun, rep.Outcome)
	require.NotEmpty(t, rep.Plan)
	require.Equal(t, []string{"east"}, w.writable())
	require.Equal(t, []string{"DBState", "DBState"}, w.calls)
}

func TestApprovalGate(t *testing.T) {
	cases := []struct {
		name     string
		decide   *ApprovalDecision
		outcome  string
		errorHas string
	}{
		{"approved", &ApprovalDecision{By: "alice", Approve: true}, OutcomeCompleted, ""},
		{"rejected", &ApprovalDecision{By: "alice", Approve: false, Comment: "not now"}, OutcomeAborted, "rejected by alice"},
		{"timed out", nil, OutcomeAborted, "no decision from alice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld()
			env := runbookEnv(t, w)
			var wrongErr error
			env.RegisterDelayedCallback(func() {
				env.UpdateWorkflow(RunbookApproveUpdate, "wrong", &testsuite.TestUpdateCallback{
					OnAccept: func() {}, OnReject: func(err error) { wrongErr = err }, OnComplete: func(any, error) {},
				}, ApprovalDecision{By: "mallory", Approve: true})
				if c.decide != nil {
					env.UpdateWorkflow(RunbookApproveUpdate, "right", &testsuite.TestUpdateCallback{
						OnAccept: func() {}, OnReject: func(err error) { t.Errorf("approval refused: %v", err) }, OnComplete: func(any, error) {},
					}, *c.decide)
				}
			}, time.Minute)
			env.ExecuteWorkflow(Switchover, RunbookInput{Recipe: testRecipe(), To: "west", ApproveBy: "alice",
				ApprovalTimeout: recipe.Duration(10 * time.Minute)})
			rep := runbookResult(t, env)
			require.Error(t, wrongErr, "an approval by someone else is refused by the validator")
			require.Contains(t, wrongErr.Error(), `waits for "alice"`)
			require.Equal(t, c.outcome, rep.Outcome, stepNames(rep))
			if c.errorHas != "" {
				require.Contains(t, rep.Error, c.errorHas)
				require.Equal(t, []string{"east"}, w.writable(), "nothing changed")
				require.Equal(t, []string{"127.0.0.2"}, w.record)
				require.NotContains(t, strings.Join(w.calls, ","), "DBFence")
			} else {
				require.Equal(t, "alice", rep.ApprovedBy)
			}
		})
	}
}

func TestRunbookRejectsBadInput(t *testing.T) {
	bad := testRecipe()
	bad.App = ""
	cases := []struct {
		in   RunbookInput
		want string
	}{
		{RunbookInput{Recipe: testRecipe(), To: "mars"}, `to: "mars" is not a site`},
		{RunbookInput{Recipe: testRecipe(), To: "east"}, `to: "east" is already the primary`},
		{RunbookInput{Recipe: testRecipe(), To: ""}, "to: required"},
		{RunbookInput{Recipe: testRecipe(), From: "moon", To: "west"}, `from: "moon" is not a site`},
		{RunbookInput{Recipe: bad, To: "west"}, "invalid recipe"},
	}
	for _, wf := range []any{Switchover, Failover, Failback} {
		for _, c := range cases {
			w := newWorld()
			env := runbookEnv(t, w)
			env.ExecuteWorkflow(wf, c.in)
			require.True(t, env.IsWorkflowCompleted())
			err := env.GetWorkflowError()
			var ae *temporal.ApplicationError
			require.True(t, errors.As(err, &ae), "%v", err)
			require.Equal(t, "InvalidInput", ae.Type())
			require.True(t, ae.NonRetryable())
			require.Contains(t, err.Error(), c.want)
			require.Empty(t, w.calls, "nothing was done")
		}
	}
}

func TestFailoverFencesPromotesAndRecordsRPO(t *testing.T) {
	w := newWorld()
	w.failStep = "DBFence east" // the old primary's database is gone
	w.stopTakes = 2 * time.Second
	env := runbookEnv(t, w)
	detected := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	env.ExecuteWorkflow(Failover, RunbookInput{Recipe: testRecipe(), To: "west", DetectedAt: detected, Reason: "SiteDown"})
	rep := runbookResult(t, env)
	require.Equal(t, OutcomeCompleted, rep.Outcome, rep.Error)
	require.Equal(t, []string{"west"}, w.writable())
	require.Equal(t, []string{"127.0.0.3"}, w.record)
	require.True(t, w.stopped["east"], "old primary stopped through its provider")
	require.Equal(t, "1-1-97", rep.RPO.AppliedGTID)
	require.False(t, rep.RPO.Exact, "the old primary's final position is unknown")
	require.Equal(t, detected, rep.DetectedAt)
	require.Greater(t, rep.RTOSeconds, 0.0)
	names := stepNames(rep)
	for _, want := range []string{"fence database=failed", "fence by provider=ok", "dns remove=ok", "stop replication=ok", "promote=ok"} {
		require.Contains(t, names, want)
	}
	// Fencing may run beside the DNS removal, but promotion waits for it.
	var fencedAt, promotedAt time.Time
	for _, s := range rep.Steps {
		switch s.Name {
		case "fence database", "fence by provider":
			if s.Ended.After(fencedAt) {
				fencedAt = s.Ended
			}
		case "promote":
			promotedAt = s.Started
		}
	}
	require.GreaterOrEqual(t, fencedAt.Sub(rep.StartedAt), 2*time.Second, "the provider's stop took 2 s")
	require.False(t, promotedAt.Before(fencedAt), "promoted at %s before fencing ended at %s", promotedAt, fencedAt)
}

func TestFailbackRefusesASiteWithErrantTransactions(t *testing.T) {
	w := newWorld()
	w.readOnly = map[string]bool{"east": true, "west": false}
	w.errant = &dbadmin.ErrantResult{Old: "east", New: "west", Errant: "1-1-103", Count: 3, CountExact: true}
	env := runbookEnv(t, w)
	env.ExecuteWorkflow(Failback, RunbookInput{Recipe: testRecipe(), From: "west", To: "east"})
	rep := runbookResult(t, env)
	require.Equal(t, OutcomeAborted, rep.Outcome)
	require.Equal(t, uint64(3), rep.ErrantCount)
	require.Contains(t, rep.Error, "east has 3 transaction(s) west never received")
	require.Equal(t, []string{"west"}, w.writable())
}

func TestFailbackReplicatesThenSwitchesBack(t *testing.T) {
	w := newWorld()
	w.readOnly = map[string]bool{"east": true, "west": false}
	w.record = []string{"127.0.0.3"}
	w.streams = map[string]bool{}
	env := runbookEnv(t, w)
	env.ExecuteWorkflow(Failback, RunbookInput{Recipe: testRecipe(), From: "west", To: "east"})
	rep := runbookResult(t, env)
	require.Equal(t, OutcomeCompleted, rep.Outcome, rep.Error+" "+stepNames(rep))
	require.Equal(t, []string{"east"}, w.writable())
	require.Equal(t, []string{"127.0.0.2"}, w.record)
	require.True(t, w.streams["replication-petclinic-east-west"], "replication east → west again")
	require.True(t, rep.RPO.Exact)
	require.Zero(t, rep.RPO.LostTransactions)
}

// With reclone, a returning site with errant transactions is set aside and
// rebuilt by CloneSite from the current primary, then switched back to; a
// dry run only says so.
func TestFailbackReclonesASiteWithErrantTransactions(t *testing.T) {
	for _, dry := range []bool{true, false} {
		w := newWorld()
		w.readOnly = map[string]bool{"east": true, "west": false}
		w.record = []string{"127.0.0.3"}
		w.streams = map[string]bool{}
		w.errant = &dbadmin.ErrantResult{Old: "east", New: "west", Errant: "1-1-103", Count: 3, CountExact: true}
		env := runbookEnv(t, w)
		env.RegisterWorkflow(CloneSite)
		var setAside, cloned []string
		env.OnActivity("SetAsideSite", anyCtx, anyArg).Return(func(_ context.Context, in local.SetAsideInput) (local.SetAsideResult, error) {
			setAside = append(setAside, in.Site.Name)
			return local.SetAsideResult{Dir: "/state/sites/east.aside-" + in.Tag, Moved: true}, nil
		})
		env.OnWorkflow(CloneSite, anyCtx, anyArg).Return(func(_ workflow.Context, in CloneInput) (RunbookReport, error) {
			cloned = append(cloned, in.From+"→"+in.To)
			w.errant = nil
			w.streams["replication-petclinic-west-east"] = true
			return RunbookReport{Runbook: RunbookClone, Outcome: OutcomeCompleted, RPO: RPOPoint{AppliedGTID: "2-2-50"}}, nil
		})
		env.ExecuteWorkflow(Failback, RunbookInput{Recipe: testRecipe(), From: "west", To: "east", Reclone: true, DryRun: dry})
		rep := runbookResult(t, env)
		require.Contains(t, rep.Plan[0], "set east's data aside (3 errant transaction(s) 1-1-103")
		if dry {
			require.Equal(t, OutcomeDryRun, rep.Outcome)
			require.Empty(t, setAside)
			require.Empty(t, cloned)
			continue
		}
		require.Equal(t, OutcomeCompleted, rep.Outcome, rep.Error+" "+stepNames(rep))
		require.Equal(t, []string{"east"}, setAside)
		require.Equal(t, []string{"west→east"}, cloned)
		require.Equal(t, []string{"east"}, w.writable())
		require.Equal(t, []string{"127.0.0.2"}, w.record)
		require.True(t, rep.RPO.Exact)
		require.Zero(t, rep.RPO.LostTransactions, "the set-aside transactions are not the switchover's loss")
		require.Equal(t, uint64(3), rep.ErrantCount, "they stay listed")
	}
}
