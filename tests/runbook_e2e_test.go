package tests

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// runbookStack brings up a side stack for a runbook test (runbooks change
// which site is primary, so they do not share the main stack), starts the
// stream east → west, and returns its state, recipe and a client.
func runbookStack(t *testing.T, eastAddr, westAddr string, edits ...func(*devstack.Options)) (*devstack.State, *recipe.Recipe, client.Client) {
	t.Helper()
	o := sideStack(t, eastAddr, westAddr)
	for _, e := range edits {
		e(&o)
	}
	st, r, c := upStack(t, o)
	if code, out, errOut := droverAt(t, st, "replication", "start", "-f", st.RecipeFile); code != 0 {
		t.Fatalf("replication start: %d %s %s", code, out, errOut)
	}
	waitStream(t, c, "east", "west", 60*time.Second)
	return st, r, c
}

// upStack brings a side stack up (one at a time, see stackStart) and
// returns its state, recipe and a client.
func upStack(t *testing.T, o devstack.Options) (*devstack.State, *recipe.Recipe, client.Client) {
	t.Helper()
	stackStart.Lock()
	st, err := devstack.Up(context.Background(), o)
	stackStart.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(st.RecipeFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{HostPort: st.TemporalAddress, Namespace: st.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Runs before the stack goes down (cleanups run last-registered first).
	t.Cleanup(func() { checkNoSecretsInHistory(t, st, c) })
	return st, r, c
}

// waitStream waits until the supervisor of from → to reports running.
func waitStream(t *testing.T, c client.Client, from, to string, timeout time.Duration) {
	t.Helper()
	var st workflows.ReplicationStatus
	ok := testenv.WaitFor(timeout, func() bool {
		v, err := c.QueryWorkflow(context.Background(), workflows.ReplicationWorkflowID("petclinic", from, to), "", workflows.ReplicationStatusQuery)
		if err != nil || v.Get(&st) != nil {
			return false
		}
		return st.State == workflows.ReplRunning && st.Progress.Position != ""
	})
	if !ok {
		t.Fatalf("stream %s → %s not running within %s: %+v", from, to, timeout, st)
	}
}

// publicAddrs is what the recipe's authoritative server answers for the
// public name.
func publicAddrs(r *recipe.Recipe) ([]string, error) {
	return testenv.PublicAddrs(r.DNS.Server, r.DNS.Record)
}

// appURL is the app endpoint of the site at addr.
func appURL(r *recipe.Recipe, addr string) string {
	for _, s := range r.Sites {
		if s.Address == addr && len(s.App.Endpoints) > 0 {
			return s.App.Endpoints[0]
		}
	}
	return ""
}

// writeLoad writes owners through the public name (resolved before every
// write) until stopped, and remembers every write the app acknowledged.
type writeLoad struct {
	r       *recipe.Recipe
	acked   sync.Map // last_name → address that acknowledged it
	nAcked  atomic.Int64
	nFailed atomic.Int64
	// longestGap is the longest time between two acknowledged writes.
	mu         sync.Mutex
	lastAck    time.Time
	longestGap time.Duration
	stop       chan struct{}
	once       sync.Once
	done       chan struct{}
}

func startWriteLoad(r *recipe.Recipe, prefix string) *writeLoad {
	w := &writeLoad{r: r, stop: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(w.done)
		for i := 0; i < 200000; i++ {
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			addrs, err := publicAddrs(r)
			if err != nil || len(addrs) != 1 {
				w.nFailed.Add(1)
				continue
			}
			name := fmt.Sprintf("%s%d", prefix, i)
			body := fmt.Sprintf(`{"first_name":"Load","last_name":%q,"city":"X","telephone":"1"}`, name)
			resp, err := hc.Post(appURL(r, addrs[0])+"/api/owners", "application/json", strings.NewReader(body))
			if err != nil {
				w.nFailed.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				w.nFailed.Add(1)
				continue
			}
			w.acked.Store(name, addrs[0])
			w.nAcked.Add(1)
			now := time.Now()
			w.mu.Lock()
			if !w.lastAck.IsZero() && now.Sub(w.lastAck) > w.longestGap {
				w.longestGap = now.Sub(w.lastAck)
			}
			w.lastAck = now
			w.mu.Unlock()
		}
	}()
	return w
}

// finish stops the load and waits for its last write; it may be called
// again.
func (w *writeLoad) finish() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// missingOn lists acknowledged writes the database lacks. It collects the
// acknowledgements before reading the table, so a write acknowledged while
// the load still runs is never reported missing just because the read came
// first.
func (w *writeLoad) missingOn(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var acked []string
	w.acked.Range(func(k, _ any) bool {
		acked = append(acked, k.(string))
		return true
	})
	have := map[string]bool{}
	for _, n := range strs(t, db, "SELECT last_name FROM petclinic.owners") {
		have[n] = true
	}
	var missing []string
	for _, n := range acked {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	return missing
}

func strs(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// splitBrainChecker polls both databases' read_only every 10 ms and counts
// the polls that found both writable.
type splitBrainChecker struct {
	both, polls atomic.Int64
	stop, done  chan struct{}
}

func startSplitBrainChecker(east, west *sql.DB) *splitBrainChecker {
	c := &splitBrainChecker{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		ro := func(db *sql.DB) (bool, bool) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var v int
			if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&v); err != nil {
				return false, false
			}
			return v == 1, true
		}
		for i := 0; i < 100000; i++ {
			select {
			case <-c.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			e, okE := ro(east)
			w, okW := ro(west)
			if okE && okW {
				c.polls.Add(1)
				if !e && !w {
					c.both.Add(1)
				}
			}
		}
	}()
	return c
}

func (c *splitBrainChecker) finish() { close(c.stop); <-c.done }

// runRunbook starts a runbook workflow and waits for its report.
func runRunbook(t *testing.T, c client.Client, name string, in workflows.RunbookInput, timeout time.Duration) workflows.RunbookReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RunbookWorkflowID("petclinic"),
		TaskQueue: workflows.SharedTaskQueue}, name, in)
	if err != nil {
		t.Fatal(err)
	}
	var rep workflows.RunbookReport
	if err := run.Get(ctx, &rep); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	logReport(t, rep)
	return rep
}

func logReport(t *testing.T, rep workflows.RunbookReport) {
	t.Helper()
	for _, s := range rep.Steps {
		t.Logf("  %-20s %-6s %-11s %6.2fs %s", s.Name, s.Site, s.Outcome, s.Seconds(), s.Detail)
	}
	b, _ := json.Marshal(rep.RPO)
	t.Logf("%s %s → %s: %s (%s); RTO %.2fs, write unavailability %.2fs, RPO %s", rep.Runbook, rep.From, rep.To,
		rep.Outcome, rep.Error, rep.RTOSeconds, rep.WriteUnavailableSeconds, b)
}

func readOnly(t *testing.T, db *sql.DB) bool {
	t.Helper()
	var v int
	if err := db.QueryRow("SELECT @@global.read_only").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v == 1
}

func wantPublic(t *testing.T, r *recipe.Recipe, addr string) {
	t.Helper()
	got, err := publicAddrs(r)
	if err != nil || strings.Join(got, ",") != addr {
		t.Fatalf("public name answers %v (%v), want %s", got, err, addr)
	}
}

// A switchover under a continuous write load through the public name:
// every acknowledged write is on the new primary, there is never more than
// one writable site, DNS answers the new site, and the old primary follows
// the new one.
func TestSwitchoverUnderWriteLoad(t *testing.T) {
	_, r, c := runbookStack(t, "127.0.0.8", "127.0.0.9")
	east, _ := r.Site("east")
	west, _ := r.Site("west")
	eastDB, westDB := siteDB(t, east), siteDB(t, west)

	// A rejected approval changes nothing.
	ctx := context.Background()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RunbookWorkflowID("petclinic"), TaskQueue: workflows.SharedTaskQueue},
		"Switchover", workflows.RunbookInput{Recipe: *r, To: "west", ApproveBy: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var decided error
	if !testenv.WaitFor(30*time.Second, func() bool {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), UpdateName: workflows.RunbookApproveUpdate,
			WaitForStage: client.WorkflowUpdateStageCompleted, Args: []any{workflows.ApprovalDecision{By: "alice", Approve: false, Comment: "not during business hours"}}})
		if err != nil {
			return false
		}
		decided = h.Get(ctx, nil)
		return decided == nil // refused until the runbook reaches its approval gate
	}) {
		t.Fatalf("could not reject the approval: %v", decided)
	}
	var rejected workflows.RunbookReport
	if err := run.Get(ctx, &rejected); err != nil {
		t.Fatal(err)
	}
	if rejected.Outcome != workflows.OutcomeAborted || !strings.Contains(rejected.Error, "rejected by alice") {
		t.Fatalf("rejected switchover: %s %s", rejected.Outcome, rejected.Error)
	}
	if readOnly(t, eastDB) || !readOnly(t, westDB) {
		t.Fatal("a rejected switchover changed read_only")
	}
	wantPublic(t, r, east.Address)

	checker := startSplitBrainChecker(eastDB, westDB)
	load := startWriteLoad(r, "sw")
	if !testenv.WaitFor(10*time.Second, func() bool { return load.nAcked.Load() >= 50 }) {
		t.Fatalf("the load did not get going: %d acked, %d failed", load.nAcked.Load(), load.nFailed.Load())
	}
	rep := runRunbook(t, c, "Switchover", workflows.RunbookInput{Recipe: *r, To: "west", Reason: "e2e"}, 3*time.Minute)
	before := load.nAcked.Load()
	if !testenv.WaitFor(10*time.Second, func() bool { return load.nAcked.Load() >= before+50 }) {
		t.Errorf("writes did not resume through the public name after the switchover")
	}
	load.finish()
	checker.finish()

	if rep.Outcome != workflows.OutcomeCompleted {
		t.Fatalf("switchover %s: %s", rep.Outcome, rep.Error)
	}
	wantPublic(t, r, west.Address)
	if n := checker.both.Load(); n > 0 || checker.polls.Load() < 100 {
		t.Errorf("both sites writable in %d of %d polls", n, checker.polls.Load())
	}
	if readOnly(t, westDB) || !readOnly(t, eastDB) {
		t.Errorf("want west writable and east read-only")
	}
	if missing := load.missingOn(t, westDB); len(missing) > 0 {
		t.Errorf("%d acknowledged writes missing on the new primary: %v", len(missing), missing[:min(len(missing), 10)])
	}
	if !rep.RPO.Exact || rep.RPO.LostTransactions != 0 {
		t.Errorf("switchover RPO: %+v", rep.RPO)
	}
	waitStream(t, c, "west", "east", 60*time.Second)
	if !testenv.WaitFor(30*time.Second, func() bool { return len(load.missingOn(t, eastDB)) == 0 }) {
		t.Errorf("the old primary did not catch up through reverse replication")
	}
	load.mu.Lock()
	gap := load.longestGap
	load.mu.Unlock()
	t.Logf("writes acknowledged %d, failed attempts %d, longest gap between acknowledged writes %s; write unavailability (fence → promote) %.2fs",
		load.nAcked.Load(), load.nFailed.Load(), gap.Round(time.Millisecond), rep.WriteUnavailableSeconds)
}

// kill -9 of the primary's database and app: the health monitor confirms
// the outage and fails over; writes work through the public name at the
// standby; the old primary, restarted, stays fenced (read-only, not in
// DNS); failback brings it back with RPO 0.
func TestAutomaticFailoverAndFailback(t *testing.T) {
	st, r, c := runbookStack(t, "127.0.0.10", "127.0.0.11")
	east, _ := r.Site("east")
	west, _ := r.Site("west")
	eastDB, westDB := siteDB(t, east), siteDB(t, west)

	auto := *r
	auto.Policy.AutoFailover = true
	ctx := context.Background()
	mon, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.HealthMonitorWorkflowID("petclinic"), TaskQueue: workflows.SharedTaskQueue},
		"HealthMonitor", workflows.MonitorInput{Recipe: auto, Interval: recipe.Duration(time.Second), FailureThreshold: 3, RecoveryThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), mon.GetID(), "", "test over") })
	monitor := func() workflows.MonitorStatus {
		var ms workflows.MonitorStatus
		if v, err := c.QueryWorkflow(ctx, mon.GetID(), "", workflows.HealthStatusQuery); err == nil {
			_ = v.Get(&ms)
		}
		return ms
	}
	if !testenv.WaitFor(60*time.Second, func() bool {
		ms := monitor()
		return !ms.StandbyLagAt.IsZero() && len(ms.Sites) == 2 && ms.Sites[0].State == workflows.HealthUp && ms.Sites[1].State == workflows.HealthUp
	}) {
		t.Fatalf("monitor never saw both sites up with a known lag: %+v", monitor())
	}
	for i := 0; i < 20; i++ {
		post(t, east.App.Endpoints[0]+"/api/owners", fmt.Sprintf(`{"first_name":"Before","last_name":"b%d","city":"X","telephone":"1"}`, i))
	}
	waitApplied(t, eastDB, westDB, 30*time.Second)

	killed := time.Now()
	if _, err := devstack.SiteAction(ctx, st.StateDir, "kill", "east", []string{"db", "app"}); err != nil {
		t.Fatal(err)
	}
	var rep workflows.RunbookReport
	if !testenv.WaitFor(90*time.Second, func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, workflows.RunbookWorkflowID("petclinic"), "")
		return err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}) {
		t.Fatalf("no failover ran to its end within 90s of the kill; monitor: %+v", monitor())
	}
	if err := c.GetWorkflow(ctx, workflows.RunbookWorkflowID("petclinic"), "").Get(ctx, &rep); err != nil {
		t.Fatal(err)
	}
	logReport(t, rep)
	if rep.Runbook != workflows.RunbookFailover || rep.Outcome != workflows.OutcomeCompleted {
		t.Fatalf("want a completed failover, got %s %s: %s", rep.Runbook, rep.Outcome, rep.Error)
	}
	t.Logf("kill → failover detected %.2fs, → writable through DNS %.2fs", rep.DetectedAt.Sub(killed).Seconds(), rep.WritableAt.Sub(killed).Seconds())
	wantPublic(t, r, west.Address)
	resp := post(t, appURL(r, west.Address)+"/api/owners", `{"first_name":"After","last_name":"failover","city":"X","telephone":"1"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("write at the new primary: %d %s", resp.StatusCode, readAll(resp))
	}

	// The old primary comes back: read-only and out of DNS.
	if _, err := devstack.SiteAction(ctx, st.StateDir, "start", "east", nil); err != nil {
		t.Fatal(err)
	}
	if !readOnly(t, eastDB) {
		t.Fatal("the restarted old primary is writable: split brain")
	}
	wantPublic(t, r, west.Address)
	if !testenv.WaitFor(10*time.Second, func() bool { return monitor().Primary == "west" }) {
		t.Errorf("the monitor did not take west as the primary: %+v", monitor())
	}

	// Someone writes at the fenced old primary (an account that bypasses
	// read_only): east now has a transaction west never received.
	if _, err := eastDB.Exec("INSERT INTO petclinic.owners (first_name, last_name, city, telephone) VALUES ('Errant', 'errant', 'X', '1')"); err != nil {
		t.Fatal(err)
	}
	rep = runRunbook(t, c, "Failback", workflows.RunbookInput{Recipe: *r, From: "west", To: "east", Reason: "e2e failback"}, 3*time.Minute)
	if rep.Outcome != workflows.OutcomeAborted || rep.ErrantCount != 1 || !strings.Contains(rep.Error, "run failback with reclone") {
		t.Fatalf("failback onto a site with an errant transaction: %s, %d errant: %s", rep.Outcome, rep.ErrantCount, rep.Error)
	}
	if !readOnly(t, eastDB) {
		t.Fatal("the refused failback made east writable")
	}

	// With reclone: east's data is set aside, east rebuilt from west, then
	// switched back to.
	rep = runRunbook(t, c, "Failback", workflows.RunbookInput{Recipe: *r, From: "west", To: "east", Reason: "e2e failback", Reclone: true}, 5*time.Minute)
	if rep.Outcome != workflows.OutcomeCompleted {
		t.Fatalf("failback %s: %s", rep.Outcome, rep.Error)
	}
	if !rep.RPO.Exact || rep.RPO.LostTransactions != 0 {
		t.Errorf("failback RPO %+v", rep.RPO)
	}
	aside, _ := filepath.Glob(filepath.Join(st.StateDir, "sites", "east.aside-*", "db", "data"))
	if len(aside) != 1 {
		t.Errorf("east's old data is not kept aside: %v", aside)
	}
	if n := count(t, eastDB, "SELECT COUNT(*) FROM petclinic.owners WHERE last_name='errant'"); n != 0 {
		t.Errorf("the errant row is still at east: %d", n)
	}
	wantPublic(t, r, east.Address)
	if readOnly(t, eastDB) || !readOnly(t, westDB) {
		t.Errorf("want east writable and west read-only after failback")
	}
	if n := count(t, eastDB, "SELECT COUNT(*) FROM petclinic.owners WHERE last_name='failover'"); n != 1 {
		t.Errorf("the write made at west during the outage is not on east: %d", n)
	}
}

// count runs a COUNT query.
func count(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitApplied waits until dst has every transaction of src (GTID position).
func waitApplied(t *testing.T, src, dst *sql.DB, timeout time.Duration) {
	t.Helper()
	want := gtidPos(t, src)
	var n1, n2 int
	if !testenv.WaitFor(timeout, func() bool {
		_ = src.QueryRow("SELECT COUNT(*) FROM petclinic.owners").Scan(&n1)
		_ = dst.QueryRow("SELECT COUNT(*) FROM petclinic.owners").Scan(&n2)
		return n1 == n2
	}) {
		t.Fatalf("standby not caught up within %s (source at %s: %d rows, standby %d)", timeout, want, n1, n2)
	}
}
