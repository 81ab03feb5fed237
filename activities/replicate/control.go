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
// the other fields are then those of its last run, if any.
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
	running, err := c.running(ctx, ref.WorkflowID)
	if err != nil || !running {
		return out, err
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
// no-op that reports Running=false, so a retried stop is safe.
func (c *Control) StreamStop(ctx context.Context, ref StreamRef) (StreamState, error) {
	out := StreamState{WorkflowID: ref.WorkflowID}
	running, err := c.running(ctx, ref.WorkflowID)
	if err != nil || !running {
		return out, err
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
	done := make(chan error, 1)
	var st supervisorStatus
	go func() { done <- c.Client.GetWorkflow(ctx, ref.WorkflowID, "").Get(ctx, &st) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				// Ended otherwise (terminated, failed): it is not running,
				// which is what the caller needs.
				activity.GetLogger(ctx).Warn("supervisor ended without a status", "workflow_id", ref.WorkflowID, "error", err)
			}
			out.State, out.Progress, out.LastError = st.State, st.Progress, st.LastError
			return out, nil
		case <-tick.C:
			activity.RecordHeartbeat(ctx, ref.WorkflowID)
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

func (c *Control) running(ctx context.Context, id string) (bool, error) {
	d, err := c.Client.DescribeWorkflowExecution(ctx, id, "")
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("describe %s: %w", id, err)
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}
