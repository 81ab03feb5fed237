package snapshot

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/drover-sre/drover/replication"
)

// StateDDL and ProgressDDL are the target-side bookkeeping of copies, in
// Drover's own schema (never replicated), written with sql_log_bin=0.
const (
	StateDDL = `CREATE TABLE IF NOT EXISTS drover.clone_state (
  clone_id   VARCHAR(191) NOT NULL PRIMARY KEY,
  source     VARCHAR(255) NOT NULL,
  schema_list TEXT NOT NULL,
  attempt    INT UNSIGNED NOT NULL,
  gtid       VARCHAR(4096) NOT NULL,
  state      VARCHAR(16) NOT NULL,
  started_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  result     LONGTEXT NULL
) ENGINE=InnoDB`
	ProgressDDL = `CREATE TABLE IF NOT EXISTS drover.clone_progress (
  clone_id    VARCHAR(191) NOT NULL,
  schema_name VARCHAR(64) NOT NULL,
  table_name  VARCHAR(64) NOT NULL,
  task        INT UNSIGNED NOT NULL,
  seq         INT NOT NULL,
  lo_key      LONGBLOB NULL,
  hi_key      LONGBLOB NULL,
  whole_table TINYINT NOT NULL DEFAULT 0,
  row_count   BIGINT UNSIGNED NOT NULL DEFAULT 0,
  byte_count  BIGINT UNSIGNED NOT NULL DEFAULT 0,
  attempt     INT UNSIGNED NOT NULL,
  copied_at   DATETIME(6) NOT NULL,
  PRIMARY KEY (clone_id, schema_name, table_name, task, seq)
) ENGINE=InnoDB`
)

// Session settings of every target session: nothing reaches the binlog;
// UTC; permissive sql_mode with backslash escapes and explicit zero ids;
// foreign keys and CHECK constraints were checked on the source (tables
// load in parallel, in any order). unique_checks stays on: with it off
// (and foreign_key_checks off), MariaDB ≥ 10.6 bulk-inserts into an empty
// table under an exclusive table lock, which serialises the writers of a
// table's first chunks and can deadlock them (seen with 6 writers).
const targetSessionBase = "SET SESSION sql_log_bin=0, time_zone='+00:00', " +
	"sql_mode='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', foreign_key_checks=0, unique_checks=1, " +
	"check_constraint_checks=0, max_statement_time=0, net_read_timeout=3600, net_write_timeout=3600"

// dataSession is a writer: literals are binary strings, stored unconverted;
// READ COMMITTED, so that clearing a key range takes no gap locks that a
// neighbouring chunk's inserts would wait for.
func dataSession(ctx context.Context, c *sql.Conn) error {
	return execAll(ctx, c, targetSessionBase,
		"SET SESSION character_set_client=binary, character_set_connection=binary, character_set_results=binary",
		"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
}

// ddlSession runs definitions, whose text is utf8.
func ddlSession(ctx context.Context, c *sql.Conn) error {
	return execAll(ctx, c, targetSessionBase, "SET NAMES utf8mb4")
}

// cloneState is a row of drover.clone_state.
type cloneState struct {
	found   bool
	source  string
	schemas []string
	attempt int
	gtid    string
	state   string
	result  string
}

func readState(ctx context.Context, c *sql.Conn, id string) (cloneState, error) {
	var st cloneState
	var schemas string
	var res sql.NullString
	err := c.QueryRowContext(ctx, "SELECT source, schema_list, attempt, gtid, state, result FROM drover.clone_state WHERE clone_id=?", id).
		Scan(&st.source, &schemas, &st.attempt, &st.gtid, &st.state, &res)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	st.found, st.result = true, res.String
	if schemas != "" {
		st.schemas = strings.Split(schemas, ",")
	}
	return st, nil
}

// setupTarget creates Drover's schema, the checkpoint table and the copy's
// bookkeeping, without binary logging.
func setupTarget(ctx context.Context, db *sql.DB, c *sql.Conn) error {
	if err := replication.Setup(ctx, db); err != nil {
		return err
	}
	return execAll(ctx, c, StateDDL, ProgressDDL)
}

// autoIncrement matches the table option that differs between a source
// table and its copy without meaning a different definition.
var autoIncrement = regexp.MustCompile(` AUTO_INCREMENT=\d+`)

// sameDefinition compares two SHOW CREATE TABLE texts.
func sameDefinition(a, b string) bool {
	return autoIncrement.ReplaceAllString(a, "") == autoIncrement.ReplaceAllString(b, "")
}

// record is a row of drover.clone_progress: a task (seq -1: a key range a
// reader copies as a chain of chunks) or one of its chunks (seq 0, 1, … in
// key order; chunk n+1 starts exactly where chunk n ends).
type record struct {
	task  int
	seq   int
	r     keyRange
	whole bool
	rows  uint64
	bytes uint64
}

// readRecords loads the recorded tasks and chunks of t for a clone, by
// task then seq.
func readRecords(ctx context.Context, c *sql.Conn, cloneID string, t *table) ([]record, error) {
	rows, err := c.QueryContext(ctx, `SELECT task, seq, lo_key, hi_key, whole_table, row_count, byte_count FROM drover.clone_progress
		WHERE clone_id=? AND schema_name=? AND table_name=? ORDER BY task, seq`, cloneID, t.Schema, t.Name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []record
	for rows.Next() {
		var d record
		var lo, hi []byte
		var whole int
		if err := rows.Scan(&d.task, &d.seq, &lo, &hi, &whole, &d.rows, &d.bytes); err != nil {
			return nil, err
		}
		d.whole = whole != 0
		if d.r.Lo, err = decodeKey(lo, len(t.PK)); err == nil {
			d.r.Hi, err = decodeKey(hi, len(t.PK))
		}
		if err != nil {
			return nil, fmt.Errorf("progress of %s task %d chunk %d: %w", t.id(), d.task, d.seq, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// targetTables lists the base tables and their definitions in a schema.
func targetTables(ctx context.Context, c *sql.Conn, schema string) (map[string]string, error) {
	names, err := queryStrings(ctx, c, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_TYPE IN ('BASE TABLE','SYSTEM VERSIONED')", schema)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		var name, create string
		if err := c.QueryRowContext(ctx, "SHOW CREATE TABLE "+quoteIdent(schema)+"."+quoteIdent(n)).Scan(&name, &create); err != nil {
			return nil, err
		}
		out[n] = create
	}
	return out, nil
}

// schemaObjects counts what a target schema holds (tables, views, routines).
func schemaObjects(ctx context.Context, c *sql.Conn, schema string) (int, error) {
	var n, r int
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=?", schema).Scan(&n); err != nil {
		return 0, err
	}
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=?", schema).Scan(&r); err != nil {
		return 0, err
	}
	return n + r, nil
}

// createSchema creates a schema as the source has it.
func createSchema(ctx context.Context, c *sql.Conn, d schemaDef) error {
	q := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(d.Name) + " CHARACTER SET " + d.Charset + " COLLATE " + d.Collation
	if d.Comment != "" {
		q += " COMMENT " + string(appendQuoted(nil, []byte(d.Comment)))
	}
	_, err := c.ExecContext(ctx, q)
	return err
}

// createObject recreates a view, trigger or routine with the sql_mode and
// collation it was created with. Views are replaced; triggers and routines
// are dropped first.
func createObject(ctx context.Context, c *sql.Conn, o object) error {
	var pre []string
	switch o.Kind {
	case "TRIGGER":
		pre = append(pre, "DROP TRIGGER IF EXISTS "+quoteIdent(o.Schema)+"."+quoteIdent(o.Name))
	case "PROCEDURE", "FUNCTION":
		pre = append(pre, "DROP "+o.Kind+" IF EXISTS "+quoteIdent(o.Schema)+"."+quoteIdent(o.Name))
	}
	pre = append(pre, "USE "+quoteIdent(o.Schema))
	if o.SQLMode != "" || o.Kind == "TRIGGER" || o.Kind == "PROCEDURE" || o.Kind == "FUNCTION" {
		pre = append(pre, "SET SESSION sql_mode="+string(appendQuoted(nil, []byte(o.SQLMode))))
	}
	if o.Collation != "" {
		pre = append(pre, "SET SESSION collation_connection="+string(appendQuoted(nil, []byte(o.Collation))))
	}
	if err := execAll(ctx, c, pre...); err != nil {
		return err
	}
	create := o.Create
	if o.Kind == "VIEW" {
		create = strings.Replace(create, "CREATE ", "CREATE OR REPLACE ", 1)
	}
	_, err := c.ExecContext(ctx, create)
	// Back to the DDL session's settings whatever happened.
	if rerr := execAll(context.WithoutCancel(ctx), c, targetSessionBase, "SET NAMES utf8mb4"); err == nil {
		err = rerr
	}
	return err
}

// recordInsert is the bookkeeping statement of a task (seq -1) or chunk.
func recordInsert(cloneID string, t *table, task, seq int, r keyRange, whole bool, rows, bytes uint64, attempt int) string {
	q := []byte("INSERT INTO drover.clone_progress (clone_id, schema_name, table_name, task, seq, lo_key, hi_key, whole_table, row_count, byte_count, attempt, copied_at) VALUES (")
	for _, s := range []string{cloneID, t.Schema, t.Name} {
		q = appendQuoted(q, []byte(s))
		q = append(q, ',')
	}
	q = fmt.Appendf(q, "%d,%d,", task, seq)
	for _, k := range []key{r.Lo, r.Hi} {
		if k == nil {
			q = append(q, "NULL,"...)
		} else {
			q = fmt.Appendf(q, "X'%x',", encodeKey(k))
		}
	}
	w := 0
	if whole {
		w = 1
	}
	q = fmt.Appendf(q, "%d,%d,%d,%d,NOW(6))", w, rows, bytes, attempt)
	return string(q)
}

// recordsFrom deletes a task's chunk records from seq on.
func recordsFrom(cloneID string, t *table, task, seq int) string {
	q := []byte("DELETE FROM drover.clone_progress WHERE clone_id=")
	q = appendQuoted(q, []byte(cloneID))
	q = append(q, " AND schema_name="...)
	q = appendQuoted(q, []byte(t.Schema))
	q = append(q, " AND table_name="...)
	q = appendQuoted(q, []byte(t.Name))
	return string(fmt.Appendf(q, " AND task=%d AND seq>=%d", task, seq))
}

// resultJSON stores a result in clone_state.
func resultJSON(r CopyResult) string {
	b, _ := json.Marshal(r)
	return string(b)
}
