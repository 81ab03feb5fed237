package replication_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
)

// pair is a source and a read-only target with the accounts Drover uses:
// a streaming account on the source and an applier on the target.
type pair struct {
	src, dst  *testenv.Server
	replicaID uint32
}

var shared *pair

func TestMain(m *testing.M) {
	p, err := newPair(1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start mariadb pair:", err)
		os.Exit(1)
	}
	shared = p
	code := m.Run()
	p.close()
	os.Exit(code)
}

// newPair starts a source (server and domain id base*10+1) and a target
// (base*10+2) with testenv's stream and apply accounts; the target stays
// read_only=ON, so only the applier (READ_ONLY ADMIN) writes.
func newPair(base uint32) (*pair, error) {
	ctx := context.Background()
	src, err := testenv.StartServer(ctx, "127.0.0.1", base*10+1)
	if err != nil {
		return nil, err
	}
	dst, err := testenv.StartServer(ctx, "127.0.0.1", base*10+2)
	if err != nil {
		src.Close()
		return nil, err
	}
	p := &pair{src: src, dst: dst, replicaID: 1000 + base}
	if err := src.MakeSource(ctx); err != nil {
		p.close()
		return nil, err
	}
	if err := dst.MakeTarget(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *pair) close() {
	p.src.Close()
	p.dst.Close()
}

func (p *pair) config(stream string) replication.Config {
	cfg := testenv.StreamConfig(stream, p.src, p.dst, p.replicaID)
	cfg.HeartbeatPeriod = 500 * time.Millisecond
	return cfg
}

// run starts a streamer in the background, stopped at the end of the test.
func (p *pair) run(t *testing.T, cfg replication.Config) *testenv.Running {
	t.Helper()
	return testenv.StartStream(t, cfg)
}

// caughtUp waits until the streamer has applied everything the source has;
// it fails at once if the streamer stopped.
func (p *pair) caughtUp(t *testing.T, r *testenv.Running, timeout time.Duration) {
	t.Helper()
	want, err := p.src.Position(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.WaitApplied(context.Background(), want, 50*time.Millisecond, timeout); err != nil {
		t.Fatal(err)
	}
}

func (p *pair) exec(t *testing.T, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := p.src.Root.Exec(q); err != nil {
			t.Fatalf("source: %s: %v", q, err)
		}
	}
}

// sameData asserts that every table of schema holds the same rows on both
// servers: CHECKSUM TABLE and a row-by-row comparison in primary-key order.
func sameData(t *testing.T, src, dst *sql.DB, schema string) {
	t.Helper()
	tables := tableNames(t, src, schema)
	if got := tableNames(t, dst, schema); strings.Join(got, ",") != strings.Join(tables, ",") {
		t.Fatalf("tables differ: source %v, target %v", tables, got)
	}
	for _, tb := range tables {
		q := fmt.Sprintf("CHECKSUM TABLE `%s`.`%s` EXTENDED", schema, tb)
		var n string
		var a, b sql.NullInt64
		if err := src.QueryRow(q).Scan(&n, &a); err != nil {
			t.Fatal(err)
		}
		if err := dst.QueryRow(q).Scan(&n, &b); err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("%s.%s: CHECKSUM TABLE source %v target %v", schema, tb, a, b)
		}
		rs, rd := dumpRows(t, src, schema, tb), dumpRows(t, dst, schema, tb)
		if len(rs) != len(rd) {
			t.Errorf("%s.%s: %d rows on the source, %d on the target", schema, tb, len(rs), len(rd))
			continue
		}
		for i := range rs {
			if rs[i] != rd[i] {
				t.Errorf("%s.%s row %d differs: %s", schema, tb, i, columnDiff(cols(t, src, schema, tb), rs[i], rd[i]))
				break
			}
		}
	}
}

// columnDiff names the columns whose HEX values differ (values shortened).
func columnDiff(names []string, a, b string) string {
	av, bv := strings.Split(a, "|"), strings.Split(b, "|")
	var out []string
	short := func(s string) string {
		if len(s) > 40 {
			return s[:40] + "…"
		}
		return s
	}
	for i := range av {
		if i < len(bv) && av[i] != bv[i] && i < len(names) {
			out = append(out, fmt.Sprintf("%s: source %s target %s", names[i], short(av[i]), short(bv[i])))
		}
	}
	return strings.Join(out, "; ")
}

func cols(t *testing.T, db *sql.DB, schema, table string) []string {
	t.Helper()
	return strs(t, db, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY ORDINAL_POSITION", schema, table)
}

// strs runs a query returning one string column and collects it.
func strs(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func tableNames(t *testing.T, db *sql.DB, schema string) []string {
	t.Helper()
	return strs(t, db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? ORDER BY TABLE_NAME", schema)
}

// dumpRows renders every row of a table as text (HEX for every value, so
// binary data and character sets compare byte for byte), sorted.
func dumpRows(t *testing.T, db *sql.DB, schema, table string) []string {
	t.Helper()
	var exprs []string
	for _, c := range cols(t, db, schema, table) {
		exprs = append(exprs, fmt.Sprintf("IFNULL(HEX(`%s`),'NULL')", c))
	}
	out := strs(t, db, fmt.Sprintf("SELECT CONCAT_WS('|', %s) FROM `%s`.`%s`", strings.Join(exprs, ","), schema, table))
	sort.Strings(out)
	return out
}
