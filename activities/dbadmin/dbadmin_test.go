package dbadmin_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
)

// east is a writable source (the primary), west a read-only target fed by a
// Drover stream: the two sides of a switchover.
var (
	east, west *testenv.Server
	secrets    string // directory of the stream/apply/app password files
)

const (
	appUser, appPassword = "app", "app-pw"
	streamName           = "dbadmin-east-west"
	replicaID            = 5050
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx := context.Background()
	var err error
	if secrets, err = testenv.TempDir("drvdbadm"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(secrets)
	if east, err = testenv.StartServer(ctx, "127.0.0.50", 50); err != nil {
		return 0, err
	}
	defer east.Close()
	if west, err = testenv.StartServer(ctx, "127.0.0.51", 51); err != nil {
		return 0, err
	}
	defer west.Close()
	// An application account without READ_ONLY ADMIN: the client a fence
	// must stop.
	app := local.User{Name: appUser, Password: appPassword,
		Grants: []string{"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON *.* TO %s"}}
	if err := east.MakeSource(ctx, app); err != nil {
		return 0, err
	}
	if err := west.MakeTarget(ctx); err != nil {
		return 0, err
	}
	// No idle pooled root sessions: a fence would kill them, and a second
	// fence must find nobody to kill.
	east.Root.SetMaxIdleConns(0)
	west.Root.SetMaxIdleConns(0)
	for name, pw := range map[string]string{"stream.pw": testenv.StreamPassword, "apply.pw": testenv.ApplyPassword, "wrong.pw": "not-the-password-XYZ"} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(pw+"\n"), 0o600); err != nil {
			return 0, err
		}
	}
	return m.Run(), nil
}

// site describes a test server as a recipe site with Drover's three accounts.
func site(name string, s *testenv.Server) recipe.Site {
	return recipe.Site{Name: name, Provider: recipe.ProviderLocal, Address: s.Config.Address,
		DB: recipe.Database{Host: s.Config.Address, Port: s.Config.Port, User: s.AdminUser,
			Password: recipe.SecretRef("file:" + s.PasswordFile), ServerID: s.Config.ServerID, GTIDDomainID: s.Config.DomainID,
			Stream: recipe.Account{User: testenv.StreamUser, Password: recipe.SecretRef("file:" + filepath.Join(secrets, "stream.pw"))},
			Apply:  recipe.Account{User: testenv.ApplyUser, Password: recipe.SecretRef("file:" + filepath.Join(secrets, "apply.pw"))}}}
}

func newEnv() *testsuite.TestActivityEnvironment {
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(&dbadmin.Activities{})
	return env
}

var a *dbadmin.Activities // typed nil: method values name the activities

// call runs one activity in a fresh test environment and decodes its result.
func call[R any](t *testing.T, fn any, in any) (R, error) {
	t.Helper()
	var out R
	v, err := newEnv().ExecuteActivity(fn, in)
	if err != nil {
		return out, err
	}
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	return out, nil
}

func must[R any](t *testing.T, fn any, in any) R {
	t.Helper()
	out, err := call[R](t, fn, in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func exec(t *testing.T, s *testenv.Server, qs ...string) {
	t.Helper()
	if err := s.Exec(context.Background(), qs...); err != nil {
		t.Fatal(err)
	}
}

func scalar[T any](t *testing.T, db *sql.DB, q string) T {
	t.Helper()
	var v T
	if err := db.QueryRow(q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// writable opens east for writes again when the test ends.
func writable(t *testing.T) {
	t.Cleanup(func() { _ = east.SetReadOnly(context.Background(), false) })
}

// session opens one dedicated session as user on s, closed at the end.
func session(t *testing.T, s *testenv.Server, user, password string) (*sql.Conn, uint64) {
	t.Helper()
	c, err := testenv.TCP(t, s.Addr(), user, password).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var id uint64
	if err := c.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return c, id
}

func killedIDs(cs []dbadmin.Connection) map[uint64]dbadmin.Connection {
	m := map[uint64]dbadmin.Connection{}
	for _, c := range cs {
		m[c.ID] = c
	}
	return m
}

// A fence kills a client in the middle of a transaction — which then never
// commits — and an idle client, spares the stream account's session and its
// own, and returns the position after the fence.
func TestFenceKillsClientsAndTheirOpenTransactions(t *testing.T) {
	ctx := context.Background()
	writable(t)
	exec(t, east, "CREATE DATABASE IF NOT EXISTS fence_db", "CREATE TABLE IF NOT EXISTS fence_db.t (id INT PRIMARY KEY)")

	inTx, inTxID := session(t, east, appUser, appPassword)
	for _, q := range []string{"BEGIN", "INSERT INTO fence_db.t VALUES (1)"} {
		if _, err := inTx.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	_, idleID := session(t, east, appUser, appPassword)
	streamSession, streamID := session(t, east, testenv.StreamUser, testenv.StreamPassword)

	res := must[dbadmin.FenceResult](t, a.DBFence, dbadmin.FenceInput{Site: site("east", east)})
	if !res.Changed || res.WasReadOnly || res.Site != "east" || res.Address != east.Addr() {
		t.Fatalf("fence of a writable primary: %+v", res)
	}
	killed := killedIDs(res.Killed)
	if c, ok := killed[inTxID]; !ok || !c.InTransaction || c.User != appUser {
		t.Errorf("the client mid-transaction was not killed (or not seen in a transaction): %+v", res.Killed)
	}
	if c, ok := killed[idleID]; !ok || c.InTransaction {
		t.Errorf("the idle client was not killed as idle: %+v", res.Killed)
	}
	if _, ok := killed[streamID]; ok {
		t.Errorf("the stream account's session was killed: %+v", res.Killed)
	}
	for _, c := range res.Killed {
		if c.User == east.AdminUser {
			t.Errorf("the fence killed an admin session (its own is the only one): %+v", c)
		}
	}

	if _, err := inTx.ExecContext(ctx, "COMMIT"); err == nil {
		t.Fatal("COMMIT of the killed session succeeded")
	}
	if n := scalar[int](t, east.Root, "SELECT COUNT(*) FROM fence_db.t WHERE id=1"); n != 0 {
		t.Fatalf("the killed transaction's row is there (%d): it committed", n)
	}
	if ro := scalar[int](t, east.Root, "SELECT @@global.read_only"); ro != 1 {
		t.Fatal("read_only is not ON after the fence")
	}
	if pos := scalar[string](t, east.Root, "SELECT @@global.gtid_binlog_pos"); pos != res.FinalGTID {
		t.Fatalf("final GTID %q, server at %q", res.FinalGTID, pos)
	}
	if err := streamSession.PingContext(ctx); err != nil {
		t.Fatalf("the stream account's session did not survive: %v", err)
	}
	// The application can no longer write: its new session is refused.
	app := testenv.TCP(t, east.Addr(), appUser, appPassword)
	if _, err := app.Exec("INSERT INTO fence_db.t VALUES (2)"); err == nil || !strings.Contains(err.Error(), "1290") {
		t.Fatalf("a client write after the fence: %v, want ERROR 1290 (read-only)", err)
	}
}

// A write statement in progress holds SET GLOBAL read_only=ON up (up to
// lock_wait_timeout, a day by default). The fence waits a bounded time,
// kills the client, and succeeds; the statement's row never lands.
func TestFenceEndsAStatementThatHoldsReadOnlyUp(t *testing.T) {
	writable(t)
	exec(t, east, "CREATE DATABASE IF NOT EXISTS fence_db", "CREATE TABLE IF NOT EXISTS fence_db.t (id INT PRIMARY KEY)")
	long, longID := session(t, east, appUser, appPassword)
	done := make(chan error, 1)
	go func() {
		_, err := long.ExecContext(context.Background(), "INSERT INTO fence_db.t SELECT 3 FROM (SELECT SLEEP(30)) x")
		done <- err
	}()
	if !testenv.WaitFor(10*time.Second, func() bool {
		return scalar[int](t, east.Root, fmt.Sprintf("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID=%d AND INFO LIKE 'INSERT%%'", longID)) == 1
	}) {
		t.Fatal("the long statement did not start")
	}

	start := time.Now()
	res := must[dbadmin.FenceResult](t, a.DBFence, dbadmin.FenceInput{Site: site("east", east), LockWaitTimeout: recipe.Duration(time.Second)})
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("fence took %s: the lock wait is not bounded", took)
	}
	if _, ok := killedIDs(res.Killed)[longID]; !ok || !res.Changed {
		t.Fatalf("the session holding read_only up was not killed: %+v", res)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the long INSERT succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the long INSERT is still running after the fence")
	}
	if n := scalar[int](t, east.Root, "SELECT COUNT(*) FROM fence_db.t WHERE id=3"); n != 0 {
		t.Fatal("the killed statement's row is there")
	}
	if ro := scalar[int](t, east.Root, "SELECT @@global.read_only"); ro != 1 {
		t.Fatal("read_only is not ON after the fence")
	}
}

// Fence and promote are idempotent: the second call finds nothing to do,
// says so, and reports the same position.
func TestFenceAndPromoteTwice(t *testing.T) {
	writable(t)
	s := site("east", east)
	first := must[dbadmin.FenceResult](t, a.DBFence, dbadmin.FenceInput{Site: s})
	second := must[dbadmin.FenceResult](t, a.DBFence, dbadmin.FenceInput{Site: s})
	if !first.Changed || first.WasReadOnly {
		t.Fatalf("first fence: %+v", first)
	}
	if second.Changed || !second.WasReadOnly || len(second.Killed) != 0 || second.FinalGTID != first.FinalGTID {
		t.Fatalf("second fence is not a no-op: %+v (first %+v)", second, first)
	}

	p1 := must[dbadmin.PromoteResult](t, a.DBPromote, dbadmin.PromoteInput{Site: s})
	p2 := must[dbadmin.PromoteResult](t, a.DBPromote, dbadmin.PromoteInput{Site: s})
	if !p1.Changed || p2.Changed || p1.GTIDBinlogPos != first.FinalGTID || p2.GTIDBinlogPos != p1.GTIDBinlogPos {
		t.Fatalf("promote twice: %+v then %+v (fenced at %s)", p1, p2, first.FinalGTID)
	}
	if ro := scalar[int](t, east.Root, "SELECT @@global.read_only"); ro != 0 {
		t.Fatal("read_only is still ON after promote")
	}

	// A retry after a lost result (the earlier attempt heartbeat that it
	// found the server read-only, then turned it OFF) still says Changed.
	env := newEnv()
	env.SetHeartbeatDetails(map[string]bool{"was_read_only": true})
	v, err := env.ExecuteActivity(a.DBPromote, dbadmin.PromoteInput{Site: s})
	if err != nil {
		t.Fatal(err)
	}
	var p3 dbadmin.PromoteResult
	if err := v.Get(&p3); err != nil || !p3.Changed || p3.GTIDBinlogPos != p1.GTIDBinlogPos {
		t.Fatalf("promote retried after a lost result: %+v %v", p3, err)
	}
}

// startStream runs Drover's real streamer east → west until the test ends.
func startStream(t *testing.T) *testenv.Running {
	t.Helper()
	cfg := testenv.StreamConfig(streamName, east, west, replicaID)
	cfg.HeartbeatPeriod = 500 * time.Millisecond
	s, err := replication.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := testenv.RunStream(s)
	t.Cleanup(func() {
		if err := r.Stop(30 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return r
}

func position(t *testing.T, s *testenv.Server) replication.Position {
	t.Helper()
	p, err := s.Position(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// DBWaitApplied waits while the target lacks the position (heartbeating
// how far behind it is) and returns once a real stream has applied it; the
// target's state then shows the stream's checkpoint.
func TestWaitAppliedReturnsOnceTheStreamApplied(t *testing.T) {
	exec(t, east, "CREATE DATABASE IF NOT EXISTS wait_db", "CREATE TABLE IF NOT EXISTS wait_db.t (id INT PRIMARY KEY, v VARCHAR(20))")
	for i := range 20 {
		exec(t, east, fmt.Sprintf("INSERT INTO wait_db.t VALUES (%d, 'row') ON DUPLICATE KEY UPDATE v='again'", i))
	}
	want := position(t, east)

	env := newEnv()
	beats := make(chan dbadmin.WaitProgress, 1)
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
		var p dbadmin.WaitProgress
		if d.Get(&p) == nil {
			select {
			case beats <- p:
			default:
			}
		}
	})
	type outcome struct {
		res dbadmin.WaitAppliedResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		var o outcome
		v, err := env.ExecuteActivity(a.DBWaitApplied, dbadmin.WaitAppliedInput{Target: site("west", west), Stream: streamName,
			Want: want.String(), Timeout: recipe.Duration(40 * time.Second), PollInterval: recipe.Duration(50 * time.Millisecond)})
		if o.err = err; err == nil {
			o.err = v.Get(&o.res)
		}
		done <- o
	}()
	select {
	case p := <-beats:
		if p.Behind == 0 || p.Want != want.String() {
			t.Fatalf("first heartbeat before the stream runs: %+v", p)
		}
	case o := <-done:
		t.Fatalf("returned before the stream ran: %+v", o)
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat while waiting")
	}

	startStream(t)
	var o outcome
	select {
	case o = <-done:
	case <-time.After(45 * time.Second):
		t.Fatal("DBWaitApplied did not return")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	applied := replication.MustParsePosition(o.res.Applied)
	if applied.Behind(want) != 0 || o.res.Waited <= 0 || o.res.Site != "west" || o.res.Want != want.String() {
		t.Fatalf("result %+v does not cover %s", o.res, want)
	}

	st := must[dbadmin.StateResult](t, a.DBState, dbadmin.StateInput{Site: site("west", west)})
	if !st.ReadOnly || st.ServerID != 51 || st.GTIDDomainID != 51 || !strings.Contains(st.Version, "MariaDB") {
		t.Fatalf("state of the standby: %+v", st)
	}
	var cp *dbadmin.Checkpoint
	for i := range st.Checkpoints {
		if st.Checkpoints[i].Stream == streamName {
			cp = &st.Checkpoints[i]
		}
	}
	if cp == nil || cp.SourceTS.IsZero() || cp.AppliedAt.Before(cp.SourceTS) || st.ServerTime.Before(cp.AppliedAt) {
		t.Fatalf("checkpoint of %s in %+v", streamName, st)
	}
	// A DDL applied after the last row change is in the binlog position
	// only; a group of transactions is in the checkpoint only (the target
	// transaction carries the group's first GTID): together they cover want.
	if replication.MustParsePosition(cp.GTID).Merge(replication.MustParsePosition(st.GTIDBinlogPos)).Behind(want) != 0 {
		t.Fatalf("checkpoint %s and binlog %s do not cover %s", cp.GTID, st.GTIDBinlogPos, want)
	}
}

// A position the target cannot reach ends in a non-retryable
// DBWaitTimeout that says how far it got; cancelling the activity ends
// the wait at once.
func TestWaitAppliedTimesOutAndStopsOnCancel(t *testing.T) {
	want := position(t, east)
	g := want[50]
	g.Seq += 1000 // never written
	want.Advance(g)
	in := dbadmin.WaitAppliedInput{Target: site("west", west), Stream: streamName, Want: want.String(),
		Timeout: recipe.Duration(time.Second), PollInterval: recipe.Duration(100 * time.Millisecond)}

	start := time.Now()
	_, err := call[dbadmin.WaitAppliedResult](t, a.DBWaitApplied, in)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("a 1s wait took %s", took)
	}
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != dbadmin.ErrWaitTimeout || !ae.NonRetryable() {
		t.Fatalf("want a non-retryable %s, got %v", dbadmin.ErrWaitTimeout, err)
	}
	if !strings.Contains(err.Error(), "wait-applied west ("+west.Addr()+")") || !strings.Contains(err.Error(), want.String()) {
		t.Fatalf("message does not name site and position: %v", err)
	}
	var p dbadmin.WaitProgress
	if !ae.HasDetails() || ae.Details(&p) != nil || p.Behind < 1000 || p.Want != want.String() {
		t.Fatalf("details: %+v", p)
	}

	// Cancellation: the worker's background context ends the activity's.
	ctx, cancel := context.WithCancel(context.Background())
	env := newEnv()
	env.SetWorkerOptions(worker.Options{BackgroundActivityContext: ctx})
	var beat atomic.Bool
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) {
		if beat.CompareAndSwap(false, true) {
			cancel()
		}
	})
	in.Timeout = recipe.Duration(time.Minute)
	start = time.Now()
	_, err = env.ExecuteActivity(a.DBWaitApplied, in)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled wait: err %v after %s", err, time.Since(start))
	}
}

// A write made on the old primary after replication stopped is errant:
// DBErrant names it and counts it; before it nothing is errant.
func TestErrantFindsWritesTheNewPrimaryNeverReceived(t *testing.T) {
	exec(t, east, "CREATE DATABASE IF NOT EXISTS errant_db", "CREATE TABLE IF NOT EXISTS errant_db.t (id INT PRIMARY KEY)",
		"REPLACE INTO errant_db.t VALUES (1)")
	r := startStream(t)
	if _, err := r.WaitApplied(context.Background(), position(t, east), 50*time.Millisecond, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	in := dbadmin.ErrantInput{Old: site("east", east), New: site("west", west)}
	clean := must[dbadmin.ErrantResult](t, a.DBErrant, in)
	if clean.Count != 0 || clean.Errant != "" || !clean.CountExact || len(clean.Domains) != 0 {
		t.Fatalf("errant transactions right after catching up: %+v", clean)
	}

	before := position(t, east)[50]
	next := "INSERT INTO errant_db.t SELECT MAX(id)+1 FROM errant_db.t"
	exec(t, east, next, next, next)
	after := position(t, east)[50]
	res := must[dbadmin.ErrantResult](t, a.DBErrant, in)
	if res.Count != 3 || !res.CountExact || res.Errant != after.String() || len(res.Domains) != 1 {
		t.Fatalf("three writes after replication stopped: %+v", res)
	}
	if d := res.Domains[0]; d.Domain != 50 || d.First != before.Seq+1 || d.Last != after.Seq || !d.CountKnown || d.NewGTID != before.String() {
		t.Fatalf("errant domain: %+v (before %s after %s)", d, before, after)
	}

	// The old primary down: a clear, retryable error naming it.
	down := site("east", east)
	port, err := testenv.FreePort("127.0.0.50")
	if err != nil {
		t.Fatal(err)
	}
	down.DB.Port = port
	_, err = call[dbadmin.ErrantResult](t, a.DBErrant, dbadmin.ErrantInput{Old: down, New: site("west", west)})
	var ae *temporal.ApplicationError
	if err == nil || !strings.Contains(err.Error(), "errant east (127.0.0.50:") || !strings.Contains(err.Error(), "old primary unreachable") ||
		(errors.As(err, &ae) && ae.NonRetryable()) {
		t.Fatalf("old primary down: %v", err)
	}
}

// Wrong credentials and missing secrets are non-retryable and say so; a
// server that is down is retryable. No error shows a password.
func TestErrorsAreClassified(t *testing.T) {
	port, err := testenv.FreePort("127.0.0.50")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		mutate    func(*recipe.Site)
		wantType  string // "" = retryable
		wantInMsg string
	}{
		{"bad password", func(s *recipe.Site) { s.DB.Password = recipe.SecretRef("file:" + filepath.Join(secrets, "wrong.pw")) }, dbadmin.ErrAuth, "1045"},
		{"secret missing", func(s *recipe.Site) { s.DB.Password = "env:DROVER_TEST_NO_SUCH_VAR" }, dbadmin.ErrConfig, "env:DROVER_TEST_NO_SUCH_VAR"},
		{"server down", func(s *recipe.Site) { s.DB.Port = port }, "", "connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := site("east", east)
			tc.mutate(&s)
			for name, fn := range map[string]any{"promote": a.DBPromote, "state": a.DBState, "fence": a.DBFence} {
				var in any
				switch name {
				case "promote":
					in = dbadmin.PromoteInput{Site: s}
				case "state":
					in = dbadmin.StateInput{Site: s}
				case "fence":
					in = dbadmin.FenceInput{Site: s}
				}
				_, err := newEnv().ExecuteActivity(fn, in)
				var ae *temporal.ApplicationError
				if !errors.As(err, &ae) {
					t.Fatalf("%s: %v is not an application error", name, err)
				}
				wantPrefix := fmt.Sprintf("%s east (%s):", name, s.DB.Addr())
				if !strings.Contains(err.Error(), wantPrefix) || !strings.Contains(err.Error(), tc.wantInMsg) {
					t.Errorf("%s: message %q lacks %q or %q", name, err, wantPrefix, tc.wantInMsg)
				}
				if strings.Contains(err.Error(), "not-the-password-XYZ") {
					t.Fatalf("%s: error shows the password", name)
				}
				if tc.wantType == "" && ae.NonRetryable() {
					t.Errorf("%s: %v must be retryable", name, err)
				}
				if tc.wantType != "" && (ae.Type() != tc.wantType || !ae.NonRetryable()) {
					t.Errorf("%s: got type %q non-retryable=%v, want non-retryable %s", name, ae.Type(), ae.NonRetryable(), tc.wantType)
				}
			}
		})
	}
	if ro := scalar[int](t, east.Root, "SELECT @@global.read_only"); ro != 0 {
		t.Fatal("a failed fence changed read_only")
	}
}
