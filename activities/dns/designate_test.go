package dns_test

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/internal/cloudtest"
)

const desZoneID = "a86dba58-0043-4cc6-a1bb-69d5e86f3ca3"

// designateStack is a fake Keystone whose catalog points at a fake Designate
// that accepts only the tokens that Keystone issued. The catalog's "dns"
// service has an internal and a public endpoint in RegionOne; the client
// must pick the public one.
func designateStack(t *testing.T) (*cloudtest.Keystone, *fakeDesignate) {
	des := newFakeDesignate(t, desZoneID, "drover.test.")
	k := cloudtest.NewKeystone(t, cloudtest.Service{Type: "dns", Name: "designate", Endpoints: []cloudtest.Endpoint{
		{Interface: "internal", Region: "RegionOne", URL: "http://192.0.2.1:9001/"},
		{Interface: "public", Region: "RegionOne", URL: des.srv.URL + "/"},
	}})
	des.valid = func(tok string) bool { return slices.Contains(k.Issued(), tok) }
	return k, des
}

// The Designate driver through a real gophercloud ProviderClient that
// authenticated against Keystone v3 from clouds.yaml and found Designate in
// the service catalog: Set creates the recordset with the documented body
// and waits until it is ACTIVE; an identical Set writes nothing; a new
// address is a PUT; Remove PUTs what is left, then DELETEs the recordset and
// waits until it is gone.
func TestDesignateThroughKeystone(t *testing.T) {
	k, des := designateStack(t)
	des.activeAfter = 2
	des.put("www.drover.test.", 300, "192.0.2.99")
	k.CloudsYAML(t, k.Password, "RegionOne")
	ctx := context.Background()

	sc, err := dns.NewDesignateClient(ctx)
	require.NoError(t, err)
	assert.Equal(t, des.srv.URL+"/", sc.Endpoint, "public endpoint of RegionOne from the catalog")
	require.Len(t, k.Issued(), 1)
	d := &dns.Designate{Client: sc, ZoneID: desZoneID, PollInterval: 5 * time.Millisecond, SyncTimeout: 5 * time.Second}
	const app = "app.drover.test."

	got, err := d.Get(ctx, app)
	require.NoError(t, err)
	assert.True(t, got.Empty())

	prev, changed, err := d.Set(ctx, app, set(60, "192.0.2.20"))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.True(t, prev.Empty())
	writes, gets := des.snapshot()
	require.Len(t, writes, 1)
	assert.Equal(t, "POST", writes[0].Method)
	assert.Equal(t, "/v2/zones/"+desZoneID+"/recordsets", writes[0].Path)
	assert.Equal(t, map[string]any{"name": app, "type": "A", "ttl": float64(60), "records": []any{"192.0.2.20"}, "description": "managed by drover"}, writes[0].Body)
	assert.Equal(t, 3, gets, "PENDING twice, then ACTIVE")
	des.mu.Lock()
	assert.Equal(t, "name=app.drover.test.&type=A", des.lists[0], "recordset list filter")
	des.mu.Unlock()

	prev, changed, err = d.Set(ctx, app, set(60, "192.0.2.20"))
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, set(60, "192.0.2.20"), prev)
	writes2, _ := des.snapshot()
	assert.Len(t, writes2, 1, "nothing written")

	des.activeAfter = 0
	_, changed, err = d.Set(ctx, app, set(30, "192.0.2.21", "192.0.2.20"))
	require.NoError(t, err)
	assert.True(t, changed)
	writes, _ = des.snapshot()
	require.Len(t, writes, 2)
	assert.Equal(t, "PUT", writes[1].Method)
	assert.Equal(t, map[string]any{"ttl": float64(30), "records": []any{"192.0.2.20", "192.0.2.21"}}, writes[1].Body)

	prev, changed, err = d.Remove(ctx, app, netip.MustParseAddr("192.0.2.20"))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, set(30, "192.0.2.20", "192.0.2.21"), prev)
	_, changed, err = d.Remove(ctx, app, netip.MustParseAddr("192.0.2.20"))
	require.NoError(t, err)
	assert.False(t, changed)
	des.activeAfter = 2
	_, changed, err = d.Remove(ctx, app, netip.MustParseAddr("192.0.2.21"))
	require.NoError(t, err)
	assert.True(t, changed)
	writes, _ = des.snapshot()
	require.Len(t, writes, 4)
	assert.Equal(t, "PUT", writes[2].Method)
	assert.Equal(t, map[string]any{"ttl": float64(30), "records": []any{"192.0.2.21"}}, writes[2].Body)
	assert.Equal(t, "DELETE", writes[3].Method)
	got, err = d.Get(ctx, app)
	require.NoError(t, err)
	assert.True(t, got.Empty(), "deleted, and the delete waited until it was gone")

	got, err = d.Get(ctx, "www.drover.test")
	require.NoError(t, err)
	assert.Equal(t, set(300, "192.0.2.99"), got, "other records untouched")

	// The token expires (Designate refuses it): the client authenticates
	// again by itself, as a long-running worker needs.
	first := k.Issued()[0]
	des.mu.Lock()
	des.valid = func(tok string) bool { return tok != first && slices.Contains(k.Issued(), tok) }
	des.mu.Unlock()
	got, err = d.Get(ctx, "www.drover.test")
	require.NoError(t, err)
	assert.Equal(t, set(300, "192.0.2.99"), got)
	assert.Len(t, k.Issued(), 2, "re-authenticated once")
}

// Credentials also come from the OS_* environment when OS_CLOUD is unset;
// a password Keystone refuses is an Auth error that does not show it.
func TestDesignateCredentials(t *testing.T) {
	k, des := designateStack(t)
	ctx := context.Background()

	k.Env(t)
	t.Setenv("OS_REGION_NAME", "RegionOne")
	sc, err := dns.NewDesignateClient(ctx)
	require.NoError(t, err)
	des.put("app.drover.test.", 60, "192.0.2.1")
	got, err := (&dns.Designate{Client: sc, ZoneID: desZoneID}).Get(ctx, "app.drover.test.")
	require.NoError(t, err)
	assert.Equal(t, set(60, "192.0.2.1"), got)

	k.CloudsYAML(t, "not-the-password", "RegionOne")
	_, err = dns.NewDesignateClient(ctx)
	require.Error(t, err)
	t.Log(err)
	assert.Equal(t, dns.Auth, dns.KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "HTTP 401")
	assert.NotContains(t, err.Error(), "not-the-password")

	cloudtest.ClearEnv(t)
	_, err = dns.NewDesignateClient(ctx)
	assert.Equal(t, dns.Config, dns.KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "set OS_CLOUD (clouds.yaml) or the OS_* variables")
}

// injectedDesignate is a driver on a hand-built ServiceClient, the way a
// test or a caller with its own ProviderClient supplies one.
func injectedDesignate(des *fakeDesignate) *dns.Designate {
	pc := &gophercloud.ProviderClient{}
	pc.SetToken("injected-token")
	sc := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: des.srv.URL + "/", ResourceBase: des.srv.URL + "/v2/", Type: "dns"}
	return &dns.Designate{Client: sc, ZoneID: desZoneID, PollInterval: 5 * time.Millisecond, SyncTimeout: 5 * time.Second}
}

// Designate errors are classified (429 Throttled, 401/403 Auth, unknown zone
// Config, 5xx and ERROR status Transient) with Designate's own message, and
// the wait for ACTIVE is bounded.
func TestDesignateErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const app = "app.drover.test."
	failOn := func(method string, status int, body string) func(string, string) (int, string) {
		return func(m, _ string) (int, string) {
			if m == method {
				return status, body
			}
			return 0, ""
		}
	}
	tests := []struct {
		name string
		fail func(string, string) (int, string)
		kind dns.Kind
		msg  string
	}{
		{"throttled", failOn("GET", http.StatusTooManyRequests, `{"code": 429, "type": "over_quota", "message": "Rate limit exceeded"}`),
			dns.Throttled, "designate list app.drover.test. at designate zone " + desZoneID + ": HTTP 429: over_quota Rate limit exceeded"},
		{"forbidden", failOn("POST", http.StatusForbidden, `{"code": 403, "type": "forbidden", "message": "Policy does not allow create_recordset"}`),
			dns.Auth, "HTTP 403: forbidden Policy does not allow create_recordset (check the worker's OpenStack credentials"},
		{"server error", failOn("POST", http.StatusInternalServerError, `{"code": 500, "type": "internal", "message": "boom"}`),
			dns.Transient, "designate create app.drover.test."},
		{"bad request", failOn("POST", http.StatusBadRequest, `{"code": 400, "type": "invalid_object", "message": "Provided object does not match schema"}`),
			dns.Config, "invalid_object Provided object does not match schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			des := newFakeDesignate(t, desZoneID, "drover.test.")
			des.fail = tt.fail
			_, changed, err := injectedDesignate(des).Set(ctx, app, set(60, "192.0.2.20"))
			require.Error(t, err)
			t.Log(err)
			assert.False(t, changed)
			assert.Equal(t, tt.kind, dns.KindOf(err), "%v", err)
			assert.ErrorContains(t, err, tt.msg)
		})
	}
	t.Run("unknown zone", func(t *testing.T) {
		des := newFakeDesignate(t, desZoneID, "drover.test.")
		d := injectedDesignate(des)
		d.ZoneID = "00000000-dead-beef-0000-000000000000"
		_, err := d.Get(ctx, app)
		assert.Equal(t, dns.Config, dns.KindOf(err), "%v", err)
		assert.ErrorContains(t, err, "HTTP 404: zone_not_found Could not find Zone (check dns.zone_id)")
	})
	t.Run("token refused", func(t *testing.T) {
		des := newFakeDesignate(t, desZoneID, "drover.test.")
		des.valid = func(string) bool { return false }
		_, err := injectedDesignate(des).Get(ctx, app)
		assert.Equal(t, dns.Auth, dns.KindOf(err), "%v", err)
		assert.ErrorContains(t, err, "HTTP 401")
	})
	t.Run("status ERROR", func(t *testing.T) {
		des := newFakeDesignate(t, desZoneID, "drover.test.")
		des.put(app, 60, "192.0.2.1")
		des.fail = func(method, path string) (int, string) {
			if method == "GET" && strings.Count(path, "/") == 5 { // one recordset
				return http.StatusOK, `{"id": "x", "name": "app.drover.test.", "type": "A", "records": ["192.0.2.20"], "ttl": 60, "status": "ERROR", "action": "UPDATE", "created_at": null, "updated_at": null}`
			}
			return 0, ""
		}
		_, _, err := injectedDesignate(des).Set(ctx, app, set(60, "192.0.2.20"))
		assert.Equal(t, dns.Transient, dns.KindOf(err), "%v", err)
		assert.ErrorContains(t, err, "is in status ERROR (action UPDATE)")
	})
	t.Run("wait bounded", func(t *testing.T) {
		des := newFakeDesignate(t, desZoneID, "drover.test.")
		des.activeAfter = 1 << 30
		d := injectedDesignate(des)
		d.PollInterval, d.SyncTimeout = 10*time.Millisecond, 100*time.Millisecond
		start := time.Now()
		_, _, err := d.Set(ctx, app, set(60, "192.0.2.20"))
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.Equal(t, dns.Transient, dns.KindOf(err), "%v", err)
		assert.ErrorContains(t, err, "still PENDING after 100ms")
		_, gets := des.snapshot()
		assert.LessOrEqual(t, gets, 12)
	})
}
