package cloud_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/activities/internal/cloud"
)

func TestText(t *testing.T) {
	for want, got := range map[string]string{
		"aws create site west in eu-west-1: boom": cloud.Text("aws create", "boom", nil, "site", "west", "in", "eu-west-1"),
		"aws create in eu-west-1: cause":          cloud.Text("aws create", "", errors.New("cause"), "site", "", "in", "eu-west-1"),
		"dns update app.drover.test. at ns:53":    cloud.Text("dns update", "", nil, "", "app.drover.test.", "at", "ns:53"),
		"op":                                      cloud.Text("op", "", nil),
	} {
		assert.Equal(t, want, got)
	}
}

// Each kind has its error type under a prefix; only Transient and
// Throttled are retryable; the worse of two kinds is their max.
func TestActivityError(t *testing.T) {
	ctx := context.Background()
	for k, want := range map[cloud.Kind]string{cloud.Transient: "XTransient", cloud.Throttled: "XThrottled", cloud.Quota: "XQuota",
		cloud.Auth: "XAuth", cloud.Config: "XConfig", cloud.Failed: "XInstanceFailed"} {
		var ae *temporal.ApplicationError
		if assert.ErrorAs(t, cloud.ActivityError(ctx, errors.New("boom"), k, "X"), &ae) {
			assert.Equal(t, want, ae.Type())
			assert.Equal(t, !k.Retryable(), ae.NonRetryable(), k.String())
			assert.Equal(t, "boom", ae.Message())
		}
	}
	assert.Equal(t, cloud.Failed, max(cloud.Transient, cloud.Quota, cloud.Failed))
	assert.NoError(t, cloud.ActivityError(ctx, nil, cloud.Config, "X"))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, cloud.ActivityError(cancelled, errors.New("boom"), cloud.Config, "X"), context.Canceled)
	assert.Equal(t, cloud.Transient, cloud.KindOf(errors.New("plain"), func(e *temporal.ApplicationError) cloud.Kind { return cloud.Config }))
}

// Outside an activity Heartbeating just runs fn.
func TestHeartbeatingOutsideActivity(t *testing.T) {
	boom := errors.New("boom")
	assert.ErrorIs(t, cloud.Heartbeating(context.Background(), 1, func() error { return boom }), boom)
}
