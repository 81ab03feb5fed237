package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// fakeSites stands in for two sites' databases, DNS and app: the
// activities below change it the way the real ones change real sites. The
// real activities are tested against real servers in their packages and in
// tests/; here the subject is the CLI against a real Temporal server.
type fakeSites struct {
	mu       sync.Mutex
	readOnly map[string]bool
	record   []string
	failWait bool          // DBWaitApplied times out (a switchover then rolls back)
	hold     chan struct{} // when set, DBWaitApplied waits until it is closed
}

func (f *fakeSites) register(w worker.Worker) {
	reg := func(name string, fn any) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg("DBState", func(_ context.Context, in dbadmin.StateInput) (dbadmin.StateResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return dbadmin.StateResult{Site: in.Site.Name, ReadOnly: f.readOnly[in.Site.Name], GTIDBinlogPos: "1-1-100"}, nil
	})
	reg("StreamState", func(_ context.Context, ref replicate.StreamRef) (replicate.StreamState, error) {
		return replicate.StreamState{WorkflowID: ref.WorkflowID, Running: true, State: workflows.ReplRunning}, nil
	})
	reg("StreamStop", func(_ context.Context, ref replicate.StreamRef) (replicate.StreamState, error) {
		st := replicate.StreamState{WorkflowID: ref.WorkflowID, State: workflows.ReplStopped}
		st.Progress.Position = "1-1-100"
		return st, nil
	})
	reg("DBFence", func(_ context.Context, in dbadmin.FenceInput) (dbadmin.FenceResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.readOnly[in.Site.Name] = true
		return dbadmin.FenceResult{Site: in.Site.Name, FinalGTID: "1-1-100"}, nil
	})
	reg("DBWaitApplied", func(ctx context.Context, in dbadmin.WaitAppliedInput) (dbadmin.WaitAppliedResult, error) {
		f.mu.Lock()
		hold := f.hold
		f.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return dbadmin.WaitAppliedResult{}, ctx.Err()
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failWait {
			return dbadmin.WaitAppliedResult{}, temporal.NewNonRetryableApplicationError("wait for "+in.Want+": timed out (test)", "DBWaitTimeout", nil)
		}
		return dbadmin.WaitAppliedResult{Site: in.Target.Name, Want: in.Want, Applied: in.Want}, nil
	})
	reg("DBPromote", func(_ context.Context, in dbadmin.PromoteInput) (dbadmin.PromoteResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.readOnly[in.Site.Name] = false
		return dbadmin.PromoteResult{Site: in.Site.Name, Changed: true, GTIDBinlogPos: "1-1-100"}, nil
	})
	reg("DNSPoint", func(_ context.Context, in dns.PointInput) (dns.PointResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		prev := f.record
		f.record = in.Addrs
		return dns.PointResult{Record: in.DNS.Record, Addrs: in.Addrs, Previous: prev, Changed: true}, nil
	})
	reg("DNSAnswers", func(_ context.Context, in dns.AnswersInput) (dns.AnswersResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return dns.AnswersResult{Name: in.DNS.Record, Want: in.Want, Converged: reflect.DeepEqual(f.record, in.Want),
			Answers: []dns.Answer{{Server: in.DNS.Server, Addrs: f.record, Authoritative: true}}}, nil
	})
	reg("ProbeHTTP", func(_ context.Context, in probe.HTTPInput) (probe.HTTPResult, error) {
		writable := true
		return probe.HTTPResult{Site: in.Site, EndpointResult: probe.EndpointResult{URL: in.URL, Up: true, StatusCode: 200, Writable: &writable}}, nil
	})
}

// The runbook commands against a real Temporal dev server, whose worker
// runs the real Switchover and Failover workflows (registered under the
// worker's names) with fake site activities: a dry run waited for (text and
// JSON), an approval gate decided through the CLI (a wrong person refused
// with exit 3, a second runbook refused with exit 1 naming the first),
// status and reports of running and closed runs, a completed switchover
// and one that rolls back (exit 3).
func TestRunbookCommandsAgainstTemporal(t *testing.T) {
	ctx := context.Background()
	c := startTestTemporal(t)
	sites := &fakeSites{readOnly: map[string]bool{"east": false, "west": true}, record: []string{"127.0.0.2"}}
	shared := worker.New(c, workflows.SharedTaskQueue, worker.Options{})
	shared.RegisterWorkflowWithOptions(workflows.Switchover, workflow.RegisterOptions{Name: "Switchover"})
	shared.RegisterWorkflowWithOptions(workflows.Failover, workflow.RegisterOptions{Name: "Failover"})
	ws := []worker.Worker{shared}
	for _, s := range []string{"east", "west"} {
		w := worker.New(c, workflows.SiteTaskQueue(s), worker.Options{})
		sites.register(w)
		ws = append(ws, w)
	}
	for _, w := range ws {
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	runRE := regexp.MustCompile(`\(run ([0-9a-f-]+)\) started`)

	// A dry run, followed to its end, as JSON: stdout is the report only.
	code, out, errOut := runCLI(t, "switchover", "-f", exampleRecipe, "--to", "west", "--dry-run", "--json", "--reason", "drill")
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	var dry workflows.RunbookReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&dry); err != nil || dry.Outcome != workflows.OutcomeDryRun || len(dry.Plan) == 0 || dry.Reason != "drill" {
		t.Fatalf("dry run JSON: %v %+v", err, dry)
	}
	if !strings.Contains(errOut, "Switchover runbook-petclinic (run ") || !strings.Contains(errOut, "  pre-checks ") {
		t.Errorf("dry run: progress belongs on stderr with --json:\n%s", errOut)
	}
	m := runRE.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no run ID in %q", errOut)
	}
	dryRunID := m[1]

	// The same as text: progress lines, then the report with the plan.
	code, out, errOut = runCLI(t, "failover", "-f", exampleRecipe, "--to", "west", "--dry-run")
	for _, want := range []string{"Failover runbook-petclinic (run ", "  pre-checks          -      ok           west answers",
		"Failover of petclinic: east → west\n", "  outcome  dry-run\n", "plan (dry run: nothing was changed):\n  1. fence east"} {
		if !strings.Contains(out, want) {
			t.Errorf("failover dry run lacks %q", want)
		}
	}
	if code != 0 || t.Failed() {
		t.Fatalf("failover dry run: exit %d\n%s\n%s", code, out, errOut)
	}

	// An approval gate: detached start, the runbook waits.
	code, out, errOut = runCLI(t, "switchover", "-f", exampleRecipe, "--to", "west", "--approve-by", "alice", "--detach", "--reason", "CHG-42")
	if code != 0 || !strings.Contains(out, "drover runbook approve --app petclinic --by alice") {
		t.Fatalf("detached start: exit %d\n%s\n%s", code, out, errOut)
	}
	if !testenv.WaitFor(20*time.Second, func() bool {
		_, out, _ = runCLI(t, "runbook", "status", "--app", "petclinic")
		return strings.Contains(out, "waiting for approval by alice: drover runbook approve --app petclinic --by alice")
	}) {
		t.Fatalf("status never showed the approval wait:\n%s", out)
	}
	if !strings.Contains(out, "Switchover runbook-petclinic (run ") || !strings.Contains(out, ": running, started ") {
		t.Errorf("status text:\n%s", out)
	}

	// One runbook per app: a second is refused, naming the first.
	code, _, errOut = runCLI(t, "failover", "-f", exampleRecipe, "--to", "west")
	if code != 1 || !strings.Contains(errOut, "nothing started: a runbook of petclinic is already running: Switchover runbook-petclinic (run ") ||
		!strings.Contains(errOut, " started 20") {
		t.Fatalf("second runbook: exit %d: %s", code, errOut)
	}

	code, out, _ = runCLI(t, "runbook", "status", "--app", "petclinic", "--json")
	var st runbookStatus
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.State != "running" || st.WorkflowType != "Switchover" ||
		st.ApproveBy != "alice" || st.Progress == nil || st.Result != nil || !waitingForApproval(*st.Progress) {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}

	// The validator refuses the wrong person: exit 3, its message.
	code, _, errOut = runCLI(t, "runbook", "approve", "--app", "petclinic", "--by", "bob")
	if code != 3 || !strings.Contains(errOut, `refused: by: this runbook waits for "alice", not "bob"`) {
		t.Fatalf("approve by bob: exit %d: %s", code, errOut)
	}
	code, out, errOut = runCLI(t, "runbook", "approve", "--app", "petclinic", "--by", "alice", "--reject", "--comment", "not during the sale")
	if code != 0 || out != "runbook-petclinic: rejected by alice\n" {
		t.Fatalf("reject: exit %d: %q %s", code, out, errOut)
	}
	var rejected workflows.RunbookReport
	if err := c.GetWorkflow(ctx, workflows.RunbookWorkflowID("petclinic"), "").Get(ctx, &rejected); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "runbook", "report", "--app", "petclinic")
	for _, want := range []string{"  outcome  aborted\n", "  error    approval: rejected by alice\n", "approval    -     failed   not during the sale: rejected by alice",
		"RTO, RPO: not measured (aborted before any change)"} {
		if !strings.Contains(out, want) {
			t.Errorf("report of the rejected run lacks %q", want)
		}
	}
	if code != 3 || t.Failed() {
		t.Fatalf("report: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "runbook", "report", "--app", "petclinic", "--json")
	var got workflows.RunbookReport
	if err := json.Unmarshal([]byte(out), &got); code != 3 || err != nil || !reflect.DeepEqual(got, rejected) {
		t.Fatalf("report --json: exit %d, %v: %+v, want %+v", code, err, got, rejected)
	}
	code, _, errOut = runCLI(t, "runbook", "approve", "--app", "petclinic", "--by", "alice")
	if code != 3 || !strings.Contains(errOut, "no runbook of petclinic is running") {
		t.Fatalf("approve after the end: exit %d: %s", code, errOut)
	}
	code, out, _ = runCLI(t, "runbook", "report", "--app", "petclinic", "--run-id", dryRunID)
	if code != 0 || !strings.Contains(out, "  outcome  dry-run\n") || !strings.Contains(out, "  reason   drill\n") {
		t.Fatalf("report --run-id: exit %d\n%s", code, out)
	}

	// A switchover without a gate, followed to its end: every step printed
	// once as it ends, then the report with RTO and RPO.
	code, out, errOut = runCLI(t, "switchover", "-f", exampleRecipe, "--to", "west", "--no-reverse", "--app", "petclinic")
	for _, step := range []string{"pre-checks", "fence", "catch-up", "stop replication", "promote", "dns switch", "dns verify", "post-check", "start replication"} {
		if n := len(regexp.MustCompile(`(?m)^\d\d:\d\d:\d\dZ  `+step+` `).FindAllString(out, -1)); n != 1 {
			t.Errorf("progress line of %s printed %d times", step, n)
		}
	}
	for _, want := range []string{"  outcome  completed\n", "RTO                   ", "(SLA 120.0 s: met)", "0 transaction(s) lost (exact)", "  final GTID          1-1-100\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("completed switchover lacks %q", want)
		}
	}
	if code != 0 || t.Failed() {
		t.Fatalf("switchover: exit %d\n%s\n%s", code, out, errOut)
	}

	// Back again, but the catch-up times out: rolled back, exit 3.
	sites.mu.Lock()
	sites.failWait = true
	sites.mu.Unlock()
	code, out, errOut = runCLI(t, "switchover", "-f", exampleRecipe, "--from", "west", "--to", "east", "--no-reverse")
	for _, want := range []string{"  outcome  rolled-back\n", "timed out (test)", "compensated  read_only=ON at 1-1-100", "undo fence", "RTO, RPO: not measured (rolled back: west is the primary again)"} {
		if !strings.Contains(out, want) {
			t.Errorf("rolled-back switchover lacks %q", want)
		}
	}
	if code != 3 || t.Failed() {
		t.Fatalf("rolled back: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "runbook", "status", "--app", "petclinic")
	if code != 3 || !strings.Contains(out, ": completed, started ") || !strings.Contains(out, "  outcome  rolled-back\n") {
		t.Fatalf("status of the rolled-back run: exit %d\n%s", code, out)
	}
	sites.mu.Lock()
	ro := maps.Clone(sites.readOnly)
	sites.mu.Unlock()
	if !ro["east"] || ro["west"] {
		t.Fatalf("after the rollback west is writable again and east read-only; read_only: %v", ro)
	}

	// A runbook without an approval gate refuses an approval (exit 3);
	// status shows the step in progress.
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	defer release() // before the workers stop, should the test fail first
	sites.mu.Lock()
	sites.failWait, sites.hold = false, hold
	sites.mu.Unlock()
	if code, out, errOut = runCLI(t, "switchover", "-f", exampleRecipe, "--from", "west", "--to", "east", "--detach", "--json"); code != 0 ||
		!strings.Contains(out, `"workflow_id": "runbook-petclinic"`) || !strings.Contains(out, `"workflow_type": "Switchover"`) {
		t.Fatalf("detached --json: exit %d\n%s\n%s", code, out, errOut)
	}
	if !testenv.WaitFor(20*time.Second, func() bool {
		_, out, _ = runCLI(t, "runbook", "status", "--app", "petclinic")
		return strings.Contains(out, "catch-up    east  running  -\n")
	}) {
		t.Fatalf("status never showed the catch-up running:\n%s", out)
	}
	code, _, errOut = runCLI(t, "runbook", "approve", "--app", "petclinic", "--by", "alice")
	if code != 3 || !strings.Contains(errOut, "refused: the runbook runbook-petclinic does not wait for an approval (it was started without --approve-by)") {
		t.Fatalf("approve without a gate: exit %d: %s", code, errOut)
	}
	release()
	if err := c.GetWorkflow(ctx, workflows.RunbookWorkflowID("petclinic"), "").Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if code, out, _ = runCLI(t, "runbook", "report", "--app", "petclinic"); code != 0 || !strings.Contains(out, "  outcome  completed\n") {
		t.Fatalf("report of the switchover back: exit %d\n%s", code, out)
	}
}

// startTestTemporal starts a Temporal dev server for the test, points the
// CLI at it (TEMPORAL_ADDRESS) and returns a client of it; the client
// closes and the server stops when the test ends.
func startTestTemporal(t *testing.T) client.Client {
	t.Helper()
	srv := devServerForCLI(t)
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
