package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// Reasons that steer standInDrill.
const (
	standInFail = "test: fail" // the drill fails its smoke check
	standInHold = "test: hold" // the drill waits for the signal standInRelease
	// standInRelease ends a held stand-in drill.
	standInRelease = "release"
)

// standInDrill stands in for the Drill workflow under its registered name,
// so the CLI can be tested against a real Temporal server without sites: it
// answers the progress query and returns a fixed report built from its
// input (passed, unless the reason is standInFail).
func standInDrill(ctx workflow.Context, in workflows.DrillInput) (workflows.DrillReport, error) {
	t0 := workflow.Now(ctx)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	site := "drill-" + in.Site
	rep := workflows.DrillReport{
		RunbookReport: workflows.RunbookReport{Runbook: workflows.RunbookDrill, App: in.Recipe.App, From: in.Recipe.Primary, To: in.Site,
			Reason: in.Reason, Outcome: workflows.OutcomeCompleted, StartedAt: t0, EndedAt: at(5200), SLARTOSeconds: 120, SLARPOSeconds: 30,
			RTOSeconds: 17.5, Steps: []workflows.Step{
				{Name: "measure rpo", Site: in.Site, Started: at(0), Ended: at(100), Outcome: workflows.StepOK, Detail: in.Site + " is running, 0.3 s behind"},
				{Name: "provision", Site: site, Started: at(100), Ended: at(1500), Outcome: workflows.StepCompensated, Detail: "isolated site " + site + " at " + in.Address},
				{Name: "copy", Site: site, Started: at(1500), Ended: at(3000), Outcome: workflows.StepOK, Detail: "9 tables, 2 rows"},
				{Name: "smoke checks", Site: site, Started: at(3000), Ended: at(3500), Outcome: workflows.StepOK, Detail: "GET /owners: 200 in 3 ms"},
				{Name: "undo provision", Site: site, Started: at(3500), Ended: at(5200), Outcome: workflows.StepOK},
			}},
		Passed: true, DrillSite: site, DetectionSeconds: 15, RecoverySeconds: 2.5, LagSeconds: 0.3, RTOMet: true, RPOMet: true, CleanedUp: true,
		Smoke: []probe.SmokeCheckResult{{Name: "GET /owners", Passed: true, StatusCode: 200, LatencyMS: 3}},
	}
	if in.Reason == standInFail {
		rep.Outcome, rep.Passed, rep.RTOSeconds, rep.RTOMet, rep.RPOMet = workflows.OutcomeFailed, false, 0, false, false
		rep.Error = "smoke checks: smoke check failed"
		rep.Failures = []string{rep.Error}
		rep.Steps[3].Outcome, rep.Steps[3].Detail = workflows.StepFailed, "GET /owners: want 200, got 500"
		rep.Smoke[0] = probe.SmokeCheckResult{Name: "GET /owners", StatusCode: 500, LatencyMS: 2, Error: "want 200, got 500"}
	}
	if err := workflow.SetQueryHandler(ctx, workflows.RunbookProgressQuery, func() (workflows.DrillReport, error) { return rep, nil }); err != nil {
		return rep, err
	}
	if in.Reason == standInHold {
		workflow.GetSignalChannel(ctx, standInRelease).Receive(ctx, nil)
	}
	return rep, nil
}

// startDrillTemporal starts a Temporal dev server that the CLI dials
// (TEMPORAL_ADDRESS) and a worker running standInDrill as "Drill"; both
// stop when the test ends.
func startDrillTemporal(t *testing.T) client.Client {
	t.Helper()
	c := startTestTemporal(t)
	w := worker.New(c, workflows.SharedTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(standInDrill, workflow.RegisterOptions{Name: "Drill"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return c
}

// svgBars decodes every token of an SVG document as XML and counts its
// bars (rect elements of class "bar").
func svgBars(t *testing.T, doc []byte) int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	bars := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return bars
		}
		if err != nil {
			t.Fatalf("the SVG is not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			for _, a := range se.Attr {
				if a.Name.Local == "class" && a.Value == "bar" {
					bars++
				}
			}
		}
	}
}

// `drover drill` against a real Temporal server whose worker runs a
// stand-in Drill: a passing drill is followed (each step printed once),
// reported and written to --report-dir (Markdown, the DrillReport as JSON
// exactly as the workflow returned it, an SVG with one bar per step), exit
// 0; a failing one exits 3 and still writes its report; a second drill of
// the app while one runs is refused with exit 1, naming the first.
func TestDrillCommandAgainstTemporal(t *testing.T) {
	ctx := context.Background()
	c := startDrillTemporal(t)
	dir := filepath.Join(t.TempDir(), "reports", "passed")

	code, out, errOut := runCLI(t, "drill", "-f", exampleRecipe, "--site", "west", "--address", "127.0.0.4", "--reason", "weekly drill",
		"--report-dir", dir)
	if code != 0 {
		t.Fatalf("passing drill: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, step := range []string{"measure rpo", "provision", "copy", "smoke checks", "undo provision"} {
		if n := len(regexp.MustCompile(`(?m)^\d\d:\d\d:\d\dZ  `+step+` `).FindAllString(out, -1)); n != 1 {
			t.Errorf("progress line of %s printed %d times", step, n)
		}
	}
	for _, want := range []string{"Drill drill-petclinic (run ", ") started: isolated drill of petclinic (a copy of west at 127.0.0.4)\n",
		"Drill of petclinic: east → west\n", "  reason   weekly drill\n", "verdict       PASS\n",
		"would-be RTO  17.5 s = detection 15.0 s + recovery 2.5 s (SLA 120.0 s: met)\n", "RPO           0.3 s of lag, 0 transaction(s) (SLA 30.0 s: met)\n",
		"smoke         GET /owners: passed, 200 in 3 ms\n", "cleanup       everything the drill created was removed\n",
		"report written: " + filepath.Join(dir, drillMarkdownFile) + ", "} {
		if !strings.Contains(out, want) {
			t.Errorf("drill output lacks %q", want)
		}
	}
	var want workflows.DrillReport
	if err := c.GetWorkflow(ctx, workflows.DrillWorkflowID("petclinic"), "").Get(ctx, &want); err != nil {
		t.Fatal(err)
	}
	var got workflows.DrillReport
	js, err := os.ReadFile(filepath.Join(dir, drillJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || !got.Passed || got.Reason != "weekly drill" || len(got.Steps) != 5 {
		t.Fatalf("%s: %v %+v", drillJSONFile, err, got)
	}
	if gj, _ := json.Marshal(got); !bytes.Equal(gj, mustJSON(t, want)) {
		t.Errorf("%s is not the workflow's result:\n%s\n%s", drillJSONFile, gj, mustJSON(t, want))
	}
	md, err := os.ReadFile(filepath.Join(dir, drillMarkdownFile))
	if err != nil || !strings.Contains(string(md), "**Verdict: PASS**") || !strings.Contains(string(md), "| 3 | copy | drill-west | 1.5 | 1.5 | ok | 9 tables, 2 rows |") {
		t.Errorf("%s: %v\n%s", drillMarkdownFile, err, md)
	}
	svg, err := os.ReadFile(filepath.Join(dir, drillSVGFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := svgBars(t, svg); n != 5 {
		t.Errorf("%s: %d bars for 5 steps", drillSVGFile, n)
	}

	// A failing drill: exit 3, the JSON report on stdout, files written.
	dir = filepath.Join(t.TempDir(), "failed")
	code, out, errOut = runCLI(t, "drill", "-f", exampleRecipe, "--address", "127.0.0.4", "--reason", standInFail, "--report-dir", dir, "--json")
	var failed workflows.DrillReport
	if err := json.Unmarshal([]byte(out), &failed); code != 3 || err != nil || failed.Passed || failed.Failures[0] != "smoke checks: smoke check failed" {
		t.Fatalf("failing drill: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	if !strings.Contains(errOut, "Drill drill-petclinic (run ") || !strings.Contains(errOut, "  smoke checks ") {
		t.Errorf("with --json progress belongs on stderr:\n%s", errOut)
	}
	for _, f := range []string{drillMarkdownFile, drillJSONFile, drillSVGFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("failing drill: %v", err)
		}
	}
	if md, _ := os.ReadFile(filepath.Join(dir, drillMarkdownFile)); !strings.Contains(string(md), "**Verdict: FAIL**\n\n- smoke checks: smoke check failed\n") {
		t.Errorf("failing drill's Markdown:\n%s", md)
	}

	// One drill per app: a second one while the first runs is refused.
	code, out, errOut = runCLI(t, "drill", "-f", exampleRecipe, "--address", "127.0.0.4", "--reason", standInHold, "--detach", "--json")
	var started map[string]string
	if err := json.Unmarshal([]byte(out), &started); code != 0 || err != nil || started["workflow_id"] != "drill-petclinic" || started["workflow_type"] != "Drill" {
		t.Fatalf("detached drill: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	code, out, errOut = runCLI(t, "drill", "-f", exampleRecipe, "--address", "127.0.0.4")
	if code != 1 || out != "" || !strings.Contains(errOut, "drover drill: nothing started: a drill of petclinic is already running: Drill drill-petclinic (run "+started["run_id"]+")") {
		t.Fatalf("second drill: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := c.SignalWorkflow(ctx, "drill-petclinic", started["run_id"], standInRelease, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.GetWorkflow(ctx, "drill-petclinic", started["run_id"]).Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// `drover schedule` against a real Temporal server: `schedule drill`
// creates a Schedule (cron, overlap skip, bounded catch-up window, the
// Drill action on the shared task queue with the app's search attributes)
// and refuses to create it twice; `schedule list` shows it; `schedule
// trigger` starts a Drill that Temporal records as started by the schedule,
// whose input is the one checked at creation, and list then shows its
// verdict; pause, unpause and delete take effect and list follows.
func TestScheduleCommandsAgainstTemporal(t *testing.T) {
	ctx := context.Background()
	c := startDrillTemporal(t)

	code, out, errOut := runCLI(t, "schedule", "drill", "-f", exampleRecipe, "--site", "west", "--address", "127.0.0.4",
		"--cron", "0 3 * * SAT", "--catchup-window", "30m")
	if code != 0 || !strings.Contains(out, `schedule drill-petclinic created: isolated drill of petclinic (a copy of west at 127.0.0.4) at "0 3 * * SAT" (UTC), catch-up window 30m0s`) ||
		!regexp.MustCompile(`next run: \d{4}-\d\d-\d\d 03:00:00Z\n`).MatchString(out) {
		t.Fatalf("schedule drill: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "schedule", "drill", "-f", exampleRecipe, "--address", "127.0.0.4", "--cron", "0 4 * * *")
	if code != 1 || !strings.Contains(errOut, "schedule drill-petclinic already exists: delete it first (drover schedule delete --id drill-petclinic)") {
		t.Fatalf("second schedule drill: exit %d: %s", code, errOut)
	}

	d, err := c.ScheduleClient().GetHandle(ctx, "drill-petclinic").Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || a.Workflow != "Drill" || a.TaskQueue != workflows.SharedTaskQueue || a.ID != "drill-petclinic" ||
		d.Schedule.Policy.Overlap.String() != "Skip" || d.Schedule.Policy.CatchupWindow != 30*time.Minute || d.Schedule.State.Paused {
		t.Fatalf("schedule: %+v %+v %+v", d.Schedule.Action, d.Schedule.Policy, d.Schedule.State)
	}
	for _, next := range d.Info.NextActionTimes {
		if next.UTC().Weekday() != time.Saturday || next.UTC().Hour() != 3 || next.UTC().Minute() != 0 {
			t.Errorf("next action at %s, not a Saturday 03:00 UTC", next)
		}
	}

	// The listing is eventually consistent: wait for the new schedule.
	listed := func(want string) bool {
		code, out, errOut = runCLI(t, "schedule", "list")
		return code == 0 && regexp.MustCompile(want).MatchString(out)
	}
	if !testenv.WaitFor(30*time.Second, func() bool {
		return listed(`(?m)^drill-petclinic +petclinic +0 3 \* \* SAT +no +20\d\d-\d\d-\d\d 03:00:00Z +-$`)
	}) {
		t.Fatalf("list never showed the schedule: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "schedule", "list", "--app", "petclinic", "--json")
	var entries []scheduleEntry
	if err := json.Unmarshal([]byte(out), &entries); code != 0 || err != nil || len(entries) != 1 || entries[0].ID != "drill-petclinic" ||
		entries[0].App != "petclinic" || entries[0].Site != "west" || entries[0].Cron != "0 3 * * SAT" || entries[0].Paused ||
		entries[0].NextRun == nil || entries[0].LastRun != nil {
		t.Fatalf("list --json: exit %d, %v\n%s", code, err, out)
	}
	if code, out, _ = runCLI(t, "schedule", "list", "--app", "billing"); code != 0 || out != "no drill schedule for billing\n" {
		t.Fatalf("list --app billing: exit %d %q", code, out)
	}

	// Run it now: a Drill started by the schedule, with the input checked
	// at creation and the app's search attributes.
	code, out, errOut = runCLI(t, "schedule", "trigger", "--id", "drill-petclinic")
	m := regexp.MustCompile(`^schedule drill-petclinic triggered: started Drill (drill-petclinic-\S+) \(run (\S+)\)\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("trigger: exit %d\n%s\n%s", code, out, errOut)
	}
	wid, rid := m[1], m[2]
	query := `WorkflowType = "Drill" AND TemporalScheduledById = "drill-petclinic"`
	var runs []string
	if !testenv.WaitFor(30*time.Second, func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		runs = runs[:0]
		for _, e := range resp.GetExecutions() {
			runs = append(runs, e.GetExecution().GetWorkflowId())
		}
		return err == nil && len(runs) == 1 && runs[0] == wid
	}) {
		t.Fatalf("no Drill started by the schedule appeared (%s): %v", query, runs)
	}
	var rep workflows.DrillReport
	if err := c.GetWorkflow(ctx, wid, rid).Get(ctx, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.App != "petclinic" || rep.To != "west" || rep.Reason != "scheduled drill (schedule drill-petclinic)" || rep.Steps[1].Detail != "isolated site drill-west at 127.0.0.4" {
		t.Errorf("the scheduled drill's input: %+v", rep.RunbookReport)
	}
	wd, err := c.DescribeWorkflow(ctx, wid, rid)
	if err != nil {
		t.Fatal(err)
	}
	if app, _ := wd.TypedSearchAttributes.GetKeyword(workflows.SearchApp); app != "petclinic" {
		t.Errorf("DroverApp %q", app)
	}
	if kind, _ := wd.TypedSearchAttributes.GetKeyword(workflows.SearchRunbook); kind != workflows.RunbookDrill {
		t.Errorf("DroverRunbook %q", kind)
	}
	if !listed(`(?m)^drill-petclinic +petclinic +0 3 \* \* SAT +no +20\S+ 03:00:00Z +` + regexp.QuoteMeta(wid) + `: completed, passed$`) {
		t.Errorf("list after the drill lacks its verdict:\n%s", out)
	}

	// Pause (with a note), unpause, delete: list follows each.
	if code, out, errOut = runCLI(t, "schedule", "pause", "--id", "drill-petclinic", "--note", "change freeze"); code != 0 || out != "schedule drill-petclinic paused\n" {
		t.Fatalf("pause: exit %d %q %s", code, out, errOut)
	}
	if !listed(`(?m)^drill-petclinic +petclinic +0 3 \* \* SAT +yes: change freeze +- +drill-petclinic-`) {
		t.Errorf("list after pause:\n%s", out)
	}
	// A paused schedule still runs its drill when triggered.
	code, out, errOut = runCLI(t, "schedule", "trigger", "--id", "drill-petclinic")
	if code != 0 || !strings.HasPrefix(out, "schedule drill-petclinic triggered: started Drill drill-petclinic-") {
		t.Fatalf("trigger while paused: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = runCLI(t, "schedule", "unpause", "--id", "drill-petclinic"); code != 0 || out != "schedule drill-petclinic unpaused\n" {
		t.Fatalf("unpause: exit %d %q %s", code, out, errOut)
	}
	if !listed(`(?m)^drill-petclinic +petclinic +0 3 \* \* SAT +no +20\S+ 03:00:00Z +drill-petclinic-`) {
		t.Errorf("list after unpause:\n%s", out)
	}
	if code, out, errOut = runCLI(t, "schedule", "delete", "--id", "drill-petclinic"); code != 0 || !strings.HasPrefix(out, "schedule drill-petclinic deleted") {
		t.Fatalf("delete: exit %d %q %s", code, out, errOut)
	}
	if !testenv.WaitFor(30*time.Second, func() bool { return listed(`^no drill schedule\n$`) }) {
		t.Errorf("list after delete:\n%s", out)
	}
	// Overlap skip: while a drill the schedule started runs, a trigger
	// starts nothing and says so.
	code, out, errOut = runCLI(t, "schedule", "drill", "-f", exampleRecipe, "--address", "127.0.0.4", "--cron", "0 3 * * SAT",
		"--id", "held", "--reason", standInHold, "--paused")
	if code != 0 || !strings.HasPrefix(out, "schedule held created (paused: drover schedule unpause --id held): ") {
		t.Fatalf("schedule drill --paused: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "schedule", "trigger", "--id", "held")
	m = regexp.MustCompile(`started Drill (\S+) \(run (\S+)\)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("trigger held: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "schedule", "trigger", "--id", "held")
	if code != 1 || !strings.Contains(errOut, "drover schedule trigger: nothing started: the drill last started by schedule held still runs (overlap policy: skip)") {
		t.Errorf("trigger while its drill runs: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := c.SignalWorkflow(ctx, m[1], m[2], standInRelease, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.GetWorkflow(ctx, m[1], m[2]).Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut = runCLI(t, "schedule", "delete", "--id", "held"); code != 0 {
		t.Fatalf("delete held: exit %d: %s", code, errOut)
	}

	for _, action := range []string{"pause", "trigger", "delete"} {
		if code, _, errOut = runCLI(t, "schedule", action, "--id", "drill-petclinic"); code != 1 || !strings.Contains(errOut, `no schedule "drill-petclinic"`) {
			t.Errorf("%s after delete: exit %d: %s", action, code, errOut)
		}
	}
}
