package metrics_test

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/metrics/metricstest"
)

// scrape renders r through its HTTP handler in the text format and parses
// it back, as Prometheus would read it.
func scrape(t *testing.T, r *metrics.Registry) metricstest.Families {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, metrics.Path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	f, err := metricstest.Parse(rec.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	// Gathering directly must not report errors either (inconsistent
	// label sets, duplicates).
	if _, err := metricstest.Gather(r.Gatherer()); err != nil {
		t.Fatalf("gather: %v", err)
	}
	return f
}

func want(t *testing.T, f metricstest.Families, name string, labels map[string]string, v float64) {
	t.Helper()
	got, n := f.Value(name, labels)
	if n != 1 || got != v {
		t.Errorf("%s%v: want one series with %v, got %d series summing to %v", name, labels, v, n, got)
	}
}

// The adapter turns the SDK's counters, gauges and timers into Prometheus
// series with the SDK's naming convention, tags as labels, and series of
// one name with different tags in one consistent family.
func TestSDKHandlerExportsCountersGaugesAndTimers(t *testing.T) {
	r := metrics.New()
	h := r.SDKHandler().WithTags(map[string]string{"namespace": "default", "client_name": "drover"})
	poll := h.WithTags(map[string]string{"operation": "PollWorkflowTaskQueue"})
	poll.Counter("temporal_request").Inc(2)
	poll.Counter("temporal_request").Inc(3)
	poll.Counter("temporal_request").Inc(-7) // counters never go down
	// Same name, another label set (an extra tag, an empty one).
	h.WithTags(map[string]string{"operation": "StartWorkflowExecution", "status_code": "ok", "empty": ""}).
		Counter("temporal_request_total").Inc(1)
	h.Gauge("temporal_num_pollers").Update(4)
	h.Gauge("temporal_num_pollers").Update(2)
	timer := h.WithTags(map[string]string{"activity_type": "StreamBinlog", "le": "x"}).Timer("temporal_activity_execution_latency")
	for _, d := range []time.Duration{3 * time.Millisecond, 40 * time.Millisecond, 2 * time.Hour} {
		timer.Record(d)
	}
	h.Counter("temporal.odd-name").Inc(1)

	f := scrape(t, r)
	base := map[string]string{"namespace": "default", "client_name": "drover"}
	want(t, f, "temporal_request_total", with(base, "operation", "PollWorkflowTaskQueue", "status_code", ""), 5)
	want(t, f, "temporal_request_total", with(base, "operation", "StartWorkflowExecution", "status_code", "ok"), 1)
	want(t, f, "temporal_num_pollers", base, 2)
	want(t, f, "temporal_odd_name_total", base, 1)
	for _, m := range f.Series("temporal_request_total", nil) {
		if _, ok := metricstest.Labels(m)["empty"]; ok {
			t.Error("an empty tag must not become a label")
		}
	}
	// The parent handler's tags are not changed by WithTags on a child.
	if _, n := f.Value("temporal_num_pollers", map[string]string{"operation": ""}); n != 1 {
		t.Error("WithTags leaked into the parent handler")
	}

	lat := map[string]string{"activity_type": "StreamBinlog", "tag_le": "x"}
	want(t, f, "temporal_activity_execution_latency_seconds", lat, 3)
	if sum := f.HistogramSum("temporal_activity_execution_latency_seconds", lat); sum < 7200.04 || sum > 7200.05 {
		t.Errorf("timer sum %v s, want 7200.043", sum)
	}
	h0 := f.Series("temporal_activity_execution_latency_seconds", lat)[0].GetHistogram()
	for _, b := range h0.GetBucket() {
		var wantCount uint64
		switch le := b.GetUpperBound(); {
		case math.IsInf(le, 1):
			wantCount = 3
		case le >= 0.05:
			wantCount = 2 // 2 h is only in +Inf
		case le >= 0.005:
			wantCount = 1
		}
		if b.GetCumulativeCount() != wantCount {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), wantCount)
		}
	}
}

// Drover's series emitted through the SDK (as workflows do) land on their
// own series with only their documented labels; other drover_ names and
// wrong instrument kinds are dropped rather than clash with them.
func TestSDKHandlerRoutesDroverSeries(t *testing.T) {
	r := metrics.New()
	h := r.SDKHandler().WithTags(map[string]string{"namespace": "default", "workflow_type": "Switchover"})
	metrics.RecordRunbook(h, "petclinic", "switchover", "completed", 42*time.Second)
	metrics.RecordRunbook(h, "petclinic", "switchover", "completed", 8*time.Second)
	metrics.RecordRunbook(h, "petclinic", "failover", "rolled-back", time.Second)
	at := time.Date(2026, 11, 3, 4, 5, 6, 0, time.UTC)
	metrics.RecordDrill(h, "petclinic", true, at)
	metrics.RecordDrill(h, "petclinic", false, at.Add(time.Hour)) // a failed drill keeps the last success
	h.Gauge(metrics.RunbookTotal).Update(99)                      // wrong kind
	h.Counter("drover_made_up").Inc(1)                            // not a Drover series

	f := scrape(t, r)
	sw := map[string]string{"app": "petclinic", "runbook": "switchover", "outcome": "completed"}
	want(t, f, metrics.RunbookTotal, sw, 2)
	want(t, f, metrics.RunbookDurationSeconds, sw, 2)
	if s := f.HistogramSum(metrics.RunbookDurationSeconds, sw); s != 50 {
		t.Errorf("duration sum %v, want 50", s)
	}
	want(t, f, metrics.RunbookTotal, map[string]string{"app": "petclinic", "runbook": "failover", "outcome": "rolled-back"}, 1)
	want(t, f, metrics.DrillLastResult, map[string]string{"app": "petclinic"}, 0)
	want(t, f, metrics.DrillLastSuccessTimestamp, map[string]string{"app": "petclinic"}, float64(at.Unix()))
	for _, name := range []string{metrics.RunbookTotal, metrics.DrillLastResult} {
		for _, m := range f.Series(name, nil) {
			if l := metricstest.Labels(m); l["namespace"] != "" || l["workflow_type"] != "" {
				t.Errorf("%s carries the SDK's tags: %v", name, l)
			}
		}
	}
	for name := range f {
		if strings.HasPrefix(name, "drover_made_up") {
			t.Errorf("unknown drover_ series exported: %s", name)
		}
	}
}

// Through the real SDK: a workflow's metrics handler is the adapter, and
// RecordDrill from workflow code lands on the drill series.
func TestWorkflowMetricsHandlerReachesTheRegistry(t *testing.T) {
	r := metrics.New()
	var s testsuite.WorkflowTestSuite
	s.SetMetricsHandler(r.SDKHandler())
	env := s.NewTestWorkflowEnvironment()
	drill := func(ctx workflow.Context) error {
		metrics.RecordDrill(workflow.GetMetricsHandler(ctx), "petclinic", true, workflow.Now(ctx))
		return nil
	}
	env.RegisterWorkflowWithOptions(drill, workflow.RegisterOptions{Name: "Drill"})
	env.ExecuteWorkflow("Drill")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	f := scrape(t, r)
	want(t, f, metrics.DrillLastResult, map[string]string{"app": "petclinic"}, 1)
	if v, n := f.Value(metrics.DrillLastSuccessTimestamp, map[string]string{"app": "petclinic"}); n != 1 || v < 1e9 {
		t.Errorf("last success timestamp %v (%d series)", v, n)
	}
}

// A nil registry records nothing and hands the SDK its no-op handler.
func TestNilRegistryIsANoOp(t *testing.T) {
	var r *metrics.Registry
	r.ObserveStream(metrics.StreamSample{App: "a", Stream: "s", AppliedTransactions: 1})
	r.ObserveSiteProbes(metrics.SiteProbes{App: "a", Site: "east"})
	if r.SDKHandler() != client.MetricsNopHandler {
		t.Fatal("nil registry must give the SDK its no-op handler")
	}
}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
