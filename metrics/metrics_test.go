package metrics_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/metrics/metricstest"
)

// Stream reports set the gauges and accumulate the increments; a report
// without an SLA leaves the SLA series as it was.
func TestObserveStream(t *testing.T) {
	r := metrics.New()
	r.ObserveStream(metrics.StreamSample{App: "petclinic", Stream: "petclinic-east-west", Streaming: true,
		LagSeconds: 3.5, BehindTransactions: 12, RPOSLASeconds: 30, AppliedTransactions: 10, AppliedRows: 25})
	r.ObserveStream(metrics.StreamSample{App: "petclinic", Stream: "petclinic-east-west", Streaming: false,
		LagSeconds: -0.2, AppliedTransactions: 5, AppliedRows: 5, Restarts: 1})
	f := scrape(t, r)
	l := map[string]string{"app": "petclinic", "stream": "petclinic-east-west"}
	want(t, f, metrics.ReplicationAppliedTransactions, l, 15)
	want(t, f, metrics.ReplicationAppliedRows, l, 30)
	want(t, f, metrics.ReplicationStreamRestarts, l, 1)
	want(t, f, metrics.ReplicationLagSeconds, l, 0) // clamped: never negative
	want(t, f, metrics.ReplicationBehindTransactions, l, 0)
	want(t, f, metrics.ReplicationStreaming, l, 0)
	want(t, f, metrics.ReplicationRPOSLASeconds, l, 30)
}

// A site's checks become one ProbeUp per kind (down when any check of the
// kind failed), one latency observation per check, and the site verdict.
func TestObserveSiteProbes(t *testing.T) {
	r := metrics.New()
	r.ObserveSiteProbes(metrics.SiteProbes{App: "petclinic", Site: "east", Vantage: "west", Up: false, Checks: []metrics.ProbeCheck{
		{Kind: "http", Up: true, Latency: 20 * time.Millisecond},
		{Kind: "http", Up: false, Latency: 2 * time.Second},
		{Kind: "http", Up: true, Latency: 10 * time.Millisecond},
		{Kind: "mysql", Up: true, Latency: 5 * time.Millisecond},
	}})
	f := scrape(t, r)
	l := map[string]string{"app": "petclinic", "site": "east", "vantage": "west"}
	want(t, f, metrics.SiteUp, l, 0)
	want(t, f, metrics.ProbeUp, with(l, "kind", "http"), 0)
	want(t, f, metrics.ProbeUp, with(l, "kind", "mysql"), 1)
	want(t, f, metrics.ProbeLatencySeconds, with(l, "kind", "http"), 3)
	if s := f.HistogramSum(metrics.ProbeLatencySeconds, with(l, "kind", "http")); s < 2.029 || s > 2.031 {
		t.Errorf("http latency sum %v, want 2.03", s)
	}
}

// The HTTP endpoint serves the registry, with the runtime collectors, and
// frees its port on Close.
func TestServerServesAndCloses(t *testing.T) {
	r := metrics.New()
	srv, err := r.Listen("127.0.0.30:0")
	if err != nil {
		t.Fatal(err)
	}
	r.ObserveStream(metrics.StreamSample{App: "a", Stream: "a-x-y", Streaming: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := metricstest.Scrape(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	want(t, f, metrics.ReplicationStreaming, map[string]string{"app": "a", "stream": "a-x-y"}, 1)
	if _, n := f.Value("go_goroutines", nil); n != 1 {
		t.Error("the Go runtime collector is missing")
	}
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(ctx); err != nil {
		t.Fatal("a second Close must return the first's result:", err)
	}
	if resp, err := http.Get(srv.URL()); err == nil {
		resp.Body.Close()
		t.Fatal("the endpoint still answers after Close")
	}
}
