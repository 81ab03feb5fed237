package tests

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// startReplication starts the stack's stream with the CLI (a no-op when it
// runs) and returns a Temporal client to query it.
func startReplication(t *testing.T) client.Client {
	t.Helper()
	if code, out, errOut := drover(t, "replication", "start", "-f", stack.RecipeFile); code != 0 {
		t.Fatalf("replication start: %d %s %s", code, out, errOut)
	}
	c, err := client.Dial(client.Options{HostPort: stack.TemporalAddress, Namespace: stack.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// siteDB opens a pool on a site's database with its admin account.
func siteDB(t *testing.T, s recipe.Site) *sql.DB {
	t.Helper()
	pw, err := s.DB.Password.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return testenv.TCP(t, net.JoinHostPort(s.DB.Host, strconv.Itoa(s.DB.Port)), s.DB.User, pw)
}

func gtidPos(t *testing.T, db *sql.DB) string {
	t.Helper()
	var p string
	if err := db.QueryRow("SELECT @@global.gtid_binlog_pos").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func replicationStatus(t *testing.T, c client.Client) workflows.ReplicationStatus {
	t.Helper()
	v, err := c.QueryWorkflow(context.Background(), workflows.ReplicationWorkflowID("petclinic", "east", "west"), "", workflows.ReplicationStatusQuery)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.ReplicationStatus
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitReplicated waits until the stream has applied east's whole position.
func waitReplicated(t *testing.T, c client.Client, east *sql.DB, timeout time.Duration) workflows.ReplicationStatus {
	t.Helper()
	want := replication.MustParsePosition(gtidPos(t, east))
	var st workflows.ReplicationStatus
	ok := testenv.WaitFor(timeout, func() bool {
		st = replicationStatus(t, c)
		got, err := replication.ParsePosition(st.Progress.Position)
		return err == nil && got.Behind(want) == 0
	})
	if !ok {
		t.Fatalf("not replicated within %s: east at %s, stream %+v", timeout, want, st)
	}
	return st
}

// sameTables compares row counts and CHECKSUM TABLE of tables on two sites.
func sameTables(t *testing.T, a, b *sql.DB, tables ...string) {
	t.Helper()
	for _, tb := range tables {
		var n1, n2 int64
		if err := a.QueryRow("SELECT COUNT(*) FROM " + tb).Scan(&n1); err != nil {
			t.Fatal(err)
		}
		if err := b.QueryRow("SELECT COUNT(*) FROM " + tb).Scan(&n2); err != nil {
			t.Fatal(err)
		}
		var name string
		var c1, c2 sql.NullInt64
		if err := a.QueryRow("CHECKSUM TABLE "+tb+" EXTENDED").Scan(&name, &c1); err != nil {
			t.Fatal(err)
		}
		if err := b.QueryRow("CHECKSUM TABLE "+tb+" EXTENDED").Scan(&name, &c2); err != nil {
			t.Fatal(err)
		}
		if n1 != n2 || c1 != c2 {
			t.Errorf("%s: east %d rows checksum %v, west %d rows checksum %v", tb, n1, c1, n2, c2)
		}
	}
}

// TestReplicationThroughTheStack starts the supervisor with the CLI, writes
// through the demo app at the primary, reads it back through the app at the
// standby, and drives pause / resume / status / stop.
func TestReplicationThroughTheStack(t *testing.T) {
	r := loadRecipe(t)
	east, _ := r.Site("east")
	west, _ := r.Site("west")
	c := startReplication(t)
	eastDB, westDB := siteDB(t, east), siteDB(t, west)

	resp := post(t, east.App.Endpoints[0]+"/api/owners", `{"first_name":"Grace","last_name":"Hopper","city":"Arlington","telephone":"5550100"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create owner: %d %s", resp.StatusCode, readAll(resp))
	}
	waitReplicated(t, c, eastDB, time.Minute)
	got, err := (&httpClient).Get(west.App.Endpoints[0] + "/api/owners?last_name=Hopper")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(got); !strings.Contains(body, "Grace") {
		t.Fatalf("the standby's app does not show the owner written at the primary: %s", body)
	}

	// Pause: writes stay on east; resume: they arrive.
	if code, out, errOut := drover(t, "replication", "pause", "-f", stack.RecipeFile); code != 0 {
		t.Fatalf("pause: %d %s %s", code, out, errOut)
	}
	if !testenv.WaitFor(20*time.Second, func() bool { return replicationStatus(t, c).State == workflows.ReplPaused }) {
		t.Fatalf("not paused: %+v", replicationStatus(t, c))
	}
	if code, _, errOut := drover(t, "replication", "pause", "-f", stack.RecipeFile); code != 1 || !strings.Contains(errOut, "already paused") {
		t.Fatalf("a second pause must be refused by the validator: %d %s", code, errOut)
	}
	post(t, east.App.Endpoints[0]+"/api/owners", `{"first_name":"Paused","last_name":"Write","city":"X","telephone":"1"}`)
	before := replicationStatus(t, c).Progress.Position
	if gtidPos(t, eastDB) == before {
		t.Fatal("the write during the pause did not reach east's binlog")
	}
	if code, out, _ := drover(t, "replication", "status", "-f", stack.RecipeFile); code != 3 || !strings.Contains(out, "paused") {
		t.Fatalf("status while paused: exit %d\n%s", code, out)
	}
	if code, out, errOut := drover(t, "replication", "resume", "-f", stack.RecipeFile); code != 0 {
		t.Fatalf("resume: %d %s %s", code, out, errOut)
	}
	st := waitReplicated(t, c, eastDB, time.Minute)
	if st.State != workflows.ReplRunning {
		t.Fatalf("after resume: %+v", st)
	}
	code, out, _ := drover(t, "replication", "status", "-f", stack.RecipeFile)
	if code != 0 || !strings.Contains(out, "petclinic-east-west  running") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	sameTables(t, eastDB, westDB, "petclinic.owners", "petclinic.pets", "petclinic.visits")
}

// TestReplicationSurvivesWorkerCrashes kills the west worker (kill -9) at
// least 10 times during a 50,000-transaction workload on east. At the end
// east and west are identical and the checkpoint (with the target's GTID
// state) equals east's position: nothing lost, nothing applied twice.
func TestReplicationSurvivesWorkerCrashes(t *testing.T) {
	const txns, writers, minKills = 50000, 4, 10
	r := loadRecipe(t)
	east, _ := r.Site("east")
	west, _ := r.Site("west")
	eastDB, westDB := siteDB(t, east), siteDB(t, west)
	c := startReplication(t)
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS crash",
		"CREATE TABLE crash.t (id BIGINT PRIMARY KEY, writer INT, v BIGINT, pad VARCHAR(64))",
		"CREATE TABLE crash.counters (writer INT PRIMARY KEY, n BIGINT)"} {
		if _, err := eastDB.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var done, killed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// ~420 txn/s in all, so the workload spans the kills.
			pace := time.NewTicker(writers * 2380 * time.Microsecond)
			defer pace.Stop()
			for i := w; i < txns; i += writers {
				select {
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				case <-pace.C:
				}
				// Keep the last transactions for after the kills, so every
				// kill lands during the workload however slow restarts are.
				for done.Load() >= txns-2000 && killed.Load() < minKills {
					select {
					case <-ctx.Done():
						errs <- ctx.Err()
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
				tx, err := eastDB.BeginTx(ctx, nil)
				if err == nil {
					_, err = tx.Exec("INSERT INTO crash.t VALUES (?,?,?,REPEAT('p', ?))", i, w, i*7, i%64)
				}
				if err == nil && i%3 == 0 && i > writers {
					_, err = tx.Exec("UPDATE crash.t SET v=v+1 WHERE id=?", i-writers)
				}
				if err == nil {
					_, err = tx.Exec("INSERT INTO crash.counters VALUES (?,1) ON DUPLICATE KEY UPDATE n=n+1", w)
				}
				if err == nil {
					err = tx.Commit()
				} else if tx != nil {
					_ = tx.Rollback()
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d txn %d: %w", w, i, err)
					return
				}
				done.Add(1)
			}
		}(w)
	}

	// Kill the west worker at random moments while the workload runs (and,
	// if the workload ends first, during catch-up), restarting it each time.
	rng := rand.New(rand.NewSource(7))
	worker := componentOf(t, "west/worker")
	proc := local.Process{Name: worker.Name, Path: worker.Binary, PIDFile: worker.PIDFile}
	kills := 0
	o := opts
	o.Out = nil
	for kills < minKills {
		// Each kill hits a live stream: wait until the stream (restarted
		// after the last kill) reports progress again, then a random moment.
		since := time.Now()
		if !testenv.WaitFor(2*time.Minute, func() bool {
			st := replicationStatus(t, c)
			return st.Progress.At.After(since) && st.Progress.State == "streaming"
		}) {
			t.Fatalf("stream not running again after kill #%d: %+v", kills, replicationStatus(t, c))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up after %d kills: %v", kills, ctx.Err())
		case <-time.After(time.Duration(200+rng.Intn(1500)) * time.Millisecond):
		}
		if err := proc.Kill(ctx); err != nil {
			t.Fatalf("kill #%d: %v", kills+1, err)
		}
		kills++
		killed.Store(int64(kills))
		t.Logf("kill -9 west worker #%d after %d transactions", kills, done.Load())
		if _, err := devstack.Up(ctx, o); err != nil {
			t.Fatalf("restart worker: %v", err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := done.Load(); n != txns {
		t.Fatalf("%d transactions committed, want %d", n, txns)
	}
	st := waitReplicated(t, c, eastDB, 5*time.Minute)
	t.Logf("after %d kills: stream %s, %d restarts, position %s", kills, st.State, st.Restarts, st.Progress.Position)
	sameTables(t, eastDB, westDB, "crash.t", "crash.counters", "petclinic.owners")
	var total int64
	if err := westDB.QueryRow("SELECT SUM(n) FROM crash.counters").Scan(&total); err != nil || total != txns {
		t.Fatalf("west counted %d transactions (%v), want %d: a transaction was lost or applied twice", total, err, txns)
	}
	// The checkpoint, with the target's GTID state in east's domain, is
	// exactly east's position.
	cp, ok, err := replication.ReadCheckpoint(ctx, westDB, "petclinic-east-west")
	if err != nil || !ok {
		t.Fatalf("checkpoint: %v %v", ok, err)
	}
	eastPos := replication.MustParsePosition(gtidPos(t, eastDB))
	westPos := replication.MustParsePosition(gtidPos(t, westDB))
	resume := cp.Position.Merge(westPos.Only(eastPos.Domains()))
	if !resume.Equal(eastPos) {
		t.Fatalf("checkpoint %s (+ west %s) != east %s", cp.Position, westPos, eastPos)
	}
	if st.Restarts < minKills {
		t.Errorf("every kill hit a running stream, so the supervisor should have restarted it %d times: %+v", minKills, st)
	}
}

var httpClient = http.Client{Timeout: 5 * time.Second}
