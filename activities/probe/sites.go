package probe

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/recipe"
)

// SitesInput asks one vantage point to judge the given sites (all of the
// recipe's when empty) with every probe of the recipe.
type SitesInput struct {
	Recipe recipe.Recipe `json:"recipe"`
	Sites  []string      `json:"sites,omitempty"`
}

// CheckResult is one probe of one site, condensed for a health round.
type CheckResult struct {
	Key       string `json:"key"`
	Kind      string `json:"kind"`
	Up        bool   `json:"up"`
	LatencyMS int64  `json:"latency_ms"`
	Error     string `json:"error,omitempty"`
	// Answer is what a DNS check was told (addresses).
	Answer []string `json:"answer,omitempty"`
}

// SiteVerdict is one vantage point's judgement of one site: Up when every
// http, tcp and mysql check passed. DNS checks are reported but do not
// count: the public name pointing elsewhere says nothing about the site.
type SiteVerdict struct {
	Site     string        `json:"site"`
	Up       bool          `json:"up"`
	ReadOnly *bool         `json:"read_only,omitempty"` // from the mysql check
	Failed   []string      `json:"failed,omitempty"`    // keys of the failed checks that count
	Checks   []CheckResult `json:"checks"`
}

// SitesResult is a vantage point's round.
type SitesResult struct {
	Vantage string        `json:"vantage"`
	Sites   []SiteVerdict `json:"sites"`
}

// ProbeSites runs every probe of every requested site from this worker's
// site, concurrently, and returns a verdict per site. Like every probe it
// reports instead of failing; only an unexpandable recipe is an error.
func (a *Activities) ProbeSites(ctx context.Context, in SitesInput) (SitesResult, error) {
	r := in.Recipe
	r.ApplyDefaults()
	names := in.Sites
	if len(names) == 0 {
		for _, s := range r.Sites {
			names = append(names, s.Name)
		}
	}
	res := SitesResult{Vantage: a.Vantage}
	for _, name := range names {
		targets, err := ExpandTargets(&r, name)
		if err != nil {
			return res, err
		}
		v := SiteVerdict{Site: name, Up: true, Checks: make([]CheckResult, len(targets))}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i, t := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, ro := a.check(ctx, t)
				mu.Lock()
				defer mu.Unlock()
				v.Checks[i] = c
				if ro != nil {
					v.ReadOnly = ro
				}
			}()
		}
		wg.Wait()
		for _, c := range v.Checks {
			if c.Kind != recipe.ProbeDNS && !c.Up {
				v.Up = false
				v.Failed = append(v.Failed, c.Key)
			}
		}
		sort.Strings(v.Failed)
		res.Sites = append(res.Sites, v)
		a.record(r.App, v)
	}
	return res, nil
}

// record reports a site's verdict and checks to Metrics, if set.
func (a *Activities) record(app string, v SiteVerdict) {
	if a.Metrics == nil {
		return
	}
	p := metrics.SiteProbes{App: app, Site: v.Site, Vantage: a.Vantage, Up: v.Up}
	for _, c := range v.Checks {
		p.Checks = append(p.Checks, metrics.ProbeCheck{Kind: c.Kind, Up: c.Up, Latency: time.Duration(c.LatencyMS) * time.Millisecond})
	}
	a.Metrics.ObserveSiteProbes(p)
}

// check runs one target; for a mysql target it also returns read_only.
func (a *Activities) check(ctx context.Context, t Target) (CheckResult, *bool) {
	c := CheckResult{Key: t.Key(), Kind: t.Kind}
	switch {
	case t.HTTP != nil:
		r, _ := a.ProbeHTTP(ctx, *t.HTTP)
		c.Up, c.LatencyMS, c.Error = r.Up, r.LatencyMS, r.Error
		if !r.Up && r.Error == "" {
			c.Error = fmt.Sprintf("status %d", r.StatusCode)
		}
	case t.TCP != nil:
		r, _ := a.ProbeTCP(ctx, *t.TCP)
		c.Up, c.LatencyMS, c.Error = r.Up, r.LatencyMS, r.Error
	case t.MySQL != nil:
		r, _ := a.ProbeMySQL(ctx, *t.MySQL)
		c.Up, c.LatencyMS = r.Up, r.LatencyMS
		if !r.Up {
			c.Error = r.Error
			return c, nil
		}
		ro := r.ReadOnly
		return c, &ro
	case t.DNS != nil:
		r, _ := a.ProbeDNS(ctx, *t.DNS)
		c.Up, c.LatencyMS, c.Error, c.Answer = r.Up, r.LatencyMS, r.Error, r.Addresses
	}
	return c, nil
}
