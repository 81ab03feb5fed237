// Command replbench compares Drover's binlog applier with MariaDB's native
// replication on this machine and measures Drover's replication lag under a
// steady write load. Run it with `make bench-replication`; it prints the
// figures and a Markdown summary, which it also writes to -out.
//
// It starts three MariaDB servers on 127.0.0.1 (a source, a target for
// Drover, a native replica), loads sysbench oltp_write_only on the source,
// stops both appliers, runs a fixed number of sysbench events on the source,
// and times how long each applier takes to catch up: Drover (in this
// process), then the native replica single-threaded and with 4 parallel
// workers, each from the same restored copy of its replica, in -rounds
// rounds (the fastest round of each is reported). It then drives
// ~1,000 txn/s at the source for ~30 s while Drover streams and samples the
// lag every 100 ms. Every server is stopped by PID on exit.
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
	flag.IntVar(&cfg.Tables, "tables", cfg.Tables, "sysbench tables")
	flag.IntVar(&cfg.TableSize, "table-size", cfg.TableSize, "rows per sysbench table")
	flag.IntVar(&cfg.Events, "events", cfg.Events, "sysbench oltp_write_only events (transactions) to catch up on")
	flag.IntVar(&cfg.Threads, "threads", cfg.Threads, "sysbench threads")
	flag.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "catch-up rounds per applier (each from the same restored state); the fastest is reported")
	flag.IntVar(&cfg.ParallelThreads, "parallel-threads", cfg.ParallelThreads, "slave_parallel_threads of the parallel native run")
	flag.Float64Var(&cfg.LagRate, "lag-rate", cfg.LagRate, "source transactions per second during the lag phase")
	flag.DurationVar(&cfg.LagDuration, "lag-duration", cfg.LagDuration, "length of the lag phase")
	flag.IntVar(&cfg.LagConns, "lag-conns", cfg.LagConns, "source connections of the lag load generator")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of this process during Drover's catch-up to this file")
	flag.StringVar(&cfg.Out, "out", cfg.Out, "where to write the Markdown summary (empty: nowhere)")
	flag.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "abort the whole run after this long")
	flag.Parse()
	if err := cfg.check(); err != nil {
		fmt.Fprintln(os.Stderr, "replbench:", err)
		os.Exit(2)
	}

	benchenv.Run("replbench", cfg.Timeout, func(ctx context.Context) error { return run(ctx, cfg) })
}

// config is one benchmark run's parameters.
type config struct {
	Tables, TableSize, Events, Threads int
	Rounds, ParallelThreads            int
	LagRate                            float64
	LagDuration                        time.Duration
	LagConns                           int
	CPUProfile, Out                    string
	Timeout                            time.Duration
}

func defaultConfig() config {
	return config{Tables: 4, TableSize: 10_000, Events: 20_000, Threads: 4, Rounds: 2, ParallelThreads: 4,
		LagRate: 1000, LagDuration: 30 * time.Second, LagConns: 4,
		Out: "tests/bench/results/replication.md", Timeout: 8 * time.Minute}
}

func (c config) check() error {
	switch {
	case c.Tables < 1 || c.TableSize < 1 || c.Events < 1 || c.Threads < 1:
		return fmt.Errorf("-tables, -table-size, -events and -threads must be positive")
	case c.ParallelThreads < 1 || c.Rounds < 1:
		return fmt.Errorf("-parallel-threads and -rounds must be positive")
	case c.LagRate <= 0 || c.LagDuration <= 0 || c.LagConns < 1:
		return fmt.Errorf("-lag-rate, -lag-duration and -lag-conns must be positive")
	case c.Timeout <= 0:
		return fmt.Errorf("-timeout must be positive")
	}
	return nil
}
