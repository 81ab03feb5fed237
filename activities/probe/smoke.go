package probe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/drover-sre/drover/recipe"
)

// SmokeInput runs an application's smoke checks against one base URL.
type SmokeInput struct {
	Site    string              `json:"site"`
	BaseURL string              `json:"base_url"` // e.g. http://127.0.0.4:8080
	Checks  []recipe.SmokeCheck `json:"checks"`
	// Token replaces recipe.RunToken in every check (letters and digits).
	Token string `json:"token"`
	// Timeout bounds each request (default 5s).
	Timeout recipe.Duration `json:"timeout,omitempty"`
}

// SmokeCheckResult is one check's outcome.
type SmokeCheckResult struct {
	Name       string `json:"name"`
	Passed     bool   `json:"passed"`
	StatusCode int    `json:"status_code,omitempty"`
	LatencyMS  int64  `json:"latency_ms"`
	Error      string `json:"error,omitempty"`
}

// SmokeResult is every check's outcome; Passed only if all passed. The
// checks stop at the first failure (a later check usually depends on it).
type SmokeResult struct {
	Site    string             `json:"site"`
	Vantage string             `json:"vantage"`
	Passed  bool               `json:"passed"`
	Checks  []SmokeCheckResult `json:"checks"`
}

// SmokeHTTP sends the smoke checks in order and reports each. A failing
// check is a result (Passed false), not an activity error: the drill
// reports it and still cleans up. Bodies are read up to 1 MiB; neither
// bodies nor headers are echoed in the result beyond an excerpt of a
// failing body.
func (a *Activities) SmokeHTTP(ctx context.Context, in SmokeInput) (SmokeResult, error) {
	out := SmokeResult{Site: in.Site, Vantage: a.Vantage, Passed: true}
	timeout := 5 * time.Second
	if in.Timeout > 0 {
		timeout = in.Timeout.D()
	}
	hc := a.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: timeout}
	}
	base := strings.TrimSuffix(in.BaseURL, "/")
	for _, c := range in.Checks {
		r := smokeOne(ctx, hc, base, c, in.Token, timeout)
		out.Checks = append(out.Checks, r)
		if !r.Passed {
			out.Passed = false
			break
		}
	}
	return out, nil
}

func smokeOne(ctx context.Context, hc *http.Client, base string, c recipe.SmokeCheck, token string, timeout time.Duration) SmokeCheckResult {
	fill := func(s string) string { return strings.ReplaceAll(s, recipe.RunToken, token) }
	r := SmokeCheckResult{Name: fill(c.Label())}
	method := strings.ToUpper(c.Method)
	if method == "" {
		method = http.MethodGet
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(fill(c.Body))
	}
	req, err := http.NewRequestWithContext(rctx, method, base+fill(c.Path), body)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := hc.Do(req)
	r.LatencyMS = time.Since(start).Milliseconds()
	if err != nil {
		r.Error = describeNetError(err)
		return r
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	b := strings.TrimSpace(string(raw))
	r.StatusCode = resp.StatusCode
	switch {
	case c.ExpectStatus != 0 && resp.StatusCode != c.ExpectStatus:
		r.Error = fmt.Sprintf("status %d, want %d: %.200s", resp.StatusCode, c.ExpectStatus, b)
	case c.ExpectStatus == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299):
		r.Error = fmt.Sprintf("status %d, want 2xx: %.200s", resp.StatusCode, b)
	case c.ExpectBody != "" && !strings.Contains(b, fill(c.ExpectBody)):
		r.Error = fmt.Sprintf("body does not contain %q: %.200s", fill(c.ExpectBody), b)
	default:
		r.Passed = true
	}
	return r
}
