package openstack_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drover-sre/drover/activities/internal/cloudtest"
	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/activities/provider/openstack"
	"github.com/drover-sre/drover/recipe"
)

// northSite is an openstack site whose compute block names the fake's
// image, network, key pair and a flavor by name.
func northSite(instances int) recipe.Site {
	return recipe.Site{
		Name: "north", Provider: "openstack", Region: "RegionOne", Address: "203.0.113.10",
		DB:  recipe.Database{Host: "203.0.113.10", Port: 3306, User: "drover", Password: "env:DB_PW", ServerID: 3, GTIDDomainID: 3},
		App: recipe.AppTier{Endpoints: []string{"http://203.0.113.10:8080"}, Instances: instances},
		OpenStack: recipe.OpenStackCompute{Image: testImage, Flavor: "m1.small", Network: testNetwork, KeyPair: "drover-ops",
			SecurityGroups: []string{"default", "mariadb"}},
	}
}

// names are the openstack provider's activity names.
var names, _ = provider.Names(recipe.ProviderOpenStack)

func md(app, site, role string) map[string]string {
	return map[string]string{provider.TagApp: app, provider.TagSite: site, provider.TagRole: role}
}

// injected returns a Compute on a hand-built ServiceClient for nova, the
// way a caller with its own ProviderClient supplies one.
func injected(nova *fakeNova) *openstack.Compute {
	return &openstack.Compute{
		NewClient: func(context.Context, string) (*gophercloud.ServiceClient, error) {
			pc := &gophercloud.ProviderClient{}
			pc.SetToken("injected-token")
			return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: nova.endpoint(), Type: "compute"}, nil
		},
		PollInterval: 2 * time.Millisecond, WaitTimeout: 5 * time.Second,
	}
}

// stack is a fake Keystone whose catalog points at a fake Nova that accepts
// only the tokens Keystone issued.
// Its "compute" service has a public endpoint in RegionOne pointing at the
// fake Nova, an internal one there, and a public one in RegionTwo: a client
// must pick by region and interface.
func stack(t *testing.T) (*cloudtest.Keystone, *fakeNova) {
	nova := newFakeNova(t)
	k := cloudtest.NewKeystone(t, cloudtest.Service{Type: "compute", Name: "nova", Endpoints: []cloudtest.Endpoint{
		{Interface: "internal", Region: "RegionOne", URL: "http://192.0.2.1:8774/v2.1/"},
		{Interface: "public", Region: "RegionOne", URL: nova.endpoint()},
		{Interface: "public", Region: "RegionTwo", URL: "http://192.0.2.2:8774/v2.1/"},
	}})
	nova.valid = func(tok string) bool { return slices.Contains(k.Issued(), tok) }
	return k, nova
}

func states(st provider.SiteState) []string {
	var out []string
	for _, i := range st.Instances {
		out = append(out, i.Name+":"+i.State)
	}
	return out
}

// Through a real gophercloud client that authenticated against Keystone v3
// from clouds.yaml and found Nova in the catalog by the site's region:
// Create resolves the flavor by name, creates the db and app servers with
// the documented body (image, flavor id, network, key pair, security
// groups, drover metadata), waits until they are ACTIVE and reports their
// addresses; a second Create creates nothing.
func TestCreateThroughKeystone(t *testing.T) {
	k, nova := stack(t)
	nova.settle = 2
	k.CloudsYAML(t, k.Password, "RegionTwo")
	c := &openstack.Compute{PollInterval: 2 * time.Millisecond, WaitTimeout: 5 * time.Second}
	ctx := context.Background()
	in := provider.SiteInput{App: "petclinic", Site: northSite(2), Run: "clone-1"}

	st, err := c.Create(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, []string{"drover-petclinic-north-db:running", "drover-petclinic-north-app-1:running", "drover-petclinic-north-app-2:running"}, states(st))
	assert.Len(t, st.Created, 3)
	assert.True(t, st.Running())
	db := st.Instances[0]
	assert.Regexp(t, `^10\.1\.0\.\d+$`, db.PrivateIP)
	assert.Regexp(t, `^198\.51\.100\.\d+$`, db.PublicIP)
	assert.Equal(t, "ACTIVE", db.ProviderState)
	assert.Equal(t, "clone-1", db.Run)
	require.Len(t, k.Issued(), 1, "one token for the whole create")

	writes := nova.requests()
	require.Len(t, writes, 3)
	assert.Equal(t, "POST", writes[0].Method)
	assert.Equal(t, "/v2.1/servers", writes[0].Path)
	assert.Equal(t, map[string]any{"server": map[string]any{
		"name": "drover-petclinic-north-db", "imageRef": testImage, "flavorRef": "2",
		"networks": []any{map[string]any{"uuid": testNetwork}}, "key_name": "drover-ops",
		"security_groups": []any{map[string]any{"name": "default"}, map[string]any{"name": "mariadb"}},
		"metadata":        map[string]any{"drover:app": "petclinic", "drover:site": "north", "drover:role": "db", "drover:run": "clone-1"},
	}}, writes[0].Body)
	assert.Equal(t, "app", writes[1].Body["server"].(map[string]any)["metadata"].(map[string]any)["drover:role"])
	nova.mu.Lock()
	assert.Equal(t, "name=%5Edrover-petclinic-north-", nova.lists[0], "servers listed by name prefix")
	nova.mu.Unlock()

	again, err := c.Create(ctx, provider.SiteInput{App: "petclinic", Site: northSite(2), Run: "clone-2"})
	require.NoError(t, err)
	assert.Empty(t, again.Created)
	assert.Equal(t, provider.IDs(st.Instances), provider.IDs(again.Instances))
	assert.Len(t, nova.requests(), 3, "nothing created the second time")
}

// A create whose answer was lost is found by the retry's listing: Nova has
// no client token, the server's name and metadata are enough.
func TestCreateRetryFindsLostServer(t *testing.T) {
	t.Parallel()
	nova := newFakeNova(t)
	c := injected(nova)
	lost := true
	ctx := context.Background()
	// The first attempt's create goes through but its answer is a 500.
	nova.fail = func(method, path string) (int, string) {
		if method == "POST" && path == "/v2.1/servers" && lost {
			lost = false
			nova.servers = append(nova.servers, &novaServer{ID: "0d5c6a1e-0000-4000-8000-00000000beef", Name: "drover-petclinic-north-db",
				Status: "ACTIVE", Image: testImage, Flavor: "2", Network: testNetwork, Metadata: md("petclinic", "north", "db"), IP: "10.1.0.99"})
			return http.StatusInternalServerError, `{"computeFault": {"code": 500, "message": "Unexpected API Error."}}`
		}
		return 0, ""
	}
	_, err := c.Create(ctx, provider.SiteInput{App: "petclinic", Site: northSite(1)})
	require.Error(t, err)
	assert.Equal(t, provider.Transient, provider.KindOf(err), "%v", err)
	st, err := c.Create(ctx, provider.SiteInput{App: "petclinic", Site: northSite(1)})
	require.NoError(t, err)
	assert.Equal(t, []string{"drover-petclinic-north-db:running", "drover-petclinic-north-app-1:running"}, states(st))
	assert.Equal(t, 1, nova.count("POST", "/servers"), "only the app server was created by the retry")
}

// Stop (fencing) stops exactly the site's servers: a site whose name
// shares the prefix (north-2), another app's site of the same name, and a
// server with the right name but no metadata keep running; stopping again
// sends nothing; Start brings them back; roles narrow it.
func TestStopFencesOnlyTheSite(t *testing.T) {
	t.Parallel()
	nova := newFakeNova(t)
	others := []string{
		nova.put("drover-petclinic-north-2-db", md("petclinic", "north-2", "db")),
		nova.put("drover-billing-north-db", md("billing", "north", "db")),
		nova.put("drover-petclinic-north-app-7", map[string]string{}),
	}
	c := injected(nova)
	ctx := context.Background()
	in := provider.SiteInput{App: "petclinic", Site: northSite(2)}
	created, err := c.Create(ctx, in)
	require.NoError(t, err)
	require.Len(t, created.Instances, 3)
	assert.Equal(t, "drover-petclinic-north-app-1", created.Instances[1].Name, "an unowned name does not count as a number in use")

	st, err := c.Stop(ctx, in)
	require.NoError(t, err)
	assert.True(t, st.Stopped())
	assert.ElementsMatch(t, provider.IDs(created.Instances), st.Changed)
	assert.Equal(t, 3, nova.count("POST", "/action"))
	for _, id := range created.Instances {
		assert.Equal(t, "SHUTOFF", nova.statusOf(id.ID))
	}
	for _, id := range others {
		assert.Equal(t, "ACTIVE", nova.statusOf(id), "server %s is not the site's", id)
	}
	for _, w := range nova.requests() {
		if strings.HasSuffix(w.Path, "/action") {
			assert.Equal(t, map[string]any{"os-stop": nil}, w.Body)
		}
	}

	st, err = c.Stop(ctx, in)
	require.NoError(t, err)
	assert.Empty(t, st.Changed)
	assert.Equal(t, 3, nova.count("POST", "/action"), "already stopped: nothing sent")

	st, err = c.Start(ctx, in)
	require.NoError(t, err)
	assert.True(t, st.Running())
	assert.Len(t, st.Changed, 3)

	in.Roles = []string{provider.RoleDB}
	st, err = c.Stop(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, []string{"drover-petclinic-north-db:stopped", "drover-petclinic-north-app-1:running", "drover-petclinic-north-app-2:running"}, states(st))
}

// Destroy with a run deletes only what that run created, then without a run
// the rest of the site, never another site's server; Scale adds servers
// with the lowest free numbers and removes the newest first.
func TestDestroyAndScale(t *testing.T) {
	t.Parallel()
	nova := newFakeNova(t)
	before := nova.put("drover-petclinic-north-db", md("petclinic", "north", "db"))
	neighbour := nova.put("drover-petclinic-north-2-db", md("petclinic", "north-2", "db"))
	c := injected(nova)
	ctx := context.Background()

	st, err := c.Create(ctx, provider.SiteInput{App: "petclinic", Site: northSite(1), Run: "clone-9"})
	require.NoError(t, err)
	require.Len(t, st.Created, 1, "the db server existed")

	st, err = c.Scale(ctx, provider.ScaleInput{App: "petclinic", Site: northSite(1), Instances: 3, Run: "clone-9"})
	require.NoError(t, err)
	assert.Equal(t, []string{"drover-petclinic-north-db:running", "drover-petclinic-north-app-1:running",
		"drover-petclinic-north-app-2:running", "drover-petclinic-north-app-3:running"}, states(st))
	assert.Len(t, st.Created, 2)

	st, err = c.Scale(ctx, provider.ScaleInput{App: "petclinic", Site: northSite(1), Instances: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"drover-petclinic-north-db:running", "drover-petclinic-north-app-1:running", "drover-petclinic-north-app-2:running"}, states(st))

	st, err = c.Destroy(ctx, provider.SiteInput{App: "petclinic", Site: northSite(1), Run: "clone-9"})
	require.NoError(t, err)
	assert.Equal(t, []string{"drover-petclinic-north-db:running"}, states(st))
	assert.Equal(t, before, st.Instances[0].ID)

	st, err = c.Destroy(ctx, provider.SiteInput{App: "petclinic", Site: northSite(1)})
	require.NoError(t, err)
	assert.Empty(t, st.Instances)
	assert.Equal(t, []string{before}, st.Changed)
	assert.Equal(t, "GONE", nova.statusOf(before))
	assert.Equal(t, "ACTIVE", nova.statusOf(neighbour))
	deletes := nova.count("DELETE", "")
	st, err = c.Destroy(ctx, provider.SiteInput{App: "petclinic", Site: northSite(1)})
	require.NoError(t, err)
	assert.Empty(t, st.Changed)
	assert.Equal(t, deletes, nova.count("DELETE", ""), "nothing left to delete")
}

// Nova's answers are classified: over the rate limit (413 overLimit, 429)
// retryable; quota exceeded (403, or 413 from older releases) not
// retryable, with Nova's message and what to do; refused token or policy
// not retryable; a bad image not retryable; server errors retryable; a
// server that ends in ERROR fails the create, as a capacity problem when
// Nova found no host.
func TestActivityErrors(t *testing.T) {
	t.Parallel()
	on := func(method, path string, status int, body string) func(string, string) (int, string) {
		return func(m, p string) (int, string) {
			if m == method && p == path {
				return status, body
			}
			return 0, ""
		}
	}
	tests := []struct {
		name         string
		setup        func(n *fakeNova)
		errType      string
		nonRetryable bool
		msg          []string
	}{
		{"over limit 413", func(n *fakeNova) {
			n.fail = on("GET", "/v2.1/servers/detail", 413, `{"overLimit": {"code": 413, "message": "This request was rate-limited.", "retryAfter": "2"}}`)
		}, provider.ErrTypeThrottled, false, []string{"openstack create site north in region RegionOne: list servers: HTTP 413: This request was rate-limited. (retry after 2s)"}},
		{"too many requests", func(n *fakeNova) {
			n.fail = on("POST", "/v2.1/servers", 429, `{"message": "Too Many Requests"}`)
		}, provider.ErrTypeThrottled, false, []string{"create server drover-petclinic-north-db: HTTP 429: Too Many Requests"}},
		{"quota exceeded", func(n *fakeNova) { n.put("other", nil); n.quota = 1 },
			provider.ErrTypeQuota, true, []string{"HTTP 403: Quota exceeded for instances: Requested 1, but already used 1 of 1 instances",
				"raise the project's quota"}},
		{"quota exceeded, older nova", func(n *fakeNova) {
			n.fail = on("POST", "/v2.1/servers", 413, `{"overLimit": {"code": 413, "message": "Quota exceeded for cores: Requested 2, but already used 20 of 20 cores"}}`)
		}, provider.ErrTypeQuota, true, []string{"HTTP 413: Quota exceeded for cores"}},
		{"policy", func(n *fakeNova) {
			n.fail = on("POST", "/v2.1/servers", 403, `{"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:servers:create to be performed."}}`)
		}, provider.ErrTypeAuth, true, []string{"HTTP 403: Policy doesn't allow os_compute_api:servers:create", "member role"}},
		{"token refused", func(n *fakeNova) { n.valid = func(string) bool { return false } },
			provider.ErrTypeAuth, true, []string{"list servers: HTTP 401: The request you have made requires authentication."}},
		{"unknown image", func(n *fakeNova) { delete(n.images, testImage) },
			provider.ErrTypeConfig, true, []string{"HTTP 400: Image " + testImage + " could not be found.", "check the site's openstack block"}},
		{"server error", func(n *fakeNova) {
			n.fail = on("POST", "/v2.1/servers", 500, `{"computeFault": {"code": 500, "message": "Unexpected API Error."}}`)
		}, provider.ErrTypeTransient, false, []string{"HTTP 500: Unexpected API Error."}},
		{"no valid host", func(n *fakeNova) { n.buildFault = "No valid host was found. There are not enough hosts available." },
			provider.ErrTypeQuota, true, []string{"server drover-petclinic-north-db", "is in status ERROR: No valid host was found."}},
		{"build error", func(n *fakeNova) { n.buildFault = "Build of instance aborted: Failed to allocate the network(s)" },
			provider.ErrTypeFailed, true, []string{"is in status ERROR: Build of instance aborted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nova := newFakeNova(t)
			tt.setup(nova)
			a := &provider.Activities{Provider: recipe.ProviderOpenStack, Compute: injected(nova)}
			_, err := cloudtest.RunSite(t, a, names.Create, provider.SiteInput{App: "petclinic", Site: northSite(1)})
			msg := cloudtest.AppError(t, err, tt.errType, tt.nonRetryable)
			t.Log(msg)
			for _, m := range tt.msg {
				assert.Contains(t, msg, m)
			}
			assert.NotContains(t, msg, "injected-token")
		})
	}
}

// Keystone refusing the password is an auth error that does not show it;
// a region whose catalog has no compute endpoint, and missing credentials,
// are config errors; none of them reaches Nova.
func TestCredentialsAndRegion(t *testing.T) {
	k, nova := stack(t)
	ctx := context.Background()
	in := provider.SiteInput{App: "petclinic", Site: northSite(1)}

	k.CloudsYAML(t, "not-the-password", "RegionTwo")
	_, err := (&openstack.Compute{}).Create(ctx, in)
	require.Error(t, err)
	assert.Equal(t, provider.Auth, provider.KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "HTTP 401: The request you have made requires authentication.")
	assert.NotContains(t, err.Error(), "not-the-password")

	k.CloudsYAML(t, k.Password, "RegionTwo")
	s := northSite(1)
	s.Region = "RegionThree"
	_, err = (&openstack.Compute{}).Create(ctx, provider.SiteInput{App: "petclinic", Site: s})
	assert.Equal(t, provider.Config, provider.KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "region RegionThree: no compute endpoint for this region and interface")

	// The OS_* variables work too, and OS_INTERFACE picks the endpoint.
	k.Env(t)
	t.Setenv("OS_INTERFACE", "public")
	sc, err := openstack.NewClient(ctx, "RegionOne")
	require.NoError(t, err)
	assert.Equal(t, nova.endpoint(), sc.Endpoint)

	cloudtest.ClearEnv(t)
	_, err = (&openstack.Compute{}).Inspect(ctx, in)
	assert.Equal(t, provider.Config, provider.KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "set OS_CLOUD (clouds.yaml) or the OS_* variables")
	assert.Empty(t, nova.requests())
}

// A bad recipe or input fails before any API call with a non-retryable
// config error naming the field; an unknown flavor fails after the flavor
// lookup but before any server exists.
func TestBadInputFailsBeforeAnyCall(t *testing.T) {
	t.Parallel()
	nova := newFakeNova(t)
	built := 0
	c := injected(nova)
	inner := c.NewClient
	c.NewClient = func(ctx context.Context, region string) (*gophercloud.ServiceClient, error) {
		built++
		return inner(ctx, region)
	}
	a := &provider.Activities{Provider: recipe.ProviderOpenStack, Compute: c}
	site := func(mutate func(s *recipe.Site)) recipe.Site {
		s := northSite(1)
		mutate(&s)
		return s
	}
	tests := []struct {
		name string
		fn   string
		in   any
		msg  string
	}{
		{"missing image", names.Create, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.OpenStack.Image = "" })},
			"openstack create site north: recipe: openstack.image: required"},
		{"image by name", names.Create, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.OpenStack.Image = "ubuntu-24.04" })},
			"openstack.image: must be an image id (UUID)"},
		{"no block", names.Create, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.OpenStack = recipe.OpenStackCompute{} })},
			"recipe: openstack: required to create servers: image, flavor, network"},
		{"bad region", names.Create, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.Region = "Region One" })},
			"recipe: region: must be an OpenStack region name"},
		{"no region", names.Stop, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.Region = "" })},
			"region: required for provider openstack"},
		{"aws site", names.Stop, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.Provider = "aws" })},
			`provider is "aws"; the openstack provider manages only provider "openstack" sites`},
		{"bad app", names.Destroy, provider.SiteInput{App: "Pet Clinic", Site: northSite(1)}, `app "Pet Clinic" is not a valid app name`},
		{"negative scale", names.Scale, provider.ScaleInput{App: "petclinic", Site: northSite(1), Instances: -1}, "instances: -1 is not 0-100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cloudtest.RunSite(t, a, tt.fn, tt.in)
			msg := cloudtest.AppError(t, err, provider.ErrTypeConfig, true)
			assert.Contains(t, msg, tt.msg)
		})
	}
	assert.Zero(t, built, "no client even built")
	nova.mu.Lock()
	assert.Empty(t, nova.lists)
	nova.mu.Unlock()

	_, err := cloudtest.RunSite(t, a, names.Create, provider.SiteInput{App: "petclinic", Site: site(func(s *recipe.Site) { s.OpenStack.Flavor = "m9.huge" })})
	msg := cloudtest.AppError(t, err, provider.ErrTypeConfig, true)
	assert.Contains(t, msg, `flavor "m9.huge": no flavor with this id or name in region RegionOne`)
	assert.Empty(t, nova.requests(), "no server created")
}

// Every wait is bounded: servers that stay in BUILD fail the create after
// WaitTimeout with a retryable error naming them; the activities run the
// whole lifecycle.
func TestWaitBoundedAndLifecycle(t *testing.T) {
	t.Parallel()
	nova := newFakeNova(t)
	nova.settle = 1 << 30
	c := injected(nova)
	c.WaitTimeout = 100 * time.Millisecond
	start := time.Now()
	_, err := c.Create(context.Background(), provider.SiteInput{App: "petclinic", Site: northSite(1)})
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Equal(t, provider.Transient, provider.KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "servers not running after waiting up to 100ms: [drover-petclinic-north-db BUILD drover-petclinic-north-app-1 BUILD]")
	nova.mu.Lock()
	assert.LessOrEqual(t, len(nova.lists), 55, "polls are bounded")
	nova.mu.Unlock()

	nova2 := newFakeNova(t)
	a := &provider.Activities{Provider: recipe.ProviderOpenStack, Compute: injected(nova2), HeartbeatInterval: time.Millisecond}
	in := provider.SiteInput{App: "petclinic", Site: northSite(1)}
	st, err := cloudtest.RunSite(t, a, names.Create, in)
	require.NoError(t, err)
	assert.Len(t, st.Created, 2)
	for _, fn := range []string{names.Inspect, names.Stop, names.Start} {
		_, err := cloudtest.RunSite(t, a, fn, in)
		require.NoError(t, err)
	}
	st, err = cloudtest.RunSite(t, a, names.Scale, provider.ScaleInput{App: "petclinic", Site: northSite(1), Instances: 2})
	require.NoError(t, err)
	assert.Len(t, st.Role(provider.RoleApp), 2)
	st, err = cloudtest.RunSite(t, a, names.Destroy, in)
	require.NoError(t, err)
	assert.Empty(t, st.Instances)
	assert.Equal(t, "OpenStackDestroySite", names.Destroy)
	_, ok := provider.Names("local")
	assert.False(t, ok)
}

// A server left in ERROR is not papered over: creating again fails on it
// until the run's compensation (Destroy with its run) removes what it made;
// then the site can be created afresh.
func TestFailedCreateIsCompensated(t *testing.T) {
	t.Parallel()
	nova := newFakeNova(t)
	nova.buildFault = "Build of instance aborted: Volume did not finish being created"
	c := injected(nova)
	ctx := context.Background()
	in := provider.SiteInput{App: "petclinic", Site: northSite(1), Run: "clone-3"}
	_, err := c.Create(ctx, in)
	assert.Equal(t, provider.Failed, provider.KindOf(err), "%v", err)

	nova.mu.Lock()
	nova.buildFault = ""
	nova.mu.Unlock()
	_, err = c.Create(ctx, in)
	assert.Equal(t, provider.Failed, provider.KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "is in status ERROR: Build of instance aborted")

	st, err := c.Destroy(ctx, in)
	require.NoError(t, err)
	assert.Empty(t, st.Instances)
	assert.Len(t, st.Changed, 2, "the db and app servers this run created")

	st, err = c.Create(ctx, in)
	require.NoError(t, err)
	assert.True(t, st.Running())
}
