package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/drover-sre/drover/workflows"
)

// Bad flags, a bad cron expression and a drill input the Drill workflow
// would refuse stop `drover drill` and `drover schedule` with exit 2 before
// Temporal is dialled: the address below is never contacted (a dial would
// say "connect to temporal" and exit 1).
func TestDrillAndScheduleUsageErrorsNeverDialTemporal(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	drill := []string{"-f", exampleRecipe, "--address", "127.0.0.4"}
	sched := func(args ...string) []string {
		return append([]string{"schedule", "drill", "-f", exampleRecipe, "--address", "127.0.0.4"}, args...)
	}
	checkUsageErrors(t, []usageCase{
		{[]string{"drill"}, []string{"drover drill: -f RECIPE is required"}},
		{[]string{"drill", "-f", "../recipe/testdata/broken.yaml", "--detach", "--report-dir", "/tmp/x"},
			[]string{"18 problem(s)", "drover drill: --report-dir: needs the drill's report, so not with --detach"}},
		{[]string{"drill", "-f", exampleRecipe}, []string{`drover drill: --address: "": a local drill needs an IPv4 loopback address of its own (e.g. 127.0.0.4; or set the recipe's drill.address)`}},
		{append([]string{"drill", "--site", "mars"}, drill...), []string{`drover drill: --site: "mars" is not a site of app petclinic`}},
		{append([]string{"drill", "--site", "east"}, drill...), []string{`drover drill: --site: "east" is the primary; a drill copies a standby`}},
		{[]string{"drill", "-f", exampleRecipe, "--address", "127.0.0.3"}, []string{"drover drill: --address: 127.0.0.3 is the standby's own address"}},
		{[]string{"drill", "-f", exampleRecipe, "--address", "10.0.0.4"}, []string{`drover drill: --address: "10.0.0.4": a local drill needs an IPv4 loopback address`}},
		{append([]string{"drill", "--disruptive"}, drill...), []string{"drover drill: --address: not used with --disruptive"}},
		{append([]string{"drill", "--app", "billing"}, drill...), []string{`drover drill: --app: "billing", but the recipe ../deploy/recipes/petclinic.yaml is for app "petclinic"`}},
		{append([]string{"drill", "now"}, drill...), []string{`drover drill: unexpected argument "now"`}},
		{append([]string{"drill", "--to", "west"}, drill...), []string{"flag provided but not defined: -to"}},
		{[]string{"schedule"}, []string{"drover schedule: want drill, list, pause, unpause, delete or trigger"}},
		{[]string{"schedule", "rewind"}, []string{`drover schedule: unknown action "rewind"`}},
		{[]string{"schedule", "drill", "--cron", "0 3 * * SAT"}, []string{"drover schedule drill: -f RECIPE is required"}},
		{sched(), []string{`drover schedule drill: --cron: required (e.g. "0 3 * * SAT": Saturdays at 03:00 UTC)`}},
		{sched("--cron", "0 3 * *"), []string{`drover schedule drill: --cron: "0 3 * *": 4 field(s); want 5: minute hour day-of-month month day-of-week, in UTC`}},
		{sched("--cron", "0 25 * * SAT"), []string{`drover schedule drill: --cron: "0 25 * * SAT": hour "25": 25 is out of range 0-23`}},
		{sched("--cron", "0 3 * * FUNDAY", "--catchup-window", "5s"), []string{
			`--cron: "0 3 * * FUNDAY": day-of-week "FUNDAY": "FUNDAY" is not a number from 0 to 7 or a name (SUN-SAT)`,
			"drover schedule drill: --catchup-window: 5s is not between 10s and 168h0m0s"}},
		{sched("--cron", "0 3 * * SAT", "--catchup-window", "200h"), []string{"--catchup-window: 200h0m0s is not between 10s and 168h0m0s"}},
		{sched("--cron", "0 3 * * SAT", "--catchup-window", "soon"), []string{`invalid value "soon" for flag -catchup-window`}},
		{sched("--cron", "0 3 * * SAT", "--id", "weekly drill"), []string{`--id: "weekly drill" contains white space`}},
		{sched("--cron", "0 3 * * SAT", "--site", "east"), []string{`drover schedule drill: --site: "east" is the primary`}},
		{sched("--cron", "0 3 * * SAT", "--disruptive"), []string{"drover schedule drill: --address: not used with --disruptive"}},
		{[]string{"schedule", "list", "--app", "Pet Clinic"}, []string{`drover schedule list: --app: "Pet Clinic" is not an app name`}},
		{[]string{"schedule", "list", "--id", "x"}, []string{"flag provided but not defined: -id"}},
		{[]string{"schedule", "pause"}, []string{"drover schedule pause: --id: required"}},
		{[]string{"schedule", "unpause", "--id", " "}, []string{"drover schedule unpause: --id: required"}},
		{[]string{"schedule", "delete", "--note", "x", "--id", "a"}, []string{"flag provided but not defined: -note"}},
		{[]string{"schedule", "trigger", "--id", "drill-petclinic", "now"}, []string{`drover schedule trigger: unexpected argument "now"`}},
	})
}

// Valid input goes on to dial Temporal (exit 1 here: nothing listens).
func TestDrillAndScheduleWithValidInputDialTemporal(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	for _, args := range [][]string{
		{"drill", "-f", exampleRecipe, "--address", "127.0.0.4", "--app", "petclinic", "--site", "west"},
		{"drill", "-f", exampleRecipe, "--disruptive"},
		{"schedule", "drill", "-f", exampleRecipe, "--address", "127.0.0.4", "--cron", "*/30 1-5 * JAN-MAR,dec mon-fri"},
		{"schedule", "list"},
		{"schedule", "trigger", "--id", "drill-petclinic"},
	} {
		if code, _, errOut := runCLI(t, args...); code != 1 || !strings.Contains(errOut, "connect to temporal at 127.0.0.1:1") {
			t.Errorf("drover %v: exit %d: %s", args, code, errOut)
		}
	}
}

func TestCheckCron(t *testing.T) {
	for _, ok := range []string{"0 3 * * SAT", "*/15 * * * *", "0 3 1-7 * MON-FRI", "30 2 * JAN,jul 0", "0 0 * * 7", "5/10 1-23/2 * * *",
		"59 23 31 12 6", "0  3  *  *  sat"} {
		if err := checkCron(ok); err != nil {
			t.Errorf("checkCron(%q): %v", ok, err)
		}
	}
	for _, tc := range []struct{ expr, want string }{
		{"", "0 field(s); want 5"},
		{"@weekly", "1 field(s); want 5"},
		{"0 0 3 * * SAT", "6 field(s); want 5"},
		{"60 * * * *", `minute "60": 60 is out of range 0-59`},
		{"0 3 0 * *", `day-of-month "0": 0 is out of range 1-31`},
		{"0 3 * 13 *", `month "13": 13 is out of range 1-12`},
		{"0 3 * JANUARY *", `month "JANUARY": "JANUARY" is not a number from 1 to 12 or a name (JAN-DEC)`},
		{"0 3 * * 8", `day-of-week "8": 8 is out of range 0-7`},
		{"*/0 * * * *", `minute "*/0": step "0": want a whole number from 1`},
		{"5-1 * * * *", `minute "5-1": the range 5-1 ends before it starts`},
		{"1,,2 * * * *", `minute "1,,2": "" is not a number from 0 to 59`},
		{"1-2-3 * * * *", `minute "1-2-3": "2-3" is not a number`},
		{"x * * * *", `minute "x": "x" is not a number from 0 to 59`},
	} {
		err := checkCron(tc.expr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkCron(%q) = %v; want %q", tc.expr, err, tc.want)
		}
	}
}

// A drill that failed before recovery was timed says so instead of
// printing RTO and RPO; a running one says when they are measured.
func TestRenderDrillReport(t *testing.T) {
	rep := workflows.DrillReport{RunbookReport: workflows.RunbookReport{Runbook: workflows.RunbookDrill, App: "petclinic", From: "east", To: "west",
		Outcome: workflows.OutcomeFailed, Error: "copy: disk full", SLARTOSeconds: 120, SLARPOSeconds: 30},
		Failures: []string{"copy: disk full"}, CleanedUp: true}
	var b bytes.Buffer
	renderDrillReport(&b, rep)
	for _, want := range []string{"Drill of petclinic: east → west\n", "  outcome  failed\n", "verdict   FAIL\n", "          - copy: disk full\n",
		"RTO, RPO  not measured: a step failed before the drill could time a recovery\n", "cleanup   everything the drill created was removed\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("failed drill lacks %q:\n%s", want, b.String())
		}
	}
	rep.Outcome, rep.Failures = "", nil
	b.Reset()
	renderDrillReport(&b, rep)
	if !strings.Contains(b.String(), "verdict  running: measured when the drill ends (SLA: RTO 120.0 s, RPO 30.0 s)\n") || strings.Contains(b.String(), "cleanup") {
		t.Errorf("running drill:\n%s", b.String())
	}
}
