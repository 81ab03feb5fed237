package chaos

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func touch(ctx context.Context, s string) (string, error) { return "touched " + s, nil }

func child(ctx workflow.Context) error { return nil }

// parent runs the activity touch, then starts child and waits for it.
func parent(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var out string
	if err := workflow.ExecuteActivity(ctx, touch, "x").Get(ctx, &out); err != nil {
		return "", err
	}
	f := workflow.ExecuteChildWorkflow(ctx, child)
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return "", err
	}
	return out, f.Get(ctx, nil)
}

// run executes parent with the hook in place and returns the points at
// which the hook killed.
func run(t *testing.T, dir string) []string {
	t.Helper()
	var mu sync.Mutex
	var killed []string
	h := &Hook{Dir: dir, Site: "east"}
	h.Kill = func() {
		mu.Lock()
		defer mu.Unlock()
		b, _ := os.ReadFile(filepath.Join(dir, FiredLog))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		killed = append(killed, strings.Fields(lines[len(lines)-1])[0])
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{h.WorkerInterceptor()}})
	env.RegisterActivity(touch)
	env.RegisterWorkflow(child)
	env.ExecuteWorkflow(parent)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out string
	if err := env.GetWorkflowResult(&out); err != nil || out != "touched x" {
		t.Fatalf("result %q %v: the hook must not change what the workflow sees", out, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return killed
}

func arm(t *testing.T, dir, point string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, point), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestUnarmedNeverKills(t *testing.T) {
	dir := t.TempDir()
	if got := run(t, dir); len(got) != 0 {
		t.Fatalf("killed at %v with nothing armed", got)
	}
}

// An armed point fires once, after the activity ran (the workflow still
// gets its result here since the test's Kill returns), and disarms itself.
func TestArmedActivityFiresOnce(t *testing.T) {
	dir := t.TempDir()
	arm(t, dir, "touch")
	if got := run(t, dir); strings.Join(got, ",") != "touch" {
		t.Fatalf("killed at %v, want once after touch", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "touch")); !os.IsNotExist(err) {
		t.Fatalf("the arm file must be consumed: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FiredLog))
	if err != nil || !strings.HasPrefix(string(b), "touch east ") {
		t.Fatalf("fired log %q %v", b, err)
	}
	if got := run(t, dir); len(got) != 0 {
		t.Fatalf("fired again without being re-armed: %v", got)
	}
}

func TestArmedChildStartFires(t *testing.T) {
	dir := t.TempDir()
	arm(t, dir, ChildStarted("child"))
	arm(t, dir, ChildStarted("other"))
	if got := run(t, dir); strings.Join(got, ",") != "ChildStarted.child" {
		t.Fatalf("killed at %v, want once when the child started", got)
	}
	if _, err := os.Stat(filepath.Join(dir, ChildStarted("other"))); err != nil {
		t.Fatalf("another point must stay armed: %v", err)
	}
}

func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, want string }{
		{"relative", "absolute"},
		{filepath.Join(dir, "missing"), "no such file"},
		{f, "not a directory"},
	} {
		if err := CheckDir(tc.dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.dir, err, tc.want)
		}
	}
	if err := CheckDir(dir); err != nil {
		t.Fatal(err)
	}
}

// FailBefore makes the next run of the activity fail, non-retryably and
// without running it, once; nothing is killed.
func TestFailBeforeFailsOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FailBefore("touch")), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h := &Hook{Dir: dir, Site: "east", Kill: func() { t.Error("FailBefore must not kill") }}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{h.WorkerInterceptor()}})
	env.RegisterActivity(touch)
	env.RegisterWorkflow(child)
	env.ExecuteWorkflow(parent)
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "chaos: injected failure of touch") {
		t.Fatalf("want the injected failure, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FailBefore("touch"))); !os.IsNotExist(err) {
		t.Fatal("the point must be disarmed after it fired")
	}
	if got := run(t, dir); len(got) != 0 {
		t.Fatalf("disarmed: the next run must succeed untouched, killed at %v", got)
	}
}
