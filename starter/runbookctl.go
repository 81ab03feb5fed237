package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/workflows"
)

// runbookStatus is what `drover runbook status --json` prints: the
// application's current (or last) runbook run and, while it runs, its
// progress query answer, or once closed, its result.
type runbookStatus struct {
	WorkflowID   string `json:"workflow_id"`
	RunID        string `json:"run_id"`
	WorkflowType string `json:"workflow_type"`
	// State is the run's Temporal state: running, completed, failed,
	// canceled, terminated, timed-out or continued-as-new. A completed run
	// has a report whose outcome may still be aborted, rolled-back or failed.
	State     string     `json:"state"`
	StartedAt time.Time  `json:"started_at"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
	// ApproveBy is who the approval step waits for, while it waits.
	ApproveBy string                   `json:"approve_by,omitempty"`
	Progress  *workflows.RunbookReport `json:"progress,omitempty"`
	Result    *workflows.RunbookReport `json:"result,omitempty"`
	// Error says why there is no progress or result.
	Error string `json:"error,omitempty"`
}

// cmdRunbook runs `drover runbook status|report|approve`.
func cmdRunbook(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	action, name, fs, ok := subcommand("runbook", "status, report or approve", args, stderr)
	if !ok {
		return 2
	}
	app := fs.String("app", "", "application (the recipe's app) whose runbook to show or decide (required)")
	var asJSON, reject, wait *bool
	var runID, by, comment *string
	switch action {
	case "status":
		asJSON = fs.Bool("json", false, "print the status as JSON")
	case "report":
		asJSON = fs.Bool("json", false, "print the report as JSON (the RunbookReport)")
		runID = fs.String("run-id", "", "a given run (default: the last one)")
		wait = fs.Bool("wait", false, "if the runbook is still running, wait for its end and print its final report")
	case "approve":
		by = fs.String("by", "", "who decides; must be the runbook's --approve-by (required)")
		reject = fs.Bool("reject", false, "reject instead of approve (the runbook aborts)")
		comment = fs.String("comment", "", "free text recorded in the report")
	default:
		fmt.Fprintf(stderr, "drover runbook: unknown action %q (want status, report or approve)\n", action)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	switch {
	case *app == "":
		problems = append(problems, "--app: required (the recipe's app)")
	case !appName.MatchString(*app):
		problems = append(problems, fmt.Sprintf("--app: %q is not an app name (%s)", *app, appName))
	}
	if by != nil && *by == "" {
		problems = append(problems, "--by: required (the person the runbook waits for)")
	}
	c, code := checkAndDial(ctx, name, problems, stderr)
	if c == nil {
		return code
	}
	defer c.Close()
	switch action {
	case "status":
		return runbookStatusCmd(ctx, c, *app, *asJSON, stdout, stderr)
	case "report":
		return runbookReportCmd(ctx, c, *app, *runID, *asJSON, *wait, stdout, stderr)
	default:
		return runbookApproveCmd(ctx, c, *app, workflows.ApprovalDecision{By: *by, Approve: !*reject, Comment: *comment}, stdout, stderr)
	}
}

// describeRunbook describes the application's last (or the given) runbook
// run; code is the exit code when it cannot.
func describeRunbook(ctx context.Context, c client.Client, name, app, runID string, stderr io.Writer) (*client.WorkflowExecutionDescription, int) {
	id := workflows.RunbookWorkflowID(app)
	dctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	d, err := c.DescribeWorkflow(dctx, id, runID)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf) && runID != "":
		fmt.Fprintf(stderr, "%s: %s has no run %s\n", name, id, runID)
		return nil, 3
	case errors.As(err, &nf):
		fmt.Fprintf(stderr, "%s: no runbook has run for app %s (workflow ID %s)\n", name, app, id)
		return nil, 3
	case err != nil:
		fmt.Fprintf(stderr, "%s: describe %s: %v\n", name, id, err)
		return nil, 1
	}
	return d, 0
}

func runbookStatusCmd(ctx context.Context, c client.Client, app string, asJSON bool, stdout, stderr io.Writer) int {
	const name = "drover runbook status"
	d, code := describeRunbook(ctx, c, name, app, "", stderr)
	if d == nil {
		return code
	}
	st := runbookStatus{WorkflowID: d.WorkflowExecution.ID, RunID: d.WorkflowExecution.RunID, WorkflowType: d.WorkflowType.Name,
		State: runState(d.Status), StartedAt: d.WorkflowStartTime, ClosedAt: d.WorkflowCloseTime}
	rc := 0
	if d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		rep, err := queryProgress(ctx, c, st.WorkflowID, st.RunID)
		if err != nil {
			st.Error, rc = err.Error()+" (is a worker running?)", 1
		} else {
			st.Progress = &rep
			if waitingForApproval(rep) {
				if in, err := runbookStartInput(ctx, c, st.WorkflowID, st.RunID); err == nil {
					st.ApproveBy = in.ApproveBy
				}
			}
		}
	} else {
		rep, err := runbookResult(ctx, c, st.WorkflowID, st.RunID)
		if err != nil {
			st.Error, rc = "ended without a report: "+runErrorMessage(err), 3
		} else {
			st.Result, rc = &rep, outcomeCode(rep.Outcome)
		}
	}
	if asJSON {
		writeJSON(stdout, st)
		return rc
	}
	fmt.Fprintf(stdout, "%s %s (run %s): %s, started %s", st.WorkflowType, st.WorkflowID, st.RunID, st.State, clock(st.StartedAt, true))
	if st.ClosedAt != nil {
		fmt.Fprintf(stdout, ", closed %s (%s)\n", clock(*st.ClosedAt, true), seconds(st.ClosedAt.Sub(st.StartedAt).Seconds()))
	} else {
		fmt.Fprintf(stdout, " (%s ago)\n", time.Since(st.StartedAt).Round(time.Second))
	}
	switch {
	case st.Error != "":
		fmt.Fprintf(stdout, "%s\n", st.Error)
	case st.Progress != nil:
		if waitingForApproval(*st.Progress) {
			fmt.Fprintln(stdout, approveHint(app, st.ApproveBy))
		}
		fmt.Fprintln(stdout)
		renderReport(stdout, *st.Progress)
	case st.Result != nil:
		fmt.Fprintln(stdout)
		renderReport(stdout, *st.Result)
	}
	return rc
}

func runbookReportCmd(ctx context.Context, c client.Client, app, runID string, asJSON, wait bool, stdout, stderr io.Writer) int {
	const name = "drover runbook report"
	d, code := describeRunbook(ctx, c, name, app, runID, stderr)
	if d == nil {
		return code
	}
	id, run := d.WorkflowExecution.ID, d.WorkflowExecution.RunID
	var rep workflows.RunbookReport
	var err error
	if d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && !wait {
		if rep, err = queryProgress(ctx, c, id, run); err != nil {
			fmt.Fprintf(stderr, "%s: %s (run %s) is running: %v (is a worker running?)\n", name, id, run, err)
			return 1
		}
	} else if rep, err = runbookResult(ctx, c, id, run); err != nil {
		fmt.Fprintf(stderr, "%s: %s %s (run %s) ended without a report: %s\n", name, d.WorkflowType.Name, id, run, runErrorMessage(err))
		return 3
	}
	if asJSON {
		writeJSON(stdout, rep)
	} else {
		if rep.Outcome == "" {
			fmt.Fprintf(stdout, "%s %s (run %s) is still running: the report so far\n\n", d.WorkflowType.Name, id, run)
		}
		renderReport(stdout, rep)
	}
	return outcomeCode(rep.Outcome)
}

// runbookApproveCmd sends the approve update. A refusal by the validator
// (not the person waited for, nothing waiting, already decided) or a
// runbook without an approval gate is exit 3.
func runbookApproveCmd(ctx context.Context, c client.Client, app string, d workflows.ApprovalDecision, stdout, stderr io.Writer) int {
	const name = "drover runbook approve"
	id := workflows.RunbookWorkflowID(app)
	uctx, cancel := context.WithTimeout(ctx, approveTimeout)
	defer cancel()
	h, err := c.UpdateWorkflow(uctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: workflows.RunbookApproveUpdate, Args: []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var outcome string
	if err == nil {
		// Validator and handler errors arrive here, not from UpdateWorkflow.
		err = h.Get(uctx, &outcome)
	}
	var nf *serviceerror.NotFound
	var ae *temporal.ApplicationError
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "%s: %s\n", id, outcome)
		return 0
	case errors.As(err, &nf):
		fmt.Fprintf(stderr, "%s: refused: no runbook of %s is running, so nothing waits for an approval\n", name, app)
		return 3
	case errors.As(err, &ae) && strings.Contains(ae.Message(), "unknown update"):
		fmt.Fprintf(stderr, "%s: refused: the runbook %s does not wait for an approval (it was started without --approve-by)\n", name, id)
		return 3
	case errors.As(err, &ae):
		fmt.Fprintf(stderr, "%s: refused: %s\n", name, ae.Message())
		return 3
	case uctx.Err() != nil && ctx.Err() == nil:
		fmt.Fprintf(stderr, "%s: no answer from %s within %s (is a worker running?)\n", name, id, approveTimeout)
		return 1
	default:
		fmt.Fprintf(stderr, "%s: %s: %v\n", name, id, err)
		return 1
	}
}

// waitingForApproval reports whether the runbook's approval step runs.
func waitingForApproval(rep workflows.RunbookReport) bool {
	for _, s := range rep.Steps {
		if s.Name == "approval" && s.Outcome == workflows.StepRunning {
			return true
		}
	}
	return false
}

// runbookStartInput reads a run's input from its first history event.
func runbookStartInput(ctx context.Context, c client.Client, id, runID string) (workflows.RunbookInput, error) {
	var in workflows.RunbookInput
	hctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	it := c.GetWorkflowHistory(hctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return in, fmt.Errorf("%s: empty history", id)
	}
	ev, err := it.Next()
	if err != nil {
		return in, err
	}
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return in, fmt.Errorf("%s: the first event is %s", id, ev.GetEventType())
	}
	return in, converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &in)
}

// runState names a Temporal execution status in lower case.
func runState(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "running"
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "canceled"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed-out"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued-as-new"
	}
	return strings.ToLower(s.String())
}
