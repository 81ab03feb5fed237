package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/drover-sre/drover/tests/testenv"
)

// lagResult is what the lag phase measured.
type lagResult struct {
	planned    int       // transactions the schedule asked for
	committed  int64     // transactions committed on the source
	start, end time.Time // first scheduled slot, last commit
	samples    []time.Duration
	maxLagTxns uint64        // largest Stats().LagTransactions seen
	drain      time.Duration // from the last source commit to fully applied
	txns       uint64        // source transactions Drover applied in the phase
	commits    uint64        // target commits they took
}

func (l *lagResult) rate() float64 {
	if d := l.end.Sub(l.start).Seconds(); d > 0 {
		return float64(l.committed) / d
	}
	return 0
}

// pct is the p-th percentile of the lag samples (nearest rank; 100 = max).
func (l *lagResult) pct(p float64) time.Duration {
	if len(l.samples) == 0 {
		return 0
	}
	s := slices.Clone(l.samples)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// runLag runs an open-loop load on the source: transaction k is due at
// start + k/rate, shared by cfg.LagConns connections, at most
// rate×duration transactions and at most duration+10 s. Each transaction
// updates a per-connection counter row and inserts a row whose src_us is
// the source's NOW(6) in microseconds. Every 100 ms the sampler reads the
// newest src_us visible on the target and records now − src_us: how old the
// newest source transaction the target has committed is (the time stamp is
// taken by the last statement before COMMIT, so the source's own commit
// time is included).
func runLag(ctx context.Context, src, dst *testenv.Server, r *testenv.Running, cfg config) (*lagResult, error) {
	db, err := openTCP(src, benchUser, benchPassword, cfg.LagConns)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	res := &lagResult{planned: int(cfg.LagRate * cfg.LagDuration.Seconds())}
	interval := time.Duration(float64(time.Second) / cfg.LagRate)
	res.start = time.Now()
	loadCtx, cancel := context.WithDeadline(ctx, res.start.Add(cfg.LagDuration+10*time.Second))
	defer cancel()

	var (
		next     atomic.Int64
		lastDone atomic.Int64 // unix nanoseconds of the last commit
		wg       sync.WaitGroup
		errOnce  sync.Once
		loadErr  error
	)
	payload := strings.Repeat("p", 48)
	for w := 0; w < cfg.LagConns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) { errOnce.Do(func() { loadErr = err; cancel() }) }
			conn, err := db.Conn(loadCtx)
			if err != nil {
				fail(err)
				return
			}
			defer conn.Close()
			for {
				k := next.Add(1) - 1
				if k >= int64(res.planned) {
					return
				}
				if d := time.Until(res.start.Add(time.Duration(k) * interval)); d > 0 {
					select {
					case <-loadCtx.Done():
						return
					case <-time.After(d):
					}
				}
				if loadCtx.Err() != nil {
					return
				}
				if err := lagTxn(loadCtx, conn, w, payload); err != nil {
					if loadCtx.Err() == nil {
						fail(err)
					}
					return
				}
				lastDone.Store(time.Now().UnixNano())
			}
		}()
	}

	samplerDone := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-loadDone:
				return
			case <-t.C:
			}
			now := time.Now()
			var newest int64
			if err := dst.Root.QueryRowContext(ctx, "SELECT IFNULL(MAX(src_us), 0) FROM lagdb.events").Scan(&newest); err != nil {
				continue
			}
			if newest > 0 {
				res.samples = append(res.samples, now.Sub(time.UnixMicro(newest)))
			}
			if st := r.Stats(); st.LagTransactions > res.maxLagTxns {
				res.maxLagTxns = st.LagTransactions
			}
		}
	}()
	wg.Wait()
	close(loadDone)
	<-samplerDone
	if loadErr != nil {
		return nil, fmt.Errorf("lag load: %w", loadErr)
	}
	if lastDone.Load() == 0 {
		return nil, fmt.Errorf("lag load: no transaction committed within %s", cfg.LagDuration+10*time.Second)
	}
	res.end = time.Unix(0, lastDone.Load())
	var n int64
	if err := src.Root.QueryRowContext(ctx, "SELECT COUNT(*) FROM lagdb.events").Scan(&n); err != nil {
		return nil, err
	}
	res.committed = n // every committed transaction inserted one row
	return res, nil
}

// lagTxn is one small write transaction: two rows, the time-stamped insert
// last.
func lagTxn(ctx context.Context, conn *sql.Conn, worker int, payload string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE lagdb.counters SET n=n+1 WHERE worker=?", worker); err != nil {
		_ = tx.Rollback()
		return err
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO lagdb.events (src_us, worker, payload) VALUES (CAST(UNIX_TIMESTAMP(NOW(6))*1000000 AS SIGNED), ?, ?)",
		worker, payload); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// openTCP is a pool of at most conns connections to s over TCP, with
// client-side parameter interpolation (one round trip per statement).
func openTCP(s *testenv.Server, user, password string, conns int) (*sql.DB, error) {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = user, password, "tcp", s.Addr()
	c.InterpolateParams = true
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 5*time.Second, 30*time.Second, 30*time.Second
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}
