package tests

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// CloneSite builds a site that does not exist yet, on the local stack, for
// real: west is declared but not provisioned (its worker runs, it has no
// database, no app, no DNS name). East holds ≥ 200,000 rows of every
// column type (schema shop) besides the app's own, and two write loads
// run on it throughout: transactions on shop's tables, and owners
// created through the app at the public name. West's worker is SIGKILLed
// in the middle of the copy and brought back by Up, as an SRE would. The
// clone completes: the copy resumes at a second attempt from the chunks
// already committed, replication starts at the copy's GTID, west gets its
// DNS name (the public name stays on east), the workflow's own checksum
// comparison of every table passes, and once the loads stop west holds
// exactly east's data and every acknowledged app write. Cloning west again
// is a no-op that says so.
func TestCloneSiteUnderWriteLoadSurvivesAWorkerKill(t *testing.T) {
	ctx := context.Background()
	o := sideStack(t, "127.0.0.16", "127.0.0.17")
	o.Unprovisioned = []string{"west"}
	st, r, c := upStack(t, o)
	east, _ := r.Site("east")
	west, _ := r.Site("west")
	zone := strings.TrimSuffix(r.DNS.Zone, ".")
	if got, _ := testenv.PublicAddrs(r.DNS.Server, "west."+zone); len(got) != 0 {
		t.Fatalf("west.%s answers %v before the clone", zone, got)
	}
	if _, ok := workerPID(t, st.StateDir, "west"); !ok {
		t.Fatal("west's worker does not run")
	}

	eastDB := siteDB(t, east)
	begin := time.Now()
	if err := testenv.PopulateShop(ctx, func(ctx context.Context, qs ...string) error {
		for _, q := range qs {
			if _, err := eastDB.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("east populated: %d rows in shop (%s)", rowsIn(t, eastDB, "shop"), time.Since(begin).Round(time.Millisecond))
	// The shop load writes near the end of each table's key space (as
	// append-mostly tables do), so a resumed copy finds most chunks it
	// committed before the kill unchanged and keeps them.
	shopLoad := testenv.StartShopLoad(t, eastDB, 200, 7, true)
	appLoad := startWriteLoad(r, "clone")
	t.Cleanup(appLoad.finish)
	if !testenv.WaitFor(30*time.Second, func() bool { return shopLoad.Commits.Load() >= 20 && appLoad.nAcked.Load() >= 20 }) {
		shopLoad.Check(t)
		t.Fatalf("the write loads did not get going: %d shop commits, %d app writes", shopLoad.Commits.Load(), appLoad.nAcked.Load())
	}

	// Small chunks and one writer: a copy of some 200 chunks, long enough
	// to be killed in the middle.
	in := workflows.CloneInput{Recipe: *r, From: "east", To: "west", CopyWorkers: 1, ChunkRows: 1000}
	start := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.CloneWorkflowID(r.App, "west"),
		TaskQueue: workflows.SharedTaskQueue}, "CloneSite", in)
	if err != nil {
		t.Fatal(err)
	}
	killMidCopy(t, c, st.StateDir, west, run)
	t.Logf("west's worker killed mid-copy %s after the start", time.Since(start).Round(time.Millisecond))
	if _, err := devstack.Up(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, ok := workerPID(t, st.StateDir, "west"); !ok {
		t.Fatal("Up did not restart west's worker")
	}

	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var rep workflows.RunbookReport
	if err := run.Get(wctx, &rep); err != nil {
		t.Fatal(err)
	}
	logReport(t, rep)
	t.Logf("clone took %s", time.Since(start).Round(time.Millisecond))
	if rep.Outcome != workflows.OutcomeCompleted {
		t.Fatalf("clone %s: %s", rep.Outcome, rep.Error)
	}
	copyStep := stepOf(t, rep, "copy")
	m := regexp.MustCompile(`attempt (\d+), (\d+) chunks reused`).FindStringSubmatch(copyStep.Detail)
	if m == nil {
		t.Fatalf("copy detail %q names no attempt", copyStep.Detail)
	}
	if attempt, _ := strconv.Atoi(m[1]); attempt < 2 {
		t.Errorf("the copy finished at attempt %d: the kill did not interrupt it", attempt)
	}
	if reused, _ := strconv.Atoi(m[2]); reused == 0 {
		t.Errorf("the resumed copy reused no chunk: it started over")
	}
	if d := stepOf(t, rep, "verify data").Detail; !strings.Contains(d, "tables equal") {
		t.Errorf("verify data: %q", d)
	}
	if got, _ := testenv.PublicAddrs(r.DNS.Server, "west."+zone); strings.Join(got, ",") != west.Address {
		t.Errorf("west.%s answers %v, want %s", zone, got, west.Address)
	}
	if got, _ := publicAddrs(r); strings.Join(got, ",") != east.Address {
		t.Errorf("the public name answers %v, want east %s", got, east.Address)
	}

	// The loads stop; west catches up and holds exactly east's data.
	appLoad.finish()
	shopLoad.Stop()
	shopLoad.Check(t)
	westDB := siteDB(t, west)
	if !readOnly(t, westDB) {
		t.Error("the clone is writable")
	}
	waitSameGTID(t, eastDB, westDB, replicate.StreamName(r.App, "east", "west"), east.DB.GTIDDomainID, 2*time.Minute, func() {
		v, err := c.QueryWorkflow(context.Background(), workflows.ReplicationWorkflowID(r.App, "east", "west"), "", workflows.ReplicationStatusQuery)
		var rs workflows.ReplicationStatus
		if err == nil {
			err = v.Get(&rs)
		}
		t.Logf("stream east → west: %+v (%v)", rs, err)
	})
	for _, schema := range []string{"shop", "petclinic"} {
		testenv.SameData(t, eastDB, westDB, schema)
	}
	if missing := appLoad.missingOn(t, westDB); len(missing) > 0 {
		t.Errorf("%d acknowledged app writes missing at west: %v", len(missing), missing[:min(5, len(missing))])
	}
	t.Logf("write loads: %d shop transactions, %d app writes acknowledged (%d failed)",
		shopLoad.Commits.Load(), appLoad.nAcked.Load(), appLoad.nFailed.Load())

	// Again: west is a replicating standby now, so nothing is done.
	again, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.CloneWorkflowID(r.App, "west"),
		TaskQueue: workflows.SharedTaskQueue}, "CloneSite", in)
	if err != nil {
		t.Fatal(err)
	}
	var rep2 workflows.RunbookReport
	if err := again.Get(wctx, &rep2); err != nil {
		t.Fatal(err)
	}
	if rep2.Outcome != workflows.OutcomeCompleted || len(rep2.Steps) != 1 || rep2.Steps[0].Outcome != workflows.StepSkipped {
		t.Errorf("a second clone of a replicating standby did something: %+v", rep2)
	}
}

// killMidCopy waits until the copy into site has committed some of its
// chunks and SIGKILLs the worker of site, which runs the copy. It fails
// the test, saying what it saw, if the copy ends first or never starts.
func killMidCopy(t *testing.T, c client.Client, stateDir string, site recipe.Site, run client.WorkflowRun) {
	t.Helper()
	pw, err := site.DB.Password.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	db := testenv.TCP(t, site.DB.Addr(), site.DB.User, pw)
	var chunks, most int
	var lastErr error
	var rep workflows.RunbookReport
	copyState := func() string {
		for _, s := range rep.Steps {
			if s.Name == "copy" {
				return s.Outcome
			}
		}
		return ""
	}
	polls := 0
	ok := testenv.WaitFor(3*time.Minute, func() bool {
		if polls++; polls%20 == 1 {
			if r, err := queryProgress(c, run); err == nil {
				rep = r
			}
			if st := copyState(); st != "" && st != workflows.StepRunning {
				return true // ended: reported below
			}
		}
		if lastErr = db.QueryRow("SELECT COUNT(*) FROM drover.clone_progress WHERE seq >= 0").Scan(&chunks); lastErr == nil {
			most = max(most, chunks)
		}
		return lastErr == nil && chunks >= 5
	})
	if st := copyState(); st != "" && st != workflows.StepRunning {
		logReport(t, rep)
		t.Fatalf("the copy ended (%s) before it could be killed; most chunks seen at once: %d", st, most)
	}
	if !ok {
		logReport(t, rep)
		t.Fatalf("the copy into %s did not get going: most chunks seen %d, last query error %v", site.Name, most, lastErr)
	}
	var tables int
	if err := db.QueryRow("SELECT COUNT(DISTINCT schema_name, table_name) FROM drover.clone_progress").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	pid, running := workerPID(t, stateDir, site.Name)
	if !running {
		t.Fatalf("%s's worker is not running", site.Name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s's worker (pid %d) with %d chunks of %d tables committed", site.Name, pid, chunks, tables)
}

// queryProgress asks a runbook for its report so far.
func queryProgress(c client.Client, run client.WorkflowRun) (workflows.RunbookReport, error) {
	var rep workflows.RunbookReport
	v, err := c.QueryWorkflow(context.Background(), run.GetID(), run.GetRunID(), workflows.RunbookProgressQuery)
	if err != nil {
		return rep, err
	}
	return rep, v.Get(&rep)
}

// waitSameGTID waits until the stream's checkpoint on dst has applied
// src's last transaction of domain. (Not dst's binlog position: a group of
// source transactions is one target transaction, logged under the group's
// first GTID, so the binlog may name one before the last applied.)
func waitSameGTID(t *testing.T, src, dst *sql.DB, stream string, domain uint32, timeout time.Duration, diag func()) {
	t.Helper()
	var want, got replication.GTID
	if !testenv.WaitFor(timeout, func() bool {
		var cp string
		if err := dst.QueryRow("SELECT gtid FROM drover.replication_checkpoint WHERE stream = ?", stream).Scan(&cp); err != nil {
			return false
		}
		sp, err1 := replication.ParsePosition(gtidPos(t, src))
		dp, err2 := replication.ParsePosition(cp)
		want, got = sp[domain], dp[domain]
		return err1 == nil && err2 == nil && want == got
	}) {
		for _, e := range lastBinlogEvents(t, src, 12) {
			t.Logf("source binlog: %s", e)
		}
		for _, e := range lastBinlogEvents(t, dst, 6) {
			t.Logf("copy binlog: %s", e)
		}
		for _, cp := range testenv.Strings(t, dst, "SELECT CONCAT(stream, ' ', gtid, ' ', IFNULL(source_ts, '-'), ' ', applied_at) FROM drover.replication_checkpoint") {
			t.Logf("copy checkpoint: %s", cp)
		}
		if diag != nil {
			diag()
		}
		t.Fatalf("domain %d: the copy is at %v, its source at %v after %s", domain, got, want, timeout)
	}
}

// lastBinlogEvents lists the last n events of a server's current binlog.
func lastBinlogEvents(t *testing.T, db *sql.DB, n int) []string {
	t.Helper()
	var file, pos, doDB, ignoreDB string
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		return []string{err.Error()}
	}
	rows, err := db.Query("SHOW BINLOG EVENTS IN '" + file + "'")
	if err != nil {
		return []string{err.Error()}
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var log, typ, info string
		var p, sid, end int64
		if err := rows.Scan(&log, &p, &typ, &sid, &end, &info); err != nil {
			return append(out, err.Error())
		}
		out = append(out, fmt.Sprintf("%d %s %.160s", p, typ, info))
	}
	return out[max(0, len(out)-n):]
}

// stepOf is the report's step called name.
func stepOf(t *testing.T, rep workflows.RunbookReport, name string) workflows.Step {
	t.Helper()
	for _, s := range rep.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("the report has no step %q", name)
	return workflows.Step{}
}

// rowsIn counts the rows of every table of schema.
func rowsIn(t *testing.T, db *sql.DB, schema string) int {
	t.Helper()
	n := 0
	for _, table := range testenv.TableNames(t, db, schema) {
		var k int
		if err := db.QueryRow("SELECT COUNT(*) FROM `" + schema + "`.`" + table + "`").Scan(&k); err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}
