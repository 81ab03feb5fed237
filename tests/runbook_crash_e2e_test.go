package tests

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/worker/chaos"
	"github.com/drover-sre/drover/workflows"
)

// crashPoint is where a case kills a worker: after an activity of the
// switchover (its side effect done, its result not reported), or in the
// workflow task that learns the reverse stream's supervisor started. dies
// is the role of the site whose worker runs it: "from", "to", or "" when
// any worker may (workflow tasks go to whichever worker polls first).
type crashPoint struct {
	step, point, dies string
}

var switchoverCrashPoints = []crashPoint{
	{"pre-checks", "DBState", "from"},
	{"fence", "DBFence", "from"},
	{"catch-up", "DBWaitApplied", "to"},
	{"stop replication", "StreamStop", "to"},
	{"promote", "DBPromote", "to"},
	{"dns switch", "DNSPoint", "to"},
	{"dns verify", "DNSAnswers", "to"},
	{"post-check", "ProbeHTTP", "to"},
	{"start replication", chaos.ChildStarted("ReplicationSupervisor"), ""},
}

// crashEnv is the stack a crash test drives.
type crashEnv struct {
	o         devstack.Options
	st        *devstack.State
	r         *recipe.Recipe
	c         client.Client
	dbs       map[string]*sql.DB
	chaosDir  string
	load      *writeLoad
	runs      int // runbook runs started so far
	firedSeen int // lines of the hook's log already matched
}

// crashResult is one line of the summary.
type crashResult struct {
	step, point, killed, outcome string
	took, crashToEnd             time.Duration
}

// Worker crash at each step of a switchover: for every step, a switchover
// runs while the worker that executes the step's call is SIGKILLed right
// after the call did its work and before its result reached Temporal (for
// the last step, in the workflow task that learns the reverse stream
// started); the dead worker is brought back with Up, as an SRE would. Each
// runbook completes exactly once — one run, closed, completed — with the
// same steps and outcome as a switchover without a crash: the new primary
// writable, the old one read-only, DNS answering the new one, no
// acknowledged write lost, never two writable sites, every destructive call
// scheduled once. Directions alternate, so each case starts from a healthy
// primary and stream.
//
// A crash costs the runbook the lost call's timeout (10-35 s, see
// workflows/switchover.go); the cases therefore run on two side stacks at
// once, split so that both take about as long.
func TestSwitchoverSurvivesWorkerCrashes(t *testing.T) {
	begin := time.Now()
	groups := []struct {
		name, east, west string
		points           []crashPoint
		then             func(t *testing.T, e *crashEnv, from, to string)
	}{
		{"stack-a", "127.0.0.12", "127.0.0.13", nil, nil},
		{"stack-b", "127.0.0.14", "127.0.0.15", nil, rollsBackAFailedPromotion},
	}
	for _, cp := range switchoverCrashPoints {
		g := 1
		switch cp.point {
		case "DBFence", "DBWaitApplied", "StreamStop", chaos.ChildStarted("ReplicationSupervisor"): // ~90 s, the rest ~80 s
			g = 0
		}
		groups[g].points = append(groups[g].points, cp)
	}
	results := make([][]crashResult, len(groups))
	t.Run("stacks", func(t *testing.T) {
		for i, g := range groups {
			t.Run(g.name, func(t *testing.T) {
				t.Parallel()
				results[i] = crashSwitchovers(t, g.east, g.west, g.points, g.then)
			})
		}
	})
	t.Logf("%-18s %-35s %-7s %-7s %-10s %8s %12s", "step", "killed after", "stack", "worker", "outcome", "runbook", "crash → end")
	for i, rs := range results {
		for _, r := range rs {
			t.Logf("%-18s %-35s %-7s %-7s %-10s %7.1fs %11.1fs", r.step, r.point, groups[i].name, r.killed, r.outcome, r.took.Seconds(), r.crashToEnd.Seconds())
		}
	}
	t.Logf("total %s", time.Since(begin).Round(time.Second))
}

// crashSwitchovers runs, on a side stack of its own, a switchover without
// a crash and then one per crash point, alternating directions, and
// returns one result per crash point run.
func crashSwitchovers(t *testing.T, eastAddr, westAddr string, points []crashPoint, then func(t *testing.T, e *crashEnv, from, to string)) []crashResult {
	begin := time.Now()
	e := crashStack(t, eastAddr, westAddr)
	t.Logf("stack up, stream east → west running: %s", time.Since(begin).Round(time.Millisecond))

	checker := startSplitBrainChecker(e.dbs["east"], e.dbs["west"])
	e.load = startWriteLoad(e.r, "crash")
	var once sync.Once
	stop := func() { once.Do(func() { e.load.finish(); checker.finish() }) }
	t.Cleanup(stop)
	if !testenv.WaitFor(10*time.Second, func() bool { return e.load.nAcked.Load() >= 20 }) {
		t.Fatalf("the write load did not get going: %d acked, %d failed", e.load.nAcked.Load(), e.load.nFailed.Load())
	}

	// The reference: the same switchover without a crash.
	var base workflows.RunbookReport
	if !t.Run("0-no-crash", func(t *testing.T) { base = e.switchover(t, "east", "west", nil).rep }) {
		t.FailNow()
	}
	from, to := "west", "east"
	var results []crashResult
	for i, cp := range points {
		var res crashResult
		ok := t.Run(fmt.Sprintf("%d-%s", i+1, cp.point), func(t *testing.T) {
			out := e.switchover(t, from, to, &cp)
			if got, want := stepShape(out.rep), stepShape(base); got != want {
				t.Errorf("steps differ from the switchover without a crash:\n got %s\nwant %s", got, want)
			}
			res = crashResult{step: cp.step, point: cp.point, killed: out.killed, outcome: out.rep.Outcome,
				took: out.took, crashToEnd: out.crashToEnd}
		})
		results = append(results, res)
		if !ok {
			t.Fatalf("case %d (%s) failed; the later cases need its end state", i+1, cp.point)
		}
		from, to = to, from
	}
	if then != nil && !t.Run("then", func(t *testing.T) { then(t, e, from, to) }) {
		t.FailNow()
	}

	stop()
	if n := checker.both.Load(); n > 0 || checker.polls.Load() < 100 {
		t.Errorf("both sites writable in %d of %d polls", n, checker.polls.Load())
	}
	if missing := e.load.missingOn(t, e.dbs[from]); len(missing) > 0 {
		t.Errorf("%d acknowledged writes missing on the final primary %s: %s", len(missing), from, e.explain(t, missing))
	}
	t.Logf("writes acknowledged %d, failed attempts %d; %d runbook runs", e.load.nAcked.Load(), e.load.nFailed.Load(), e.runs)
	return results
}

// stackStart serialises bringing side stacks up: free ports are picked
// before they are bound, and the Temporal dev server picks free ports of
// its own, so two stacks starting at once may collide.
var stackStart sync.Mutex

// crashStack brings up a side stack whose workers have the chaos hook on
// (nothing armed) and starts the stream east → west.
func crashStack(t *testing.T, eastAddr, westAddr string) *crashEnv {
	t.Helper()
	stackStart.Lock()
	defer stackStart.Unlock()
	o := sideStack(t, eastAddr, westAddr)
	e := &crashEnv{o: o, chaosDir: filepath.Join(o.StateDir, "chaos")}
	if err := os.MkdirAll(e.chaosDir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.o.WorkerEnv = map[string][]string{}
	for _, s := range o.Sites {
		e.o.WorkerEnv[s.Name] = []string{chaos.EnvDir + "=" + e.chaosDir}
	}
	var err error
	if e.st, err = devstack.Up(context.Background(), e.o); err != nil {
		t.Fatal(err)
	}
	if e.r, err = recipe.Load(e.st.RecipeFile); err != nil {
		t.Fatal(err)
	}
	if e.c, err = client.Dial(client.Options{HostPort: e.st.TemporalAddress, Namespace: e.st.Namespace}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.c.Close)
	e.dbs = map[string]*sql.DB{}
	for _, s := range e.r.Sites {
		e.dbs[s.Name] = siteDB(t, s)
	}
	if code, out, errOut := droverAt(t, e.st, "replication", "start", "-f", e.st.RecipeFile); code != 0 {
		t.Fatalf("replication start: %d %s %s", code, out, errOut)
	}
	waitStream(t, e.c, "east", "west", 60*time.Second)
	return e
}

type switchoverRun struct {
	rep        workflows.RunbookReport
	killed     string // site whose worker the hook killed
	took       time.Duration
	crashToEnd time.Duration
}

// switchover runs one switchover from → to, with a worker killed at cp
// (nil: no crash), restarts the dead worker, and checks the end state.
func (e *crashEnv) switchover(t *testing.T, from, to string, cp *crashPoint) switchoverRun {
	ctx := context.Background()
	toSite, _ := e.r.Site(to)
	waitStream(t, e.c, from, to, 60*time.Second)
	if readOnly(t, e.dbs[from]) || !readOnly(t, e.dbs[to]) {
		t.Fatalf("want %s writable and %s read-only before the switchover", from, to)
	}
	var out switchoverRun
	if cp != nil {
		if err := os.WriteFile(filepath.Join(e.chaosDir, cp.point), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	run, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RunbookWorkflowID(e.r.App), TaskQueue: workflows.SharedTaskQueue},
		"Switchover", workflows.RunbookInput{Recipe: *e.r, From: from, To: to, Reason: "crash test"})
	if err != nil {
		t.Fatal(err)
	}
	e.runs++
	var crashed time.Time
	if cp != nil {
		out.killed, crashed = e.awaitCrash(t, run, cp.point)
		if cp.dies != "" {
			if want := map[string]string{"from": from, "to": to}[cp.dies]; out.killed != want {
				t.Errorf("the worker of %s died, want %s's (%s runs at the %q site)", out.killed, want, cp.point, cp.dies)
			}
		}
		// Up restarts what is missing — the dead worker — and leaves the
		// running databases' read_only alone (checked below and by the
		// split-brain checker).
		upStart := time.Now()
		if _, err := devstack.Up(ctx, e.o); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.workerPID(t, out.killed); !ok {
			t.Fatalf("Up did not restart the worker of %s", out.killed)
		}
		t.Logf("%s: worker of %s killed %.1fs after the start; Up restarted it in %s",
			cp.point, out.killed, crashed.Sub(start).Seconds(), time.Since(upStart).Round(time.Millisecond))
	}
	gctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := run.Get(gctx, &out.rep); err != nil {
		t.Fatalf("switchover %s → %s: %v", from, to, err)
	}
	end := time.Now()
	out.took = end.Sub(start)
	if !crashed.IsZero() {
		out.crashToEnd = end.Sub(crashed)
	}
	logReport(t, out.rep)

	if out.rep.Outcome != workflows.OutcomeCompleted || out.rep.Error != "" {
		t.Fatalf("switchover %s → %s: %s %s", from, to, out.rep.Outcome, out.rep.Error)
	}
	if !out.rep.RPO.Exact || out.rep.RPO.LostTransactions != 0 || out.rep.RPO.LastSourceCommit.IsZero() {
		t.Errorf("switchover RPO: %+v", out.rep.RPO)
	}
	// A crash between fence and promote lengthens the write unavailability,
	// and the report must say so: the old primary was fenced before the
	// crash and nothing was writable until the promote step ended.
	if cp != nil && (cp.point == "DBFence" || cp.point == "DBWaitApplied" || cp.point == "StreamStop") {
		for _, s := range out.rep.Steps {
			if want := s.Ended.Sub(crashed).Seconds(); s.Name == "promote" && out.rep.WriteUnavailableSeconds < want-0.5 {
				t.Errorf("report says writes were unavailable %.2fs, but they were from before the crash to %.2fs after it",
					out.rep.WriteUnavailableSeconds, want)
			}
		}
	}
	// A call retried after a lost result reports what the first attempt
	// did, as in a switchover without a crash.
	for _, s := range out.rep.Steps {
		if want, ok := map[string]string{"stop replication": " stopped at ", "promote": "(changed: true)",
			"dns switch": "(changed: true)", "start replication": " started"}[s.Name]; ok && !strings.Contains(s.Detail, want) {
			t.Errorf("step %s says %q, want %q in it", s.Name, s.Detail, want)
		}
	}
	e.exactlyOnce(t, run, start)
	e.checkHistory(t, run, cp)
	if readOnly(t, e.dbs[to]) || !readOnly(t, e.dbs[from]) {
		t.Errorf("want %s writable and %s read-only after the switchover", to, from)
	}
	wantPublic(t, e.r, toSite.Address)
	if missing := e.load.missingOn(t, e.dbs[to]); len(missing) > 0 {
		t.Errorf("%d acknowledged writes missing on the new primary %s: %s", len(missing), to, e.explain(t, missing))
	}
	before := e.load.nAcked.Load()
	if !testenv.WaitFor(10*time.Second, func() bool { return e.load.nAcked.Load() >= before+10 }) {
		t.Errorf("writes through the public name did not resume at %s (%s)", to, toSite.Address)
	}
	waitStream(t, e.c, to, from, 60*time.Second)
	return out
}

// explain says, for some of the missing writes, which address
// acknowledged each and where it is now.
func (e *crashEnv) explain(t *testing.T, missing []string) string {
	t.Helper()
	var out []string
	for _, name := range missing[:min(len(missing), 10)] {
		by, _ := e.load.acked.Load(name)
		where := []string{}
		for site, db := range e.dbs {
			var created string
			err := db.QueryRow("SELECT CAST(created_at AS CHAR) FROM petclinic.owners WHERE last_name = ?", name).Scan(&created)
			if err == nil {
				where = append(where, site+" (created "+created+")")
			}
		}
		out = append(out, fmt.Sprintf("%s acked by %v, now on %v", name, by, where))
	}
	return strings.Join(out, "; ")
}

// awaitCrash waits until the hook fired at point, then until the worker it
// killed is gone, and returns that worker's site and when it died. It fails
// the test if the runbook ends first (the point was never reached).
func (e *crashEnv) awaitCrash(t *testing.T, run client.WorkflowRun, point string) (string, time.Time) {
	t.Helper()
	var site string
	var pid int
	closed := false
	testenv.WaitFor(90*time.Second, func() bool {
		if site, pid = e.fired(t, point); site != "" {
			return true
		}
		d, err := e.c.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		closed = err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		return closed
	})
	if site == "" {
		var rep workflows.RunbookReport
		_ = run.Get(context.Background(), &rep)
		logReport(t, rep)
		t.Fatalf("no worker died at %s within 90s (runbook closed: %t)", point, closed)
	}
	if !testenv.WaitFor(10*time.Second, func() bool {
		p, ok := e.workerPID(t, site)
		return !ok || p != pid
	}) {
		t.Fatalf("the worker of %s (pid %d) still runs after the hook fired", site, pid)
	}
	return site, time.Now()
}

// fired returns the site and pid of the worker that fired point, from the
// lines of the hook's log not seen before; "" while it has not fired.
func (e *crashEnv) fired(t *testing.T, point string) (string, int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.chaosDir, chaos.FiredLog))
	if os.IsNotExist(err) {
		return "", 0
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := e.firedSeen; i < len(lines); i++ {
		if fs := strings.Fields(lines[i]); len(fs) >= 3 && fs[0] == point {
			e.firedSeen = i + 1
			pid, _ := strconv.Atoi(fs[2])
			return fs[1], pid
		}
	}
	return "", 0
}

// workerPID returns the pid of the site's worker and whether it runs.
func (e *crashEnv) workerPID(t *testing.T, site string) (int, bool) {
	t.Helper()
	return workerPID(t, e.st.StateDir, site)
}

// workerPID is the pid of a site's worker in the stack of stateDir, and
// whether it runs.
func workerPID(t *testing.T, stateDir, site string) (int, bool) {
	t.Helper()
	st, err := devstack.Load(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Components {
		if c.Name == site+"/worker" {
			return local.Process{Path: c.Binary, PIDFile: c.PIDFile}.PID()
		}
	}
	t.Fatalf("no worker recorded for %s", site)
	return 0, false
}

// exactlyOnce checks that the runbook's workflow ID has exactly one run
// since start — run, completed — and that every earlier run is closed.
func (e *crashEnv) exactlyOnce(t *testing.T, run client.WorkflowRun, start time.Time) {
	t.Helper()
	var infos []string
	var since, running int
	ok := testenv.WaitFor(15*time.Second, func() bool {
		resp, err := e.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: e.st.Namespace, Query: fmt.Sprintf("WorkflowId = '%s'", run.GetID())})
		if err != nil {
			return false
		}
		infos, since, running = nil, 0, 0
		mine := false
		for _, x := range resp.GetExecutions() {
			infos = append(infos, x.GetExecution().GetRunId()+" "+x.GetStatus().String())
			if x.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				running++
			}
			if !x.GetStartTime().AsTime().Before(start.Add(-time.Second)) {
				since++
			}
			if x.GetExecution().GetRunId() == run.GetRunID() && x.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				mine = true
			}
		}
		return mine && len(resp.GetExecutions()) == e.runs
	})
	if !ok || since != 1 || running != 0 {
		t.Fatalf("want %d runs of %s, the last one (%s) completed and alone since the case began; visibility says %v",
			e.runs, run.GetID(), run.GetRunID(), infos)
	}
}

// checkHistory checks, in the run's history, that every changing call was
// scheduled once (retries are attempts of the same call) and that the
// crash hit where it was armed: the call's completing attempt is not its
// first, or a workflow task timed out after the child started.
func (e *crashEnv) checkHistory(t *testing.T, run client.WorkflowRun, cp *crashPoint) {
	t.Helper()
	scheduled := map[string]int{}
	typeOf := map[int64]string{}
	attempts := map[string]int32{}
	var childInitiated, childStarted, wftTimedOutAfterChild, wftTimedOut int
	it := e.c.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			scheduled[name]++
			typeOf[ev.GetEventId()] = name
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			name := typeOf[a.GetScheduledEventId()]
			attempts[name] = max(attempts[name], a.GetAttempt())
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			childInitiated++
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
			childStarted++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			wftTimedOut++
			if childStarted > 0 {
				wftTimedOutAfterChild++
			}
		}
	}
	t.Logf("history: scheduled %v, highest attempts %v, child starts %d, workflow task timeouts %d", scheduled, attempts, childInitiated, wftTimedOut)
	for name, want := range map[string]int{"DBState": 2, "StreamState": 1, "DBFence": 1, "DBWaitApplied": 1, "StreamStop": 1,
		"DBPromote": 1, "DNSPoint": 1, "DNSAnswers": 1} {
		if scheduled[name] != want {
			t.Errorf("%s scheduled %d times, want %d", name, scheduled[name], want)
		}
	}
	if childInitiated != 1 || childStarted != 1 {
		t.Errorf("reverse stream started %d times (%d initiated), want once", childStarted, childInitiated)
	}
	switch {
	case cp == nil:
	case strings.HasPrefix(cp.point, "ChildStarted."):
		if wftTimedOutAfterChild == 0 {
			t.Errorf("no workflow task timed out after the child started: the crash did not lose a workflow task")
		}
	case attempts[cp.point] < 2:
		t.Errorf("%s completed at attempt %d: the crash did not lose its result", cp.point, attempts[cp.point])
	}
}

// stepShape is a report's timeline with sites named by role, for
// comparing switchovers in either direction.
func stepShape(rep workflows.RunbookReport) string {
	var parts []string
	for _, s := range rep.Steps {
		site := s.Site
		switch site {
		case rep.From:
			site = "from"
		case rep.To:
			site = "to"
		}
		parts = append(parts, fmt.Sprintf("%s/%s/%s", s.Name, site, s.Outcome))
	}
	return rep.Outcome + ": " + strings.Join(parts, ", ")
}

// rollsBackAFailedPromotion makes the promotion of a switchover fail for
// real (the chaos hook fails DBPromote without running it): the
// compensations run in reverse — the stream is restarted and the old
// primary, fenced a moment before, is writable again — DNS never moved, and
// the write load carries on at the old primary (its acknowledged writes are
// checked at the end with the others').
func rollsBackAFailedPromotion(t *testing.T, e *crashEnv, from, to string) {
	fromSite, _ := e.r.Site(from)
	waitStream(t, e.c, from, to, 60*time.Second)
	if err := os.WriteFile(filepath.Join(e.chaosDir, chaos.FailBefore("DBPromote")), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rep := runRunbook(t, e.c, "Switchover", workflows.RunbookInput{Recipe: *e.r, From: from, To: to, Reason: "compensation test"}, 3*time.Minute)
	if rep.Outcome != workflows.OutcomeRolledBack || !strings.Contains(rep.Error, "chaos: injected failure of DBPromote") {
		t.Fatalf("want rolled-back after the injected DBPromote failure, got %s: %s", rep.Outcome, rep.Error)
	}
	outcomes := map[string]string{}
	for _, s := range rep.Steps {
		outcomes[s.Name] = s.Outcome
	}
	for step, want := range map[string]string{"fence": workflows.StepCompensated, "stop replication": workflows.StepCompensated,
		"promote": workflows.StepFailed, "undo fence": workflows.StepOK, "undo stop replication": workflows.StepOK} {
		if outcomes[step] != want {
			t.Errorf("step %q: %q, want %q (%s)", step, outcomes[step], want, stepShape(rep))
		}
	}
	if _, ran := outcomes["dns switch"]; ran {
		t.Error("the DNS switch ran after a failed promotion")
	}
	if readOnly(t, e.dbs[from]) || !readOnly(t, e.dbs[to]) {
		t.Errorf("want %s writable again and %s read-only", from, to)
	}
	wantPublic(t, e.r, fromSite.Address)
	waitStream(t, e.c, from, to, 60*time.Second)
	before := e.load.nAcked.Load()
	if !testenv.WaitFor(10*time.Second, func() bool { return e.load.nAcked.Load() >= before+20 }) {
		t.Errorf("writes through the public name did not resume at %s after the rollback", from)
	}
}
