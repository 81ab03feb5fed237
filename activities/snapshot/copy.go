package snapshot

import (
	"bytes"
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drover-sre/drover/activities/internal/cloud"
	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/replication"
)

// maxSnapshotTries bounds how often a snapshot is taken again because a
// DDL ran while the definitions were read.
const maxSnapshotTries = 5

// Copy is SnapshotCopy without Temporal: the library entry point for tools
// and benchmarks. Errors are *Error (classified) or plain (retryable).
func Copy(ctx context.Context, in CopyInput, opt Options) (CopyResult, error) {
	if err := in.check(); err != nil {
		return CopyResult{}, err
	}
	c := &copier{in: in, opt: opt, log: opt.Logger, started: time.Now()}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.opt.Heartbeat <= 0 {
		c.opt.Heartbeat = DefaultHeartbeat
	}
	defer c.close()
	return c.run(ctx)
}

func (in *CopyInput) check() error {
	var bad []string
	if in.CloneID == "" || len(in.CloneID) > 191 {
		bad = append(bad, "clone_id: required, at most 191 bytes")
	}
	if in.Source.DB.User == "" || in.Target.DB.User == "" {
		bad = append(bad, "source.db.user and target.db.user: required")
	}
	if in.Workers < 0 || in.ReadSessions < 0 || in.ChunkRows < 0 || in.ChunkBytes < 0 {
		bad = append(bad, "workers, read_sessions, chunk_rows, chunk_bytes: must not be negative")
	}
	if in.Workers > 64 || in.ReadSessions > 64 {
		bad = append(bad, "workers and read_sessions: at most 64")
	}
	if len(bad) > 0 {
		return failf(ErrConfig, "snapshot copy input: %s", strings.Join(bad, "; "))
	}
	if in.Workers == 0 {
		in.Workers = DefaultWorkers
	}
	if in.ReadSessions == 0 {
		in.ReadSessions = DefaultReadSessions
	}
	if in.ChunkRows == 0 {
		in.ChunkRows = DefaultChunkRows
	}
	if in.ChunkBytes == 0 {
		in.ChunkBytes = DefaultChunkBytes
	}
	return nil
}

// copier is one run of a copy.
type copier struct {
	in      CopyInput
	opt     Options
	log     Logger
	started time.Time

	src, dst *sql.DB
	state    *sql.Conn // target: the clone lock, bookkeeping and DDL
	view     *readView
	cat      *catalog
	attempt  int
	stmtMax  int

	mu      sync.Mutex
	prog    Progress
	stats   map[*table]*tableStat
	current map[int]string
	res     CopyResult
}

// tableStat accounts for one table during the load.
type tableStat struct {
	res     TableResult
	pending int // tasks not finished reading
	open    int // chunks not yet committed
	done    bool
}

func (c *copier) close() {
	if c.view != nil {
		c.view.close()
	}
	if c.state != nil {
		_, _ = c.state.ExecContext(context.Background(), "DO RELEASE_LOCK(?)", c.lockName())
		c.state.Close()
	}
	if c.src != nil {
		c.src.Close()
	}
	if c.dst != nil {
		c.dst.Close()
	}
}

// lockName is the user-level lock (at most 64 characters) that keeps two
// runs of one clone id from writing the same target at once.
func (c *copier) lockName() string {
	h := sha1.Sum([]byte(c.in.CloneID))
	return "drover-clone:" + hex.EncodeToString(h[:])
}

func (c *copier) run(ctx context.Context) (CopyResult, error) {
	in := c.in
	var err error
	if c.src, err = openSite(in.Source, c.opt.DialTimeout, in.ReadSessions+2); err != nil {
		return CopyResult{}, fail("source "+in.Source.Name, err)
	}
	if c.dst, err = openSite(in.Target, c.opt.DialTimeout, in.Workers+in.ReadSessions+2); err != nil {
		return CopyResult{}, fail("target "+in.Target.Name, err)
	}
	srcName := fmt.Sprintf("source %s (%s)", in.Source.Name, sitedb.Addr(in.Source))
	dstName := fmt.Sprintf("target %s (%s)", in.Target.Name, sitedb.Addr(in.Target))
	c.stats = map[*table]*tableStat{}
	c.current = map[int]string{}
	stopBeat := c.heartbeat(ctx)
	defer stopBeat()
	if c.state, err = c.dst.Conn(ctx); err == nil {
		err = ddlSession(ctx, c.state)
	}
	if err != nil {
		return CopyResult{}, fail("connect to "+dstName, err)
	}
	if err := setupTarget(ctx, c.dst, c.state); err != nil {
		return CopyResult{}, fail("prepare "+dstName+" (drover schema and bookkeeping, written with sql_log_bin=0)", err)
	}
	var got sql.NullInt64
	if err := c.state.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", c.lockName()).Scan(&got); err != nil {
		return CopyResult{}, fail("lock clone "+in.CloneID+" on "+dstName, err)
	}
	if got.Int64 != 1 {
		return CopyResult{}, fail("lock clone "+in.CloneID, fmt.Errorf("another copy with this clone id is running on %s", dstName))
	}
	prev, err := readState(ctx, c.state, in.CloneID)
	if err != nil {
		return CopyResult{}, fail("read clone state on "+dstName, err)
	}
	if prev.found && prev.state == "done" {
		var r CopyResult
		if err := json.Unmarshal([]byte(prev.result), &r); err != nil {
			return CopyResult{}, failf(ErrConfig, "clone %s is done but its stored result is unreadable: %v", in.CloneID, err)
		}
		r.AlreadyDone = true
		return r, nil
	}
	if prev.found && prev.source != sitedb.Addr(in.Source) {
		return CopyResult{}, failf(ErrConfig, "clone %s was started from %s, not %s: use a new clone id", in.CloneID, prev.source, sitedb.Addr(in.Source))
	}
	if prev.found && len(in.Schemas) == 0 {
		// A resumed copy keeps the schema set of its first attempt.
		in.Schemas, c.in.Schemas = prev.schemas, prev.schemas
	}

	c.phase("snapshot")
	retries, err := c.snapshot(ctx, srcName)
	if err != nil {
		return CopyResult{}, err
	}
	names := make([]string, len(c.cat.schemas))
	for i, s := range c.cat.schemas {
		names[i] = s.Name
	}
	if prev.found && strings.Join(prev.schemas, ",") != strings.Join(names, ",") {
		return CopyResult{}, failf(ErrConfig, "clone %s copies schemas %v; the source now has %v: use a new clone id",
			in.CloneID, prev.schemas, names)
	}
	if len(c.cat.seqs) > 0 || len(c.cat.versions) > 0 {
		return CopyResult{}, failf(ErrConfig, "not supported by the snapshot copy: sequences %v, system-versioned tables %v",
			c.cat.seqs, c.cat.versions)
	}
	if _, err := replication.ParsePosition(c.view.point.GTID); err != nil {
		return CopyResult{}, failf(ErrConfig, "the source's snapshot GTID %q: %v", c.view.point.GTID, err)
	}
	c.attempt = prev.attempt + 1
	c.res = CopyResult{CloneID: in.CloneID, GTID: c.view.point.GTID, BinlogFile: c.view.point.File, BinlogPos: c.view.point.Pos,
		Attempt: c.attempt, Schemas: names, ReadSessions: len(c.view.conns), SnapshotMethod: c.view.method,
		WriteHoldMS: float64(c.view.hold.Microseconds()) / 1000, SnapshotRetries: retries, StartedAt: c.started.UTC()}
	if c.view.note != "" {
		c.res.Warnings = append(c.res.Warnings, c.view.note)
	}
	for _, e := range c.cat.events {
		c.res.Skipped = append(c.res.Skipped, "event "+e+": events are not copied (create them when the site is promoted)")
	}
	c.log.Info("snapshot taken", "clone", in.CloneID, "attempt", c.attempt, "gtid", c.res.GTID, "method", c.view.method,
		"read_sessions", len(c.view.conns), "write_hold_ms", c.res.WriteHoldMS)
	c.mu.Lock()
	c.prog.GTID, c.prog.Attempt = c.res.GTID, c.attempt
	c.mu.Unlock()

	if !prev.found {
		if err := c.checkTargetEmpty(ctx, names, dstName); err != nil {
			return CopyResult{}, err
		}
		if _, err := c.state.ExecContext(ctx, "DELETE FROM drover.clone_progress WHERE clone_id=?", in.CloneID); err != nil {
			return CopyResult{}, fail("clear clone progress on "+dstName, err)
		}
	}
	if _, err := c.state.ExecContext(ctx, `INSERT INTO drover.clone_state (clone_id, source, schema_list, attempt, gtid, state, started_at, updated_at)
		VALUES (?, ?, ?, ?, ?, 'copying', NOW(6), NOW(6)) ON DUPLICATE KEY UPDATE attempt=VALUES(attempt), gtid=VALUES(gtid), updated_at=NOW(6)`,
		in.CloneID, sitedb.Addr(in.Source), strings.Join(names, ","), c.attempt, c.res.GTID); err != nil {
		return CopyResult{}, fail("record clone state on "+dstName, err)
	}
	if err := c.readPacketLimit(ctx); err != nil {
		return CopyResult{}, fail("read max_allowed_packet of "+dstName, err)
	}

	c.phase("schema")
	tasks, err := c.prepare(ctx, prev.found)
	if err != nil {
		return CopyResult{}, err
	}

	c.phase("rows")
	if err := c.load(ctx, tasks); err != nil {
		return CopyResult{}, err
	}
	c.view.close() // every row is read: end the snapshot and its metadata locks

	c.phase("objects")
	if err := c.createObjects(ctx, dstName); err != nil {
		return CopyResult{}, err
	}
	if in.Stream != "" {
		if _, err := c.state.ExecContext(ctx, `INSERT INTO drover.replication_checkpoint (stream, gtid, source_ts, applied_at, txns)
			VALUES (?, ?, NULL, NOW(6), 0) ON DUPLICATE KEY UPDATE gtid=VALUES(gtid), source_ts=NULL, applied_at=NOW(6), txns=0`,
			in.Stream, c.res.GTID); err != nil {
			return CopyResult{}, fail("seed the checkpoint of stream "+in.Stream+" on "+dstName, err)
		}
	}
	c.finishResult()
	if _, err := c.state.ExecContext(ctx, "UPDATE drover.clone_state SET state='done', result=?, updated_at=NOW(6) WHERE clone_id=?",
		resultJSON(c.res), in.CloneID); err != nil {
		return CopyResult{}, fail("record clone state on "+dstName, err)
	}
	if _, err := c.state.ExecContext(ctx, "DELETE FROM drover.clone_progress WHERE clone_id=?", in.CloneID); err != nil {
		return CopyResult{}, fail("clear clone progress on "+dstName, err)
	}
	c.phase("done")
	c.log.Info("snapshot copy done", "clone", in.CloneID, "gtid", c.res.GTID, "rows", c.res.Rows, "bytes", c.res.Bytes,
		"reused_chunks", c.res.ReusedChunks, "seconds", c.res.DurationSeconds)
	return c.res, nil
}

// snapshot opens the read view and reads the catalog in it; a DDL that
// ran meanwhile discards both and starts again. It returns how many
// snapshots were discarded.
func (c *copier) snapshot(ctx context.Context, srcName string) (int, error) {
	newDB := func() (*sql.DB, error) { return openSite(c.in.Source, c.opt.DialTimeout, 1) }
	for try := 0; ; try++ {
		v, err := openReadView(ctx, c.src, newDB, c.in.ReadSessions, 3, c.log)
		if err != nil {
			return try, fail(srcName, err)
		}
		c.view = v
		cat, err := readCatalog(ctx, v.conns[0], c.in.Schemas)
		if err != nil {
			return try, fail(srcName, err)
		}
		ddl, err := ddlSince(ctx, v.conns[0], v.point)
		if err != nil {
			return try, fail(srcName+": scan the binlog for DDL since the snapshot (needs BINLOG MONITOR)", err)
		}
		if ddl == "" {
			c.cat = cat
			return try, nil
		}
		v.close()
		c.view = nil
		c.log.Info("DDL on the source while its definitions were read: taking the snapshot again", "ddl", ddl, "try", try+1)
		if try+1 >= maxSnapshotTries {
			return try + 1, fail(srcName, fmt.Errorf("DDL ran during each of %d snapshots (last: %s)", maxSnapshotTries, ddl))
		}
	}
}

// checkTargetEmpty refuses a target that already holds one of the schemas,
// or drops them when the input allows it.
func (c *copier) checkTargetEmpty(ctx context.Context, names []string, dstName string) error {
	for _, s := range names {
		n, err := schemaObjects(ctx, c.state, s)
		if err != nil {
			return fail("inspect "+dstName, err)
		}
		if n == 0 {
			continue
		}
		if !c.in.ReplaceExisting {
			return failf(ErrTargetNotEmpty, "%s already holds schema %s (%d tables, views or routines): refusing to overwrite it (replace_existing drops it)", dstName, s, n)
		}
		c.log.Warn("dropping an existing schema on the target", "schema", s, "target", dstName)
		if _, err := c.state.ExecContext(ctx, "DROP DATABASE "+quoteIdent(s)); err != nil {
			return fail("drop schema "+s+" on "+dstName, err)
		}
	}
	return nil
}

// readPacketLimit sizes statements below the target's max_allowed_packet.
func (c *copier) readPacketLimit(ctx context.Context) error {
	var maxPacket int
	if err := c.state.QueryRowContext(ctx, "SELECT @@global.max_allowed_packet").Scan(&maxPacket); err != nil {
		return err
	}
	c.stmtMax = min(DefaultStatementBytes, maxPacket/2)
	return nil
}

// task is a key range of one table that one reader copies as a chain of
// chunks. On a resumed copy, prefix holds the chunks an earlier attempt
// recorded at its start (seq 0…k, contiguous); later records are stray.
type task struct {
	t      *table
	no     int
	r      keyRange
	whole  bool
	prefix []record
	stray  bool
	fresh  bool // nothing of it was ever written
}

// prepare creates the schemas and tables on the target (keeping, on a
// resume, the tables whose definition did not change) and returns the
// tasks.
func (c *copier) prepare(ctx context.Context, resume bool) ([]task, error) {
	var tasks []task
	for _, s := range c.cat.schemas {
		if err := createSchema(ctx, c.state, s); err != nil {
			return nil, fail("create schema "+s.Name+" on the target", err)
		}
		existing := map[string]string{}
		if resume {
			// Triggers an earlier attempt created at its end would fire
			// while rows are loaded or cleared: drop them (the source's
			// are created again after the rows).
			trig, err := queryStrings(ctx, c.state, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=?", s.Name)
			if err != nil {
				return nil, fail("list triggers of "+s.Name+" on the target", err)
			}
			for _, tr := range trig {
				if err := execAll(ctx, c.state, "DROP TRIGGER IF EXISTS "+quoteIdent(s.Name)+"."+quoteIdent(tr)); err != nil {
					return nil, fail("drop trigger "+s.Name+"."+tr+" on the target", err)
				}
			}
			if existing, err = targetTables(ctx, c.state, s.Name); err != nil {
				return nil, fail("list tables of "+s.Name+" on the target", err)
			}
			onSource := map[string]bool{}
			for _, t := range c.cat.tables {
				if t.Schema == s.Name {
					onSource[t.Name] = true
				}
			}
			for name := range existing {
				if !onSource[name] {
					if err := c.dropTable(ctx, s.Name, name); err != nil {
						return nil, err
					}
				}
			}
		}
		for _, t := range c.cat.tables {
			if t.Schema != s.Name {
				continue
			}
			ts, err := c.prepareTable(ctx, t, existing)
			if err != nil {
				return nil, err
			}
			tasks = append(tasks, ts...)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.cat.tables {
		st := &tableStat{res: TableResult{Table: t.id(), Whole: t.Whole}}
		c.stats[t] = st
		c.prog.RowsTotal += t.RowsEst
		if t.Whole != "" {
			c.res.WholeTables = append(c.res.WholeTables, t.id())
		}
		if t.NoPK {
			c.res.NoPKTables = append(c.res.NoPKTables, t.id())
		}
		if !strings.EqualFold(t.Engine, "InnoDB") {
			c.res.NonTransactional = append(c.res.NonTransactional, t.id())
		}
	}
	for _, tk := range tasks {
		c.stats[tk.t].pending++
	}
	c.prog.TablesTotal = len(c.cat.tables)
	for t, st := range c.stats {
		if st.pending == 0 { // cannot happen: every table has a task
			return nil, fmt.Errorf("table %s has no task", t.id())
		}
	}
	// Largest first: the long tail is short tables.
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].t.DataLength > tasks[j].t.DataLength })
	return tasks, nil
}

func (c *copier) dropTable(ctx context.Context, schema, name string) error {
	if err := execAll(ctx, c.state, "DROP TABLE IF EXISTS "+quoteIdent(schema)+"."+quoteIdent(name)); err != nil {
		return fail("drop "+schema+"."+name+" on the target", err)
	}
	if _, err := c.state.ExecContext(ctx, "DELETE FROM drover.clone_progress WHERE clone_id=? AND schema_name=? AND table_name=?",
		c.in.CloneID, schema, name); err != nil {
		return fail("clear progress of "+schema+"."+name, err)
	}
	return nil
}

// prepareTable makes t's target table ready and returns its tasks.
func (c *copier) prepareTable(ctx context.Context, t *table, existing map[string]string) ([]task, error) {
	if def, ok := existing[t.Name]; ok {
		if sameDefinition(def, t.Create) {
			recs, err := readRecords(ctx, c.state, c.in.CloneID, t)
			if err != nil {
				return nil, fail("read progress of "+t.id(), err)
			}
			if ts := resumeTasks(t, recs); ts != nil {
				return ts, nil
			}
		}
		c.log.Info("table changed on the source since the last attempt, or has no usable progress: copying it again", "table", t.id())
		if err := c.dropTable(ctx, t.Schema, t.Name); err != nil {
			return nil, err
		}
	}
	if err := execAll(ctx, c.state, "USE "+quoteIdent(t.Schema), t.Create); err != nil {
		return nil, fail("create "+t.id()+" on the target", err)
	}
	ranges := []keyRange{{}}
	if t.Whole == "" && c.in.ReadSessions > 1 {
		var err error
		if ranges, err = c.split(ctx, t); err != nil {
			return nil, fail("split "+t.id(), err)
		}
	}
	var tasks []task
	var rec []string
	for i, r := range ranges {
		tasks = append(tasks, task{t: t, no: i, r: r, whole: t.Whole != "", fresh: true})
		rec = append(rec, recordInsert(c.in.CloneID, t, i, -1, r, t.Whole != "", 0, 0, c.attempt))
	}
	if err := execAll(ctx, c.state, rec...); err != nil {
		return nil, fail("record tasks of "+t.id(), err)
	}
	return tasks, nil
}

// resumeTasks rebuilds t's tasks from an earlier attempt's records, or nil
// when they are unusable (the table is then copied again from scratch).
func resumeTasks(t *table, recs []record) []task {
	var tasks []task
	for i := 0; i < len(recs); {
		head := recs[i]
		if head.seq != -1 || head.whole != (t.Whole != "") {
			return nil
		}
		tk := task{t: t, no: head.task, r: head.r, whole: head.whole}
		i++
		for ; i < len(recs) && recs[i].task == head.task; i++ {
			if recs[i].seq == len(tk.prefix) && !tk.stray {
				tk.prefix = append(tk.prefix, recs[i])
			} else {
				tk.stray = true
			}
		}
		tasks = append(tasks, tk)
	}
	if len(tasks) == 0 {
		return nil
	}
	return tasks
}

// split cuts a table with a single integer primary key into value ranges,
// one task each, so that several reader sessions share it.
func (c *copier) split(ctx context.Context, t *table) ([]keyRange, error) {
	whole := []keyRange{{}}
	if len(t.PK) != 1 || t.PK[0].Bound != boundNumber || t.PK[0].DataType == "decimal" || t.PK[0].DataType == "year" {
		return whole, nil
	}
	parts := int(t.RowsEst / uint64(c.in.ChunkRows))
	parts = min(parts, 4*c.in.ReadSessions)
	if parts < 2 {
		return whole, nil
	}
	var lo, hi sql.NullString
	pk := quoteIdent(t.PK[0].Name)
	if err := c.view.conns[0].QueryRowContext(ctx, "SELECT CAST(MIN("+pk+") AS CHAR), CAST(MAX("+pk+") AS CHAR) FROM "+t.full()).Scan(&lo, &hi); err != nil {
		return nil, err
	}
	if !lo.Valid {
		return whole, nil
	}
	a, ok1 := new(big.Int).SetString(lo.String, 10)
	b, ok2 := new(big.Int).SetString(hi.String, 10)
	if !ok1 || !ok2 || a.Cmp(b) >= 0 {
		return whole, nil
	}
	step := new(big.Int).Div(new(big.Int).Sub(b, a), big.NewInt(int64(parts)))
	if step.Sign() == 0 {
		return whole, nil
	}
	var out []keyRange
	var prev key
	for i := 1; i < parts; i++ {
		cut := new(big.Int).Add(a, new(big.Int).Mul(step, big.NewInt(int64(i))))
		k := key{[]byte(cut.String())}
		out = append(out, keyRange{Lo: prev, Hi: k})
		prev = k
	}
	return append(out, keyRange{Lo: prev}), nil
}

// chunk is a unit of the load: rows of (r.Lo, r.Hi] of one table, written
// in one target transaction with its record. The reader sends INSERT
// statements on stmts and closes it; r.Hi, rows, bytes and err are final
// once stmts is closed.
type chunk struct {
	tk    *task
	seq   int
	r     keyRange
	stmts chan []byte
	rows  uint64
	bytes uint64
	err   error
	// clear, on the first chunk of a resumed range: what its transaction
	// deletes first.
	clear *clearing
	full  bool
}

// load runs the readers (one per snapshot session) and the writers.
func (c *copier) load(ctx context.Context, tasks []task) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	taskCh := make(chan *task, len(tasks))
	for i := range tasks {
		taskCh <- &tasks[i]
	}
	close(taskCh)
	work := make(chan *chunk, c.in.Workers)
	var readers, writers sync.WaitGroup
	for i := range c.view.conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := c.reader(ctx, i, taskCh, work); err != nil {
				cancel(err)
			}
		}()
	}
	for j := 0; j < c.in.Workers; j++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			if err := c.writer(ctx, work); err != nil {
				cancel(err)
			}
		}()
	}
	readers.Wait()
	close(work)
	writers.Wait()
	return context.Cause(ctx)
}

// reader copies tasks with snapshot session i until none is left, then
// ends its snapshot.
func (c *copier) reader(ctx context.Context, i int, tasks <-chan *task, work chan<- *chunk) error {
	conn := c.view.conns[i]
	var verify *sql.Conn
	defer func() {
		if verify != nil {
			verify.Close()
		}
	}()
	for tk := range tasks {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.setCurrent(i, tk.t.id())
		seq, lo := 0, tk.r.Lo
		if len(tk.prefix) > 0 && verify == nil {
			var err error
			if verify, err = c.dst.Conn(ctx); err == nil {
				err = dataSession(ctx, verify)
			}
			if err != nil {
				return fail("connect to the target", err)
			}
		}
		// Chunks recorded by an earlier attempt: kept if equal under this
		// snapshot, else copied again in place (same range, same seq).
		for _, d := range tk.prefix {
			same, err := c.verify(ctx, conn, verify, tk, d)
			if err != nil {
				return err
			}
			if same {
				c.reused(tk.t, d)
			} else {
				c.mu.Lock()
				c.res.RecopiedChunks++
				c.mu.Unlock()
				r := d.r
				if err := c.copyRange(ctx, conn, work, tk, d.seq, r, &clearing{r: r, seq: d.seq, only: true}, true); err != nil {
					return err
				}
			}
			seq, lo = d.seq+1, d.r.Hi
		}
		// The rest of the task's range: everything after the last kept
		// chunk, whose stray records and rows are cleared first.
		complete := seq > 0 && !tk.stray && keysEqual(lo, tk.r.Hi)
		if !complete {
			var clear *clearing
			if !tk.fresh {
				clear = &clearing{r: keyRange{Lo: lo, Hi: tk.r.Hi}, seq: seq}
			}
			if err := c.copyRange(ctx, conn, work, tk, seq, keyRange{Lo: lo, Hi: tk.r.Hi}, clear, tk.whole); err != nil {
				return err
			}
		}
		c.taskRead(tk.t)
	}
	c.setCurrent(i, "")
	c.view.release(i)
	return nil
}

// verify reports whether a chunk recorded by an earlier attempt holds, on
// the target, exactly the source's rows of its range under this snapshot.
func (c *copier) verify(ctx context.Context, src, dst *sql.Conn, tk *task, d record) (bool, error) {
	r := d.r
	if tk.whole {
		r = keyRange{}
	}
	q := hashQuery(tk.t, r)
	var sn, dn uint64
	var sh, dh string
	var serr, derr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		derr = dst.QueryRowContext(ctx, q).Scan(&dn, &dh)
	}()
	serr = src.QueryRowContext(ctx, q).Scan(&sn, &sh)
	wg.Wait()
	if serr != nil {
		return false, fail("checksum "+tk.t.id()+" on the source", serr)
	}
	if derr != nil {
		return false, fail("checksum "+tk.t.id()+" on the target", derr)
	}
	return sn == dn && sh == dh, nil
}

// hashQuery counts and hashes the rows of r: the sum of a 64-bit MD5 prefix
// of each row's columns, each as length:bytes or N for NULL (injective), so
// neither order nor duplicates can hide a difference.
func hashQuery(t *table, r keyRange) string {
	parts := make([]string, len(t.Cols))
	for i, col := range t.Cols {
		x := "CAST(" + col.selectExpr() + " AS BINARY)"
		parts[i] = "IFNULL(CONCAT(LENGTH(" + x + "),':'," + x + "),'N')"
	}
	q := "SELECT COUNT(*), CAST(IFNULL(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS(','," + strings.Join(parts, ",") +
		")),16),16,10) AS UNSIGNED)),0) AS CHAR) FROM " + t.full()
	if len(t.PK) > 0 {
		if cond := rangeCond(t.PK, r); cond != "" {
			q += " WHERE " + cond
		}
	}
	return q
}

func keysEqual(a, b key) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// clearing is what the first chunk of a resumed range deletes in its
// transaction: the target rows of r, and the task's records from seq on
// (only seq itself when only is set).
type clearing struct {
	r    keyRange
	seq  int
	only bool
}

// copyRange reads r of the task's table in key order and sends it to the
// writers as chunks numbered from seq (one chunk when single is set). The
// last chunk ends at r.Hi, so the chain covers r exactly (an empty range
// is one empty chunk).
func (c *copier) copyRange(ctx context.Context, conn *sql.Conn, work chan<- *chunk, tk *task, seq int, r keyRange, clear *clearing, single bool) error {
	t := tk.t
	exprs := make([]string, len(t.Cols))
	names := make([]string, len(t.Cols))
	for i, col := range t.Cols {
		exprs[i], names[i] = col.selectExpr(), quoteIdent(col.Name)
	}
	q := "SELECT " + strings.Join(exprs, ",") + " FROM " + t.full()
	if !tk.whole {
		if cond := rangeCond(t.PK, r); cond != "" {
			q += " WHERE " + cond
		}
		pk := make([]string, len(t.PK))
		for i, col := range t.PK {
			pk[i] = quoteIdent(col.Name)
		}
		q += " ORDER BY " + strings.Join(pk, ",")
	}
	prefix := "INSERT INTO " + t.full() + " (" + strings.Join(names, ",") + ") VALUES "
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return fail("read "+t.id()+" from the source", err)
	}
	defer rows.Close()

	vals := make([]sql.RawBytes, len(t.Cols))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	stmtCap := 2*c.in.ChunkBytes/max(c.stmtMax, 1) + 4
	var (
		cur  *chunk
		stmt []byte
		lo   = r.Lo
		hi   key // the key of the last row of a full chunk
	)
	send := func(b []byte) error {
		select {
		case cur.stmts <- b:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	open := func() error {
		cur = &chunk{tk: tk, seq: seq, r: keyRange{Lo: lo}, clear: clear, stmts: make(chan []byte, stmtCap)}
		seq, clear = seq+1, nil
		c.chunkOpened(t)
		select {
		case work <- cur:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	end := func(upTo key, err error) error {
		if err == nil && len(stmt) > 0 {
			err = send(stmt)
			stmt = nil
		}
		cur.r.Hi, cur.err = upTo, err
		close(cur.stmts)
		cur = nil
		return err
	}
	// Whatever ends the read, the chunk in progress is closed, with an
	// error unless it was finished: its writer rolls it back.
	defer func() {
		if cur != nil {
			cur.err = errors.New("read of " + t.id() + " ended early")
			close(cur.stmts)
		}
	}()
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fail("read "+t.id()+" from the source", err)
		}
		if cur != nil && cur.full {
			if err := end(hi, nil); err != nil {
				return err
			}
			lo = hi
		}
		if cur == nil {
			if err := open(); err != nil {
				return err
			}
		}
		if len(stmt) == 0 {
			stmt = append(make([]byte, 0, c.stmtMax+c.stmtMax/4), prefix...)
		} else {
			stmt = append(stmt, ',')
		}
		stmt = append(stmt, '(')
		size := 0
		for j, v := range vals {
			if j > 0 {
				stmt = append(stmt, ',')
			}
			stmt = appendValue(stmt, t.Cols[j].Kind, v)
			size += len(v)
		}
		stmt = append(stmt, ')')
		cur.rows++
		cur.bytes += uint64(size)
		if len(stmt) >= c.stmtMax {
			if err := send(stmt); err != nil {
				return err
			}
			stmt = nil
		}
		if !single && (cur.rows >= uint64(c.in.ChunkRows) || cur.bytes >= uint64(c.in.ChunkBytes)) {
			cur.full = true
			hi = make(key, len(t.pkIdx))
			for k, idx := range t.pkIdx {
				hi[k] = append([]byte{}, vals[idx]...)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fail("read "+t.id()+" from the source", err)
	}
	if cur == nil {
		if err := open(); err != nil {
			return err
		}
	}
	return end(r.Hi, nil)
}

// writer commits chunks into the target, each in one transaction with its
// record, until the work channel closes.
func (c *copier) writer(ctx context.Context, work <-chan *chunk) error {
	conn, err := c.dst.Conn(ctx)
	if err == nil {
		err = dataSession(ctx, conn)
	}
	if err != nil {
		return fail("connect to the target", err)
	}
	defer conn.Close()
	for ch := range work {
		// On error the load is cancelled: readers stop sending.
		if err := c.write(ctx, conn, ch); err != nil {
			return err
		}
	}
	return nil
}

// write commits one chunk. A deadlock or lock wait timeout (another
// session on the target) rolls the chunk back and replays it, up to three
// times, from the statements kept in memory — unless the chunk is larger
// than a few chunk sizes (a whole table), whose error then ends the copy
// (a retry of the activity resumes it).
func (c *copier) write(ctx context.Context, conn *sql.Conn, ch *chunk) error {
	var kept [][]byte
	keep := true
	for attempt := 1; ; attempt++ {
		err := c.writeOnce(ctx, conn, ch, &kept, &keep)
		if err == nil || !keep || attempt == 3 {
			return err
		}
		switch sitedb.ErrNumber(err) {
		case 1213, 1205: // deadlock, lock wait timeout
		default:
			return err
		}
		c.log.Warn("chunk rolled back by a lock conflict on the target: writing it again", "table", ch.tk.t.id(), "seq", ch.seq,
			"attempt", attempt, "error", err.Error())
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

// writeOnce runs the chunk's transaction: the clearing, the statements
// already kept, then those still arriving (kept while keep holds).
func (c *copier) writeOnce(ctx context.Context, conn *sql.Conn, ch *chunk, kept *[][]byte, keep *bool) error {
	t := ch.tk.t
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fail("write "+t.id()+" into the target", err)
	}
	defer func() { _ = tx.Rollback() }()
	if cl := ch.clear; cl != nil {
		del := "DELETE FROM " + t.full()
		if !ch.tk.whole {
			if cond := rangeCond(t.PK, cl.r); cond != "" {
				del += " WHERE " + cond
			}
		}
		recs := recordsFrom(c.in.CloneID, t, ch.tk.no, cl.seq)
		if cl.only {
			recs = strings.Replace(recs, "seq>=", "seq=", 1)
		}
		for _, q := range []string{del, recs} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fail("clear "+t.id()+" on the target", err)
			}
		}
	}
	exec := func(stmt []byte) error {
		if _, err := tx.ExecContext(ctx, string(stmt)); err != nil {
			return fail(fmt.Sprintf("insert into %s on the target (statement of %d bytes)", t.id(), len(stmt)), err)
		}
		return checkWarnings(ctx, tx, t)
	}
	for _, stmt := range *kept {
		if err := exec(stmt); err != nil {
			return err
		}
	}
	keptBytes := 0
	for _, stmt := range *kept {
		keptBytes += len(stmt)
	}
statements:
	for {
		select {
		case stmt, ok := <-ch.stmts:
			if !ok {
				break statements
			}
			if *keep {
				*kept = append(*kept, stmt)
				keptBytes += len(stmt)
				if keptBytes > 4*c.in.ChunkBytes+2*c.stmtMax {
					*keep, *kept = false, nil
				}
			}
			if err := exec(stmt); err != nil {
				return err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if ch.err != nil {
		*keep = false
		return ch.err // the reader reports it
	}
	if _, err := tx.ExecContext(ctx, recordInsert(c.in.CloneID, t, ch.tk.no, ch.seq, ch.r, ch.tk.whole, ch.rows, ch.bytes, c.attempt)); err != nil {
		return fail("record a chunk of "+t.id(), err)
	}
	if err := tx.Commit(); err != nil {
		return fail("commit a chunk of "+t.id(), err)
	}
	c.chunkDone(t, ch.rows, ch.bytes)
	return nil
}

// checkWarnings fails when the target changed a value while storing it:
// an exact copy stores every value as it is, so any warning means a
// silent conversion — except ENUM's error value ” (index 0), which
// MariaDB stores with warning 1265 however it is written.
func checkWarnings(ctx context.Context, tx *sql.Tx, t *table) error {
	rows, err := tx.QueryContext(ctx, "SHOW WARNINGS LIMIT 5")
	if err != nil {
		return fail("read warnings of an insert into "+t.id(), err)
	}
	defer rows.Close()
	var bad []string
	for rows.Next() {
		var level, msg string
		var code int
		if err := rows.Scan(&level, &code, &msg); err != nil {
			return fail("read warnings of an insert into "+t.id(), err)
		}
		if code == 1265 && t.enumNamed(msg) {
			continue
		}
		bad = append(bad, fmt.Sprintf("%s %d: %s", level, code, msg))
	}
	if err := rows.Err(); err != nil {
		return fail("read warnings of an insert into "+t.id(), err)
	}
	if len(bad) > 0 {
		return failf(ErrConfig, "the target changed values of %s while loading them (a copy must store them unchanged): %s",
			t.id(), strings.Join(bad, "; "))
	}
	return nil
}

// createObjects recreates views (in dependency order, by retrying those
// that name a view not yet created), routines and triggers — after the
// rows, so that loading fires no trigger.
func (c *copier) createObjects(ctx context.Context, dstName string) error {
	pending := c.cat.views
	for pass := 0; len(pending) > 0; pass++ {
		var next []object
		var last error
		for _, v := range pending {
			if err := createObject(ctx, c.state, v); err != nil {
				next, last = append(next, v), err
			}
		}
		if len(next) == len(pending) || pass > len(c.cat.views) {
			return fail(fmt.Sprintf("create view %s.%s on %s", next[0].Schema, next[0].Name, dstName), last)
		}
		pending = next
	}
	for _, o := range append(append([]object{}, c.cat.routines...), c.cat.triggers...) {
		if err := createObject(ctx, c.state, o); err != nil {
			return fail(fmt.Sprintf("create %s %s.%s on %s", strings.ToLower(o.Kind), o.Schema, o.Name, dstName), err)
		}
	}
	c.res.Views, c.res.Routines, c.res.Triggers = len(c.cat.views), len(c.cat.routines), len(c.cat.triggers)
	return nil
}

func (c *copier) finishResult() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.cat.tables {
		st := c.stats[t]
		c.res.Tables = append(c.res.Tables, st.res)
		c.res.Rows += st.res.Rows
		c.res.Bytes += st.res.Bytes
		c.res.Chunks += st.res.Chunks
		c.res.ReusedChunks += st.res.Reused
	}
	c.res.FinishedAt = time.Now().UTC()
	c.res.DurationSeconds = time.Since(c.started).Seconds()
	if len(c.res.NonTransactional) > 0 {
		c.res.Warnings = append(c.res.Warnings, "tables not in InnoDB are read without a consistent snapshot: "+
			strings.Join(c.res.NonTransactional, ", "))
	}
}

// Progress accounting.

func (c *copier) phase(p string) {
	c.mu.Lock()
	c.prog.Phase = p
	c.mu.Unlock()
	c.report()
}

func (c *copier) setCurrent(i int, table string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if table == "" {
		delete(c.current, i)
	} else {
		c.current[i] = table
	}
}

func (c *copier) chunkOpened(t *table) {
	c.mu.Lock()
	c.stats[t].open++
	c.mu.Unlock()
}

func (c *copier) chunkDone(t *table, rows, bytes uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats[t]
	st.open--
	st.res.Rows += rows
	st.res.Bytes += bytes
	st.res.Chunks++
	c.prog.Rows += rows
	c.prog.Bytes += bytes
	c.prog.ChunksDone++
	c.tableMaybeDone(st)
}

func (c *copier) reused(t *table, d record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats[t]
	st.res.Rows += d.rows
	st.res.Bytes += d.bytes
	st.res.Chunks++
	st.res.Reused++
	c.prog.Rows += d.rows
	c.prog.Bytes += d.bytes
	c.prog.ChunksDone++
	c.prog.Reused++
}

func (c *copier) taskRead(t *table) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats[t]
	st.pending--
	c.tableMaybeDone(st)
}

func (c *copier) tableMaybeDone(st *tableStat) {
	if !st.done && st.pending == 0 && st.open == 0 {
		st.done = true
		c.prog.TablesDone++
	}
}

// report sends the current progress to the Progress hook.
func (c *copier) report() {
	if c.opt.Progress == nil {
		return
	}
	c.mu.Lock()
	p := c.prog
	p.CloneID = c.in.CloneID
	p.Elapsed = time.Since(c.started)
	p.Current = nil
	for _, t := range c.current {
		p.Current = append(p.Current, t)
	}
	sort.Strings(p.Current)
	c.mu.Unlock()
	c.opt.Progress(p)
}

// heartbeat reports progress every Heartbeat until stopped, with the
// source sessions waiting for a metadata lock the copy holds.
func (c *copier) heartbeat(ctx context.Context) (stop func()) {
	warned := map[string]bool{} // only the ticking goroutine uses it
	return cloud.Every(ctx, c.opt.Heartbeat, func() {
		blocked := c.blockedDDL(ctx)
		for _, b := range blocked {
			if !warned[b] {
				warned[b] = true
				c.log.Warn("a source session waits for a metadata lock the copy holds; it runs when the copy has read everything", "session", b)
			}
		}
		c.mu.Lock()
		c.prog.BlockedDDL = blocked
		c.mu.Unlock()
		c.report()
	})
}

func (c *copier) blockedDDL(ctx context.Context) []string {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rows, err := c.src.QueryContext(qctx, `SELECT CONCAT(ID, ' ', USER, ': ', LEFT(IFNULL(INFO,''), 120)) FROM information_schema.PROCESSLIST
		WHERE STATE LIKE 'Waiting for table metadata lock%'`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if rows.Scan(&s) == nil {
			out = append(out, s)
		}
	}
	return out
}
