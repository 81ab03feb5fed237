package workflows

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/recipe"
)

// scripted fakes the vantage points: downFrom[site] is the round from which
// the site — its worker included — is dead (0: never), until backFrom[site];
// sickFrom[site] the round from which its checks fail while its worker still
// answers; flaky lists single rounds a site fails.
type scripted struct {
	mu        sync.Mutex
	rounds    map[string]int // calls per vantage
	downFrom  map[string]int
	backFrom  map[string]int
	sickFrom  map[string]int
	flaky     map[string]map[int]bool
	lag       float64
	failovers []RunbookInput
}

func (s *scripted) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivity(&probe.Activities{})
	env.RegisterActivity(&replicate.Control{})
	env.OnActivity("ProbeSites", anyCtx, anyArg).Return(func(ctx context.Context, in probe.SitesInput) (probe.SitesResult, error) {
		vantage := strings.TrimPrefix(activity.GetInfo(ctx).TaskQueue, "drover-site-")
		s.mu.Lock()
		defer s.mu.Unlock()
		s.rounds[vantage]++
		round := s.rounds[vantage]
		if s.dead(vantage, round) {
			// A dead site's worker is dead too: it cannot answer.
			return probe.SitesResult{}, errors.New("no worker")
		}
		res := probe.SitesResult{Vantage: vantage}
		for _, site := range []string{"east", "west"} {
			sick := s.sickFrom[site] > 0 && round >= s.sickFrom[site]
			up := !s.dead(site, round) && !sick && !s.flaky[site][round]
			v := probe.SiteVerdict{Site: site, Up: up}
			if !up {
				v.Failed = []string{"http " + site}
			}
			res.Sites = append(res.Sites, v)
		}
		return res, nil
	})
	env.OnActivity("StreamState", anyCtx, anyArg).Return(func(_ context.Context, in replicate.StreamRef) (replicate.StreamState, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		st := replicate.StreamState{WorkflowID: in.WorkflowID, Running: true, State: ReplRunning}
		st.Progress.LagSeconds = s.lag
		return st, nil
	})
	env.OnWorkflow(Failover, anyCtx, anyArg).Return(func(_ workflow.Context, in RunbookInput) (RunbookReport, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.failovers = append(s.failovers, in)
		return RunbookReport{Runbook: RunbookFailover, From: in.From, To: in.To, Outcome: OutcomeCompleted}, nil
	})
}

func (s *scripted) dead(site string, round int) bool {
	from, back := s.downFrom[site], s.backFrom[site]
	return from > 0 && round >= from && (back == 0 || round < back)
}

func monitorRecipe(auto bool) recipe.Recipe {
	r := testRecipe()
	r.Policy.AutoFailover = auto
	r.Policy.MaxRPO = recipe.Duration(5 * time.Second)
	return r
}

// runMonitor runs rounds rounds of the monitor and returns its final status.
func runMonitor(t *testing.T, s *scripted, r recipe.Recipe, rounds int, cooldown time.Duration) MonitorStatus {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(10 * time.Second)
	s.register(env)
	env.ExecuteWorkflow(HealthMonitor, MonitorInput{Recipe: r, Interval: recipe.Duration(time.Second), FailureThreshold: 3,
		RecoveryThreshold: 2, RoundsPerRun: rounds, Cooldown: recipe.Duration(cooldown)})
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "the monitor ends a run by continuing as new: %v", env.GetWorkflowError())
	v, err := env.QueryWorkflow(HealthStatusQuery)
	require.NoError(t, err)
	var st MonitorStatus
	require.NoError(t, v.Get(&st))
	return st
}

func newScripted() *scripted {
	return &scripted{rounds: map[string]int{}, downFrom: map[string]int{}, backFrom: map[string]int{}, sickFrom: map[string]int{},
		flaky: map[string]map[int]bool{}}
}

func TestMonitorFailsOverOnceWhenThePrimaryIsConfirmedDown(t *testing.T) {
	s := newScripted()
	s.downFrom["east"] = 5
	s.lag = 0.3
	st := runMonitor(t, s, monitorRecipe(true), 20, time.Hour)
	require.Len(t, s.failovers, 1, "exactly one failover")
	in := s.failovers[0]
	require.Equal(t, "east", in.From)
	require.Equal(t, "west", in.To)
	require.False(t, in.DetectedAt.IsZero())
	require.Contains(t, in.Reason, "east down for 3 rounds")
	require.Equal(t, "west", st.Primary, "the completed failover made west primary")
	require.Equal(t, HealthDown, st.site("east").State)
	require.Len(t, st.Runbooks, 1)
	require.Contains(t, st.Runbooks[0], "completed")
}

func TestMonitorDoesNotFlap(t *testing.T) {
	s := newScripted()
	s.flaky["east"] = map[int]bool{3: true, 4: true, 6: true, 7: true, 9: true}
	st := runMonitor(t, s, monitorRecipe(true), 12, time.Hour)
	require.Empty(t, s.failovers, "two failed rounds in a row never reach the threshold of 3")
	require.Equal(t, "east", st.Primary)
	require.Equal(t, HealthUp, st.site("east").State)
}

func TestMonitorRecordsWhyItDoesNotFailOver(t *testing.T) {
	t.Run("auto_failover off", func(t *testing.T) {
		s := newScripted()
		s.downFrom["east"] = 2
		st := runMonitor(t, s, monitorRecipe(false), 8, time.Hour)
		require.Empty(t, s.failovers)
		require.Contains(t, st.LastDecision, "auto_failover is off")
		require.Equal(t, HealthDown, st.site("east").State)
	})
	t.Run("standby lag over max_rpo", func(t *testing.T) {
		s := newScripted()
		s.downFrom["east"] = 3
		s.lag = 12
		st := runMonitor(t, s, monitorRecipe(true), 8, time.Hour)
		require.Empty(t, s.failovers)
		require.Contains(t, st.LastDecision, "lagged 12.0s, more than policy.max_rpo 5s")
	})
	t.Run("cool-down after a failover", func(t *testing.T) {
		s := newScripted()
		s.downFrom["east"], s.backFrom["east"] = 3, 9 // east dies, fails over, comes back as standby
		s.sickFrom["west"] = 14                       // then the new primary fails, as east sees it
		st := runMonitor(t, s, monitorRecipe(true), 24, time.Hour)
		require.Len(t, s.failovers, 1, "no second failover")
		require.Equal(t, "west", st.Primary)
		require.Equal(t, HealthUp, st.site("east").State)
		require.Equal(t, HealthDown, st.site("west").State)
		require.Contains(t, st.LastDecision, "primary west is down; cool-down")
	})
}
