package workflows

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/recipe"
)

func testRecipe() recipe.Recipe {
	r := recipe.Recipe{
		App: "petclinic", Primary: "east",
		Sites: []recipe.Site{
			{Name: "east", Provider: "local", Region: "local", Address: "127.0.0.2",
				DB:  recipe.Database{Host: "127.0.0.2", Port: 3306, User: "drover", Password: "env:EAST_PW", ServerID: 1, GTIDDomainID: 1},
				App: recipe.AppTier{Endpoints: []string{"http://127.0.0.2:8080"}}},
			{Name: "west", Provider: "local", Region: "local", Address: "127.0.0.3",
				DB:  recipe.Database{Host: "127.0.0.3", Port: 3306, User: "drover", Password: "env:WEST_PW", ServerID: 2, GTIDDomainID: 2},
				App: recipe.AppTier{Endpoints: []string{"http://127.0.0.3:8080"}}},
		},
		Replication: []recipe.Stream{{From: "east", To: "west"}},
		DNS: recipe.DNS{Zone: "drover.test.", Record: "app.drover.test.", Driver: "rfc2136", Server: "127.0.0.1:5354",
			TSIG: recipe.TSIG{Name: "drover-key", Secret: "env:TSIG"}},
		Probes: []recipe.Probe{{Kind: "http", Target: "/ready"}},
	}
	r.ApplyDefaults()
	return r
}

func boolp(b bool) *bool { return &b }

func TestSiteStatusRendersEverySite(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var pa *probe.Activities
	env.RegisterActivity(pa)
	env.OnActivity(pa.ProbeDB, mock.Anything, mock.MatchedBy(func(in probe.DBProbeInput) bool { return in.Site.Name == "east" })).
		Return(probe.DBProbeResult{Site: "east", Address: "127.0.0.2:3306", Reachable: true, GTIDBinlogPos: "1-1-42"}, nil).Once()
	env.OnActivity(pa.ProbeDB, mock.Anything, mock.MatchedBy(func(in probe.DBProbeInput) bool { return in.Site.Name == "west" })).
		Return(probe.DBProbeResult{Site: "west", Address: "127.0.0.3:3306", Error: "dial tcp 127.0.0.3:3306: connect: connection refused"}, nil).Once()
	// The app probe uses the recipe's HTTP probe path.
	env.OnActivity(pa.ProbeApp, mock.Anything, mock.MatchedBy(func(in probe.AppProbeInput) bool { return in.Site.Name == "east" && in.Path == "/ready" })).
		Return(probe.AppProbeResult{Site: "east", Endpoints: []probe.EndpointResult{{URL: "http://127.0.0.2:8080/ready", Up: true, StatusCode: 200, Writable: boolp(true)}}}, nil).Once()
	env.OnActivity(pa.ProbeApp, mock.Anything, mock.MatchedBy(func(in probe.AppProbeInput) bool { return in.Site.Name == "west" && in.Path == "/ready" })).
		Return(probe.AppProbeResult{Site: "west", Endpoints: []probe.EndpointResult{{URL: "http://127.0.0.3:8080/ready", StatusCode: 503, Error: "app reports db: connection refused", Writable: boolp(false)}}}, nil).Once()

	env.ExecuteWorkflow(SiteStatus, SiteStatusInput{Recipe: testRecipe()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res SiteStatusResult
	require.NoError(t, env.GetWorkflowResult(&res))
	env.AssertExpectations(t)

	require.Len(t, res.Rows, 2)
	require.Equal(t, "primary", res.Rows[0].Role)
	require.Equal(t, "standby", res.Rows[1].Role)
	lines := strings.Split(strings.TrimSpace(res.Table), "\n")
	require.Len(t, lines, 3, res.Table)
	require.Regexp(t, `^east\s+primary\s+up 127\.0\.0\.2:3306 \(0ms\)\s+OFF\s+1-1-42\s+up 200 \(0ms\)\s+yes$`, lines[1])
	require.Regexp(t, `^west\s+standby\s+DOWN 127\.0\.0\.3:3306: dial tcp .*connection refused\s+-\s+-\s+DOWN 503: app reports db`, lines[2])
}

// A site whose worker is gone still gets a row, and the run succeeds.
func TestSiteStatusReportsMissingWorker(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var pa *probe.Activities
	env.RegisterActivity(pa)
	timeout := temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
	env.OnActivity(pa.ProbeDB, mock.Anything, mock.Anything).Return(probe.DBProbeResult{}, timeout)
	env.OnActivity(pa.ProbeApp, mock.Anything, mock.Anything).Return(probe.AppProbeResult{}, timeout)

	env.ExecuteWorkflow(SiteStatus, SiteStatusInput{Recipe: testRecipe(), Sites: []string{"west"}})
	require.NoError(t, env.GetWorkflowError())
	var res SiteStatusResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Len(t, res.Rows, 1)
	require.Nil(t, res.Rows[0].DB)
	require.Contains(t, res.Rows[0].Error, "no answer from the worker of site west")
	require.Contains(t, res.Rows[0].Error, "drover-site-west")
	require.Contains(t, res.Table, "west  standby  UNKNOWN")
}

func TestSiteStatusRejectsInvalidInput(t *testing.T) {
	for want, in := range map[string]SiteStatusInput{
		"sites[1].db.port: must be 1-65535": {Recipe: func() recipe.Recipe { r := testRecipe(); r.Sites[1].DB.Port = 70000; return r }()},
		`sites: unknown site "north"`:       {Recipe: testRecipe(), Sites: []string{"north"}},
	} {
		name := want
		t.Run(name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			var pa *probe.Activities
			env.RegisterActivity(pa)
			env.ExecuteWorkflow(SiteStatus, in)
			err := env.GetWorkflowError()
			require.Error(t, err)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "%v", err)
			require.True(t, appErr.NonRetryable())
			require.Equal(t, "InvalidInput", appErr.Type())
			require.Contains(t, appErr.Error(), want)
		})
	}
}

func TestSiteTaskQueue(t *testing.T) {
	require.Equal(t, "drover-site-east", SiteTaskQueue("east"))
	r := testRecipe()
	require.Equal(t, SiteTaskQueue("west"), r.Sites[1].TaskQueue())
}
