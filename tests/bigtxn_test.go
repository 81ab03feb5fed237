package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-sre/drover/tests/bench/benchenv"
	"github.com/drover-sre/drover/tests/testenv"
)

// bigTxnRSSLimitKB is the peak RSS the replication library may reach while
// replicating one 1,000,000-row transaction.
const bigTxnRSSLimitKB = 512 * 1024

// A single 1,000,000-row source transaction replicates intact while the
// streaming process stays under 512 MB RSS. The streamer runs in a helper
// built without -race (the race detector multiplies memory, so this test
// binary's RSS would say nothing about the library's); the helper starts its
// own source and target MariaDB and does not use the e2e stack.
func TestBigTransaction(t *testing.T) {
	const rows = 1_000_000
	dir := t.TempDir()
	bin := filepath.Join(dir, "bigtxn")
	if _, err := testenv.Build(filepath.Dir(bin), "bigtxn"); err != nil {
		t.Fatalf("build the bigtxn helper: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-rows", strconv.Itoa(rows), "-timeout", "150s")
	// On timeout ask the helper to stop (it stops its servers by PID), and
	// kill it only if it does not exit.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 60 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("bigtxn helper: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res benchenv.BigTxnResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("bigtxn helper output %q: %v", stdout.String(), err)
	}
	t.Logf("1,000,000-row transaction: source insert %.1fs, replicated in %.1fs (%.0f rows/s), %.1f MB of binlog in %d events, %d target commit(s); helper ran %.0fs",
		res.InsertSeconds, res.ApplySeconds, float64(res.Rows)/res.ApplySeconds, float64(res.BinlogBytes)/1e6, res.BinlogEvents, res.TargetCommits, elapsed.Seconds())
	t.Logf("peak RSS (VmHWM) of the streaming process %.1f MB (limit %d MB); Go heap in use peak %.1f MB, Go runtime total %.1f MB",
		float64(res.VmHWMKB)/1024, bigTxnRSSLimitKB/1024, float64(res.PeakHeapInuse)/(1<<20), float64(res.PeakGoSys)/(1<<20))
	t.Logf("rows source %d target %d; CHECKSUM TABLE source %d target %d; position source %s applied %s",
		res.SourceRows, res.TargetRows, res.SourceChecksum, res.TargetChecksum, res.SourcePosition, res.AppliedPosition)

	if res.RaceDetector {
		t.Errorf("the helper was built with -race: its RSS is not the library's")
	}
	if res.Rows != rows || res.SourceRows != rows {
		t.Errorf("source has %d rows, want %d", res.SourceRows, rows)
	}
	if res.TargetRows != res.SourceRows {
		t.Errorf("target has %d rows, source %d", res.TargetRows, res.SourceRows)
	}
	if res.TargetChecksum != res.SourceChecksum {
		t.Errorf("CHECKSUM TABLE differs: source %d, target %d", res.SourceChecksum, res.TargetChecksum)
	}
	if res.AppliedPosition != res.SourcePosition {
		t.Errorf("applied position %s, source %s", res.AppliedPosition, res.SourcePosition)
	}
	if res.VmHWMKB <= 0 || res.VmHWMKB >= bigTxnRSSLimitKB {
		t.Errorf("peak RSS %d kB, want under %d kB", res.VmHWMKB, bigTxnRSSLimitKB)
	}
}
