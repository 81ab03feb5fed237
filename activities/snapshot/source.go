package snapshot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/recipe"
)

// ioTimeout bounds every read and write on the wire. It must exceed the
// longest wait for a packet: a CHECKSUM TABLE of a large table, or a
// reader held back by busy writers. Cancellation closes connections
// sooner.
const ioTimeout = time.Hour

// systemSchemas are never copied: the server's own and Drover's.
var systemSchemas = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true, "drover": true}

// openSite returns a pool on a site's database with its admin account.
func openSite(s recipe.Site, dial time.Duration, conns int) (*sql.DB, error) {
	if dial <= 0 {
		dial = 5 * time.Second
	}
	db, err := sitedb.Open(s, sitedb.Admin(s), dial, ioTimeout)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}

// execAll runs statements on one session, stopping at the first failure.
func execAll(ctx context.Context, c *sql.Conn, qs ...string) error {
	for _, q := range qs {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstWords(q, 6), err)
		}
	}
	return nil
}

func firstWords(q string, n int) string {
	f := strings.Fields(q)
	if len(f) > n {
		f = append(f[:n], "…")
	}
	return strings.Join(f, " ")
}

// sourceSession prepares a reading session: repeatable read (required for a
// consistent snapshot), UTC (TIMESTAMP text), results unconverted (bytes
// as stored), timeouts long enough for a reader waiting on writers.
func sourceSession(ctx context.Context, c *sql.Conn) error {
	return execAll(ctx, c,
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"SET SESSION time_zone='+00:00', sql_mode='NO_ENGINE_SUBSTITUTION', character_set_results=binary, "+
			"net_write_timeout=3600, net_read_timeout=3600, max_statement_time=0")
}

// snapPoint is a snapshot's place in the source's binlog.
type snapPoint struct {
	File string
	Pos  uint64
	GTID string
}

// startSnapshot opens a consistent snapshot on c and returns its binlog
// coordinates.
func startSnapshot(ctx context.Context, c *sql.Conn) (snapPoint, error) {
	if _, err := c.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return snapPoint{}, fmt.Errorf("start consistent snapshot: %w", err)
	}
	return snapshotCoords(ctx, c)
}

// snapshotCoords reads the binlog offset of the session's snapshot.
func snapshotCoords(ctx context.Context, c *sql.Conn) (snapPoint, error) {
	rows, err := c.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return snapPoint{}, fmt.Errorf("read binlog snapshot position: %w", err)
	}
	defer rows.Close()
	var p snapPoint
	for rows.Next() {
		var name, val string
		if err := rows.Scan(&name, &val); err != nil {
			return snapPoint{}, err
		}
		switch strings.ToLower(name) {
		case "binlog_snapshot_file":
			p.File = val
		case "binlog_snapshot_position":
			if p.Pos, err = strconv.ParseUint(val, 10, 64); err != nil {
				return snapPoint{}, fmt.Errorf("binlog_snapshot_position %q: %w", val, err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return snapPoint{}, err
	}
	if p.File == "" {
		return snapPoint{}, failf(ErrConfig, "the source has no binary log (log_bin=OFF): a copy needs one to know its GTID")
	}
	return p, nil
}

// readView is a set of source sessions sharing one consistent snapshot.
type readView struct {
	conns  []*sql.Conn
	point  snapPoint
	method string
	hold   time.Duration
	note   string
}

// close ends the snapshots and returns the sessions.
func (v *readView) close() {
	for _, c := range v.conns {
		if c != nil {
			_, _ = c.ExecContext(context.Background(), "ROLLBACK")
			c.Close()
		}
	}
	v.conns = nil
}

// release ends session i's snapshot early (its metadata locks go with it).
func (v *readView) release(i int) {
	if c := v.conns[i]; c != nil {
		_, _ = c.ExecContext(context.Background(), "ROLLBACK")
		c.Close()
		v.conns[i] = nil
	}
}

// openReadView opens n source sessions on one read view (see the package
// comment): all at once without a lock if their snapshot offsets agree
// (up to tries times), else under BACKUP STAGE BLOCK_COMMIT, else — no
// RELOAD privilege — one session.
func openReadView(ctx context.Context, db *sql.DB, newDB func() (*sql.DB, error), n, tries int, log Logger) (*readView, error) {
	v := &readView{}
	for i := 0; i < n; i++ {
		c, err := db.Conn(ctx)
		if err == nil {
			err = sourceSession(ctx, c)
		}
		if err != nil {
			if c != nil {
				c.Close()
			}
			v.close()
			return nil, fail("connect to the source", err)
		}
		v.conns = append(v.conns, c)
	}
	if n == 1 {
		p, err := startSnapshot(ctx, v.conns[0])
		if err != nil {
			v.close()
			return nil, fail("snapshot the source", err)
		}
		v.point, v.method = p, "single"
		return v, v.gtid(ctx)
	}
	for try := 0; try < tries; try++ {
		points, err := v.startAll(ctx)
		if err != nil {
			v.close()
			return nil, fail("snapshot the source", err)
		}
		if agree(points) {
			v.point, v.method = points[0], "agreed"
			return v, v.gtid(ctx)
		}
		for _, c := range v.conns {
			if _, err := c.ExecContext(ctx, "ROLLBACK"); err != nil {
				v.close()
				return nil, fail("snapshot the source", err)
			}
		}
	}
	points, hold, err := v.startUnderBackupLock(ctx, newDB)
	if err != nil && TypeOf(err) == ErrAuth {
		// No RELOAD: one session, which needs no agreement.
		v.note = "no RELOAD privilege on the source for BACKUP STAGE: reading with one snapshot session (" + err.Error() + ")"
		log.Warn("snapshot copy falls back to one reader session", "reason", err.Error())
		for i := 1; i < len(v.conns); i++ {
			v.conns[i].Close()
		}
		v.conns = v.conns[:1]
		p, err := startSnapshot(ctx, v.conns[0])
		if err != nil {
			v.close()
			return nil, fail("snapshot the source", err)
		}
		v.point, v.method = p, "single"
		return v, v.gtid(ctx)
	}
	if err != nil {
		v.close()
		return nil, err
	}
	if !agree(points) {
		v.close()
		return nil, fail("snapshot the source", fmt.Errorf("snapshots taken under BACKUP STAGE BLOCK_COMMIT disagree: %v", points))
	}
	v.point, v.method, v.hold = points[0], "backup-stage", hold
	return v, v.gtid(ctx)
}

func agree(ps []snapPoint) bool {
	for _, p := range ps[1:] {
		if p.File != ps[0].File || p.Pos != ps[0].Pos {
			return false
		}
	}
	return true
}

// startAll opens a snapshot on every session at once.
func (v *readView) startAll(ctx context.Context) ([]snapPoint, error) {
	points := make([]snapPoint, len(v.conns))
	errs := make([]error, len(v.conns))
	var wg sync.WaitGroup
	for i, c := range v.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			points[i], errs[i] = startSnapshot(ctx, c)
		}()
	}
	wg.Wait()
	return points, errors.Join(errs...)
}

// startUnderBackupLock blocks commits on the source, opens every snapshot,
// and unblocks; it returns how long commits were blocked. The lock lives on
// its own connection, closed at the end whatever happens (which also
// releases it).
func (v *readView) startUnderBackupLock(ctx context.Context, newDB func() (*sql.DB, error)) ([]snapPoint, time.Duration, error) {
	db, err := newDB()
	if err != nil {
		return nil, 0, fail("connect to the source", err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0)
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, 0, fail("connect to the source", err)
	}
	defer c.Close()
	// A long commit in progress must not stall the copy: give up after 10 s.
	if err := execAll(ctx, c, "SET SESSION lock_wait_timeout=10", "BACKUP STAGE START"); err != nil {
		return nil, 0, fail("block commits on the source (BACKUP STAGE needs RELOAD)", err)
	}
	defer func() { _, _ = c.ExecContext(context.WithoutCancel(ctx), "BACKUP STAGE END") }()
	start := time.Now()
	if _, err := c.ExecContext(ctx, "BACKUP STAGE BLOCK_COMMIT"); err != nil {
		return nil, 0, fail("block commits on the source", err)
	}
	points, err := v.startAll(ctx)
	if _, eerr := c.ExecContext(ctx, "BACKUP STAGE END"); eerr != nil && err == nil {
		err = eerr
	}
	hold := time.Since(start)
	if err != nil {
		return nil, hold, fail("snapshot the source under BACKUP STAGE", err)
	}
	return points, hold, nil
}

// gtid reads the GTID position of the view's binlog offset.
func (v *readView) gtid(ctx context.Context) error {
	var g sql.NullString
	err := v.conns[0].QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", v.point.File, v.point.Pos).Scan(&g)
	if err != nil {
		v.close()
		return fail("read the snapshot's GTID position", err)
	}
	if !g.Valid {
		v.close()
		return fail("read the snapshot's GTID position", fmt.Errorf("BINLOG_GTID_POS(%s, %d) is NULL", v.point.File, v.point.Pos))
	}
	v.point.GTID = g.String
	return nil
}

// ddlSince scans the source's binlog from p to its current end and returns
// the first standalone (DDL) event found, or "". It bounds the scan.
func ddlSince(ctx context.Context, c *sql.Conn, p snapPoint) (string, error) {
	var endFile string
	var endPos uint64
	rows, err := c.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return "", err
	}
	if rows.Next() {
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		var pos string
		vals[0], vals[1] = &endFile, &pos
		for i := 2; i < len(cols); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			rows.Close()
			return "", err
		}
		endPos, _ = strconv.ParseUint(pos, 10, 64)
	}
	rows.Close()
	if endFile == p.File && endPos == p.Pos {
		return "", nil
	}
	files, err := binlogFiles(ctx, c)
	if err != nil {
		return "", err
	}
	const maxEvents = 1_000_000
	seen := 0
	started := false
	for _, f := range files {
		if f == p.File {
			started = true
		}
		if !started {
			continue
		}
		from := uint64(4)
		if f == p.File {
			from = p.Pos
		}
		for {
			q := fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d LIMIT 1000", strings.ReplaceAll(f, "'", ""), from)
			evs, err := c.QueryContext(ctx, q)
			if err != nil {
				return "", err
			}
			n := 0
			stop := false
			pendingDDL := ""
			for evs.Next() {
				var file, typ, info string
				var pos, sid, end uint64
				if err := evs.Scan(&file, &pos, &typ, &sid, &end, &info); err != nil {
					evs.Close()
					return "", err
				}
				n++
				seen++
				if f == endFile && pos >= endPos {
					stop = true
					break
				}
				from = end
				if pendingDDL != "" && typ == "Query" {
					evs.Close()
					return pendingDDL + ": " + firstWords(info, 8), nil
				}
				if typ == "Gtid" && !strings.HasPrefix(info, "BEGIN") {
					pendingDDL = info
				}
			}
			evs.Close()
			if pendingDDL != "" {
				return pendingDDL, nil
			}
			if err := evs.Err(); err != nil {
				return "", err
			}
			if seen > maxEvents {
				return "", fmt.Errorf("more than %d binlog events since the snapshot: the source writes faster than its definitions can be read", maxEvents)
			}
			if stop || n < 1000 {
				break
			}
		}
		if f == endFile {
			break
		}
	}
	return "", nil
}

func binlogFiles(ctx context.Context, c *sql.Conn) ([]string, error) {
	rows, err := c.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		cols, _ := rows.Columns()
		var name string
		vals := make([]any, len(cols))
		vals[0] = &name
		for i := 1; i < len(cols); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// table is one base table to copy.
type table struct {
	Schema, Name string
	Engine       string
	Create       string   // SHOW CREATE TABLE, as the source prints it
	Cols         []column // copied columns (not generated), in order
	PK           []column // primary key columns
	pkIdx        []int    // positions of PK in Cols
	Whole        string   // why the table is copied as one chunk, or ""
	NoPK         bool
	RowsEst      uint64
	DataLength   uint64
}

// enumNamed reports whether a warning message names an ENUM column of t
// ("Data truncated for column 'e' at row 3").
func (t *table) enumNamed(msg string) bool {
	for _, c := range t.Cols {
		if c.DataType == "enum" && strings.Contains(msg, "column '"+c.Name+"'") {
			return true
		}
	}
	return false
}

// full is `schema`.`table`.
func (t *table) full() string { return quoteIdent(t.Schema) + "." + quoteIdent(t.Name) }

// id is schema.table for messages and results.
func (t *table) id() string { return t.Schema + "." + t.Name }

// object is a view, trigger or routine with how to recreate it.
type object struct {
	Kind, Schema, Name string
	Create             string
	SQLMode            string
	Collation          string // collation_connection when it was created
}

// schemaDef is one copied schema.
type schemaDef struct {
	Name, Charset, Collation, Comment string
}

// catalog is everything the copy recreates, read in the snapshot session.
type catalog struct {
	schemas  []schemaDef
	tables   []*table
	views    []object
	triggers []object
	routines []object
	events   []string
	seqs     []string
	versions []string // system-versioned tables
}

// readCatalog reads the definitions of the requested schemas (all
// non-system ones when none are named). An unknown schema is ErrConfig.
func readCatalog(ctx context.Context, c *sql.Conn, want []string) (*catalog, error) {
	all, err := queryStrings(ctx, c, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, fail("list source schemas", err)
	}
	exists := map[string]bool{}
	for _, s := range all {
		exists[s] = true
	}
	var names []string
	if len(want) == 0 {
		for _, s := range all {
			if !systemSchemas[strings.ToLower(s)] {
				names = append(names, s)
			}
		}
	} else {
		for _, s := range want {
			switch {
			case systemSchemas[strings.ToLower(s)]:
				return nil, failf(ErrConfig, "schema %q is a system schema and is never copied", s)
			case !exists[s]:
				return nil, failf(ErrConfig, "schema %q does not exist on the source (it has: %s)", s, strings.Join(all, ", "))
			}
			names = append(names, s)
		}
		sort.Strings(names)
	}
	// Without named schemas, the account must see every schema: only global
	// privileges guarantee that.
	if err := checkPrivileges(ctx, c, names, len(want) == 0); err != nil {
		return nil, err
	}
	cat := &catalog{}
	for _, s := range names {
		if err := cat.readSchema(ctx, c, s); err != nil {
			return nil, err
		}
	}
	return cat, nil
}

func (cat *catalog) readSchema(ctx context.Context, c *sql.Conn, s string) error {
	d := schemaDef{Name: s}
	if err := c.QueryRowContext(ctx, `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, IFNULL(SCHEMA_COMMENT,'')
		FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=?`, s).Scan(&d.Charset, &d.Collation, &d.Comment); err != nil {
		return fail("read schema "+s, err)
	}
	cat.schemas = append(cat.schemas, d)
	rows, err := c.QueryContext(ctx, `SELECT TABLE_NAME, TABLE_TYPE, IFNULL(ENGINE,''), IFNULL(TABLE_ROWS,0), IFNULL(DATA_LENGTH,0)
		FROM information_schema.TABLES WHERE TABLE_SCHEMA=? ORDER BY TABLE_NAME`, s)
	if err != nil {
		return fail("list tables of "+s, err)
	}
	byName := map[string]*table{}
	var views []string
	for rows.Next() {
		var name, typ, engine string
		var est, dl uint64
		if err := rows.Scan(&name, &typ, &engine, &est, &dl); err != nil {
			rows.Close()
			return fail("list tables of "+s, err)
		}
		switch typ {
		case "VIEW":
			views = append(views, name)
		case "SEQUENCE":
			cat.seqs = append(cat.seqs, s+"."+name)
		case "SYSTEM VERSIONED":
			cat.versions = append(cat.versions, s+"."+name)
			fallthrough
		case "BASE TABLE":
			t := &table{Schema: s, Name: name, Engine: engine, RowsEst: est, DataLength: dl}
			byName[name] = t
			cat.tables = append(cat.tables, t)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail("list tables of "+s, err)
	}
	if err := readColumns(ctx, c, s, byName); err != nil {
		return err
	}
	for _, t := range cat.tables {
		if t.Schema != s {
			continue
		}
		var n string
		if err := c.QueryRowContext(ctx, "SHOW CREATE TABLE "+t.full()).Scan(&n, &t.Create); err != nil {
			return fail("read the definition of "+t.id(), err)
		}
		t.plan()
	}
	for _, v := range views {
		var n, create, cs, coll string
		if err := c.QueryRowContext(ctx, "SHOW CREATE VIEW "+quoteIdent(s)+"."+quoteIdent(v)).Scan(&n, &create, &cs, &coll); err != nil {
			return fail("read the definition of view "+s+"."+v, err)
		}
		cat.views = append(cat.views, object{Kind: "VIEW", Schema: s, Name: v, Create: create, Collation: coll})
	}
	trig, err := queryStrings(ctx, c, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=? ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER", s)
	if err != nil {
		return fail("list triggers of "+s, err)
	}
	for _, tr := range trig {
		o := object{Kind: "TRIGGER", Schema: s, Name: tr}
		if err := showCreate(ctx, c, "SHOW CREATE TRIGGER "+quoteIdent(s)+"."+quoteIdent(tr), &o); err != nil {
			return err
		}
		cat.triggers = append(cat.triggers, o)
	}
	rrows, err := c.QueryContext(ctx, "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=? ORDER BY ROUTINE_TYPE, ROUTINE_NAME", s)
	if err != nil {
		return fail("list routines of "+s, err)
	}
	type routine struct{ name, typ string }
	var routines []routine
	for rrows.Next() {
		var r routine
		if err := rrows.Scan(&r.name, &r.typ); err != nil {
			rrows.Close()
			return fail("list routines of "+s, err)
		}
		routines = append(routines, r)
	}
	rrows.Close()
	for _, r := range routines {
		o := object{Kind: r.typ, Schema: s, Name: r.name}
		if err := showCreate(ctx, c, "SHOW CREATE "+r.typ+" "+quoteIdent(s)+"."+quoteIdent(r.name), &o); err != nil {
			return err
		}
		cat.routines = append(cat.routines, o)
	}
	evs, err := queryStrings(ctx, c, "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA=?", s)
	if err != nil {
		return fail("list events of "+s, err)
	}
	for _, e := range evs {
		cat.events = append(cat.events, s+"."+e)
	}
	return nil
}

// showCreate reads SHOW CREATE TRIGGER/PROCEDURE/FUNCTION, whose columns
// are name, sql_mode, statement, character_set_client,
// collation_connection, database collation[, created].
func showCreate(ctx context.Context, c *sql.Conn, q string, o *object) error {
	rows, err := c.QueryContext(ctx, q)
	if err != nil {
		return fail("read "+strings.ToLower(o.Kind)+" "+o.Schema+"."+o.Name, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return fail("read "+strings.ToLower(o.Kind)+" "+o.Schema+"."+o.Name, err)
		}
		return fail("read "+strings.ToLower(o.Kind)+" "+o.Schema+"."+o.Name, errors.New("not found"))
	}
	cols, _ := rows.Columns()
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil || len(vals) < 5 {
		return fail("read "+strings.ToLower(o.Kind)+" "+o.Schema+"."+o.Name, err)
	}
	if !vals[2].Valid {
		return failf(ErrAuth, "read %s %s.%s: its definition is hidden from the source account (needs SHOW CREATE ROUTINE or to be its definer)",
			strings.ToLower(o.Kind), o.Schema, o.Name)
	}
	o.SQLMode, o.Create, o.Collation = vals[1].String, vals[2].String, vals[4].String
	return nil
}

// readColumns fills the copied columns and primary keys of a schema's tables.
func readColumns(ctx context.Context, c *sql.Conn, s string, byName map[string]*table) error {
	rows, err := c.QueryContext(ctx, `SELECT TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), IFNULL(CHARACTER_SET_NAME,''), IFNULL(COLLATION_NAME,''),
		IS_GENERATED FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? ORDER BY TABLE_NAME, ORDINAL_POSITION`, s)
	if err != nil {
		return fail("list columns of "+s, err)
	}
	for rows.Next() {
		var tn, gen string
		var col column
		if err := rows.Scan(&tn, &col.Name, &col.DataType, &col.Charset, &col.Collation, &gen); err != nil {
			rows.Close()
			return fail("list columns of "+s, err)
		}
		t := byName[tn]
		if t == nil || gen == "ALWAYS" {
			continue
		}
		col.classify()
		t.Cols = append(t.Cols, col)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail("list columns of "+s, err)
	}
	krows, err := c.QueryContext(ctx, `SELECT TABLE_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA=? AND INDEX_NAME='PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX`, s)
	if err != nil {
		return fail("list primary keys of "+s, err)
	}
	defer krows.Close()
	for krows.Next() {
		var tn, cn string
		var sub sql.NullInt64
		if err := krows.Scan(&tn, &cn, &sub); err != nil {
			return fail("list primary keys of "+s, err)
		}
		t := byName[tn]
		if t == nil {
			continue
		}
		found := false
		for i, col := range t.Cols {
			if col.Name == cn {
				if sub.Valid {
					col.Bound = boundNone // a prefix does not order the rows
				}
				t.PK = append(t.PK, col)
				t.pkIdx = append(t.pkIdx, i)
				found = true
			}
		}
		if !found {
			t.Whole = "primary key on a generated column"
		}
	}
	return krows.Err()
}

// plan decides whether t can be read in key-range chunks.
func (t *table) plan() {
	switch {
	case t.Whole != "":
	case len(t.PK) == 0:
		t.NoPK, t.Whole = true, "no primary key"
	default:
		for _, c := range t.PK {
			if c.Bound == boundNone {
				t.Whole = fmt.Sprintf("primary key column %s of type %s cannot be range-chunked", c.Name, c.DataType)
				break
			}
		}
	}
	if t.Whole != "" {
		t.PK, t.pkIdx = nil, nil
	}
}

func queryStrings(ctx context.Context, c *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := c.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// readPrivileges are what the reading account needs on every copied schema,
// granted globally or on the schema: information_schema silently hides the
// tables, views and triggers an account may not see, which would make a
// partial copy look complete.
var readPrivileges = []string{"SELECT", "SHOW VIEW", "TRIGGER"}

// checkPrivileges fails with ErrAuth unless the session's account holds
// readPrivileges on each schema (globally when global is set). Privileges
// held only through a role are not seen (grant them to the account).
func checkPrivileges(ctx context.Context, c *sql.Conn, schemas []string, global bool) error {
	const me = `(SELECT CONCAT("'", LEFT(u, LENGTH(u) - LENGTH(SUBSTRING_INDEX(u, '@', -1)) - 1), "'@'", SUBSTRING_INDEX(u, '@', -1), "'")
		FROM (SELECT CURRENT_USER() AS u) x)`
	globals, err := queryStrings(ctx, c, "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = "+me)
	if err != nil {
		return fail("read the source account's privileges", err)
	}
	has := map[string]bool{}
	for _, p := range globals {
		has["*."+p] = true
	}
	rows, err := c.QueryContext(ctx, "SELECT TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = "+me)
	if err != nil {
		return fail("read the source account's privileges", err)
	}
	for rows.Next() {
		var s, p string
		if err := rows.Scan(&s, &p); err != nil {
			rows.Close()
			return fail("read the source account's privileges", err)
		}
		has[s+"."+p] = true
	}
	rows.Close()
	var user string
	if err := c.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&user); err != nil {
		return fail("read the source account", err)
	}
	for _, s := range schemas {
		var missing []string
		for _, p := range readPrivileges {
			if !has["*."+p] && (global || !has[s+"."+p]) {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return failf(ErrAuth, "the source account %s lacks %s on schema %s (globally or on the schema): it would not see every table, view or trigger",
				user, strings.Join(missing, ", "), s)
		}
	}
	return nil
}
