package main

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/recipe"
)

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		site, want string
	}{
		{"", "--site: required"},
		{"East", "--site: \"East\" must match"},
		{"east_1", "must match"},
	} {
		c := Config{Site: tc.site}
		err := c.check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("site %q: %v, want %q", tc.site, err, tc.want)
		}
	}
	bad := Config{Site: "east", ChaosDir: "chaos"}
	if err := bad.check(); err == nil || !strings.Contains(err.Error(), "DROVER_CHAOS_DIR") {
		t.Errorf("a relative chaos directory: %v", err)
	}
	c := Config{Site: "east", ChaosDir: t.TempDir()}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(c.AppBinary, "/petclinic") {
		t.Errorf("default app binary %q should be petclinic next to the worker", c.AppBinary)
	}
}

// The site worker serves the cloud providers' activities under the names
// workflows use (provider.Names): each answers bad input with a
// non-retryable ProviderConfig error, before any cloud call.
func TestCloudProviderActivityNames(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	RegisterSiteActivities(env, "east", t.TempDir(), local.Binaries{}, nil, nil)
	for _, p := range []string{recipe.ProviderAWS, recipe.ProviderOpenStack} {
		names, ok := provider.Names(p)
		if !ok {
			t.Fatalf("no activity names for %s", p)
		}
		for _, name := range []string{names.Create, names.Inspect, names.Start, names.Stop, names.Destroy, names.Scale} {
			var in any = provider.SiteInput{Site: recipe.Site{Name: "east", Provider: p}}
			if name == names.Scale {
				in = provider.ScaleInput{Site: recipe.Site{Name: "east", Provider: p}}
			}
			_, err := env.ExecuteActivity(name, in)
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != provider.ErrTypeConfig || !ae.NonRetryable() {
				t.Errorf("%s: %v, want a non-retryable %s error", name, err, provider.ErrTypeConfig)
			}
		}
	}
}
