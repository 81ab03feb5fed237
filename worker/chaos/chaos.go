// Package chaos is drover-worker's fault-injection hook for chaos tests. It
// is off unless the worker's environment sets DROVER_CHAOS_DIR, and nothing
// in production sets it.
//
// With the hook on, the worker SIGKILLs itself right after a chosen point of
// its work, once per arming:
//
//   - after an activity of a given type has run — its side effect done, its
//     result (success or error) not yet reported to Temporal. This is the
//     hardest moment for a worker to die: Temporal retries the activity
//     (on the restarted worker, or another one) when its heartbeat or
//     StartToClose timeout expires, so the activity must be idempotent;
//   - in the workflow task in which a workflow learns that a child
//     workflow of a given type has started — the child runs, the
//     workflow task that would record what the parent did next is lost,
//     times out, and is replayed by another worker.
//
// A third kind of point makes an activity fail instead of killing the
// worker: FailBefore(type) ("fail.DBPromote") — the activity is not run and
// returns a non-retryable error, once. It is how a test makes a runbook step
// fail for real, to watch the compensations run.
//
// A point is armed by creating an empty file named after it in the chaos
// directory: the activity type ("DBFence", "DNSPoint", …) or
// ChildStarted(type) ("ChildStarted.ReplicationSupervisor"). The worker that
// reaches the point first removes the file — an atomic claim, so of several
// workers sharing the directory exactly one dies — appends a line to
// FiredLog, and kills itself. A restarted worker finds the file gone and
// behaves normally; nothing fires until the file is created again.
package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// EnvDir is the environment variable that turns the hook on and names the
// directory holding the arm files.
const EnvDir = "DROVER_CHAOS_DIR"

// FiredLog is the file in the chaos directory to which every firing
// appends "<point> <site> <pid> <RFC 3339 time>".
const FiredLog = "fired.log"

// FailBefore is the point that makes the next activity of activityType fail
// without running.
func FailBefore(activityType string) string { return "fail." + activityType }

// ChildStarted is the point reached when a workflow learns that its child
// workflow of type workflowType has started.
func ChildStarted(workflowType string) string { return "ChildStarted." + workflowType }

// Hook kills its own process at an armed point (see the package comment).
type Hook struct {
	// Dir holds the arm files and FiredLog.
	Dir string
	// Site is the worker's site, recorded in FiredLog.
	Site string
	// Kill ends the process; nil means SIGKILL to itself (no deferred
	// function, no clean shutdown of the Temporal worker). Tests replace it.
	Kill func()
}

// CheckDir checks that dir can be the chaos directory: an absolute path to
// an existing directory.
func CheckDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s: %q must be an absolute path", EnvDir, dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", EnvDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %q is not a directory", EnvDir, dir)
	}
	return nil
}

// claim disarms point if it is armed, records the firing, and reports
// whether this worker claimed it.
func (h *Hook) claim(point string) bool {
	if err := os.Remove(filepath.Join(h.Dir, point)); err != nil {
		// Not armed (or already claimed by another worker).
		return false
	}
	line := fmt.Sprintf("%s %s %d %s\n", point, h.Site, os.Getpid(), time.Now().UTC().Format(time.RFC3339Nano))
	if f, err := os.OpenFile(filepath.Join(h.Dir, FiredLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		_, _ = f.WriteString(line)
		_ = f.Close()
	}
	return true
}

// Fire kills the process if point is armed, after disarming it and
// recording the firing. It returns (only when Kill does) whether it fired.
func (h *Hook) Fire(point string) bool {
	if !h.claim(point) {
		return false
	}
	// Unbuffered: the worker's log says why it died.
	fmt.Fprintf(os.Stderr, "chaos: killing drover-worker (site %s, pid %d) after %s\n", h.Site, os.Getpid(), point)
	if h.Kill != nil {
		h.Kill()
		return true
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught: never reached
}

// WorkerInterceptor returns the interceptor to put in worker.Options of
// every worker of the process.
func (h *Hook) WorkerInterceptor() interceptor.WorkerInterceptor { return &workerInterceptor{h: h} }

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	h *Hook
}

func (w *workerInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, h: w.h}
}

func (w *workerInterceptor) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &workflowInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, h: w.h}
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	h *Hook
}

// ExecuteActivity fails the activity without running it if FailBefore is
// armed for it; otherwise it runs the activity, then fires its point: the
// result is still in this process, not yet reported.
func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	name := activity.GetInfo(ctx).ActivityType.Name
	if a.h.claim(FailBefore(name)) {
		return nil, temporal.NewNonRetryableApplicationError("chaos: injected failure of "+name+" (not run)", "ChaosFailure", nil)
	}
	res, err := a.Next.ExecuteActivity(ctx, in)
	a.h.Fire(activity.GetInfo(ctx).ActivityType.Name)
	return res, err
}

type workflowInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	h *Hook
}

func (w *workflowInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return w.Next.Init(&workflowOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, h: w.h})
}

type workflowOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	h *Hook
}

// ExecuteChildWorkflow starts the child as asked and, beside the workflow's
// own code, waits for the child to have started; in the workflow task that
// learns it (never while replaying history another worker already
// processed), it fires ChildStarted(type). The future returned is the
// SDK's own, unwrapped, so selectors and signals work unchanged.
func (w *workflowOutbound) ExecuteChildWorkflow(ctx workflow.Context, childWorkflowType string, args ...any) workflow.ChildWorkflowFuture {
	f := w.Next.ExecuteChildWorkflow(ctx, childWorkflowType, args...)
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil || workflow.IsReplaying(ctx) {
			return // not started (already running, cancelled), or history another worker processed
		}
		w.h.Fire(ChildStarted(childWorkflowType))
	})
	return f
}
