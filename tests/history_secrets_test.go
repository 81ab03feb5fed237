package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/deploy/local/devstack"
)

// stackSecrets are the secret values of a dev stack: the database
// passwords the recipe references, the TSIG key, the root passwords and
// the app's database passwords.
func stackSecrets(t *testing.T, stateDir string) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"secrets/*", "dns/tsig.secret", "sites/*/db/root.pw", "sites/*/app/db.pw"} {
		m, err := filepath.Glob(filepath.Join(stateDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if v := strings.TrimSpace(string(b)); len(v) >= 8 {
			out = append(out, v)
		}
	}
	return out
}

// checkNoSecretsInHistory fetches the whole history — inputs, results,
// heartbeats, failures, search attributes, memos — of every workflow the
// stack ran and fails the test if a secret value of the stack appears in
// it. It returns the workflow types it read.
func checkNoSecretsInHistory(t *testing.T, st *devstack.State, c client.Client) map[string]int {
	t.Helper()
	ctx := context.Background()
	secrets := stackSecrets(t, st.StateDir)
	if len(secrets) < 4 {
		t.Fatalf("only %d secrets found under %s: the check would prove nothing", len(secrets), st.StateDir)
	}
	types := map[string]int{}
	var token []byte
	for page := 0; page < 100; page++ {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: st.Namespace, NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.Executions {
			types[e.Type.Name]++
			var b strings.Builder
			b.WriteString(e.String())
			it := c.GetWorkflowHistory(ctx, e.Execution.WorkflowId, e.Execution.RunId, false, 0)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				b.WriteString(ev.String())
			}
			h := b.String()
			for _, s := range secrets {
				if strings.Contains(h, s) {
					t.Errorf("workflow %s (%s) has a secret value in its history", e.Execution.WorkflowId, e.Type.Name)
				}
			}
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	t.Logf("no secret in the histories of %v", types)
	return types
}
