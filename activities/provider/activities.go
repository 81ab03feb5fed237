package provider

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/drover-sre/drover/activities/internal/cloud"
)

// DefaultHeartbeatInterval is how often the provider activities heartbeat
// while an operation waits on the cloud.
const DefaultHeartbeatInterval = 10 * time.Second

// Activities exposes one cloud provider's Compute to workflows. Registered
// by Register, its methods become the activities Names lists for the
// provider: AWSCreateSite, AWSInspectSite, … for "aws",
// OpenStackCreateSite, … for "openstack". Workflows call them by those
// names (never by method value: a method value would name "CreateSite",
// which no worker registers). Every exported method is an activity.
//
// Every activity is idempotent and safe to retry; it heartbeats while it
// waits on the cloud (give it a HeartbeatTimeout above HeartbeatInterval
// and a StartToCloseTimeout above the Compute's wait timeout), and its
// errors are Temporal application errors of the ErrType* types:
// ProviderThrottled and ProviderTransient are retryable, ProviderQuota,
// ProviderAuth, ProviderConfig and ProviderInstanceFailed are not.
type Activities struct {
	// Provider is the recipe's provider name ("aws", "openstack"). It
	// picks the activity names and names the operations in logs.
	Provider string
	// Compute does the work (required): an *aws.Compute or
	// *openstack.Compute, whose zero values use the worker's standard
	// credentials.
	Compute Compute
	// HeartbeatInterval is how often a waiting activity heartbeats; zero
	// means DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
}

// Registry is the part of a Temporal worker (worker.ActivityRegistry) or
// test environment that Register needs.
type Registry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register registers the methods of a with w under the names
// Names(a.Provider) gives: the provider's prefix before each method name.
// It panics for a provider without activity names, as a worker's
// registration panics on a bad registration, rather than register
// unprefixed names that would clash with the local provider's StartSite
// and StopSite.
func Register(w Registry, a *Activities) {
	p, ok := prefix(a.Provider)
	if !ok {
		panic(fmt.Sprintf("provider %q has no activities to register", a.Provider))
	}
	w.RegisterActivityWithOptions(a, activity.RegisterOptions{Name: p})
}

// CreateSite creates the site's instances that do not exist yet (one
// database instance and site.app.instances app instances) and waits until
// they run. See Compute.Create.
func (a *Activities) CreateSite(ctx context.Context, in SiteInput) (SiteState, error) {
	return a.do(ctx, "create site", func() (SiteState, error) { return a.Compute.Create(ctx, in) })
}

// InspectSite reports the site's instances, states and addresses. See
// Compute.Inspect.
func (a *Activities) InspectSite(ctx context.Context, in SiteInput) (SiteState, error) {
	return a.do(ctx, "inspect site", func() (SiteState, error) { return a.Compute.Inspect(ctx, in) })
}

// StartSite starts the site's stopped instances of in.Roles and waits until
// they run. See Compute.Start.
func (a *Activities) StartSite(ctx context.Context, in SiteInput) (SiteState, error) {
	return a.do(ctx, "start site", func() (SiteState, error) { return a.Compute.Start(ctx, in) })
}

// StopSite stops (fences) the site's running instances of in.Roles and
// waits until they are stopped; no other instance is touched. See
// Compute.Stop.
func (a *Activities) StopSite(ctx context.Context, in SiteInput) (SiteState, error) {
	return a.do(ctx, "stop site", func() (SiteState, error) { return a.Compute.Stop(ctx, in) })
}

// DestroySite deletes the site's instances of in.Roles (with in.Run, only
// those that run created) and waits until they are gone. See
// Compute.Destroy.
func (a *Activities) DestroySite(ctx context.Context, in SiteInput) (SiteState, error) {
	return a.do(ctx, "destroy site", func() (SiteState, error) { return a.Compute.Destroy(ctx, in) })
}

// ScaleSite makes the site's app tier exactly in.Instances instances. See
// Compute.Scale.
func (a *Activities) ScaleSite(ctx context.Context, in ScaleInput) (SiteState, error) {
	return a.do(ctx, "scale site", func() (SiteState, error) { return a.Compute.Scale(ctx, in) })
}

// do runs one Compute operation as the body of an activity: it heartbeats
// while op runs, logs what the operation created or changed, and returns
// op's error as ActivityError makes it.
func (a *Activities) do(ctx context.Context, what string, op func() (SiteState, error)) (SiteState, error) {
	interval := a.HeartbeatInterval
	if interval <= 0 {
		interval = DefaultHeartbeatInterval
	}
	var st SiteState
	err := cloud.Heartbeating(ctx, interval, func() error {
		var err error
		st, err = op()
		return err
	})
	if err != nil {
		return st, ActivityError(ctx, err)
	}
	if activity.IsActivity(ctx) && (len(st.Created) > 0 || len(st.Changed) > 0) {
		activity.GetLogger(ctx).Info(a.Provider+" "+what, "app", st.App, "site", st.Site, "created", st.Created, "changed", st.Changed)
	}
	return st, nil
}
