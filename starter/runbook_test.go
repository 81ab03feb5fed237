package main

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

const exampleRecipe = "../deploy/recipes/petclinic.yaml"

// Bad flags and bad recipes stop every runbook command with exit 2 before
// Temporal is dialled: the address below is never contacted (nothing
// listens there; a dial would say "connect to temporal" and exit 1).
func TestRunbookUsageErrorsNeverDialTemporal(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	checkUsageErrors(t, []usageCase{
		{[]string{"switchover"}, []string{"-f RECIPE is required", "--to: required"}},
		{[]string{"failover", "-f", exampleRecipe}, []string{"--to: required"}},
		{[]string{"switchover", "-f", exampleRecipe, "--to", "mars"}, []string{`--to: "mars" is not a site of app petclinic (sites: east, west)`}},
		{[]string{"switchover", "-f", exampleRecipe, "--to", "east"}, []string{`--to: "east" is the current primary (--from east)`}},
		{[]string{"failover", "-f", exampleRecipe, "--to", "west", "--from", "west"}, []string{`--to: "west" is the current primary`}},
		{[]string{"failback", "-f", exampleRecipe, "--to", "west", "--from", "venus"}, []string{`--from: "venus" is not a site`}},
		{[]string{"switchover", "-f", exampleRecipe, "--to", "west", "--app", "billing"}, []string{`--app: "billing", but the recipe ../deploy/recipes/petclinic.yaml is for app "petclinic"`}},
		{[]string{"switchover", "-f", exampleRecipe, "--to", "west", "--max-lag", "5x"}, []string{`invalid value "5x" for flag -max-lag: invalid duration "5x"`}},
		{[]string{"switchover", "-f", exampleRecipe, "--to", "west", "--catch-up-timeout", "-1s"}, []string{"-catch-up-timeout: must not be negative"}},
		{[]string{"switchover", "-f", exampleRecipe, "--to", "west", "--approval-timeout", "5m"}, []string{"--approval-timeout: needs --approve-by"}},
		{[]string{"failover", "-f", exampleRecipe, "--to", "west", "--no-reverse"}, []string{"flag provided but not defined: -no-reverse"}},
		{[]string{"switchover", "-f", exampleRecipe, "--to", "west", "now"}, []string{`unexpected argument "now"`}},
		{[]string{"switchover", "-f", "/nonexistent/recipe.yaml", "--to", "west"}, []string{"/nonexistent/recipe.yaml"}},
		{[]string{"runbook"}, []string{"want status, report or approve"}},
		{[]string{"runbook", "rewind", "--app", "petclinic"}, []string{`unknown action "rewind"`}},
		{[]string{"runbook", "status"}, []string{"--app: required"}},
		{[]string{"runbook", "report", "--app", "Pet Clinic"}, []string{`--app: "Pet Clinic" is not an app name`}},
		{[]string{"runbook", "report", "--app", "petclinic", "--by", "alice"}, []string{"flag provided but not defined: -by"}},
		{[]string{"runbook", "approve", "--app", "petclinic"}, []string{"--by: required"}},
		{[]string{"runbook", "approve", "--by", "alice"}, []string{"--app: required"}},
	})
}

// usageCase is a command line that must be refused as bad usage, and what
// its messages must say.
type usageCase struct {
	args []string
	want []string
}

// checkUsageErrors runs each case: exit 2, nothing on stdout, every wanted
// message on stderr, and no attempt to dial Temporal.
func checkUsageErrors(t *testing.T, cases []usageCase) {
	t.Helper()
	for _, tc := range cases {
		code, out, errOut := runCLI(t, tc.args...)
		if code != 2 || out != "" || strings.Contains(errOut, "connect to temporal") {
			t.Errorf("drover %v: exit %d, stdout %q, stderr %q; want 2, nothing on stdout, no dial", tc.args, code, out, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("drover %v: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
	}
}

// An invalid recipe is reported in full (every problem with its path),
// together with the flags' problems, and nothing is dialled.
func TestRunbookWithBrokenRecipeReportsEveryProblem(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	for _, kind := range []string{"switchover", "failover", "failback"} {
		code, _, errOut := runCLI(t, kind, "-f", "../recipe/testdata/broken.yaml", "--approval-timeout", "1m")
		if code != 2 || !strings.Contains(errOut, "18 problem(s)") || strings.Contains(errOut, "connect to temporal") {
			t.Fatalf("%s: exit %d: %s", kind, code, errOut)
		}
		for _, want := range []string{"  app:", "  primary:", "  sites[0].db.port:", "  sites[1].provider:",
			"drover " + kind + ": --to: required", "drover " + kind + ": --approval-timeout: needs --approve-by"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%s: output lacks %q", kind, want)
			}
		}
	}
}

// --app is a safety check: a match passes validation (the command goes on
// to dial Temporal), a mismatch stops it with exit 2 whatever else is right.
func TestRunbookAppMustMatchTheRecipe(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	code, _, errOut := runCLI(t, "switchover", "-f", exampleRecipe, "--to", "west", "--app", "petclinic", "--dry-run")
	if code != 1 || !strings.Contains(errOut, "connect to temporal at 127.0.0.1:1") {
		t.Fatalf("matching --app: exit %d: %s; want 1 from the dial", code, errOut)
	}
	code, _, errOut = runCLI(t, "failover", "-f", exampleRecipe, "--to", "west", "--app", "petclinc")
	if code != 2 || !strings.Contains(errOut, `--app: "petclinc", but the recipe`) || !strings.Contains(errOut, `is for app "petclinic"`) {
		t.Fatalf("mismatching --app: exit %d: %s", code, errOut)
	}
}

// The flags map onto the workflow input one to one; durations read like
// recipe durations; failback to the recipe's primary comes from the other
// site of a two-site recipe.
func TestBuildRunbookInput(t *testing.T) {
	r, err := recipe.Load(exampleRecipe)
	if err != nil {
		t.Fatal(err)
	}
	var f runbookFlags
	fs := map[string]durationFlag{"approval": {d: &f.approvalTimeout}, "lag": {d: &f.maxLag}, "catch": {d: &f.catchUp}, "dns": {d: &f.dnsTimeout}}
	for k, v := range map[string]string{"approval": "30m", "lag": "5s", "catch": "1m30s", "dns": "0"} {
		if err := fs[k].Set(v); err != nil {
			t.Fatalf("%s=%s: %v", k, v, err)
		}
	}
	f.file, f.to, f.approveBy, f.reason, f.dryRun, f.noReverse = exampleRecipe, "west", "alice", "CHG-42", true, true
	in, problems := buildRunbookInput(workflows.RunbookSwitchover, r, f)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	want := workflows.RunbookInput{Recipe: *r, To: "west", From: "east", ApproveBy: "alice",
		ApprovalTimeout: recipe.Duration(30 * time.Minute), DryRun: true, MaxLag: recipe.Duration(5 * time.Second),
		CatchUpTimeout: recipe.Duration(90 * time.Second), NoReverse: true, Reason: "CHG-42"}
	if !reflect.DeepEqual(in, want) {
		t.Fatalf("input\n%+v\nwant\n%+v", in, want)
	}

	back, problems := buildRunbookInput(workflows.RunbookFailback, r, runbookFlags{to: "east"})
	if len(problems) > 0 || back.From != "west" || back.To != "east" {
		t.Fatalf("failback home: from %q to %q, %v", back.From, back.To, problems)
	}
	if _, problems := buildRunbookInput(workflows.RunbookSwitchover, r, runbookFlags{to: "east"}); len(problems) != 1 {
		t.Fatalf("switchover to the primary: %v", problems)
	}
}

func TestDurationFlag(t *testing.T) {
	var d recipe.Duration
	var set bool
	f := durationFlag{&d, &set}
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "2m": 2 * time.Minute, "1h30m": 90 * time.Minute} {
		if err := f.Set(in); err != nil || d.D() != want || !set {
			t.Errorf("Set(%q) = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, bad := range []string{"5x", "30", "-1s", ""} {
		if err := f.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestOutcomeCode(t *testing.T) {
	for outcome, want := range map[string]int{
		workflows.OutcomeCompleted: 0, workflows.OutcomeDryRun: 0, "": 0,
		workflows.OutcomeAborted: 3, workflows.OutcomeRolledBack: 3, workflows.OutcomeFailed: 3, "something-new": 3,
	} {
		if got := outcomeCode(outcome); got != want {
			t.Errorf("outcomeCode(%q) = %d, want %d", outcome, got, want)
		}
	}
}

var t0 = time.Date(2026, 11, 26, 14, 58, 39, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// sampleSwitchover is a completed switchover's report as the workflow
// returns it.
func sampleSwitchover() workflows.RunbookReport {
	return workflows.RunbookReport{
		Runbook: workflows.RunbookSwitchover, App: "petclinic", From: "east", To: "west", Reason: "CHG-42 kernel update on east",
		Outcome: workflows.OutcomeCompleted, ApprovedBy: "alice",
		Plan: []string{"fence east: read_only=ON, kill client connections", "promote west: read_only=OFF"},
		Steps: []workflows.Step{
			{Name: "pre-checks", Started: at(0), Ended: at(0.4), Outcome: workflows.StepOK, Detail: "east writable at 1-1-100; west read-only at 1-1-97; stream running, lag 200ms (bound 30s)"},
			{Name: "approval", Started: at(0.4), Ended: at(62.1), Outcome: workflows.StepOK, Detail: "approved by alice: go"},
			{Name: "fence", Site: "east", Started: at(62.1), Ended: at(62.5), Outcome: workflows.StepOK, Detail: "read_only=ON at 1-1-100, 2 client connection(s) killed"},
			{Name: "catch-up", Site: "west", Started: at(62.5), Ended: at(63.0), Outcome: workflows.StepOK, Detail: "applied 1-1-100 in 480ms"},
			{Name: "stop replication", Site: "west", Started: at(63.0), Ended: at(63.3), Outcome: workflows.StepOK, Detail: "replication-petclinic-east-west stopped at 1-1-100"},
			{Name: "promote", Site: "west", Started: at(63.3), Ended: at(63.6), Outcome: workflows.StepOK, Detail: "read_only=OFF at 1-1-100 (changed: true)"},
			{Name: "dns switch", Site: "west", Started: at(63.6), Ended: at(63.8), Outcome: workflows.StepOK, Detail: "app.drover.test.: [127.0.0.2] → [127.0.0.3] (changed: true)"},
			{Name: "dns verify", Started: at(63.8), Ended: at(64.9), Outcome: workflows.StepOK, Detail: strings.Repeat("127.0.0.1:5354 says [127.0.0.3]; ", 6)},
			{Name: "post-check", Site: "west", Started: at(64.9), Ended: at(65.2), Outcome: workflows.StepOK, Detail: "http://127.0.0.3:8080/healthz: 200, writable, 3 ms (attempt 1)"},
			{Name: "start replication", Site: "east", Started: at(65.2), Ended: at(65.2), Outcome: workflows.StepSkipped, Detail: "no_reverse set"},
		},
		StartedAt: t0, EndedAt: at(65.2), DetectedAt: t0, WritableAt: at(64.9), RTOSeconds: 64.9,
		WriteUnavailableSeconds: 1.5,
		RPO:                     workflows.RPOPoint{AppliedGTID: "1-1-100", FinalGTID: "1-1-100", LastSourceCommit: at(61.9), Exact: true},
		SLARTOSeconds:           120, SLARPOSeconds: 30,
	}
}

// The text report: header, timeline with offsets and durations, RTO/RPO
// against the SLA; every line within 120 columns but long step details.
func TestRenderReportCompletedSwitchover(t *testing.T) {
	rep := sampleSwitchover()
	var b bytes.Buffer
	renderReport(&b, rep)
	out := b.String()
	for _, want := range []string{
		"Switchover of petclinic: east → west\n",
		"  outcome      completed\n",
		"  reason       CHG-42 kernel update on east\n",
		"  approved by  alice\n",
		"  started      2026-11-26 14:58:39Z\n",
		"  ended        2026-11-26 14:59:44Z (took 65.2 s)\n",
		"timeline (seconds from the start):\n",
		"  AT    TOOK  STEP               SITE  OUTCOME  DETAIL\n",
		"  0.0   0.4   pre-checks         -     ok       east writable at 1-1-100;",
		"  62.1  0.4   fence              east  ok       read_only=ON at 1-1-100, 2 client connection(s) killed\n",
		"  65.2  0.0   start replication  east  skipped  no_reverse set\n",
		"RTO                   64.9 s (SLA 120.0 s: met)  (detected 14:58:39Z → writable 14:59:43Z)\n",
		"write unavailability  1.5 s  (old primary fenced → new primary promoted)\n",
		"RPO                   0 transaction(s) lost (exact); 0.0 s of writes lost (SLA 30.0 s: met)\n",
		"  applied GTID        1-1-100\n",
		"  final GTID          1-1-100\n",
		"errant transactions   none found\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(out, "plan (dry run") {
		t.Error("a run that changed things shows no plan")
	}
	// Only a timeline row may be wider, and only because its detail (which
	// starts within the first 60 columns) is long.
	for _, line := range strings.Split(out, "\n") {
		if n := len([]rune(line)); n > 120 && !endsWithLongDetail(line, rep.Steps) {
			t.Errorf("line of %d columns: %q", n, line)
		}
	}
	if t.Failed() {
		t.Log("\n" + out)
	}
}

func endsWithLongDetail(line string, steps []workflows.Step) bool {
	for _, s := range steps {
		if s.Detail != "" && strings.HasSuffix(line, s.Detail) && len([]rune(line))-len([]rune(s.Detail)) <= 60 {
			return true
		}
	}
	return false
}

// A failover that lost data it cannot count exactly, beyond the SLA, and
// left errant transactions, says so.
// A clone's report says what the clone became, not RTO and RPO.
func TestRenderReportClone(t *testing.T) {
	for _, c := range []struct {
		rep  workflows.RunbookReport
		want string
	}{
		{workflows.RunbookReport{Outcome: workflows.OutcomeCompleted, RPO: workflows.RPOPoint{AppliedGTID: "1-1-4"}},
			"west is a warm standby of east: copied at GTID 1-1-4, replicating from there"},
		{workflows.RunbookReport{Outcome: workflows.OutcomeCompleted, Plan: []string{"west is already a replicating standby of east: nothing to do"}},
			"west is already a replicating standby of east: nothing to do\n"},
		{workflows.RunbookReport{Outcome: workflows.OutcomeRolledBack, Error: "copy west: disk full"},
			"west was not built; what this run created is removed: copy west: disk full\n"},
		{workflows.RunbookReport{Outcome: workflows.OutcomeFailed, Error: "x"}, "removing what this run created did not finish"},
	} {
		rep := c.rep
		rep.Runbook, rep.App, rep.From, rep.To, rep.StartedAt = workflows.RunbookClone, "petclinic", "east", "west", t0
		var b bytes.Buffer
		renderReport(&b, rep)
		if out := b.String(); !strings.Contains(out, c.want) || strings.Contains(out, "RTO") {
			t.Errorf("report lacks %q or speaks of RTO:\n%s", c.want, out)
		}
	}
}

func TestRenderReportFailoverMissedSLA(t *testing.T) {
	rep := workflows.RunbookReport{
		Runbook: workflows.RunbookFailover, App: "petclinic", From: "east", To: "west", Outcome: workflows.OutcomeFailed,
		Error: "post-check west: http://127.0.0.3:8080/healthz not writable after 30s: status 503",
		Steps: []workflows.Step{
			{Name: "pre-checks", Started: at(5), Ended: at(5.2), Outcome: workflows.StepOK},
			{Name: "post-check", Site: "west", Started: at(40), Ended: at(70), Outcome: workflows.StepFailed, Detail: "not writable"},
		},
		StartedAt: at(5), EndedAt: at(70), DetectedAt: t0, WritableAt: at(150), RTOSeconds: 150,
		RPO:    workflows.RPOPoint{AppliedGTID: "1-1-97", LostTransactions: 3, LostSeconds: 42.5},
		Errant: "1-1-100", ErrantCount: 3,
		SLARTOSeconds: 120, SLARPOSeconds: 30,
	}
	var b bytes.Buffer
	renderReport(&b, rep)
	out := b.String()
	for _, want := range []string{
		"Failover of petclinic: east → west\n",
		"  outcome   failed\n",
		"  error     post-check west: http://127.0.0.3:8080/healthz not writable after 30s: status 503\n",
		"  detected  2026-11-26 14:58:39Z\n",
		"  0.0   0.2   pre-checks  -     ok       -\n",
		"  35.0  30.0  post-check  west  failed   not writable\n",
		"150.0 s (SLA 120.0 s: MISSED by 30.0 s)",
		"write unavailability  -\n",
		"3 transaction(s) known lost (estimate: the old primary's last position is unknown); at most 42.5 s of writes lost (SLA 30.0 s: MISSED by 12.5 s)",
		"  final GTID          unknown (the old primary did not answer)\n",
		"errant transactions   3: 1-1-100\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log("\n" + out)
	}
}

// A dry run shows its plan and no RTO/RPO; a running runbook shows the step
// in progress.
func TestRenderReportDryRunAndRunning(t *testing.T) {
	rep := sampleSwitchover()
	rep.Outcome, rep.DryRun, rep.Steps, rep.ApprovedBy = workflows.OutcomeDryRun, true, rep.Steps[:1], ""
	var b bytes.Buffer
	renderReport(&b, rep)
	out := b.String()
	for _, want := range []string{
		"  outcome  dry-run\n",
		"plan (dry run: nothing was changed):\n  1. fence east: read_only=ON, kill client connections\n  2. promote west: read_only=OFF\n",
		"RTO, RPO: not measured (dry run: nothing was changed)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}

	rep = sampleSwitchover()
	rep.Outcome, rep.EndedAt, rep.WritableAt, rep.RTOSeconds = "", time.Time{}, time.Time{}, 0
	rep.Steps = append(rep.Steps[:1], workflows.Step{Name: "approval", Started: at(0.4), Outcome: workflows.StepRunning})
	b.Reset()
	renderReport(&b, rep)
	out = b.String()
	for _, want := range []string{"  outcome      running\n", "  0.4  …     approval    -     running  -\n", "RTO, RPO: measured when the runbook ends (SLA: RTO 120.0 s, RPO 30.0 s)\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("running report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "  ended") {
		t.Errorf("a running report has no end:\n%s", out)
	}
}

// Progress prints each step once, when it ends, and the approval hint once
// while the approval step runs.
func TestProgressPrinter(t *testing.T) {
	var b bytes.Buffer
	p := &progressPrinter{w: &b, app: "petclinic", approveBy: "alice", printed: map[int]bool{}}
	full := sampleSwitchover()
	snap := full
	snap.Steps = []workflows.Step{full.Steps[0], {Name: "approval", Started: at(0.4), Outcome: workflows.StepRunning}}
	p.print(snap)
	p.print(snap)
	p.print(full)
	p.print(full)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 1+len(full.Steps) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), 1+len(full.Steps), b.String())
	}
	if lines[0] != "14:58:39Z  pre-checks          -      ok           "+full.Steps[0].Detail {
		t.Errorf("line 0: %q", lines[0])
	}
	if lines[1] != "waiting for approval by alice: drover runbook approve --app petclinic --by alice  (or --reject; --comment TEXT)" {
		t.Errorf("hint: %q", lines[1])
	}
	if lines[2] != "14:59:41Z  approval            -      ok           approved by alice: go" {
		t.Errorf("line 2: %q", lines[2])
	}
	if lines[len(lines)-1] != "14:59:44Z  start replication   east   skipped      no_reverse set" {
		t.Errorf("last line: %q", lines[len(lines)-1])
	}
}

// JSON output is the RunbookReport exactly: it decodes strictly back into
// an equal value. The status form carries it unchanged.
func TestRunbookJSONRoundTrips(t *testing.T) {
	rep := sampleSwitchover()
	var b bytes.Buffer
	writeJSON(&b, rep)
	var back workflows.RunbookReport
	dec := json.NewDecoder(&b)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rep) {
		t.Fatalf("round trip changed the report:\n%+v\n%+v", back, rep)
	}

	closed := at(65.3)
	st := runbookStatus{WorkflowID: "runbook-petclinic", RunID: "r1", WorkflowType: "Switchover", State: "completed",
		StartedAt: t0, ClosedAt: &closed, Result: &rep}
	b.Reset()
	writeJSON(&b, st)
	var stBack runbookStatus
	dec = json.NewDecoder(&b)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&stBack); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stBack, st) {
		t.Fatalf("status round trip:\n%+v\n%+v", stBack, st)
	}
}

// monitor's usage errors never dial Temporal.
func TestMonitorUsageErrors(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"monitor"}, "want start, status or stop"},
		{[]string{"monitor", "restart"}, `unknown action "restart"`},
		{[]string{"monitor", "start"}, "-f RECIPE is required"},
		{[]string{"monitor", "status"}, "--app is required"},
		{[]string{"monitor", "stop"}, "--app is required"},
		{[]string{"monitor", "start", "-f", "../deploy/recipes/petclinic.yaml", "--app", "shop"}, `--app "shop" does not match`},
		{[]string{"monitor", "start", "-f", "../deploy/recipes/petclinic.yaml", "--primary", "mars"}, `--primary "mars" is not a site`},
		{[]string{"monitor", "start", "-f", "../deploy/recipes/petclinic.yaml", "--interval", "soon"}, "invalid value"},
	}
	for _, c := range cases {
		var out, errb strings.Builder
		if code := run(context.Background(), c.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// clone's usage errors name the flag and never dial Temporal.
func TestCloneUsageErrors(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	const f = "../deploy/recipes/petclinic.yaml"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"clone"}, "-f RECIPE is required"},
		{[]string{"clone", "-f", f}, "--to: required"},
		{[]string{"clone", "-f", f, "--to", "mars"}, `--to: "mars" is not a site`},
		{[]string{"clone", "-f", f, "--to", "east"}, `--to: "east" is the site copied`},
		{[]string{"clone", "-f", f, "--to", "west", "--app", "shop"}, `--app: "shop" does not match`},
		{[]string{"clone", "-f", f, "--to", "west", "--provider", "azure"}, `--provider: "azure" is not`},
		{[]string{"clone", "-f", f, "--to", "west", "--provider", "aws"}, "--provider aws: "},
	}
	for _, c := range cases {
		var out, errb strings.Builder
		if code := run(context.Background(), c.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}
