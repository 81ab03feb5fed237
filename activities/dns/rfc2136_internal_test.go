package dns

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
)

// rfc2136ForBIND starts BIND9 for drover.test. and returns a driver with the
// right key; BIND is stopped when the test ends.
func rfc2136ForBIND(t *testing.T) *RFC2136 {
	t.Helper()
	dir, err := testenv.TempDir("drvdnsint")
	require.NoError(t, err)
	n, err := testenv.StartNamed(context.Background(), dir, "127.0.0.1", "drover.test.", map[string]string{"app": "127.0.0.2"})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Process().Stop(context.Background(), 10*time.Second); err != nil {
			t.Errorf("stop named: %v", err)
		}
		os.RemoveAll(dir)
	})
	r, err := NewRFC2136(recipe.DNS{Zone: "drover.test", Record: "app.drover.test", Driver: recipe.DriverRFC2136,
		Server: n.Addr(), TSIG: recipe.TSIG{Name: n.Config.KeyName, Secret: recipe.SecretRef("file:" + n.KeySecretFile())}})
	require.NoError(t, err)
	assert.Equal(t, "hmac-sha256", r.Key.Algorithm, "recipe default algorithm")
	return r
}

// The UPDATE itself is checked, not only the read before it: an update
// whose prerequisite no longer holds (someone changed the record after it
// was read) fails as Transient and changes nothing; an update signed with a
// wrong secret is an Auth error naming the key; an update for a zone the
// server does not serve is refused as Auth or Config, never taken for success.
func TestRFC2136UpdateChecks(t *testing.T) {
	t.Parallel()
	r := rfc2136ForBIND(t)
	ctx := context.Background()
	const app = "app.drover.test."
	stale, err := r.Get(ctx, app)
	require.NoError(t, err)
	_, changed, err := r.Set(ctx, app, RecordSet{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.3")}, TTL: 60})
	require.NoError(t, err)
	require.True(t, changed)

	// A writer that still believes the stale value.
	want := RecordSet{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.7")}, TTL: 60}
	m := r.updateMsg(app, stale)
	m.RemoveRRset([]mdns.RR{aHeader(app, 0)})
	m.Insert(aRecords(app, want))
	err = r.update(ctx, app, m, want)
	assert.Equal(t, Transient, KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "dns update app.drover.test. at "+r.Server+": NXRRSET (the record set changed since it was read")
	got, err := r.Get(ctx, app)
	require.NoError(t, err)
	assert.Equal(t, "[127.0.0.3] ttl 60", got.String(), "the concurrent value survives")

	// An UPDATE signed with a wrong secret, sent without the read before it.
	bad := *r
	bad.Key.Secret = base64.StdEncoding.EncodeToString([]byte("wrong secret, right key name...."))
	m = bad.updateMsg(app, got)
	m.RemoveRRset([]mdns.RR{aHeader(app, 0)})
	m.Insert(aRecords(app, want))
	resp, xerr := bad.exchange(ctx, m)
	err = bad.check("dns update", app, resp, xerr)
	assert.Equal(t, Auth, KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "dns update app.drover.test. at "+r.Server+": NOTAUTH, TSIG error BADSIG (TSIG key drover-key rejected")

	// A zone the server does not serve.
	other := *r
	other.Zone = "other.test."
	m = other.updateMsg("app.other.test.", RecordSet{})
	m.Insert(aRecords("app.other.test.", want))
	resp, xerr = other.exchange(ctx, m)
	err = other.check("dns update", "app.other.test.", resp, xerr)
	require.Error(t, err)
	assert.Contains(t, []Kind{Auth, Config}, KindOf(err), "%v", err)
	_, err = other.Get(ctx, "app.other.test.")
	assert.Equal(t, Config, KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "REFUSED (does the server serve zone other.test.")

	got, err = r.Get(ctx, app)
	require.NoError(t, err)
	assert.Equal(t, "[127.0.0.3] ttl 60", got.String())
}

// check classifies every answer an RFC 2136 server can give.
func TestRFC2136CheckClassification(t *testing.T) {
	r := &RFC2136{Server: "192.0.2.53:53", Zone: "drover.test.", Key: TSIGKey{Name: "k", Algorithm: "hmac-sha256", Secret: "c2VjcmV0"}}
	reply := func(rcode int, tsigErr uint16) *mdns.Msg {
		m := new(mdns.Msg)
		m.Rcode = rcode
		if tsigErr != 0 {
			m.Extra = append(m.Extra, &mdns.TSIG{Hdr: mdns.RR_Header{Name: "k.", Rrtype: mdns.TypeTSIG, Class: mdns.ClassANY}, Algorithm: mdns.HmacSHA256, Error: tsigErr})
		}
		return m
	}
	tests := []struct {
		op      string
		resp    *mdns.Msg
		err     error
		kind    Kind
		message string
	}{
		{"dns update", reply(mdns.RcodeSuccess, 0), nil, -1, ""},
		{"dns query", reply(mdns.RcodeNameError, 0), nil, -1, ""},
		{"dns update", reply(mdns.RcodeRefused, 0), nil, Auth, "dns update app.drover.test. at 192.0.2.53:53: REFUSED (TSIG key k rejected?"},
		{"dns query", reply(mdns.RcodeRefused, 0), nil, Config, "REFUSED (does the server serve zone drover.test."},
		{"dns update", reply(mdns.RcodeNotAuth, mdns.RcodeBadSig), mdns.ErrSig, Auth, "NOTAUTH, TSIG error BADSIG (TSIG key k rejected"},
		{"dns update", reply(mdns.RcodeNotAuth, mdns.RcodeBadTime), mdns.ErrTime, Auth, "TSIG error BADTIME"},
		{"dns update", reply(mdns.RcodeNotAuth, 0), nil, Auth, "NOTAUTH (TSIG key k rejected, or server not authoritative"},
		{"dns update", reply(mdns.RcodeNameError, 0), nil, Config, "NXDOMAIN"},
		{"dns update", reply(mdns.RcodeNotZone, 0), nil, Config, "NOTZONE"},
		{"dns update", reply(mdns.RcodeYXRrset, 0), nil, Transient, "YXRRSET (the record set changed"},
		{"dns update", reply(mdns.RcodeFormatError, 0), nil, Config, "FORMERR"},
		{"dns update", reply(mdns.RcodeNotImplemented, 0), nil, Config, "NOTIMP"},
		{"dns update", reply(mdns.RcodeServerFailure, 0), nil, Transient, "SERVFAIL"},
		{"dns update", reply(mdns.RcodeSuccess, 0), mdns.ErrSig, Auth, "response failed TSIG verification"},
		{"dns update", nil, context.DeadlineExceeded, Transient, "timeout"},
		{"dns update", nil, errors.New("connection refused"), Transient, "connection refused"},
	}
	for _, tt := range tests {
		err := r.check(tt.op, "app.drover.test.", tt.resp, tt.err)
		if tt.kind < 0 {
			assert.NoError(t, err)
			continue
		}
		require.Error(t, err, tt.message)
		assert.Equal(t, tt.kind, KindOf(err), "%v", err)
		assert.ErrorContains(t, err, tt.message)
		assert.NotContains(t, err.Error(), r.Key.Secret)
	}
}

// NewRFC2136 resolves the secret reference on the worker and rejects every
// unusable key as Config without showing the secret; a TSIGKey never prints
// its secret.
func TestNewRFC2136(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/good"
	require.NoError(t, os.WriteFile(good, []byte("c2VjcmV0LXNlY3JldA==\n"), 0o600))
	notB64 := dir + "/bad"
	require.NoError(t, os.WriteFile(notB64, []byte("not base64 at all!\n"), 0o600))
	base := recipe.DNS{Zone: "drover.test.", Record: "app.drover.test.", Driver: recipe.DriverRFC2136, Server: "127.0.0.1:53",
		TSIG: recipe.TSIG{Name: "drover-key", Algorithm: "hmac-sha512", Secret: recipe.SecretRef("file:" + good)}}
	r, err := NewRFC2136(base)
	require.NoError(t, err)
	assert.Equal(t, "c2VjcmV0LXNlY3JldA==", r.Key.Secret)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		assert.NotContains(t, fmt.Sprintf(format, r), "c2VjcmV0", format)
		assert.NotContains(t, fmt.Sprintf(format, *r), "c2VjcmV0", format)
	}

	broken := map[string]func(d *recipe.DNS){
		"dns.server is required":        func(d *recipe.DNS) { d.Server = "" },
		"dns.server must be host:port":  func(d *recipe.DNS) { d.Server = "127.0.0.1" },
		"dns.tsig.name is required":     func(d *recipe.DNS) { d.TSIG.Name = "" },
		"tsig algorithm \"hmac-md5\"":   func(d *recipe.DNS) { d.TSIG.Algorithm = "hmac-md5" },
		"environment variable is not":   func(d *recipe.DNS) { d.TSIG.Secret = "env:DROVER_TEST_UNSET_TSIG_SECRET" },
		"tsig secret is not valid base": func(d *recipe.DNS) { d.TSIG.Secret = recipe.SecretRef("file:" + notB64) },
		"must be a secret reference":    func(d *recipe.DNS) { d.TSIG.Secret = "c2VjcmV0LXNlY3JldA==" },
	}
	for want, breakIt := range broken {
		d := base
		breakIt(&d)
		_, err := NewRFC2136(d)
		require.Error(t, err, want)
		assert.Equal(t, Config, KindOf(err), "%v", err)
		assert.ErrorContains(t, err, want)
		assert.NotContains(t, err.Error(), "c2VjcmV0", "secret shown")
		assert.NotContains(t, err.Error(), "not base64 at all", "secret shown")
	}
}
