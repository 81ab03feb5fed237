// Package probe holds the health-probe activities. A probe reports what it
// observed — an unreachable database, a refused connection, a wrong DNS
// answer is a result, not an activity failure — so that a status runbook
// can always produce its table and a health monitor can count failures
// against thresholds. Probes run on a site's task queue: the vantage point
// is the worker of that site, named in every result.
//
// ProbeDB and ProbeApp serve the status table; ProbeHTTP, ProbeTCP,
// ProbeMySQL and ProbeDNS are the single checks a health monitor runs for
// each Target that ExpandTargets derives from a recipe's probes list.
package probe

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/recipe"
)

// Activities probes applications and databases. HTTP is the client used for
// application probes; a nil HTTP uses a client with a 5 s timeout.
type Activities struct {
	HTTP *http.Client
	// Vantage names the site whose worker runs these probes; it is copied
	// into every result so a reader knows who judged whom.
	Vantage string
	// Metrics receives every ProbeSites verdict and its checks, for the
	// worker's metrics endpoint; nil records nothing.
	Metrics metrics.ProbeRecorder
}

// DBProbeInput names the site whose database is probed.
type DBProbeInput struct {
	Site    recipe.Site   `json:"site"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

// DBProbeResult is what a database probe saw. When Reachable is false, Error
// says why; the other fields are then zero.
type DBProbeResult struct {
	Site          string `json:"site"`
	Vantage       string `json:"vantage"`
	Address       string `json:"address"`
	Reachable     bool   `json:"reachable"`
	ReadOnly      bool   `json:"read_only"`
	Version       string `json:"version,omitempty"`
	ServerID      uint32 `json:"server_id,omitempty"`
	GTIDDomainID  uint32 `json:"gtid_domain_id,omitempty"`
	GTIDBinlogPos string `json:"gtid_binlog_pos,omitempty"`
	LatencyMS     int64  `json:"latency_ms"`
	Error         string `json:"error,omitempty"`
}

// ProbeDB connects to the site's database with its admin account (secret
// resolved here, never carried in workflow history) and reads read_only,
// identity and GTID position.
func (a *Activities) ProbeDB(ctx context.Context, in DBProbeInput) (DBProbeResult, error) {
	s := in.Site
	res := DBProbeResult{Site: s.Name, Vantage: a.Vantage, Address: sitedb.Addr(s)}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	var ro int
	res.LatencyMS, res.Error = withDB(ctx, s, timeout, func(qctx context.Context, db *sql.DB) error {
		return db.QueryRowContext(qctx,
			"SELECT @@global.read_only, @@version, @@global.server_id, @@global.gtid_domain_id, @@global.gtid_binlog_pos").
			Scan(&ro, &res.Version, &res.ServerID, &res.GTIDDomainID, &res.GTIDBinlogPos)
	})
	res.Reachable, res.ReadOnly = res.Error == "", res.Error == "" && ro != 0
	return res, nil
}

// withDB opens the site's database with its admin account and runs q
// within timeout. It returns q's latency and, on failure, a short reason:
// "db.password: ..." when the secret cannot be resolved (naming the
// reference, never a value), "db.tls.ca: ..." (or another db.tls field)
// when the TLS files cannot be used, else the driver's or network's error.
func withDB(ctx context.Context, s recipe.Site, timeout time.Duration, q func(context.Context, *sql.DB) error) (latencyMS int64, errMsg string) {
	db, err := sitedb.Open(s, sitedb.Admin(s), timeout, timeout)
	var ce *sitedb.ConfigError
	switch {
	case errors.As(err, &ce):
		return 0, ce.Field + ": " + ce.Err.Error()
	case err != nil:
		return 0, err.Error()
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err = q(qctx, db)
	latencyMS = time.Since(start).Milliseconds()
	if err != nil {
		return latencyMS, describeDBError(err)
	}
	return latencyMS, ""
}

// AppProbeInput names the site whose application endpoints are probed.
type AppProbeInput struct {
	Site    recipe.Site   `json:"site"`
	Path    string        `json:"path"` // e.g. "/healthz"
	Timeout time.Duration `json:"timeout,omitempty"`
}

// EndpointResult is one HTTP probe of one endpoint.
type EndpointResult struct {
	URL        string `json:"url"`
	Up         bool   `json:"up"` // answered 2xx (or the expected status, and the expected body)
	StatusCode int    `json:"status_code,omitempty"`
	LatencyMS  int64  `json:"latency_ms"`
	// Writable is the demo app's own verdict on its database (from the
	// /healthz JSON body "db.writable"); nil when the body does not say.
	Writable *bool  `json:"writable,omitempty"`
	Error    string `json:"error,omitempty"`
}

// AppProbeResult gathers the probes of all of a site's app endpoints.
type AppProbeResult struct {
	Site      string           `json:"site"`
	Vantage   string           `json:"vantage"`
	Endpoints []EndpointResult `json:"endpoints"`
}

// Up reports whether every endpoint answered 2xx.
func (r AppProbeResult) Up() bool {
	for _, e := range r.Endpoints {
		if !e.Up {
			return false
		}
	}
	return len(r.Endpoints) > 0
}

// ProbeApp GETs Path on every app endpoint of the site.
func (a *Activities) ProbeApp(ctx context.Context, in AppProbeInput) (AppProbeResult, error) {
	res := AppProbeResult{Site: in.Site.Name, Vantage: a.Vantage}
	path := in.Path
	if path == "" {
		path = "/healthz"
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	hc := a.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: timeout}
	}
	for _, ep := range in.Site.App.Endpoints {
		res.Endpoints = append(res.Endpoints, probeURL(ctx, hc, endpointURL(ep, path), timeout, 0, ""))
	}
	return res, nil
}

// endpointURL joins an app endpoint ("http://host:port" or with "/") and a path.
func endpointURL(endpoint, path string) string {
	return strings.TrimSuffix(endpoint, "/") + path
}

// maxBody bounds how much of a response body a probe reads.
const maxBody = 1 << 20

// probeURL GETs url within timeout. The endpoint is up when it answers
// expect (0: any 2xx) and, if contains is set, its body (first maxBody
// bytes) contains it.
func probeURL(ctx context.Context, hc *http.Client, url string, timeout time.Duration, expect int, contains string) EndpointResult {
	r := EndpointResult{URL: url}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		r.LatencyMS = time.Since(start).Milliseconds()
		r.Error = describeNetError(err)
		return r
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	r.LatencyMS = time.Since(start).Milliseconds()
	r.StatusCode = resp.StatusCode
	if expect == 0 {
		r.Up = resp.StatusCode >= 200 && resp.StatusCode < 300
	} else {
		r.Up = resp.StatusCode == expect
	}
	if r.Up && contains != "" && !strings.Contains(string(body), contains) {
		r.Up = false
		r.Error = fmt.Sprintf("body does not contain %q", contains)
	}
	var health struct {
		DB *struct {
			Writable *bool  `json:"writable"`
			Error    string `json:"error"`
		} `json:"db"`
	}
	if json.Unmarshal(body, &health) == nil && health.DB != nil {
		r.Writable = health.DB.Writable
		if !r.Up && r.Error == "" && health.DB.Error != "" {
			r.Error = "app reports db: " + health.DB.Error
		}
	}
	if !r.Up && r.Error == "" {
		r.Error = resp.Status
	}
	return r
}

// describeDBError turns driver errors into a short reason an SRE can act on.
func describeDBError(err error) string {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return fmt.Sprintf("mysql error %d: %s", me.Number, me.Message)
	}
	return describeNetError(err)
}

func describeNetError(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout: " + err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return err.Error()
}
