package replication

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
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
	stmts  map[string]*sql.Stmt
	tables map[string]*table
	// session GTID variables as last set
	domain, server uint32
	sessionSet     bool

	inTx      bool // a target transaction is open
	noPK      map[string]bool
	rowsTotal uint64
}

func newApplier(conn *sql.Conn, stream string) *applier {
	return &applier{conn: conn, stream: stream, stmts: map[string]*sql.Stmt{}, tables: map[string]*table{}, noPK: map[string]bool{}}
}

func (a *applier) close() {
	for _, s := range a.stmts {
		s.Close()
	}
	a.stmts = map[string]*sql.Stmt{}
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

// setGTID makes the next target transaction carry g. MariaDB refuses to
// change these variables inside a transaction, and checks gtid_seq_no
// against the session's current domain: hence separate statements, in order.
func (a *applier) setGTID(ctx context.Context, g GTID) error {
	if !a.sessionSet || a.domain != g.Domain {
		if _, err := a.conn.ExecContext(ctx, fmt.Sprintf("SET SESSION gtid_domain_id=%d", g.Domain)); err != nil {
			return classify("set gtid_domain_id", err)
		}
		a.domain = g.Domain
	}
	if !a.sessionSet || a.server != g.ServerID {
		if _, err := a.conn.ExecContext(ctx, fmt.Sprintf("SET SESSION server_id=%d", g.ServerID)); err != nil {
			return classify("set server_id", err)
		}
		a.server = g.ServerID
	}
	a.sessionSet = true
	if _, err := a.conn.ExecContext(ctx, fmt.Sprintf("SET SESSION gtid_seq_no=%d", g.Seq)); err != nil {
		return classify("set gtid_seq_no "+g.String(), err)
	}
	return nil
}

// begin opens a target transaction that will carry GTID g.
func (a *applier) begin(ctx context.Context, g GTID) error {
	if err := a.setGTID(ctx, g); err != nil {
		return err
	}
	if _, err := a.conn.ExecContext(ctx, "BEGIN"); err != nil {
		return classify("begin", err)
	}
	a.inTx = true
	return nil
}

// commit records the checkpoint in the open transaction and commits both.
func (a *applier) commit(ctx context.Context, pos Position, sourceTS time.Time, txns int) error {
	if _, err := a.conn.ExecContext(ctx,
		`INSERT INTO drover.replication_checkpoint (stream, gtid, source_ts, applied_at, txns) VALUES (?, ?, ?, NOW(6), ?)
		 ON DUPLICATE KEY UPDATE gtid=VALUES(gtid), source_ts=VALUES(source_ts), applied_at=VALUES(applied_at), txns=txns+VALUES(txns)`,
		a.stream, pos.String(), sourceTS.UTC().Format("2006-01-02 15:04:05.999999"), txns); err != nil {
		return classify("write checkpoint", err)
	}
	if _, err := a.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return classify("commit", err)
	}
	a.inTx = false
	return nil
}

// rollback abandons the open transaction, if any.
func (a *applier) rollback(ctx context.Context) {
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
	a.close() // prepared statements may refer to what the DDL changes
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
	conv := func(row []any, i int) any { return convert(row[i], tm.ColumnType[i], unsigned[i]) }
	qt := quoteIdent(schema) + "." + quoteIdent(name)
	n := 0
	switch ev.Type() {
	case replication.EnumRowsEventTypeInsert:
		// Multi-row inserts, under MariaDB's 65,535 placeholder limit.
		per := 60000 / len(cols)
		if per > 500 {
			per = 500
		}
		for start := 0; start < len(ev.Rows); start += per {
			end := min(start+per, len(ev.Rows))
			args := make([]any, 0, (end-start)*len(cols))
			for _, row := range ev.Rows[start:end] {
				for _, i := range cols {
					args = append(args, conv(row, i))
				}
			}
			q := insertSQL(qt, names, cols, end-start)
			if _, err := a.exec(ctx, q, args); err != nil {
				return n, classify("insert into "+schema+"."+name, err)
			}
			n += end - start
		}
	case replication.EnumRowsEventTypeUpdate:
		q := updateSQL(qt, names, cols, where, len(key) == 0)
		for i := 0; i+1 < len(ev.Rows); i += 2 {
			before, after := ev.Rows[i], ev.Rows[i+1]
			args := make([]any, 0, len(cols)+len(where))
			for _, c := range cols {
				args = append(args, conv(after, c))
			}
			for _, c := range where {
				args = append(args, conv(before, c))
			}
			res, err := a.exec(ctx, q, args)
			if err != nil {
				return n, classify("update "+schema+"."+name, err)
			}
			if err := expectOne(res, "update", schema, name); err != nil {
				return n, err
			}
			n++
		}
	case replication.EnumRowsEventTypeDelete:
		q := deleteSQL(qt, names, where, len(key) == 0)
		for _, before := range ev.Rows {
			args := make([]any, 0, len(where))
			for _, c := range where {
				args = append(args, conv(before, c))
			}
			res, err := a.exec(ctx, q, args)
			if err != nil {
				return n, classify("delete from "+schema+"."+name, err)
			}
			if err := expectOne(res, "delete", schema, name); err != nil {
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

// expectOne turns "no row matched" into a divergence error: the target
// lacks a row the source changed, and applying on would hide it.
func expectOne(res sql.Result, op, schema, name string) error {
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return &Error{Kind: KindSchemaMismatch, Op: op + " " + schema + "." + name,
			Err: fmt.Errorf("%d target rows matched the source row's key, want 1: source and target have diverged", n)}
	}
	return nil
}

// exec runs q with a cached prepared statement (binary protocol: strings
// travel as raw bytes, so every character set round-trips unchanged).
func (a *applier) exec(ctx context.Context, q string, args []any) (sql.Result, error) {
	st, ok := a.stmts[q]
	if !ok {
		if len(a.stmts) >= 512 {
			a.close()
		}
		var err error
		if st, err = a.conn.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
		a.stmts[q] = st
	}
	return st.ExecContext(ctx, args...)
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

func insertSQL(qt string, names []string, cols []int, rows int) string {
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
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tuple)
	}
	return b.String()
}

func updateSQL(qt string, names []string, cols, where []int, noPK bool) string {
	set := make([]string, len(cols))
	for j, i := range cols {
		set[j] = quoteIdent(names[i]) + "=?"
	}
	q := "UPDATE " + qt + " SET " + strings.Join(set, ",") + " WHERE " + whereSQL(names, where, noPK)
	if noPK {
		q += " LIMIT 1"
	}
	return q
}

func deleteSQL(qt string, names []string, where []int, noPK bool) string {
	q := "DELETE FROM " + qt + " WHERE " + whereSQL(names, where, noPK)
	if noPK {
		q += " LIMIT 1"
	}
	return q
}

// whereSQL matches by key; without a key, by every column with the
// NULL-safe operator.
func whereSQL(names []string, where []int, noPK bool) string {
	op := "=?"
	if noPK {
		op = "<=>?"
	}
	parts := make([]string, len(where))
	for j, i := range where {
		parts[j] = quoteIdent(names[i]) + op
	}
	return strings.Join(parts, " AND ")
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
			if colType == mysql.MYSQL_TYPE_INT24 {
				return uint64(uint32(x) & 0xFFFFFF)
			}
			return uint64(uint32(x))
		}
		return int64(x)
	case int64:
		if unsigned || colType == mysql.MYSQL_TYPE_BIT {
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
