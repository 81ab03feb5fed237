// Package metrics is a worker's Prometheus endpoint: one registry per
// process (a Registry value, never prometheus.DefaultRegisterer) holding
// Drover's own series, the Go runtime and process collectors, and the
// Temporal SDK's metrics through SDKHandler, an adapter implementing
// client.MetricsHandler.
//
// Where the numbers come from:
//   - replication: the StreamBinlog activity reports a StreamSample every
//     second through StreamRecorder (the replication library itself knows
//     nothing of metrics);
//   - probes: the ProbeSites activity reports each site's checks through
//     ProbeRecorder;
//   - runbooks and drills: workflows emit through workflow.GetMetricsHandler
//     (replay-safe) with RecordRunbook and RecordDrill; SDKHandler routes
//     those names onto the Drover series below, with their documented
//     labels only.
//
// Every Registry method is safe for concurrent use. The recording side
// (ObserveStream, ObserveSiteProbes, SDKHandler) also works on a nil
// *Registry, recording nothing, so a worker without --metrics-addr passes
// nil to its activities.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Names of Drover's series. The labels of each are listed in its comment;
// they never change at run time.
const (
	// ReplicationLagSeconds{app,stream}: source commit time of the last
	// applied transaction to now, 0 when caught up (gauge).
	ReplicationLagSeconds = "drover_replication_lag_seconds"
	// ReplicationBehindTransactions{app,stream}: source transactions not yet
	// applied, by GTID distance (gauge).
	ReplicationBehindTransactions = "drover_replication_behind_transactions"
	// ReplicationAppliedTransactions{app,stream}: source transactions applied
	// into the target, DDL included (counter; its rate is the apply rate).
	ReplicationAppliedTransactions = "drover_replication_applied_transactions_total"
	// ReplicationAppliedRows{app,stream}: row changes applied (counter; its
	// rate is rows/s).
	ReplicationAppliedRows = "drover_replication_applied_rows_total"
	// ReplicationStreamRestarts{app,stream}: times the stream resumed from
	// the target's checkpoint after an interruption (counter).
	ReplicationStreamRestarts = "drover_replication_stream_restarts_total"
	// ReplicationStreaming{app,stream}: 1 while the stream is connected and
	// applying at this worker, 0 once its run ended (gauge).
	ReplicationStreaming = "drover_replication_streaming"
	// ReplicationRPOSLASeconds{app,stream}: the recipe's policy.sla.rpo, the
	// lag the stream must stay under (gauge).
	ReplicationRPOSLASeconds = "drover_replication_rpo_sla_seconds"

	// ProbeUp{app,site,vantage,kind}: 1 when every check of that kind of
	// site passed in the vantage point's last round, else 0 (gauge).
	ProbeUp = "drover_probe_up"
	// ProbeLatencySeconds{app,site,vantage,kind}: latency of each check,
	// failed ones included (histogram).
	ProbeLatencySeconds = "drover_probe_latency_seconds"
	// SiteUp{app,site,vantage}: the vantage point's verdict on the site in
	// its last round: 1 when every http, tcp and mysql check passed (gauge).
	SiteUp = "drover_site_up"

	// RunbookDurationSeconds{app,runbook,outcome}: start to end of a finished
	// runbook in workflow time (histogram).
	RunbookDurationSeconds = "drover_runbook_duration_seconds"
	// RunbookTotal{app,runbook,outcome}: runbooks finished (counter).
	RunbookTotal = "drover_runbook_total"

	// DrillLastResult{app}: 1 when the application's last drill passed, 0
	// when it failed (gauge).
	DrillLastResult = "drover_drill_last_result"
	// DrillLastSuccessTimestamp{app}: Unix time of the last drill that
	// passed (gauge).
	DrillLastSuccessTimestamp = "drover_drill_last_success_timestamp_seconds"
)

// Label names of Drover's series.
const (
	LabelApp     = "app"
	LabelStream  = "stream"
	LabelSite    = "site"
	LabelVantage = "vantage"
	LabelKind    = "kind"
	LabelRunbook = "runbook"
	LabelOutcome = "outcome"
)

// Registry is one process's metrics. Create it with New; the zero value is
// not usable, a nil *Registry records nothing.
type Registry struct {
	reg *prometheus.Registry

	lag, behind, streaming, rpoSLA     *prometheus.GaugeVec
	appliedTxns, appliedRows, restarts *prometheus.CounterVec

	probeUp, siteUp *prometheus.GaugeVec
	probeLatency    *prometheus.HistogramVec

	runbookDuration *prometheus.HistogramVec
	runbookTotal    *prometheus.CounterVec
	drillResult     *prometheus.GaugeVec
	drillSuccess    *prometheus.GaugeVec

	sdk *sdkCollector
}

// New returns a Registry with every Drover series, the Go runtime and
// process collectors, and an empty collector for the SDK's metrics.
func New() *Registry {
	stream := []string{LabelApp, LabelStream}
	probe := []string{LabelApp, LabelSite, LabelVantage, LabelKind}
	runbook := []string{LabelApp, LabelRunbook, LabelOutcome}
	r := &Registry{
		reg: prometheus.NewRegistry(),
		lag: gauge(ReplicationLagSeconds,
			"Replication lag: now minus the source commit time of the last applied transaction; 0 when caught up.", stream),
		behind: gauge(ReplicationBehindTransactions,
			"Source transactions not yet applied to the target (GTID distance).", stream),
		streaming: gauge(ReplicationStreaming,
			"1 while the stream is connected and applying at this worker, 0 once its run ended.", stream),
		rpoSLA: gauge(ReplicationRPOSLASeconds,
			"The recipe's RPO SLA (policy.sla.rpo): the lag the stream must stay under.", stream),
		appliedTxns: counter(ReplicationAppliedTransactions,
			"Source transactions applied into the target (DDL included).", stream),
		appliedRows: counter(ReplicationAppliedRows,
			"Row changes applied into the target.", stream),
		restarts: counter(ReplicationStreamRestarts,
			"Times the stream resumed from the target's checkpoint after an interruption.", stream),
		probeUp: gauge(ProbeUp,
			"1 when every check of this kind passed in the vantage point's last round, else 0.", probe),
		siteUp: gauge(SiteUp,
			"The vantage point's last verdict on the site: 1 when every http, tcp and mysql check passed.",
			[]string{LabelApp, LabelSite, LabelVantage}),
		probeLatency: histogram(ProbeLatencySeconds, "Latency of each probe check, failed ones included.",
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}, probe),
		runbookDuration: histogram(RunbookDurationSeconds, "Start to end of finished runbooks (workflow time).",
			[]float64{1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400}, runbook),
		runbookTotal: counter(RunbookTotal, "Runbooks finished, by outcome.", runbook),
		drillResult: gauge(DrillLastResult,
			"1 when the application's last drill passed, 0 when it failed.", []string{LabelApp}),
		drillSuccess: gauge(DrillLastSuccessTimestamp,
			"Unix time of the application's last drill that passed.", []string{LabelApp}),
	}
	r.sdk = newSDKCollector(r.routes())
	r.reg.MustRegister(r.lag, r.behind, r.streaming, r.rpoSLA, r.appliedTxns, r.appliedRows, r.restarts,
		r.probeUp, r.siteUp, r.probeLatency, r.runbookDuration, r.runbookTotal, r.drillResult, r.drillSuccess,
		r.sdk, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Gatherer is the registry, for tests and custom exposition.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves the registry in the Prometheus exposition formats. A
// collection error is reported in the response, never a panic.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg, ErrorHandling: promhttp.ContinueOnError})
}

func gauge(name, help string, labels []string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func counter(name, help string, labels []string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func histogram(name, help string, buckets []float64, labels []string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}
