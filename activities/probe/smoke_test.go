package probe

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/drover-sre/drover/recipe"
)

// A write then a read of the same record passes; the run token reaches
// path, body and expectation; the first failing check stops the run and
// says why.
func TestSmokeHTTP(t *testing.T) {
	var mu sync.Mutex
	names := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/owners":
			b, _ := io.ReadAll(r.Body)
			if r.Header.Get("Content-Type") != "application/json" {
				w.WriteHeader(http.StatusUnsupportedMediaType)
				return
			}
			names[string(b)] = true
			w.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodGet && r.URL.Path == "/api/owners":
			for n := range names {
				if strings.Contains(n, r.URL.Query().Get("last_name")) {
					_, _ = io.WriteString(w, n)
				}
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	a := &Activities{Vantage: "east"}
	checks := []recipe.SmokeCheck{
		{Name: "create owner {run}", Method: "POST", Path: "/api/owners", Body: `{"last_name":"drill{run}"}`, ExpectStatus: 201},
		{Path: "/api/owners?last_name=drill{run}", ExpectBody: "drill{run}"},
	}
	res, err := a.SmokeHTTP(context.Background(), SmokeInput{Site: "drill", BaseURL: srv.URL + "/", Checks: checks, Token: "abc123"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed || len(res.Checks) != 2 || res.Checks[0].Name != "create owner abc123" || res.Vantage != "east" {
		t.Fatalf("%+v", res)
	}
	if !names[`{"last_name":"drillabc123"}`] {
		t.Fatalf("the token did not reach the body: %v", names)
	}

	bad := append([]recipe.SmokeCheck{{Path: "/api/owners?last_name=nobody", ExpectBody: "nobody"}}, checks...)
	res, err = a.SmokeHTTP(context.Background(), SmokeInput{Site: "drill", BaseURL: srv.URL, Checks: bad, Token: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed || len(res.Checks) != 1 || !strings.Contains(res.Checks[0].Error, `body does not contain "nobody"`) {
		t.Fatalf("%+v", res)
	}
	res, _ = a.SmokeHTTP(context.Background(), SmokeInput{BaseURL: srv.URL, Checks: []recipe.SmokeCheck{{Path: "/missing"}}})
	if res.Passed || res.Checks[0].StatusCode != 404 || !strings.Contains(res.Checks[0].Error, "status 404, want 2xx") {
		t.Fatalf("%+v", res)
	}
	srv.Close()
	res, _ = a.SmokeHTTP(context.Background(), SmokeInput{BaseURL: srv.URL, Checks: checks[1:]})
	if res.Passed || res.Checks[0].Error == "" {
		t.Fatalf("a closed server passed: %+v", res)
	}
}
