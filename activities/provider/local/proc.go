package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one detached daemon owned by Drover and identified by its pid
// file. Starting it twice is a no-op, and a pid file that names a dead process
// or a process running some other program (pid reuse) counts as "not running",
// so Drover never signals a process it did not start.
//
// Processes run in their own session (setsid) with stdin closed and output
// appended to LogFile: a worker or CLI that started them can exit or crash and
// the daemon keeps running, which is what lets a site outlive its worker.
type Process struct {
	Name    string   // human name used in messages, e.g. "east/mariadbd"
	Path    string   // absolute path of the binary
	Args    []string // arguments, without argv[0]
	Env     []string // extra environment (KEY=VALUE) added to a minimal base
	Dir     string   // working directory; "" means the pid file's directory
	PIDFile string   // where the pid is recorded
	LogFile string   // stdout and stderr are appended here
}

// ErrNotRunning is returned by Stop and Kill when nothing is running; callers
// that want idempotence treat it as success.
var ErrNotRunning = errors.New("not running")

// Start launches the process unless it is already running and returns its
// pid. started is false when an existing process was found.
func (p Process) Start() (pid int, started bool, err error) {
	if pid, ok := p.PID(); ok {
		return pid, false, nil
	}
	if err := os.MkdirAll(filepath.Dir(p.PIDFile), 0o700); err != nil {
		return 0, false, fmt.Errorf("start %s: %w", p.Name, err)
	}
	logf, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, false, fmt.Errorf("start %s: open log: %w", p.Name, err)
	}
	defer logf.Close()
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Dir = p.Dir
	if cmd.Dir == "" {
		cmd.Dir = filepath.Dir(p.PIDFile)
	}
	cmd.Env = append(baseEnv(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, false, fmt.Errorf("start %s (%s): %w", p.Name, p.Path, err)
	}
	pid = cmd.Process.Pid
	// Reap the child if it exits while this process lives, so a crashed
	// daemon does not linger as a zombie that still answers kill(pid, 0).
	go func() { _ = cmd.Wait() }()
	if err := writeFileAtomic(p.PIDFile, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return 0, false, fmt.Errorf("start %s: write pid file: %w", p.Name, err)
	}
	return pid, true, nil
}

// PID returns the pid recorded in the pid file and whether that process is
// alive and still runs this Process's binary.
func (p Process) PID() (int, bool) {
	b, err := os.ReadFile(p.PIDFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, isAlive(pid, p.Path)
}

// Stop asks the process to exit with SIGTERM and waits up to grace for it to
// go, then sends SIGKILL. It returns ErrNotRunning when nothing was running.
func (p Process) Stop(ctx context.Context, grace time.Duration) error {
	pid, ok := p.PID()
	if !ok {
		_ = os.Remove(p.PIDFile)
		return ErrNotRunning
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if err := waitGone(ctx, pid, p.Path, grace); err == nil {
		_ = os.Remove(p.PIDFile)
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if err := waitGone(ctx, pid, p.Path, 10*time.Second); err != nil {
		return fmt.Errorf("stop %s (pid %d): still running after SIGKILL: %w", p.Name, pid, err)
	}
	_ = os.Remove(p.PIDFile)
	return nil
}

// Kill sends SIGKILL, simulating a crash: no clean shutdown happens. The pid
// file is left in place, as a crash would leave it.
func (p Process) Kill(ctx context.Context) error {
	pid, ok := p.PID()
	if !ok {
		return ErrNotRunning
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if err := waitGone(ctx, pid, p.Path, 10*time.Second); err != nil {
		return fmt.Errorf("kill %s (pid %d): %w", p.Name, pid, err)
	}
	return nil
}

// waitGone polls until pid no longer runs binary or the timeout expires.
func waitGone(ctx context.Context, pid int, binary string, timeout time.Duration) error {
	return Poll(ctx, fmt.Sprintf("exit of pid %d", pid), timeout, 25*time.Millisecond, func() error {
		if isAlive(pid, binary) {
			return errors.New("still running")
		}
		return nil
	})
}

// isAlive reports whether pid exists, is not a zombie and runs binary.
func isAlive(pid int, binary string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state field follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		if s := stat[i+2]; s == 'Z' || s == 'X' {
			return false
		}
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	want := binary
	if r, err := filepath.EvalSymlinks(binary); err == nil {
		want = r
	}
	return exe == want || filepath.Base(exe) == filepath.Base(want)
}

// baseEnv is the environment every daemon gets: enough to run, nothing that
// leaks the caller's secrets or Temporal settings by accident.
func baseEnv() []string {
	env := []string{"LANG=C.UTF-8"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// writeFileAtomic writes data to a temporary file and renames it into place,
// so readers never see a half-written pid file or secret.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
