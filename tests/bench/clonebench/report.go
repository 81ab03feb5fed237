package main

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/drover-sre/drover/tests/bench/benchenv"
)

// results is everything one run measured.
type results struct {
	started, finished time.Time
	version, revision string
	rows              int
	dataMB, indexMB   float64
	generate          time.Duration
	methods           []method
	peakRSSKB         int64
}

func (m method) rowsPerSec() float64 {
	if m.elapsed <= 0 {
		return 0
	}
	return float64(m.rows) / m.elapsed.Seconds()
}

// ratio is Drover's time over another method's.
func ratio(drover, other method) float64 {
	if other.elapsed <= 0 {
		return 0
	}
	return drover.elapsed.Seconds() / other.elapsed.Seconds()
}

// report prints the figures for a human, then the Markdown summary.
func (b *bench) report(w io.Writer) {
	r := b.res
	fmt.Fprintf(w, "\n== Copy of %d rows (~%d MB of column values; InnoDB data %.0f MB + indexes %.0f MB) into an empty target\n",
		r.rows, b.cfg.SizeMB, r.dataMB, r.indexMB)
	fmt.Fprintf(w, "%-70s %9s %9s   %s\n", "method", "time", "rows/s", "CPU s: this process / source / target / dump+client")
	for _, m := range r.methods {
		fmt.Fprintf(w, "%-70s %9s %9.0f   %.1f / %.1f / %.1f / %.1f\n", m.name, round(m.elapsed), m.rowsPerSec(),
			m.cpu.self.Seconds(), m.cpu.source.Seconds(), m.cpu.target.Seconds(), m.cpu.children.Seconds())
	}
	fmt.Fprintf(w, "Drover / mariadb-dump | mariadb: %.2fx (target <= 0.8x, goal <= 0.5x)\n", ratio(r.methods[0], r.methods[1]))
	if len(r.methods) > 2 {
		fmt.Fprintf(w, "Drover / mariadb-dump | mariadb without binlog on the target: %.2fx\n", ratio(r.methods[0], r.methods[2]))
	}
	fmt.Fprintf(w, "peak RSS of this process: %.0f MB\n\n", float64(r.peakRSSKB)/1024)
	fmt.Fprint(w, b.markdown())
}

// markdown is the summary for tests/bench/results/clone.md and README.
func (b *bench) markdown() string {
	r, c := b.res, b.cfg
	d, dump := r.methods[0], r.methods[1]
	var s strings.Builder
	fmt.Fprintf(&s, "### Clone benchmark (`make bench-clone`)\n\n")
	fmt.Fprintf(&s, "Measured on %s: %s; MariaDB %s; Drover at %s. All servers on this one machine, every copy over loopback TCP, "+
		"each server with the local provider's settings (binlog ROW, innodb_flush_log_at_trx_commit=1, sync_binlog=0, 128 MB buffer pool). "+
		"Run took %s (`-size-mb=%d`).\n\n",
		r.started.Format("2006-01-02"), benchenv.Machine(), r.version, r.revision, round(r.finished.Sub(r.started)), c.SizeMB)
	fmt.Fprintf(&s, "**Data**: %d rows, about %d MB of column values (InnoDB: %.0f MB data + %.0f MB secondary indexes) in 10 tables: "+
		"8 sysbench-shaped tables (`id` key, `k` index, `CHAR(120)`, `CHAR(60)`), wide text rows with DATETIME, DECIMAL, BIT and JSON "+
		"and a secondary index, and a table with a composite key. Generated in %s. Each method copies the source into its own empty "+
		"target after a full read of the source (warm page cache), and every target table's CHECKSUM TABLE equals the source's.\n\n",
		r.rows, c.SizeMB, r.dataMB, r.indexMB, round(r.generate))
	fmt.Fprintf(&s, "| Method | Time | Rows/s | CPU s (bench process / source / target / dump + client) |\n|---|---:|---:|---:|\n")
	for _, m := range r.methods {
		fmt.Fprintf(&s, "| %s | %s | %.0f | %.1f / %.1f / %.1f / %.1f |\n", strings.ReplaceAll(m.name, "|", "\\|"), round(m.elapsed), m.rowsPerSec(),
			m.cpu.self.Seconds(), m.cpu.source.Seconds(), m.cpu.target.Seconds(), m.cpu.children.Seconds())
	}
	fmt.Fprintf(&s, "\nDrover / `mariadb-dump --single-transaction --gtid | mariadb`: **%.2f×** the time (target ≤ 0.8×, goal ≤ 0.5×)", ratio(d, dump))
	if len(r.methods) > 2 {
		fmt.Fprintf(&s, "; against the same pipe with the loading session's `sql_log_bin=0` (no binlog on the target, as Drover loads): **%.2f×**", ratio(d, r.methods[2]))
	}
	fmt.Fprintf(&s, ". The dump was %.0f MB of SQL text.", float64(dump.bytes)/1e6)
	if cr := d.copyRes; cr != nil {
		fmt.Fprintf(&s, " Drover copied %.0f MB of column values in %d chunks (one target transaction each, %d writer sessions), read from %d snapshot session(s) (%s",
			float64(cr.Bytes)/1e6, cr.Chunks, c.Workers, cr.ReadSessions, cr.SnapshotMethod)
		if cr.SnapshotMethod == "backup-stage" {
			fmt.Fprintf(&s, ", source commits blocked %.1f ms", cr.WriteHoldMS)
		}
		fmt.Fprintf(&s, "), at GTID %s.", cr.GTID)
	}
	fmt.Fprintf(&s, " Peak RSS of the benchmark process, where Drover's copy runs: %.0f MB.\n", float64(r.peakRSSKB)/1024)
	return s.String()
}

func round(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

// revision names the Drover source measured: the git commit, and whether
// the snapshot package has uncommitted changes.
func revision() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown revision (no git checkout)"
	}
	rev := "commit " + strings.TrimSpace(string(out))
	if dirty, err := exec.Command("git", "status", "--porcelain", "--", "activities/snapshot").Output(); err == nil && len(dirty) > 0 {
		rev += " with uncommitted changes to activities/snapshot/"
	}
	return rev
}
