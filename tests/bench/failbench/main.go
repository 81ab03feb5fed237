// Command failbench measures Drover's runbooks on the local stack: the
// timeline of an automatic failover (the health monitor probing every
// second with a threshold of 3, the primary's whole site — database, app
// and worker — killed with SIGKILL) from the kill to detection, fencing,
// promotion, DNS switch and the first write acknowledged through the
// public name; then failback; then switchovers under a write load, timing
// how long no write was acknowledged. Run it with `make bench-failover`; it
// prints the figures and writes a Markdown summary to -out.
//
// The targets are absolute (outage to writable ≤ 10 s, switchover write
// unavailability ≤ 2 s), so the baseline printed beside them is measured in
// the same run: the detection floor (interval × threshold: no monitor that
// waits for 3 failed rounds can be faster) and the raw database and DNS
// operations a runbook is made of, timed directly.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	mdns "github.com/miekg/dns"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/bench/benchenv"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

func main() {
	out := flag.String("out", "tests/bench/results/failover.md", "where to write the Markdown summary (empty: nowhere)")
	switchovers := flag.Int("switchovers", 4, "switchovers under load (alternating direction)")
	timeout := flag.Duration("timeout", 10*time.Minute, "abort the whole run after this long")
	flag.Parse()
	benchenv.Run("failbench", *timeout, func(ctx context.Context) error { return run(ctx, *out, *switchovers) })
}

func logf(format string, args ...any) {
	fmt.Printf(time.Now().Format("15:04:05")+" failbench: "+format+"\n", args...)
}

type bench struct {
	st   *devstack.State
	opts devstack.Options
	r    *recipe.Recipe
	c    client.Client
	dbs  map[string]*sql.DB
}

func run(ctx context.Context, out string, switchovers int) (err error) {
	started := time.Now()
	binDir, err := testenv.TempDir("drvfbbin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	logf("building drover, drover-worker and petclinic")
	if _, err := testenv.Build(binDir); err != nil {
		return err
	}
	stateDir, err := testenv.TempDir("drvfb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	b := &bench{dbs: map[string]*sql.DB{}}
	if b.opts, err = testenv.StackOptions(stateDir, binDir, "127.0.0.20", "127.0.0.21"); err != nil {
		return err
	}
	logf("starting the local stack (sites on 127.0.0.20 and 127.0.0.21)")
	if b.st, err = devstack.Up(ctx, b.opts); err != nil {
		return err
	}
	defer func() {
		if derr := devstack.Down(context.Background(), stateDir, io.Discard); derr != nil && err == nil {
			err = derr
		}
	}()
	if b.r, err = recipe.Load(b.st.RecipeFile); err != nil {
		return err
	}
	if b.c, err = client.Dial(client.Options{HostPort: b.st.TemporalAddress, Namespace: b.st.Namespace}); err != nil {
		return err
	}
	defer b.c.Close()
	for _, s := range b.r.Sites {
		pw, err := s.DB.Password.Resolve()
		if err != nil {
			return err
		}
		db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/?timeout=2s&readTimeout=2s", s.DB.User, pw, net.JoinHostPort(s.DB.Host, strconv.Itoa(s.DB.Port))))
		if err != nil {
			return err
		}
		defer db.Close()
		b.dbs[s.Name] = db
	}

	res := &result{}
	if err := b.baseline(ctx, res); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if err := b.startStream(ctx, "east", "west"); err != nil {
		return err
	}
	if err := b.failover(ctx, res); err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	if err := b.failback(ctx, res); err != nil {
		return fmt.Errorf("failback: %w", err)
	}
	if err := b.switchovers(ctx, res, switchovers); err != nil {
		return fmt.Errorf("switchover: %w", err)
	}
	res.took = time.Since(started)
	md := res.markdown()
	fmt.Println()
	fmt.Println(md)
	return benchenv.WriteSummary(out, md)
}

// result holds the figures.
type result struct {
	floor              time.Duration // interval × threshold
	rawReadOnly        time.Duration // SET GLOBAL read_only=ON then OFF, directly
	rawDNS             time.Duration // one signed update + answer check, directly
	killToDetect       time.Duration
	killToFenced       time.Duration
	killToPromoted     time.Duration
	killToDNS          time.Duration
	killToFirstWrite   time.Duration
	failoverRTO        float64
	failoverSteps      []workflows.Step
	failbackRTO        float64
	failbackUnavail    float64
	failbackLost       uint64
	switchUnavail      []float64 // runbook's own figure (fence → promote)
	switchClientGap    []time.Duration
	switchLost         int
	switchAcked        int64
	took               time.Duration
	interval           time.Duration
	threshold          int
	failoverFirstWrite string
}

// baseline times what a runbook is made of, done by hand: flipping
// read_only on a database and one DNS update until the server answers it.
func (b *bench) baseline(ctx context.Context, res *result) error {
	db := b.dbs["west"]
	t0 := time.Now()
	for _, q := range []string{"SET GLOBAL read_only=OFF", "SET GLOBAL read_only=ON"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	res.rawReadOnly = time.Since(t0)
	secret, err := b.r.DNS.TSIG.Secret.Resolve()
	if err != nil {
		return err
	}
	t0 = time.Now()
	m := new(mdns.Msg)
	m.SetUpdate(b.r.DNS.Zone)
	rr, err := mdns.NewRR(fmt.Sprintf("bench.%s 30 IN A 127.0.0.99", b.r.DNS.Zone))
	if err != nil {
		return err
	}
	m.Insert([]mdns.RR{rr})
	name := mdns.Fqdn(b.r.DNS.TSIG.Name)
	m.SetTsig(name, mdns.HmacSHA256, 300, time.Now().Unix())
	cl := &mdns.Client{Timeout: 2 * time.Second, TsigSecret: map[string]string{name: strings.TrimSpace(secret)}}
	if r, _, err := cl.Exchange(m, b.r.DNS.Server); err != nil || r.Rcode != mdns.RcodeSuccess {
		return fmt.Errorf("raw dns update: %v %v", r, err)
	}
	if _, err := answers(b.r.DNS.Server, "bench."+b.r.DNS.Zone); err != nil {
		return err
	}
	res.rawDNS = time.Since(t0)
	logf("baseline: read_only OFF+ON %s; one signed DNS update + answer %s", res.rawReadOnly.Round(time.Microsecond), res.rawDNS.Round(time.Microsecond))
	return nil
}

func (b *bench) startStream(ctx context.Context, from, to string) error {
	_, err := b.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.ReplicationWorkflowID(b.r.App, from, to),
		TaskQueue: workflows.SharedTaskQueue}, "ReplicationSupervisor", workflows.ReplicationInput{Recipe: *b.r, From: from, To: to})
	if err != nil {
		return err
	}
	return waitFor(ctx, 60*time.Second, "stream "+from+" → "+to+" running", func() bool {
		v, err := b.c.QueryWorkflow(ctx, workflows.ReplicationWorkflowID(b.r.App, from, to), "", workflows.ReplicationStatusQuery)
		var st workflows.ReplicationStatus
		return err == nil && v.Get(&st) == nil && st.State == workflows.ReplRunning && st.Progress.Position != ""
	})
}

// failover kills east's whole site under a write load through the public
// name and times the monitor's automatic failover.
func (b *bench) failover(ctx context.Context, res *result) error {
	auto := *b.r
	auto.Policy.AutoFailover = true
	res.interval, res.threshold = time.Second, 3
	res.floor = time.Duration(res.threshold) * res.interval
	mon, err := b.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.HealthMonitorWorkflowID(b.r.App), TaskQueue: workflows.SharedTaskQueue},
		"HealthMonitor", workflows.MonitorInput{Recipe: auto, Interval: recipe.Duration(res.interval), FailureThreshold: res.threshold, RecoveryThreshold: 2})
	if err != nil {
		return err
	}
	defer func() { _ = b.c.TerminateWorkflow(context.Background(), mon.GetID(), "", "benchmark over") }()
	if err := waitFor(ctx, 60*time.Second, "monitor sees both sites up with a known lag", func() bool {
		var ms workflows.MonitorStatus
		v, err := b.c.QueryWorkflow(ctx, mon.GetID(), "", workflows.HealthStatusQuery)
		if err != nil || v.Get(&ms) != nil {
			return false
		}
		return !ms.StandbyLagAt.IsZero() && len(ms.Sites) == 2 && ms.Sites[0].State == workflows.HealthUp && ms.Sites[1].State == workflows.HealthUp
	}); err != nil {
		return err
	}
	load := startLoad(b.r, "fo")
	defer load.finish()
	if err := waitFor(ctx, 10*time.Second, "writes through the public name", func() bool { return load.count() >= 50 }); err != nil {
		return err
	}
	logf("killing east: database, app and worker (SIGKILL)")
	killed := time.Now()
	if _, err := devstack.SiteAction(ctx, b.st.StateDir, "kill", "east", []string{"db", "app"}); err != nil {
		return err
	}
	for _, c := range b.st.Components {
		if c.Name == "east/worker" {
			_ = syscall.Kill(c.PID, syscall.SIGKILL)
		}
	}
	id := workflows.RunbookWorkflowID(b.r.App)
	if err := waitFor(ctx, 120*time.Second, "the failover runbook to end", func() bool {
		d, err := b.c.DescribeWorkflowExecution(ctx, id, "")
		return err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}); err != nil {
		return err
	}
	var rep workflows.RunbookReport
	if err := b.c.GetWorkflow(ctx, id, "").Get(ctx, &rep); err != nil {
		return err
	}
	if rep.Outcome != workflows.OutcomeCompleted {
		return fmt.Errorf("failover %s: %s", rep.Outcome, rep.Error)
	}
	west, _ := b.r.Site("west")
	if err := waitFor(ctx, 30*time.Second, "a write acknowledged by west", func() bool { return !load.firstAckAt(west.Address, killed).IsZero() }); err != nil {
		return err
	}
	res.killToDetect = rep.DetectedAt.Sub(killed)
	for _, s := range rep.Steps {
		switch s.Name {
		case "fence database", "fence by provider":
			res.killToFenced = max(res.killToFenced, s.Ended.Sub(killed))
		case "promote":
			res.killToPromoted = s.Ended.Sub(killed)
		}
	}
	res.killToDNS = rep.WritableAt.Sub(killed)
	res.killToFirstWrite = load.firstAckAt(west.Address, killed).Sub(killed)
	res.failoverRTO, res.failoverSteps = rep.RTOSeconds, rep.Steps
	logf("failover: detected +%s, fenced +%s, promoted +%s, DNS +%s, first write at west +%s (runbook RTO %.2fs)",
		res.killToDetect.Round(time.Millisecond), res.killToFenced.Round(time.Millisecond), res.killToPromoted.Round(time.Millisecond),
		res.killToDNS.Round(time.Millisecond), res.killToFirstWrite.Round(time.Millisecond), rep.RTOSeconds)
	return nil
}

// failback restarts east (its worker too) and runs Failback.
func (b *bench) failback(ctx context.Context, res *result) error {
	logf("restarting east (read-only) and failing back")
	if _, err := devstack.Up(ctx, b.opts); err != nil { // restarts what is missing
		return err
	}
	rep, err := b.runbook(ctx, "Failback", workflows.RunbookInput{Recipe: *b.r, From: "west", To: "east"})
	if err != nil {
		return err
	}
	res.failbackRTO, res.failbackUnavail, res.failbackLost = rep.RTOSeconds, rep.WriteUnavailableSeconds, rep.RPO.LostTransactions
	if !rep.RPO.Exact || rep.RPO.LostTransactions != 0 {
		return fmt.Errorf("failback RPO %+v, want exactly 0 lost", rep.RPO)
	}
	return nil
}

func (b *bench) runbook(ctx context.Context, name string, in workflows.RunbookInput) (workflows.RunbookReport, error) {
	var rep workflows.RunbookReport
	run, err := b.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RunbookWorkflowID(b.r.App), TaskQueue: workflows.SharedTaskQueue}, name, in)
	if err != nil {
		return rep, err
	}
	if err := run.Get(ctx, &rep); err != nil {
		return rep, err
	}
	if rep.Outcome != workflows.OutcomeCompleted {
		return rep, fmt.Errorf("%s %s: %s", name, rep.Outcome, rep.Error)
	}
	return rep, nil
}

// switchovers runs n switchovers back and forth under a write load through
// the public name.
func (b *bench) switchovers(ctx context.Context, res *result, n int) error {
	primary, standby := "east", "west"
	load := startLoad(b.r, "so")
	if err := waitFor(ctx, 10*time.Second, "writes through the public name", func() bool { return load.count() >= 50 }); err != nil {
		load.finish()
		return err
	}
	for i := 0; i < n; i++ {
		if err := waitFor(ctx, 60*time.Second, "stream "+primary+" → "+standby, func() bool {
			v, err := b.c.QueryWorkflow(ctx, workflows.ReplicationWorkflowID(b.r.App, primary, standby), "", workflows.ReplicationStatusQuery)
			var st workflows.ReplicationStatus
			return err == nil && v.Get(&st) == nil && st.State == workflows.ReplRunning
		}); err != nil {
			load.finish()
			return err
		}
		before := load.count()
		t0 := time.Now()
		rep, err := b.runbook(ctx, "Switchover", workflows.RunbookInput{Recipe: *b.r, From: primary, To: standby})
		if err != nil {
			load.finish()
			return err
		}
		if err := waitFor(ctx, 10*time.Second, "writes after the switchover", func() bool { return load.count() >= before+20 }); err != nil {
			load.finish()
			return err
		}
		res.switchUnavail = append(res.switchUnavail, rep.WriteUnavailableSeconds)
		res.switchClientGap = append(res.switchClientGap, load.longestGapSince(t0))
		logf("switchover %s → %s: write unavailability %.2fs (runbook), longest gap between acknowledged writes %s",
			primary, standby, rep.WriteUnavailableSeconds, load.longestGapSince(t0).Round(time.Millisecond))
		primary, standby = standby, primary
	}
	load.finish()
	res.switchAcked = load.count()
	missing, err := load.missing(ctx, b.dbs[primary])
	if err != nil {
		return err
	}
	res.switchLost = missing
	if missing > 0 {
		return fmt.Errorf("%d acknowledged writes missing on %s", missing, primary)
	}
	return nil
}

// load writes owners through the public name, resolving it before each
// write, and keeps each acknowledgement's time and site.
type load struct {
	r    *recipe.Recipe
	mu   sync.Mutex
	acks []ack
	stop chan struct{}
	done chan struct{}
}

type ack struct {
	at   time.Time
	addr string
	name string
}

func startLoad(r *recipe.Recipe, prefix string) *load {
	l := &load{r: r, stop: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: time.Second}
	go func() {
		defer close(l.done)
		for i := 0; i < 1_000_000; i++ {
			select {
			case <-l.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			addrs, err := answers(r.DNS.Server, r.DNS.Record)
			if err != nil || len(addrs) != 1 {
				continue
			}
			url := ""
			for _, s := range r.Sites {
				if s.Address == addrs[0] {
					url = s.App.Endpoints[0] + "/api/owners"
				}
			}
			name := fmt.Sprintf("%s%d", prefix, i)
			resp, err := hc.Post(url, "application/json", strings.NewReader(fmt.Sprintf(`{"first_name":"L","last_name":%q,"city":"X","telephone":"1"}`, name)))
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				l.mu.Lock()
				l.acks = append(l.acks, ack{at: time.Now(), addr: addrs[0], name: name})
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func (l *load) count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.acks))
}

func (l *load) firstAckAt(addr string, after time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.acks {
		if a.addr == addr && a.at.After(after) {
			return a.at
		}
	}
	return time.Time{}
}

func (l *load) longestGapSince(t time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var gap time.Duration
	var prev time.Time
	for _, a := range l.acks {
		if a.at.Before(t) {
			prev = a.at
			continue
		}
		if !prev.IsZero() && a.at.Sub(prev) > gap {
			gap = a.at.Sub(prev)
		}
		prev = a.at
	}
	return gap
}

func (l *load) missing(ctx context.Context, db *sql.DB) (int, error) {
	rows, err := db.QueryContext(ctx, "SELECT last_name FROM petclinic.owners")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
		have[n] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	missing := 0
	for _, a := range l.acks {
		if !have[a.name] {
			missing++
		}
	}
	return missing, rows.Err()
}

// answers asks the authoritative server for name's A records.
func answers(server, name string) ([]string, error) { return testenv.PublicAddrs(server, name) }

func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
}

func (res *result) markdown() string {
	var b strings.Builder
	s := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	fmt.Fprintf(&b, "### Failover benchmark (`make bench-failover`)\n\n")
	fmt.Fprintf(&b, "Measured on %s: %s. Local stack (Temporal dev server, BIND9, two MariaDB sites with the demo app and a worker each), all on loopback. Run took %s.\n\n",
		time.Now().Format("2006-01-02"), benchenv.Machine(), res.took.Round(time.Second))
	fmt.Fprintf(&b, "**Automatic failover** — health monitor every %s, threshold %d rounds, `policy.auto_failover: true`; east's database, app and worker killed with SIGKILL while a client writes through the public name (re-resolving it before every write):\n\n", res.interval, res.threshold)
	fmt.Fprintf(&b, "| from the kill to … | time |\n|---|---:|\n")
	fmt.Fprintf(&b, "| outage confirmed (3 failed rounds) | %s |\n| old primary fenced (or given up: its worker is dead) | %s |\n| standby promoted (read_only=OFF) | %s |\n| every authoritative DNS server answers the standby | %s |\n| **first write acknowledged through the public name** | **%s** |\n\n",
		s(res.killToDetect), s(res.killToFenced), s(res.killToPromoted), s(res.killToDNS), s(res.killToFirstWrite))
	fmt.Fprintf(&b, "Outage to writable: **%s** against the target of 10 s (%.2f× the target; GitHub's orchestrator reports 10–13 s); of it, the detection floor (interval × threshold) is %s (%.0f%%). The runbook itself (confirmed outage → writable by name) took %.2f s.\n\n",
		s(res.killToFirstWrite), res.killToFirstWrite.Seconds()/10, s(res.floor), 100*res.floor.Seconds()/res.killToFirstWrite.Seconds(), res.failoverRTO)
	fmt.Fprintf(&b, "Failover steps:\n\n| step | site | outcome | seconds |\n|---|---|---|---:|\n")
	for _, st := range res.failoverSteps {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f |\n", st.Name, st.Site, st.Outcome, st.Seconds())
	}
	fmt.Fprintf(&b, "\n**Failback** (east restarted read-only, replicated back, switched over): RTO %.2f s, write unavailability %.2f s, %d transactions lost (RPO 0).\n\n", res.failbackRTO, res.failbackUnavail, res.failbackLost)
	sorted := append([]float64(nil), res.switchUnavail...)
	sort.Float64s(sorted)
	var gaps []string
	for _, g := range res.switchClientGap {
		gaps = append(gaps, fmt.Sprintf("%.2f", g.Seconds()))
	}
	fmt.Fprintf(&b, "**Switchover** under a write load, %d runs back and forth: write unavailability (fence → promote) median **%.2f s**, max %.2f s against the target of 2 s; longest gap between two writes the client saw acknowledged, per run: %s s. %d writes acknowledged, %d lost.\n\n",
		len(res.switchUnavail), sorted[len(sorted)/2], sorted[len(sorted)-1], strings.Join(gaps, ", "), res.switchAcked, res.switchLost)
	fmt.Fprintf(&b, "Baseline, measured in the same run: `SET GLOBAL read_only` OFF then ON directly %s; one TSIG-signed DNS update plus the answer check %s — the floor of what fencing, promotion and the DNS switch can cost; the rest of a runbook is Temporal scheduling and the checks between steps.\n",
		res.rawReadOnly.Round(time.Microsecond), res.rawDNS.Round(time.Microsecond))
	return b.String()
}
