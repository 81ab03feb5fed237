package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// ExclusiveStartOptions are the options a client uses to start a workflow of
// which at most one may run under id at a time — a runbook under
// RunbookWorkflowID, a drill: task queue SharedTaskQueue; while a run with
// the ID is open, a second start starts nothing and fails with
// serviceerror.WorkflowExecutionAlreadyStarted (which names no run; describe
// the ID to find it); a closed run does not stand in the way. Summary and
// details are shown in the Temporal UI.
func ExclusiveStartOptions(id, summary, details string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                SharedTaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            summary,
		StaticDetails:                            details,
	}
}
