package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/activities/snapshot"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/bench/benchenv"
	"github.com/drover-sre/drover/tests/testenv"
)

// Server ids (and gtid domains) of the benchmark's servers.
const (
	address  = "127.0.0.1"
	sourceID = 911
	schema   = "bench"
)

// bench holds the servers and what has been measured.
type bench struct {
	cfg     config
	src     *testenv.Server
	targets []*testenv.Server
	tables  []tableSpec
	ref     map[string]int64 // CHECKSUM TABLE on the source
	res     results
}

// tableSpec is one generated table: its DDL and the INSERT … SELECT that
// fills rows [from, to].
type tableSpec struct {
	name, ddl, fill string
	rows            int
}

// method is one way of copying the source into an empty target.
type method struct {
	name    string
	elapsed time.Duration
	cpu     cpuUse
	rows    uint64
	bytes   uint64 // Drover: column bytes; dump: bytes of SQL text through the pipe
	ok      bool   // every table's CHECKSUM TABLE matches the source
	detail  string
	copyRes *snapshot.CopyResult
}

func run(ctx context.Context, cfg config) error {
	b := &bench{cfg: cfg}
	b.res.started = time.Now()
	defer b.close()
	for _, bin := range []string{"mariadb", "mariadb-dump"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found: install the Debian package mariadb-client (make deps): %w", bin, err)
		}
	}
	n := 3
	switch {
	case !cfg.Baselines:
		n = 2
	case cfg.NoBinlogBaseline:
		n = 4
	}
	logf("starting %d MariaDB servers on %s (a source and one empty target per method)", n, address)
	var err error
	if b.src, err = testenv.StartServer(ctx, address, sourceID); err != nil {
		return err
	}
	for i := 1; i < n; i++ {
		t, err := testenv.StartServer(ctx, address, uint32(sourceID+i))
		if err != nil {
			return err
		}
		b.targets = append(b.targets, t)
	}
	b.res.version, b.res.revision = b.src.Version(ctx), revision()
	if err := b.generate(ctx); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if err := b.reference(ctx); err != nil {
		return fmt.Errorf("reference checksums: %w", err)
	}
	drover := b.drover(ctx, b.targets[0])
	b.res.methods = append(b.res.methods, drover)
	if drover.detail != "" && !drover.ok {
		return fmt.Errorf("drover: %s", drover.detail)
	}
	if !cfg.Baselines {
		logf("%s: %s, %.0f rows/s, checksums equal: %v %s", drover.name, round(drover.elapsed), drover.rowsPerSec(), drover.ok, drover.detail)
		return nil
	}
	dump := b.dump(ctx, b.targets[1], false)
	b.res.methods = append(b.res.methods, dump)
	if cfg.NoBinlogBaseline {
		b.res.methods = append(b.res.methods, b.dump(ctx, b.targets[2], true))
	}
	for _, m := range b.res.methods {
		if !m.ok {
			return fmt.Errorf("%s: %s", m.name, m.detail)
		}
	}
	if b.res.peakRSSKB, err = benchenv.ProcStatus("VmHWM"); err != nil {
		return err
	}
	b.res.finished = time.Now()
	b.report(os.Stdout)
	return benchenv.WriteSummary(cfg.Out, b.markdown())
}

func (b *bench) close() {
	if b.src != nil {
		b.src.Close()
	}
	for _, t := range b.targets {
		t.Close()
	}
}

// specs sizes the generated tables for about sizeMB MB of column values:
// 60% in eight sysbench-shaped tables (~188 bytes a row, secondary index
// on k), 30% in wide text rows (~1.3 KB), 10% in a composite-key table.
func specs(sizeMB int) []tableSpec {
	total := float64(sizeMB) * (1 << 20)
	sb := int(total * 0.6 / 8 / 188)
	docs := int(total * 0.3 / 1330)
	events := int(total * 0.1 / 150)
	var out []tableSpec
	for i := 1; i <= 8; i++ {
		name := fmt.Sprintf("sbtest%d", i)
		out = append(out, tableSpec{name: name, rows: sb,
			ddl: fmt.Sprintf("CREATE TABLE %s.%s (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0, "+
				"c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_%d (k))", schema, name, i),
			fill: fmt.Sprintf("INSERT INTO %s.%s (id, k, c, pad) SELECT seq, FLOOR(1 + RAND(seq) * %d), "+
				"LEFT(CONCAT_WS('-', MD5(seq), MD5(seq+1), MD5(seq+2), MD5(seq+3)), 120), LEFT(CONCAT_WS('-', MD5(seq*7), MD5(seq*11)), 60) "+
				"FROM seq_{from}_to_{to}", schema, name, sb)})
	}
	out = append(out, tableSpec{name: "docs", rows: docs,
		ddl: fmt.Sprintf("CREATE TABLE %s.docs (id BIGINT NOT NULL PRIMARY KEY, title VARCHAR(200) NOT NULL, body TEXT, "+
			"created DATETIME(6) NOT NULL, score DECIMAL(10,2), flags BIT(8), meta JSON, KEY (created))", schema),
		fill: fmt.Sprintf("INSERT INTO %s.docs SELECT seq, CONCAT('Document ', seq, ' – ', MD5(seq)), "+
			"REPEAT(CONCAT(MD5(seq), ' lorem ipsum dolor sit amet, café ', seq, '. '), 18), "+
			"'2020-01-01' + INTERVAL seq SECOND, MOD(seq, 100000) / 100, MOD(seq, 256), JSON_OBJECT('n', seq, 'tag', CONCAT('t', MOD(seq, 97))) "+
			"FROM seq_{from}_to_{to}", schema)})
	out = append(out, tableSpec{name: "events", rows: events,
		ddl: fmt.Sprintf("CREATE TABLE %s.events (tenant INT NOT NULL, seq BIGINT NOT NULL, kind VARCHAR(20) NOT NULL, "+
			"payload VARCHAR(255), PRIMARY KEY (tenant, seq))", schema),
		fill: fmt.Sprintf("INSERT INTO %s.events SELECT MOD(seq, 97), seq, ELT(1 + MOD(seq, 4), 'create', 'update', 'delete', 'view'), "+
			"CONCAT('{\"id\":', seq, ',\"h\":\"', MD5(seq), SHA1(seq), '\"}') FROM seq_{from}_to_{to}", schema)})
	return out
}

// generate creates and fills the tables on the source: the DDL through the
// binlog (so the source has a GTID), the rows without it, in batches, two
// tables at a time.
func (b *bench) generate(ctx context.Context) error {
	b.tables = specs(b.cfg.SizeMB)
	start := time.Now()
	if err := b.src.MakeSource(ctx); err != nil {
		return err
	}
	stmts := []string{"CREATE DATABASE " + schema}
	for _, t := range b.tables {
		stmts = append(stmts, t.ddl)
	}
	if err := b.src.Exec(ctx, stmts...); err != nil {
		return err
	}
	var rows int
	for _, t := range b.tables {
		rows += t.rows
	}
	logf("generating %d rows (~%d MB of values) in %d tables", rows, b.cfg.SizeMB, len(b.tables))
	b.src.Root.SetMaxOpenConns(4)
	work := make(chan tableSpec, len(b.tables))
	for _, t := range b.tables {
		work <- t
	}
	close(work)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := b.src.Root.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, "SET SESSION sql_log_bin=0"); err != nil {
				errs <- err
				return
			}
			for t := range work {
				const batch = 50_000
				for from := 1; from <= t.rows; from += batch {
					to := min(from+batch-1, t.rows)
					q := strings.NewReplacer("FROM seq_", "FROM "+schema+".seq_", "{from}", strconv.Itoa(from), "{to}", strconv.Itoa(to)).Replace(t.fill)
					if _, err := conn.ExecContext(ctx, q); err != nil {
						errs <- fmt.Errorf("%s: %w", t.name, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := b.src.Exec(ctx, "ANALYZE TABLE "+b.tableList()); err != nil {
		return err
	}
	var dataMB, indexMB float64
	if err := b.src.Root.QueryRowContext(ctx, "SELECT SUM(DATA_LENGTH)/1048576, SUM(INDEX_LENGTH)/1048576 FROM information_schema.TABLES WHERE TABLE_SCHEMA=?", schema).
		Scan(&dataMB, &indexMB); err != nil {
		return err
	}
	b.res.rows, b.res.dataMB, b.res.indexMB, b.res.generate = rows, dataMB, indexMB, time.Since(start)
	logf("generated in %s: InnoDB data %.0f MB, indexes %.0f MB", round(b.res.generate), dataMB, indexMB)
	return nil
}

func (b *bench) tableList() string {
	var names []string
	for _, t := range b.tables {
		names = append(names, schema+"."+t.name)
	}
	return strings.Join(names, ", ")
}

// reference reads every source table once: its checksum is what each copy
// must reproduce, and both methods then start from a warm page cache.
func (b *bench) reference(ctx context.Context) error {
	start := time.Now()
	var err error
	b.ref, err = checksums(ctx, b.src.Root, b.tableList())
	if err == nil {
		logf("source checksums read in %s", round(time.Since(start)))
	}
	return err
}

func checksums(ctx context.Context, db *sql.DB, list string) (map[string]int64, error) {
	rows, err := db.QueryContext(ctx, "CHECKSUM TABLE "+list)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var sum sql.NullInt64
		if err := rows.Scan(&name, &sum); err != nil {
			return nil, err
		}
		out[name] = sum.Int64
	}
	return out, rows.Err()
}

// verify compares a target's checksums with the source's.
func (b *bench) verify(ctx context.Context, dst *testenv.Server) (bool, string) {
	got, err := checksums(ctx, dst.Root, b.tableList())
	if err != nil {
		return false, "checksums: " + err.Error()
	}
	var bad []string
	for name, want := range b.ref {
		if got[name] != want {
			bad = append(bad, fmt.Sprintf("%s: %d, source %d", name, got[name], want))
		}
	}
	if len(bad) > 0 {
		return false, "CHECKSUM TABLE differs: " + strings.Join(bad, "; ")
	}
	return true, ""
}

func site(name string, s *testenv.Server) recipe.Site {
	return recipe.Site{Name: name, Provider: recipe.ProviderLocal, Address: s.Config.Address,
		DB: recipe.Database{Host: s.Config.Address, Port: s.Config.Port, User: s.AdminUser,
			Password: recipe.SecretRef("file:" + s.PasswordFile), ServerID: s.Config.ServerID, GTIDDomainID: s.Config.DomainID}}
}

// drover times snapshot.Copy into dst, in this process.
func (b *bench) drover(ctx context.Context, dst *testenv.Server) method {
	m := method{name: fmt.Sprintf("Drover SnapshotCopy (%d writer sessions, %d snapshot session(s))", b.cfg.Workers, b.cfg.ReadSessions)}
	in := snapshot.CopyInput{CloneID: "bench", Source: site("source", b.src), Target: site("target", dst), Schemas: []string{schema},
		Workers: b.cfg.Workers, ReadSessions: b.cfg.ReadSessions, ChunkRows: b.cfg.ChunkRows}
	logf("%s: copying", m.name)
	meter := b.cpuMeter(dst)
	start := time.Now()
	res, err := snapshot.Copy(ctx, in, snapshot.Options{Heartbeat: 10 * time.Second, Progress: func(p snapshot.Progress) {
		if p.Phase == "rows" {
			logf("  %s: %d/%d tables, %d rows, %.0f MB, reading %v", round(p.Elapsed), p.TablesDone, p.TablesTotal, p.Rows, float64(p.Bytes)/1e6, p.Current)
		}
	}})
	m.elapsed, m.cpu = time.Since(start), meter()
	if err != nil {
		m.detail = err.Error()
		return m
	}
	m.copyRes, m.rows, m.bytes = &res, res.Rows, res.Bytes
	logf("%s: %s, %d rows, gtid %s", m.name, round(m.elapsed), res.Rows, res.GTID)
	m.ok, m.detail = b.verify(ctx, dst)
	return m
}

// dump times mariadb-dump | mariadb into dst, over TCP like Drover. With
// noBinlog the loading session runs with sql_log_bin=0.
func (b *bench) dump(ctx context.Context, dst *testenv.Server, noBinlog bool) method {
	m := method{name: "mariadb-dump --single-transaction --gtid | mariadb"}
	load := []string{"-h", address, "-P", strconv.Itoa(dst.Config.Port), "-u", dst.AdminUser}
	if noBinlog {
		m.name = "mariadb-dump … | mariadb --init-command='SET sql_log_bin=0'"
		load = append(load, "--init-command=SET SESSION sql_log_bin=0")
	}
	logf("%s: copying", m.name)
	dumpCmd := exec.CommandContext(ctx, "mariadb-dump", "--single-transaction", "--gtid", "--master-data=2",
		"-h", address, "-P", strconv.Itoa(b.src.Config.Port), "-u", b.src.AdminUser, "--databases", schema)
	dumpCmd.Env = append(os.Environ(), "MYSQL_PWD="+b.src.AdminPassword)
	loadCmd := exec.CommandContext(ctx, "mariadb", load...)
	loadCmd.Env = append(os.Environ(), "MYSQL_PWD="+dst.AdminPassword)
	var dumpErr, loadErr strings.Builder
	dumpCmd.Stderr, loadCmd.Stderr = &dumpErr, &loadErr
	pr, pw := io.Pipe()
	counter := &countWriter{w: pw}
	dumpCmd.Stdout, loadCmd.Stdin = counter, pr
	meter := b.cpuMeter(dst)
	start := time.Now()
	if err := loadCmd.Start(); err != nil {
		m.detail = err.Error()
		return m
	}
	if err := dumpCmd.Start(); err != nil {
		pw.Close()
		_ = loadCmd.Wait()
		m.detail = err.Error()
		return m
	}
	derr := dumpCmd.Wait()
	pw.CloseWithError(derr)
	lerr := loadCmd.Wait()
	m.elapsed, m.cpu = time.Since(start), meter()
	m.bytes = uint64(counter.n.Load())
	if err := errors.Join(derr, lerr); err != nil {
		m.detail = fmt.Sprintf("%v: dump: %s load: %s", err, tail(dumpErr.String(), 500), tail(loadErr.String(), 500))
		return m
	}
	m.rows = uint64(b.res.rows)
	logf("%s: %s, %.0f MB of SQL", m.name, round(m.elapsed), float64(m.bytes)/1e6)
	m.ok, m.detail = b.verify(ctx, dst)
	return m
}

type countWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// cpuUse is CPU time spent during a method by this process, the source's
// mariadbd, the target's mariadbd, and child processes (mariadb-dump and
// mariadb).
type cpuUse struct {
	self, source, target, children time.Duration
}

func (b *bench) cpuMeter(dst *testenv.Server) func() cpuUse {
	read := func() cpuUse {
		return cpuUse{self: selfCPU(), source: serverCPU(b.src.MariaDB.MariaDB), target: serverCPU(dst.MariaDB.MariaDB), children: childCPU()}
	}
	start := read()
	return func() cpuUse {
		end := read()
		return cpuUse{self: end.self - start.self, source: end.source - start.source, target: end.target - start.target,
			children: end.children - start.children}
	}
}

func selfCPU() time.Duration    { return rusage(rusageSelf) }
func childCPU() time.Duration   { return rusage(rusageChildren) }
func (c cpuUse) total() float64 { return (c.self + c.source + c.target + c.children).Seconds() }

// serverCPU reads utime+stime of a server's mariadbd from /proc/PID/stat
// (USER_HZ = 100).
func serverCPU(m *local.MariaDB) time.Duration {
	pid, ok := m.Process().PID()
	if !ok {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+s) * 10 * time.Millisecond
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s clonebench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
