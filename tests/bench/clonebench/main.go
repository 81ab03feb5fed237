// Command clonebench times Drover's consistent database copy (the
// SnapshotCopy activity's engine, snapshot.Copy, run in this process)
// against `mariadb-dump --single-transaction --gtid | mariadb` on the same
// machine, in the same run, from the same source. Run it with
// `make bench-clone`; it prints the figures and a Markdown summary, which it
// also writes to -out.
//
// It starts MariaDB servers on 127.0.0.1 — a source and one empty target per
// method — generates about -size-mb MB of rows in the source (sysbench-shaped
// tables, a table of wide text rows, a table with a composite key), reads
// every table once (CHECKSUM TABLE: the reference, and a warm page cache),
// then times each method into its own target and checks every target
// table's CHECKSUM TABLE against the source. Every server is stopped by PID
// on exit.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/drover-sre/drover/tests/bench/benchenv"
)

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.SizeMB, "size-mb", cfg.SizeMB, "approximate size of the generated data, MB of column values")
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "Drover's target writer sessions")
	flag.IntVar(&cfg.ReadSessions, "read-sessions", cfg.ReadSessions, "Drover's source snapshot sessions")
	flag.IntVar(&cfg.ChunkRows, "chunk-rows", cfg.ChunkRows, "Drover's rows per chunk (0: default)")
	flag.BoolVar(&cfg.Baselines, "baselines", cfg.Baselines, "time mariadb-dump | mariadb too (false: Drover only, for tuning; no ratio, no -out)")
	flag.BoolVar(&cfg.NoBinlogBaseline, "no-binlog-baseline", cfg.NoBinlogBaseline,
		"also time mariadb-dump | mariadb with the loading session's sql_log_bin=0, as Drover loads")
	flag.StringVar(&cfg.Out, "out", cfg.Out, "where to write the Markdown summary (empty: nowhere)")
	flag.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "abort the whole run after this long")
	flag.Parse()
	if err := cfg.check(); err != nil {
		fmt.Fprintln(os.Stderr, "clonebench:", err)
		os.Exit(2)
	}
	benchenv.Run("clonebench", cfg.Timeout, func(ctx context.Context) error { return run(ctx, cfg) })
}

// config is one run's parameters.
type config struct {
	SizeMB                      int
	Workers, ReadSessions       int
	ChunkRows                   int
	Baselines, NoBinlogBaseline bool
	Out                         string
	Timeout                     time.Duration
}

func defaultConfig() config {
	return config{SizeMB: 1024, Workers: 4, ReadSessions: 1, Baselines: true, NoBinlogBaseline: true,
		Out: "tests/bench/results/clone.md", Timeout: time.Hour}
}

func (c config) check() error {
	switch {
	case c.SizeMB < 16:
		return fmt.Errorf("-size-mb must be at least 16")
	case c.Workers < 1 || c.ReadSessions < 1 || c.ChunkRows < 0:
		return fmt.Errorf("-workers and -read-sessions must be positive, -chunk-rows not negative")
	case c.Timeout <= 0:
		return fmt.Errorf("-timeout must be positive")
	}
	return nil
}
