package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/metrics/metricstest"
)

// A finished runbook is counted by kind and outcome and its duration
// (workflow time, start to end) observed, through the workflow's metrics
// handler onto the worker's registry.
func TestRunbookFinishRecordsMetrics(t *testing.T) {
	reg := metrics.New()
	run := func(w *world, wf any, in RunbookInput) RunbookReport {
		var s testsuite.WorkflowTestSuite
		s.SetMetricsHandler(reg.SDKHandler())
		env := s.NewTestWorkflowEnvironment()
		env.SetTestTimeout(10 * time.Second)
		w.register(env)
		env.ExecuteWorkflow(wf, in)
		return runbookResult(t, env)
	}
	failover := newWorld()
	failover.failStep, failover.stopTakes = "DBFence east", 2*time.Minute
	slow := run(failover, Failover, RunbookInput{Recipe: testRecipe(), To: "west"})
	rolledBack := newWorld()
	rolledBack.failStep = "DNSPoint"
	quick := run(rolledBack, Switchover, RunbookInput{Recipe: testRecipe(), To: "west"})

	f, err := metricstest.Gather(reg.Gatherer())
	require.NoError(t, err)
	for _, rep := range []RunbookReport{slow, quick} {
		l := map[string]string{"app": "petclinic", "runbook": rep.Runbook, "outcome": rep.Outcome}
		n, series := f.Value(metrics.RunbookTotal, l)
		require.Equal(t, 1, series, "%v", l)
		require.Equal(t, 1.0, n, "%v", l)
		n, _ = f.Value(metrics.RunbookDurationSeconds, l)
		require.Equal(t, 1.0, n, "%v", l)
		require.Equal(t, rep.EndedAt.Sub(rep.StartedAt).Seconds(), f.HistogramSum(metrics.RunbookDurationSeconds, l), "%v", l)
	}
	require.Equal(t, OutcomeCompleted, slow.Outcome)
	require.GreaterOrEqual(t, slow.EndedAt.Sub(slow.StartedAt), 2*time.Minute, "the provider's stop took 2 min")
	require.Equal(t, OutcomeRolledBack, quick.Outcome)
}
