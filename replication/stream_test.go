package replication_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
)

// Every MariaDB column type survives the trip: inserts, updates (including
// to and from NULL) and deletes, compared byte for byte.
func TestColumnTypesRoundTrip(t *testing.T) {
	p := shared
	p.exec(t, "CREATE DATABASE types_db", "CREATE TABLE types_db.t ("+testenv.TypesColumns+") DEFAULT CHARSET=utf8mb4")
	s := p.run(t, p.config("shared"))
	cols := "id,ti,tiu,si,siu,mi,miu,i,iu,bi,biu,d,d0,f,db,dt,dtm,dtm0,ts,tm,y,c,vc,tx,lt,bn,vb,bl,e,st,bt,b64,j,l1"
	rows := []struct{ name, values string }{
		{"minimums", `1,-128,0,-32768,0,-8388608,0,-2147483648,0,-9223372036854775808,0,
			-99999999999999999999.9999999999,-99999,-3.40282e38,-1.7976931348623157e308,
			'1000-01-01','1000-01-01 00:00:00.000000','1000-01-01 00:00:00','1970-01-01 00:00:01.000','-838:59:59.000000',1901,
			'','','','',x'0000000000000000',x'',x'','a','',b'0',b'0','{}',''`},
		{"maximums", `2,127,255,32767,65535,8388607,16777215,2147483647,4294967295,9223372036854775807,18446744073709551615,
			99999999999999999999.9999999999,99999,3.40282e38,1.7976931348623157e308,
			'9999-12-31','9999-12-31 23:59:59.999999','9999-12-31 23:59:59','2038-01-19 03:14:07.999','838:59:59.000000',2155,
			'abcdefghij',REPEAT('v',255),REPEAT('t',1000),REPEAT('L',70000),x'FFFFFFFFFFFFFFFF',REPEAT(x'FF',64),REPEAT(x'00FF',3000),
			'c','x,y,z',b'1111111111',b'1111111111111111111111111111111111111111111111111111111111111111',
			'{"a":[1,2,{"b":null}],"c":"d"}','ÿ'`},
		{"nulls", `3,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,
			NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL`},
		{"unicode and binary", `4,-1,1,-1,1,-1,1,-1,1,-1,1,0.0000000001,-1,1.5,0.1,
			'2024-02-29','2024-02-29 12:34:56.123456','2024-02-29 12:34:56','2024-02-29 12:34:56.789','-00:00:00.000001',2024,
			'é😀','héllo wörld 😀 𝄞 中文','emoji 🚀🚀','x',x'00010203FEFF7F80',x'00',x'DEADBEEF00',
			'b','x,z',b'101',b'1000000000000000000000000000000000000000000000000000000000000001',
			'[true,false,null,1.5e3,"😀"]','café'`},
		{"fractions", `5,0,0,0,0,0,0,0,0,0,0,12345.6789012345,0,0.000001,2.718281828459045,
			'2000-01-01','2000-01-01 00:00:00.000001','2000-01-01 00:00:00','2000-01-01 00:00:00.001','00:00:00.5',2000,
			' lead','trail ','','',x'20',x'20',x'20','a','y',b'1',b'1','"s"','x'`},
	}
	for _, r := range rows {
		p.exec(t, fmt.Sprintf("INSERT INTO types_db.t (%s) VALUES (%s)", cols, r.values))
	}
	p.caughtUp(t, s, 30*time.Second)
	sameData(t, p.src.Root, p.dst.Root, "types_db")

	// Updates: every row to other values (and NULLs to values), then deletes.
	p.exec(t,
		"UPDATE types_db.t SET vc=CONCAT(LEFT(IFNULL(vc,'was null'),200),'+'), biu=IFNULL(biu,0) DIV 2, d=IFNULL(d,0)/2, ts=IFNULL(ts,'2001-01-01 00:00:00'), j=JSON_OBJECT('id',id)",
		"UPDATE types_db.t SET ti=NULL, l1=NULL, bl=NULL WHERE id=2",
		"UPDATE types_db.t SET id=id+100 WHERE id=5", // primary key change
		"DELETE FROM types_db.t WHERE id IN (1,3)")
	p.caughtUp(t, s, 30*time.Second)
	sameData(t, p.src.Root, p.dst.Root, "types_db")
	if err := s.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Generated columns were computed by the target, not written.
	var g int64
	if err := p.dst.Root.QueryRow("SELECT g FROM types_db.t WHERE id=4").Scan(&g); err != nil || g != -2 {
		t.Fatalf("generated column on the target: %d %v", g, err)
	}
}

// A random workload with DDL in between lands identically, and the
// checkpoint equals the source's position.
func TestRandomWorkloadWithDDL(t *testing.T) {
	p := shared
	p.exec(t, "CREATE DATABASE rnd",
		"CREATE TABLE rnd.a (id INT PRIMARY KEY, v VARCHAR(50), n INT, KEY(n))",
		"CREATE TABLE rnd.b (k VARCHAR(20) PRIMARY KEY, qty DECIMAL(10,2), note TEXT)",
		"CREATE TABLE rnd.nopk (x INT, y VARCHAR(10))")
	s := p.run(t, p.config("shared"))
	rng := rand.New(rand.NewSource(42))
	ctx := context.Background()
	for i := 0; i < 400; i++ {
		tx, err := p.src.Root.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 1+rng.Intn(4); j++ {
			id := rng.Intn(200)
			var q string
			switch rng.Intn(7) {
			case 0, 1:
				q = fmt.Sprintf("INSERT INTO rnd.a (id,v,n) VALUES (%d,'v%d',%d) ON DUPLICATE KEY UPDATE n=n+1", id, rng.Int(), rng.Intn(10))
			case 2:
				q = fmt.Sprintf("UPDATE rnd.a SET v=CONCAT(v,'u') WHERE n=%d", rng.Intn(10))
			case 3:
				q = fmt.Sprintf("DELETE FROM rnd.a WHERE id=%d", id)
			case 4:
				q = fmt.Sprintf("REPLACE INTO rnd.b VALUES ('k%d', %d.%02d, REPEAT('n', %d))", id%50, rng.Intn(1000), rng.Intn(100), rng.Intn(300))
			case 5:
				q = fmt.Sprintf("INSERT INTO rnd.nopk VALUES (%d, 'y%d')", id%20, id%7)
			case 6:
				q = fmt.Sprintf("UPDATE rnd.nopk SET y='z' WHERE x=%d LIMIT 1", id%20)
			}
			if _, err := tx.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if rng.Intn(10) == 0 {
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
		} else if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 100:
			p.exec(t, "ALTER TABLE rnd.a ADD COLUMN extra INT DEFAULT 7")
		case 200:
			p.exec(t, "CREATE TABLE rnd.c (id INT PRIMARY KEY)", "INSERT INTO rnd.c VALUES (1),(2),(3)")
		case 300:
			p.exec(t, "RENAME TABLE rnd.c TO rnd.c2", "ALTER TABLE rnd.b MODIFY note MEDIUMTEXT")
		}
	}
	p.caughtUp(t, s, 60*time.Second)
	sameData(t, p.src.Root, p.dst.Root, "rnd")
	st := s.Stats()
	if g, err := replication.ParseGTID(st.LastGTID); err != nil || replication.MustParsePosition(st.Position)[g.Domain] != g {
		t.Errorf("last GTID %q should be the position's entry in its domain (%s): %v", st.LastGTID, st.Position, err)
	}
	if st.BytesRead == 0 || st.Events == 0 || st.Rows == 0 || st.Commits == 0 || st.Commits > st.Transactions {
		t.Errorf("measurements: %+v", st)
	}
	if len(st.NoPKTables) != 1 || st.NoPKTables[0] != "rnd.nopk" {
		t.Errorf("tables without a primary key should be reported: %v", st.NoPKTables)
	}
	if err := s.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// The checkpoint equals the source's position once stopped.
	var srcPos string
	if err := p.src.Root.QueryRow("SELECT @@global.gtid_binlog_pos").Scan(&srcPos); err != nil {
		t.Fatal(err)
	}
	cp, ok, err := replication.ReadCheckpoint(ctx, p.dst.Root, "shared")
	if err != nil || !ok {
		t.Fatalf("checkpoint: %v %v", ok, err)
	}
	if time.Since(cp.AppliedAt) > 5*time.Minute || time.Since(cp.AppliedAt) < 0 || cp.SourceTS.IsZero() || cp.SourceTS.After(cp.AppliedAt.Add(time.Second)) {
		t.Errorf("checkpoint times: applied %s, source %s (now %s)", cp.AppliedAt, cp.SourceTS, time.Now().UTC())
	}
	// The checkpoint may trail by DDL only (recorded by the target's GTID state).
	var dstPos string
	if err := p.dst.Root.QueryRow("SELECT @@global.gtid_binlog_pos").Scan(&dstPos); err != nil {
		t.Fatal(err)
	}
	resume := cp.Position.Merge(replication.MustParsePosition(dstPos).Only([]uint32{11}))
	if !resume.Equal(replication.MustParsePosition(srcPos)) {
		t.Fatalf("resume position %s (checkpoint %s, target %s) != source %s", resume, cp.Position, dstPos, srcPos)
	}
}

// Stopping and starting again resumes exactly where it stopped, and writes
// made while stopped arrive.
func TestStopAndResume(t *testing.T) {
	p := shared
	p.exec(t, "CREATE DATABASE resume_db", "CREATE TABLE resume_db.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	for round := 0; round < 3; round++ {
		for i := 0; i < 50; i++ {
			p.exec(t, fmt.Sprintf("INSERT INTO resume_db.t (v) VALUES (%d)", i))
		}
		s := p.run(t, p.config("shared"))
		p.caughtUp(t, s, 30*time.Second)
		if err := s.Stop(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	sameData(t, p.src.Root, p.dst.Root, "resume_db")
	var n int
	if err := p.dst.Root.QueryRow("SELECT COUNT(*) FROM resume_db.t").Scan(&n); err != nil || n != 150 {
		t.Fatalf("target rows %d %v", n, err)
	}
}

// Restarting the source and then the target mid-stream: the streamer
// reconnects by itself and loses or duplicates nothing.
func TestSourceAndTargetRestart(t *testing.T) {
	p := shared
	ctx := context.Background()
	p.exec(t, "CREATE DATABASE restart_db", "CREATE TABLE restart_db.t (id INT PRIMARY KEY, v INT)")
	cfg := p.config("shared")
	cfg.MaxReconnects = 50
	s := p.run(t, cfg)
	id := 0
	write := func(n int) {
		for i := 0; i < n; i++ {
			id++
			p.exec(t, fmt.Sprintf("INSERT INTO restart_db.t VALUES (%d, %d)", id, id))
		}
	}
	write(100)
	p.caughtUp(t, s, 30*time.Second)

	if err := p.src.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.src.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.src.SetReadOnly(ctx, false); err != nil {
		t.Fatal(err)
	}
	write(100)
	p.caughtUp(t, s, 60*time.Second)

	p.dst.Root.Close()
	if err := p.dst.Kill(ctx); err != nil { // crash, not a clean stop
		t.Fatal(err)
	}
	write(50) // written while the target is down
	if err := p.dst.Up(ctx); err != nil {
		t.Fatal(err)
	}
	write(50)
	p.caughtUp(t, s, 60*time.Second)
	sameData(t, p.src.Root, p.dst.Root, "restart_db")
	if s.Stats().Reconnects < 2 {
		t.Errorf("expected reconnects after both restarts, stats %+v", s.Stats())
	}
	if err := s.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// A source whose binlog needed to resume is purged stops the stream with a
// re-clone error; nothing is applied past it.
func TestPurgedBinlogNeedsReclone(t *testing.T) {
	p, err := newPair(3)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	p.exec(t, "CREATE DATABASE gone", "CREATE TABLE gone.t (id INT PRIMARY KEY)", "INSERT INTO gone.t VALUES (1)",
		"FLUSH BINARY LOGS")
	var last string
	if err := p.src.Root.QueryRow("SELECT @@global.gtid_binlog_pos").Scan(&last); err != nil {
		t.Fatal(err)
	}
	var file string
	var pos int64
	var x1, x2, x3 any
	if err := p.src.Root.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &x1, &x2); err != nil {
		_ = x3
		t.Fatal(err)
	}
	// MariaDB keeps a binlog InnoDB still needs for crash recovery until the
	// next binlog checkpoint, and PURGE skips it silently: retry until gone.
	if !testenv.WaitFor(30*time.Second, func() bool {
		p.exec(t, "PURGE BINARY LOGS TO '"+file+"'")
		var oldest string
		var size int64
		return p.src.Root.QueryRow("SHOW BINARY LOGS").Scan(&oldest, &size) == nil && oldest == file
	}) {
		t.Fatal("could not purge the first binlog")
	}
	p.exec(t, "INSERT INTO gone.t VALUES (2)")
	s, err := replication.New(p.config("purged"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Run(ctx)
	if err == nil || replication.KindOf(err) != replication.KindBinlogPurged || !strings.Contains(err.Error(), "re-clone required") {
		t.Fatalf("want a BinlogPurged error saying re-clone required, got %v (kind %s); last error %q", err, replication.KindOf(err), s.Stats().LastError)
	}
	var n int
	if err := p.dst.Root.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='gone'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("something was applied past the gap: %d %v", n, err)
	}
}

// Writes made directly on the target are reported as errant GTIDs.
func TestErrantTransactionsReported(t *testing.T) {
	p, err := newPair(4)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if _, err := p.dst.Root.Exec("CREATE DATABASE local_only"); err != nil { // root bypasses read_only
		t.Fatal(err)
	}
	p.exec(t, "CREATE DATABASE e", "CREATE TABLE e.t (id INT PRIMARY KEY)", "INSERT INTO e.t VALUES (1)")
	s := p.run(t, p.config("errant"))
	p.caughtUp(t, s, 30*time.Second)
	if got := s.Stats().ErrantGTIDs; got != "42-42-1" {
		t.Fatalf("errant GTIDs %q, want 42-42-1 (the target's own domain)", got)
	}
	if err := s.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := replication.New(replication.Config{})
	if err == nil || replication.KindOf(err) != replication.KindConfig || !strings.Contains(err.Error(), "stream: required") {
		t.Fatalf("%v", err)
	}
	cfg := shared.config("auth")
	cfg.Source.Password = "wrong"
	s, err := replication.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(context.Background())
	if replication.KindOf(err) != replication.KindAuth {
		t.Fatalf("wrong password: %v (kind %s)", err, replication.KindOf(err))
	}
}

// A change the target cannot match (the row was deleted there behind the
// applier's back) stops the stream as diverged instead of being skipped,
// and the transaction is not applied in part.
func TestDivergenceStopsTheStream(t *testing.T) {
	p, err := newPair(6)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	p.exec(t, "CREATE DATABASE dv", "CREATE TABLE dv.t (id INT PRIMARY KEY, v INT)", "INSERT INTO dv.t VALUES (1,1),(2,2)")
	s := p.run(t, p.config("diverge"))
	p.caughtUp(t, s, 30*time.Second)
	if err := s.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := p.dst.Root.Exec("DELETE FROM dv.t WHERE id=2"); err != nil { // root bypasses read_only
		t.Fatal(err)
	}
	tx, err := p.src.Root.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"UPDATE dv.t SET v=10 WHERE id=1", "UPDATE dv.t SET v=20 WHERE id=2"} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	s2, err := replication.New(p.config("diverge"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s2.Run(ctx)
	if replication.KindOf(err) != replication.KindSchemaMismatch || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("want a SchemaMismatch 'diverged' error, got %v", err)
	}
	var v int
	if err := p.dst.Root.QueryRow("SELECT v FROM dv.t WHERE id=1").Scan(&v); err != nil || v != 1 {
		t.Fatalf("the diverging transaction was applied in part: v=%d %v", v, err)
	}
}

// A target that annotates row events, with an applier that may not turn
// that off for its session, still gets every row, and its binlog stays
// linear: each annotation holds one source statement, never a whole group.
func TestAnnotatingTargetGetsOneStatementPerRoundTrip(t *testing.T) {
	p, err := newPair(7)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if _, err := p.dst.Root.Exec("SET GLOBAL binlog_annotate_row_events=ON"); err != nil {
		t.Fatal(err)
	}
	p.exec(t, "CREATE DATABASE an", "CREATE TABLE an.t (id INT PRIMARY KEY, v VARCHAR(100))")
	// One source transaction of 300 statements: one group, ~60 KB of events.
	tx, err := p.src.Root.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if _, err := tx.Exec("INSERT INTO an.t VALUES (?, REPEAT('x', 100))", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	s := p.run(t, p.config("annotated"))
	p.caughtUp(t, s, 30*time.Second)
	sameData(t, p.src.Root, p.dst.Root, "an")

	rows, err := p.dst.Root.Query("SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for rows.Next() {
		var name string
		var size any
		if err := rows.Scan(&name, &size); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
	}
	rows.Close()
	longest, annotations := 0, 0
	for _, f := range files {
		ev, err := p.dst.Root.Query("SHOW BINLOG EVENTS IN '" + f + "'")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := ev.Columns()
		for ev.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := ev.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			if string(vals[2]) == "Annotate_rows" {
				annotations++
				longest = max(longest, len(vals[5]))
			}
		}
		ev.Close()
	}
	if annotations < 300 {
		t.Fatalf("%d annotations on the target, want one per applied statement (300): the test does not exercise annotating", annotations)
	}
	if longest > 4096 {
		t.Fatalf("longest annotation %d bytes: a BINLOG statement carried more than one source statement", longest)
	}
	t.Logf("%d annotations, longest %d bytes", annotations, longest)
}

// After a switchover the old target streams back to the old source. It
// applied the forward stream in groups, so its binlog holds only each
// group's first GTID of the old source's domain: the reverse stream must
// still start (from the new source's last GTID in that domain) and carry
// the new primary's writes, without re-applying anything.
func TestReverseStreamAfterGroupedApply(t *testing.T) {
	p, err := newPair(8)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	p.exec(t, "CREATE DATABASE rv", "CREATE TABLE rv.t (id INT PRIMARY KEY, v INT)")
	for i := 0; i < 300; i++ { // written before the stream starts: caught up in groups
		p.exec(t, fmt.Sprintf("INSERT INTO rv.t VALUES (%d, 0)", i))
	}
	fwd := p.run(t, p.config("forward"))
	p.caughtUp(t, fwd, 30*time.Second)
	if err := fwd.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srcPos, _ := p.src.Position(ctx)
	dstPos, _ := p.dst.Position(ctx)
	if dstPos[81].Seq >= srcPos[81].Seq {
		t.Fatalf("target binlog at %s, source %s: the forward stream did not group, the test shows nothing", dstPos, srcPos)
	}

	// Switch roles: the old target becomes a source, the old source a target.
	if err := p.dst.MakeSource(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.src.MakeTarget(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.src.SetReadOnly(ctx, true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := p.dst.Root.Exec("UPDATE rv.t SET v=v+1 WHERE id=?", i); err != nil {
			t.Fatal(err)
		}
	}
	rev := pair{src: p.dst, dst: p.src, replicaID: p.replicaID + 1}
	r := rev.run(t, rev.config("reverse"))
	rev.caughtUp(t, r, 30*time.Second)
	sameData(t, p.dst.Root, p.src.Root, "rv")
	if st := r.Stats(); st.Transactions != 20 {
		t.Fatalf("reverse stream applied %d transactions, want the 20 written on the new primary", st.Transactions)
	}
}
