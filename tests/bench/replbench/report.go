package main

import (
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/bench/benchenv"
)

// results is everything one run measured.
type results struct {
	started, finished time.Time
	version           string
	revision          string               // the Drover source measured
	prepared, loaded  replication.Position // source position after prepare and after the run
	loadTxns          uint64               // transactions to catch up on
	sysbenchTPS       float64
	sysbenchErrors    int
	// One entry per round.
	drover, single, parallel []catchUp
	lag                      *lagResult
	peakRSSKB                int64
}

// catchUp is one applier's catch-up on the same transactions.
type catchUp struct {
	name    string
	txns    uint64
	elapsed time.Duration
	cpu     cpuUse
	stats   *replication.Stats // Drover only
}

func (c catchUp) tps() float64 {
	if c.elapsed <= 0 {
		return 0
	}
	return float64(c.txns) / c.elapsed.Seconds()
}

// cpuPerTxn is the CPU the applier side spent per transaction: for Drover
// this process plus the target server, for native the replica server.
func (c catchUp) cpuPerTxn() time.Duration {
	if c.txns == 0 {
		return 0
	}
	return (c.cpu.self + c.cpu.replica) / time.Duration(c.txns)
}

// best is the fastest of the rounds.
func best(rounds []catchUp) catchUp {
	var b catchUp
	for _, r := range rounds {
		if b.elapsed == 0 || r.elapsed < b.elapsed {
			b = r
		}
	}
	return b
}

var (
	sysbenchTxns   = regexp.MustCompile(`transactions:\s+\d+\s+\(([\d.]+) per sec`)
	sysbenchIgnore = regexp.MustCompile(`ignored errors:\s+(\d+)`)
)

// parseSysbench reads the source's transaction rate and ignored errors
// (deadlocks sysbench retried) from sysbench run's output.
func parseSysbench(out string) (tps float64, ignored int) {
	if m := sysbenchTxns.FindStringSubmatch(out); m != nil {
		tps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := sysbenchIgnore.FindStringSubmatch(out); m != nil {
		ignored, _ = strconv.Atoi(m[1])
	}
	return tps, ignored
}

// ratio is Drover's rate over another applier's, best round against best
// round.
func ratio(drover, other []catchUp) float64 {
	o := best(other).tps()
	if o == 0 {
		return 0
	}
	return best(drover).tps() / o
}

// report prints the figures for a human.
func (b *bench) report(w io.Writer) {
	r, c := b.res, b.cfg
	fmt.Fprintf(w, "\n== Catch-up on %d source transactions (sysbench oltp_write_only, %d tables x %d rows, %d events, %d threads;\n",
		r.loadTxns, c.Tables, c.TableSize, c.Events, c.Threads)
	fmt.Fprintf(w, "   the source ran them at %.0f txn/s with %d deadlocks retried); %d round(s), each from the same restored state\n",
		r.sysbenchTPS, r.sysbenchErrors, c.Rounds)
	fmt.Fprintf(w, "%-60s %5s %9s %7s   %s\n", "applier", "round", "time", "txn/s", "CPU s: replbench / replica mariadbd / source mariadbd")
	for _, set := range [][]catchUp{r.drover, r.single, r.parallel} {
		for i, cu := range set {
			name := cu.name
			if cu.stats != nil {
				name += " (in-process)"
			}
			fmt.Fprintf(w, "%-60s %5d %9s %7.0f   %.1f / %.1f / %.1f\n", name, i+1, round(cu.elapsed), cu.tps(),
				cu.cpu.self.Seconds(), cu.cpu.replica.Seconds(), cu.cpu.source.Seconds())
		}
	}
	fmt.Fprintf(w, "Drover / native single-threaded:      %.2fx (fastest rounds)\n", ratio(r.drover, r.single))
	fmt.Fprintf(w, "Drover / native parallel (%d threads): %.2fx (fastest rounds)\n", c.ParallelThreads, ratio(r.drover, r.parallel))
	d, n1 := best(r.drover), best(r.single)
	fmt.Fprintf(w, "applier-side CPU per transaction: Drover %s (replbench %s + target mariadbd %s), native single-threaded %s\n",
		us(d.cpuPerTxn()), us(perTxn(d.cpu.self, d.txns)), us(perTxn(d.cpu.replica, d.txns)), us(n1.cpuPerTxn()))
	if st := d.stats; st != nil {
		fmt.Fprintf(w, "Drover applier groups: %d transactions in %d target commits (%.1f txns/commit; limits 64 txns, 4 MiB, 200 ms), %d rows (%s wall per row), %d binlog events, %.1f MB read\n",
			st.Transactions, st.Commits, perCommit(st.Transactions, st.Commits), st.Rows, us(perTxn(d.elapsed, st.Rows)), st.Events, float64(st.BytesRead)/1e6)
	}
	if l := r.lag; l != nil {
		fmt.Fprintf(w, "\n== Lag while the source sustains %.0f txn/s for %s (%d connections, 2 rows per transaction)\n", c.LagRate, c.LagDuration, c.LagConns)
		fmt.Fprintf(w, "achieved source rate %.0f txn/s (%d of %d planned transactions in %s)\n",
			l.rate(), l.committed, l.planned, round(l.end.Sub(l.start)))
		fmt.Fprintf(w, "lag p50 %s  p99 %s  max %s  (%d samples every 100 ms: sample time - source NOW(6) of the newest row visible on the target)\n",
			ms(l.pct(50)), ms(l.pct(99)), ms(l.pct(100)), len(l.samples))
		fmt.Fprintf(w, "Drover: %d transactions in %d target commits (%.2f txns/commit); Stats().LagTransactions max %d; all applied %s after the last source commit\n",
			l.txns, l.commits, perCommit(l.txns, l.commits), l.maxLagTxns, ms(l.drain))
	}
	fmt.Fprintf(w, "\n== Peak RSS (VmHWM) of this process: %.1f MB — Drover's applier runs in-process, together with the lag load\n", float64(r.peakRSSKB)/1024)
	fmt.Fprintf(w, "   generator, the lag sampler and the benchmark's database pools; sysbench and the servers are separate processes.\n\n")
	fmt.Fprint(w, b.markdown())
}

// markdown is the summary block for README.
func (b *bench) markdown() string {
	r, c := b.res, b.cfg
	var s strings.Builder
	fmt.Fprintf(&s, "### Replication benchmark (`make bench-replication`)\n\n")
	fmt.Fprintf(&s, "Measured on %s: %s; MariaDB %s, sysbench 1.0.20; Drover at %s. All servers on this one machine over loopback, "+
		"each with the local provider's settings (binlog ROW, log_slave_updates, innodb_flush_log_at_trx_commit=1, "+
		"sync_binlog=0, 128 MB buffer pool). Run took %s.\n\n",
		r.started.Format("2006-01-02"), benchenv.Machine(), r.version, r.revision, round(r.finished.Sub(r.started)))
	fmt.Fprintf(&s, "**Catch-up** on %d source transactions (sysbench `oltp_write_only`, %d tables × %d rows, %d events on %d threads, "+
		"4 row changes per transaction; the source committed them at %.0f txn/s) written while the appliers were stopped. "+
		"Each applier starts from the same restored copy of its replica (taken after prepare, buffer pool warmed); "+
		"fastest of %d round(s):\n\n",
		r.loadTxns, c.Tables, c.TableSize, c.Events, c.Threads, r.sysbenchTPS, c.Rounds)
	fmt.Fprintf(&s, "| Applier | Catch-up | Transactions/s | Applier-side CPU per transaction |\n|---|---:|---:|---:|\n")
	d := best(r.drover)
	fmt.Fprintf(&s, "| Drover (in-process applier) | %s | %.0f | %s (Go %s + target server %s) |\n", round(d.elapsed), d.tps(),
		us(d.cpuPerTxn()), us(perTxn(d.cpu.self, d.txns)), us(perTxn(d.cpu.replica, d.txns)))
	for _, set := range [][]catchUp{r.single, r.parallel} {
		n := best(set)
		fmt.Fprintf(&s, "| %s | %s | %.0f | %s |\n", n.name, round(n.elapsed), n.tps(), us(n.cpuPerTxn()))
	}
	fmt.Fprintf(&s, "\nDrover / native single-threaded: **%.2f×**; Drover / native parallel (%d threads, optimistic): **%.2f×**.",
		ratio(r.drover, r.single), c.ParallelThreads, ratio(r.drover, r.parallel))
	if st := d.stats; st != nil {
		fmt.Fprintf(&s, " Drover grouped %d transactions into %d target commits (%.1f per commit); %d rows, %s of catch-up per row.",
			st.Transactions, st.Commits, perCommit(st.Transactions, st.Commits), st.Rows, us(perTxn(d.elapsed, st.Rows)))
	}
	if c.Rounds > 1 {
		var all []string
		for _, set := range [][]catchUp{r.drover, r.single, r.parallel} {
			var rs []string
			for _, cu := range set {
				rs = append(rs, fmt.Sprintf("%.0f", cu.tps()))
			}
			all = append(all, strings.Join(rs, "/"))
		}
		fmt.Fprintf(&s, " Every round (txn/s): Drover %s, native single %s, native parallel %s.", all[0], all[1], all[2])
	}
	fmt.Fprintf(&s, "\n\n")
	if l := r.lag; l != nil {
		fmt.Fprintf(&s, "**Lag** with the source sustaining %.0f txn/s (target %.0f, %d connections, 2 rows per transaction) for %s while Drover streams: "+
			"p50 **%s**, p99 **%s**, max %s — sampled every 100 ms as the sample time minus the source's `NOW(6)` of the newest row visible on the target "+
			"(%d samples); Drover used %.2f transactions per target commit.\n\n",
			l.rate(), c.LagRate, c.LagConns, round(l.end.Sub(l.start)), ms(l.pct(50)), ms(l.pct(99)), ms(l.pct(100)), len(l.samples), perCommit(l.txns, l.commits))
	}
	fmt.Fprintf(&s, "**Peak RSS** of the benchmark process (Drover's applier runs in it, with the lag load generator): %.0f MB.\n", float64(r.peakRSSKB)/1024)
	return s.String()
}

func perCommit(txns, commits uint64) float64 {
	if commits == 0 {
		return 0
	}
	return float64(txns) / float64(commits)
}

func perTxn(d time.Duration, n uint64) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

func round(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

// revision names the Drover source being measured: the git commit, and
// whether the replication library has uncommitted changes.
func revision() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown revision (no git checkout)"
	}
	rev := "commit " + strings.TrimSpace(string(out))
	if dirty, err := exec.Command("git", "status", "--porcelain", "--", "replication").Output(); err == nil && len(dirty) > 0 {
		rev += " with uncommitted changes to replication/"
	}
	return rev
}
