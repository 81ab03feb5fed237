package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/provider"
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
		{DrillInput{Recipe: aws, Address: "127.0.0.4"}, "a drill creates instances from its aws block"},
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

// A drill of a cloud standby creates separate instances from the
// standby's compute block, works on their addresses, and destroys exactly
// them at the end — also when a step fails.
func TestDrillOfACloudStandbyUsesAndDestroysItsOwnInstances(t *testing.T) {
	for _, failCopy := range []bool{false, true} {
		r := testRecipe()
		r.Sites[1].Provider, r.Sites[1].Region = "aws", "eu-west-1"
		r.Sites[1].AWS = recipe.AWSCompute{AMI: "ami-0123456789abcdef0", InstanceType: "t3.small", SubnetID: "subnet-0123456789abcdef0", SecurityGroupIDs: []string{"sg-0123456789abcdef0"}}
		r.Smoke = []recipe.SmokeCheck{{Path: "/api/owners"}}
		w := newCloneWorld()
		w.streams[ReplicationWorkflowID("petclinic", "east", "west")] = true
		if failCopy {
			w.failAt = "SnapshotCopy"
		}
		w.also = func(env *testsuite.TestWorkflowEnvironment) {
			provider.Register(env, &provider.Activities{Provider: recipe.ProviderAWS})
		}
		env := w.register(t)
		var created, destroyed []string
		env.OnActivity("AWSCreateSite", anyCtx, anyArg).Return(func(_ context.Context, in provider.SiteInput) (provider.SiteState, error) {
			created = append(created, in.Site.Name+"/"+in.Run)
			return provider.SiteState{Instances: []provider.Instance{{ID: "i-db", Role: provider.RoleDB, PrivateIP: "10.0.0.5"},
				{ID: "i-app", Role: provider.RoleApp, PrivateIP: "10.0.0.6"}}, Created: []string{"i-db", "i-app"}}, nil
		})
		env.OnActivity("AWSDestroySite", anyCtx, anyArg).Return(func(_ context.Context, in provider.SiteInput) (provider.SiteState, error) {
			destroyed = append(destroyed, in.Site.Name+"/"+in.Run)
			return provider.SiteState{}, nil
		})
		var promoted, smoked string
		env.OnActivity("DBPromote", anyCtx, anyArg).Return(func(_ context.Context, in dbadmin.PromoteInput) (dbadmin.PromoteResult, error) {
			promoted = in.Site.DB.Host
			return dbadmin.PromoteResult{Site: in.Site.Name, Changed: true}, nil
		})
		env.OnActivity("ProbeHTTP", anyCtx, anyArg).Return(probe.HTTPResult{EndpointResult: probe.EndpointResult{Up: true, StatusCode: 200, Writable: boolp(true)}}, nil)
		env.OnActivity("SmokeHTTP", anyCtx, anyArg).Return(func(_ context.Context, in probe.SmokeInput) (probe.SmokeResult, error) {
			smoked = in.BaseURL
			return probe.SmokeResult{Passed: true, Checks: []probe.SmokeCheckResult{{Name: "GET /api/owners", Passed: true, StatusCode: 200}}}, nil
		})
		env.ExecuteWorkflow(Drill, DrillInput{Recipe: r})
		require.NoError(t, env.GetWorkflowError())
		var rep DrillReport
		require.NoError(t, env.GetWorkflowResult(&rep))
		require.Len(t, created, 1)
		require.Equal(t, created, destroyed, "exactly what the drill created is destroyed (failed copy: %t)", failCopy)
		require.True(t, rep.CleanedUp)
		require.Empty(t, w.records, "no DNS record left")
		if failCopy {
			require.False(t, rep.Passed)
			require.Equal(t, OutcomeFailed, rep.Outcome)
			continue
		}
		require.True(t, rep.Passed, "%v", rep.Failures)
		require.Equal(t, "10.0.0.5", promoted)
		require.Equal(t, "http://10.0.0.6:8080", smoked)
	}
}
