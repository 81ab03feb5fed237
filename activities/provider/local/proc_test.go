package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/drover-sre/drover/activities/provider/local"
)

func sleeper(t *testing.T) local.Process {
	t.Helper()
	bin, err := local.FindBinary("sleep", "coreutils")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return local.Process{Name: "sleeper", Path: bin, Args: []string{"300"},
		PIDFile: filepath.Join(dir, "sleep.pid"), LogFile: filepath.Join(dir, "sleep.log")}
}

func TestProcessStartIsIdempotentAndStopIsClean(t *testing.T) {
	ctx := context.Background()
	p := sleeper(t)
	t.Cleanup(func() { _ = p.Kill(ctx) })
	pid, started, err := p.Start()
	if err != nil || !started || pid <= 1 {
		t.Fatalf("first start: pid=%d started=%v err=%v", pid, started, err)
	}
	pid2, started2, err := p.Start()
	if err != nil || started2 || pid2 != pid {
		t.Fatalf("second start must find the running process: pid=%d started=%v err=%v (first pid %d)", pid2, started2, err, pid)
	}
	if got, ok := p.PID(); !ok || got != pid {
		t.Fatalf("PID() = %d, %v; want %d, true", got, ok, pid)
	}
	if err := p.Stop(ctx, 5*time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, ok := p.PID(); ok {
		t.Fatal("process still running after Stop")
	}
	if _, err := os.Stat(p.PIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file should be removed after a clean stop, stat err=%v", err)
	}
	if err := p.Stop(ctx, time.Second); !errors.Is(err, local.ErrNotRunning) {
		t.Fatalf("stopping a stopped process: got %v, want ErrNotRunning", err)
	}
}

func TestProcessKillLeavesPIDFileLikeACrash(t *testing.T) {
	ctx := context.Background()
	p := sleeper(t)
	pid, _, err := p.Start()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.PID(); ok {
		t.Fatal("process alive after Kill")
	}
	b, err := os.ReadFile(p.PIDFile)
	if err != nil || string(b) != strconv.Itoa(pid)+"\n" {
		t.Fatalf("pid file after kill: %q, %v", b, err)
	}
	// A restart after a crash starts a new process despite the stale file.
	pid2, started, err := p.Start()
	t.Cleanup(func() { _ = p.Kill(ctx) })
	if err != nil || !started || pid2 == pid {
		t.Fatalf("restart after crash: pid=%d started=%v err=%v", pid2, started, err)
	}
}

// A pid file naming a live process that runs another program (pid reuse)
// must not be mistaken for ours, and must never be signalled.
func TestProcessIgnoresPIDOfAnotherProgram(t *testing.T) {
	p := sleeper(t)
	if err := os.WriteFile(p.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pid, ok := p.PID(); ok {
		t.Fatalf("PID() claims the test process %d is the sleeper", pid)
	}
	if err := p.Stop(context.Background(), time.Second); !errors.Is(err, local.ErrNotRunning) {
		t.Fatalf("Stop must not signal a foreign process: %v", err)
	}
	if err := p.Kill(context.Background()); !errors.Is(err, local.ErrNotRunning) {
		t.Fatalf("Kill must not signal a foreign process: %v", err)
	}
}

func TestProcessStartReportsMissingBinary(t *testing.T) {
	p := sleeper(t)
	p.Path = "/nonexistent/drover-test-binary"
	if _, _, err := p.Start(); err == nil {
		t.Fatal("want an error for a missing binary")
	}
}

func TestFindBinaryNamesThePackage(t *testing.T) {
	_, err := local.FindBinary("drover-no-such-program", "drover-pkg")
	if err == nil || !containsAll(err.Error(), "drover-no-such-program", `"drover-pkg"`, "apt-get install -y drover-pkg") {
		t.Fatalf("error should name the program and the package: %v", err)
	}
}
