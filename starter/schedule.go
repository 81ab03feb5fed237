package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

const (
	// scheduleCronMemo is the memo key under which a drill schedule keeps
	// its cron expression (the server keeps only the compiled calendar).
	scheduleCronMemo = "cron"
	// Bounds of --catchup-window: Temporal's smallest, and a week (a
	// weekly drill missed by more than that is the next one's business).
	minCatchupWindow = 10 * time.Second
	maxCatchupWindow = 7 * 24 * time.Hour
	// triggerWait bounds how long `schedule trigger` waits to name the
	// drill it started.
	triggerWait = 10 * time.Second
)

// scheduleEntry is one drill schedule as `drover schedule list --json`
// prints it.
type scheduleEntry struct {
	ID         string `json:"id"`
	App        string `json:"app"`
	Site       string `json:"site,omitempty"`
	Disruptive bool   `json:"disruptive,omitempty"`
	// Cron is the schedule's cron expression (UTC), or a summary of its
	// spec when it was not created by drover.
	Cron    string        `json:"cron"`
	Paused  bool          `json:"paused"`
	Note    string        `json:"note,omitempty"`
	NextRun *time.Time    `json:"next_run,omitempty"`
	LastRun *scheduledRun `json:"last_run,omitempty"`
}

// scheduledRun is the last drill a schedule started.
type scheduledRun struct {
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	StartedAt  time.Time `json:"started_at"`
	// State is the run's Temporal state (running, completed, failed, …).
	State string `json:"state"`
	// Result is the drill's verdict once completed: passed or failed.
	Result string `json:"result,omitempty"`
}

// cmdSchedule runs `drover schedule drill|list|pause|unpause|delete|trigger`:
// Temporal Schedules that start the Drill workflow.
func cmdSchedule(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	action, name, fs, ok := subcommand("schedule", "drill, list, pause, unpause, delete or trigger", args, stderr)
	if !ok {
		return 2
	}
	var id, note, app *string
	var asJSON *bool
	switch action {
	case "drill":
		return scheduleDrillCmd(ctx, fs, args[1:], stdout, stderr)
	case "list":
		app = fs.String("app", "", "only the drills of this application")
		asJSON = fs.Bool("json", false, "print the schedules as JSON")
	case "pause", "unpause":
		id = fs.String("id", "", "the schedule (required)")
		note = fs.String("note", "", "why (shown by the Temporal UI and `schedule list`)")
	case "delete", "trigger":
		id = fs.String("id", "", "the schedule (required)")
	default:
		fmt.Fprintf(stderr, "drover schedule: unknown action %q (want drill, list, pause, unpause, delete or trigger)\n", action)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if id != nil && strings.TrimSpace(*id) == "" {
		problems = append(problems, "--id: required (the schedule's ID, see drover schedule list)")
	}
	if app != nil && *app != "" && !appName.MatchString(*app) {
		problems = append(problems, fmt.Sprintf("--app: %q is not an app name (%s)", *app, appName))
	}
	c, code := checkAndDial(ctx, name, problems, stderr)
	if c == nil {
		return code
	}
	defer c.Close()
	if action == "list" {
		return scheduleListCmd(ctx, c, *app, *asJSON, stdout, stderr)
	}
	if action == "trigger" {
		return scheduleTriggerCmd(ctx, c, *id, stdout, stderr)
	}
	h := c.ScheduleClient().GetHandle(ctx, *id)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var done string
	var err error
	switch action {
	case "pause":
		err, done = h.Pause(cctx, client.SchedulePauseOptions{Note: orText(*note, "paused with drover schedule pause")}), "paused"
	case "unpause":
		err, done = h.Unpause(cctx, client.ScheduleUnpauseOptions{Note: orText(*note, "unpaused with drover schedule unpause")}), "unpaused"
	default:
		err, done = h.Delete(cctx), "deleted (drills it started run on)"
	}
	if err != nil {
		return scheduleError(stderr, name, *id, err)
	}
	fmt.Fprintf(stdout, "schedule %s %s\n", *id, done)
	return 0
}

// scheduleError explains a failed call on schedule id: exit 1.
func scheduleError(stderr io.Writer, name, id string, err error) int {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		fmt.Fprintf(stderr, "%s: no schedule %q (see drover schedule list)\n", name, id)
	} else {
		fmt.Fprintf(stderr, "%s: schedule %s: %v\n", name, id, err)
	}
	return 1
}

// scheduleDrillCmd runs `drover schedule drill`: it checks the cron
// expression, the catch-up window and the drill's input as `drover drill`
// does (exit 2, Temporal never dialled), then creates a Schedule that
// starts Drill on the shared task queue, one at a time (overlap: skip).
func scheduleDrillCmd(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	const name = "drover schedule drill"
	var f drillFlags
	f.register(fs)
	cron := fs.String("cron", "", `when, as a 5-field cron expression in UTC: minute hour day-of-month month day-of-week (e.g. "0 3 * * SAT")`)
	id := fs.String("id", "", "the schedule's ID (default drill-<app>)")
	catchup := recipe.Duration(time.Hour)
	fs.Var(durationFlag{d: &catchup}, "catchup-window", "how late a drill missed while Temporal was down may still start (10s to 168h, default 1h)")
	paused := fs.Bool("paused", false, "create the schedule paused (drover schedule unpause starts it)")
	note := fs.String("note", "", "a note on the schedule (e.g. why it is paused)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var problems []string
	switch {
	case *cron == "":
		problems = append(problems, `--cron: required (e.g. "0 3 * * SAT": Saturdays at 03:00 UTC)`)
	default:
		if err := checkCron(*cron); err != nil {
			problems = append(problems, fmt.Sprintf("--cron: %q: %v", *cron, err))
		}
	}
	if d := catchup.D(); d < minCatchupWindow || d > maxCatchupWindow {
		problems = append(problems, fmt.Sprintf("--catchup-window: %s is not between %s and %s", d, minCatchupWindow, maxCatchupWindow))
	}
	if *id != "" && strings.ContainsAny(*id, " \t\n") {
		problems = append(problems, fmt.Sprintf("--id: %q contains white space", *id))
	}
	in, ok := f.input(name, fs, problems, stderr)
	if !ok {
		return 2
	}
	app := in.Recipe.App
	if *id == "" {
		*id = workflows.DrillWorkflowID(app)
	}
	if in.Reason == "" {
		in.Reason = "scheduled drill (schedule " + *id + ")"
	}

	c, ok := dialFor(ctx, name, stderr)
	if !ok {
		return 1
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	h, err := c.ScheduleClient().Create(cctx, client.ScheduleOptions{
		ID:   *id,
		Spec: client.ScheduleSpec{CronExpressions: []string{*cron}},
		Action: &client.ScheduleWorkflowAction{
			// Temporal appends the scheduled time to this ID.
			ID:        workflows.DrillWorkflowID(app),
			Workflow:  "Drill",
			TaskQueue: workflows.SharedTaskQueue,
			Args:      []any{in},
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SearchApp.ValueSet(app),
				workflows.SearchRunbook.ValueSet(workflows.RunbookDrill)),
			StaticSummary: "scheduled " + drillKind(in),
		},
		// One drill at a time: a start while the last one runs is skipped.
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: catchup.D(),
		Paused:        *paused,
		Note:          *note,
		Memo:          map[string]any{scheduleCronMemo: *cron},
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		fmt.Fprintf(stderr, "%s: schedule %s already exists: delete it first (drover schedule delete --id %s) or pass another --id\n", name, *id, *id)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: create schedule %s: %v\n", name, *id, err)
		return 1
	}
	state := ""
	if *paused {
		state = " (paused: drover schedule unpause --id " + *id + ")"
	}
	fmt.Fprintf(stdout, "schedule %s created%s: %s at %q (UTC), catch-up window %s\n", *id, state, drillKind(in), *cron, catchup.D())
	if d, err := h.Describe(cctx); err == nil && len(d.Info.NextActionTimes) > 0 && !*paused {
		fmt.Fprintf(stdout, "next run: %s\n", clock(d.Info.NextActionTimes[0], true))
	}
	fmt.Fprintf(stdout, "run it now: drover schedule trigger --id %s\n", *id)
	return 0
}

// scheduleListCmd prints the drill schedules: every schedule whose action
// starts Drill (of app, when given), each described for a consistent view.
func scheduleListCmd(ctx context.Context, c client.Client, app string, asJSON bool, stdout, stderr io.Writer) int {
	const name = "drover schedule list"
	lctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	it, err := c.ScheduleClient().List(lctx, client.ScheduleListOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	var ids []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		if e.WorkflowType.Name == "Drill" {
			ids = append(ids, e.ID)
		}
	}
	entries := []scheduleEntry{}
	for _, id := range ids {
		e, err := describeSchedule(ctx, c, id)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue // deleted since the listing
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		if app == "" || e.App == app {
			entries = append(entries, e)
		}
	}
	if asJSON {
		writeJSON(stdout, entries)
		return 0
	}
	if len(entries) == 0 {
		if app != "" {
			fmt.Fprintf(stdout, "no drill schedule for %s\n", app)
		} else {
			fmt.Fprintln(stdout, "no drill schedule")
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAPP\tCRON (UTC)\tPAUSED\tNEXT RUN\tLAST RUN")
	for _, e := range entries {
		paused := "no"
		if e.Paused {
			paused = "yes"
			if e.Note != "" {
				paused += ": " + e.Note
			}
		}
		next := "-"
		if e.NextRun != nil {
			next = clock(*e.NextRun, true)
		}
		last := "-"
		if r := e.LastRun; r != nil {
			last = r.WorkflowID + ": " + r.State
			if r.Result != "" {
				last += ", " + r.Result
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, orDash(e.App), e.Cron, paused, next, last)
	}
	tw.Flush()
	return 0
}

// describeSchedule reads a drill schedule: its app and site from the
// action's DrillInput, its cron expression from the memo, its state, next
// run and the last drill it started with that drill's state and verdict.
func describeSchedule(ctx context.Context, c client.Client, id string) (scheduleEntry, error) {
	e := scheduleEntry{ID: id}
	dctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	d, err := c.ScheduleClient().GetHandle(dctx, id).Describe(dctx)
	if err != nil {
		return e, fmt.Errorf("describe schedule %s: %w", id, err)
	}
	dc := converter.GetDefaultDataConverter()
	if a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); ok && len(a.Args) > 0 {
		var in workflows.DrillInput
		if p, ok := a.Args[0].(*commonpb.Payload); ok && dc.FromPayload(p, &in) == nil {
			e.App, e.Site, e.Disruptive = in.Recipe.App, in.Site, in.Disruptive
		}
	}
	if p := d.Memo.GetFields()[scheduleCronMemo]; p == nil || dc.FromPayload(p, &e.Cron) != nil {
		e.Cron = specSummary(d.Schedule.Spec)
	}
	if st := d.Schedule.State; st != nil {
		e.Paused, e.Note = st.Paused, st.Note
	}
	if len(d.Info.NextActionTimes) > 0 && !e.Paused {
		t := d.Info.NextActionTimes[0]
		e.NextRun = &t
	}
	for i := len(d.Info.RecentActions) - 1; i >= 0; i-- {
		a := d.Info.RecentActions[i]
		if a.StartWorkflowResult == nil {
			continue
		}
		r := &scheduledRun{WorkflowID: a.StartWorkflowResult.WorkflowID, RunID: a.StartWorkflowResult.FirstExecutionRunID, StartedAt: a.ActualTime, State: "unknown"}
		if wd, err := c.DescribeWorkflow(dctx, r.WorkflowID, r.RunID); err == nil {
			r.State = runState(wd.Status)
			if wd.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				var rep workflows.DrillReport
				if err := c.GetWorkflow(dctx, r.WorkflowID, r.RunID).Get(dctx, &rep); err == nil {
					r.Result = map[bool]string{true: "passed", false: "failed"}[rep.Passed]
				}
			}
		}
		e.LastRun = r
		break
	}
	return e, nil
}

// specSummary describes a schedule spec that has no cron memo.
func specSummary(s *client.ScheduleSpec) string {
	switch {
	case s == nil:
		return "-"
	case len(s.CronExpressions) > 0:
		return strings.Join(s.CronExpressions, "; ")
	}
	var parts []string
	for _, iv := range s.Intervals {
		parts = append(parts, "every "+iv.Every.String())
	}
	if n := len(s.Calendars); n > 0 {
		parts = append(parts, fmt.Sprintf("%d calendar spec(s)", n))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

// scheduleTriggerCmd takes the schedule's action now (subject to its
// overlap policy) and waits, up to triggerWait, to name the drill started.
func scheduleTriggerCmd(ctx context.Context, c client.Client, id string, stdout, stderr io.Writer) int {
	const name = "drover schedule trigger"
	h := c.ScheduleClient().GetHandle(ctx, id)
	tctx, cancel := context.WithTimeout(ctx, triggerWait+callTimeout)
	defer cancel()
	before, err := h.Describe(tctx)
	if err != nil {
		return scheduleError(stderr, name, id, err)
	}
	if err := h.Trigger(tctx, client.ScheduleTriggerOptions{}); err != nil {
		return scheduleError(stderr, name, id, err)
	}
	deadline := time.Now().Add(triggerWait)
	for time.Now().Before(deadline) {
		d, err := h.Describe(tctx)
		if err != nil {
			return scheduleError(stderr, name, id, err)
		}
		if d.Info.NumActions > before.Info.NumActions && len(d.Info.RecentActions) > 0 {
			if r := d.Info.RecentActions[len(d.Info.RecentActions)-1].StartWorkflowResult; r != nil {
				fmt.Fprintf(stdout, "schedule %s triggered: started Drill %s (run %s)\n", id, r.WorkflowID, r.FirstExecutionRunID)
				return 0
			}
		}
		if d.Info.NumActionsSkippedOverlap > before.Info.NumActionsSkippedOverlap {
			fmt.Fprintf(stderr, "%s: nothing started: the drill last started by schedule %s still runs (overlap policy: skip)\n", name, id)
			return 1
		}
		select {
		case <-tctx.Done():
			return scheduleError(stderr, name, id, tctx.Err())
		case <-time.After(progressPoll / 2):
		}
	}
	fmt.Fprintf(stdout, "schedule %s triggered; no drill had started after %s (see drover schedule list --app …)\n", id, triggerWait)
	return 0
}

// cronField is one field of a 5-field cron expression.
type cronField struct {
	name   string
	lo, hi int
	names  []string // names of the values from lo (months, days of the week)
}

var cronFields = []cronField{
	{name: "minute", lo: 0, hi: 59},
	{name: "hour", lo: 0, hi: 23},
	{name: "day-of-month", lo: 1, hi: 31},
	{name: "month", lo: 1, hi: 12, names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{name: "day-of-week", lo: 0, hi: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
}

// checkCron accepts a 5-field cron expression as Temporal reads it: per
// field a comma-separated list of *, a value or a range a-b, each with an
// optional /step; months and days of the week also by their three-letter
// names (day of week 0 and 7 are Sunday).
func checkCron(expr string) error {
	fields := strings.Fields(expr)
	if len(fields) != len(cronFields) {
		return fmt.Errorf("%d field(s); want 5: minute hour day-of-month month day-of-week, in UTC (e.g. \"0 3 * * SAT\")", len(fields))
	}
	for i, f := range cronFields {
		if err := f.check(fields[i]); err != nil {
			return fmt.Errorf("%s %q: %v", f.name, fields[i], err)
		}
	}
	return nil
}

func (f cronField) check(s string) error {
	for _, part := range strings.Split(s, ",") {
		rng, step, hasStep := strings.Cut(part, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n < 1 {
				return fmt.Errorf("step %q: want a whole number from 1", step)
			}
		}
		if rng == "*" {
			continue
		}
		a, b, isRange := strings.Cut(rng, "-")
		lo, err := f.value(a)
		if err != nil {
			return err
		}
		if isRange {
			hi, err := f.value(b)
			if err != nil {
				return err
			}
			if hi < lo {
				return fmt.Errorf("the range %s ends before it starts", rng)
			}
		}
	}
	return nil
}

func (f cronField) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.lo + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	switch {
	case err != nil && len(f.names) > 0:
		return 0, fmt.Errorf("%q is not a number from %d to %d or a name (%s-%s)", s, f.lo, f.hi, f.names[0], f.names[len(f.names)-1])
	case err != nil:
		return 0, fmt.Errorf("%q is not a number from %d to %d", s, f.lo, f.hi)
	case v < f.lo || v > f.hi:
		return 0, fmt.Errorf("%d is out of range %d-%d", v, f.lo, f.hi)
	}
	return v, nil
}
