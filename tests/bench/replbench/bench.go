package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/bench/benchenv"
	"github.com/drover-sre/drover/tests/testenv"
)

// The servers: server ids are also their gtid_domain_ids, so every
// source transaction is in domain sourceID.
const (
	address         = "127.0.0.1"
	sourceID        = 1
	targetID        = 2 // Drover's target
	nativeID        = 3 // the native replica
	droverReplicaID = 9001
	streamName      = "bench"

	benchUser, benchPassword = "bench", "bench-pw" // sysbench and the lag load generator
	replUser, replPassword   = "repl", "repl-pw"   // the native replica's account
)

// bench holds the servers and what has been measured so far.
type bench struct {
	cfg      config
	sysbench string
	src      *testenv.Server
	dst      *testenv.Server // Drover's target
	nat      *testenv.Server // native replica
	// Copies of the target's and the native replica's data directories
	// taken after prepare (clean shutdown): every catch-up round starts
	// from one of them.
	dstSnapshot, natSnapshot string
	res                      results
}

func run(ctx context.Context, cfg config) error {
	sb, err := exec.LookPath("sysbench")
	if err != nil {
		return fmt.Errorf("sysbench not found: install the Debian package sysbench (make deps): %w", err)
	}
	b := &bench{cfg: cfg, sysbench: sb}
	b.res.started = time.Now()
	defer b.close()
	logf("starting three MariaDB servers on %s (source, Drover target, native replica)", address)
	if b.src, err = testenv.StartServer(ctx, address, sourceID); err != nil {
		return err
	}
	if b.dst, err = testenv.StartServer(ctx, address, targetID); err != nil {
		return err
	}
	if b.nat, err = testenv.StartServer(ctx, address, nativeID); err != nil {
		return err
	}
	b.res.version, b.res.revision = b.src.Version(ctx), revision()
	type step struct {
		name string
		f    func(context.Context) error
	}
	steps := []step{{"accounts", b.accounts}, {"prepare", b.prepare}, {"sysbench run", b.load}}
	for i := 1; i <= cfg.Rounds; i++ {
		steps = append(steps,
			step{fmt.Sprintf("round %d: Drover catch-up", i), b.droverCatchUp},
			step{fmt.Sprintf("round %d: native catch-up, single-threaded", i),
				func(ctx context.Context) error { return b.nativeCatchUp(ctx, 0) }},
			step{fmt.Sprintf("round %d: native catch-up, parallel", i),
				func(ctx context.Context) error { return b.nativeCatchUp(ctx, b.cfg.ParallelThreads) }})
	}
	steps = append(steps, step{"lag", b.lag})
	for _, st := range steps {
		if err := st.f(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	if b.res.peakRSSKB, err = benchenv.ProcStatus("VmHWM"); err != nil {
		return err
	}
	b.res.finished = time.Now()
	b.report(os.Stdout)
	return benchenv.WriteSummary(cfg.Out, b.markdown())
}

// close stops every server this run started (by PID) and removes their
// directories and the snapshots.
func (b *bench) close() {
	for _, s := range []*testenv.Server{b.src, b.dst, b.nat} {
		if s != nil {
			s.Close()
		}
	}
	for _, d := range []string{b.dstSnapshot, b.natSnapshot} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
}

// accounts: Drover's streaming account, a sysbench account and a native
// replication account on the source; Drover's applier and checkpoint table
// on the target. The sbtest schema is created on the source and replicates.
func (b *bench) accounts(ctx context.Context) error {
	if err := b.src.MakeSource(ctx,
		local.User{Name: benchUser, Password: benchPassword,
			Grants: []string{"GRANT ALL PRIVILEGES ON sbtest.* TO %s", "GRANT ALL PRIVILEGES ON lagdb.* TO %s"}},
		local.User{Name: replUser, Password: replPassword, Grants: []string{"GRANT REPLICATION SLAVE ON *.* TO %s"}},
	); err != nil {
		return err
	}
	if err := b.dst.MakeTarget(ctx); err != nil {
		return err
	}
	return b.src.Exec(ctx, "CREATE DATABASE sbtest")
}

// prepare loads the sysbench tables with both appliers running, waits until
// both have everything, stops both, and keeps a cold copy of the target's
// and the native replica's data directories (after a clean shutdown), so
// that every catch-up run starts from the same state.
func (b *bench) prepare(ctx context.Context) error {
	s, err := replication.New(b.streamConfig())
	if err != nil {
		return err
	}
	r := testenv.RunStream(s)
	defer func() { _ = r.Stop(30 * time.Second) }()
	if err := b.startSlave(ctx, 0); err != nil {
		return err
	}
	logf("sysbench oltp_write_only prepare: %d tables x %d rows", b.cfg.Tables, b.cfg.TableSize)
	if _, err := b.runSysbench(ctx, 3*time.Minute, "prepare"); err != nil {
		return err
	}
	pos, err := b.src.Position(ctx)
	if err != nil {
		return err
	}
	if _, err := r.WaitApplied(ctx, pos, 50*time.Millisecond, 2*time.Minute); err != nil {
		return fmt.Errorf("drover: %w", err)
	}
	if _, err := b.waitSlave(ctx, pos, 2*time.Minute); err != nil {
		return fmt.Errorf("native: %w", err)
	}
	b.res.prepared = pos
	logf("both replicas at %s; stopping both appliers", pos)
	if err := r.Stop(30 * time.Second); err != nil {
		return fmt.Errorf("stop drover: %w", err)
	}
	// RESET SLAVE ALL forgets the connection but keeps gtid_slave_pos, and
	// with no master.info the restored copy does not start replicating by
	// itself.
	if err := b.nat.Exec(ctx, "STOP SLAVE", "RESET SLAVE ALL"); err != nil {
		return err
	}
	if b.dstSnapshot, err = snapshot(ctx, b.dst); err != nil {
		return err
	}
	b.natSnapshot, err = snapshot(ctx, b.nat)
	return err
}

// snapshot stops s cleanly and copies its data directory next to it.
func snapshot(ctx context.Context, s *testenv.Server) (string, error) {
	if err := s.Down(ctx); err != nil {
		return "", err
	}
	dir := s.Dir() + ".snapshot"
	if err := os.CopyFS(dir, os.DirFS(s.DataDir())); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", s.Config.Name, err)
	}
	return dir, nil
}

// restore stops s, replaces its data directory with the snapshot, starts
// it, waits for InnoDB's buffer pool load and warms the sysbench tables.
func restore(ctx context.Context, s *testenv.Server, snapshot string, tables int) error {
	if err := s.Down(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(s.DataDir()); err != nil {
		return err
	}
	if err := os.CopyFS(s.DataDir(), os.DirFS(snapshot)); err != nil {
		return fmt.Errorf("restore %s: %w", s.Config.Name, err)
	}
	if err := s.Up(ctx); err != nil {
		return err
	}
	if err := waitBufferPoolLoad(ctx, s.Root, 30*time.Second); err != nil {
		return err
	}
	return warmUp(ctx, s, tables)
}

// load runs the measured sysbench events on the source while no applier
// runs.
func (b *bench) load(ctx context.Context) error {
	before, err := b.src.Position(ctx)
	if err != nil {
		return err
	}
	logf("sysbench oltp_write_only run: %d events, %d threads, appliers stopped", b.cfg.Events, b.cfg.Threads)
	out, err := b.runSysbench(ctx, 4*time.Minute, "run")
	if err != nil {
		return err
	}
	after, err := b.src.Position(ctx)
	if err != nil {
		return err
	}
	b.res.loaded = after
	b.res.loadTxns = before.Behind(after)
	b.res.sysbenchTPS, b.res.sysbenchErrors = parseSysbench(out)
	logf("source at %s: %d transactions to catch up on (sysbench %.0f txn/s at the source, %d ignored errors)",
		after, b.res.loadTxns, b.res.sysbenchTPS, b.res.sysbenchErrors)
	return nil
}

func (b *bench) runSysbench(ctx context.Context, timeout time.Duration, command string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{"oltp_write_only",
		"--mysql-host=" + address, fmt.Sprintf("--mysql-port=%d", b.src.Config.Port),
		"--mysql-user=" + benchUser, "--mysql-password=" + benchPassword, "--mysql-db=sbtest",
		fmt.Sprintf("--tables=%d", b.cfg.Tables), fmt.Sprintf("--table-size=%d", b.cfg.TableSize)}
	if command == "run" {
		args = append(args, fmt.Sprintf("--events=%d", b.cfg.Events), fmt.Sprintf("--threads=%d", b.cfg.Threads), "--time=0")
	}
	cmd := exec.CommandContext(ctx, b.sysbench, append(args, command)...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sysbench %s: %w\n%s", command, err, tail(string(out), 3000))
	}
	return string(out), nil
}

// droverCatchUp restores the target from its snapshot, starts a Streamer
// (which resumes from the checkpoint written at the end of prepare) and
// times it until its applied position equals the source's gtid_binlog_pos.
// The target stays up afterwards: the lag phase continues from it.
func (b *bench) droverCatchUp(ctx context.Context) error {
	if err := restore(ctx, b.dst, b.dstSnapshot, b.cfg.Tables); err != nil {
		return err
	}
	s, err := replication.New(b.streamConfig())
	if err != nil {
		return err
	}
	if b.cfg.CPUProfile != "" && len(b.res.drover) == 0 { // first round only
		f, err := os.Create(b.cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	logf("Drover catch-up from its checkpoint (round %d)", len(b.res.drover)+1)
	cpu := b.cpuMeter(b.dst)
	start := time.Now()
	r := testenv.RunStream(s)
	defer func() { _ = r.Stop(30 * time.Second) }()
	done, err := r.WaitApplied(ctx, b.res.loaded, 10*time.Millisecond, 4*time.Minute)
	if err != nil {
		return err
	}
	res := catchUp{name: "Drover", txns: b.res.loadTxns, elapsed: done.Sub(start), cpu: cpu()}
	pprof.StopCPUProfile() // no-op unless profiling
	if err := r.Stop(30 * time.Second); err != nil {
		return err
	}
	st := s.Stats()
	res.stats = &st
	b.res.drover = append(b.res.drover, res)
	logf("Drover: %d transactions in %s = %.0f txn/s (%d target commits)", res.txns, round(res.elapsed), res.tps(), st.Commits)
	return sameTables(ctx, b.src, b.dst, b.cfg.Tables)
}

// lag streams while a rate-limited load runs on the source.
func (b *bench) lag(ctx context.Context) error {
	if err := b.src.Exec(ctx, "CREATE DATABASE lagdb",
		`CREATE TABLE lagdb.events (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, src_us BIGINT NOT NULL,
			worker INT NOT NULL, payload VARCHAR(64) NOT NULL, KEY (src_us)) ENGINE=InnoDB`,
		"CREATE TABLE lagdb.counters (worker INT NOT NULL PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB"); err != nil {
		return err
	}
	for w := 0; w < b.cfg.LagConns; w++ {
		if err := b.src.Exec(ctx, fmt.Sprintf("INSERT INTO lagdb.counters VALUES (%d, 0)", w)); err != nil {
			return err
		}
	}
	s, err := replication.New(b.streamConfig())
	if err != nil {
		return err
	}
	r := testenv.RunStream(s)
	defer func() { _ = r.Stop(30 * time.Second) }()
	pos, err := b.src.Position(ctx)
	if err != nil {
		return err
	}
	if _, err := r.WaitApplied(ctx, pos, 20*time.Millisecond, time.Minute); err != nil {
		return err
	}
	before := s.Stats()
	logf("lag: %.0f txn/s for %s on %d source connections while Drover streams", b.cfg.LagRate, b.cfg.LagDuration, b.cfg.LagConns)
	res, err := runLag(ctx, b.src, b.dst, r, b.cfg)
	if err != nil {
		return err
	}
	pos, err = b.src.Position(ctx)
	if err != nil {
		return err
	}
	drained, err := r.WaitApplied(ctx, pos, 10*time.Millisecond, time.Minute)
	if err != nil {
		return err
	}
	res.drain = drained.Sub(res.end)
	if err := r.Stop(30 * time.Second); err != nil {
		return err
	}
	after := s.Stats()
	res.commits = after.Commits - before.Commits
	res.txns = after.Transactions - before.Transactions
	b.res.lag = res
	logf("lag: achieved %.0f txn/s; lag p50 %s p99 %s max %s", res.rate(), ms(res.pct(50)), ms(res.pct(99)), ms(res.pct(100)))
	return sameTablesIn(ctx, b.src, b.dst, "lagdb.events", "lagdb.counters")
}

func (b *bench) streamConfig() replication.Config {
	return testenv.StreamConfig(streamName, b.src, b.dst, droverReplicaID)
}

// warmUp reads every sysbench table through its primary key and its
// secondary index (sysbench names it k_N), so a measured run does not start with a cold buffer
// pool (the servers have 128 MB; the tables need ~10 MB).
func warmUp(ctx context.Context, s *testenv.Server, tables int) error {
	for i := 1; i <= tables; i++ {
		var n, sum sql.NullInt64
		q := fmt.Sprintf("SELECT COUNT(*), SUM(LENGTH(c)+LENGTH(pad)) FROM sbtest.sbtest%d", i)
		if err := s.Root.QueryRowContext(ctx, q).Scan(&n, &sum); err != nil {
			return fmt.Errorf("warm up %s: %w", s.Config.Name, err)
		}
		q = fmt.Sprintf("SELECT SUM(k) FROM sbtest.sbtest%d FORCE INDEX (k_%d)", i, i)
		if err := s.Root.QueryRowContext(ctx, q).Scan(&sum); err != nil {
			return fmt.Errorf("warm up %s: %w", s.Config.Name, err)
		}
	}
	return nil
}

// sameTables compares CHECKSUM TABLE of every sysbench table on both
// servers.
func sameTables(ctx context.Context, a, b *testenv.Server, tables int) error {
	names := make([]string, tables)
	for i := range names {
		names[i] = fmt.Sprintf("sbtest.sbtest%d", i+1)
	}
	return sameTablesIn(ctx, a, b, names...)
}

func sameTablesIn(ctx context.Context, a, b *testenv.Server, tables ...string) error {
	q := "CHECKSUM TABLE " + strings.Join(tables, ", ")
	sa, err := checksums(ctx, a, q)
	if err != nil {
		return err
	}
	sb, err := checksums(ctx, b, q)
	if err != nil {
		return err
	}
	var diff []string
	for t, v := range sa {
		if sb[t] != v {
			diff = append(diff, fmt.Sprintf("%s: %s on %s, %s on %s", t, v, a.Config.Name, sb[t], b.Config.Name))
		}
	}
	if len(diff) > 0 {
		return errors.New("replica differs from the source: " + strings.Join(diff, "; "))
	}
	return nil
}

func checksums(ctx context.Context, s *testenv.Server, q string) (map[string]string, error) {
	rows, err := s.Root.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Config.Name, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var t, v string
		if err := rows.Scan(&t, &v); err != nil {
			return nil, err
		}
		out[t] = v
	}
	return out, rows.Err()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s replbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
