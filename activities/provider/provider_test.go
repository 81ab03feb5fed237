package provider_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/activities/internal/cloudtest"
	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/recipe"
)

// Each Kind maps to its application error type, and only Transient and
// Throttled are retryable; a cancelled context wins.
func TestActivityError(t *testing.T) {
	for kind, want := range map[provider.Kind]struct {
		errType      string
		nonRetryable bool
	}{
		provider.Transient: {provider.ErrTypeTransient, false},
		provider.Throttled: {provider.ErrTypeThrottled, false},
		provider.Quota:     {provider.ErrTypeQuota, true},
		provider.Auth:      {provider.ErrTypeAuth, true},
		provider.Config:    {provider.ErrTypeConfig, true},
		provider.Failed:    {provider.ErrTypeFailed, true},
	} {
		err := provider.ActivityError(context.Background(), &provider.Error{Op: "aws create", Site: "west", Target: "eu-west-1", Kind: kind, Msg: "boom"})
		var ae *temporal.ApplicationError
		if assert.True(t, errors.As(err, &ae), kind.String()) {
			assert.Equal(t, want.errType, ae.Type())
			assert.Equal(t, want.nonRetryable, ae.NonRetryable(), kind.String())
			assert.Equal(t, "aws create site west in eu-west-1: boom", ae.Message())
		}
		assert.Equal(t, kind.Retryable(), !want.nonRetryable)
	}
	assert.Equal(t, provider.Transient, provider.KindOf(errors.New("plain")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, provider.ActivityError(ctx, &provider.Error{Kind: provider.Config}), context.Canceled)
	assert.Nil(t, provider.ActivityError(ctx, nil))
}

func TestCheckInput(t *testing.T) {
	site := recipe.Site{Name: "west", Provider: "aws", Region: "eu-west-1",
		AWS: recipe.AWSCompute{LaunchTemplate: "lt-0123456789abcdef0"}}
	ok := provider.SiteInput{App: "petclinic", Site: site}
	assert.NoError(t, provider.CheckInput("aws create", "aws", ok, true))
	for name, tc := range map[string]struct {
		in     provider.SiteInput
		create bool
		msg    string
	}{
		"app":      {provider.SiteInput{App: "../x", Site: site}, false, `aws op site west: app "../x" is not a valid app name`},
		"site":     {provider.SiteInput{App: "petclinic", Site: recipe.Site{Name: "West", Provider: "aws", Region: "x"}}, false, `sites[].name "West"`},
		"provider": {provider.SiteInput{App: "petclinic", Site: recipe.Site{Name: "west", Provider: "openstack", Region: "RegionOne"}}, false, `provider is "openstack"`},
		"run":      {provider.SiteInput{App: "petclinic", Site: site, Run: "a\nb"}, false, "run: at most 255 printable characters"},
		"block":    {provider.SiteInput{App: "petclinic", Site: recipe.Site{Name: "west", Provider: "aws", Region: "eu-west-1"}}, true, "recipe: aws: required to create instances"},
	} {
		err := provider.CheckInput("aws op", "aws", tc.in, tc.create)
		assert.Equal(t, provider.Config, provider.KindOf(err), name)
		assert.ErrorContains(t, err, tc.msg, name)
	}
	err := provider.CheckScale("aws scale", "aws", provider.ScaleInput{App: "petclinic", Site: site, Instances: 101})
	assert.ErrorContains(t, err, "instances: 101 is not 0-100")
}

// Surplus removes failed, then stopped, then the newest instances; Sort
// reports db first; the state helpers read roles, addresses and fencing.
func TestInstanceHelpers(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 11, 1, 0, 0, s, 0, time.UTC) }
	is := []provider.Instance{
		{ID: "a1", Name: "app-1", Role: "app", State: provider.StateRunning, LaunchedAt: at(1), PrivateIP: "10.0.0.1"},
		{ID: "a2", Name: "app-2", Role: "app", State: provider.StateRunning, LaunchedAt: at(5), PrivateIP: "10.0.0.2"},
		{ID: "a3", Name: "app-3", Role: "app", State: provider.StateStopped, LaunchedAt: at(2)},
		{ID: "a4", Name: "app-4", Role: "app", State: provider.StateError, LaunchedAt: at(3)},
		{ID: "d1", Name: "db", Role: "db", State: provider.StateRunning, LaunchedAt: at(0), PrivateIP: "10.0.0.9"},
		{ID: "a5", Name: "app-5", Role: "app", State: provider.StateTerminating, LaunchedAt: at(9)},
	}
	assert.Equal(t, []string{"a4", "a3", "a2"}, provider.IDs(provider.Surplus(is[:4], 3)))
	assert.Empty(t, provider.Surplus(is[:4], 0))
	provider.Sort(is)
	assert.Equal(t, []string{"d1", "a1", "a2", "a3", "a4", "a5"}, provider.IDs(is))
	st := provider.SiteState{Instances: is}
	assert.Len(t, st.Role("app"), 4, "terminating instances do not count")
	assert.Equal(t, []string{"10.0.0.1", "10.0.0.2"}, st.Addresses("app"))
	assert.False(t, st.Running())
	assert.False(t, st.Stopped())
	assert.True(t, provider.SiteState{Instances: is[3:5]}.Stopped("app"))
	assert.Equal(t, map[string]int{"db": 1, "app": 1}, provider.Want(recipe.Site{}))

	assert.Equal(t, provider.Token("a", "b"), provider.Token("a", "b"))
	assert.NotEqual(t, provider.Token("a", "b"), provider.Token("ab"))
	assert.LessOrEqual(t, len(provider.Token("x")), 64)
	assert.Equal(t, "given", provider.RequestKey(context.Background(), "given"))
	assert.NotEqual(t, provider.RequestKey(context.Background(), ""), provider.RequestKey(context.Background(), ""),
		"outside an activity every call is its own request")
}

// fakeCompute records which operation ran and answers with its state.
type fakeCompute struct {
	calls []string
	err   error
}

func (f *fakeCompute) op(name string, in provider.SiteInput) (provider.SiteState, error) {
	f.calls = append(f.calls, name)
	return provider.SiteState{Provider: in.Site.Provider, App: in.App, Site: in.Site.Name, Changed: []string{name}}, f.err
}

func (f *fakeCompute) Create(_ context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return f.op("create", in)
}
func (f *fakeCompute) Inspect(_ context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return f.op("inspect", in)
}
func (f *fakeCompute) Start(_ context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return f.op("start", in)
}
func (f *fakeCompute) Stop(_ context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return f.op("stop", in)
}
func (f *fakeCompute) Destroy(_ context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return f.op("destroy", in)
}
func (f *fakeCompute) Scale(_ context.Context, in provider.ScaleInput) (provider.SiteState, error) {
	return f.op("scale", in.SiteInput())
}

// Registered by Register, Activities serves exactly the names Names gives,
// each running its Compute operation; a provider error reaches the workflow
// as ActivityError makes it; a provider without names cannot be registered.
func TestActivitiesNames(t *testing.T) {
	for _, p := range []string{recipe.ProviderAWS, recipe.ProviderOpenStack} {
		f := &fakeCompute{}
		a := &provider.Activities{Provider: p, Compute: f, HeartbeatInterval: time.Millisecond}
		names, ok := provider.Names(p)
		assert.True(t, ok)
		site := recipe.Site{Name: "west", Provider: p}
		for op, name := range map[string]string{"create": names.Create, "inspect": names.Inspect, "start": names.Start,
			"stop": names.Stop, "destroy": names.Destroy} {
			st, err := cloudtest.RunSite(t, a, name, provider.SiteInput{App: "petclinic", Site: site})
			assert.NoError(t, err, name)
			assert.Equal(t, []string{op}, st.Changed, name)
		}
		st, err := cloudtest.RunSite(t, a, names.Scale, provider.ScaleInput{App: "petclinic", Site: site, Instances: 2})
		assert.NoError(t, err)
		assert.Equal(t, []string{"scale"}, st.Changed)
		assert.Equal(t, []string{"create", "destroy", "inspect", "scale", "start", "stop"}, slices.Sorted(slices.Values(f.calls)))

		f.err = &provider.Error{Op: p + " stop", Site: "west", Kind: provider.Quota, Msg: "full"}
		_, err = cloudtest.RunSite(t, a, names.Stop, provider.SiteInput{App: "petclinic", Site: site})
		assert.Contains(t, cloudtest.AppError(t, err, provider.ErrTypeQuota, true), p+" stop site west: full")
	}
	var s testsuite.WorkflowTestSuite
	assert.Panics(t, func() {
		provider.Register(s.NewTestActivityEnvironment(), &provider.Activities{Provider: recipe.ProviderLocal, Compute: &fakeCompute{}})
	})
}

// The helpers the Compute implementations share: selecting instances,
// planning a scale, and keeping one client per region.
func TestImplementationHelpers(t *testing.T) {
	is := []provider.Instance{
		{ID: "d1", Role: "db", State: provider.StateRunning},
		{ID: "a1", Role: "app", State: provider.StateRunning, LaunchedAt: time.Unix(1, 0)},
		{ID: "a2", Role: "app", State: provider.StatePending, LaunchedAt: time.Unix(2, 0)},
		{ID: "a3", Role: "app", State: provider.StateTerminating},
	}
	assert.Equal(t, []string{"a1", "a2"}, provider.IDs(provider.Live(is, "app")))
	assert.Equal(t, []string{"d1"}, provider.IDs(provider.OfRoles(is, []string{"db"})))
	assert.Len(t, provider.OfRoles(is, nil), 4)
	assert.Equal(t, []string{"a2", "a3"}, provider.IDsIn(is, provider.StatePending, provider.StateTerminating))
	assert.Equal(t, []string{"x", "y", "z"}, provider.Union([]string{"x", "y"}, []string{"y", "z"}))

	site := recipe.Site{Name: "west", Provider: "aws", Region: "eu-west-1"}
	in := provider.ScaleInput{App: "petclinic", Site: site, Instances: 1}
	plan, err := provider.PlanScale("aws scale", "aws", in, is)
	assert.NoError(t, err)
	assert.Equal(t, []string{"a2"}, provider.IDs(plan.Remove), "the newest goes")
	assert.Zero(t, plan.Add)
	in.Instances = 2
	plan, err = provider.PlanScale("aws scale", "aws", in, is)
	assert.NoError(t, err)
	assert.Equal(t, provider.ScalePlan{Apps: plan.Apps}, plan, "nothing to do")
	in.Instances = 4
	_, err = provider.PlanScale("aws scale", "aws", in, is)
	assert.ErrorContains(t, err, "aws: required to create instances", "creating needs the compute block")
	in.Site.AWS = recipe.AWSCompute{LaunchTemplate: "lt-0123456789abcdef0"}
	plan, err = provider.PlanScale("aws scale", "aws", in, is)
	assert.NoError(t, err)
	assert.Equal(t, 2, plan.Add)

	var cs provider.Clients[string]
	built := 0
	build := func(_ context.Context, region string) (string, error) {
		built++
		if region == "eu-south-2" {
			return "", &provider.Error{Op: "aws client", Kind: provider.Config}
		}
		return "client of " + region, nil
	}
	ctx := context.Background()
	si := provider.SiteInput{App: "petclinic", Site: site}
	for range 2 {
		c, err := cs.Open(ctx, "aws inspect", "aws", si, false, nil, build)
		assert.NoError(t, err)
		assert.Equal(t, "client of eu-west-1", c)
	}
	assert.Equal(t, 1, built, "kept")
	_, err = cs.Open(ctx, "aws inspect", "aws", provider.SiteInput{Site: site}, false, build, nil)
	assert.ErrorContains(t, err, "not a valid app name")
	assert.Equal(t, 1, built, "bad input builds nothing")
	si.Site.Region = "eu-south-2"
	_, err = cs.Open(ctx, "aws inspect", "aws", si, false, build, nil)
	assert.Equal(t, provider.Config, provider.KindOf(err))
	assert.ErrorContains(t, err, "aws client site west", "the site is filled in")
}
