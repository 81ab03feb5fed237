package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

// runbookTypes maps a runbook kind (the CLI command) to the workflow type
// the worker registers it under.
var runbookTypes = map[string]string{
	workflows.RunbookSwitchover: "Switchover",
	workflows.RunbookFailover:   "Failover",
	workflows.RunbookFailback:   "Failback",
}

const (
	// progressPoll is how often a waiting runbook command asks for progress.
	progressPoll = 500 * time.Millisecond
	// callTimeout bounds one query or describe call.
	callTimeout = 10 * time.Second
	// approveTimeout bounds the wait for a worker to decide an approval.
	approveTimeout = time.Minute
)

// appName is the form of a recipe's app name (see recipe validation).
var appName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// runbookFlags are the flags of switchover, failover and failback.
type runbookFlags struct {
	file, app, to, from, approveBy, reason       string
	approvalTimeout, maxLag, catchUp, dnsTimeout recipe.Duration
	dryRun, noReverse, asJSON, detach, reclone   bool
	approvalTimeoutSet                           bool
}

// cmdRunbookStart runs `drover switchover|failover|failback`: it validates
// everything locally (exit 2, Temporal never dialled), starts the runbook
// under the application's one runbook workflow ID (refusing, exit 1, when a
// runbook of the application already runs), and unless --detach follows it
// to its report: exit 0 completed or dry-run, 3 any other outcome.
func cmdRunbookStart(ctx context.Context, kind string, args []string, stdout, stderr io.Writer) int {
	name := "drover " + kind
	fs := flag.NewFlagSet(kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runbookFlags
	fs.StringVar(&f.file, "f", "", "recipe file (YAML)")
	fs.StringVar(&f.to, "to", "", "site that becomes primary (required)")
	fs.StringVar(&f.from, "from", "", "current primary (default: the recipe's primary)")
	fs.StringVar(&f.app, "app", "", "application; must equal the recipe's app (a safety check)")
	fs.StringVar(&f.approveBy, "approve-by", "", "wait after the pre-checks for this person's approval (drover runbook approve)")
	fs.Var(durationFlag{&f.approvalTimeout, &f.approvalTimeoutSet}, "approval-timeout", "how long to wait for the approval (default 15m); a timeout aborts")
	fs.BoolVar(&f.dryRun, "dry-run", false, "run the pre-checks and print the plan; change nothing")
	fs.Var(durationFlag{d: &f.maxLag}, "max-lag", "most replication lag the standby may have (default: the recipe's policy.max_rpo)")
	fs.Var(durationFlag{d: &f.catchUp}, "catch-up-timeout", "bound on the wait for the standby to apply the last transaction (default 2m)")
	fs.Var(durationFlag{d: &f.dnsTimeout}, "dns-timeout", "bound on the wait for every authoritative DNS server (default 2m)")
	fs.StringVar(&f.reason, "reason", "", "free text for the report (ticket, alert)")
	if kind != workflows.RunbookFailover {
		fs.BoolVar(&f.noReverse, "no-reverse", false, "do not start replication back to the old primary at the end")
	}
	if kind == workflows.RunbookFailback {
		fs.BoolVar(&f.reclone, "reclone", false, "if the old primary has errant transactions, set its data aside (kept on disk) and rebuild it from the current primary instead of stopping")
	}
	fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON (progress lines go to stderr)")
	fs.BoolVar(&f.detach, "detach", false, "start the runbook and return without waiting")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	problems := recipeArgProblems(fs, f.file)
	if f.to == "" {
		problems = append(problems, "--to: required (the site that becomes primary)")
	}
	if f.approvalTimeoutSet && f.approveBy == "" {
		problems = append(problems, "--approval-timeout: needs --approve-by")
	}
	r := loadRecipeOrReport(name, f.file, problems, stderr)
	if r == nil {
		return 2
	}
	in, problems := buildRunbookInput(kind, r, f)
	c, code := checkAndDial(ctx, name, problems, stderr)
	if c == nil {
		return code
	}
	defer c.Close()
	id, wfType := workflows.RunbookWorkflowID(r.App), runbookTypes[kind]
	// One runbook per application: a second start fails and names the one
	// that runs; a closed one does not stand in the way.
	opts := workflows.ExclusiveStartOptions(id, fmt.Sprintf("%s %s → %s of %s", kind, in.From, in.To, r.App), in.Reason)
	run, err := c.ExecuteWorkflow(ctx, opts, wfType, in)
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			fmt.Fprintf(stderr, "%s: nothing started: %s\n", name, describeRunning(ctx, c, r.App))
			return 1
		}
		fmt.Fprintf(stderr, "%s: start %s: %v\n", name, wfType, err)
		return 1
	}
	// With --json, stdout carries only JSON; messages go to stderr.
	info := stdout
	if f.asJSON {
		info = stderr
	}
	dry := ""
	if in.DryRun {
		dry = " (dry run)"
	}
	fmt.Fprintf(info, "%s %s (run %s) started: %s of %s, %s → %s%s\n", wfType, id, run.GetRunID(), kind, r.App, in.From, in.To, dry)
	if f.detach {
		if f.asJSON {
			writeJSON(stdout, map[string]string{"workflow_id": id, "run_id": run.GetRunID(), "workflow_type": wfType})
		}
		fmt.Fprintf(info, "follow it:  drover runbook status --app %s\nits report: drover runbook report --app %s\n", r.App, r.App)
		if in.ApproveBy != "" {
			fmt.Fprintln(info, approveHint(r.App, in.ApproveBy))
		}
		return 0
	}
	rep, err := follow(ctx, c, run, r.App, in.ApproveBy, info)
	if err != nil {
		return reportRunError(ctx, stderr, name, wfType, id, r.App, err)
	}
	if f.asJSON {
		writeJSON(stdout, rep)
	} else {
		fmt.Fprintln(stdout)
		renderReport(stdout, rep)
	}
	return outcomeCode(rep.Outcome)
}

// buildRunbookInput turns the flags into the workflow input, checking them
// against the recipe. Problems name the flag.
func buildRunbookInput(kind string, r *recipe.Recipe, f runbookFlags) (workflows.RunbookInput, []string) {
	in := workflows.RunbookInput{
		Recipe: *r, To: f.to, From: f.from, ApproveBy: f.approveBy, ApprovalTimeout: f.approvalTimeout,
		DryRun: f.dryRun, MaxLag: f.maxLag, CatchUpTimeout: f.catchUp, DNSTimeout: f.dnsTimeout,
		NoReverse: f.noReverse, Reason: f.reason, Reclone: f.reclone,
	}
	var problems []string
	if f.app != "" && f.app != r.App {
		problems = append(problems, fmt.Sprintf("--app: %q, but the recipe %s is for app %q", f.app, f.file, r.App))
	}
	if in.From == "" {
		in.From = defaultFrom(kind, r, in.To)
	}
	return in, append(problems, runbookInputProblems(&in)...)
}

// defaultFrom is the current primary when --from is not given: the
// recipe's primary — except for a failback to the recipe's primary (the
// usual way home), where it is the other site of a two-site recipe.
func defaultFrom(kind string, r *recipe.Recipe, to string) string {
	if kind == workflows.RunbookFailback && to == r.Primary && len(r.Sites) == 2 {
		for _, s := range r.Sites {
			if s.Name != to {
				return s.Name
			}
		}
	}
	return r.Primary
}

// runbookInputProblems checks From and To of a runbook input against its
// recipe, as the workflow will; each problem names the CLI flag.
func runbookInputProblems(in *workflows.RunbookInput) []string {
	var problems []string
	sites := siteNames(&in.Recipe)
	if in.To != "" {
		if _, ok := in.Recipe.Site(in.To); !ok {
			problems = append(problems, fmt.Sprintf("--to: %q is not a site of app %s (sites: %s)", in.To, in.Recipe.App, sites))
		}
	} else {
		problems = append(problems, "--to: required (the site that becomes primary)")
	}
	if _, ok := in.Recipe.Site(in.From); !ok {
		problems = append(problems, fmt.Sprintf("--from: %q is not a site of app %s (sites: %s)", in.From, in.Recipe.App, sites))
	}
	if in.To != "" && in.To == in.From {
		problems = append(problems, fmt.Sprintf("--to: %q is the current primary (--from %s); name the other site, or pass --from with the site that is primary now", in.To, in.From))
	}
	return problems
}

func siteNames(r *recipe.Recipe) string {
	var names []string
	for _, s := range r.Sites {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// recipeArgProblems are the usage problems every command taking -f RECIPE
// checks first: a stray argument and a missing -f.
func recipeArgProblems(fs *flag.FlagSet, file string) []string {
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if file == "" {
		problems = append(problems, "-f RECIPE is required")
	}
	return problems
}

// loadRecipeOrReport loads the recipe at file (when given) and prints every
// problem at once: the recipe's (loadRecipe), then the flags' problems. It
// returns nil when there was any: the command exits 2.
func loadRecipeOrReport(name, file string, problems []string, stderr io.Writer) *recipe.Recipe {
	var r *recipe.Recipe
	if file != "" {
		r, _ = loadRecipe(file, stderr)
	}
	if printProblems(stderr, name, problems) || r == nil {
		return nil
	}
	return r
}

// printProblems prints every problem, one per line; it reports whether
// there was any.
func printProblems(w io.Writer, name string, problems []string) bool {
	for _, p := range problems {
		fmt.Fprintf(w, "%s: %s\n", name, p)
	}
	return len(problems) > 0
}

// durationFlag is a flag.Value read like recipe durations ("30s", "2m").
type durationFlag struct {
	d   *recipe.Duration
	set *bool
}

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var d recipe.Duration
	if err := d.UnmarshalJSON(b); err != nil {
		return err
	}
	if d < 0 {
		return errors.New("must not be negative")
	}
	*f.d = d
	if f.set != nil {
		*f.set = true
	}
	return nil
}

// describeRunning says which runbook holds the application's workflow ID.
func describeRunning(ctx context.Context, c client.Client, app string) string {
	id := workflows.RunbookWorkflowID(app)
	dctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	d, err := c.DescribeWorkflow(dctx, id, "")
	if err != nil {
		return fmt.Sprintf("a runbook of %s is already running (workflow %s; describe: %v)", app, id, err)
	}
	if d.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return fmt.Sprintf("a runbook of %s was running (%s %s, now %s); try again", app, d.WorkflowType.Name, id, runState(d.Status))
	}
	return fmt.Sprintf("a runbook of %s is already running: %s %s (run %s) started %s (%s ago); follow it with `drover runbook status --app %s`",
		app, d.WorkflowType.Name, id, d.WorkflowExecution.RunID, d.WorkflowStartTime.UTC().Format(time.RFC3339),
		time.Since(d.WorkflowStartTime).Round(time.Second), app)
}

// follow waits for the runbook's result, printing each step once when it
// ends (from the progress query, polled every progressPoll) and how to
// approve while the approval step runs.
func follow(ctx context.Context, c client.Client, run client.WorkflowRun, app, approveBy string, w io.Writer) (workflows.RunbookReport, error) {
	return followAs(ctx, c, run, app, approveBy, w, func(rep workflows.RunbookReport) workflows.RunbookReport { return rep })
}

// followAs is follow for a workflow whose result R extends the runbook
// report (a Drill's DrillReport): timeline gives R's runbook report.
func followAs[R any](ctx context.Context, c client.Client, run client.WorkflowRun, app, approveBy string, w io.Writer,
	timeline func(R) workflows.RunbookReport) (R, error) {
	type result struct {
		rep R
		err error
	}
	done := make(chan result, 1)
	go func() {
		var rep R
		err := run.Get(ctx, &rep)
		done <- result{rep, err}
	}()
	p := &progressPrinter{w: w, app: app, approveBy: approveBy, printed: map[int]bool{}}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case res := <-done:
			if res.err == nil {
				p.print(timeline(res.rep))
			}
			return res.rep, res.err
		case <-t.C:
			// A failed query (no worker yet, a worker restarting) is not
			// worth a line: the next poll or the result will tell.
			if rep, err := queryProgress(ctx, c, run.GetID(), run.GetRunID()); err == nil {
				p.print(rep)
			}
			t.Reset(progressPoll)
		}
	}
}

// progressPrinter prints each step of a runbook once, when it has ended.
type progressPrinter struct {
	w              io.Writer
	app, approveBy string
	printed        map[int]bool
	hinted         bool
}

func (p *progressPrinter) print(rep workflows.RunbookReport) {
	for i, s := range rep.Steps {
		if p.printed[i] {
			continue
		}
		if s.Outcome == workflows.StepRunning || s.Ended.IsZero() {
			if s.Name == "approval" && !p.hinted {
				p.hinted = true
				fmt.Fprintln(p.w, approveHint(p.app, p.approveBy))
			}
			continue
		}
		p.printed[i] = true
		fmt.Fprintln(p.w, progressLine(s))
	}
}

// approveHint tells the operator how to decide the approval gate.
func approveHint(app, by string) string {
	who := by
	if who == "" {
		who = "NAME"
	}
	return fmt.Sprintf("waiting for approval by %s: drover runbook approve --app %s --by %s  (or --reject; --comment TEXT)", orDash(by), app, who)
}

// reportRunError explains why following a runbook ended without a report.
func reportRunError(ctx context.Context, stderr io.Writer, name, wfType, id, app string, err error) int {
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "%s: stopped waiting; the runbook goes on: drover runbook status --app %s\n", name, app)
		return 1
	}
	var wee *temporal.WorkflowExecutionError
	if errors.As(err, &wee) {
		fmt.Fprintf(stderr, "%s: %s %s ended without a report: %v\n", name, wfType, id, runErrorMessage(err))
		return 3
	}
	fmt.Fprintf(stderr, "%s: waiting for %s: %v\n", name, id, err)
	return 1
}

// outcomeCode is the exit code of a runbook outcome: 0 when it completed,
// was a dry run or is still running, 3 otherwise.
func outcomeCode(outcome string) int {
	switch outcome {
	case workflows.OutcomeCompleted, workflows.OutcomeDryRun, "":
		return 0
	}
	return 3
}

// queryProgress asks a running runbook for its report so far.
func queryProgress(ctx context.Context, c client.Client, id, runID string) (workflows.RunbookReport, error) {
	var rep workflows.RunbookReport
	qctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, runID, workflows.RunbookProgressQuery)
	if err != nil {
		return rep, fmt.Errorf("progress query: %w", err)
	}
	return rep, v.Get(&rep)
}

// runbookResult reads a closed run's report from its history.
func runbookResult(ctx context.Context, c client.Client, id, runID string) (workflows.RunbookReport, error) {
	var rep workflows.RunbookReport
	rctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := c.GetWorkflow(rctx, id, runID).Get(rctx, &rep)
	return rep, err
}

// runErrorMessage is a workflow's failure without the SDK's wrapping.
func runErrorMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	var te *temporal.TerminatedError
	if errors.As(err, &te) {
		return "terminated"
	}
	var ce *temporal.CanceledError
	if errors.As(err, &ce) {
		return "cancelled"
	}
	var to *temporal.TimeoutError
	if errors.As(err, &to) {
		return "timed out"
	}
	return err.Error()
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
