// Package openstack is Drover's provider for sites on OpenStack Nova. A site
// is one database server and an app tier of servers, created from the
// site's recipe block (image, flavor, network, key pair, security groups)
// with the metadata drover:app, drover:site, drover:role (and drover:run).
// Servers have deterministic names — drover-<app>-<site>-db and
// drover-<app>-<site>-app-<n> — and every operation lists the site's
// servers by name prefix and keeps only those whose metadata names the app,
// site and a role, so creating twice creates nothing the second time (Nova
// has no client token: a create whose answer was lost is found by the next
// attempt's listing) and stopping or deleting never touches another site's
// server. Every wait polls a bounded number of times within WaitTimeout.
//
// Compute implements provider.Compute; provider.Activities with Provider
// "openstack" exposes it to workflows as the activities
// OpenStackCreateSite, OpenStackInspectSite, OpenStackStartSite,
// OpenStackStopSite, OpenStackDestroySite and OpenStackScaleSite.
// Credentials come only from clouds.yaml (OS_CLOUD) or the OS_* environment
// variables on the worker (package internal/keystone reads them).
package openstack

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/drover-sre/drover/activities/internal/keystone"
	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/recipe"
)

// Defaults of Compute's zero fields.
const (
	// DefaultPollInterval is how often a wait lists the site's servers.
	DefaultPollInterval = 5 * time.Second
	// DefaultWaitTimeout bounds each wait for servers to become ACTIVE,
	// SHUTOFF or deleted.
	DefaultWaitTimeout = 10 * time.Minute
	// maxPages bounds how many pages one listing reads.
	maxPages = 50
)

// ClientFunc builds the Nova (compute v2) client of a region. It runs on
// the worker, so it may read credentials; nothing it reads may reach a
// result or an error.
type ClientFunc func(ctx context.Context, region string) (*gophercloud.ServiceClient, error)

// NewClient authenticates to Keystone the standard gophercloud way and
// returns the compute client of region. With OS_CLOUD set, credentials and
// interface come from clouds.yaml (and secure.yaml), found as
// python-openstackclient finds them; otherwise from the OS_* environment
// variables. The region is always the site's: a region without a compute
// endpoint in the catalog is a Config error, found before anything is
// created. The client re-authenticates when its token expires.
func NewClient(ctx context.Context, region string) (*gophercloud.ServiceClient, error) {
	const op = "openstack client"
	cfg, err := keystone.Load()
	if err != nil {
		return nil, &provider.Error{Op: op, Target: region, Kind: provider.Config, Msg: err.Error(), Err: err}
	}
	cfg.Endpoint.Region = region
	pc, err := cfg.Authenticate(ctx)
	if err != nil {
		return nil, classify(op+": keystone auth", "", cfg.Auth.IdentityEndpoint, err)
	}
	sc, err := openstack.NewComputeV2(pc, cfg.Endpoint)
	if err != nil {
		return nil, classify(op, "", "region "+region, err)
	}
	return sc, nil
}

// Compute manages sites on Nova. The zero value is ready to use; it builds
// one client per region on first use and keeps it.
type Compute struct {
	// NewClient builds a region's client; nil means NewClient. Tests may
	// return a hand-built ServiceClient.
	NewClient ClientFunc
	// PollInterval is how often a wait lists the servers; zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// WaitTimeout bounds each wait; zero means DefaultWaitTimeout.
	WaitTimeout time.Duration

	clients provider.Clients[*gophercloud.ServiceClient]
}

var _ provider.Compute = (*Compute)(nil)

// site is one operation on one site.
type site struct {
	c  *Compute
	op string
	in provider.SiteInput
	sc *gophercloud.ServiceClient
}

// begin checks in (before any API call) and returns the operation's site.
func (c *Compute) begin(ctx context.Context, op string, in provider.SiteInput, create bool) (*site, error) {
	sc, err := c.clients.Open(ctx, op, recipe.ProviderOpenStack, in, create, c.NewClient, NewClient)
	if err != nil {
		return nil, err
	}
	return &site{c: c, op: op, in: in, sc: sc}, nil
}

func (s *site) fail(kind provider.Kind, format string, args ...any) error {
	return &provider.Error{Op: s.op, Site: s.in.Site.Name, Target: s.target(), Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

func (s *site) target() string { return "region " + s.in.Site.Region }

func (s *site) apiError(call string, err error) error {
	e := classify(s.op, s.in.Site.Name, s.target(), err).(*provider.Error)
	e.Msg = call + ": " + e.Msg
	return e
}

// prefix is the name prefix of the site's servers.
func (s *site) prefix() string { return fmt.Sprintf("drover-%s-%s-", s.in.App, s.in.Site.Name) }

// serverName is the name of the database server, or of app server n (from 1).
func (s *site) serverName(role string, n int) string {
	if role == provider.RoleDB {
		return s.prefix() + "db"
	}
	return s.prefix() + "app-" + strconv.Itoa(n)
}

// Create implements provider.Compute.
func (c *Compute) Create(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, err := c.begin(ctx, "openstack create", in, true)
	if err != nil {
		return provider.SiteState{}, err
	}
	all, err := s.list(ctx)
	if err != nil {
		return provider.SiteState{}, err
	}
	want := provider.Want(in.Site)
	var names []string
	for _, role := range provider.Roles {
		names = append(names, s.missing(all, role, want[role])...)
	}
	created, err := s.create(ctx, names)
	if err != nil {
		return provider.SiteState{}, err
	}
	// A server left in ERROR by an earlier attempt fails the create too:
	// it will not heal, the site must be destroyed (or scaled) to replace it.
	all, err = s.waitFor(ctx, provider.StateRunning, provider.Union(created, provider.IDsIn(all, provider.StatePending, provider.StateError)))
	if err != nil {
		return provider.SiteState{}, err
	}
	return s.state(all, created, nil), nil
}

// Inspect implements provider.Compute.
func (c *Compute) Inspect(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, err := c.begin(ctx, "openstack inspect", in, false)
	if err != nil {
		return provider.SiteState{}, err
	}
	all, err := s.list(ctx)
	if err != nil {
		return provider.SiteState{}, err
	}
	return s.state(all, nil, nil), nil
}

// Start implements provider.Compute with os-start on every SHUTOFF server
// of in.Roles, then waits until every selected server is ACTIVE.
func (c *Compute) Start(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, sel, err := c.selection(ctx, "openstack start", in)
	if err != nil {
		return provider.SiteState{}, err
	}
	stopped := provider.IDsIn(sel, provider.StateStopped)
	for _, id := range stopped {
		if err := servers.Start(ctx, s.sc, id).ExtractErr(); err != nil {
			return provider.SiteState{}, s.apiError("start server "+id, err)
		}
	}
	all, err := s.waitFor(ctx, provider.StateRunning, provider.Union(stopped, provider.IDsIn(sel, provider.StatePending)))
	if err != nil {
		return provider.SiteState{}, err
	}
	return s.state(all, nil, stopped), nil
}

// Stop implements provider.Compute: servers still building are first
// awaited, then os-stop goes to every ACTIVE server of in.Roles, and the
// wait lasts until all of them are SHUTOFF.
func (c *Compute) Stop(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, sel, err := c.selection(ctx, "openstack stop", in)
	if err != nil {
		return provider.SiteState{}, err
	}
	if pending := provider.IDsIn(sel, provider.StatePending); len(pending) > 0 {
		all, err := s.waitFor(ctx, provider.StateRunning, pending)
		if err != nil {
			return provider.SiteState{}, err
		}
		sel = provider.OfRoles(all, in.Roles)
	}
	running := provider.IDsIn(sel, provider.StateRunning)
	for _, id := range running {
		if err := servers.Stop(ctx, s.sc, id).ExtractErr(); err != nil {
			return provider.SiteState{}, s.apiError("stop server "+id, err)
		}
	}
	all, err := s.waitFor(ctx, provider.StateStopped, provider.Union(running, provider.IDsIn(sel, provider.StateStopping)))
	if err != nil {
		return provider.SiteState{}, err
	}
	return s.state(all, nil, running), nil
}

// selection opens a session for op and lists the site's instances of
// in.Roles.
func (c *Compute) selection(ctx context.Context, op string, in provider.SiteInput) (*site, []provider.Instance, error) {
	s, err := c.begin(ctx, op, in, false)
	if err != nil {
		return nil, nil, err
	}
	all, err := s.list(ctx)
	if err != nil {
		return nil, nil, err
	}
	return s, provider.OfRoles(all, in.Roles), nil
}

// Destroy implements provider.Compute: it deletes the selected servers
// (with in.Run, only those created by that run) and waits until Nova no
// longer lists them.
func (c *Compute) Destroy(ctx context.Context, in provider.SiteInput) (provider.SiteState, error) {
	s, sel, err := c.selection(ctx, "openstack destroy", in)
	if err != nil {
		return provider.SiteState{}, err
	}
	if in.Run != "" {
		sel = slices.DeleteFunc(sel, func(i provider.Instance) bool { return i.Run != in.Run })
	}
	deleted, all, err := s.delete(ctx, sel)
	if err != nil {
		return provider.SiteState{}, err
	}
	return s.state(all, nil, deleted), nil
}

// Scale implements provider.Compute. New app servers take the lowest free
// numbers; the surplus goes failed and stopped servers first, then the
// newest.
func (c *Compute) Scale(ctx context.Context, in provider.ScaleInput) (provider.SiteState, error) {
	const op = "openstack scale"
	if err := provider.CheckScale(op, recipe.ProviderOpenStack, in); err != nil {
		return provider.SiteState{}, err
	}
	s, err := c.begin(ctx, op, in.SiteInput(), false)
	if err != nil {
		return provider.SiteState{}, err
	}
	all, err := s.list(ctx)
	if err != nil {
		return provider.SiteState{}, err
	}
	plan, err := provider.PlanScale(op, recipe.ProviderOpenStack, in, all)
	if err != nil {
		return provider.SiteState{}, err
	}
	switch {
	case plan.Add > 0:
		created, err := s.create(ctx, s.missing(all, provider.RoleApp, in.Instances))
		if err != nil {
			return provider.SiteState{}, err
		}
		all, err = s.waitFor(ctx, provider.StateRunning, provider.Union(created, provider.IDsIn(plan.Apps, provider.StatePending)))
		if err != nil {
			return provider.SiteState{}, err
		}
		return s.state(all, created, nil), nil
	case len(plan.Remove) > 0:
		deleted, all, err := s.delete(ctx, plan.Remove)
		if err != nil {
			return provider.SiteState{}, err
		}
		return s.state(all, nil, deleted), nil
	}
	return s.state(all, nil, nil), nil
}

// missing returns the names of the servers of role to create so that the
// site has want live ones: the lowest numbers not in use.
func (s *site) missing(all []provider.Instance, role string, want int) []string {
	have := provider.Live(all, role)
	need := want - len(have)
	if need <= 0 {
		return nil
	}
	if role == provider.RoleDB {
		return []string{s.serverName(role, 0)}
	}
	used := map[string]bool{}
	for _, i := range all {
		used[i.Name] = true
	}
	var out []string
	for n := 1; len(out) < need && n <= provider.MaxInstances+len(all); n++ {
		if name := s.serverName(role, n); !used[name] {
			out = append(out, name)
		}
	}
	return out
}

// create creates the named servers one by one and returns their ids. The
// flavor is resolved (by id, then by name) before the first create, so an
// unknown flavor fails before anything exists.
func (s *site) create(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	o := s.in.Site.OpenStack
	flavor, err := s.flavor(ctx, o.Flavor)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, name := range names {
		role := provider.RoleApp
		if strings.HasSuffix(name, "-db") {
			role = provider.RoleDB
		}
		md := map[string]string{provider.TagApp: s.in.App, provider.TagSite: s.in.Site.Name, provider.TagRole: role}
		if s.in.Run != "" {
			md[provider.TagRun] = s.in.Run
		}
		opts := keypairs.CreateOptsExt{
			CreateOptsBuilder: servers.CreateOpts{
				Name: name, ImageRef: o.Image, FlavorRef: flavor,
				Networks: []servers.Network{{UUID: o.Network}}, Metadata: md,
				SecurityGroups: slices.Clone(o.SecurityGroups),
			},
			KeyName: o.KeyPair,
		}
		srv, err := servers.Create(ctx, s.sc, opts, nil).Extract()
		if err != nil {
			return ids, s.apiError("create server "+name, err)
		}
		ids = append(ids, srv.ID)
	}
	return ids, nil
}

// flavor returns the id of the flavor whose id or name is ref.
func (s *site) flavor(ctx context.Context, ref string) (string, error) {
	var all []flavors.Flavor
	pages := 0
	err := flavors.ListDetail(s.sc, flavors.ListOpts{AccessType: flavors.AllAccess}).EachPage(ctx,
		func(_ context.Context, page pagination.Page) (bool, error) {
			fs, err := flavors.ExtractFlavors(page)
			if err != nil {
				return false, err
			}
			all = append(all, fs...)
			pages++
			return pages < maxPages, nil
		})
	if err != nil {
		return "", s.apiError("list flavors", err)
	}
	var byName []string
	for _, f := range all {
		if f.ID == ref {
			return f.ID, nil
		}
		if f.Name == ref {
			byName = append(byName, f.ID)
		}
	}
	switch len(byName) {
	case 1:
		return byName[0], nil
	case 0:
		return "", s.fail(provider.Config, "flavor %q: no flavor with this id or name in %s (check the site's openstack.flavor)", ref, s.target())
	}
	return "", s.fail(provider.Config, "flavor %q: %d flavors have this name; give its id in openstack.flavor", ref, len(byName))
}

// delete deletes the servers that are still live and waits until none of
// is is listed any more. It returns the ids it deleted and the last listing.
func (s *site) delete(ctx context.Context, is []provider.Instance) ([]string, []provider.Instance, error) {
	var ids []string
	for _, i := range is {
		if !i.Live() {
			continue
		}
		err := servers.Delete(ctx, s.sc, i.ID).ExtractErr()
		if err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return ids, nil, s.apiError("delete server "+i.ID, err)
		}
		ids = append(ids, i.ID)
	}
	all, err := s.waitFor(ctx, provider.StateTerminated, provider.IDs(is))
	return ids, all, err
}

// waitFor lists the site every PollInterval until every server in ids is
// in state want (StateTerminated: no longer listed), at most WaitTimeout
// and a matching number of listings. A server in ERROR, or one that
// vanishes while it should come up, ends the wait at once. It returns the
// last listing.
func (s *site) waitFor(ctx context.Context, want string, ids []string) ([]provider.Instance, error) {
	interval, timeout := s.c.PollInterval, s.c.WaitTimeout
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}
	deadline := time.Now().Add(timeout)
	maxPolls := int(timeout/interval) + 2
	for poll := 0; ; poll++ {
		all, err := s.list(ctx)
		if err != nil {
			return nil, err
		}
		var waiting []string
		for _, id := range ids {
			idx := slices.IndexFunc(all, func(i provider.Instance) bool { return i.ID == id })
			switch {
			case idx < 0 && want == provider.StateTerminated:
			case idx < 0:
				return all, s.fail(provider.Failed, "server %s disappeared while waiting for it to be %s", id, want)
			case all[idx].State == provider.StateError && want != provider.StateTerminated:
				i := all[idx]
				kind := provider.Failed
				if isCapacity(i.Reason) {
					kind = provider.Quota
				}
				return all, s.fail(kind, "server %s (%s) is in status ERROR: %s", i.Name, i.ID, cmp.Or(i.Reason, "no fault reported"))
			case all[idx].State != want:
				waiting = append(waiting, fmt.Sprintf("%s %s", all[idx].Name, all[idx].ProviderState))
			}
		}
		if len(waiting) == 0 {
			return all, nil
		}
		if poll+1 >= maxPolls || !time.Now().Add(interval).Before(deadline) {
			return all, s.fail(provider.Transient, "servers not %s after waiting up to %s: %v", want, timeout, waiting)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return all, s.fail(provider.Transient, "waiting for servers to be %s: %v", want, ctx.Err())
		case <-t.C:
		}
	}
}

// list returns the site's servers: listed by name prefix (Nova's name
// filter is a regular expression), then kept only when their metadata
// names this app and site and a known role.
func (s *site) list(ctx context.Context) ([]provider.Instance, error) {
	pager := servers.List(s.sc, servers.ListOpts{Name: "^" + regexp.QuoteMeta(s.prefix())})
	var out []provider.Instance
	pages := 0
	err := pager.EachPage(ctx, func(_ context.Context, page pagination.Page) (bool, error) {
		all, err := servers.ExtractServers(page)
		if err != nil {
			return false, err
		}
		for _, srv := range all {
			if x, ok := s.instance(srv); ok {
				out = append(out, x)
			}
		}
		pages++
		return pages < maxPages, nil
	})
	if err != nil {
		return nil, s.apiError("list servers", err)
	}
	provider.Sort(out)
	return out, nil
}

// instance converts a Nova server, reporting false unless its metadata
// names this site and a known role.
func (s *site) instance(srv servers.Server) (provider.Instance, bool) {
	md := srv.Metadata
	role := md[provider.TagRole]
	if md[provider.TagApp] != s.in.App || md[provider.TagSite] != s.in.Site.Name || !slices.Contains(provider.Roles, role) || srv.ID == "" {
		return provider.Instance{}, false
	}
	x := provider.Instance{
		ID: srv.ID, Name: srv.Name, Role: role, Run: md[provider.TagRun],
		ProviderState: srv.Status, State: state(srv.Status), LaunchedAt: srv.Created,
	}
	x.PrivateIP, x.PublicIP = addresses(srv)
	if srv.Fault.Message != "" {
		x.Reason = srv.Fault.Message
	}
	return x, x.State != provider.StateTerminated
}

// state maps a Nova server status to the provider's.
func state(status string) string {
	switch strings.ToUpper(status) {
	case "BUILD", "REBUILD":
		return provider.StatePending
	case "ACTIVE", "REBOOT", "HARD_REBOOT", "PASSWORD", "MIGRATING", "RESIZE", "VERIFY_RESIZE", "REVERT_RESIZE", "RESCUE":
		return provider.StateRunning
	case "SHUTOFF", "STOPPED", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED":
		return provider.StateStopped
	case "ERROR":
		return provider.StateError
	case "DELETED", "SOFT_DELETED":
		return provider.StateTerminated
	}
	return provider.StateUnknown
}

// addresses returns a server's first fixed and first floating IPv4
// address (the floating one falls back on accessIPv4).
func addresses(srv servers.Server) (private, public string) {
	nets := make([]string, 0, len(srv.Addresses))
	for n := range srv.Addresses {
		nets = append(nets, n)
	}
	slices.Sort(nets)
	for _, n := range nets {
		list, _ := srv.Addresses[n].([]any)
		for _, a := range list {
			m, _ := a.(map[string]any)
			addr, _ := m["addr"].(string)
			version, _ := m["version"].(float64)
			kind, _ := m["OS-EXT-IPS:type"].(string)
			if addr == "" || (version != 0 && version != 4) {
				continue
			}
			if kind == "floating" {
				public = cmp.Or(public, addr)
			} else {
				private = cmp.Or(private, addr)
			}
		}
	}
	return private, cmp.Or(public, srv.AccessIPv4)
}

// state returns the site's state from a listing, with what this call did.
func (s *site) state(all []provider.Instance, created, changed []string) provider.SiteState {
	return provider.SiteState{
		Provider: recipe.ProviderOpenStack, App: s.in.App, Site: s.in.Site.Name, Region: s.in.Site.Region,
		Instances: all, Created: created, Changed: changed,
	}
}
