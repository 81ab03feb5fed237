package probe_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/metrics/metricstest"
	"github.com/drover-sre/drover/recipe"
)

// A vantage point judges each site by its http and tcp checks together;
// a failing dns check (the name points elsewhere, or no server) does not
// make a site down.
func TestProbeSitesVerdicts(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer up.Close()
	dead := "http://" + closedAddr(t, "127.0.0.1")
	r := recipe.Recipe{
		App: "shop", Primary: "east",
		Sites: []recipe.Site{
			{Name: "east", Provider: "local", Address: "127.0.0.1", DB: recipe.Database{User: "u", Password: "env:X"},
				App: recipe.AppTier{Endpoints: []string{up.URL}}},
			{Name: "west", Provider: "local", Address: "127.0.0.1", DB: recipe.Database{User: "u", Password: "env:X"},
				App: recipe.AppTier{Endpoints: []string{dead}}},
		},
		DNS:    recipe.DNS{Zone: "t.", Record: "a.t.", Driver: "rfc2136", Server: closedAddr(t, "127.0.0.1")},
		Probes: []recipe.Probe{{Kind: "http", Target: "/healthz"}, {Kind: "tcp", Target: "app"}, {Kind: "dns"}},
	}
	var recorder metricstest.Recorder
	a := &probe.Activities{Vantage: "east", Metrics: &recorder}
	res, err := a.ProbeSites(context.Background(), probe.SitesInput{Recipe: r})
	if err != nil {
		t.Fatal(err)
	}
	if res.Vantage != "east" || len(res.Sites) != 2 {
		t.Fatalf("%+v", res)
	}
	e, w := res.Sites[0], res.Sites[1]
	if !e.Up || len(e.Failed) != 0 || len(e.Checks) != 3 {
		t.Errorf("east: %+v", e)
	}
	if e.Checks[2].Kind != "dns" || e.Checks[2].Up {
		t.Errorf("east's dns check should fail (no server) without counting: %+v", e.Checks[2])
	}
	if w.Up || len(w.Failed) != 2 {
		t.Errorf("west: want down with its http and tcp checks failed, got %+v", w)
	}
	// Each verdict reaches the metrics with its app, vantage and checks.
	if rec := recorder.Probes(); len(rec) != 2 || rec[0].App != "shop" || rec[0].Site != "east" || rec[0].Vantage != "east" || !rec[0].Up ||
		rec[1].Site != "west" || rec[1].Up || len(rec[1].Checks) != 3 || rec[1].Checks[0].Kind != "http" || rec[1].Checks[0].Up {
		t.Errorf("recorded for the metrics: %+v", rec)
	}
	only, err := a.ProbeSites(context.Background(), probe.SitesInput{Recipe: r, Sites: []string{"west"}})
	if err != nil || len(only.Sites) != 1 || only.Sites[0].Site != "west" {
		t.Fatalf("%+v %v", only, err)
	}
	if _, err := a.ProbeSites(context.Background(), probe.SitesInput{Recipe: r, Sites: []string{"mars"}}); err == nil {
		t.Fatal("an unknown site must be an error")
	}
}
