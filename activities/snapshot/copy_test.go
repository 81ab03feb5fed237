package snapshot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/activities/snapshot"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
)

// A copy taken while writes go on, from three reader sessions sharing one
// read view, is exact at its GTID: Drover's streamer started from that GTID
// applies exactly the source transactions after it (no gap, no overlap),
// the databases end identical, and SnapshotCompare — run while the writes
// still go on — agrees. The copy leaves no GTID in the target's binlog.
func TestCopyUnderWriteLoadThenStream(t *testing.T) {
	ctx := context.Background()
	dst := newTarget(t, 71)
	before, err := dst.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := testenv.StartShopLoad(t, source.Root, 400, 1, false)
	if !testenv.WaitFor(30*time.Second, func() bool { return l.Commits.Load() >= 20 }) {
		l.Check(t)
		t.Fatal("the write load does not commit")
	}
	in := snapshot.CopyInput{CloneID: "under-load", Source: site("east", source), Target: site("west", dst),
		Schemas: []string{schema}, ReadSessions: 3, Workers: 4, ChunkRows: 10_000}
	c0 := l.Commits.Load()
	start := time.Now()
	res, beats, err := copyActivityBeats(t, in)
	if err != nil {
		t.Fatal(err)
	}
	during := l.Commits.Load() - c0
	t.Logf("copy: %d rows, %d bytes, %d chunks in %.1fs (%s, %d sessions, write hold %.2f ms), gtid %s; %d source transactions committed meanwhile",
		res.Rows, res.Bytes, res.Chunks, time.Since(start).Seconds(), res.SnapshotMethod, res.ReadSessions, res.WriteHoldMS, res.GTID, during)
	if during < 5 {
		t.Fatalf("only %d source transactions during the copy: the test does not exercise a copy under writes", during)
	}
	if res.Rows < 200_000 || res.Attempt != 1 || res.ReusedChunks != 0 || res.Chunks < 12 {
		t.Errorf("copy result: %d rows, attempt %d, %d chunks (%d reused)", res.Rows, res.Attempt, res.Chunks, res.ReusedChunks)
	}
	if strings.Join(res.NoPKTables, ",") != "shop.events_log" || res.Views != 1 || res.Triggers != 1 || res.Routines != 1 {
		t.Errorf("no-PK tables %v, views %d, triggers %d, routines %d", res.NoPKTables, res.Views, res.Triggers, res.Routines)
	}
	if res.ReadSessions != 3 || (res.SnapshotMethod != "agreed" && res.SnapshotMethod != "backup-stage") {
		t.Errorf("read sessions %d, method %s", res.ReadSessions, res.SnapshotMethod)
	}
	if len(beats) == 0 || beats[0].CloneID != "under-load" {
		t.Errorf("no heartbeat reached Temporal: %+v", beats)
	}
	if after, err := dst.Position(ctx); err != nil || !after.Equal(before) {
		t.Fatalf("the copy wrote to the target's binlog: %s before, %s after (%v)", before, after, err)
	}

	r := stream(t, "east-west", dst, res.GTID, 7101)
	caughtUp(t, r)
	cmp := compareActivity(t, snapshot.CompareInput{Source: site("east", source), Target: site("west", dst), Stream: "east-west",
		Schemas: []string{schema}, Workers: 2})
	t.Logf("compare under writes: equal=%v at %s by %s (write hold %.2f ms) in %.1fs; %v", cmp.Equal, cmp.GTID, cmp.Method, cmp.WriteHoldMS,
		cmp.DurationSeconds, cmp.Differences)
	if !cmp.Equal || len(cmp.Tables) != 6 {
		t.Fatalf("compare found differences while the stream ran: %v", cmp.Differences)
	}
	// The same with source commits blocked until the target has caught up.
	cmp = compareActivity(t, snapshot.CompareInput{Source: site("east", source), Target: site("west", dst), Stream: "east-west",
		Schemas: []string{schema}, Method: "backup-stage"})
	t.Logf("compare under writes: equal=%v at %s by %s (write hold %.2f ms) in %.1fs; %v", cmp.Equal, cmp.GTID, cmp.Method, cmp.WriteHoldMS,
		cmp.DurationSeconds, cmp.Differences)
	if !cmp.Equal || cmp.Method != "backup-stage" || cmp.WriteHoldMS <= 0 || cmp.WriteHoldMS > 5000 {
		t.Fatalf("compare holding writes: %+v", cmp)
	}
	l.Stop()
	l.Check(t)
	streamedExactlyTheRest(t, r, dst, res.GTID)
	for _, q := range []string{"SELECT COUNT(*) FROM shop.big_orders", "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='shop'"} {
		if a, b := scalar[int](t, source.Root, q), scalar[int](t, dst.Root, q); a != b {
			t.Errorf("%s: %d on the source, %d on the target", q, a, b)
		}
	}

	// A difference made on the target is found.
	conn, err := dst.Root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin=0", "UPDATE shop.tags SET label='tampered' ORDER BY code LIMIT 1"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	cmp = compareActivity(t, snapshot.CompareInput{Source: site("east", source), Target: site("west", dst), Stream: "east-west",
		Schemas: []string{schema}})
	if cmp.Equal || len(cmp.Differences) != 1 || !strings.HasPrefix(cmp.Differences[0], "shop.tags:") {
		t.Fatalf("a changed row on the target should be the only difference: %v", cmp.Differences)
	}

	// The same clone id again is a no-op returning the stored result.
	again, err := copyActivity(t, in)
	if err != nil || !again.AlreadyDone || again.GTID != res.GTID {
		t.Fatalf("second run of a finished clone: %+v %v", again, err)
	}
}

// A copy killed mid-way (SIGKILL of the process running it), then
// cancelled mid-way, resumes without starting over: the finished attempt
// keeps the chunks it proves equal under its own snapshot, copies the
// rest, and ends consistent — its seeded checkpoint starts the stream,
// which applies exactly the transactions after the last snapshot.
func TestKilledCopyResumes(t *testing.T) {
	ctx := context.Background()
	dst := newTarget(t, 72)
	l := testenv.StartShopLoad(t, source.Root, 300, 2, true)
	in := snapshot.CopyInput{CloneID: "killed", Source: site("east", source), Target: site("west", dst),
		Schemas: []string{schema}, Stream: "east-west-2", Workers: 2, ChunkRows: 2_000}
	chunks := func() int {
		return scalar[int](t, dst.Root, "SELECT COUNT(*) FROM drover.clone_progress WHERE clone_id='killed' AND seq >= 0")
	}

	// Attempt 1 runs in a child process, killed once 15 chunks committed.
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	progressed := testenv.WaitFor(2*time.Minute, func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
		}
		var n int
		return dst.Root.QueryRow("SELECT COUNT(*) FROM drover.clone_progress WHERE clone_id='killed' AND seq >= 0").Scan(&n) == nil && n >= 15
	})
	select {
	case err := <-exited:
		t.Fatalf("the copy ended before it could be killed (%v): %s", err, out.String())
	default:
	}
	if !progressed {
		t.Fatalf("the copy did not commit 15 chunks: %s", out.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err = <-exited
	exited <- err
	killedAt := chunks()
	t.Logf("attempt 1 killed (%v) with %d chunks committed", err, killedAt)

	// Attempt 2 is cancelled once it has verified or copied 10 more chunks.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var log progressLog
	_, err = snapshot.Copy(cctx, in, snapshot.Options{Heartbeat: 100 * time.Millisecond, Progress: func(p snapshot.Progress) {
		log.add(p)
		if p.ChunksDone >= killedAt+10 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("attempt 2 should have been cancelled, got %v", err)
	}
	// Progress (what the activity heartbeats): phases in order, tables,
	// rows and bytes growing, the table being read, verified chunks.
	var rowsSeen, lastRows uint64
	current := false
	for _, p := range log.ps {
		if p.CloneID != "killed" || (p.Phase != "snapshot" && p.Attempt != 2) || (p.Phase == "rows" && p.TablesTotal != 6) || p.Rows < lastRows {
			t.Fatalf("progress %+v after rows %d", p, lastRows)
		}
		if p.Phase == "rows" {
			rowsSeen, lastRows = p.Rows, p.Rows
			current = current || len(p.Current) > 0
		}
	}
	if last := log.ps[len(log.ps)-1]; rowsSeen == 0 || !current || last.Reused == 0 || last.Bytes == 0 || last.GTID == "" {
		t.Fatalf("progress did not report the copy: last %+v", last)
	}
	t.Logf("attempt 2 cancelled with %d chunks committed; last progress %+v", chunks(), log.ps[len(log.ps)-1])

	// A row of an early chunk, already copied, changes on the source; and
	// the target holds a trigger, as if an attempt had crashed after
	// creating its objects: it must not fire while rows are loaded.
	if err := source.Exec(ctx, "UPDATE shop.orders SET note = 'changed between attempts' WHERE id = 3001"); err != nil {
		t.Fatal(err)
	}
	if err := dst.Exec(ctx, "CREATE TRIGGER shop.stale BEFORE INSERT ON shop.orders FOR EACH ROW SET NEW.note = 'stale trigger fired'"); err != nil {
		t.Fatal(err)
	}

	// Attempt 3 completes.
	res, err := copyActivity(t, in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attempt %d: %d chunks, %d reused after verification, %d copied again, %d rows in %.1fs, gtid %s",
		res.Attempt, res.Chunks, res.ReusedChunks, res.RecopiedChunks, res.Rows, res.DurationSeconds, res.GTID)
	if res.Attempt != 3 || res.ReusedChunks < 10 || res.ReusedChunks >= res.Chunks || res.RecopiedChunks < 1 {
		t.Fatalf("attempt 3 should resume, keeping verified chunks and copying changed ones again (attempt %d, %d of %d chunks reused, %d copied again)",
			res.Attempt, res.ReusedChunks, res.Chunks, res.RecopiedChunks)
	}
	if n := scalar[int](t, dst.Root, "SELECT COUNT(*) FROM drover.clone_progress WHERE clone_id='killed'"); n != 0 {
		t.Errorf("%d progress rows left after the copy finished", n)
	}
	cp, ok, err := replication.ReadCheckpoint(ctx, dst.Root, "east-west-2")
	if err != nil || !ok || cp.Position.String() != res.GTID {
		t.Fatalf("seeded checkpoint %v %v %v, want %s", cp.Position, ok, err, res.GTID)
	}

	r := stream(t, "east-west-2", dst, "", 7201) // starts from the seeded checkpoint
	l.Stop()
	l.Check(t)
	streamedExactlyTheRest(t, r, dst, res.GTID)
	cmp := compareActivity(t, snapshot.CompareInput{Source: site("east", source), Target: site("west", dst), Stream: "east-west-2",
		Schemas: []string{schema}})
	if !cmp.Equal {
		t.Fatalf("compare after the resumed copy: %v", cmp.Differences)
	}
}

// Bad input and missing privileges fail at once with non-retryable errors
// that name the problem, before anything of the application is written.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	dst := newTarget(t, 73)
	weak := site("east", source)
	weak.DB.User, weak.DB.Password = weakUser, recipe.SecretRef("file:"+filepath.Join(secrets, "weak.pw"))
	// A target admin without BINLOG ADMIN cannot load without binary logging.
	if err := dst.Exec(ctx, "CREATE USER tweak@'%' IDENTIFIED BY 'tweak-pw'",
		"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, READ_ONLY ADMIN ON *.* TO tweak@'%'"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "tweak.pw"), []byte("tweak-pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	tweak := site("west", dst)
	tweak.DB.User, tweak.DB.Password = "tweak", recipe.SecretRef("file:"+filepath.Join(secrets, "tweak.pw"))
	missing := site("east", source)
	missing.DB.Password = recipe.SecretRef("file:" + filepath.Join(secrets, "no-such-file"))

	for _, tc := range []struct {
		name, typ, want string
		in              snapshot.CopyInput
	}{
		{"unknown schema", snapshot.ErrConfig, `schema "nope" does not exist on the source`,
			snapshot.CopyInput{Source: site("east", source), Target: site("west", dst), Schemas: []string{"nope"}}},
		{"system schema", snapshot.ErrConfig, `"mysql" is a system schema`,
			snapshot.CopyInput{Source: site("east", source), Target: site("west", dst), Schemas: []string{"mysql"}}},
		{"source account sees one table", snapshot.ErrAuth, "lacks SELECT, SHOW VIEW, TRIGGER on schema shop",
			snapshot.CopyInput{Source: weak, Target: site("west", dst), Schemas: []string{schema}}},
		{"source account without global privileges, all schemas", snapshot.ErrAuth, "lacks SELECT, SHOW VIEW, TRIGGER",
			snapshot.CopyInput{Source: weak, Target: site("west", dst)}},
		{"target account without BINLOG ADMIN", snapshot.ErrAuth, "sql_log_bin",
			snapshot.CopyInput{Source: site("east", source), Target: tweak, Schemas: []string{schema}}},
		{"unresolvable secret", snapshot.ErrConfig, "no-such-file",
			snapshot.CopyInput{Source: missing, Target: site("west", dst), Schemas: []string{schema}}},
		{"negative workers", snapshot.ErrConfig, "must not be negative",
			snapshot.CopyInput{Source: site("east", source), Target: site("west", dst), Workers: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := copyActivity(t, tc.in)
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != tc.typ || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a non-retryable %s error containing %q, got %v", tc.typ, tc.want, err)
			}
			t.Log(err)
		})
	}
	if n := scalar[int](t, dst.Root, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='shop'"); n != 0 {
		t.Fatal("a refused copy created the application's schema")
	}

	// A target that already holds the schema is refused, and left alone.
	if err := dst.Exec(ctx, "CREATE DATABASE shop", "CREATE TABLE shop.mine (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	_, err := copyActivity(t, snapshot.CopyInput{Source: site("east", source), Target: site("west", dst), Schemas: []string{schema}})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != snapshot.ErrTargetNotEmpty || !strings.Contains(err.Error(), "already holds schema shop") {
		t.Fatalf("want a non-retryable %s error, got %v", snapshot.ErrTargetNotEmpty, err)
	}
	if got := testenv.TableNames(t, dst.Root, "shop"); strings.Join(got, ",") != "mine" {
		t.Fatalf("the refused copy touched the target's schema: %v", got)
	}
}

// streamedExactlyTheRest waits until the stream r into dst has caught up
// with the source and checks that the databases are identical and that the
// stream applied exactly the source transactions after the copy's GTID: no
// gap, no overlap.
func streamedExactlyTheRest(t *testing.T, r *testenv.Running, dst *testenv.Server, copyGTID string) {
	t.Helper()
	caughtUp(t, r)
	testenv.SameData(t, source.Root, dst.Root, schema)
	end, err := source.Position(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Stats().Transactions, seqOf(t, end.String())-seqOf(t, copyGTID); got != want {
		t.Fatalf("the stream applied %d transactions; the source committed %d after the copy's GTID %s", got, want, copyGTID)
	}
}
