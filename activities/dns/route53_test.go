package dns_test

import (
	"context"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drover-sre/drover/activities/dns"
)

// route53Client is the real SDK client pointed at the fake, with static
// credentials and the SDK's own retries off so each test sees every request.
func route53Client(f *fakeRoute53) *route53.Client {
	cfg := aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(testAccessKey, "drover-test-secret", ""),
		RetryMaxAttempts: 1,
	}
	return route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = aws.String(f.srv.URL) })
}

// testAccessKey is the access key the test clients sign with.
const testAccessKey = "AKIDDROVERTEST"

func route53Driver(f *fakeRoute53) *dns.Route53 {
	return &dns.Route53{Client: route53Client(f), ZoneID: "/hostedzone/" + f.zoneID, PollInterval: 5 * time.Millisecond, SyncTimeout: 5 * time.Second}
}

func ttl(n int64) *int64 { return &n }

// Set UPSERTs the whole record set in the shape Route 53 documents and polls
// GetChange until INSYNC; a second identical Set sends no change; Remove
// UPSERTs what is left and DELETEs the exact set when the last address goes.
func TestRoute53SetRemove(t *testing.T) {
	t.Parallel()
	f := newFakeRoute53(t, "Z0DROVER")
	f.insyncAfter = 2
	f.put(r53RecordSet{Name: "app.drover.test.", Type: "A", TTL: ttl(300), ResourceRecords: []r53ResourceRecord{{"192.0.2.10"}}})
	f.put(r53RecordSet{Name: "app.drover.test.", Type: "TXT", TTL: ttl(300), ResourceRecords: []r53ResourceRecord{{`"hello"`}}})
	d := route53Driver(f)
	ctx := context.Background()
	const app = "app.drover.test."

	got, err := d.Get(ctx, "App.Drover.Test")
	require.NoError(t, err)
	assert.Equal(t, set(300, "192.0.2.10"), got)

	prev, changed, err := d.Set(ctx, app, set(60, "192.0.2.20"))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, set(300, "192.0.2.10"), prev)
	lists, gets, batches := f.snapshot()
	assert.Equal(t, 2, lists, "read before, and the Get above")
	assert.Equal(t, 3, gets, "two PENDING answers, then INSYNC")
	require.Len(t, batches, 1)
	b := batches[0]
	assert.Equal(t, route53NS, b.namespace)
	assert.Equal(t, "application/xml", b.contentType)
	require.Len(t, b.Changes, 1)
	assert.Equal(t, "UPSERT", b.Changes[0].Action)
	rs := b.Changes[0].ResourceRecordSet
	assert.Equal(t, "app.drover.test.", rs.Name)
	assert.Equal(t, "A", rs.Type)
	assert.Equal(t, int64(60), *rs.TTL)
	assert.Equal(t, []r53ResourceRecord{{"192.0.2.20"}}, rs.ResourceRecords)
	assert.Nil(t, rs.AliasTarget)
	f.mu.Lock()
	assert.Equal(t, "maxitems=10&name=app.drover.test.&type=A", f.listQueries[0], "ListResourceRecordSets query")
	f.mu.Unlock()

	// Already so: no change is sent.
	prev, changed, err = d.Set(ctx, app, set(60, "192.0.2.20"))
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, set(60, "192.0.2.20"), prev)
	_, gets2, batches := f.snapshot()
	assert.Len(t, batches, 1, "no second change batch")
	assert.Equal(t, gets, gets2)

	// Two addresses, then remove them one by one.
	f.insyncAfter = 0 // INSYNC at once: no GetChange needed
	_, changed, err = d.Set(ctx, app, set(60, "192.0.2.21", "192.0.2.20"))
	require.NoError(t, err)
	assert.True(t, changed)
	prev, changed, err = d.Remove(ctx, app, netip.MustParseAddr("192.0.2.20"))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, set(60, "192.0.2.20", "192.0.2.21"), prev)
	_, changed, err = d.Remove(ctx, app, netip.MustParseAddr("192.0.2.20"))
	require.NoError(t, err)
	assert.False(t, changed, "already gone")
	_, changed, err = d.Remove(ctx, app, netip.MustParseAddr("192.0.2.21"))
	require.NoError(t, err)
	assert.True(t, changed)
	_, gets3, batches := f.snapshot()
	assert.Equal(t, gets2, gets3, "INSYNC in the change answer: no polling")
	require.Len(t, batches, 4)
	assert.Equal(t, "UPSERT", batches[2].Changes[0].Action)
	assert.Equal(t, []r53ResourceRecord{{"192.0.2.21"}}, batches[2].Changes[0].ResourceRecordSet.ResourceRecords)
	del := batches[3].Changes[0]
	assert.Equal(t, "DELETE", del.Action, "last address: the set is deleted")
	assert.Equal(t, int64(60), *del.ResourceRecordSet.TTL, "DELETE names the exact current set")
	got, err = d.Get(ctx, app)
	require.NoError(t, err)
	assert.True(t, got.Empty())
	_, changed, err = d.Remove(ctx, app, netip.MustParseAddr("192.0.2.21"))
	require.NoError(t, err)
	assert.False(t, changed)

	// Creating a record set that does not exist is an UPSERT too.
	prev, changed, err = d.Set(ctx, "new.drover.test", set(30, "192.0.2.30"))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.True(t, prev.Empty())
}

// The wait for INSYNC is bounded by SyncTimeout and by the context, and
// counts its polls.
func TestRoute53WaitBounded(t *testing.T) {
	t.Parallel()
	f := newFakeRoute53(t, "Z0DROVER")
	f.insyncAfter = 1 << 30 // never in sync
	d := route53Driver(f)
	d.SyncTimeout = 100 * time.Millisecond
	d.PollInterval = 10 * time.Millisecond
	start := time.Now()
	_, changed, err := d.Set(context.Background(), "app.drover.test.", set(60, "192.0.2.20"))
	assert.Less(t, time.Since(start), 2*time.Second)
	require.Error(t, err)
	assert.False(t, changed)
	assert.Equal(t, dns.Transient, dns.KindOf(err))
	assert.ErrorContains(t, err, "still PENDING after 100ms")
	_, gets, _ := f.snapshot()
	assert.LessOrEqual(t, gets, 12)
	assert.GreaterOrEqual(t, gets, 3)

	d.SyncTimeout = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, _, err = d.Set(ctx, "app.drover.test.", set(60, "192.0.2.21"))
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Equal(t, dns.Transient, dns.KindOf(err))
	assert.ErrorContains(t, err, "deadline exceeded")
}

// Route 53 errors are classified: throttling is retryable (Throttled),
// refused credentials and permissions are Auth, an unknown hosted zone and a
// rejected change batch are Config, a server error is Transient; every
// message names the operation, record and zone.
func TestRoute53Errors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const app = "app.drover.test."
	errorOn := func(op string, status int, body string) func(string) (int, string) {
		return func(got string) (int, string) {
			if got == op {
				return status, body
			}
			return 0, ""
		}
	}
	tests := []struct {
		name string
		fail func(string) (int, string)
		kind dns.Kind
		msg  string
	}{
		{"throttled read", errorOn("ListResourceRecordSets", http.StatusBadRequest, route53ErrorBody("Throttling", "Rate exceeded")),
			dns.Throttled, "route53 list app.drover.test. at hosted zone Z0DROVER: Throttling: Rate exceeded"},
		{"prior request", errorOn("ChangeResourceRecordSets", http.StatusBadRequest, route53ErrorBody("PriorRequestNotComplete", "The request was rejected because Route 53 was still processing a prior request.")),
			dns.Throttled, "PriorRequestNotComplete"},
		{"throttled poll", errorOn("GetChange", http.StatusBadRequest, route53ErrorBody("Throttling", "Rate exceeded")),
			dns.Throttled, "route53 get change app.drover.test."},
		{"access denied", errorOn("ChangeResourceRecordSets", http.StatusForbidden, route53ErrorBody("AccessDenied", "User: arn:aws:iam::123456789012:user/drover is not authorized to perform: route53:ChangeResourceRecordSets")),
			dns.Auth, "AccessDenied: User: arn:aws:iam::123456789012:user/drover is not authorized"},
		{"invalid change batch", errorOn("ChangeResourceRecordSets", http.StatusBadRequest, `<?xml version="1.0"?><InvalidChangeBatch xmlns="`+route53NS+`"><Messages><Message>RRSet with DNS name app.drover.test. is not permitted in zone other.test.</Message></Messages><RequestId>r</RequestId></InvalidChangeBatch>`),
			dns.Config, "InvalidChangeBatch: RRSet with DNS name app.drover.test. is not permitted in zone other.test."},
		{"server error", errorOn("ListResourceRecordSets", http.StatusInternalServerError, route53ErrorBody("InternalFailure", "oops")),
			dns.Transient, "InternalFailure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRoute53(t, "Z0DROVER")
			f.insyncAfter = 1
			f.fail = tt.fail
			_, changed, err := route53Driver(f).Set(ctx, app, set(60, "192.0.2.20"))
			require.Error(t, err)
			t.Log(err)
			assert.False(t, changed)
			assert.Equal(t, tt.kind, dns.KindOf(err), "%v", err)
			assert.ErrorContains(t, err, tt.msg)
			assert.NotContains(t, err.Error(), "drover-test-secret")
		})
	}

	t.Run("unknown hosted zone", func(t *testing.T) {
		f := newFakeRoute53(t, "Z0DROVER")
		d := route53Driver(f)
		d.ZoneID = "ZNOSUCHZONE"
		_, err := d.Get(ctx, app)
		assert.Equal(t, dns.Config, dns.KindOf(err), "%v", err)
		assert.ErrorContains(t, err, "route53 list app.drover.test. at hosted zone ZNOSUCHZONE: NoSuchHostedZone: No hosted zone found with ID: ZNOSUCHZONE (check dns.zone_id)")
	})
	t.Run("unknown access key", func(t *testing.T) {
		f := newFakeRoute53(t, "Z0DROVER")
		f.akid = "AKIDSOMEONEELSE" // the only key the fake accepts
		_, err := route53Driver(f).Get(ctx, app)
		assert.Equal(t, dns.Auth, dns.KindOf(err), "%v", err)
		assert.ErrorContains(t, err, "InvalidClientTokenId")
	})
	t.Run("alias record", func(t *testing.T) {
		f := newFakeRoute53(t, "Z0DROVER")
		f.put(r53RecordSet{Name: "app.drover.test.", Type: "A", AliasTarget: &r53AliasTarget{HostedZoneId: "Z2", DNSName: "lb.example.com.", EvaluateTargetHealth: true}})
		_, _, err := route53Driver(f).Set(ctx, app, set(60, "192.0.2.20"))
		assert.Equal(t, dns.Config, dns.KindOf(err), "%v", err)
		assert.ErrorContains(t, err, "alias or uses a routing policy")
		_, _, batches := f.snapshot()
		assert.Empty(t, batches, "an alias is never overwritten")
	})
	t.Run("server gone", func(t *testing.T) {
		f := newFakeRoute53(t, "Z0DROVER")
		f.srv.Close()
		_, err := route53Driver(f).Get(ctx, app)
		assert.Equal(t, dns.Transient, dns.KindOf(err), "%v", err)
	})
}
