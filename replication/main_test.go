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

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
)

// pair is a source and a read-only target with the accounts Drover uses:
// a streaming account on the source and an applier on the target.
type pair struct {
	src, dst  *testenv.MariaDB
	srcRoot   *sql.DB
	dstRoot   *sql.DB
	streamPW  string
	applyPW   string
	dirs      []string
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

var (
	streamGrants = replication.StreamGrants
	applyGrants  = replication.ApplyGrants
)

func newPair(base uint32) (*pair, error) {
	ctx := context.Background()
	p := &pair{replicaID: 1000 + base}
	sdir, err := testenv.TempDir("drvrsrc")
	if err != nil {
		return nil, err
	}
	ddir, err := testenv.TempDir("drvrdst")
	if err != nil {
		return nil, err
	}
	p.dirs = []string{sdir, ddir}
	if p.src, err = testenv.StartMariaDB(ctx, sdir, "127.0.0.1", base*10+1); err != nil {
		return nil, err
	}
	if p.dst, err = testenv.StartMariaDB(ctx, ddir, "127.0.0.1", base*10+2); err != nil {
		p.src.Close()
		return nil, err
	}
	if p.srcRoot, err = p.src.RootDB(); err != nil {
		return nil, err
	}
	if p.dstRoot, err = p.dst.RootDB(); err != nil {
		return nil, err
	}
	p.streamPW, p.applyPW = "stream-pw", "apply-pw"
	if err := p.src.Bootstrap(ctx, nil, []local.User{{Name: "drover_stream", Password: p.streamPW, Grants: streamGrants}}); err != nil {
		return nil, err
	}
	if err := p.dst.Bootstrap(ctx, nil, []local.User{{Name: "drover_apply", Password: p.applyPW, Grants: applyGrants}}); err != nil {
		return nil, err
	}
	if err := p.src.SetReadOnly(ctx, false); err != nil {
		return nil, err
	}
	// The target stays read_only=ON: only the applier (READ_ONLY ADMIN) writes.
	if err := replication.Setup(ctx, p.dstRoot); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pair) close() {
	p.srcRoot.Close()
	p.dstRoot.Close()
	p.src.Close()
	p.dst.Close()
	for _, d := range p.dirs {
		os.RemoveAll(d)
	}
}

func (p *pair) config(stream string) replication.Config {
	return replication.Config{
		Stream:          stream,
		Source:          replication.Endpoint{Addr: p.src.Addr(), User: "drover_stream", Password: p.streamPW},
		Target:          replication.Endpoint{Addr: p.dst.Addr(), User: "drover_apply", Password: p.applyPW},
		ReplicaServerID: p.replicaID,
		HeartbeatPeriod: 500 * time.Millisecond,
	}
}

// run starts a streamer in the background; the returned stop function
// cancels it and returns Run's error.
func (p *pair) run(t *testing.T, cfg replication.Config) (*replication.Streamer, func() error) {
	t.Helper()
	s, err := replication.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("streamer did not stop within 30s")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

// caughtUp waits until the streamer has applied everything the source has.
func (p *pair) caughtUp(t *testing.T, s *replication.Streamer, timeout time.Duration) {
	t.Helper()
	var want string
	if err := p.srcRoot.QueryRow("SELECT @@global.gtid_binlog_pos").Scan(&want); err != nil {
		t.Fatal(err)
	}
	src := replication.MustParsePosition(want)
	ok := testenv.WaitFor(timeout, func() bool {
		st := s.Stats()
		if st.State == "stopped" && st.LastError != "" {
			return true // fail below without waiting out the timeout
		}
		got, err := replication.ParsePosition(st.Position)
		return err == nil && got.Behind(src) == 0
	})
	if st := s.Stats(); st.State == "stopped" && st.LastError != "" {
		t.Fatalf("streamer stopped: %s", st.LastError)
	}
	if !ok {
		t.Fatalf("not caught up after %s: applied %s, source %s; stats %+v", timeout, s.Stats().Position, want, s.Stats())
	}
}

func (p *pair) exec(t *testing.T, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := p.srcRoot.Exec(q); err != nil {
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
	rows, err := db.Query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY ORDINAL_POSITION", schema, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func tableNames(t *testing.T, db *sql.DB, schema string) []string {
	t.Helper()
	rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? ORDER BY TABLE_NAME", schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// dumpRows renders every row of a table as text (HEX for every value, so
// binary data and character sets compare byte for byte), sorted.
func dumpRows(t *testing.T, db *sql.DB, schema, table string) []string {
	t.Helper()
	crow, err := db.Query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY ORDINAL_POSITION", schema, table)
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for crow.Next() {
		var c string
		if err := crow.Scan(&c); err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, fmt.Sprintf("IFNULL(HEX(`%s`),'NULL')", c))
	}
	crow.Close()
	rows, err := db.Query(fmt.Sprintf("SELECT CONCAT_WS('|', %s) FROM `%s`.`%s`", strings.Join(exprs, ","), schema, table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
