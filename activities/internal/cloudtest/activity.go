package cloudtest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/activities/provider"
)

// Execute runs the activity fn (a function, or a registered name) with in,
// in a fresh test activity environment that setup registers the activities
// in (and may give heartbeat details of an earlier attempt), and decodes
// its result into out. It returns the activity's error.
func Execute(t testing.TB, setup func(env *testsuite.TestActivityEnvironment), fn, in, out any) error {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	setup(env)
	v, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return err
	}
	require.NoError(t, v.Get(out))
	return nil
}

// AppError asserts that err is a Temporal application error of errType
// with the given retryability, and returns its message.
func AppError(t testing.TB, err error, errType string, nonRetryable bool) string {
	t.Helper()
	require.Error(t, err)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "not an application error: %v", err)
	assert.Equal(t, errType, ae.Type(), "%v", err)
	assert.Equal(t, nonRetryable, ae.NonRetryable(), "%v", err)
	return ae.Error()
}

// RunSite runs the provider activity name (one of provider.Names) of a,
// registered as a worker registers it, with in, and returns the site state
// it reports.
func RunSite(t testing.TB, a *provider.Activities, name string, in any) (provider.SiteState, error) {
	t.Helper()
	var st provider.SiteState
	err := Execute(t, func(env *testsuite.TestActivityEnvironment) { provider.Register(env, a) }, name, in, &st)
	return st, err
}
