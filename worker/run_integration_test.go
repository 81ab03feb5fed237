package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// A real Temporal dev server (testsuite.StartDevServer with the locally built
// CLI) and a real MariaDB, shared by this package's integration tests.
var (
	temporalAddr string
	db           *testenv.MariaDB
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctx := context.Background()
	srv, err := testenv.StartTemporal(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start temporal dev server:", err)
		return 1
	}
	defer srv.Stop()
	temporalAddr = srv.FrontendHostPort()
	dir, err := testenv.TempDir("drvwk")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if db, err = testenv.StartMariaDB(ctx, dir, "127.0.0.1", 31); err != nil {
		fmt.Fprintln(os.Stderr, "start mariadb:", err)
		return 1
	}
	defer db.Close()
	return m.Run()
}

// The worker's registration (the same functions run() uses) serves
// SiteStatus end to end through a real server, with the site's activities
// on its own task queue, and registers ReplicationSupervisor.
func TestWorkerServesRegisteredWorkflows(t *testing.T) {
	c, err := client.Dial(client.Options{HostPort: temporalAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	shared := worker.New(c, workflows.SharedTaskQueue, worker.Options{})
	RegisterWorkflows(shared)
	site := worker.New(c, workflows.SiteTaskQueue("east"), worker.Options{})
	RegisterSiteActivities(site, "east", t.TempDir(), local.Binaries{}, c, nil)
	for _, w := range []worker.Worker{shared, site} {
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"ok","db":{"reachable":true,"writable":true}}`)
	}))
	defer app.Close()
	r := recipe.Recipe{App: "workertest", Primary: "east",
		Sites: []recipe.Site{{Name: "east", Provider: "local", Region: "local", Address: "127.0.0.1",
			DB:  recipe.Database{Host: "127.0.0.1", Port: db.Config.Port, User: db.AdminUser, Password: recipe.SecretRef("file:" + db.PasswordFile)},
			App: recipe.AppTier{Endpoints: []string{app.URL}}}},
		DNS: recipe.DNS{Zone: "drover.test", Record: "app.drover.test", Driver: "rfc2136", Server: "127.0.0.1:5354",
			TSIG: recipe.TSIG{Name: "k", Secret: "env:UNUSED"}},
	}
	r.ApplyDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "worker-test-status", TaskQueue: workflows.SharedTaskQueue},
		workflows.SiteStatus, workflows.SiteStatusInput{Recipe: r})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.SiteStatusResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || res.Rows[0].DB == nil || !res.Rows[0].DB.Reachable || res.Rows[0].App == nil || !res.Rows[0].App.Up() {
		t.Fatalf("status through the worker:\n%s\n%+v", res.Table, res.Rows)
	}
	if res.Rows[0].DB.Vantage != "east" {
		t.Errorf("the probe should run at east's worker, vantage %q", res.Rows[0].DB.Vantage)
	}

	// ReplicationSupervisor is registered: invalid input fails fast and clearly.
	run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "worker-test-repl", TaskQueue: workflows.SharedTaskQueue},
		workflows.ReplicationSupervisor, workflows.ReplicationInput{Recipe: r, From: "east", To: "east"})
	if err != nil {
		t.Fatal(err)
	}
	err = run.Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != "InvalidInput" || !strings.Contains(err.Error(), "two different sites") {
		t.Fatalf("want InvalidInput from the supervisor, got %v", err)
	}
}
