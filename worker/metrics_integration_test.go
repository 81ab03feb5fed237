package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/metrics/metricstest"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// metricsSite describes a test server as a recipe site with the streaming
// and applier accounts testenv creates (passwords through env: references).
func metricsSite(name string, s *testenv.Server) recipe.Site {
	return recipe.Site{Name: name, Provider: recipe.ProviderLocal, Address: s.Config.Address,
		DB: recipe.Database{Host: s.Config.Address, Port: s.Config.Port, User: s.AdminUser,
			Password: recipe.SecretRef("file:" + s.PasswordFile), ServerID: s.Config.ServerID, GTIDDomainID: s.Config.DomainID,
			Stream: recipe.Account{User: testenv.StreamUser, Password: "env:DROVER_METRICS_TEST_STREAM_PW"},
			Apply:  recipe.Account{User: testenv.ApplyUser, Password: "env:DROVER_METRICS_TEST_APPLY_PW"}},
		App: recipe.AppTier{Endpoints: []string{"http://" + s.Config.Address + ":18080"}}}
}

// Metrics endpoint exposes the named series with sane values during
// replication: the worker's own run() with --metrics-addr serves a
// ReplicationSupervisor stream between two real MariaDB servers and a
// HealthMonitor's probes; a scrape of its endpoint shows the stream's
// counters grown by at least the writes made, a small non-negative lag,
// nothing behind once caught up, no restarts, the probe results of the
// worker's vantage point, and the Temporal SDK's own metrics. Stopping the
// worker closes the endpoint.
func TestMetricsEndpointDuringReplication(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	servers := map[string]*testenv.Server{}
	for i, name := range []string{"east", "west"} {
		s, err := testenv.StartServer(ctx, fmt.Sprintf("127.0.0.%d", 30+i), uint32(30+i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		servers[name] = s
	}
	east, west := servers["east"], servers["west"]
	if err := east.MakeSource(ctx); err != nil {
		t.Fatal(err)
	}
	if err := west.MakeTarget(ctx); err != nil {
		t.Fatal(err)
	}
	if err := east.Exec(ctx, "CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL, note VARCHAR(16))"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DROVER_METRICS_TEST_STREAM_PW", testenv.StreamPassword)
	t.Setenv("DROVER_METRICS_TEST_APPLY_PW", testenv.ApplyPassword)
	const app = "metricstest"
	r := recipe.Recipe{App: app, Primary: "east",
		Sites: []recipe.Site{metricsSite("east", east), metricsSite("west", west)},
		DNS: recipe.DNS{Zone: "drover.test", Record: "app.drover.test", Driver: "rfc2136", Server: "127.0.0.1:5354",
			TSIG: recipe.TSIG{Name: "k", Secret: "env:UNUSED"}},
		Probes: []recipe.Probe{{Kind: recipe.ProbeMySQL}, {Kind: recipe.ProbeTCP, Target: "db"}},
		Policy: recipe.Policy{SLA: recipe.SLA{RPO: recipe.Duration(30 * time.Second)}},
	}
	r.ApplyDefaults()
	if err := r.Validate(); err != nil {
		t.Fatalf("test recipe: %v", err)
	}

	// The worker of site west, as drover-worker runs it.
	port, err := testenv.FreePort("127.0.0.32")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.32:%d", port)
	url := "http://" + addr + metrics.Path
	t.Setenv("TEMPORAL_ADDRESS", temporalAddr)
	stop, done := make(chan interface{}), make(chan error, 1)
	go func() {
		done <- run(Config{Site: "west", StateDir: t.TempDir(), LogLevel: "error", MetricsAddr: addr}, zap.NewNop(), stop)
	}()
	stopWorker := func() error {
		select {
		case <-stop:
		default:
			close(stop)
		}
		select {
		case err := <-done:
			done <- err
			return err
		case <-time.After(time.Minute):
			return errors.New("the worker did not stop within a minute")
		}
	}
	t.Cleanup(func() { _ = stopWorker() })

	c, err := client.Dial(client.Options{HostPort: temporalAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	streamID := workflows.ReplicationWorkflowID(app, "east", "west")
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: streamID, TaskQueue: workflows.SharedTaskQueue},
		workflows.ReplicationSupervisor, workflows.ReplicationInput{Recipe: r, From: "east", To: "west"}); err != nil {
		t.Fatal(err)
	}
	monitorID := workflows.HealthMonitorWorkflowID(app)
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: monitorID, TaskQueue: workflows.SharedTaskQueue},
		workflows.HealthMonitor, workflows.MonitorInput{Recipe: r, Interval: recipe.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.TerminateWorkflow(context.Background(), monitorID, "", "test over")
		_ = c.TerminateWorkflow(context.Background(), streamID, "", "test over")
	})

	stream := map[string]string{"app": app, "stream": app + "-east-west"}
	var f metricstest.Families
	var scrapeErr error
	// waitFor scrapes until cond holds on the scrape.
	waitFor := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		if !testenv.WaitFor(timeout, func() bool {
			f, scrapeErr = metricstest.Scrape(ctx, url)
			return scrapeErr == nil && cond()
		}) {
			t.Fatalf("%s: not within %s (last scrape error: %v)", what, timeout, scrapeErr)
		}
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		v, n := f.Value(name, labels)
		if n == 0 {
			t.Fatalf("no series %s%v", name, labels)
		}
		return v
	}
	caughtUp := func() bool {
		streaming, n := f.Value(metrics.ReplicationStreaming, stream)
		behind, _ := f.Value(metrics.ReplicationBehindTransactions, stream)
		return n == 1 && streaming == 1 && behind == 0
	}
	waitFor("the stream catches up with the schema", time.Minute, func() bool {
		applied, _ := f.Value(metrics.ReplicationAppliedTransactions, stream)
		return caughtUp() && applied >= 2
	})
	baseTxns := value(metrics.ReplicationAppliedTransactions, stream)
	baseRows := value(metrics.ReplicationAppliedRows, stream)

	// Writes: one transaction of three rows each, scraped while they flow.
	const writes = 60
	maxLag := 0.0
	for i := range writes {
		if err := east.Exec(ctx, fmt.Sprintf("INSERT INTO shop.items (n, note) VALUES (%d, 'a'), (%d, 'b'), (%d, 'c')", i, i, i)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if f, err = metricstest.Scrape(ctx, url); err != nil {
				t.Fatal(err)
			}
			lag := value(metrics.ReplicationLagSeconds, stream)
			if lag < 0 {
				t.Fatalf("negative lag %v", lag)
			}
			maxLag = max(maxLag, lag)
		}
	}
	waitFor("the writes are applied", time.Minute, func() bool {
		applied, _ := f.Value(metrics.ReplicationAppliedTransactions, stream)
		rows, _ := f.Value(metrics.ReplicationAppliedRows, stream)
		return caughtUp() && applied-baseTxns >= writes && rows-baseRows >= 3*writes
	})
	if maxLag = max(maxLag, value(metrics.ReplicationLagSeconds, stream)); maxLag > 10 {
		t.Errorf("lag up to %v s on an idle loopback pair; want a few seconds at most", maxLag)
	}
	if v := value(metrics.ReplicationLagSeconds, stream); v != 0 {
		t.Errorf("caught up, yet lag %v s", v)
	}
	if v := value(metrics.ReplicationStreamRestarts, stream); v != 0 {
		t.Errorf("%v restarts of an undisturbed stream", v)
	}
	if v := value(metrics.ReplicationRPOSLASeconds, stream); v != 30 {
		t.Errorf("RPO SLA %v s, want the recipe's 30", v)
	}

	// The monitor's probes, as seen from this worker's vantage point.
	fromWest := map[string]string{"app": app, "site": "east", "vantage": "west"}
	waitFor("a health round from west", time.Minute, func() bool {
		_, n := f.Value(metrics.SiteUp, fromWest)
		return n == 1
	})
	if v := value(metrics.SiteUp, fromWest); v != 1 {
		t.Errorf("west judges east down")
	}
	for _, kind := range []string{recipe.ProbeMySQL, recipe.ProbeTCP} {
		l := map[string]string{"app": app, "site": "east", "vantage": "west", "kind": kind}
		if v := value(metrics.ProbeUp, l); v != 1 {
			t.Errorf("%s probe of east from west: %v", kind, v)
		}
		if n := value(metrics.ProbeLatencySeconds, l); n < 1 {
			t.Errorf("%s probe of east from west: no latency observed", kind)
		} else if s := f.HistogramSum(metrics.ProbeLatencySeconds, l); s < 0 || s/n > 2 {
			t.Errorf("%s probe of east from west: mean latency %v s", kind, s/n)
		}
	}

	// The SDK's metrics, in the same registry.
	if v := value("temporal_workflow_task_execution_latency_seconds", map[string]string{"workflow_type": "ReplicationSupervisor"}); v < 1 {
		t.Error("no workflow task of the supervisor observed")
	}
	if v := value("temporal_activity_execution_latency_seconds", map[string]string{"activity_type": "ProbeSites"}); v < 1 {
		t.Error("no ProbeSites execution observed")
	}
	if v := value("temporal_request_total", nil); v < 1 {
		t.Error("no request to the server counted")
	}

	// Stopping the stream ends its run: streaming drops to 0.
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: streamID, UpdateName: workflows.ReplicationStop,
		WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.GetWorkflow(ctx, streamID, "").Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	waitFor("streaming drops to 0 once the stream stopped", 30*time.Second, func() bool {
		v, _ := f.Value(metrics.ReplicationStreaming, stream)
		return v == 0
	})
	if err := c.TerminateWorkflow(ctx, monitorID, "", "test over"); err != nil {
		t.Fatal(err)
	}

	// The endpoint goes with the worker.
	if err := stopWorker(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("the metrics endpoint still answers after the worker stopped")
	}
}

// --metrics-addr must be host:port; empty leaves the endpoint off.
func TestConfigCheckMetricsAddr(t *testing.T) {
	for addr, ok := range map[string]bool{"": true, "127.0.0.1:9464": true, ":9464": true, "127.0.0.1": false, "a:1:2": false} {
		c := Config{Site: "east", MetricsAddr: addr}
		if err := c.check(); (err == nil) != ok {
			t.Errorf("--metrics-addr %q: %v", addr, err)
		} else if err != nil && !strings.Contains(err.Error(), "--metrics-addr") {
			t.Errorf("--metrics-addr %q: the error must name the flag: %v", addr, err)
		}
	}
}
