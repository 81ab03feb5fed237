package probe_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
)

// closedAddr is a loopback host:port nothing listens on.
func closedAddr(t *testing.T, host string) string {
	t.Helper()
	port, err := testenv.FreePort(host)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func TestProbeHTTP(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "status: ready") })
	mux.HandleFunc("/maintenance", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select { // until the client gives up (or the test ends)
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	cases := []struct {
		name    string
		in      probe.HTTPInput
		up      bool
		status  int
		errPart string
	}{
		{"2xx is up", probe.HTTPInput{URL: srv.URL + "/ready"}, true, 200, ""},
		{"body contains", probe.HTTPInput{URL: srv.URL + "/ready", BodyContains: "ready"}, true, 200, ""},
		{"body lacks", probe.HTTPInput{URL: srv.URL + "/ready", BodyContains: "degraded"}, false, 200, `body does not contain "degraded"`},
		{"503 is down", probe.HTTPInput{URL: srv.URL + "/maintenance"}, false, 503, "503 Service Unavailable"},
		{"503 expected", probe.HTTPInput{URL: srv.URL + "/maintenance", ExpectStatus: 503}, true, 503, ""},
		{"200 when 204 expected", probe.HTTPInput{URL: srv.URL + "/ready", ExpectStatus: 204}, false, 200, "200 OK"},
		{"timeout", probe.HTTPInput{URL: srv.URL + "/hang", Timeout: recipe.Duration(200 * time.Millisecond)}, false, 0, "timeout"},
		{"refused", probe.HTTPInput{URL: "http://" + closedAddr(t, "127.0.0.1") + "/ready"}, false, 0, "connection refused"},
	}
	a := &probe.Activities{Vantage: "east"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Site = "west"
			start := time.Now()
			res, err := a.ProbeHTTP(context.Background(), tc.in)
			if err != nil {
				t.Fatalf("a probe reports, it does not fail: %v", err)
			}
			if res.Up != tc.up || res.StatusCode != tc.status || !strings.Contains(res.Error, tc.errPart) || (tc.up && res.Error != "") {
				t.Fatalf("got %+v, want up=%v status %d error containing %q", res, tc.up, tc.status, tc.errPart)
			}
			if res.Site != "west" || res.Vantage != "east" || res.URL != tc.in.URL || res.LatencyMS > time.Since(start).Milliseconds() {
				t.Fatalf("identity or latency: %+v", res)
			}
		})
	}
}

func TestProbeTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	a := &probe.Activities{Vantage: "east"}
	res, err := a.ProbeTCP(context.Background(), probe.TCPInput{Site: "west", Address: l.Addr().String()})
	if err != nil || !res.Up || res.Error != "" || res.Address != l.Addr().String() || res.Vantage != "east" || res.Site != "west" {
		t.Fatalf("listening port: %+v %v", res, err)
	}
	if !testenv.WaitFor(5*time.Second, func() bool { return accepted.Load() == 1 }) {
		t.Fatal("the listener saw no connection")
	}
	res, err = a.ProbeTCP(context.Background(), probe.TCPInput{Site: "west", Address: closedAddr(t, "127.0.0.1")})
	if err != nil || res.Up || !strings.Contains(res.Error, "connection refused") {
		t.Fatalf("closed port: %+v %v", res, err)
	}
}

// ProbeMySQL reads state and, from a stream's checkpoint row, its GTID and
// lag (server clock minus the source commit time).
func TestProbeMySQL(t *testing.T) {
	ctx := context.Background()
	root, err := db.RootDB()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := replication.Setup(ctx, root); err != nil {
		t.Fatal(err)
	}
	conn, err := root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"SET SESSION sql_log_bin=0", // bookkeeping rows, as the applier's would be: no GTID of this server
		`REPLACE INTO drover.replication_checkpoint (stream, gtid, source_ts, applied_at, txns)
		 VALUES ('app-east-west', '7-7-42', UTC_TIMESTAMP(6) - INTERVAL 3 SECOND, UTC_TIMESTAMP(6), 42)`,
		`REPLACE INTO drover.replication_checkpoint (stream, gtid, source_ts, applied_at, txns)
		 VALUES ('ddl-only', '7-7-1', NULL, UTC_TIMESTAMP(6), 0)`,
		"SET SESSION sql_log_bin=1",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	a := &probe.Activities{Vantage: "west"}
	probeIt := func(s recipe.Site, stream string) probe.MySQLResult {
		t.Helper()
		res, err := a.ProbeMySQL(ctx, probe.MySQLInput{Site: s, Stream: stream, Timeout: recipe.Duration(3 * time.Second)})
		if err != nil {
			t.Fatalf("a probe reports, it does not fail: %v", err)
		}
		return res
	}
	res := probeIt(site(), "app-east-west")
	if !res.Up || res.Error != "" || !res.ReadOnly || res.Address != db.Addr() || res.Site != "east" || res.Vantage != "west" {
		t.Fatalf("live server: %+v", res)
	}
	if res.CheckpointGTID != "7-7-42" || res.LagSeconds == nil || *res.LagSeconds < 3 || *res.LagSeconds > 30 ||
		res.SourceTS.IsZero() || res.AppliedAt.Sub(res.SourceTS) < 3*time.Second {
		t.Fatalf("checkpoint and lag: %+v (lag %v)", res, res.LagSeconds)
	}

	if res := probeIt(site(), "ddl-only"); !res.Up || res.CheckpointGTID != "7-7-1" || res.LagSeconds != nil {
		t.Fatalf("checkpoint without a source time has no lag: %+v", res)
	}
	if res := probeIt(site(), "never-ran"); !res.Up || res.CheckpointGTID != "" || res.LagSeconds != nil || !strings.Contains(res.Error, "no checkpoint") {
		t.Fatalf("stream without a checkpoint: %+v", res)
	}
	if res := probeIt(site(), ""); !res.Up || res.Error != "" || res.Stream != "" {
		t.Fatalf("no stream asked: %+v", res)
	}

	wrong := t.TempDir() + "/wrong.pw"
	if err := os.WriteFile(wrong, []byte("not-the-password-XYZ\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := site()
	bad.DB.Password = recipe.SecretRef("file:" + wrong)
	if res := probeIt(bad, "app-east-west"); res.Up || !strings.Contains(res.Error, "mysql error 1045") || strings.Contains(res.Error, "XYZ") {
		t.Fatalf("wrong password: %+v", res)
	}
}

// dnsServer is a tiny authoritative server for drover.test on UDP and TCP
// of one loopback port. It records whether any query asked for recursion.
type dnsServer struct {
	addr      string
	recursion atomic.Bool
	tcpQuery  atomic.Int32
}

func startDNS(t *testing.T, host string) *dnsServer {
	t.Helper()
	d := &dnsServer{}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if r.RecursionDesired {
			d.recursion.Store(true)
		}
		_, overTCP := w.RemoteAddr().(*net.TCPAddr)
		if overTCP {
			d.tcpQuery.Add(1)
		}
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case !dns.IsSubDomain("drover.test.", q.Name):
			m.Rcode = dns.RcodeRefused
		case q.Name == "app.drover.test." && q.Qtype == dns.TypeA:
			m.Authoritative = true
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
				A: net.ParseIP("127.0.0.2")})
		case q.Name == "big.drover.test." && !overTCP:
			m.Authoritative, m.Truncated = true, true // "too big for UDP": ask again over TCP
		case q.Name == "big.drover.test.":
			m.Authoritative = true
			for i := 1; i <= 40; i++ {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: uint32(60 + i)},
					A: net.IPv4(127, 0, 1, byte(i))})
			}
		default:
			m.Authoritative = true
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	port, err := testenv.FreePort(host)
	if err != nil {
		t.Fatal(err)
	}
	d.addr = net.JoinHostPort(host, strconv.Itoa(port))
	pc, err := net.ListenPacket("udp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", d.addr)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return d
}

func TestProbeDNS(t *testing.T) {
	srv := startDNS(t, "127.0.0.61")
	a := &probe.Activities{Vantage: "east"}
	ask := func(server, name string) probe.DNSResult {
		t.Helper()
		res, err := a.ProbeDNS(context.Background(), probe.DNSInput{Site: "west", Server: server, Name: name, Timeout: recipe.Duration(2 * time.Second)})
		if err != nil {
			t.Fatalf("a probe reports, it does not fail: %v", err)
		}
		return res
	}

	res := ask(srv.addr, "app.drover.test")
	if !res.Up || res.Rcode != "NOERROR" || !res.Authoritative || strings.Join(res.Addresses, ",") != "127.0.0.2" ||
		res.TTL != 30 || res.Name != "app.drover.test." || res.Type != "A" || res.Vantage != "east" || res.Site != "west" {
		t.Fatalf("served record: %+v", res)
	}
	if srv.recursion.Load() {
		t.Fatal("the probe asked for recursion")
	}
	if res := ask(srv.addr, "gone.drover.test."); res.Up || res.Rcode != "NXDOMAIN" || !strings.Contains(res.Error, "NXDOMAIN") {
		t.Fatalf("missing name: %+v", res)
	}
	if res := ask(srv.addr, "app.example.org."); res.Up || res.Rcode != "REFUSED" {
		t.Fatalf("zone the server does not serve: %+v", res)
	}
	res = ask(srv.addr, "big.drover.test.")
	if !res.Up || len(res.Addresses) != 40 || res.TTL != 61 || srv.tcpQuery.Load() != 1 {
		t.Fatalf("truncated answer not retried over TCP: %+v (tcp queries %d)", res, srv.tcpQuery.Load())
	}
	if res := ask(closedAddr(t, "127.0.0.61"), "app.drover.test."); res.Up || res.Error == "" {
		t.Fatalf("no server: %+v", res)
	}
}

// The recipe's probes list becomes concrete checks of one site.
func TestExpandTargets(t *testing.T) {
	r, err := recipe.Parse([]byte(`
app: shop
primary: east
sites:
  - name: east
    provider: local
    address: 127.0.0.2
    db: {user: drover, password: env:PW}
    app: {endpoints: ["http://127.0.0.2:8080"]}
  - name: west
    provider: local
    address: 127.0.0.3
    db: {user: drover, password: env:PW, port: 3307}
    app: {endpoints: ["http://127.0.0.3:8080/", "https://127.0.0.3"]}
replication: [{from: east, to: west}]
dns:
  zone: drover.test
  record: app.drover.test
  driver: rfc2136
  server: 127.0.0.1:5354
  tsig: {name: drover-key, secret: env:TSIG}
probes:
  - {kind: http, target: /healthz, timeout: 1s}
  - {kind: tcp, target: db}
  - {kind: tcp, target: app}
  - {kind: tcp, target: "127.0.0.9:6379"}
  - {kind: mysql}
  - {kind: dns, interval: 10s, timeout: 3s}
  - {kind: dns, target: www.drover.test}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := probe.ExpandTargets(r, "west")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"http west http://127.0.0.3:8080/healthz",
		"http west https://127.0.0.3/healthz",
		"tcp west 127.0.0.3:3307",
		"tcp west 127.0.0.3:8080",
		"tcp west 127.0.0.3:443",
		"tcp west 127.0.0.9:6379",
		"mysql west",
		"dns west 127.0.0.1:5354 app.drover.test. A",
		"dns west 127.0.0.1:5354 www.drover.test. A",
	}
	var keys []string
	for _, tg := range got {
		keys = append(keys, tg.Key())
	}
	if strings.Join(keys, "\n") != strings.Join(want, "\n") {
		t.Fatalf("targets:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
	if h := got[0].HTTP; h.Timeout != recipe.Duration(time.Second) || h.Site != "west" || got[0].Spec.FailureThreshold != recipe.DefaultFailureThreshold {
		t.Fatalf("http target: %+v spec %+v", h, got[0].Spec)
	}
	if m := got[6].MySQL; m.Stream != "shop-east-west" || m.Site.Name != "west" || m.Timeout != recipe.DefaultProbeTimeout {
		t.Fatalf("mysql target of the standby: %+v", m)
	}
	if d := got[7].DNS; d.Timeout != recipe.Duration(3*time.Second) || got[7].Spec.Interval != recipe.Duration(10*time.Second) {
		t.Fatalf("dns target: %+v", d)
	}

	// The primary has no stream into it; route53 has no server to ask.
	r.DNS.Driver, r.DNS.Server, r.DNS.ZoneID = recipe.DriverRoute53, "", "Z123"
	east, err := probe.ExpandTargets(r, "east")
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range east {
		if tg.DNS != nil || tg.MySQL != nil && tg.MySQL.Stream != "" {
			t.Fatalf("east target %s: %+v", tg.Key(), tg)
		}
	}
	if len(east) != 5 {
		t.Fatalf("east has %d targets, want 5 (1 http, 3 tcp, 1 mysql)", len(east))
	}
	if _, err := probe.ExpandTargets(r, "north"); err == nil {
		t.Fatal("unknown site accepted")
	}
}
