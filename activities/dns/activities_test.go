package dns_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/internal/cloudtest"
	"github.com/drover-sre/drover/recipe"
)

// run executes one activity method in a fresh test activity environment,
// optionally with heartbeat details left by an earlier attempt, and decodes
// its result into out.
func run(t *testing.T, a *dns.Activities, fn any, in any, out any, heartbeat any) error {
	t.Helper()
	return cloudtest.Execute(t, func(env *testsuite.TestActivityEnvironment) {
		env.RegisterActivity(a)
		if heartbeat != nil {
			env.SetHeartbeatDetails(heartbeat)
		}
	}, fn, in, out)
}

// The activities against a real BIND9: DNSGet reads, DNSPoint moves the
// record and returns the previous value for compensation (also when a
// retry finds its own earlier change already applied), DNSAnswers confirms
// what the authoritative servers answer and waits a bounded time,
// DNSRemove takes an address out; a rejected TSIG key is DNSAuth and bad
// input DNSConfig, both non-retryable; no result or error holds the secret.
func TestActivitiesRFC2136(t *testing.T) {
	t.Parallel()
	n := startNamed(t, "127.0.0.1")
	a := &dns.Activities{PollInterval: 20 * time.Millisecond, QueryTimeout: time.Second}
	d := recipeDNS(n)
	secret, err := os.ReadFile(n.KeySecretFile())
	require.NoError(t, err)

	var got dns.GetResult
	require.NoError(t, run(t, a, a.DNSGet, dns.GetInput{DNS: d}, &got, nil))
	assert.Equal(t, dns.GetResult{Record: "app.drover.test.", Driver: "rfc2136", Addrs: []string{"127.0.0.2"}, TTL: 30}, got)

	var pt dns.PointResult
	require.NoError(t, run(t, a, a.DNSPoint, dns.PointInput{DNS: d, Addrs: []string{"127.0.0.3"}}, &pt, nil))
	assert.Equal(t, dns.PointResult{Record: "app.drover.test.", Driver: "rfc2136", Addrs: []string{"127.0.0.3"}, TTL: 60,
		Previous: []string{"127.0.0.2"}, PreviousTTL: 30, Changed: true}, pt)
	assert.Equal(t, []string{"127.0.0.3"}, dig(t, n, "app.drover.test."))

	// Every authoritative server answers the new address: DNS.Server, and
	// the zone's NS set found through it (the same server).
	var ans dns.AnswersResult
	require.NoError(t, run(t, a, a.DNSAnswers, dns.AnswersInput{DNS: d, DiscoverNS: true, Want: []string{"127.0.0.3"}, WaitFor: recipe.Duration(5 * time.Second)}, &ans, nil))
	assert.True(t, ans.Converged)
	assert.Equal(t, 1, ans.Rounds)
	require.Len(t, ans.Answers, 1)
	assert.Equal(t, n.Addr(), ans.Answers[0].Server)
	assert.Equal(t, []string{"127.0.0.3"}, ans.Answers[0].Addrs)

	// A cloud zone's NS set is found through a resolver.
	cloud := d
	cloud.Driver, cloud.Server, cloud.ZoneID = recipe.DriverRoute53, "", "Z0DROVER"
	require.NoError(t, run(t, a, a.DNSAnswers, dns.AnswersInput{DNS: cloud, Resolver: n.Addr(), NSPort: n.Config.Port, Want: []string{"127.0.0.3"}}, &ans, nil))
	assert.True(t, ans.Converged, "%+v", ans)
	assert.Equal(t, n.Addr(), ans.Answers[0].Server)

	// Waiting for an answer that never comes is bounded and is a result.
	start := time.Now()
	require.NoError(t, run(t, a, a.DNSAnswers, dns.AnswersInput{DNS: d, Want: []string{"127.0.0.99"}, WaitFor: recipe.Duration(300 * time.Millisecond)}, &ans, nil))
	assert.False(t, ans.Converged)
	assert.GreaterOrEqual(t, ans.Rounds, 2)
	assert.LessOrEqual(t, ans.Rounds, 16)
	assert.Less(t, time.Since(start), 5*time.Second)

	// Pointing again changes nothing.
	require.NoError(t, run(t, a, a.DNSPoint, dns.PointInput{DNS: d, Addrs: []string{"127.0.0.3"}}, &pt, nil))
	assert.False(t, pt.Changed)
	assert.Equal(t, []string{"127.0.0.3"}, pt.Previous)

	// A retry whose first attempt changed the record before the worker died
	// still reports the change and the value to restore.
	earlier := map[string]any{"previous": map[string]any{"addrs": []string{"127.0.0.2"}, "ttl": 30}}
	require.NoError(t, run(t, a, a.DNSPoint, dns.PointInput{DNS: d, Addrs: []string{"127.0.0.3"}}, &pt, earlier))
	assert.True(t, pt.Changed)
	assert.Equal(t, []string{"127.0.0.2"}, pt.Previous)
	assert.Equal(t, 30, pt.PreviousTTL)

	// Compensation: point back with the previous value and TTL.
	require.NoError(t, run(t, a, a.DNSPoint, dns.PointInput{DNS: d, Addrs: pt.Previous, TTL: pt.PreviousTTL}, &pt, nil))
	assert.True(t, pt.Changed)
	assert.Equal(t, []string{"127.0.0.2"}, dig(t, n, "app.drover.test."))

	// Remove, twice.
	var rm dns.RemoveResult
	require.NoError(t, run(t, a, a.DNSRemove, dns.RemoveInput{DNS: d, Addr: "127.0.0.2"}, &rm, nil))
	assert.Equal(t, dns.RemoveResult{Record: "app.drover.test.", Driver: "rfc2136", Previous: []string{"127.0.0.2"}, PreviousTTL: 30, Changed: true}, rm)
	assert.Empty(t, dig(t, n, "app.drover.test."))
	require.NoError(t, run(t, a, a.DNSRemove, dns.RemoveInput{DNS: d, Addr: "127.0.0.2"}, &rm, nil))
	assert.False(t, rm.Changed)
	require.NoError(t, run(t, a, a.DNSAnswers, dns.AnswersInput{DNS: d}, &ans, nil))
	assert.Equal(t, "NXDOMAIN", ans.Answers[0].Rcode)
	assert.False(t, ans.Converged, "no Want given")

	// A wrong TSIG secret: DNSAuth, not retryable, record untouched.
	wrong := filepath.Join(t.TempDir(), "wrong.secret")
	require.NoError(t, os.WriteFile(wrong, []byte(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))+"\n"), 0o600))
	bad := d
	bad.TSIG.Secret = recipe.SecretRef("file:" + wrong)
	err = run(t, a, a.DNSPoint, dns.PointInput{DNS: bad, Addrs: []string{"127.0.0.9"}}, &pt, nil)
	msg := cloudtest.AppError(t, err, dns.ErrTypeAuth, true)
	assert.Contains(t, msg, "dns query app.drover.test. at "+n.Addr()+": NOTAUTH, TSIG error BADSIG (TSIG key drover-key rejected")
	assert.Empty(t, dig(t, n, "app.drover.test."), "record untouched")

	// Configuration problems: DNSConfig, not retryable.
	missing := d
	missing.TSIG.Secret = recipe.SecretRef("file:" + filepath.Join(t.TempDir(), "absent"))
	outside := d
	outside.Record = "app.example.com."
	for what, in := range map[string]dns.PointInput{
		"missing secret": {DNS: missing, Addrs: []string{"127.0.0.9"}},
		"ipv6 address":   {DNS: d, Addrs: []string{"::1"}},
		"not an address": {DNS: d, Addrs: []string{"app.example.com"}},
		"no address":     {DNS: d},
		"outside zone":   {DNS: outside, Addrs: []string{"127.0.0.9"}},
		"bad ttl":        {DNS: d, Addrs: []string{"127.0.0.9"}, TTL: -5},
	} {
		err := run(t, a, a.DNSPoint, in, &pt, nil)
		msg := cloudtest.AppError(t, err, dns.ErrTypeConfig, true)
		t.Logf("%s: %s", what, msg)
	}
	err = run(t, a, a.DNSRemove, dns.RemoveInput{DNS: d, Addr: "nope"}, &rm, nil)
	cloudtest.AppError(t, err, dns.ErrTypeConfig, true)
	unknown := d
	unknown.Driver = "bind-api"
	err = run(t, a, a.DNSGet, dns.GetInput{DNS: unknown}, &got, nil)
	cloudtest.AppError(t, err, dns.ErrTypeConfig, true)

	// Nothing that left the activities holds the secret.
	for _, v := range []any{got, pt, rm, ans} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		assert.NotContains(t, string(b), strings.TrimSpace(string(secret)))
	}
}

// The default factories build cloud clients from the worker's standard
// configuration only: here the AWS SDK's environment (static keys, region,
// the service endpoint override), and DNSPoint/DNSRemove go through the real
// SDK to the fake Route 53. Throttling is a retryable DNSThrottled error,
// AccessDenied a non-retryable DNSAuth, an unknown zone DNSConfig.
func TestActivitiesRoute53FromEnvironment(t *testing.T) {
	f := newFakeRoute53(t, "Z0DROVER")
	f.insyncAfter = 0 // the default factory polls every DefaultPollInterval: keep the test fast
	f.put(r53RecordSet{Name: "app.drover.test.", Type: "A", TTL: ttl(60), ResourceRecords: []r53ResourceRecord{{"192.0.2.10"}}})
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": testAccessKey, "AWS_SECRET_ACCESS_KEY": "drover-test-secret", "AWS_SESSION_TOKEN": "",
		"AWS_REGION": "us-east-1", "AWS_PROFILE": "", "AWS_ENDPOINT_URL_ROUTE_53": f.srv.URL, "AWS_ENDPOINT_URL": "",
		"AWS_MAX_ATTEMPTS": "1", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
	} {
		t.Setenv(k, v)
	}
	a := &dns.Activities{}
	d := recipe.DNS{Zone: "drover.test.", Record: "app.drover.test.", TTL: 60, Driver: recipe.DriverRoute53, ZoneID: "Z0DROVER"}

	var pt dns.PointResult
	require.NoError(t, run(t, a, a.DNSPoint, dns.PointInput{DNS: d, Addrs: []string{"192.0.2.20"}}, &pt, nil))
	assert.Equal(t, dns.PointResult{Record: "app.drover.test.", Driver: "route53", Addrs: []string{"192.0.2.20"}, TTL: 60,
		Previous: []string{"192.0.2.10"}, PreviousTTL: 60, Changed: true}, pt)
	var rm dns.RemoveResult
	require.NoError(t, run(t, a, a.DNSRemove, dns.RemoveInput{DNS: d, Addr: "192.0.2.20"}, &rm, nil))
	assert.True(t, rm.Changed)
	assert.Empty(t, rm.Addrs)
	_, gets, batches := f.snapshot()
	require.Len(t, batches, 2)
	assert.Equal(t, "UPSERT", batches[0].Changes[0].Action)
	assert.Equal(t, "DELETE", batches[1].Changes[0].Action)
	assert.Equal(t, 0, gets, "INSYNC in the change answers")

	f.fail = func(op string) (int, string) {
		return http.StatusBadRequest, route53ErrorBody("Throttling", "Rate exceeded")
	}
	err := run(t, a, a.DNSPoint, dns.PointInput{DNS: d, Addrs: []string{"192.0.2.20"}}, &pt, nil)
	cloudtest.AppError(t, err, dns.ErrTypeThrottled, false)

	f.fail = func(op string) (int, string) {
		if op == "ChangeResourceRecordSets" {
			return http.StatusForbidden, route53ErrorBody("AccessDenied", "not authorized to perform: route53:ChangeResourceRecordSets")
		}
		return 0, ""
	}
	err = run(t, a, a.DNSPoint, dns.PointInput{DNS: d, Addrs: []string{"192.0.2.20"}}, &pt, nil)
	assert.Contains(t, cloudtest.AppError(t, err, dns.ErrTypeAuth, true), "AccessDenied")

	f.fail = nil
	other := d
	other.ZoneID = "ZOTHER"
	err = run(t, a, a.DNSGet, dns.GetInput{DNS: other}, &dns.GetResult{}, nil)
	assert.Contains(t, cloudtest.AppError(t, err, dns.ErrTypeConfig, true), "NoSuchHostedZone")
}

// Factories can be injected: here a Designate driver on a ready service
// client; a transient provider failure is a retryable DNSTransient error.
func TestActivitiesInjectedDesignate(t *testing.T) {
	t.Parallel()
	des := newFakeDesignate(t, desZoneID, "drover.test.")
	des.put("app.drover.test.", 60, "192.0.2.10")
	a := &dns.Activities{Factories: map[string]dns.Factory{
		recipe.DriverDesignate: func(ctx context.Context, d recipe.DNS) (dns.Driver, error) {
			drv := injectedDesignate(des)
			drv.ZoneID = d.ZoneID
			return drv, nil
		},
	}}
	d := recipe.DNS{Zone: "drover.test.", Record: "app.drover.test.", TTL: 120, Driver: recipe.DriverDesignate, ZoneID: desZoneID}
	var pt dns.PointResult
	require.NoError(t, run(t, a, a.DNSPoint, dns.PointInput{DNS: d, Addrs: []string{"192.0.2.20", "192.0.2.21"}}, &pt, nil))
	assert.Equal(t, dns.PointResult{Record: "app.drover.test.", Driver: "designate", Addrs: []string{"192.0.2.20", "192.0.2.21"}, TTL: 120,
		Previous: []string{"192.0.2.10"}, PreviousTTL: 60, Changed: true}, pt)

	des.fail = func(method, _ string) (int, string) {
		if method == "PUT" {
			return http.StatusServiceUnavailable, `{"code": 503, "type": "service_unavailable", "message": "try later"}`
		}
		return 0, ""
	}
	err := run(t, a, a.DNSPoint, dns.PointInput{DNS: d, Addrs: []string{"192.0.2.30"}}, &pt, nil)
	assert.Contains(t, cloudtest.AppError(t, err, dns.ErrTypeTransient, false), "HTTP 503: service_unavailable try later")
}
