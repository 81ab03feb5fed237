package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// SDKHandler returns the registry as the Temporal SDK's metrics handler:
// set it as client.Options.MetricsHandler and the SDK's metrics (and those
// workflows emit through workflow.GetMetricsHandler) are served with
// Drover's. A nil *Registry yields client.MetricsNopHandler.
//
// Names follow the SDK's Prometheus convention: a counter gets the suffix
// "_total" and a timer, exported as a histogram in seconds, "_seconds",
// unless the name already ends so; characters other than letters, digits,
// '_' and ':' become '_'. Tags become labels; an empty tag is no label.
// Series of one name may carry different tags: each is exported with the
// union of its name's labels, the missing ones empty (which Prometheus
// reads as absent).
//
// Names starting with "drover_" are Drover's: RunbookTotal,
// RunbookDurationSeconds, DrillLastResult and DrillLastSuccessTimestamp land
// on their series with only their documented labels (the SDK's own tags,
// such as namespace or workflow_type, are dropped); any other "drover_"
// name, or one of those with the wrong kind of instrument, is discarded.
func (r *Registry) SDKHandler() client.MetricsHandler {
	if r == nil {
		return client.MetricsNopHandler
	}
	return &sdkHandler{c: r.sdk}
}

// sdkTimerBuckets are the histogram buckets (seconds) of the SDK's timers:
// they span poll latencies of a millisecond to activities of an hour.
var sdkTimerBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600}

// droverPrefix marks the names reserved for Drover's own series.
const droverPrefix = "drover_"

type sdkKind int

const (
	kindCounter sdkKind = iota
	kindGauge
	kindTimer
)

// route is where a Drover series named through the SDK lands.
type route struct {
	kind    sdkKind
	labels  []string
	counter *prometheus.CounterVec
	gauge   *prometheus.GaugeVec
	hist    *prometheus.HistogramVec
}

func (r *Registry) routes() map[string]route {
	runbook := []string{LabelApp, LabelRunbook, LabelOutcome}
	app := []string{LabelApp}
	return map[string]route{
		RunbookTotal:              {kind: kindCounter, labels: runbook, counter: r.runbookTotal},
		RunbookDurationSeconds:    {kind: kindTimer, labels: runbook, hist: r.runbookDuration},
		DrillLastResult:           {kind: kindGauge, labels: app, gauge: r.drillResult},
		DrillLastSuccessTimestamp: {kind: kindGauge, labels: app, gauge: r.drillSuccess},
	}
}

// sdkHandler is one set of tags over the shared collector. Its tags map is
// never modified after creation.
type sdkHandler struct {
	c    *sdkCollector
	tags map[string]string
}

func (h *sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	maps.Copy(merged, h.tags)
	maps.Copy(merged, tags)
	return &sdkHandler{c: h.c, tags: merged}
}

func (h *sdkHandler) Counter(name string) client.MetricsCounter {
	name = withSuffix(promName(name), "_total")
	if rt, ok := h.c.routes[name]; ok && rt.kind == kindCounter {
		c := rt.counter.WithLabelValues(rt.values(h.tags)...)
		return counterFunc(func(d int64) {
			if d > 0 {
				c.Add(float64(d))
			}
		})
	}
	s := h.c.series(name, kindCounter, h.tags)
	if s == nil {
		return counterFunc(func(int64) {})
	}
	return counterFunc(func(d int64) {
		if d > 0 {
			h.c.update(func() { s.value += float64(d) })
		}
	})
}

func (h *sdkHandler) Gauge(name string) client.MetricsGauge {
	name = promName(name)
	if rt, ok := h.c.routes[name]; ok && rt.kind == kindGauge {
		return gaugeFunc(rt.gauge.WithLabelValues(rt.values(h.tags)...).Set)
	}
	s := h.c.series(name, kindGauge, h.tags)
	if s == nil {
		return gaugeFunc(func(float64) {})
	}
	return gaugeFunc(func(v float64) { h.c.update(func() { s.value = v }) })
}

func (h *sdkHandler) Timer(name string) client.MetricsTimer {
	name = withSuffix(promName(name), "_seconds")
	if rt, ok := h.c.routes[name]; ok && rt.kind == kindTimer {
		o := rt.hist.WithLabelValues(rt.values(h.tags)...)
		return timerFunc(func(d time.Duration) { o.Observe(d.Seconds()) })
	}
	s := h.c.series(name, kindTimer, h.tags)
	if s == nil {
		return timerFunc(func(time.Duration) {})
	}
	return timerFunc(func(d time.Duration) {
		v := d.Seconds()
		h.c.update(func() {
			s.count++
			s.value += v
			if i, _ := slices.BinarySearch(sdkTimerBuckets, v); i < len(sdkTimerBuckets) {
				s.buckets[i]++
			}
		})
	})
}

// values are the route's label values from tags; a missing tag is "".
func (rt route) values(tags map[string]string) []string {
	out := make([]string, len(rt.labels))
	for i, l := range rt.labels {
		out[i] = tags[l]
	}
	return out
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

// sdkCollector holds the SDK's series (all but the routed Drover ones) and
// exports them at each scrape. It is an unchecked collector: its names and
// labels are only known once the SDK has used them.
type sdkCollector struct {
	routes map[string]route

	mu       sync.Mutex
	families map[string]*sdkFamily
}

type sdkFamily struct {
	kind   sdkKind
	series map[string]*sdkSeries // by canonical label string
}

// sdkSeries is one labelled series. value is a counter's or gauge's value,
// or a timer's sum of seconds; buckets counts a timer's observations per
// bucket (not cumulative). Guarded by sdkCollector.mu.
type sdkSeries struct {
	labels  map[string]string
	value   float64
	count   uint64
	buckets []uint64
}

func newSDKCollector(routes map[string]route) *sdkCollector {
	return &sdkCollector{routes: routes, families: map[string]*sdkFamily{}}
}

func (c *sdkCollector) update(f func()) {
	c.mu.Lock()
	f()
	c.mu.Unlock()
}

// series finds or creates the series of name with tags. It returns nil
// for a name reserved for Drover or already used by another kind.
func (c *sdkCollector) series(name string, kind sdkKind, tags map[string]string) *sdkSeries {
	if strings.HasPrefix(name, droverPrefix) {
		return nil
	}
	labels := make(map[string]string, len(tags))
	for k, v := range tags {
		if v != "" {
			labels[labelName(k)] = v
		}
	}
	key := canonical(labels)
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.families[name]
	if f == nil {
		f = &sdkFamily{kind: kind, series: map[string]*sdkSeries{}}
		c.families[name] = f
	}
	if f.kind != kind {
		return nil
	}
	s := f.series[key]
	if s == nil {
		s = &sdkSeries{labels: labels}
		if kind == kindTimer {
			s.buckets = make([]uint64, len(sdkTimerBuckets))
		}
		f.series[key] = s
	}
	return s
}

// Describe sends nothing: the collector is unchecked.
func (c *sdkCollector) Describe(chan<- *prometheus.Desc) {}

// Collect exports every series, each family with the union of its labels.
func (c *sdkCollector) Collect(ch chan<- prometheus.Metric) {
	var out []prometheus.Metric
	c.mu.Lock()
	for name, f := range c.families {
		keySet := map[string]bool{}
		for _, s := range f.series {
			for k := range s.labels {
				keySet[k] = true
			}
		}
		keys := slices.Sorted(maps.Keys(keySet))
		desc := prometheus.NewDesc(name, "Temporal SDK metric "+name+".", keys, nil)
		for _, s := range f.series {
			vals := make([]string, len(keys))
			for i, k := range keys {
				vals[i] = s.labels[k]
			}
			out = append(out, f.metric(desc, s, vals))
		}
	}
	c.mu.Unlock()
	for _, m := range out {
		ch <- m
	}
}

// metric renders one series; a series Prometheus rejects (such as a label
// value that is not UTF-8) becomes an invalid metric, which the scrape
// reports without failing the other series.
func (f *sdkFamily) metric(desc *prometheus.Desc, s *sdkSeries, vals []string) prometheus.Metric {
	var m prometheus.Metric
	var err error
	switch f.kind {
	case kindCounter:
		m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, s.value, vals...)
	case kindGauge:
		m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.value, vals...)
	default:
		cum := make(map[float64]uint64, len(sdkTimerBuckets))
		var n uint64
		for i, b := range sdkTimerBuckets {
			n += s.buckets[i]
			cum[b] = n
		}
		m, err = prometheus.NewConstHistogram(desc, s.count, s.value, cum, vals...)
	}
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}

// canonical is a map's "k=v" pairs, sorted and joined: equal label sets
// give equal strings.
func canonical(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return b.String()
}

// promName maps a metric name onto Prometheus' name characters.
func promName(name string) string {
	return sanitize(name, true)
}

// labelName maps a tag key onto Prometheus' label-name characters; keys
// Prometheus reserves ("le", "quantile", "__…") get the prefix "tag_".
func labelName(k string) string {
	k = sanitize(k, false)
	if k == "le" || k == "quantile" || strings.HasPrefix(k, "__") {
		k = "tag_" + k
	}
	return k
}

func sanitize(s string, colon bool) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (i > 0 && c >= '0' && c <= '9') || (colon && c == ':')
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

func withSuffix(name, suffix string) string {
	if strings.HasSuffix(name, suffix) {
		return name
	}
	return name + suffix
}
