// Package provider is the contract between Drover's runbooks and the compute
// a site runs on. A site on a cloud provider is one database instance (role
// "db") and an app tier of N instances (role "app"), each tagged (AWS) or
// given metadata (OpenStack) drover:app, drover:site and drover:role, and
// drover:run when a runbook run created it. Compute is the interface every
// cloud provider implements (subpackages aws and openstack); Activities
// exposes any of them to workflows as Temporal activities whose names carry
// the provider's prefix (AWSCreateSite, OpenStackCreateSite, …; see Names),
// and the helpers here (CheckInput, Clients, PlanScale, …) hold what the
// implementations share. The local
// provider (subpackage local) keeps its own activities: StartSite creates a
// local site on its first start.
//
// Every operation is idempotent and safe to retry: Create and Scale find what
// exists by its tags before creating anything, Stop, Start and Destroy act
// only on instances tagged for the app and site named in the input (never on
// anything else in the account or project), and every wait is bounded.
// Inputs carry the recipe's site (secret references only); cloud credentials
// come only from the SDKs' standard chains or clouds.yaml on the worker,
// never from workflow input. Errors are *Error values whose Kind says whether
// retrying can help; ActivityError turns them into Temporal application
// errors.
package provider

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/drover-sre/drover/activities/internal/cloud"
	"github.com/drover-sre/drover/recipe"
)

// Roles an instance can have in a site.
const (
	// RoleDB is the site's MariaDB server: exactly one instance.
	RoleDB = "db"
	// RoleApp is one instance of the site's application tier.
	RoleApp = "app"
)

// Roles lists every role, in the order instances are created and reported.
var Roles = []string{RoleDB, RoleApp}

// Tag (AWS) and metadata (OpenStack) keys that mark what Drover created.
const (
	// TagApp holds the recipe's app name.
	TagApp = "drover:app"
	// TagSite holds the site name.
	TagSite = "drover:site"
	// TagRole holds RoleDB or RoleApp.
	TagRole = "drover:role"
	// TagRun holds SiteInput.Run of the call that created the instance, so
	// a failed runbook can destroy exactly what it created.
	TagRun = "drover:run"
)

// Instance states, the same for every provider. Instance.ProviderState keeps
// the provider's own word.
const (
	StatePending     = "pending"     // being created or started
	StateRunning     = "running"     // running (EC2 running, Nova ACTIVE)
	StateStopping    = "stopping"    // being stopped
	StateStopped     = "stopped"     // stopped, disks kept (EC2 stopped, Nova SHUTOFF)
	StateTerminating = "terminating" // being deleted; no longer counted
	StateTerminated  = "terminated"  // deleted
	StateError       = "error"       // failed (Nova ERROR); needs Destroy
	StateUnknown     = "unknown"     // any other provider state
)

// MaxInstances is the largest app tier Scale accepts (the recipe's bound).
const MaxInstances = 100

// SiteInput names the site to act on. It is JSON-friendly and holds no
// secret: the site's database passwords are references, and cloud
// credentials are never part of it.
type SiteInput struct {
	// App is the recipe's app name; with Site.Name it selects the
	// instances (tags drover:app and drover:site).
	App string `json:"app"`
	// Site is the recipe's site: provider, region, app tier size and the
	// compute block (aws or openstack) instances are created from.
	Site recipe.Site `json:"site"`
	// Roles limits Start, Stop and Destroy to these roles ("db", "app");
	// empty means every role. Create and Inspect ignore it.
	Roles []string `json:"roles,omitempty"`
	// Run identifies the runbook run. Create and Scale tag what they
	// create with it (drover:run); Destroy with Run set deletes only the
	// instances tagged with it, so a failed clone removes exactly what it
	// created and nothing that was there before.
	Run string `json:"run,omitempty"`
	// Force makes Stop a hard power-off (EC2 StopInstances Force, without
	// an orderly OS shutdown): what fencing a hung primary needs. Nova has
	// no hard stop; the openstack provider ignores it.
	Force bool `json:"force,omitempty"`
	// Request is the idempotency key of this request: retries of the same
	// request must reuse it, different requests must not. The activities
	// derive it from the activity's workflow, run and activity ids when it
	// is empty; direct callers may leave it empty.
	Request string `json:"request,omitempty"`
}

// ScaleInput asks for a site's app tier to have exactly Instances
// instances. The database instance is never touched.
type ScaleInput struct {
	// App and Site select the site, as in SiteInput.
	App  string      `json:"app"`
	Site recipe.Site `json:"site"`
	// Instances is the wanted app tier size, 0 to MaxInstances.
	Instances int `json:"instances"`
	// Run tags the instances Scale creates, as SiteInput.Run.
	Run string `json:"run,omitempty"`
	// Request is the idempotency key, as SiteInput.Request.
	Request string `json:"request,omitempty"`
}

// SiteInput returns the SiteInput that selects the same site as in.
func (in ScaleInput) SiteInput() SiteInput {
	return SiteInput{App: in.App, Site: in.Site, Run: in.Run, Request: in.Request}
}

// Instance is one instance of a site as its provider reports it.
type Instance struct {
	ID            string    `json:"id"`
	Name          string    `json:"name,omitempty"`
	Role          string    `json:"role"`
	State         string    `json:"state"`          // one of the State* constants
	ProviderState string    `json:"provider_state"` // the provider's own state, e.g. "running", "SHUTOFF"
	PrivateIP     string    `json:"private_ip,omitempty"`
	PublicIP      string    `json:"public_ip,omitempty"`
	Run           string    `json:"run,omitempty"` // its drover:run tag
	LaunchedAt    time.Time `json:"launched_at,omitzero"`
	// Reason explains an unexpected state (EC2 state reason, Nova fault).
	Reason string `json:"reason,omitempty"`
}

// Live reports whether the instance counts towards its site: it is neither
// being deleted nor deleted.
func (i Instance) Live() bool {
	return i.State != StateTerminating && i.State != StateTerminated
}

// SiteState is what a provider knows about a site's instances after an
// operation, with what that operation did.
type SiteState struct {
	// Provider, App, Site and Region name the site.
	Provider string `json:"provider"`
	App      string `json:"app"`
	Site     string `json:"site"`
	Region   string `json:"region,omitempty"`
	// Instances are the site's instances that are not yet deleted, db
	// first, then app instances by name and id.
	Instances []Instance `json:"instances"`
	// Created lists the ids this call created (the compensation of a
	// create or scale-up is to destroy exactly these).
	Created []string `json:"created,omitempty"`
	// Changed lists the ids this call started, stopped or deleted.
	Changed []string `json:"changed,omitempty"`
}

// Role returns the live instances with role, in report order.
func (s SiteState) Role(role string) []Instance { return Live(s.Instances, role) }

// Running reports whether the site has its database instance and every
// live instance runs.
func (s SiteState) Running() bool {
	if len(s.Role(RoleDB)) == 0 {
		return false
	}
	for _, i := range s.Instances {
		if i.Live() && i.State != StateRunning {
			return false
		}
	}
	return true
}

// Stopped reports whether no live instance of the given roles (all when
// none is given) is running or on its way to running: the fenced state.
func (s SiteState) Stopped(roles ...string) bool {
	for _, i := range s.Instances {
		if i.Live() && (len(roles) == 0 || slices.Contains(roles, i.Role)) && i.State != StateStopped && i.State != StateError {
			return false
		}
	}
	return true
}

// Addresses returns the private addresses of the running instances with
// role, in report order.
func (s SiteState) Addresses(role string) []string {
	var out []string
	for _, i := range s.Role(role) {
		if i.State == StateRunning && i.PrivateIP != "" {
			out = append(out, i.PrivateIP)
		}
	}
	return out
}

// Compute manages the instances of sites on one provider. Implementations
// are safe for concurrent use. Every method checks its input before any API
// call (a bad recipe is a Config error and nothing is created), acts only
// on instances tagged for in.App and in.Site.Name, bounds every wait, and
// returns the site's state after acting.
type Compute interface {
	// Create makes the site exist: one database instance and
	// Site.App.Instances app instances, created from the site's compute
	// block and tagged. Instances that already exist (found by tags) count;
	// calling it again creates nothing. It waits until the instances it
	// created, and any still pending, run. It never starts a stopped
	// instance (a fenced site stays fenced; use Start) and never deletes.
	Create(ctx context.Context, in SiteInput) (SiteState, error)
	// Inspect reports the site's instances, their states and addresses,
	// changing nothing.
	Inspect(ctx context.Context, in SiteInput) (SiteState, error)
	// Start starts the stopped instances of in.Roles and waits until they
	// run.
	Start(ctx context.Context, in SiteInput) (SiteState, error)
	// Stop stops the running instances of in.Roles (fencing) and waits
	// until they are stopped. Instances of other sites are never touched.
	Stop(ctx context.Context, in SiteInput) (SiteState, error)
	// Destroy deletes the instances of in.Roles that Drover created for
	// the app and site (with in.Run set, only those tagged with that run)
	// and waits until they are gone. Destroying what is gone is a no-op.
	Destroy(ctx context.Context, in SiteInput) (SiteState, error)
	// Scale makes the app tier exactly in.Instances instances: it creates
	// the missing ones (as Create does) or deletes the surplus (stopped or
	// failed ones first, then the newest), and waits.
	Scale(ctx context.Context, in ScaleInput) (SiteState, error)
}

// ActivityNames are the Temporal activity names of one provider's Compute
// operations, for a workflow that picks the provider at run time:
// workflow.ExecuteActivity(ctx, names.Create, in).
type ActivityNames struct {
	Create, Inspect, Start, Stop, Destroy, Scale string
}

// Names returns the activity names of a cloud provider ("aws",
// "openstack"): its prefix ("AWS", "OpenStack") before the name of each
// method of Activities. The local provider has no such set (its StartSite
// creates a site on first start; see package local) and gives false.
func Names(providerName string) (ActivityNames, bool) {
	p, ok := prefix(providerName)
	if !ok {
		return ActivityNames{}, false
	}
	return ActivityNames{
		Create: p + "CreateSite", Inspect: p + "InspectSite", Start: p + "StartSite",
		Stop: p + "StopSite", Destroy: p + "DestroySite", Scale: p + "ScaleSite",
	}, true
}

// prefix returns the activity name prefix of a cloud provider.
func prefix(providerName string) (string, bool) {
	switch providerName {
	case recipe.ProviderAWS:
		return "AWS", true
	case recipe.ProviderOpenStack:
		return "OpenStack", true
	}
	return "", false
}

// Kind classifies a provider error by what can fix it. It is the
// classification the dns package uses too; a provider gives each kind the
// meaning below.
type Kind = cloud.Kind

const (
	// Transient errors may go away by themselves: network failures,
	// timeouts, server errors, an instance in a state that is about to
	// change, a wait that ran out. Retrying later is right.
	Transient = cloud.Transient
	// Throttled means the provider asked the caller to slow down (EC2
	// RequestLimitExceeded, Nova 413/429 over limit). Retrying with backoff
	// is right.
	Throttled = cloud.Throttled
	// Quota means the account, project or zone cannot hold more: an
	// instance or vCPU limit, a Nova quota, no capacity for the instance
	// type. Retrying cannot help until a person raises the quota or picks
	// another type, flavor or zone.
	Quota = cloud.Quota
	// Auth means the credentials or the permissions were refused. Retrying
	// cannot help until a person fixes the credentials or the policy.
	Auth = cloud.Auth
	// Config means the request can never succeed as given: a bad or
	// missing recipe field, an unknown image, subnet or flavor, a region
	// without the service. Retrying cannot help.
	Config = cloud.Config
	// Failed means an instance broke on its way up (terminated at launch,
	// Nova ERROR). Retrying cannot repair it: destroy the site and create
	// it again.
	Failed = cloud.Failed
)

// errTypePrefix starts the application error type of every provider
// activity error: a Kind k gives the type k.ErrType(errTypePrefix), one of
// the ErrType* constants.
const errTypePrefix = "Provider"

// Application error types of the provider activities, for a workflow's
// RetryPolicy and for reports. Only ErrTypeTransient and ErrTypeThrottled
// are retryable.
const (
	ErrTypeTransient = "ProviderTransient"      // Transient; retryable
	ErrTypeThrottled = "ProviderThrottled"      // Throttled; retryable
	ErrTypeQuota     = "ProviderQuota"          // Quota; not retryable
	ErrTypeAuth      = "ProviderAuth"           // Auth; not retryable
	ErrTypeConfig    = "ProviderConfig"         // Config; not retryable
	ErrTypeFailed    = "ProviderInstanceFailed" // Failed; not retryable
)

// Error is a failed provider operation. Its message names the operation,
// the site and where the request went, and never holds a secret.
type Error struct {
	Op     string // what was attempted, e.g. "aws create"
	Site   string // the site, e.g. "west"; may be empty
	Target string // where: "eu-west-1", "compute RegionOne"; may be empty
	Kind   Kind
	Msg    string // what went wrong, for a person
	Err    error  // the underlying error, if any
}

// Error formats e as "OP site SITE in TARGET: MSG", leaving out empty parts.
func (e *Error) Error() string {
	return cloud.Text(e.Op, e.Msg, e.Err, "site", e.Site, "in", e.Target)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first *Error in err's chain, and Transient
// for any other error.
func KindOf(err error) Kind {
	return cloud.KindOf(err, func(e *Error) Kind { return e.Kind })
}

// ActivityError turns a provider error into the error a workflow sees: a
// Temporal application error whose type is the one of its Kind (ErrType*),
// retryable only for Transient and Throttled. The message is the error's
// whole text; the cause chain is not attached (Temporal would only repeat
// it). A cancelled activity returns its context's error.
func ActivityError(ctx context.Context, err error) error {
	return cloud.ActivityError(ctx, err, KindOf(err), errTypePrefix)
}

// CheckInput checks what every operation needs before any API call: the app
// and site names (they become tag values and server names), that the site
// belongs to providerName, a region, the roles, and the site's compute
// fields (recipe.Site.ValidateCompute; with create the compute block must
// be present). Every problem is a Config error naming the recipe field.
func CheckInput(op, providerName string, in SiteInput, create bool) error {
	s := in.Site
	fail := func(format string, args ...any) error {
		return &Error{Op: op, Site: s.Name, Kind: Config, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case !recipe.ValidName(in.App):
		return fail("app %q is not a valid app name", in.App)
	case !recipe.ValidName(s.Name):
		return fail("sites[].name %q is not a valid site name", s.Name)
	case s.Provider != providerName:
		return fail("provider is %q; the %s provider manages only provider %q sites", s.Provider, providerName, providerName)
	case s.Region == "":
		return fail("region: required for provider %s", providerName)
	}
	for _, r := range in.Roles {
		if !slices.Contains(Roles, r) {
			return fail("roles: unknown role %q (want %q or %q)", r, RoleDB, RoleApp)
		}
	}
	if len(in.Run) > 255 || strings.ContainsFunc(in.Run, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fail("run: at most 255 printable characters")
	}
	if err := s.ValidateCompute(create); err != nil {
		return fail("recipe: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}

// CheckScale checks a ScaleInput as CheckInput does, and the wanted size.
// The compute block is needed only to create instances, so it is checked
// by the caller once it knows it must create some.
func CheckScale(op, providerName string, in ScaleInput) error {
	if err := CheckInput(op, providerName, in.SiteInput(), false); err != nil {
		return err
	}
	if in.Instances < 0 || in.Instances > MaxInstances {
		return &Error{Op: op, Site: in.Site.Name, Kind: Config, Msg: fmt.Sprintf("instances: %d is not 0-%d", in.Instances, MaxInstances)}
	}
	return nil
}

// Want returns how many instances of each role Create makes for s: one
// database instance and s.App.Instances app instances (at least one).
func Want(s recipe.Site) map[string]int {
	return map[string]int{RoleDB: 1, RoleApp: max(s.App.Instances, 1)}
}

// Selected reports whether role is among roles (empty means all).
func Selected(roles []string, role string) bool {
	return len(roles) == 0 || slices.Contains(roles, role)
}

// Sort puts instances in report order: db first, then app, each by name,
// launch time and id.
func Sort(is []Instance) {
	rank := func(r string) int {
		if i := slices.Index(Roles, r); i >= 0 {
			return i
		}
		return len(Roles)
	}
	slices.SortFunc(is, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(rank(a.Role), rank(b.Role)), cmp.Compare(a.Name, b.Name),
			a.LaunchedAt.Compare(b.LaunchedAt), cmp.Compare(a.ID, b.ID))
	})
}

// Surplus picks n of the live instances to delete when scaling down: failed
// ones first, then stopped ones, then the most recently launched, so the
// longest-serving instances stay.
func Surplus(live []Instance, n int) []Instance {
	order := slices.Clone(live)
	rank := func(i Instance) int {
		switch i.State {
		case StateError:
			return 0
		case StateStopped, StateStopping:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(order, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), b.LaunchedAt.Compare(a.LaunchedAt), cmp.Compare(b.Name, a.Name), cmp.Compare(b.ID, a.ID))
	})
	return order[:min(max(n, 0), len(order))]
}

// IDs returns the ids of is.
func IDs(is []Instance) []string {
	out := make([]string, len(is))
	for i, x := range is {
		out[i] = x.ID
	}
	return out
}

// Live returns the live instances of is with role, in their order.
func Live(is []Instance, role string) []Instance {
	var out []Instance
	for _, i := range is {
		if i.Role == role && i.Live() {
			out = append(out, i)
		}
	}
	return out
}

// OfRoles returns the instances of is whose role is among roles (empty
// means all), in their order.
func OfRoles(is []Instance, roles []string) []Instance {
	var out []Instance
	for _, i := range is {
		if Selected(roles, i.Role) {
			out = append(out, i)
		}
	}
	return out
}

// IDsIn returns the ids of the instances of is that are in one of states.
func IDsIn(is []Instance, states ...string) []string {
	var out []string
	for _, i := range is {
		if slices.Contains(states, i.State) {
			out = append(out, i.ID)
		}
	}
	return out
}

// Union returns the ids of a, then those of b that are not in a.
func Union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// ScalePlan is what Scale must do to a site's app tier: create Add app
// instances, or delete Remove, or (both empty) nothing.
type ScalePlan struct {
	// Apps are the site's live app instances.
	Apps []Instance
	// Add is how many app instances to create.
	Add int
	// Remove are the app instances to delete (Surplus).
	Remove []Instance
}

// PlanScale returns what Scale must do to give the site whose instances
// are all exactly in.Instances app instances. When it must create some, it
// first checks the site's compute block (CheckInput with create), which
// only creating needs; a missing or bad block is a Config error.
func PlanScale(op, providerName string, in ScaleInput, all []Instance) (ScalePlan, error) {
	p := ScalePlan{Apps: Live(all, RoleApp)}
	switch n := len(p.Apps); {
	case n < in.Instances:
		if err := CheckInput(op, providerName, in.SiteInput(), true); err != nil {
			return ScalePlan{}, err
		}
		p.Add = in.Instances - n
	case n > in.Instances:
		p.Remove = Surplus(p.Apps, n-in.Instances)
	}
	return p, nil
}

// Clients keeps one API client per region for a Compute implementation.
// The zero value is ready to use; it is safe for concurrent use.
type Clients[C any] struct {
	mu sync.Mutex
	m  map[string]C
}

// Open checks in for op as CheckInput does (nothing is built for bad
// input) and returns the client of its site's region, built on first use
// by build, or by def when build is nil. A failed build is not kept; its
// *Error gets the site (WithSite).
func (cs *Clients[C]) Open(ctx context.Context, op, providerName string, in SiteInput, create bool,
	build, def func(ctx context.Context, region string) (C, error)) (C, error) {
	var none C
	if err := CheckInput(op, providerName, in, create); err != nil {
		return none, err
	}
	region := in.Site.Region
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.m[region]; ok {
		return c, nil
	}
	if build == nil {
		build = def
	}
	c, err := build(ctx, region)
	if err != nil {
		return none, WithSite(err, in.Site.Name)
	}
	if cs.m == nil {
		cs.m = map[string]C{}
	}
	cs.m[region] = c
	return c, nil
}

// Token returns a deterministic idempotency token (64 characters at most)
// for one create request: the same parts give the same token, so a retried
// request cannot create twice, and any change in them gives another.
func Token(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "drover-" + hex.EncodeToString(h[:24])
}

// RequestKey returns request when it is set. Otherwise, inside an
// activity, it returns a key derived from the activity's workflow id, run
// id and activity id: the same for every attempt of one activity, different
// for every other activity call. Outside an activity it returns a random
// key: each call is then a request of its own.
func RequestKey(ctx context.Context, request string) string {
	if request != "" {
		return request
	}
	if !activity.IsActivity(ctx) {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	info := activity.GetInfo(ctx)
	return Token(info.WorkflowExecution.ID, info.WorkflowExecution.RunID, info.ActivityID)
}

// WithSite fills in the site of a *Error that has none (errors from a
// client factory do not know the site) and returns err.
func WithSite(err error, site string) error {
	var e *Error
	if errors.As(err, &e) && e.Site == "" {
		e.Site = site
	}
	return err
}
