package probe_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
)

// db is a real MariaDB shared by this package's tests.
var db *testenv.MariaDB

func TestMain(m *testing.M) {
	dir, err := testenv.TempDir("drvprobe")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	db, err = testenv.StartMariaDB(context.Background(), dir, "127.0.0.1", 21)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start mariadb:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = db.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func site() recipe.Site {
	return recipe.Site{Name: "east", Provider: "local", Address: db.Config.Address,
		DB: recipe.Database{Host: db.Config.Address, Port: db.Config.Port, User: db.AdminUser,
			Password: recipe.SecretRef("file:" + db.PasswordFile), ServerID: 21, GTIDDomainID: 21}}
}

func TestProbeDBReadsStateOfALiveServer(t *testing.T) {
	a := &probe.Activities{Vantage: "west"}
	res, err := a.ProbeDB(context.Background(), probe.DBProbeInput{Site: site()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reachable || res.Error != "" {
		t.Fatalf("live server reported unreachable: %+v", res)
	}
	if !res.ReadOnly || res.ServerID != 21 || res.GTIDDomainID != 21 || !strings.Contains(res.Version, "MariaDB") {
		t.Fatalf("unexpected state: %+v", res)
	}
	if res.Vantage != "west" || res.Site != "east" || res.Address != db.Addr() {
		t.Fatalf("identity fields: %+v", res)
	}
	// A write on the server shows in the GTID position it reports.
	if err := db.SetReadOnly(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.SetReadOnly(context.Background(), true) })
	root, err := db.RootDB()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.Exec("CREATE DATABASE IF NOT EXISTS probe_gtid"); err != nil {
		t.Fatal(err)
	}
	res2, err := a.ProbeDB(context.Background(), probe.DBProbeInput{Site: site()})
	if err != nil {
		t.Fatal(err)
	}
	if res2.ReadOnly || !strings.HasPrefix(res2.GTIDBinlogPos, "21-21-") || res2.GTIDBinlogPos == res.GTIDBinlogPos {
		t.Fatalf("after a write: read_only=%v gtid %q (before %q)", res2.ReadOnly, res2.GTIDBinlogPos, res.GTIDBinlogPos)
	}
}

func TestProbeDBReportsProblemsAsResults(t *testing.T) {
	a := &probe.Activities{}
	dir := t.TempDir()
	wrong := dir + "/wrong.pw"
	if err := os.WriteFile(wrong, []byte("not-the-password-XYZ\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	closedPort, err := testenv.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*recipe.Site)
		want   string
	}{
		{"wrong password", func(s *recipe.Site) { s.DB.Password = recipe.SecretRef("file:" + wrong) }, "mysql error 1045"},
		{"nothing listening", func(s *recipe.Site) { s.DB.Port = closedPort }, "connection refused"},
		{"secret missing", func(s *recipe.Site) { s.DB.Password = "env:DROVER_TEST_NO_SUCH_VAR" }, "db.password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := site()
			tc.mutate(&s)
			res, err := a.ProbeDB(context.Background(), probe.DBProbeInput{Site: s, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatalf("a probe reports, it does not fail: %v", err)
			}
			if res.Reachable || !strings.Contains(res.Error, tc.want) {
				t.Fatalf("got %+v, want unreachable with %q", res, tc.want)
			}
			if strings.Contains(res.Error, "not-the-password-XYZ") {
				t.Fatal("probe error leaks the password")
			}
		})
	}
}

func TestProbeApp(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"read-only","db":{"reachable":true,"writable":false}}`)
	})
	mux.HandleFunc("/down/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"down","db":{"reachable":false,"writable":false,"error":"dial tcp: connection refused"}}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	closedPort, err := testenv.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(closedPort))

	a := &probe.Activities{Vantage: "east"}
	s := recipe.Site{Name: "west", App: recipe.AppTier{Endpoints: []string{srv.URL, srv.URL + "/down", closed}}}
	res, err := a.ProbeApp(context.Background(), probe.AppProbeInput{Site: s, Path: "/healthz", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Endpoints) != 3 || res.Up() {
		t.Fatalf("want 3 endpoints, not all up: %+v", res)
	}
	ok, down, refused := res.Endpoints[0], res.Endpoints[1], res.Endpoints[2]
	if !ok.Up || ok.StatusCode != 200 || ok.Writable == nil || *ok.Writable {
		t.Fatalf("healthy read-only app: %+v", ok)
	}
	if down.Up || down.StatusCode != 503 || !strings.Contains(down.Error, "connection refused") {
		t.Fatalf("app with its db down: %+v", down)
	}
	if refused.Up || refused.StatusCode != 0 || !strings.Contains(refused.Error, "connection refused") {
		t.Fatalf("nothing listening: %+v", refused)
	}
}
