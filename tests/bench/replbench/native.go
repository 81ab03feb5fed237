package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/drover-sre/drover/replication"
)

// nativeCatchUp restores the native replica from the snapshot taken after
// prepare (a clean-shutdown copy of its data directory: same data, same
// gtid_slave_pos), starts it, sets slave_parallel_threads, and times START
// SLAVE until @@gtid_slave_pos includes the source's position. Every native
// run thus applies the very same transactions from the very same state.
// The replica is stopped afterwards, so it takes no CPU from other runs.
func (b *bench) nativeCatchUp(ctx context.Context, threads int) error {
	name := "MariaDB native, single-threaded (slave_parallel_threads=0)"
	if threads > 0 {
		name = fmt.Sprintf("MariaDB native, slave_parallel_threads=%d (optimistic)", threads)
	}
	if err := restore(ctx, b.nat, b.natSnapshot, b.cfg.Tables); err != nil {
		return err
	}
	defer func() { _ = b.nat.Down(context.WithoutCancel(ctx)) }()
	if err := b.configureSlave(ctx, threads); err != nil {
		return err
	}
	from, err := b.nat.GTIDVar(ctx, "gtid_slave_pos")
	if err != nil {
		return err
	}
	if !from.Equal(b.res.prepared) {
		return fmt.Errorf("restored replica at gtid_slave_pos %s, want %s", from, b.res.prepared)
	}
	logf("%s: START SLAVE from %s", name, from)
	cpu := b.cpuMeter(b.nat)
	start := time.Now()
	if err := b.nat.Exec(ctx, "START SLAVE"); err != nil {
		return err
	}
	done, err := b.waitSlave(ctx, b.res.loaded, 4*time.Minute)
	if err != nil {
		return err
	}
	res := catchUp{name: name, txns: b.res.loadTxns, elapsed: done.Sub(start), cpu: cpu()}
	if err := b.nat.Exec(ctx, "STOP SLAVE"); err != nil {
		return err
	}
	if threads == 0 {
		b.res.single = append(b.res.single, res)
	} else {
		b.res.parallel = append(b.res.parallel, res)
	}
	logf("%s: %d transactions in %s = %.0f txn/s", name, res.txns, round(res.elapsed), res.tps())
	return sameTables(ctx, b.src, b.nat, b.cfg.Tables)
}

// startSlave points the native replica at the source and starts it.
func (b *bench) startSlave(ctx context.Context, threads int) error {
	if err := b.configureSlave(ctx, threads); err != nil {
		return err
	}
	return b.nat.Exec(ctx, "START SLAVE")
}

// configureSlave sets the parallel apply threads and the source connection
// (GTID mode, from gtid_slave_pos) of the stopped native replica.
func (b *bench) configureSlave(ctx context.Context, threads int) error {
	return b.nat.Exec(ctx,
		fmt.Sprintf("SET GLOBAL slave_parallel_threads=%d", threads),
		"SET GLOBAL slave_parallel_mode='optimistic'",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
			address, b.src.Config.Port, replUser, replPassword))
}

// waitSlave polls @@gtid_slave_pos every 10 ms until it includes want and
// returns when it first did; it fails early when a replication thread
// stopped with an error.
func (b *bench) waitSlave(ctx context.Context, want replication.Position, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		p, err := b.nat.GTIDVar(ctx, "gtid_slave_pos")
		if err == nil && p.Behind(want) == 0 {
			return time.Now(), nil
		}
		if i%50 == 49 || time.Now().After(deadline) {
			st, serr := slaveStatus(ctx, b.nat.Root)
			if serr != nil {
				return time.Time{}, serr
			}
			failed := (st["Slave_IO_Running"] == "No" && st["Last_IO_Error"] != "") ||
				(st["Slave_SQL_Running"] == "No" && st["Last_SQL_Error"] != "")
			if failed || time.Now().After(deadline) {
				return time.Time{}, fmt.Errorf("native replica at %s, want %s: IO %s %q, SQL %s %q", p, want,
					st["Slave_IO_Running"], st["Last_IO_Error"], st["Slave_SQL_Running"], st["Last_SQL_Error"])
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
	}
}

// slaveStatus is SHOW SLAVE STATUS as column → value.
func slaveStatus(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if !rows.Next() {
		return out, rows.Err()
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	for i, c := range cols {
		out[c] = string(vals[i])
	}
	return out, rows.Err()
}

// waitBufferPoolLoad waits for InnoDB's background buffer pool load after a
// restart, so it does not compete with the measured run.
func waitBufferPoolLoad(ctx context.Context, db *sql.DB, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var name, status string
		if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_load_status'").Scan(&name, &status); err != nil {
			return err
		}
		s := strings.ToLower(status)
		if status == "" || strings.Contains(s, "completed") || strings.Contains(s, "not started") || strings.Contains(s, "aborted") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("buffer pool load still running after %s: %s", timeout, status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
