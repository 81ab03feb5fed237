package devstack_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/tests/testenv"
)

func startNamed(t *testing.T) *devstack.Named {
	t.Helper()
	dir, err := testenv.TempDir("drvdns")
	if err != nil {
		t.Fatal(err)
	}
	n, err := testenv.StartNamed(context.Background(), dir, "127.0.0.1", "drover.test.",
		map[string]string{"app": "127.0.0.2", "east": "127.0.0.2", "west": "127.0.0.3"})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = n.Process().Stop(context.Background(), 10*time.Second)
		os.RemoveAll(dir)
	})
	return n
}

func aRecords(t *testing.T, n *devstack.Named, name string) []string {
	t.Helper()
	rrs, err := n.Lookup(context.Background(), name, dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range rrs {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func update(t *testing.T, n *devstack.Named, keyName, secret, ip string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate("drover.test.")
	rr, err := dns.NewRR("app.drover.test. 30 IN A " + ip)
	if err != nil {
		t.Fatal(err)
	}
	m.RemoveRRset([]dns.RR{rr})
	m.Insert([]dns.RR{rr})
	c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
	if keyName != "" {
		m.SetTsig(dns.Fqdn(keyName), dns.HmacSHA256, 300, time.Now().Unix())
		c.TsigSecret = map[string]string{dns.Fqdn(keyName): secret}
	}
	r, _, err := c.Exchange(m, n.Addr())
	if err != nil && r == nil {
		t.Fatal(err)
	}
	return r
}

// The stack's BIND9 serves the demo zone and accepts RFC 2136 updates only
// when signed with the TSIG key it generated.
func TestNamedServesZoneAndAcceptsOnlySignedUpdates(t *testing.T) {
	n := startNamed(t)
	if got := aRecords(t, n, "app.drover.test."); len(got) != 1 || got[0] != "127.0.0.2" {
		t.Fatalf("app.drover.test initially %v, want [127.0.0.2]", got)
	}
	secretBytes, err := os.ReadFile(n.KeySecretFile())
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(secretBytes))
	if st, err := os.Stat(n.KeySecretFile()); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file must be 0600: %v %v", st.Mode(), err)
	}

	if r := update(t, n, "", "", "127.0.0.9"); r.Rcode != dns.RcodeRefused {
		t.Fatalf("unsigned update: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	if r := update(t, n, "drover-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "127.0.0.9"); r.Rcode == dns.RcodeSuccess {
		t.Fatal("update signed with a wrong secret was accepted")
	}
	if got := aRecords(t, n, "app.drover.test."); got[0] != "127.0.0.2" {
		t.Fatalf("refused updates changed the record: %v", got)
	}
	if r := update(t, n, "drover-key", secret, "127.0.0.3"); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("signed update: rcode %s", dns.RcodeToString[r.Rcode])
	}
	if got := aRecords(t, n, "app.drover.test."); len(got) != 1 || got[0] != "127.0.0.3" {
		t.Fatalf("after signed update: %v, want [127.0.0.3]", got)
	}

	// A restart keeps the update (journal) rather than rewriting the zone.
	if err := n.Process().Stop(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Start(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := aRecords(t, n, "app.drover.test."); len(got) != 1 || got[0] != "127.0.0.3" {
		t.Fatalf("after restart: %v, want [127.0.0.3]", got)
	}
}
