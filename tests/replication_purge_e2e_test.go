package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
)

// When the primary has purged binlogs the standby still needs, the
// supervisor stops in a visible needs-reclone state and applies nothing past
// the gap. It runs on a stack of its own (sites 127.0.0.6/7), so the shared
// stack keeps replicating.
func TestPurgedBinlogShowsNeedsReclone(t *testing.T) {
	st, err := devstack.Up(context.Background(), sideStack(t, "127.0.0.6", "127.0.0.7"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(st.RecipeFile)
	if err != nil {
		t.Fatal(err)
	}
	east, _ := r.Site("east")
	west, _ := r.Site("west")
	eastDB, westDB := siteDB(t, east), siteDB(t, west)
	cli := func(args ...string) (int, string, string) { return droverAt(t, st, args...) }
	status := func() string {
		_, out, _ := cli("replication", "status", "-f", st.RecipeFile)
		return out
	}

	if code, out, errOut := cli("replication", "start", "-f", st.RecipeFile); code != 0 {
		t.Fatalf("start: %d %s %s", code, out, errOut)
	}
	if _, err := eastDB.Exec("CREATE TABLE petclinic.gap (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if !testenv.WaitFor(time.Minute, func() bool {
		var n int
		return westDB.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='petclinic' AND TABLE_NAME='gap'").Scan(&n) == nil && n == 1
	}) {
		t.Fatalf("table did not replicate: %s", status())
	}
	if code, out, errOut := cli("replication", "pause", "-f", st.RecipeFile); code != 0 {
		t.Fatalf("pause: %d %s %s", code, out, errOut)
	}
	if !testenv.WaitFor(30*time.Second, func() bool { return strings.Contains(status(), " paused ") }) {
		t.Fatalf("not paused: %s", status())
	}
	// Writes the standby will never see, then purge the binlog holding them.
	for _, q := range []string{"INSERT INTO petclinic.gap VALUES (1),(2),(3)", "FLUSH BINARY LOGS"} {
		if _, err := eastDB.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var current string
	var pos int64
	var x1, x2 any
	if err := eastDB.QueryRow("SHOW MASTER STATUS").Scan(&current, &pos, &x1, &x2); err != nil {
		t.Fatal(err)
	}
	if !testenv.WaitFor(30*time.Second, func() bool {
		if _, err := eastDB.Exec("PURGE BINARY LOGS TO '" + current + "'"); err != nil {
			t.Fatal(err)
		}
		var oldest string
		var size int64
		return eastDB.QueryRow("SHOW BINARY LOGS").Scan(&oldest, &size) == nil && oldest == current
	}) {
		t.Fatal("could not purge east's older binlogs")
	}

	if code, out, errOut := cli("replication", "resume", "-f", st.RecipeFile); code != 0 {
		t.Fatalf("resume: %d %s %s", code, out, errOut)
	}
	if !testenv.WaitFor(time.Minute, func() bool { return strings.Contains(status(), "needs-reclone") }) {
		t.Fatalf("supervisor did not reach needs-reclone: %s", status())
	}
	out := status()
	if !strings.Contains(out, "re-clone required") {
		t.Errorf("status should say why: %s", out)
	}
	var n int
	if err := westDB.QueryRow("SELECT COUNT(*) FROM petclinic.gap").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows applied past the gap: %d %v", n, err)
	}
	if code, _, errOut := cli("replication", "stop", "-f", st.RecipeFile); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
}
