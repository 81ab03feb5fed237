package aws

import (
	"context"
	"sync"
	"time"

	"github.com/drover-sre/drover/activities/provider"
)

// Activities exposes Compute to workflows. Every method is idempotent and
// safe to retry; it heartbeats while it waits on EC2 (give it a
// HeartbeatTimeout above HeartbeatInterval and a StartToCloseTimeout above
// Compute.WaitTimeout), and its errors are Temporal application errors of
// the provider.ErrType* types: ProviderThrottled and ProviderTransient are
// retryable, ProviderQuota, ProviderAuth, ProviderConfig and
// ProviderInstanceFailed are not. The zero value uses the SDK's default
// credential chain.
type Activities struct {
	// Compute does the work; nil means a Compute with default settings.
	Compute *Compute
	// HeartbeatInterval is how often a waiting activity heartbeats; zero
	// means provider.DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration

	once sync.Once
}

func (a *Activities) compute() *Compute {
	a.once.Do(func() {
		if a.Compute == nil {
			a.Compute = &Compute{}
		}
	})
	return a.Compute
}

// AWSCreateSite creates the site's instances that do not exist yet (one
// database instance and site.app.instances app instances) and waits until
// they run. See provider.Compute.Create.
func (a *Activities) AWSCreateSite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "aws create site", func() (provider.SiteState, error) {
		return a.compute().Create(ctx, in)
	})
}

// AWSInspectSite reports the site's instances, states and addresses.
func (a *Activities) AWSInspectSite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "aws inspect site", func() (provider.SiteState, error) {
		return a.compute().Inspect(ctx, in)
	})
}

// AWSStartSite starts the site's stopped instances of in.Roles and waits
// until they run.
func (a *Activities) AWSStartSite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "aws start site", func() (provider.SiteState, error) {
		return a.compute().Start(ctx, in)
	})
}

// AWSStopSite stops (fences) the site's running instances of in.Roles and
// waits until they are stopped; no other instance is touched.
func (a *Activities) AWSStopSite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "aws stop site", func() (provider.SiteState, error) {
		return a.compute().Stop(ctx, in)
	})
}

// AWSDestroySite terminates the site's instances of in.Roles (with in.Run,
// only those that run created) and waits until they are terminated.
func (a *Activities) AWSDestroySite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "aws destroy site", func() (provider.SiteState, error) {
		return a.compute().Destroy(ctx, in)
	})
}

// AWSScaleSite makes the site's app tier exactly in.Instances instances.
func (a *Activities) AWSScaleSite(ctx context.Context, in provider.ScaleInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "aws scale site", func() (provider.SiteState, error) {
		return a.compute().Scale(ctx, in)
	})
}
