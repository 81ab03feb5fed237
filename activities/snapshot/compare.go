package snapshot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drover-sre/drover/activities/internal/cloud"
	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
)

// CompareInput names the source, the target fed from it by a Drover stream,
// and that stream (whose checkpoint says exactly which source transactions
// a target snapshot holds).
type CompareInput struct {
	Source recipe.Site `json:"source"`
	Target recipe.Site `json:"target"`
	Stream string      `json:"stream"`
	// Schemas to compare; empty: every non-system schema of the source.
	Schemas []string `json:"schemas,omitempty"`
	// Workers is the number of session pairs comparing tables in parallel
	// (default 2).
	Workers int `json:"workers,omitempty"`
	// WaitTimeout bounds how long the target may take to apply the
	// source's position (default 30s).
	WaitTimeout recipe.Duration `json:"wait_timeout,omitempty"`
	// Method chooses how both sides get to one position: "auto" (default:
	// "no-lock" for a fifth of WaitTimeout, then "backup-stage"),
	// "no-lock" (never block source commits; fails, retryably, if the
	// stream never rests at a source snapshot's position within
	// WaitTimeout) or "backup-stage" (block source commits at once, after
	// the target has caught up).
	Method string `json:"method,omitempty"`
}

// TableComparison is one table's outcome.
type TableComparison struct {
	Table          string `json:"table"`
	Equal          bool   `json:"equal"`
	SourceChecksum int64  `json:"source_checksum"`
	TargetChecksum int64  `json:"target_checksum"`
	// Rows are counted only when the checksums differ.
	SourceRows int64  `json:"source_rows,omitempty"`
	TargetRows int64  `json:"target_rows,omitempty"`
	Problem    string `json:"problem,omitempty"`
}

// CompareResult says whether the two databases were equal at GTID.
type CompareResult struct {
	Equal bool `json:"equal"`
	// GTID is the source position both sides were read at.
	GTID string `json:"gtid"`
	// Method is "no-lock" (the stream rested at a source snapshot's
	// position) or "backup-stage" (source commits blocked for WriteHoldMS
	// while the target caught up and the snapshots opened).
	Method          string            `json:"method"`
	WriteHoldMS     float64           `json:"write_hold_ms"`
	Tables          []TableComparison `json:"tables"`
	Differences     []string          `json:"differences,omitempty"`
	DurationSeconds float64           `json:"duration_seconds"`
}

// Compare is SnapshotCompare without Temporal.
func Compare(ctx context.Context, in CompareInput, opt Options) (CompareResult, error) {
	start := time.Now()
	if in.Stream == "" || in.Source.DB.User == "" || in.Target.DB.User == "" {
		return CompareResult{}, failf(ErrConfig, "snapshot compare input: stream, source.db.user and target.db.user are required")
	}
	switch in.Method {
	case "":
		in.Method = "auto"
	case "auto", "no-lock", "backup-stage":
	default:
		return CompareResult{}, failf(ErrConfig, "snapshot compare input: method %q: want auto, no-lock or backup-stage", in.Method)
	}
	if in.Workers <= 0 {
		in.Workers = 2
	}
	in.Workers = min(in.Workers, 16)
	wait := in.WaitTimeout.D()
	if wait <= 0 {
		wait = DefaultCompareWait
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, err := openSite(in.Source, opt.DialTimeout, in.Workers+1)
	if err != nil {
		return CompareResult{}, fail("source "+in.Source.Name, err)
	}
	defer src.Close()
	dst, err := openSite(in.Target, opt.DialTimeout, in.Workers+1)
	if err != nil {
		return CompareResult{}, fail("target "+in.Target.Name, err)
	}
	defer dst.Close()
	srcName := fmt.Sprintf("source %s (%s)", in.Source.Name, sitedb.Addr(in.Source))
	dstName := fmt.Sprintf("target %s (%s)", in.Target.Name, sitedb.Addr(in.Target))

	// Heartbeat on a timer: a wait for the target or the checksum of one
	// large table can outlast a heartbeat timeout.
	var (
		mu   sync.Mutex
		prog = Progress{Phase: "compare-wait"}
	)
	if opt.Progress != nil {
		every := opt.Heartbeat
		if every <= 0 {
			every = DefaultHeartbeat
		}
		report := func() {
			mu.Lock()
			p := prog
			p.Current = slices.Clone(prog.Current)
			mu.Unlock()
			p.Elapsed = time.Since(start)
			opt.Progress(p)
		}
		report()
		defer cloud.Every(ctx, every, report)()
	}
	sv, dv, res, err := commonPoint(ctx, in, src, dst, wait, opt.DialTimeout, log)
	if err != nil {
		return res, err
	}
	defer sv.close()
	defer dv.close()
	log.Info("comparing at one position", "gtid", res.GTID, "method", res.Method, "write_hold_ms", res.WriteHoldMS)

	scat, err := readCatalog(ctx, sv.conns[0], in.Schemas)
	if err != nil {
		return res, fail(srcName, err)
	}
	names := map[string]bool{}
	for _, s := range scat.schemas {
		names[s.Name] = true
	}
	res.Differences = append(res.Differences, compareObjects(ctx, sv.conns[0], dv.conns[0], scat)...)
	targetDefs := map[string]string{}
	for s := range names {
		defs, err := targetTables(ctx, dv.conns[0], s)
		if err != nil {
			return res, fail("list tables on "+dstName, err)
		}
		for n, d := range defs {
			targetDefs[s+"."+n] = d
		}
	}
	for _, t := range scat.tables {
		delete(targetDefs, t.id())
	}
	for extra := range targetDefs {
		res.Differences = append(res.Differences, "table "+extra+" exists only on the target")
	}

	tables := scat.tables
	sort.SliceStable(tables, func(i, j int) bool { return tables[i].DataLength > tables[j].DataLength })
	out := make([]TableComparison, len(tables))
	next := make(chan int, len(tables))
	for i := range tables {
		next <- i
	}
	close(next)
	mu.Lock()
	prog = Progress{Phase: "compare", GTID: res.GTID, TablesTotal: len(tables)}
	mu.Unlock()
	var (
		wg       sync.WaitGroup
		firstErr error
	)
	for w := 0; w < len(sv.conns); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				mu.Lock()
				prog.Current = append(prog.Current, tables[i].id())
				mu.Unlock()
				tc, err := compareTable(ctx, sv.conns[w], dv.conns[w], tables[i])
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				out[i] = tc
				prog.TablesDone++
				prog.Current = slices.DeleteFunc(prog.Current, func(s string) bool { return s == tables[i].id() })
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	res.Tables = out
	for _, tc := range out {
		if !tc.Equal {
			line := tc.Table + ": " + tc.Problem
			if tc.Problem == "" {
				line = fmt.Sprintf("%s: CHECKSUM TABLE %d on the source, %d on the target (%d and %d rows)",
					tc.Table, tc.SourceChecksum, tc.TargetChecksum, tc.SourceRows, tc.TargetRows)
			}
			res.Differences = append(res.Differences, line)
		}
	}
	sort.Strings(res.Differences)
	res.Equal = len(res.Differences) == 0
	res.DurationSeconds = time.Since(start).Seconds()
	return res, nil
}

// compareTable compares one table's definition and CHECKSUM TABLE on both
// snapshots (CHECKSUM TABLE reads the transaction's snapshot; checked on
// 10.11).
func compareTable(ctx context.Context, s, d *sql.Conn, t *table) (TableComparison, error) {
	tc := TableComparison{Table: t.id()}
	var name, def string
	err := d.QueryRowContext(ctx, "SHOW CREATE TABLE "+t.full()).Scan(&name, &def)
	if sitedb.ErrNumber(err) == 1146 {
		tc.Problem = "missing on the target"
		return tc, nil
	}
	if err != nil {
		return tc, fail("read the definition of "+t.id()+" on the target", err)
	}
	if !sameDefinition(def, t.Create) {
		tc.Problem = "definitions differ"
	}
	var sc, dc sql.NullInt64
	var derr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var n string
		derr = d.QueryRowContext(ctx, "CHECKSUM TABLE "+t.full()).Scan(&n, &dc)
	}()
	serr := s.QueryRowContext(ctx, "CHECKSUM TABLE "+t.full()).Scan(&name, &sc)
	wg.Wait()
	if serr != nil {
		return tc, fail("checksum "+t.id()+" on the source", serr)
	}
	if derr != nil {
		return tc, fail("checksum "+t.id()+" on the target", derr)
	}
	tc.SourceChecksum, tc.TargetChecksum = sc.Int64, dc.Int64
	tc.Equal = tc.Problem == "" && sc == dc
	if sc != dc {
		if err := s.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.full()).Scan(&tc.SourceRows); err != nil {
			return tc, fail("count "+t.id()+" on the source", err)
		}
		if err := d.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.full()).Scan(&tc.TargetRows); err != nil {
			return tc, fail("count "+t.id()+" on the target", err)
		}
	}
	return tc, nil
}

// compareObjects compares the names of views, triggers and routines.
func compareObjects(ctx context.Context, s, d *sql.Conn, cat *catalog) []string {
	var diffs []string
	for _, q := range []struct{ kind, query string }{
		{"view", "SELECT CONCAT(TABLE_SCHEMA,'.',TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN (%s)"},
		{"trigger", "SELECT CONCAT(TRIGGER_SCHEMA,'.',TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN (%s)"},
		{"routine", "SELECT CONCAT(ROUTINE_SCHEMA,'.',ROUTINE_NAME,' ',ROUTINE_TYPE) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN (%s)"},
	} {
		if len(cat.schemas) == 0 {
			break
		}
		var in []string
		for _, sc := range cat.schemas {
			in = append(in, string(appendQuoted(nil, []byte(sc.Name))))
		}
		query := fmt.Sprintf(q.query, strings.Join(in, ","))
		a, err1 := queryStrings(ctx, s, query)
		b, err2 := queryStrings(ctx, d, query)
		if err := errors.Join(err1, err2); err != nil {
			diffs = append(diffs, q.kind+"s: could not be listed: "+err.Error())
			continue
		}
		onTarget := map[string]bool{}
		for _, x := range b {
			onTarget[x] = true
		}
		for _, x := range a {
			if !onTarget[x] {
				diffs = append(diffs, q.kind+" "+x+" is missing on the target")
			}
			delete(onTarget, x)
		}
		for x := range onTarget {
			diffs = append(diffs, q.kind+" "+x+" exists only on the target")
		}
	}
	return diffs
}

// samePos reports whether a and b hold the same GTIDs in every domain of
// either.
func samePos(a, b replication.Position) bool { return a.Behind(b) == 0 && b.Behind(a) == 0 }

// targetPoint reads the stream's checkpoint inside each target snapshot
// and the target's binlog position after them.
func targetPoint(ctx context.Context, dv *readView, stream string) ([]replication.Position, replication.Position, error) {
	cps := make([]replication.Position, len(dv.conns))
	for i, c := range dv.conns {
		cp, _, err := replication.ReadCheckpoint(ctx, c, stream)
		if err != nil {
			return nil, nil, err
		}
		cps[i] = cp.Position
	}
	var raw string
	if err := dv.conns[0].QueryRowContext(ctx, "SELECT @@global.gtid_binlog_pos").Scan(&raw); err != nil {
		return nil, nil, err
	}
	bp, err := replication.ParsePosition(raw)
	return cps, bp, err
}

// commonPoint opens source and target snapshot sessions at one source
// position (see the package comment).
func commonPoint(ctx context.Context, in CompareInput, src, dst *sql.DB, wait, dial time.Duration, log Logger) (*readView, *readView, CompareResult, error) {
	var res CompareResult
	deadline := time.Now().Add(wait)
	newSrcDB := func() (*sql.DB, error) { return openSite(in.Source, dial, 1) }
	// Without a lock: the stream must be seen resting at a source snapshot's
	// position. Tried for at most a fifth of the wait when holding writes is
	// allowed.
	noLock := wait / 5
	switch in.Method {
	case "no-lock":
		noLock = wait
	case "backup-stage":
		noLock = 0
	}
	noLockEnd := time.Now().Add(noLock)
	for time.Now().Before(noLockEnd) {
		sv, err := openReadView(ctx, src, newSrcDB, in.Workers, 3, log)
		if err != nil {
			return nil, nil, res, fail("snapshot the source", err)
		}
		want, err := replication.ParsePosition(sv.point.GTID)
		if err != nil {
			sv.close()
			return nil, nil, res, failf(ErrConfig, "source position %q: %v", sv.point.GTID, err)
		}
		until := time.Now().Add(time.Second)
		if until.After(noLockEnd) {
			until = noLockEnd
		}
		dv, state, err := waitTarget(ctx, dst, in, want, until, false)
		if err != nil {
			sv.close()
			return nil, nil, res, err
		}
		if state == "equal" {
			res.GTID, res.Method = sv.point.GTID, "no-lock"
			return sv, dv, res, nil
		}
		sv.close()
	}
	if in.Method == "no-lock" {
		return nil, nil, res, fail("compare", fmt.Errorf("the target never rested at a source snapshot's position within %s (method no-lock)", wait))
	}
	// Let the target catch up without any lock first, so that the hold
	// below lasts only the stream's lag at that moment.
	if err := waitCaughtUp(ctx, src, dst, in.Stream, deadline); err != nil {
		return nil, nil, res, err
	}
	// With a lock: block source commits until the target has applied the
	// source's position and its snapshots are open.
	sv, dv, hold, gtid, err := underBackupLock(ctx, in, src, dst, newSrcDB, deadline, log)
	if err != nil {
		return nil, nil, res, err
	}
	res.GTID, res.Method, res.WriteHoldMS = gtid, "backup-stage", float64(hold.Microseconds())/1000
	return sv, dv, res, nil
}

// appliedOn is what a target has applied from a stream: its checkpoint
// merged with the GTIDs of its binlog in the given domains (a DDL commits
// without the checkpoint).
func appliedOn(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, stream string, domains []uint32) (replication.Position, error) {
	cp, _, err := replication.ReadCheckpoint(ctx, q, stream)
	if err != nil {
		return nil, err
	}
	var raw string
	if err := q.QueryRowContext(ctx, "SELECT @@global.gtid_binlog_pos").Scan(&raw); err != nil {
		return nil, err
	}
	bp, err := replication.ParsePosition(raw)
	if err != nil {
		return nil, err
	}
	return cp.Position.Merge(bp.Only(domains)), nil
}

// waitCaughtUp waits until the target has applied what the source had
// when the wait began.
func waitCaughtUp(ctx context.Context, src, dst *sql.DB, stream string, deadline time.Time) error {
	var raw string
	if err := src.QueryRowContext(ctx, "SELECT @@global.gtid_binlog_pos").Scan(&raw); err != nil {
		return fail("read the source's position", err)
	}
	want, err := replication.ParsePosition(raw)
	if err != nil {
		return failf(ErrConfig, "source position %q: %v", raw, err)
	}
	for {
		got, err := appliedOn(ctx, dst, stream, want.Domains())
		if err != nil {
			return fail("read the target's position", err)
		}
		if got.Behind(want) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fail("compare", fmt.Errorf("the target has applied %s, not %s (stream %s): is the stream running?", got, want, stream))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// targetSnapshots opens n target sessions, each in its own consistent
// snapshot.
func targetSnapshots(ctx context.Context, dst *sql.DB, n int) (*readView, error) {
	v := &readView{}
	for i := 0; i < n; i++ {
		c, err := dst.Conn(ctx)
		if err == nil {
			err = sourceSession(ctx, c)
		}
		if err == nil {
			_, err = c.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
		}
		if err != nil {
			if c != nil {
				c.Close()
			}
			v.close()
			return nil, fail("snapshot the target", err)
		}
		v.conns = append(v.conns, c)
	}
	return v, nil
}

// waitTarget opens target snapshot sessions repeatedly until each reads
// exactly want ("equal"), the target is past it ("ahead"), or until passes
// ("behind"). A snapshot holds exactly its checkpoint's transactions, and
// nothing committed after it when the target's binlog (read after the
// snapshots opened) holds nothing past want. With frozen set the source
// takes no commits, so the applied position may also count DDL, which
// commits without the checkpoint.
func waitTarget(ctx context.Context, dst *sql.DB, in CompareInput, want replication.Position, until time.Time, frozen bool) (*readView, string, error) {
	domains := want.Domains()
	for {
		dv, err := targetSnapshots(ctx, dst, in.Workers)
		if err != nil {
			return nil, "", err
		}
		cps, bp, err := targetPoint(ctx, dv, in.Stream)
		if err != nil {
			dv.close()
			return nil, "", fail("read the target's position", err)
		}
		bp = bp.Only(domains)
		equal, ahead := want.Behind(bp) == 0, want.Behind(bp) > 0
		for _, cp := range cps {
			got := cp
			if frozen {
				got = got.Merge(bp)
			}
			got = got.Only(domains)
			equal = equal && samePos(got, want)
			ahead = ahead || want.Behind(got) > 0
		}
		switch {
		case equal:
			return dv, "equal", nil
		case ahead:
			dv.close()
			return nil, "ahead", nil
		}
		dv.close()
		if time.Now().After(until) {
			return nil, "behind", nil
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// underBackupLock blocks commits on the source, snapshots it, waits for the
// target to apply that position, snapshots the target, and unblocks.
func underBackupLock(ctx context.Context, in CompareInput, src, dst *sql.DB, newSrcDB func() (*sql.DB, error), deadline time.Time, log Logger) (
	sv, dv *readView, hold time.Duration, gtid string, err error) {
	ldb, err := newSrcDB()
	if err != nil {
		return nil, nil, 0, "", fail("connect to the source", err)
	}
	defer ldb.Close()
	ldb.SetMaxIdleConns(0)
	lc, err := ldb.Conn(ctx)
	if err != nil {
		return nil, nil, 0, "", fail("connect to the source", err)
	}
	defer lc.Close()
	if err := execAll(ctx, lc, "SET SESSION lock_wait_timeout=10", "BACKUP STAGE START"); err != nil {
		return nil, nil, 0, "", fail("block commits on the source (BACKUP STAGE needs RELOAD)", err)
	}
	defer func() { _, _ = lc.ExecContext(context.WithoutCancel(ctx), "BACKUP STAGE END") }()
	start := time.Now()
	if _, err := lc.ExecContext(ctx, "BACKUP STAGE BLOCK_COMMIT"); err != nil {
		return nil, nil, 0, "", fail("block commits on the source", err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			_, _ = lc.ExecContext(context.WithoutCancel(ctx), "BACKUP STAGE END")
			hold = time.Since(start)
		}
	}
	defer release()
	sv, err = openReadView(ctx, src, newSrcDB, in.Workers, 1, log)
	if err != nil {
		return nil, nil, 0, "", fail("snapshot the source", err)
	}
	want, err := replication.ParsePosition(sv.point.GTID)
	if err != nil {
		sv.close()
		return nil, nil, 0, "", failf(ErrConfig, "source position %q: %v", sv.point.GTID, err)
	}
	dv, state, err := waitTarget(ctx, dst, in, want, deadline, true)
	release()
	if err != nil {
		sv.close()
		return nil, nil, hold, "", err
	}
	if state != "equal" {
		sv.close()
		return nil, nil, hold, "", fail("compare", fmt.Errorf("the target did not rest at %s (it is %s) within the wait (stream %s): is the stream running?",
			sv.point.GTID, state, in.Stream))
	}
	return sv, dv, hold, sv.point.GTID, nil
}
