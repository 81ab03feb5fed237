package replicate

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/activities/internal/cloud"
)

// Names of the supervisor workflow's status query and stop update; the
// workflows package registers its handlers under these names.
const (
	SupervisorStatusQuery = "status"
	SupervisorStopUpdate  = "stop"
)

// Control drives stream supervisors from runbooks, through a Temporal
// client: a workflow cannot query or update another workflow itself.
type Control struct {
	Client client.Client
}

// StreamRef names a supervisor by its workflow ID.
type StreamRef struct {
	WorkflowID string `json:"workflow_id"`
}

// StreamState is a supervisor as a runbook sees it. Running is false when
// no supervisor with that ID is running (never started, stopped, failed);
// the other fields are then those its last run returned, if it completed.
type StreamState struct {
	WorkflowID string   `json:"workflow_id"`
	Running    bool     `json:"running"`
	State      string   `json:"state,omitempty"`
	Progress   Progress `json:"progress"`
	LastError  string   `json:"last_error,omitempty"`
}

// supervisorStatus is the part of the supervisor's status (query answer
// and result) a runbook needs; the JSON names are the workflow's.
type supervisorStatus struct {
	State     string   `json:"state"`
	Progress  Progress `json:"progress"`
	LastError string   `json:"last_error"`
}

// StreamState asks a supervisor for its status.
func (c *Control) StreamState(ctx context.Context, ref StreamRef) (StreamState, error) {
	out := StreamState{WorkflowID: ref.WorkflowID}
	status, err := c.status(ctx, ref.WorkflowID)
	if err != nil {
		return out, err
	}
	if status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return c.lastRun(ctx, out, status), nil
	}
	v, err := c.Client.QueryWorkflow(ctx, ref.WorkflowID, "", SupervisorStatusQuery)
	if err != nil {
		return out, fmt.Errorf("query %s: %w", ref.WorkflowID, err)
	}
	var st supervisorStatus
	if err := v.Get(&st); err != nil {
		return out, fmt.Errorf("query %s: %w", ref.WorkflowID, err)
	}
	out.Running, out.State, out.Progress, out.LastError = true, st.State, st.Progress, st.LastError
	return out, nil
}

// StreamStop stops a supervisor (its stream finishes the transaction in
// hand and records its checkpoint) and waits until the workflow has ended,
// heartbeating meanwhile. Stopping a supervisor that is not running is a
// no-op that reports Running=false and how its last run ended, so a stop
// retried after a lost result is safe and reports what the first attempt
// would have: the state and position the supervisor stopped at.
func (c *Control) StreamStop(ctx context.Context, ref StreamRef) (StreamState, error) {
	out := StreamState{WorkflowID: ref.WorkflowID}
	status, err := c.status(ctx, ref.WorkflowID)
	if err != nil {
		return out, err
	}
	if status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return c.lastRun(ctx, out, status), nil
	}
	h, err := c.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: ref.WorkflowID, UpdateName: SupervisorStopUpdate, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		// A validator refusal ("already stopping") is fine: it is ending.
		_ = h.Get(ctx, nil)
	} else if !isNotFound(err) {
		return out, fmt.Errorf("stop %s: %w", ref.WorkflowID, err)
	}
	var st supervisorStatus
	err = cloud.Heartbeating(ctx, time.Second, func() error {
		return c.Client.GetWorkflow(ctx, ref.WorkflowID, "").Get(ctx, &st)
	}, ref.WorkflowID)
	switch {
	case ctx.Err() != nil:
		return out, ctx.Err()
	case err != nil:
		// Ended otherwise (terminated, failed): it is not running, which is
		// what the caller needs.
		activity.GetLogger(ctx).Warn("supervisor ended without a status", "workflow_id", ref.WorkflowID, "error", err)
	}
	out.State, out.Progress, out.LastError = st.State, st.Progress, st.LastError
	return out, nil
}

// status is the status of the supervisor's latest run; UNSPECIFIED when
// there never was one.
func (c *Control) status(ctx context.Context, id string) (enumspb.WorkflowExecutionStatus, error) {
	d, err := c.Client.DescribeWorkflowExecution(ctx, id, "")
	if isNotFound(err) {
		return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED, nil
	}
	if err != nil {
		return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED, fmt.Errorf("describe %s: %w", id, err)
	}
	return d.GetWorkflowExecutionInfo().GetStatus(), nil
}

// lastRun fills out (Running=false) with the status a supervisor's last
// run returned, when it completed; a run that failed or was terminated
// returned none, and out is left as it is.
func (c *Control) lastRun(ctx context.Context, out StreamState, status enumspb.WorkflowExecutionStatus) StreamState {
	if status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		return out
	}
	var st supervisorStatus
	if err := c.Client.GetWorkflow(ctx, out.WorkflowID, "").Get(ctx, &st); err != nil {
		activity.GetLogger(ctx).Warn("supervisor's last run has no readable status", "workflow_id", out.WorkflowID, "error", err)
		return out
	}
	out.State, out.Progress, out.LastError = st.State, st.Progress, st.LastError
	return out
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}
