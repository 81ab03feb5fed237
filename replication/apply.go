package replication

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
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

// applier writes source transactions into the target over one session.
// Every source transaction is applied with its origin GTID (domain, server
// id, sequence), so the target's binlog mirrors the source and gtid_strict_mode
// refuses a transaction applied twice. Several source transactions may share
// one target transaction (a group): it carries the GTID of the first and the
// checkpoint row of the last. Row changes travel as the source's own row
// events in BINLOG statements (binlogstmt.go).
type applier struct {
	conn   *sql.Conn
	stream string
	// batch holds plain statements not yet sent (GTID variables, BEGIN,
	// the checkpoint): they travel in one multi-statement round trip.
	batch    []byte
	maxBatch int // bytes of raw events per BINLOG statement
	// session GTID variables as last set
	domain, server uint32
	sessionSet     bool

	inTx      bool // a target transaction is open
	noPK      map[string]bool
	rowsTotal uint64

	fde      []byte            // raw Format_description event the session last executed
	maps     map[uint64][]byte // raw Table_map events of the current statement, by table id
	stmt     []byte            // raw row events (with their table maps) not yet sent
	stmtMaps map[uint64]bool   // table maps already in stmt since the last statement end
	// perStatement sends each source statement in its own BINLOG
	// statement (see annotations).
	perStatement bool
}

func newApplier(conn *sql.Conn, stream string) *applier {
	return &applier{conn: conn, stream: stream, noPK: map[string]bool{}, maxBatch: 1 << 20,
		maps: map[uint64][]byte{}, stmtMaps: map[uint64]bool{}}
}

// queue adds a plain statement to the batch.
func (a *applier) queue(stmt []byte) {
	if len(a.batch) > 0 {
		a.batch = append(a.batch, ';')
	}
	a.batch = append(a.batch, stmt...)
}

// flush sends the batch as one multi-statement round trip; the server stops
// at the first statement that fails.
func (a *applier) flush(ctx context.Context) error {
	if len(a.batch) == 0 {
		return nil
	}
	q := string(a.batch)
	a.batch = a.batch[:0]
	if _, err := a.conn.ExecContext(ctx, q); err != nil {
		return classify("apply", err)
	}
	return nil
}

// session prepares the applier's session (and says what it had to give up):
// UTC, NO_AUTO_VALUE_ON_ZERO so
// explicit 0 ids stay 0, and foreign key checks on (cascades are not in the
// row log: the target must perform them itself; a row event that had them
// off on the source carries a flag the server honours).
func (a *applier) session(ctx context.Context) (warning string, err error) {
	for _, q := range []string{
		// The checkpoint's literals are _binary; DDL switches to utf8mb4.
		"SET SESSION character_set_client=binary",
		"SET SESSION time_zone='+00:00'",
		"SET SESSION sql_mode='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
		"SET SESSION foreign_key_checks=1",
		"SET SESSION tx_isolation='READ-COMMITTED'",
	} {
		if _, err := a.conn.ExecContext(ctx, q); err != nil {
			return "", classify("applier session: "+q, err)
		}
	}
	return a.annotations(ctx)
}

// annotations keeps the target's binlog linear in what is applied. With
// binlog_annotate_row_events=ON the server writes, before each row
// statement, the text of the statement that made it: for a BINLOG
// statement carrying a whole group, that is the whole group again per row
// statement. The session variable needs BINLOG ADMIN, which the applier
// need not have; a server that annotates anyway gets one BINLOG statement
// per source statement (more round trips, bounded binlog), and a warning.
func (a *applier) annotations(ctx context.Context) (warning string, err error) {
	var on bool
	if err := a.conn.QueryRowContext(ctx, "SELECT @@session.binlog_annotate_row_events").Scan(&on); err != nil {
		return "", classify("applier session: binlog_annotate_row_events", err)
	}
	if !on {
		return "", nil
	}
	if _, err := a.conn.ExecContext(ctx, "SET SESSION binlog_annotate_row_events=OFF"); err == nil {
		return "", nil
	} else if kindOf(err) != KindAuth {
		return "", classify("applier session: binlog_annotate_row_events", err)
	}
	a.perStatement = true
	return "the target runs binlog_annotate_row_events=ON and the applier may not turn it off for its session: " +
		"applying one source statement per round trip (slower catch-up); set it OFF on the target server", nil
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
func (a *applier) begin(g GTID) {
	for _, q := range append(a.gtidStatements(g), "BEGIN") {
		a.queue([]byte(q))
	}
	a.inTx = true
}

// commit sends the rows not yet sent, then records the checkpoint in the
// open transaction and commits both in one round trip (the server does not
// run COMMIT if the checkpoint fails).
func (a *applier) commit(ctx context.Context, pos Position, sourceTS time.Time, txns int) error {
	q := appendQuoted([]byte("INSERT INTO drover.replication_checkpoint (stream, gtid, source_ts, applied_at, txns) VALUES ("), []byte(a.stream))
	q = append(q, ',')
	q = appendQuoted(q, []byte(pos.String()))
	q = append(q, ',')
	q = appendQuoted(q, []byte(sourceTS.UTC().Format("2006-01-02 15:04:05.999999")))
	q = append(q, ",NOW(6),"...)
	q = strconv.AppendInt(q, int64(txns), 10)
	q = append(q, ") ON DUPLICATE KEY UPDATE gtid=VALUES(gtid), source_ts=VALUES(source_ts), applied_at=VALUES(applied_at), txns=txns+VALUES(txns)"...)
	if err := a.sendRows(ctx); err != nil {
		return err
	}
	a.queue(q)
	a.queue([]byte("COMMIT"))
	if err := a.flush(ctx); err != nil {
		return err
	}
	a.inTx = false
	return nil
}

// rollback abandons the batch and the open transaction, if any.
func (a *applier) rollback(ctx context.Context) {
	a.batch = a.batch[:0]
	a.stmt = a.stmt[:0]
	clear(a.maps)
	clear(a.stmtMaps)
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

// appendQuoted writes b as a _binary'…' literal with backslash escapes (the
// applier's session sql_mode keeps backslash escaping on), so its bytes
// reach the column unchanged.
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
// BINLOG REPLAY to keep the origin GTID of each transaction and to apply
// row events with BINLOG statements.
var ApplyGrants = []string{
	"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, CREATE VIEW, SHOW VIEW, TRIGGER, LOCK TABLES, CREATE TEMPORARY TABLES ON *.* TO %s",
	"GRANT READ_ONLY ADMIN, BINLOG REPLAY ON *.* TO %s",
}
