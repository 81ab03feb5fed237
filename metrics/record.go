package metrics

import (
	"time"

	"go.temporal.io/sdk/client"
)

// StreamSample is one report of a replication stream. Counter fields are
// increments since the stream's previous report, never running totals, so
// that a new activity run (whose library counters start at zero) keeps the
// series monotonic.
type StreamSample struct {
	App    string
	Stream string
	// Streaming is whether the stream is connected and applying now.
	Streaming bool
	// LagSeconds and BehindTransactions are the stream's current lag.
	LagSeconds         float64
	BehindTransactions uint64
	// RPOSLASeconds is the lag the stream must stay under; 0 leaves the
	// series as it was.
	RPOSLASeconds float64
	// Increments since the previous report.
	AppliedTransactions uint64
	AppliedRows         uint64
	Restarts            uint64
}

// StreamRecorder receives replication measurements; *Registry implements
// it. Implementations must be safe for concurrent use.
type StreamRecorder interface {
	ObserveStream(StreamSample)
}

// ObserveStream sets the stream's gauges and adds its increments.
func (r *Registry) ObserveStream(s StreamSample) {
	if r == nil {
		return
	}
	l := []string{s.App, s.Stream}
	r.lag.WithLabelValues(l...).Set(max(s.LagSeconds, 0))
	r.behind.WithLabelValues(l...).Set(float64(s.BehindTransactions))
	r.streaming.WithLabelValues(l...).Set(boolValue(s.Streaming))
	if s.RPOSLASeconds > 0 {
		r.rpoSLA.WithLabelValues(l...).Set(s.RPOSLASeconds)
	}
	// Touch every counter so each series exists from the first report.
	r.appliedTxns.WithLabelValues(l...).Add(float64(s.AppliedTransactions))
	r.appliedRows.WithLabelValues(l...).Add(float64(s.AppliedRows))
	r.restarts.WithLabelValues(l...).Add(float64(s.Restarts))
}

// ProbeCheck is one check of a site in a health round.
type ProbeCheck struct {
	Kind    string // http, tcp, mysql, dns
	Up      bool
	Latency time.Duration
}

// SiteProbes is one vantage point's round on one site: its verdict and
// every check behind it.
type SiteProbes struct {
	App     string
	Site    string
	Vantage string
	Up      bool
	Checks  []ProbeCheck
}

// ProbeRecorder receives health-probe results; *Registry implements it.
// Implementations must be safe for concurrent use.
type ProbeRecorder interface {
	ObserveSiteProbes(SiteProbes)
}

// ObserveSiteProbes sets the site's verdict, sets ProbeUp per kind to
// whether every check of that kind passed, and observes every check's
// latency.
func (r *Registry) ObserveSiteProbes(p SiteProbes) {
	if r == nil {
		return
	}
	r.siteUp.WithLabelValues(p.App, p.Site, p.Vantage).Set(boolValue(p.Up))
	up := map[string]bool{}
	for _, c := range p.Checks {
		prev, seen := up[c.Kind]
		up[c.Kind] = c.Up && (prev || !seen)
		r.probeLatency.WithLabelValues(p.App, p.Site, p.Vantage, c.Kind).Observe(c.Latency.Seconds())
	}
	for kind, ok := range up {
		r.probeUp.WithLabelValues(p.App, p.Site, p.Vantage, kind).Set(boolValue(ok))
	}
}

// RecordRunbook counts a finished runbook and observes its duration through
// h, which in a workflow is workflow.GetMetricsHandler(ctx): nothing is
// emitted while the workflow replays. SDKHandler maps both onto
// RunbookTotal and RunbookDurationSeconds with labels app, runbook and
// outcome.
func RecordRunbook(h client.MetricsHandler, app, runbook, outcome string, d time.Duration) {
	h = h.WithTags(map[string]string{LabelApp: app, LabelRunbook: runbook, LabelOutcome: outcome})
	h.Counter(RunbookTotal).Inc(1)
	h.Timer(RunbookDurationSeconds).Record(d)
}

// RecordDrill records a finished drill of app through h (in a workflow:
// workflow.GetMetricsHandler(ctx), replay-safe): DrillLastResult is set to
// 1 or 0 and, when it passed, DrillLastSuccessTimestamp to at (pass
// workflow.Now). SDKHandler maps both onto series labelled app only.
func RecordDrill(h client.MetricsHandler, app string, passed bool, at time.Time) {
	h = h.WithTags(map[string]string{LabelApp: app})
	if passed {
		h.Gauge(DrillLastSuccessTimestamp).Update(float64(at.UnixMilli()) / 1000)
	}
	h.Gauge(DrillLastResult).Update(boolValue(passed))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
