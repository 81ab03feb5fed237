package workflows

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/recipe"
)

// Bad drill input fails at once, naming the field, before any activity.
func TestDrillRejectsBadInput(t *testing.T) {
	aws := testRecipe()
	aws.Sites[1].Provider, aws.Sites[1].Region = "aws", "eu-west-1"
	for _, c := range []struct {
		in   DrillInput
		want string
	}{
		{DrillInput{Recipe: testRecipe()}, `address: "": a local drill needs an IPv4 loopback address`},
		{DrillInput{Recipe: testRecipe(), Address: "10.0.0.4"}, `address: "10.0.0.4"`},
		{DrillInput{Recipe: testRecipe(), Address: "127.0.0.3"}, "address: 127.0.0.3 is the standby's own address"},
		{DrillInput{Recipe: testRecipe(), Address: "127.0.0.4", Site: "east"}, `site: "east" is the primary`},
		{DrillInput{Recipe: testRecipe(), Address: "127.0.0.4", Site: "mars"}, `site: "mars" is not a site`},
		{DrillInput{Recipe: testRecipe(), Address: "127.0.0.4", Smoke: []recipe.SmokeCheck{{Path: "x"}}}, `smoke[0].path: "x" must start with /`},
		{DrillInput{Recipe: aws, Address: "127.0.0.4"}, "isolated drills run on local sites only so far"},
	} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.ExecuteWorkflow(Drill, c.in)
		var ae *temporal.ApplicationError
		require.True(t, errors.As(env.GetWorkflowError(), &ae), "%+v", c.in)
		require.Equal(t, "InvalidInput", ae.Type())
		require.Contains(t, ae.Error(), c.want)
	}
}

// The drill site is the standby moved to its own address, server id and
// GTID domain, with the standby's ports, accounts and secret references.
func TestDrillSite(t *testing.T) {
	std := testRecipe().Sites[1]
	s, err := drillSite(std, "127.0.0.4")
	require.NoError(t, err)
	require.Equal(t, "drill-west", s.Name)
	require.Equal(t, "127.0.0.4", s.DB.Host)
	require.Equal(t, std.DB.Port, s.DB.Port)
	require.Equal(t, std.DB.Password, s.DB.Password)
	require.Equal(t, []string{"http://127.0.0.4:8080"}, s.App.Endpoints)
	require.Equal(t, std.DB.ServerID+1000, s.DB.ServerID)
	require.Equal(t, std.DB.GTIDDomainID+1000, s.DB.GTIDDomainID)
	require.Equal(t, "http://127.0.0.3:8080", std.App.Endpoints[0], "the standby's own site is unchanged")
}
