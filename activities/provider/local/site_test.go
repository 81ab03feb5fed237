package local_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
)

// binDir holds the demo application built once for this package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := testenv.TempDir("drvbin")
	if err == nil {
		_, err = testenv.Build(dir, "petclinic")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newSite returns a provider in a fresh state directory and a local site on
// free ports of address.
func newSite(t *testing.T, name, address string, id uint32) (*local.Provider, recipe.Site) {
	t.Helper()
	bins, err := local.FindBinaries(filepath.Join(binDir, "petclinic"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := testenv.TempDir("drvsite")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pwFile := filepath.Join(dir, "admin.pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dbPort, err := testenv.FreePort(address)
	if err != nil {
		t.Fatal(err)
	}
	appPort, err := testenv.FreePort(address)
	if err != nil {
		t.Fatal(err)
	}
	s := recipe.Site{Name: name, Provider: "local", Region: "local", Address: address,
		DB: recipe.Database{Host: address, Port: dbPort, User: "drover", Password: recipe.SecretRef("file:" + pwFile),
			ServerID: id, GTIDDomainID: id},
		App: recipe.AppTier{Endpoints: []string{"http://" + net.JoinHostPort(address, strconv.Itoa(appPort))}, Instances: 1}}
	p := &local.Provider{StateDir: dir, Bins: bins, StartTimeout: 60 * time.Second}
	t.Cleanup(func() { _, _ = p.KillSite(context.Background(), local.SiteInput{Site: s}) })
	return p, s
}

func adminDB(t *testing.T, s recipe.Site, password string) *sql.DB {
	t.Helper()
	return testenv.TCP(t, net.JoinHostPort(s.DB.Host, strconv.Itoa(s.DB.Port)), s.DB.User, password)
}

func component(st local.SiteState, name string) local.ComponentState {
	for _, c := range st.Components {
		if c.Name == name {
			return c
		}
	}
	return local.ComponentState{}
}

func TestSiteLifecycle(t *testing.T) {
	ctx := context.Background()
	p, s := newSite(t, "east", "127.0.0.2", 7)

	st, err := p.StartSite(ctx, local.SiteInput{Site: s})
	if err != nil {
		t.Fatal(err)
	}
	db, app := component(st, local.ComponentDB), component(st, local.ComponentApp)
	if !db.Running || !db.Started || !app.Running || !app.Started {
		t.Fatalf("after first start: %+v", st)
	}

	// The server is configured for binlog streaming and starts read-only.
	admin := adminDB(t, s, "s3cret-admin")
	var logBin, strict, ro, serverID, domainID int
	var format, image, metadata, gtidPos string
	err = admin.QueryRowContext(ctx, `SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata,
		@@gtid_strict_mode, @@read_only, @@server_id, @@gtid_domain_id, @@gtid_binlog_pos`).
		Scan(&logBin, &format, &image, &metadata, &strict, &ro, &serverID, &domainID, &gtidPos)
	if err != nil {
		t.Fatal(err)
	}
	if logBin != 1 || format != "ROW" || image != "FULL" || metadata != "FULL" || strict != 1 || ro != 1 || serverID != 7 || domainID != 7 {
		t.Fatalf("server settings: log_bin=%d format=%s image=%s metadata=%s strict=%d read_only=%d server_id=%d domain=%d",
			logBin, format, image, metadata, strict, ro, serverID, domainID)
	}
	// Accounts were created without binary logging: a fresh read-only site
	// has consumed no GTID, so it shows no errant transaction.
	if gtidPos != "" {
		t.Fatalf("bootstrap wrote to the binlog: gtid_binlog_pos=%q", gtidPos)
	}
	// Root has no network account.
	root := adminDB(t, recipe.Site{DB: recipe.Database{User: "root", Host: s.DB.Host, Port: s.DB.Port}}, "")
	if err := root.PingContext(ctx); err == nil {
		t.Fatal("root could log in over TCP without a password")
	}

	// The app answers and reports its database read-only.
	health := getHealth(t, s.App.Endpoints[0])
	if health.DB.Reachable != true || health.DB.Writable != false {
		t.Fatalf("healthz on a read-only site: %+v", health)
	}

	// Starting a running site changes nothing.
	st2, err := p.StartSite(ctx, local.SiteInput{Site: s})
	if err != nil {
		t.Fatal(err)
	}
	if c := component(st2, local.ComponentDB); c.Started || c.PID != db.PID {
		t.Fatalf("second start restarted the db: %+v (first pid %d)", c, db.PID)
	}
	if c := component(st2, local.ComponentApp); c.Started || c.PID != app.PID {
		t.Fatalf("second start restarted the app: %+v (first pid %d)", c, app.PID)
	}

	// Write data, crash the database, bring it back: data survives, the
	// database comes back read-only, the app reconnects by itself.
	if _, err := admin.ExecContext(ctx, "SET GLOBAL read_only=OFF"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE TABLE petclinic.crashproof (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "INSERT INTO petclinic.crashproof VALUES (1),(2),(3)"); err != nil {
		t.Fatal(err)
	}
	st3, err := p.KillSite(ctx, local.SiteInput{Site: s, Components: []string{local.ComponentDB}})
	if err != nil {
		t.Fatal(err)
	}
	if component(st3, local.ComponentDB).Running || !component(st3, local.ComponentApp).Running {
		t.Fatalf("kill db only: %+v", st3)
	}
	if h := getHealth(t, s.App.Endpoints[0]); h.DB.Reachable {
		t.Fatalf("app still reports its database reachable after the crash: %+v", h)
	}
	if _, err := p.StartSite(ctx, local.SiteInput{Site: s}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM petclinic.crashproof").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows after crash recovery: %d, %v", n, err)
	}
	if err := admin.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ro); err != nil || ro != 1 {
		t.Fatalf("a database restarted after a crash must be read-only: read_only=%d err=%v", ro, err)
	}
	if !testenv.WaitFor(10*time.Second, func() bool { return getHealth(t, s.App.Endpoints[0]).DB.Reachable }) {
		t.Fatal("app did not reconnect to its restarted database")
	}

	// Clean stop of everything, twice.
	for i := 0; i < 2; i++ {
		st4, err := p.StopSite(ctx, local.SiteInput{Site: s})
		if err != nil {
			t.Fatalf("stop #%d: %v", i+1, err)
		}
		if st4.Running() || component(st4, local.ComponentDB).Running || component(st4, local.ComponentApp).Running {
			t.Fatalf("stop #%d left processes: %+v", i+1, st4)
		}
	}
	if left := testenv.ProcessesMentioning(p.StateDir); len(left) > 0 {
		t.Fatalf("processes left after stop: %v", left)
	}
}

// A worker restart must not take a site down: processes are detached and
// found again through their pid files by a new Provider.
func TestSiteSurvivesProviderRestart(t *testing.T) {
	ctx := context.Background()
	p, s := newSite(t, "west", "127.0.0.3", 8)
	st, err := p.StartSite(ctx, local.SiteInput{Site: s})
	if err != nil {
		t.Fatal(err)
	}
	fresh := &local.Provider{StateDir: p.StateDir, Bins: p.Bins}
	st2, err := fresh.SiteStatus(ctx, local.SiteInput{Site: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{local.ComponentDB, local.ComponentApp} {
		a, b := component(st, name), component(st2, name)
		if !b.Running || a.PID != b.PID {
			t.Fatalf("%s: before %+v, after provider restart %+v", name, a, b)
		}
	}
}

func TestSiteRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	p, s := newSite(t, "north", "127.0.0.4", 9)

	cloud := s
	cloud.Provider = "aws"
	if _, err := p.StartSite(ctx, local.SiteInput{Site: cloud}); err == nil || !strings.Contains(err.Error(), `provider is "aws"`) {
		t.Fatalf("local provider must refuse an aws site: %v", err)
	}
	if _, err := p.StopSite(ctx, local.SiteInput{Site: s, Components: []string{"disk"}}); err == nil || !strings.Contains(err.Error(), `unknown component "disk"`) {
		t.Fatalf("unknown component: %v", err)
	}
	bad := s
	bad.DB.Password = "env:DROVER_TEST_UNSET_VARIABLE"
	_, err := p.StartSite(ctx, local.SiteInput{Site: bad})
	if err == nil || !strings.Contains(err.Error(), "db.password") {
		t.Fatalf("unresolvable secret: %v", err)
	}
	// Nothing was started by the failed calls.
	st, err := p.SiteStatus(ctx, local.SiteInput{Site: s})
	if err != nil {
		t.Fatal(err)
	}
	if component(st, local.ComponentDB).Running || component(st, local.ComponentApp).Running {
		t.Fatalf("a refused start left processes: %+v", st)
	}
}

type health struct {
	Status string `json:"status"`
	DB     struct {
		Reachable bool `json:"reachable"`
		Writable  bool `json:"writable"`
	} `json:"db"`
}

func getHealth(t *testing.T, endpoint string) health {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(endpoint + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
