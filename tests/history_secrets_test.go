package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/tests/testenv"
)

// stackSecrets are the secret values of a dev stack: the database
// passwords the recipe references, the TSIG key, the root passwords and
// the app's database passwords.
func stackSecrets(stateDir string) ([]string, error) {
	var files []string
	for _, pattern := range []string{"secrets/*", "dns/tsig.secret", "sites/*/db/root.pw", "sites/*/app/db.pw"} {
		m, err := filepath.Glob(filepath.Join(stateDir, pattern))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if v := strings.TrimSpace(string(b)); len(v) >= 8 {
			out = append(out, v)
		}
	}
	if len(out) < 4 {
		return nil, fmt.Errorf("only %d secrets found under %s: a check would prove nothing", len(out), stateDir)
	}
	return out, nil
}

// secretsInHistory reads the whole history — inputs, results, heartbeats,
// failures, search attributes, memos — of every workflow the stack ran and
// returns the workflow types it read and the workflows whose history holds
// a secret value of the stack.
func secretsInHistory(st *devstack.State, c client.Client) (map[string]int, []string, error) {
	ctx := context.Background()
	secrets, err := stackSecrets(st.StateDir)
	if err != nil {
		return nil, nil, err
	}
	types := map[string]int{}
	var leaks []string
	var token []byte
	for page := 0; page < 100; page++ {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: st.Namespace, NextPageToken: token})
		if err != nil {
			return nil, nil, err
		}
		for _, e := range resp.Executions {
			types[e.Type.Name]++
			var b strings.Builder
			b.WriteString(e.String())
			it := c.GetWorkflowHistory(ctx, e.Execution.WorkflowId, e.Execution.RunId, false, 0)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return nil, nil, err
				}
				b.WriteString(ev.String())
			}
			for _, s := range secrets {
				if strings.Contains(b.String(), s) {
					leaks = append(leaks, fmt.Sprintf("%s (%s)", e.Execution.WorkflowId, e.Type.Name))
					break
				}
			}
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	return types, leaks, nil
}

// checkNoSecretsInHistory fails the test if a workflow of the stack has a
// secret value in its history.
func checkNoSecretsInHistory(t *testing.T, st *devstack.State, c client.Client) {
	t.Helper()
	types, leaks, err := secretsInHistory(st, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaks {
		t.Errorf("workflow %s has a secret value in its history", l)
	}
	t.Logf("no secret in the histories of %v", types)
}

// The history check finds a secret wherever a workflow carries one: a
// workflow started with a stack's password in its input (here the value
// of one secrets/ file) is reported, one without it is not.
func TestSecretsInHistoryFindsALeak(t *testing.T) {
	dir := t.TempDir()
	for i, v := range []string{"s3cret-db-admin-pw", "s3cret-stream-pw", "s3cret-apply-pw", "s3cret-tsig-key=="} {
		if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "secrets", fmt.Sprintf("s%d.pw", i)), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := testenv.StartTemporal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	c := srv.Client()
	st := &devstack.State{StateDir: dir, Namespace: "default"}
	for id, arg := range map[string]string{"clean": "file:" + filepath.Join(dir, "secrets", "s1.pw"), "leaky": "password s3cret-stream-pw"} {
		// No worker: the start alone puts the input into the history.
		if _, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: "nobody"}, "Anything", arg); err != nil {
			t.Fatal(err)
		}
	}
	var leaks []string
	var types map[string]int
	if !testenv.WaitFor(30*time.Second, func() bool {
		types, leaks, err = secretsInHistory(st, c)
		return err == nil && types["Anything"] == 2
	}) {
		t.Fatalf("visibility did not list both workflows: %v %v", types, err)
	}
	if strings.Join(leaks, ",") != "leaky (Anything)" {
		t.Fatalf("leaks found: %v, want exactly the leaky workflow", leaks)
	}
}
