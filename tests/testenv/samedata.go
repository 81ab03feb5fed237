package testenv

import (
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// SameData fails tb unless schema holds the same tables on src and dst,
// with equal CHECKSUM TABLE EXTENDED and equal rows (every value compared
// as HEX, so character sets and binary data compare byte for byte). It
// reads each side as it is: callers stop writes or wait for the stream
// first.
func SameData(tb testing.TB, src, dst *sql.DB, schema string) {
	tb.Helper()
	tables := TableNames(tb, src, schema)
	if got := TableNames(tb, dst, schema); strings.Join(got, ",") != strings.Join(tables, ",") {
		tb.Fatalf("%s: tables differ: source %v, target %v", schema, tables, got)
	}
	for _, tbl := range tables {
		q := fmt.Sprintf("CHECKSUM TABLE `%s`.`%s` EXTENDED", schema, tbl)
		var n string
		var a, b sql.NullInt64
		if err := src.QueryRow(q).Scan(&n, &a); err != nil {
			tb.Fatal(err)
		}
		if err := dst.QueryRow(q).Scan(&n, &b); err != nil {
			tb.Fatal(err)
		}
		if a != b {
			tb.Errorf("%s.%s: CHECKSUM TABLE source %v target %v", schema, tbl, a, b)
		}
		rs, rd := DumpRows(tb, src, schema, tbl), DumpRows(tb, dst, schema, tbl)
		if len(rs) != len(rd) {
			tb.Errorf("%s.%s: %d rows on the source, %d on the target", schema, tbl, len(rs), len(rd))
			continue
		}
		for i := range rs {
			if rs[i] != rd[i] {
				tb.Errorf("%s.%s: row %d differs:\nsource %.200s\ntarget %.200s", schema, tbl, i, rs[i], rd[i])
				break
			}
		}
	}
}

// TableNames lists a schema's base tables, sorted.
func TableNames(tb testing.TB, db *sql.DB, schema string) []string {
	tb.Helper()
	return Strings(tb, db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? AND TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME", schema)
}

// DumpRows renders every row of a table (all columns, invisible ones
// included) as HEX values joined by '|', sorted.
func DumpRows(tb testing.TB, db *sql.DB, schema, table string) []string {
	tb.Helper()
	var exprs []string
	for _, c := range Strings(tb, db, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY ORDINAL_POSITION", schema, table) {
		exprs = append(exprs, fmt.Sprintf("IFNULL(HEX(`%s`),'NULL')", c))
	}
	out := Strings(tb, db, fmt.Sprintf("SELECT CONCAT_WS('|', %s) FROM `%s`.`%s`", strings.Join(exprs, ","), schema, table))
	sort.Strings(out)
	return out
}

// Strings runs a query returning one string column and collects it.
func Strings(tb testing.TB, db *sql.DB, q string, args ...any) []string {
	tb.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			tb.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}
