// Package metricstest reads a Prometheus endpoint the way a test needs:
// scrape it over HTTP (or gather a registry), then look series up by name
// and labels. Recorder stands in for the registry where code reports to it.
package metricstest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/drover-sre/drover/metrics"
)

// Recorder keeps every report it receives, in order. It implements
// metrics.StreamRecorder and metrics.ProbeRecorder and is safe for
// concurrent use; the zero value is ready.
type Recorder struct {
	mu      sync.Mutex
	streams []metrics.StreamSample
	probes  []metrics.SiteProbes
}

// ObserveStream keeps s.
func (r *Recorder) ObserveStream(s metrics.StreamSample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streams = append(r.streams, s)
}

// ObserveSiteProbes keeps p.
func (r *Recorder) ObserveSiteProbes(p metrics.SiteProbes) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probes = append(r.probes, p)
}

// Streams is a copy of the stream reports so far.
func (r *Recorder) Streams() []metrics.StreamSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.streams)
}

// Probes is a copy of the probe reports so far.
func (r *Recorder) Probes() []metrics.SiteProbes {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.probes)
}

// Families is one exposition, by metric family name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url and parses the text exposition it answers. A status
// other than 200 is an error.
func Scrape(ctx context.Context, url string) (Families, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("scrape %s: %s: %s", url, resp.Status, body)
	}
	return Parse(resp.Body)
}

// Parse reads the Prometheus text exposition format.
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	return Families(fams), err
}

// Gather collects g, failing on any collection error.
func Gather(g prometheus.Gatherer) (Families, error) {
	mfs, err := g.Gather()
	out := Families{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out, err
}

// Series are the series of name whose labels include every pair of match
// (nil matches all).
func (f Families) Series(name string, match map[string]string) []*dto.Metric {
	mf := f[name]
	if mf == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range mf.GetMetric() {
		if hasLabels(m, match) {
			out = append(out, m)
		}
	}
	return out
}

// Value sums the matching series (see Series): a counter's, gauge's or
// untyped value, a histogram's or summary's sample count. n is how many
// series matched; with n == 0 the series does not exist.
func (f Families) Value(name string, match map[string]string) (v float64, n int) {
	for _, m := range f.Series(name, match) {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		case m.Summary != nil:
			v += float64(m.Summary.GetSampleCount())
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		}
		n++
	}
	return v, n
}

// HistogramSum sums the sample sums of the matching histogram series.
func (f Families) HistogramSum(name string, match map[string]string) float64 {
	var sum float64
	for _, m := range f.Series(name, match) {
		sum += m.GetHistogram().GetSampleSum()
	}
	return sum
}

// Labels is a series' labels as a map.
func Labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func hasLabels(m *dto.Metric, match map[string]string) bool {
	got := Labels(m)
	for k, v := range match {
		if got[k] != v {
			return false
		}
	}
	return true
}
