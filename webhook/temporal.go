package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/workflows"
)

// MemoAlertKey is the memo field in which a run started by the webhook
// keeps the Alert.Key of the alert that started it.
const MemoAlertKey = "drover_alert"

// TemporalStarter is the Starter that talks to Temporal. It starts
// workflows with the options every Drover client uses for a one-at-a-time
// workflow (workflows.ExclusiveStartOptions), so the webhook and the CLI
// refuse each other's second runbook the same way. The memo is encoded and
// decoded with the client's own data converter (a payload codec included).
type TemporalStarter struct {
	Client client.Client
}

// Start starts req on the shared task queue under req.ID, with the alert
// key in the memo. A run open under the ID makes it start nothing and
// return an error wrapping ErrAlreadyRunning.
func (s TemporalStarter) Start(ctx context.Context, req StartRequest) (string, error) {
	opts := workflows.ExclusiveStartOptions(req.ID, req.Summary, req.Details)
	if req.AlertKey != "" {
		opts.Memo = map[string]any{MemoAlertKey: req.AlertKey}
	}
	run, err := s.Client.ExecuteWorkflow(ctx, opts, req.Type, req.Input)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		return "", fmt.Errorf("start %s %s: %w", req.Type, req.ID, ErrAlreadyRunning)
	case err != nil:
		return "", fmt.Errorf("start %s %s: %w", req.Type, req.ID, err)
	}
	return run.GetRunID(), nil
}

// Last describes the latest run under id; a workflow ID Temporal does not
// know is ok=false, not an error.
func (s TemporalStarter) Last(ctx context.Context, id string) (Run, bool, error) {
	d, err := s.Client.DescribeWorkflow(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return Run{}, false, nil
	case err != nil:
		return Run{}, false, fmt.Errorf("describe %s: %w", id, err)
	}
	run := Run{
		Type: d.WorkflowType.Name, RunID: d.WorkflowExecution.RunID, Started: d.WorkflowStartTime,
		Running: d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		Status:  strings.ToLower(strings.TrimPrefix(d.Status.String(), "WORKFLOW_EXECUTION_STATUS_")),
	}
	if d.WorkflowCloseTime != nil {
		run.Closed = *d.WorkflowCloseTime
	}
	if err := d.GetMemoValue(MemoAlertKey, &run.AlertKey); err != nil && !errors.Is(err, temporal.ErrNoData) {
		return Run{}, false, fmt.Errorf("describe %s: memo %s: %w", id, MemoAlertKey, err)
	}
	return run, true, nil
}

// StandbyLag asks the replication supervisor of from → to for the lag it
// last measured. A stream that is running, lagging or restarting (its
// source may just have died) has a known lag; any other state, or no
// supervisor at all, leaves it unknown.
func (s TemporalStarter) StandbyLag(ctx context.Context, app, from, to string) (time.Duration, string, error) {
	id := workflows.ReplicationWorkflowID(app, from, to)
	v, err := s.Client.QueryWorkflow(ctx, id, "", workflows.ReplicationStatusQuery)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return 0, "no replication " + from + " → " + to, nil
	case err != nil:
		return 0, "", fmt.Errorf("query %s: %w", id, err)
	}
	var st workflows.ReplicationStatus
	if err := v.Get(&st); err != nil {
		return 0, "", fmt.Errorf("query %s: %w", id, err)
	}
	switch st.State {
	case workflows.ReplRunning, workflows.ReplLagging, workflows.ReplRestarting:
		if st.Progress.At.IsZero() {
			return 0, "replication " + from + " → " + to + " has not measured its lag yet", nil
		}
		return time.Duration(st.Progress.LagSeconds * float64(time.Second)), "", nil
	}
	return 0, fmt.Sprintf("replication %s → %s is %s", from, to, st.State), nil
}
