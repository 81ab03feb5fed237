package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/drillreport"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

// Files `drover drill --report-dir DIR` writes.
const (
	drillMarkdownFile = "drill-report.md"
	drillJSONFile     = "drill-report.json"
	drillSVGFile      = "drill-timeline.svg"
)

// drillFlags are the flags that make a DrillInput, shared by `drover
// drill` and `drover schedule drill`.
type drillFlags struct {
	file, app, site, address, reason string
	disruptive                       bool
}

func (f *drillFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "f", "", "recipe file (YAML)")
	fs.StringVar(&f.app, "app", "", "application; must equal the recipe's app (a safety check)")
	fs.StringVar(&f.site, "site", "", "the standby drilled (default: the first site the primary replicates into)")
	fs.StringVar(&f.address, "address", "", "IPv4 loopback address of the isolated drill site of a local standby (e.g. 127.0.0.4; default: the recipe's drill.address)")
	fs.BoolVar(&f.disruptive, "disruptive", false, "a real switchover to the standby and back instead of an isolated copy")
	fs.StringVar(&f.reason, "reason", "", "free text for the report")
}

// input loads the recipe and builds the drill's input, checked as the
// Drill workflow will check it. It prints every problem — the flags' (with
// the problems passed in), the recipe's, the input's — and reports false
// when there was any: the caller exits 2 without dialling Temporal.
func (f *drillFlags) input(name string, fs *flag.FlagSet, problems []string, stderr io.Writer) (workflows.DrillInput, bool) {
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if f.file == "" {
		problems = append(problems, "-f RECIPE is required")
	}
	var r *recipe.Recipe
	if f.file != "" {
		r, _ = loadRecipe(f.file, stderr)
	}
	if printProblems(stderr, name, problems) || r == nil {
		return workflows.DrillInput{}, false
	}
	in, problems := buildDrillInput(r, *f)
	return in, !printProblems(stderr, name, problems)
}

// buildDrillInput turns the flags into the Drill input and checks it with
// workflows.ValidateDrillInput; problems name the flag.
func buildDrillInput(r *recipe.Recipe, f drillFlags) (workflows.DrillInput, []string) {
	in := workflows.DrillInput{Recipe: *r, Reason: f.reason, Site: f.site, Address: f.address, Disruptive: f.disruptive}
	var problems []string
	if f.app != "" && f.app != r.App {
		problems = append(problems, fmt.Sprintf("--app: %q, but the recipe %s is for app %q", f.app, f.file, r.App))
	}
	if f.disruptive && f.address != "" {
		problems = append(problems, "--address: not used with --disruptive (a disruptive drill builds no drill site)")
		return in, problems
	}
	if err := workflows.ValidateDrillInput(in); err != nil {
		msg := err.Error()
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) {
			msg = ae.Message()
		}
		// The input's fields site and address are the flags --site and
		// --address.
		if strings.HasPrefix(msg, "site:") || strings.HasPrefix(msg, "address:") {
			msg = "--" + msg
		}
		problems = append(problems, msg)
	}
	return in, problems
}

// drillKind describes an input in a few words for messages and summaries.
func drillKind(in workflows.DrillInput) string {
	site := in.Site
	if site == "" {
		site = "the standby"
	}
	if in.Disruptive {
		return fmt.Sprintf("disruptive drill of %s (switchover to %s and back)", in.Recipe.App, site)
	}
	addr := in.Address
	if addr == "" {
		addr = in.Recipe.Drill.Address
	}
	if addr == "" {
		return fmt.Sprintf("isolated drill of %s (a copy of %s on new instances)", in.Recipe.App, site)
	}
	return fmt.Sprintf("isolated drill of %s (a copy of %s at %s)", in.Recipe.App, site, addr)
}

// cmdDrill runs `drover drill`: it validates everything locally (exit 2,
// Temporal never dialled), starts Drill under the application's one drill
// workflow ID (exit 1 when a drill of the application runs) and, unless
// --detach, follows it like a runbook, prints its report and, with
// --report-dir, writes it as Markdown, JSON and an SVG timeline: exit 0
// when the drill passed, 3 when it did not (or ended without a report).
func cmdDrill(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const name = "drover drill"
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f drillFlags
	f.register(fs)
	reportDir := fs.String("report-dir", "", "write "+drillMarkdownFile+", "+drillJSONFile+" and "+drillSVGFile+" into this directory (created if missing)")
	asJSON := fs.Bool("json", false, "print the report as JSON (the DrillReport; progress lines go to stderr)")
	detach := fs.Bool("detach", false, "start the drill and return without waiting")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var problems []string
	if *detach && *reportDir != "" {
		problems = append(problems, "--report-dir: needs the drill's report, so not with --detach")
	}
	in, ok := f.input(name, fs, problems, stderr)
	if !ok {
		return 2
	}

	c, ok := dialFor(ctx, name, stderr)
	if !ok {
		return 1
	}
	defer c.Close()
	app := in.Recipe.App
	id := workflows.DrillWorkflowID(app)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: workflows.SharedTaskQueue,
		// One drill per application: a second start fails and names the
		// one that runs; a closed one does not stand in the way.
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            drillKind(in),
		StaticDetails:                            in.Reason,
	}, "Drill", in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		fmt.Fprintf(stderr, "%s: nothing started: a drill of %s is already running: Drill %s (run %s); wait for its end, or cancel it in the Temporal UI\n",
			name, app, id, started.RunId)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: start Drill: %v\n", name, err)
		return 1
	}
	info := stdout
	if *asJSON {
		info = stderr
	}
	fmt.Fprintf(info, "Drill %s (run %s) started: %s\n", id, run.GetRunID(), drillKind(in))
	if *detach {
		if *asJSON {
			writeJSON(stdout, map[string]string{"workflow_id": id, "run_id": run.GetRunID(), "workflow_type": "Drill"})
		}
		return 0
	}
	rep, err := followAs(ctx, c, run, app, "", info, func(r workflows.DrillReport) workflows.RunbookReport { return r.RunbookReport })
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "%s: stopped waiting; the drill goes on (workflow %s)\n", name, id)
			return 1
		}
		return reportRunError(ctx, stderr, name, "Drill", id, app, err)
	}
	if *asJSON {
		writeJSON(stdout, rep)
	} else {
		fmt.Fprintln(stdout)
		renderDrillReport(stdout, rep)
	}
	if *reportDir != "" {
		files, err := writeDrillReports(*reportDir, rep)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		fmt.Fprintf(info, "\nreport written: %s\n", strings.Join(files, ", "))
	}
	if !rep.Passed {
		return 3
	}
	return 0
}

// writeDrillReports writes the report into dir as Markdown, JSON (the
// DrillReport) and an SVG timeline, and returns the files' paths.
func writeDrillReports(dir string, rep workflows.DrillReport) ([]string, error) {
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode the report: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report directory: %w", err)
	}
	var files []string
	for _, f := range []struct{ name, body string }{
		{drillMarkdownFile, drillreport.Markdown(rep)},
		{drillJSONFile, string(js) + "\n"},
		{drillSVGFile, drillreport.TimelineSVG(rep)},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
			return files, fmt.Errorf("write %s: %w", p, err)
		}
		files = append(files, p)
	}
	return files, nil
}

// renderDrillReport writes a drill's report for a terminal: the runbook
// header and timeline, then the verdict with every failure, the would-be
// RTO and the RPO against the SLA, the smoke checks and the cleanup.
func renderDrillReport(w io.Writer, rep workflows.DrillReport) {
	renderTimeline(w, rep.RunbookReport)
	kv := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(kv, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	switch {
	case rep.Outcome == "":
		row("verdict", "running: measured when the drill ends (SLA: RTO %s, RPO %s)", seconds(rep.SLARTOSeconds), seconds(rep.SLARPOSeconds))
		kv.Flush()
		return
	case rep.Passed:
		row("verdict", "PASS")
	default:
		row("verdict", "FAIL")
		for _, f := range rep.Failures {
			row("", "- %s", f)
		}
	}
	if drillreport.Measured(rep) {
		row("would-be RTO", "%s = detection %s + recovery %s %s", seconds(rep.RTOSeconds), seconds(rep.DetectionSeconds),
			seconds(rep.RecoverySeconds), vsSLA(rep.RTOSeconds, rep.SLARTOSeconds))
		row("RPO", "%s of lag, %d transaction(s) %s", seconds(rep.LagSeconds), rep.RPO.LostTransactions, vsSLA(rep.LagSeconds, rep.SLARPOSeconds))
	} else {
		row("RTO, RPO", "not measured: a step failed before the drill could time a recovery")
	}
	for _, c := range rep.Smoke {
		if c.Passed {
			row("smoke", "%s: passed, %d in %d ms", c.Name, c.StatusCode, c.LatencyMS)
		} else {
			row("smoke", "%s: FAILED: %s", c.Name, c.Error)
		}
	}
	switch {
	case rep.CleanedUp && rep.Disruptive:
		row("cleanup", "nothing to remove; %s is the primary again", rep.From)
	case rep.CleanedUp:
		row("cleanup", "everything the drill created was removed")
	default:
		row("cleanup", "NOT complete: something the drill created is still there (see the undo steps)")
	}
	kv.Flush()
}
