package webhook

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/drover-sre/drover/recipe"
)

const (
	// testToken is the bearer token of testdata/recipe.yaml's env reference.
	testToken = "test-token-0123456789abcdef"
	tokenEnv  = "DROVER_TEST_WEBHOOK_TOKEN"
	// testKey is the HMAC secret of the tests that sign.
	testKey = "test-hmac-key-0123456789abcdef"
	hmacEnv = "DROVER_TEST_WEBHOOK_HMAC"
)

// testRecipe is testdata/recipe.yaml: petclinic, east → west, automatic
// failover on, routes SiteDown → failover, PlannedMaintenance →
// switchover from east, DRDrillDue → drill, severity=warning → notify-only.
func testRecipe(t testing.TB) *recipe.Recipe {
	t.Helper()
	r, err := recipe.Load("testdata/recipe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newTestHandler builds a handler for r with the bearer token of
// testdata/recipe.yaml (set in the environment), logging to an observer.
func newTestHandler(t testing.TB, r *recipe.Recipe, st Starter, mutate func(*Config)) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	if err := os.Setenv(tokenEnv, testToken); err != nil { // fuzz targets cannot use t.Setenv
		t.Fatal(err)
	}
	if err := os.Setenv(hmacEnv, testKey); err != nil {
		t.Fatal(err)
	}
	auth, err := NewAuth(r.Alerts.Auth)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := Config{Recipe: r, Auth: auth, Starter: st, Logger: zap.New(core)}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, logs
}

// readPayload returns a testdata payload, changed by mutate when given.
func readPayload(t testing.TB, name string, mutate func(*Message)) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if mutate == nil {
		return b
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	mutate(&m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body to h with the test's bearer token (unless headers set
// Authorization) and decodes the answer.
func post(t testing.TB, h http.Handler, body []byte, headers map[string]string) (int, Response, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/alerts", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("status %d: answer is not JSON: %v\n%s", rec.Code, err, rec.Body.String())
	}
	return rec.Code, resp, rec.Header()
}

// signature is the SignatureHeader value for body.
func signature(body []byte) string {
	return "sha256=" + hex.EncodeToString(Sign([]byte(testKey), body))
}

// fakeStarter is a Starter that keeps runs in memory the way Temporal
// does: one open run per workflow ID, a closed one does not stand in the
// way.
type fakeStarter struct {
	mu        sync.Mutex
	runs      map[string][]*Run // by workflow ID, latest last
	starts    []StartRequest    // every successful start
	calls     int               // Last and Start calls
	failLast  error
	failStart error
	now       func() time.Time
}

func newFakeStarter(now func() time.Time) *fakeStarter {
	return &fakeStarter{runs: map[string][]*Run{}, now: now}
}

func (f *fakeStarter) Last(_ context.Context, id string) (Run, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failLast != nil {
		return Run{}, false, f.failLast
	}
	rs := f.runs[id]
	if len(rs) == 0 {
		return Run{}, false, nil
	}
	return *rs[len(rs)-1], true, nil
}

func (f *fakeStarter) Start(_ context.Context, req StartRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failStart != nil {
		return "", f.failStart
	}
	if rs := f.runs[req.ID]; len(rs) > 0 && rs[len(rs)-1].Running {
		return "", ErrAlreadyRunning
	}
	id := req.ID + "-run-" + string(rune('a'+len(f.runs[req.ID])))
	f.runs[req.ID] = append(f.runs[req.ID], &Run{Type: req.Type, RunID: id, Status: "running", Running: true,
		Started: f.now(), AlertKey: req.AlertKey})
	f.starts = append(f.starts, req)
	return id, nil
}

// finish closes the latest run under id at the fake's now.
func (f *fakeStarter) finish(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.runs[id]
	last := rs[len(rs)-1]
	last.Running, last.Status, last.Closed = false, "completed", f.now()
}

func (f *fakeStarter) snapshot() (starts []StartRequest, calls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]StartRequest(nil), f.starts...), f.calls
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
