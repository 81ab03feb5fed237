package openstack

import (
	"context"
	"sync"
	"time"

	"github.com/drover-sre/drover/activities/provider"
)

// Activities exposes Compute to workflows. Every method is idempotent and
// safe to retry; it heartbeats while it waits on Nova (give it a
// HeartbeatTimeout above HeartbeatInterval and a StartToCloseTimeout above
// Compute.WaitTimeout), and its errors are Temporal application errors of
// the provider.ErrType* types: ProviderThrottled and ProviderTransient are
// retryable, ProviderQuota, ProviderAuth, ProviderConfig and
// ProviderInstanceFailed are not. The zero value authenticates with
// clouds.yaml (OS_CLOUD) or the OS_* variables.
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

// OpenStackCreateSite creates the site's servers that do not exist yet (one
// database server and site.app.instances app servers) and waits until they
// are ACTIVE. See provider.Compute.Create.
func (a *Activities) OpenStackCreateSite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "openstack create site", func() (provider.SiteState, error) {
		return a.compute().Create(ctx, in)
	})
}

// OpenStackInspectSite reports the site's servers, states and addresses.
func (a *Activities) OpenStackInspectSite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "openstack inspect site", func() (provider.SiteState, error) {
		return a.compute().Inspect(ctx, in)
	})
}

// OpenStackStartSite starts the site's SHUTOFF servers of in.Roles and
// waits until they are ACTIVE.
func (a *Activities) OpenStackStartSite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "openstack start site", func() (provider.SiteState, error) {
		return a.compute().Start(ctx, in)
	})
}

// OpenStackStopSite stops (fences) the site's ACTIVE servers of in.Roles
// and waits until they are SHUTOFF; no other server is touched.
func (a *Activities) OpenStackStopSite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "openstack stop site", func() (provider.SiteState, error) {
		return a.compute().Stop(ctx, in)
	})
}

// OpenStackDestroySite deletes the site's servers of in.Roles (with in.Run,
// only those that run created) and waits until they are gone.
func (a *Activities) OpenStackDestroySite(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "openstack destroy site", func() (provider.SiteState, error) {
		return a.compute().Destroy(ctx, in)
	})
}

// OpenStackScaleSite makes the site's app tier exactly in.Instances servers.
func (a *Activities) OpenStackScaleSite(ctx context.Context, in provider.ScaleInput) (provider.SiteState, error) {
	return provider.Do(ctx, a.HeartbeatInterval, "openstack scale site", func() (provider.SiteState, error) {
		return a.compute().Scale(ctx, in)
	})
}
