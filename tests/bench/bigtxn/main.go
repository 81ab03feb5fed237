// Command bigtxn replicates one very large source transaction with Drover's
// replication library and reports the process's peak RSS. It starts its own
// source and target MariaDB (stopped by PID on exit), inserts -rows rows in
// ONE transaction on the source (MariaDB's Sequence engine:
// INSERT … SELECT … FROM seq_1_to_N), streams it into the target in this
// process, and checks row count and CHECKSUM TABLE on both sides.
//
// The last line on stdout is a JSON benchenv.BigTxnResult; progress goes to stderr. It is
// built without -race by tests/bigtxn_test.go, which asserts the figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/bench/benchenv"
	"github.com/drover-sre/drover/tests/testenv"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows inserted by the single source transaction")
	timeout := flag.Duration("timeout", 150*time.Second, "give up after this long (servers are still stopped)")
	heapProfile := flag.String("heapprofile", "", "write a heap profile taken at the peak of the apply to this file")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := run(ctx, *rows, *heapProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bigtxn:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func run(ctx context.Context, rows int, heapProfile string) (*benchenv.BigTxnResult, error) {
	res := &benchenv.BigTxnResult{Rows: rows, RaceDetector: raceEnabled}
	src, err := testenv.StartServer(ctx, "127.0.0.1", 71)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := testenv.StartServer(ctx, "127.0.0.1", 72)
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	if err := src.MakeSource(ctx); err != nil {
		return nil, err
	}
	if err := dst.MakeTarget(ctx); err != nil {
		return nil, err
	}
	// The Sequence engine must be there: it makes the rows server-side, so
	// this process holds none of them.
	var probe int
	if err := src.Root.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.seq_1_to_3").Scan(&probe); err != nil || probe != 3 {
		return nil, fmt.Errorf("sequence engine on the source: count %d, %v", probe, err)
	}
	if err := src.Exec(ctx, "CREATE DATABASE big",
		"CREATE TABLE big.t (id BIGINT NOT NULL PRIMARY KEY, pad VARCHAR(100) NOT NULL, n BIGINT NOT NULL) ENGINE=InnoDB"); err != nil {
		return nil, err
	}

	s, err := replication.New(testenv.StreamConfig("bigtxn", src, dst, 9071))
	if err != nil {
		return nil, err
	}
	r := testenv.RunStream(s)
	defer func() { _ = r.Stop(30 * time.Second) }()
	pos, err := src.Position(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := r.WaitApplied(ctx, pos, 20*time.Millisecond, 30*time.Second); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	before := r.Stats()

	peak := watchMemory(heapProfile)
	fmt.Fprintf(os.Stderr, "bigtxn: inserting %d rows in one transaction on the source\n", rows)
	start := time.Now()
	if err := oneTransaction(ctx, src, rows); err != nil {
		return nil, err
	}
	committed := time.Now()
	res.InsertSeconds = committed.Sub(start).Seconds()
	pos, err = src.Position(ctx)
	if err != nil {
		return nil, err
	}
	res.SourcePosition = pos.String()
	fmt.Fprintf(os.Stderr, "bigtxn: committed on the source in %.1fs (%s); streaming\n", res.InsertSeconds, pos)
	applied, err := r.WaitApplied(ctx, pos, 20*time.Millisecond, 120*time.Second)
	if err != nil {
		return nil, fmt.Errorf("apply the big transaction: %w", err)
	}
	res.ApplySeconds = applied.Sub(committed).Seconds()
	if err := r.Stop(30 * time.Second); err != nil {
		return nil, fmt.Errorf("stop stream: %w", err)
	}
	after := r.Stats()
	res.AppliedPosition = after.Position
	res.BinlogBytes = after.BytesRead - before.BytesRead
	res.BinlogEvents = after.Events - before.Events
	res.TargetCommits = after.Commits - before.Commits
	res.PeakHeapInuse, res.PeakGoSys = peak()
	if res.VmHWMKB, err = benchenv.ProcStatus("VmHWM"); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bigtxn: applied in %.1fs; verifying\n", res.ApplySeconds)

	for _, side := range []struct {
		s          *testenv.Server
		count, sum *int64
	}{{src, &res.SourceRows, &res.SourceChecksum}, {dst, &res.TargetRows, &res.TargetChecksum}} {
		if err := side.s.Root.QueryRowContext(ctx, "SELECT COUNT(*) FROM big.t").Scan(side.count); err != nil {
			return nil, fmt.Errorf("count rows: %w", err)
		}
		var name string
		if err := side.s.Root.QueryRowContext(ctx, "CHECKSUM TABLE big.t").Scan(&name, side.sum); err != nil {
			return nil, fmt.Errorf("checksum: %w", err)
		}
	}
	return res, nil
}

// oneTransaction inserts rows rows into big.t in a single explicit
// transaction on one connection.
func oneTransaction(ctx context.Context, src *testenv.Server, rows int) error {
	conn, err := src.Root.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range []string{
		"BEGIN",
		fmt.Sprintf("INSERT INTO big.t (id, pad, n) SELECT seq, REPEAT('x', 100), seq*2 FROM mysql.seq_1_to_%d", rows),
		"COMMIT",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("source: %.60s: %w", q, err)
		}
	}
	return nil
}

// watchMemory samples the Go runtime's heap every 50 ms until the returned
// function is called, which returns the peaks (heap in use, memory obtained
// from the OS). With heapProfile set it writes a heap profile whenever the
// in-use heap grows 10% past the last one written, so the file ends up
// describing (about) the peak.
func watchMemory(heapProfile string) func() (heapInuse, sys uint64) {
	stop := make(chan struct{})
	done := make(chan struct{})
	var peakInuse, peakSys, written uint64
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.Sys > peakSys {
			peakSys = m.Sys
		}
		if m.HeapInuse > peakInuse {
			peakInuse = m.HeapInuse
		}
		if heapProfile != "" && m.HeapInuse > written+written/10 {
			written = m.HeapInuse
			if f, err := os.Create(heapProfile); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() (uint64, uint64) {
		close(stop)
		<-done
		return peakInuse, peakSys
	}
}
