package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from real runs on
// the dev stack (`temporal workflow show --output json`): a change to
// workflow code that would break running executions fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.history.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded histories: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(SiteStatus, workflow.RegisterOptions{Name: "SiteStatus"})
			r.RegisterWorkflowWithOptions(ReplicationSupervisor, workflow.RegisterOptions{Name: "ReplicationSupervisor"})
			r.RegisterWorkflowWithOptions(HealthMonitor, workflow.RegisterOptions{Name: "HealthMonitor"})
			r.RegisterWorkflowWithOptions(Switchover, workflow.RegisterOptions{Name: "Switchover"})
			r.RegisterWorkflowWithOptions(Failover, workflow.RegisterOptions{Name: "Failover"})
			r.RegisterWorkflowWithOptions(Failback, workflow.RegisterOptions{Name: "Failback"})
			r.RegisterWorkflowWithOptions(CloneSite, workflow.RegisterOptions{Name: "CloneSite"})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}
