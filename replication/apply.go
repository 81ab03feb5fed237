package replication

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"
	"github.com/shopspring/decimal"
)

// CheckpointDDL creates the checkpoint table. It runs with sql_log_bin=0
// (the table is Drover's bookkeeping, local to the target, and must not
// consume a GTID of the target's own domain), so it needs an account with
// BINLOG ADMIN or SUPER: Setup is run by the site's admin account.
const CheckpointDDL = `CREATE TABLE IF NOT EXISTS drover.replication_checkpoint (
  stream     VARCHAR(191) NOT NULL PRIMARY KEY,
  gtid       VARCHAR(4096) NOT NULL,
  source_ts  DATETIME(6) NULL,
  applied_at DATETIME(6) NOT NULL,
  txns       BIGINT UNSIGNED NOT NULL DEFAULT 0
) ENGINE=InnoDB`

// Setup prepares a target for streams: the drover schema and the checkpoint
// table, created without binary logging. It is idempotent.
func Setup(ctx context.Context, admin *sql.DB) error {
	conn, err := admin.Conn(ctx)
	if err != nil {
		return classify("setup target", err)
	}
	defer conn.Close()
	// The connection returns to admin's pool: never leave it unlogged.
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION sql_log_bin=1") }()
	for _, q := range []string{"SET SESSION sql_log_bin=0", "CREATE DATABASE IF NOT EXISTS drover", CheckpointDDL} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return classify("setup target: "+firstWords(q), err)
		}
	}
	return nil
}

// Checkpoint is what the target records about a stream.
type Checkpoint struct {
	Position  Position
	SourceTS  time.Time
	AppliedAt time.Time
	Txns      uint64
}

// ReadCheckpoint returns a stream's checkpoint; ok is false when the stream
// has never committed anything.
func ReadCheckpoint(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, stream string) (cp Checkpoint, ok bool, err error) {
	var gtid string
	var src sql.NullFloat64
	var applied float64
	// Times as epoch seconds: works whatever the caller's DSN says about parseTime.
	err = q.QueryRowContext(ctx, `SELECT gtid, UNIX_TIMESTAMP(CONVERT_TZ(source_ts, '+00:00', @@session.time_zone)),
		UNIX_TIMESTAMP(CONVERT_TZ(applied_at, '+00:00', @@session.time_zone)), txns
		FROM drover.replication_checkpoint WHERE stream=?`, stream).Scan(&gtid, &src, &applied, &cp.Txns)
	if errors.Is(err, sql.ErrNoRows) {
		return cp, false, nil
	}
	if err != nil {
		return cp, false, classify("read checkpoint", err)
	}
	if cp.Position, err = ParsePosition(gtid); err != nil {
		return cp, false, &Error{Kind: KindConfig, Op: "read checkpoint", Err: err}
	}
	if src.Valid {
		cp.SourceTS = epoch(src.Float64)
	}
	cp.AppliedAt = epoch(applied)
	return cp, true, nil
}

func epoch(f float64) time.Time {
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
}

// table is what the applier knows about a target table.
type table struct {
	generated map[string]bool // columns the server computes: never written
}

// applier writes source transactions into the target over one session.
// Every source transaction is applied with its origin GTID (domain, server
// id, sequence), so the target's binlog mirrors the source and gtid_strict_mode
// refuses a transaction applied twice. Several source transactions may share
// one target transaction (a group): it carries the GTID of the first and the
// checkpoint row of the last.
type applier struct {
	conn   *sql.Conn
	stream string
	tables map[string]*table
	// batch holds statements not yet sent: a group's statements travel in
	// as few multi-statement round trips as possible, and each UPDATE,
	// DELETE and INSERT is then checked for the number of rows it touched.
	batch    []byte
	nStmts   int
	checks   []check
	maxBatch int
	// session GTID variables as last set
	domain, server uint32
	sessionSet     bool

	inTx      bool // a target transaction is open
	noPK      map[string]bool
	rowsTotal uint64
}

// check is an expectation on the rows one batched statement affects.
type check struct {
	stmt  int
	want  int64
	what  string
	table string
}

func newApplier(conn *sql.Conn, stream string) *applier {
	return &applier{conn: conn, stream: stream, tables: map[string]*table{}, noPK: map[string]bool{}, maxBatch: 1 << 20}
}

// queue adds a statement to the batch; want >= 0 is the number of rows it
// must affect. A batch over maxBatch bytes is sent at once (bounded memory).
func (a *applier) queue(ctx context.Context, stmt []byte, want int64, what, table string) error {
	if len(a.batch) > 0 {
		a.batch = append(a.batch, ';')
	}
	a.batch = append(a.batch, stmt...)
	if want >= 0 {
		a.checks = append(a.checks, check{stmt: a.nStmts, want: want, what: what, table: table})
	}
	a.nStmts++
	if len(a.batch) >= a.maxBatch {
		return a.flush(ctx)
	}
	return nil
}

// flush sends the batch as one multi-statement round trip and verifies the
// affected-row counts: a mismatch means source and target have diverged.
func (a *applier) flush(ctx context.Context) error {
	if a.nStmts == 0 {
		return nil
	}
	q, checks := string(a.batch), a.checks
	a.batch, a.nStmts, a.checks = a.batch[:0], 0, nil
	if cap(a.batch) > 4*a.maxBatch {
		a.batch = nil // do not keep a huge buffer after a huge transaction
	}
	var counts []int64
	err := a.conn.Raw(func(dc any) error {
		ex, ok := dc.(driver.ExecerContext)
		if !ok {
			return errors.New("driver connection cannot execute")
		}
		res, err := ex.ExecContext(ctx, q, nil)
		if err != nil {
			return err
		}
		if r, ok := res.(mysql.Result); ok {
			counts = r.AllRowsAffected()
		}
		return nil
	})
	if err != nil {
		return classify("apply", err)
	}
	for _, c := range checks {
		if c.stmt < len(counts) && counts[c.stmt] != c.want {
			return &Error{Kind: KindSchemaMismatch, Op: c.what + " " + c.table, Err: fmt.Errorf(
				"%d target rows matched, want %d: source and target have diverged", counts[c.stmt], c.want)}
		}
	}
	return nil
}

// session prepares the applier's session: UTC for TIMESTAMP strings,
// NO_AUTO_VALUE_ON_ZERO so explicit 0 ids stay 0, and foreign key checks on
// (cascades are not in the row log: the target must perform them itself).
func (a *applier) session(ctx context.Context) error {
	for _, q := range []string{
		// Values travel as the raw bytes of their column's character set
		// (go-mysql does not convert them): "binary" makes the server copy
		// them into any column unchanged. DDL switches back to utf8mb4.
		"SET SESSION character_set_client=binary",
		"SET SESSION time_zone='+00:00'",
		"SET SESSION sql_mode='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
		"SET SESSION foreign_key_checks=1",
		"SET SESSION tx_isolation='READ-COMMITTED'",
	} {
		if _, err := a.conn.ExecContext(ctx, q); err != nil {
			return classify("applier session: "+q, err)
		}
	}
	return nil
}

// gtidStatements are what makes the next target transaction carry g.
// MariaDB refuses to change these variables inside a transaction, and checks
// gtid_seq_no against the session's current domain: hence separate
// statements, in this order.
func (a *applier) gtidStatements(g GTID) []string {
	var out []string
	if !a.sessionSet || a.domain != g.Domain {
		out = append(out, fmt.Sprintf("SET SESSION gtid_domain_id=%d", g.Domain))
		a.domain = g.Domain
	}
	if !a.sessionSet || a.server != g.ServerID {
		out = append(out, fmt.Sprintf("SET SESSION server_id=%d", g.ServerID))
		a.server = g.ServerID
	}
	a.sessionSet = true
	return append(out, fmt.Sprintf("SET SESSION gtid_seq_no=%d", g.Seq))
}

// setGTID applies gtidStatements at once (for DDL, which is not batched).
func (a *applier) setGTID(ctx context.Context, g GTID) error {
	for _, q := range a.gtidStatements(g) {
		if _, err := a.conn.ExecContext(ctx, q); err != nil {
			return classify(q, err)
		}
	}
	return nil
}

// begin opens (in the batch) a target transaction that will carry GTID g.
func (a *applier) begin(ctx context.Context, g GTID) error {
	for _, q := range append(a.gtidStatements(g), "BEGIN") {
		if err := a.queue(ctx, []byte(q), -1, "", ""); err != nil {
			return err
		}
	}
	a.inTx = true
	return nil
}

// commit records the checkpoint in the open transaction and commits both:
// the batch (rows and checkpoint) is sent and verified, then COMMIT.
func (a *applier) commit(ctx context.Context, pos Position, sourceTS time.Time, txns int) error {
	q := appendLiteral([]byte("INSERT INTO drover.replication_checkpoint (stream, gtid, source_ts, applied_at, txns) VALUES ("), []byte(a.stream))
	q = append(q, ',')
	q = appendLiteral(q, []byte(pos.String()))
	q = append(q, ',')
	q = appendLiteral(q, []byte(sourceTS.UTC().Format("2006-01-02 15:04:05.999999")))
	q = append(q, ",NOW(6),"...)
	q = strconv.AppendInt(q, int64(txns), 10)
	q = append(q, ") ON DUPLICATE KEY UPDATE gtid=VALUES(gtid), source_ts=VALUES(source_ts), applied_at=VALUES(applied_at), txns=txns+VALUES(txns)"...)
	if err := a.queue(ctx, q, -1, "", ""); err != nil {
		return err
	}
	if err := a.flush(ctx); err != nil {
		return err
	}
	if _, err := a.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return classify("commit", err)
	}
	a.inTx = false
	return nil
}

// rollback abandons the batch and the open transaction, if any.
func (a *applier) rollback(ctx context.Context) {
	a.batch, a.nStmts, a.checks = a.batch[:0], 0, nil
	if a.inTx {
		_, _ = a.conn.ExecContext(ctx, "ROLLBACK")
		a.inTx = false
	}
}

// ddl applies a standalone statement (DDL) with its origin GTID. DDL commits
// implicitly, so the checkpoint row cannot share its transaction: the GTID
// the DDL writes to the target's binlog (atomically with it) records it, and
// the resume position is the maximum of the checkpoint and that state.
func (a *applier) ddl(ctx context.Context, g GTID, schema, query string) error {
	if err := a.flush(ctx); err != nil {
		return err
	}
	a.tables = map[string]*table{}
	if err := a.setGTID(ctx, g); err != nil {
		return err
	}
	if schema != "" {
		if _, err := a.conn.ExecContext(ctx, "USE "+quoteIdent(schema)); err != nil {
			// The statement may create the schema or not depend on it.
			var exists int
			if qerr := a.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=?", schema).Scan(&exists); qerr != nil || exists > 0 {
				return classify("use "+schema, err)
			}
		}
	}
	// Statements run with the server's default sql_mode, like the source's,
	// and their text is utf8mb4.
	if _, err := a.conn.ExecContext(ctx, "SET SESSION sql_mode=@@global.sql_mode, character_set_client=utf8mb4"); err != nil {
		return classify("ddl session", err)
	}
	_, err := a.conn.ExecContext(ctx, query)
	if _, rerr := a.conn.ExecContext(ctx, "SET SESSION sql_mode='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', character_set_client=binary"); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return classify(fmt.Sprintf("apply ddl %s (%s)", g, firstWords(query)), err)
	}
	return nil
}

// rows applies one rows event inside the open transaction.
func (a *applier) rows(ctx context.Context, ev *replication.RowsEvent) (int, error) {
	tm := ev.Table
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return 0, &Error{Kind: KindConfig, Op: "rows event", Err: fmt.Errorf(
			"table %s.%s: the source logs no column names: set binlog_row_metadata=FULL on the source", tm.Schema, tm.Table)}
	}
	schema, name := string(tm.Schema), string(tm.Table)
	t, err := a.table(ctx, schema, name)
	if err != nil {
		return 0, err
	}
	// Columns written: all but generated ones.
	var cols []int
	for i, n := range names {
		if !t.generated[n] {
			cols = append(cols, i)
		}
	}
	key := tm.PrimaryKey
	where := make([]int, 0, len(key))
	for _, k := range key {
		where = append(where, int(k))
	}
	if len(where) == 0 {
		a.noPK[schema+"."+name] = true
		where = cols // no primary key: match on the whole before image
	}
	unsigned := tm.UnsignedMap()
	lit := func(b []byte, row []any, i int) []byte {
		return appendLiteral(b, convert(row[i], tm.ColumnType[i], unsigned[i]))
	}
	qt := quoteIdent(schema) + "." + quoteIdent(name)
	n := 0
	switch ev.Type() {
	case replication.EnumRowsEventTypeInsert:
		// Multi-row inserts of up to 256 KiB each.
		head := []byte(insertHead(qt, names, cols))
		var q []byte
		rowsInQ := 0
		for _, row := range ev.Rows {
			if rowsInQ == 0 {
				q = append(q[:0], head...)
			} else {
				q = append(q, ',')
			}
			q = append(q, '(')
			for j, c := range cols {
				if j > 0 {
					q = append(q, ',')
				}
				q = lit(q, row, c)
			}
			q = append(q, ')')
			rowsInQ++
			n++
			if len(q) >= 256<<10 {
				if err := a.queue(ctx, q, int64(rowsInQ), "insert into", schema+"."+name); err != nil {
					return n, err
				}
				rowsInQ = 0
			}
		}
		if rowsInQ > 0 {
			if err := a.queue(ctx, q, int64(rowsInQ), "insert into", schema+"."+name); err != nil {
				return n, err
			}
		}
	case replication.EnumRowsEventTypeUpdate:
		for i := 0; i+1 < len(ev.Rows); i += 2 {
			before, after := ev.Rows[i], ev.Rows[i+1]
			q := append([]byte("UPDATE "), qt...)
			q = append(q, " SET "...)
			for j, c := range cols {
				if j > 0 {
					q = append(q, ',')
				}
				q = append(q, quoteIdent(names[c])...)
				q = append(q, '=')
				q = lit(q, after, c)
			}
			q = appendWhere(q, names, where, before, len(key) == 0, lit)
			if err := a.queue(ctx, q, 1, "update", schema+"."+name); err != nil {
				return n, err
			}
			n++
		}
	case replication.EnumRowsEventTypeDelete:
		for _, before := range ev.Rows {
			q := append([]byte("DELETE FROM "), qt...)
			q = appendWhere(q, names, where, before, len(key) == 0, lit)
			if err := a.queue(ctx, q, 1, "delete from", schema+"."+name); err != nil {
				return n, err
			}
			n++
		}
	default:
		return 0, &Error{Kind: KindConfig, Op: "rows event", Err: fmt.Errorf("unsupported rows event type on %s.%s", schema, name)}
	}
	a.rowsTotal += uint64(n)
	return n, nil
}

// table loads (once per DDL epoch) which columns of a target table are
// generated.
func (a *applier) table(ctx context.Context, schema, name string) (*table, error) {
	k := schema + "." + name
	if t, ok := a.tables[k]; ok {
		return t, nil
	}
	rows, err := a.conn.QueryContext(ctx,
		"SELECT COLUMN_NAME, IS_GENERATED FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=?", schema, name)
	if err != nil {
		return nil, classify("describe "+k, err)
	}
	defer rows.Close()
	t := &table{generated: map[string]bool{}}
	found := 0
	for rows.Next() {
		var col, gen string
		if err := rows.Scan(&col, &gen); err != nil {
			return nil, classify("describe "+k, err)
		}
		found++
		if gen == "ALWAYS" {
			t.generated[col] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify("describe "+k, err)
	}
	if found == 0 {
		return nil, &Error{Kind: KindSchemaMismatch, Op: "describe " + k, Err: errors.New("table does not exist on the target")}
	}
	a.tables[k] = t
	return t, nil
}

func insertHead(qt string, names []string, cols []int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(qt)
	b.WriteString(" (")
	for j, i := range cols {
		if j > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quoteIdent(names[i]))
	}
	b.WriteString(") VALUES ")
	return b.String()
}

// appendWhere matches a row by its key; without a key, by every column with
// the NULL-safe operator and LIMIT 1.
func appendWhere(q []byte, names []string, where []int, before []any, noPK bool, lit func([]byte, []any, int) []byte) []byte {
	q = append(q, " WHERE "...)
	op := "="
	if noPK {
		op = "<=>"
	}
	for j, c := range where {
		if j > 0 {
			q = append(q, " AND "...)
		}
		q = append(q, quoteIdent(names[c])...)
		q = append(q, op...)
		q = lit(q, before, c)
	}
	if noPK {
		q = append(q, " LIMIT 1"...)
	}
	return q
}

// appendLiteral writes v as an SQL literal. Strings and bytes become
// _binary'…' with backslash escapes (the applier's session sql_mode keeps
// backslash escaping on), so their bytes reach the column unchanged.
func appendLiteral(q []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(q, "NULL"...)
	case int64:
		return strconv.AppendInt(q, x, 10)
	case uint64:
		return strconv.AppendUint(q, x, 10)
	case float64:
		return strconv.AppendFloat(q, x, 'g', -1, 64)
	case []byte:
		return appendQuoted(q, x)
	case string:
		return appendQuoted(q, []byte(x))
	default:
		return appendQuoted(q, []byte(fmt.Sprint(x)))
	}
}

func appendQuoted(q, b []byte) []byte {
	q = append(q, "_binary'"...)
	for _, c := range b {
		switch c {
		case 0:
			q = append(q, '\\', '0')
		case '\n':
			q = append(q, '\\', 'n')
		case '\r':
			q = append(q, '\\', 'r')
		case '\\':
			q = append(q, '\\', '\\')
		case '\'':
			q = append(q, '\\', '\'')
		case 0x1a:
			q = append(q, '\\', 'Z')
		default:
			q = append(q, c)
		}
	}
	return append(q, '\'')
}

// convert turns a value decoded by go-mysql into a driver argument that
// stores the same value: integers with their signedness, strings and blobs
// as raw bytes, DECIMAL as its exact text.
func convert(v any, colType byte, unsigned bool) any {
	switch x := v.(type) {
	case nil:
		return nil
	case int8:
		if unsigned {
			return uint64(uint8(x))
		}
		return int64(x)
	case int16:
		if unsigned {
			return uint64(uint16(x))
		}
		return int64(x)
	case int32:
		if unsigned {
			if colType == gomysql.MYSQL_TYPE_INT24 {
				return uint64(uint32(x) & 0xFFFFFF)
			}
			return uint64(uint32(x))
		}
		return int64(x)
	case int64:
		if unsigned || colType == gomysql.MYSQL_TYPE_BIT {
			return uint64(x)
		}
		return x
	case uint64:
		return x
	case string:
		return []byte(x)
	case []byte:
		return x
	case decimal.Decimal:
		return x.String()
	case float32:
		return float64(x)
	case float64:
		return x
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999")
	case fmt.Stringer:
		return x.String()
	default:
		return v
	}
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func firstWords(q string) string {
	f := strings.Fields(q)
	if len(f) > 4 {
		f = f[:4]
	}
	return strings.Join(f, " ")
}

// StreamGrants are the least privileges of the account that reads a
// source's binlog (%s is the quoted account).
var StreamGrants = []string{"GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, SELECT ON *.* TO %s"}

// ApplyGrants are the least privileges of the applier on a target: DML and
// DDL, READ_ONLY ADMIN to write while the standby is read_only=ON, and
// BINLOG REPLAY to keep the origin GTID of each transaction.
var ApplyGrants = []string{
	"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, CREATE VIEW, SHOW VIEW, TRIGGER, LOCK TABLES, CREATE TEMPORARY TABLES ON *.* TO %s",
	"GRANT READ_ONLY ADMIN, BINLOG REPLAY ON *.* TO %s",
}
