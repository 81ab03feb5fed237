package dns_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
)

const zone = "drover.test."

// startNamed starts BIND9 serving drover.test. on a free port of address,
// with app at 127.0.0.2, and stops it when the test ends. BIND listens only
// on addresses configured on an interface, so address is 127.0.0.1 (other
// 127.0.0.x addresses are not on lo here); the free port isolates tests.
func startNamed(t *testing.T, address string) *devstack.Named {
	t.Helper()
	dir, err := testenv.TempDir("drvdnsact")
	require.NoError(t, err)
	n, err := testenv.StartNamed(context.Background(), dir, address, zone,
		map[string]string{"app": "127.0.0.2", "east": "127.0.0.2", "west": "127.0.0.3"})
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
	return n
}

// recipeDNS is the recipe DNS section for n, with the TSIG secret
// referenced by file.
func recipeDNS(n *devstack.Named) recipe.DNS {
	return recipe.DNS{
		Zone: zone, Record: "app." + zone, TTL: 60, Driver: recipe.DriverRFC2136, Server: n.Addr(),
		TSIG: recipe.TSIG{Name: n.Config.KeyName, Algorithm: "hmac-sha256", Secret: recipe.SecretRef("file:" + n.KeySecretFile())},
	}
}

// serial is the zone's SOA serial as n serves it; BIND raises it on every
// dynamic update it applies, so an unchanged serial proves no update was
// applied.
func serial(t *testing.T, n *devstack.Named) uint32 {
	t.Helper()
	rrs, err := n.Lookup(context.Background(), zone, mdns.TypeSOA)
	require.NoError(t, err)
	require.Len(t, rrs, 1)
	return rrs[0].(*mdns.SOA).Serial
}

// dig asks n with dig (bind9-dnsutils), an independent client, for the A
// records of name.
func dig(t *testing.T, n *devstack.Named, name string) []string {
	t.Helper()
	bin, err := exec.LookPath("dig")
	require.NoError(t, err, "dig not found: install bind9-dnsutils (make apt)")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "@"+n.Config.Address, "-p", strconv.Itoa(n.Config.Port),
		"+norec", "+short", "+time=2", "+tries=1", name, "A").CombinedOutput()
	require.NoError(t, err, "dig: %s", out)
	return strings.Fields(string(out))
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func set(ttl uint32, ss ...string) dns.RecordSet {
	rs, err := dns.NewRecordSet(addrs(ss...), ttl)
	if err != nil {
		panic(err)
	}
	return rs
}

// The RFC 2136 driver against a real BIND9: reads, sets, replaces and
// removes the record; a repeated Set or Remove sends no update (the zone
// serial does not move); every change is seen by an independent client
// (dig) and by Answers.
func TestRFC2136AgainstBIND(t *testing.T) {
	t.Parallel()
	n := startNamed(t, "127.0.0.1")
	d, err := dns.NewRFC2136(recipeDNS(n))
	require.NoError(t, err)
	ctx := context.Background()
	const app = "app.drover.test."

	got, err := d.Get(ctx, app)
	require.NoError(t, err)
	assert.Equal(t, set(30, "127.0.0.2"), got, "zone file content")

	// Point app at the other site.
	s0 := serial(t, n)
	prev, changed, err := d.Set(ctx, app, set(60, "127.0.0.3"))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, set(30, "127.0.0.2"), prev)
	s1 := serial(t, n)
	assert.Greater(t, s1, s0, "an update was applied")
	assert.Equal(t, []string{"127.0.0.3"}, dig(t, n, app))
	ans := dns.Answers(ctx, []string{n.Addr()}, app, 0)
	require.Len(t, ans, 1)
	assert.Equal(t, []string{"127.0.0.3"}, ans[0].Addrs)
	assert.True(t, ans[0].Authoritative)
	assert.Equal(t, uint32(60), ans[0].TTL)
	assert.True(t, dns.Converged(ans, set(60, "127.0.0.3")))
	assert.False(t, dns.Converged(ans, set(60, "127.0.0.2")))

	// The same again: nothing is sent.
	prev, changed, err = d.Set(ctx, "APP.drover.test", set(60, "127.0.0.3"))
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, set(60, "127.0.0.3"), prev)
	assert.Equal(t, s1, serial(t, n), "no update was applied")

	// A TTL change alone is a change.
	_, changed, err = d.Set(ctx, app, set(90, "127.0.0.3"))
	require.NoError(t, err)
	assert.True(t, changed)

	// Replace with two addresses, then take one out.
	prev, changed, err = d.Set(ctx, app, set(60, "127.0.0.5", "127.0.0.4"))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, set(90, "127.0.0.3"), prev)
	assert.ElementsMatch(t, []string{"127.0.0.4", "127.0.0.5"}, dig(t, n, app))

	prev, changed, err = d.Remove(ctx, app, netip.MustParseAddr("127.0.0.5"))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, set(60, "127.0.0.4", "127.0.0.5"), prev)
	assert.Equal(t, []string{"127.0.0.4"}, dig(t, n, app))

	s2 := serial(t, n)
	_, changed, err = d.Remove(ctx, app, netip.MustParseAddr("127.0.0.5"))
	require.NoError(t, err)
	assert.False(t, changed, "already removed")
	assert.Equal(t, s2, serial(t, n), "no update was applied")

	// Removing the last address deletes the record set.
	_, changed, err = d.Remove(ctx, app, netip.MustParseAddr("127.0.0.4"))
	require.NoError(t, err)
	assert.True(t, changed)
	got, err = d.Get(ctx, app)
	require.NoError(t, err)
	assert.True(t, got.Empty())
	assert.Empty(t, dig(t, n, app))
	ans = dns.Answers(ctx, []string{n.Addr()}, app, 0)
	assert.True(t, dns.Converged(ans, dns.RecordSet{}), "answers: %+v", ans)

	// Set creates a record set that does not exist.
	prev, changed, err = d.Set(ctx, "new.drover.test.", set(45, "127.0.0.9"))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.True(t, prev.Empty())
	assert.Equal(t, []string{"127.0.0.9"}, dig(t, n, "new.drover.test."))

	// A name outside the zone is a configuration error, sent nowhere.
	_, _, err = d.Set(ctx, "app.example.com.", set(60, "127.0.0.3"))
	assert.Equal(t, dns.Config, dns.KindOf(err), "%v", err)
	assert.ErrorContains(t, err, "not inside zone drover.test.")
	_, _, err = d.Set(ctx, app, dns.RecordSet{Addrs: addrs("::1"), TTL: 60})
	assert.Equal(t, dns.Config, dns.KindOf(err), "%v", err)
	_, _, err = d.Set(ctx, app, dns.RecordSet{})
	assert.Equal(t, dns.Config, dns.KindOf(err), "%v", err)

	// The zone's NS set, found through the server, is the server itself.
	ns, err := dns.NameServers(ctx, n.Addr(), zone, n.Config.Port, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{n.Addr()}, ns)
}

// A wrong TSIG secret, key name or algorithm is an Auth error that says the
// key was rejected, and the record is left as it was.
func TestRFC2136RejectedKey(t *testing.T) {
	t.Parallel()
	n := startNamed(t, "127.0.0.1")
	ctx := context.Background()
	const app = "app.drover.test."
	good, err := dns.NewRFC2136(recipeDNS(n))
	require.NoError(t, err)
	s0 := serial(t, n)
	wrongSecret := base64.StdEncoding.EncodeToString([]byte("this is not the key named uses!!"))

	cases := map[string]dns.TSIGKey{
		"secret":    {Name: good.Key.Name, Algorithm: "hmac-sha256", Secret: wrongSecret},
		"name":      {Name: "other-key", Algorithm: "hmac-sha256", Secret: good.Key.Secret},
		"algorithm": {Name: good.Key.Name, Algorithm: "hmac-sha512", Secret: good.Key.Secret},
	}
	for what, key := range cases {
		t.Run(what, func(t *testing.T) {
			d := &dns.RFC2136{Server: n.Addr(), Zone: zone, Key: key}
			_, changed, err := d.Set(ctx, app, set(60, "127.0.0.66"))
			require.Error(t, err)
			t.Log(err)
			assert.False(t, changed)
			assert.Equal(t, dns.Auth, dns.KindOf(err), "%v", err)
			assert.ErrorContains(t, err, "app.drover.test. at "+n.Addr()+": ")
			assert.ErrorContains(t, err, "TSIG key "+key.Name+" rejected")
			assert.NotContains(t, err.Error(), key.Secret)
			_, _, err = d.Remove(ctx, app, netip.MustParseAddr("127.0.0.2"))
			assert.Equal(t, dns.Auth, dns.KindOf(err), "%v", err)
		})
	}
	got, err := good.Get(ctx, app)
	require.NoError(t, err)
	assert.Equal(t, set(30, "127.0.0.2"), got, "record unchanged")
	assert.Equal(t, s0, serial(t, n), "no update applied")
	assert.Equal(t, []string{"127.0.0.2"}, dig(t, n, app))
}

// Answers reports an unreachable server and a server that is not
// authoritative for the name as unusable answers instead of failing, and
// never waits longer than its timeout.
func TestAnswersUnusableServers(t *testing.T) {
	t.Parallel()
	n := startNamed(t, "127.0.0.1")
	ctx := context.Background()
	// A UDP port with nobody behind it: closed (ICMP) or silent, both bounded.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	silent := pc.LocalAddr().String()
	defer pc.Close()

	start := time.Now()
	ans := dns.Answers(ctx, []string{n.Addr(), silent}, "other.example.", 300*time.Millisecond)
	assert.Less(t, time.Since(start), 3*time.Second)
	require.Len(t, ans, 2)
	assert.Equal(t, n.Addr(), ans[0].Server)
	assert.NotEmpty(t, ans[0].Error, "BIND is not authoritative for example.: %+v", ans[0])
	assert.False(t, ans[0].Matches(dns.RecordSet{}))
	assert.Equal(t, silent, ans[1].Server)
	assert.Contains(t, ans[1].Error, "timeout")
	assert.False(t, dns.Converged(ans, dns.RecordSet{}))
	assert.False(t, dns.Converged(nil, dns.RecordSet{}))

	ctx, cancel := context.WithCancel(ctx)
	cancel()
	ans = dns.Answers(ctx, []string{silent}, "app.drover.test.", time.Minute)
	assert.NotEmpty(t, ans[0].Error)
	assert.True(t, errors.Is(ctx.Err(), context.Canceled))
}
