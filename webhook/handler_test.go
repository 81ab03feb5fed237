package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

// startsAt is the startsAt of testdata/sitedown-firing.json.
var startsAt = time.Date(2026, 11, 26, 15, 14, 36, 123e6, time.UTC)

// testClock starts a minute after the test alert started firing.
func testClock() *clock { return &clock{t: startsAt.Add(time.Minute)} }

// The Alertmanager payload starts one Failover east → west under the
// application's runbook ID, with the alert in its reason, detection time
// and memo; a repeat while it runs is acknowledged and starts nothing.
func TestFiringAlertStartsOneFailover(t *testing.T) {
	clk := testClock()
	st := newFakeStarter(clk.Now)
	h, logs := newTestHandler(t, testRecipe(t), st, func(c *Config) { c.Now = clk.Now })
	body := readPayload(t, "sitedown-firing.json", nil)

	code, resp, _ := post(t, h, body, nil)
	require.Equal(t, http.StatusOK, code, "%+v", resp)
	require.Len(t, resp.Alerts, 1)
	res := resp.Alerts[0]
	assert.Equal(t, Result{Alert: "SiteDown", Fingerprint: "c3a1b2d4e5f60718", Status: StatusFiring, Route: "alerts.routes[0]",
		Action: recipe.ActionFailover, Outcome: OutcomeStarted, WorkflowType: TypeFailover, WorkflowID: "runbook-petclinic",
		RunID:   "runbook-petclinic-run-a",
		Message: "Failover runbook-petclinic (run runbook-petclinic-run-a) started: failover east → west of petclinic (alert SiteDown)"}, res)
	assert.Equal(t, "1 started", resp.Message)

	starts, _ := st.snapshot()
	require.Len(t, starts, 1)
	req := starts[0]
	assert.Equal(t, workflows.RunbookWorkflowID("petclinic"), req.ID)
	assert.Equal(t, "c3a1b2d4e5f60718@2026-11-26T15:14:36.123Z", req.AlertKey)
	in, ok := req.Input.(workflows.RunbookInput)
	require.True(t, ok, "input is %T", req.Input)
	assert.Equal(t, "east", in.From)
	assert.Equal(t, "west", in.To)
	assert.Equal(t, startsAt, in.DetectedAt, "RTO counts from the alert's start")
	assert.Equal(t, *testRecipe(t), in.Recipe)
	assert.Equal(t, "alertmanager: SiteDown at east firing since 2026-11-26T15:14:36Z: petclinic at east does not answer /healthz "+
		"(http://prometheus.example.net:9090/graph?g0.expr=probe_success%7Bapp%3D%22petclinic%22%7D+%3D%3D+0&g0.tab=1) [receiver drover]", in.Reason)
	assert.Equal(t, in.Reason, req.Details)
	assert.Equal(t, 1, logs.FilterMessageSnippet("started").FilterField(zap.String("outcome", OutcomeStarted)).Len())

	// A repeat (Alertmanager's repeat_interval, a second replica) while the
	// runbook runs: acknowledged, nothing started.
	code, resp, _ = post(t, h, body, nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, OutcomeAlreadyRunning, resp.Alerts[0].Outcome)
	assert.Contains(t, resp.Alerts[0].Message, "Failover runbook-petclinic (run runbook-petclinic-run-a) is already running since 2026-11-26T15:15:36Z")
	starts, _ = st.snapshot()
	assert.Len(t, starts, 1)
}

// After the runbook ended: a repeat of the same alert is acknowledged; the
// same alert firing anew starts a runbook, except within the cool-down
// after the last one ended.
func TestRepeatsAfterTheRunbookEnded(t *testing.T) {
	clk := testClock()
	st := newFakeStarter(clk.Now)
	h, _ := newTestHandler(t, testRecipe(t), st, func(c *Config) { c.Now = clk.Now })
	anew := func() []byte { // the alert firing again, from now
		return readPayload(t, "sitedown-firing.json", func(m *Message) { m.Alerts[0].StartsAt = clk.Now() })
	}
	code, resp, _ := post(t, h, readPayload(t, "sitedown-firing.json", nil), nil)
	require.Equal(t, OutcomeStarted, resp.Alerts[0].Outcome, "%d %+v", code, resp)
	clk.Add(time.Minute)
	st.finish("runbook-petclinic")
	clk.Add(time.Hour)

	// Alertmanager's repeat_interval: the same occurrence again.
	code, resp, _ = post(t, h, readPayload(t, "sitedown-firing.json", nil), nil)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, OutcomeAlreadyHandled, resp.Alerts[0].Outcome)
	assert.Equal(t, "Failover runbook-petclinic (run runbook-petclinic-run-a) was started by this alert and ended 1h0m0s ago (completed): acknowledged, nothing started",
		resp.Alerts[0].Message)

	// Firing anew an hour after the runbook ended.
	_, resp, _ = post(t, h, anew(), nil)
	assert.Equal(t, OutcomeStarted, resp.Alerts[0].Outcome)
	clk.Add(time.Minute)
	st.finish("runbook-petclinic")
	clk.Add(5 * time.Minute)

	// And again, 5 minutes after that one ended: within the cool-down.
	code, resp, _ = post(t, h, anew(), nil)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, OutcomeRefused, resp.Alerts[0].Outcome)
	assert.Equal(t, "refused: Failover runbook-petclinic (run runbook-petclinic-run-b) ended 5m0s ago (completed); alerts start no runbook within the 10m0s cool-down: a human decides",
		resp.Alerts[0].Message)
	clk.Add(5 * time.Minute)
	_, resp, _ = post(t, h, anew(), nil)
	assert.Equal(t, OutcomeStarted, resp.Alerts[0].Outcome, "the cool-down is over")
	starts, _ := st.snapshot()
	assert.Len(t, starts, 3)
}

// With policy.auto_failover false an alert moves no traffic: the answer
// and the log say so and name the command a human would run.
func TestPolicyRefusesTrafficMoves(t *testing.T) {
	r := testRecipe(t)
	r.Policy.AutoFailover = false
	st := newFakeStarter(time.Now)
	h, logs := newTestHandler(t, r, st, nil)
	body := readPayload(t, "sitedown-firing.json", nil)
	maint := readPayload(t, "sitedown-firing.json", func(m *Message) {
		m.Alerts[0].Labels = map[string]string{"alertname": "PlannedMaintenance", "app": "petclinic"}
	})
	for _, tc := range []struct {
		body []byte
		want string
	}{
		{body, "refused: policy.auto_failover is false, so alerts move no traffic: a human decides (drover failover -f RECIPE --from east --to west)"},
		{maint, "refused: policy.auto_failover is false, so alerts move no traffic: a human decides (drover switchover -f RECIPE --from east --to west)"},
	} {
		code, resp, _ := post(t, h, tc.body, nil)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, OutcomeRefused, resp.Alerts[0].Outcome)
		assert.Equal(t, tc.want, resp.Alerts[0].Message)
		assert.Equal(t, 1, logs.FilterMessage(tc.want).Len(), "the refusal is logged")
	}
	starts, calls := st.snapshot()
	assert.Empty(t, starts)
	assert.Zero(t, calls, "Temporal is not even asked")

	// A drill changes nothing in service: the policy allows it.
	drill := readPayload(t, "sitedown-firing.json", func(m *Message) { m.Alerts[0].Labels = map[string]string{"alertname": "DRDrillDue"} })
	_, resp, _ := post(t, h, drill, nil)
	assert.Equal(t, OutcomeStarted, resp.Alerts[0].Outcome)
}

// Every kind of route, and the alerts that start nothing.
func TestRouting(t *testing.T) {
	labels := func(kv ...string) func(*Message) {
		return func(m *Message) {
			m.Alerts[0].Labels = map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				m.Alerts[0].Labels[kv[i]] = kv[i+1]
			}
		}
	}
	tests := []struct {
		name             string
		mutate           func(*Message)
		outcome, action  string
		wfType, wfID     string
		from, to, reason string
	}{
		{"failover from west", labels("alertname", "SiteDown", "site", "west"), OutcomeStarted, recipe.ActionFailover,
			TypeFailover, "runbook-petclinic", "west", "east", "alertmanager: SiteDown at west firing since 2026-11-26T15:14:36Z"},
		{"switchover from the route", labels("alertname", "PlannedMaintenance", "site", "west"), OutcomeStarted, recipe.ActionSwitchover,
			TypeSwitchover, "runbook-petclinic", "east", "west", "alertmanager: PlannedMaintenance at west"},
		{"drill", labels("alertname", "DRDrillDue"), OutcomeStarted, recipe.ActionDrill, TypeDrill, "drill-petclinic", "", "",
			"alertmanager: DRDrillDue firing since"},
		{"notify-only", labels("alertname", "ReplicationLagHigh", "severity", "warning"), OutcomeNotified, recipe.ActionNotifyOnly, "", "", "", "", ""},
		{"no route", labels("alertname", "DiskFull", "severity", "critical"), OutcomeNoRoute, "", "", "", "", "", ""},
		{"resolved", func(m *Message) { m.Status, m.Alerts[0].Status = StatusResolved, StatusResolved }, OutcomeResolved,
			recipe.ActionFailover, "", "", "", "", ""},
		{"resolved without route", func(m *Message) { labels("alertname", "X")(m); m.Alerts[0].Status = StatusResolved },
			OutcomeResolved, "", "", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeStarter(time.Now)
			h, logs := newTestHandler(t, testRecipe(t), st, nil)
			code, resp, _ := post(t, h, readPayload(t, "sitedown-firing.json", tt.mutate), nil)
			require.Equal(t, http.StatusOK, code, "%+v", resp)
			res := resp.Alerts[0]
			assert.Equal(t, tt.outcome, res.Outcome, res.Message)
			assert.Equal(t, tt.action, res.Action)
			assert.Equal(t, 1, logs.FilterField(zap.String("outcome", tt.outcome)).Len(), "every decision is logged")
			starts, _ := st.snapshot()
			if tt.wfType == "" {
				assert.Empty(t, starts)
				assert.Empty(t, res.WorkflowID)
				return
			}
			require.Len(t, starts, 1)
			req := starts[0]
			assert.Equal(t, tt.wfType, req.Type)
			assert.Equal(t, tt.wfID, req.ID)
			b, err := json.Marshal(req.Input)
			require.NoError(t, err)
			if tt.wfType == TypeDrill {
				// The Drill workflow's input, exactly: {"recipe", "reason"}.
				var in map[string]json.RawMessage
				require.NoError(t, json.Unmarshal(b, &in))
				assert.Len(t, in, 2, "%s", b)
				var rr recipe.Recipe
				require.NoError(t, json.Unmarshal(in["recipe"], &rr))
				assert.Equal(t, *testRecipe(t), rr)
				var reason string
				require.NoError(t, json.Unmarshal(in["reason"], &reason))
				assert.Contains(t, reason, tt.reason)
				return
			}
			var in workflows.RunbookInput
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&in))
			assert.Equal(t, tt.from, in.From)
			assert.Equal(t, tt.to, in.To)
			assert.Contains(t, in.Reason, tt.reason)
			if tt.wfType == TypeSwitchover {
				assert.True(t, in.DetectedAt.IsZero(), "a switchover is planned: no detection time")
			}
		})
	}
}

// Malformed, oversized and unroutable requests are answered 400 with the
// reason, and Temporal is not even asked.
func TestBadRequestsStartNothing(t *testing.T) {
	firing := func(mutate func(*Message)) []byte { return readPayload(t, "sitedown-firing.json", mutate) }
	tests := []struct {
		name string
		body []byte
		want []string
	}{
		{"empty body", nil, []string{"malformed JSON: EOF"}},
		{"not JSON", []byte("alertname=SiteDown"), []string{"malformed JSON: invalid character 'a' looking for beginning of value"}},
		{"truncated", firing(nil)[:100], []string{"malformed JSON: unexpected EOF"}},
		{"two objects", append(firing(nil), []byte(`{"version":"4"}`)...), []string{"malformed JSON: more than one value"}},
		{"a list", []byte(`[{"version":"4"}]`), []string{"malformed JSON: json: cannot unmarshal array into Go value of type webhook.Message"}},
		{"label not a string", []byte(strings.Replace(string(firing(nil)), `"site": "east"`, `"site": 1`, 1)),
			[]string{"malformed JSON: json: cannot unmarshal number into Go struct field Message.commonLabels of type string"}},
		{"version 3", firing(func(m *Message) { m.Version = "3" }), []string{`version: "3", want "4" (Alertmanager's webhook payload version 4)`}},
		{"no version", []byte(`{"status":"firing","alerts":[]}`), []string{`version: "", want "4" (Alertmanager's webhook payload version 4)`}},
		{"null", []byte(`null`), []string{`version: "", want "4" (Alertmanager's webhook payload version 4)`}},
		{"status", firing(func(m *Message) { m.Status = "burning" }), []string{`status: "burning", want firing or resolved`}},
		{"alert status", firing(func(m *Message) {
			m.Alerts = append(m.Alerts, m.Alerts[0])
			m.Alerts[0].Status, m.Alerts[1].Status = "", "pending"
		}), []string{`alerts[0].status: "", want firing or resolved`, `alerts[1].status: "pending", want firing or resolved`}},
		{"oversized", append(firing(nil), make([]byte, DefaultMaxBody)...), []string{"body is larger than 1048576 bytes"}},
		{"unknown app", firing(func(m *Message) { m.Alerts[0].Labels["app"] = "shop" }),
			[]string{`alerts[0].labels.app: unknown app "shop": this webhook serves petclinic`}},
		{"unknown app even if resolved", firing(func(m *Message) {
			m.Alerts = append(m.Alerts, m.Alerts[0])
			m.Alerts[1].Status, m.Alerts[1].Labels = StatusResolved, map[string]string{"app": "shop"}
		}), []string{`alerts[1].labels.app: unknown app "shop": this webhook serves petclinic`}},
		{"unknown site", firing(func(m *Message) { m.Alerts[0].Labels["site"] = "north" }),
			[]string{`alerts[0].labels.site: "north" is not a site of petclinic (sites: east, west)`}},
		{"no site label", firing(func(m *Message) { delete(m.Alerts[0].Labels, "site") }),
			[]string{`alerts[0]: alerts.routes[0] (failover) needs the site that failed: the alert has no "site" label and the route no from`}},
		{"switchover onto itself", firing(func(m *Message) { m.Alerts[0].Labels["alertname"] = "PlannedMaintenance" }), nil}, // from the route: fine
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeStarter(time.Now)
			h, logs := newTestHandler(t, testRecipe(t), st, nil)
			code, resp, _ := post(t, h, tt.body, nil)
			if tt.want == nil {
				assert.Equal(t, http.StatusOK, code, "%+v", resp)
				return
			}
			assert.Equal(t, http.StatusBadRequest, code)
			assert.Equal(t, "bad request: nothing started", resp.Message)
			assert.Equal(t, tt.want, resp.Errors)
			assert.Empty(t, resp.Alerts)
			starts, calls := st.snapshot()
			assert.Empty(t, starts)
			assert.Zero(t, calls, "Temporal is not asked")
			assert.Equal(t, 1, logs.FilterMessage("webhook request rejected").Len())
		})
	}
}

// Bearer token and HMAC signature: anything missing or wrong is 401 with
// nothing started; with both configured a request needs both.
func TestAuthentication(t *testing.T) {
	body := readPayload(t, "sitedown-firing.json", nil)
	bearer := func(r *recipe.Recipe) {}
	hmacOnly := func(r *recipe.Recipe) { r.Alerts.Auth = recipe.AlertAuth{HMACSecret: "env:" + hmacEnv} }
	both := func(r *recipe.Recipe) { r.Alerts.Auth.HMACSecret = "env:" + hmacEnv }
	tests := []struct {
		name    string
		auth    func(*recipe.Recipe)
		headers map[string]string
		want    string // "" = accepted
	}{
		{"bearer ok", bearer, nil, ""},
		{"bearer scheme is case-insensitive", bearer, map[string]string{"Authorization": "bearer " + testToken}, ""},
		{"bearer missing", bearer, map[string]string{"Authorization": ""}, "Authorization: missing bearer token"},
		{"bearer wrong", bearer, map[string]string{"Authorization": "Bearer " + testToken + "x"}, "Authorization: wrong bearer token"},
		{"bearer prefix of the token", bearer, map[string]string{"Authorization": "Bearer " + testToken[:10]}, "Authorization: wrong bearer token"},
		{"basic auth", bearer, map[string]string{"Authorization": "Basic " + testToken}, "Authorization: missing bearer token"},
		{"hmac ok", hmacOnly, map[string]string{"Authorization": "", SignatureHeader: signature(body)}, ""},
		{"hmac missing", hmacOnly, map[string]string{"Authorization": ""}, SignatureHeader + ": missing"},
		{"hmac not hex", hmacOnly, map[string]string{SignatureHeader: "sha256=zz"}, SignatureHeader + ": must be sha256=<64 hex digits>"},
		{"hmac other algorithm", hmacOnly, map[string]string{SignatureHeader: strings.Replace(signature(body), "sha256", "sha1", 1)},
			SignatureHeader + ": must be sha256=<64 hex digits>"},
		{"hmac of another body", hmacOnly, map[string]string{SignatureHeader: signature(append(body, ' '))}, SignatureHeader + ": does not match the body"},
		{"both ok", both, map[string]string{SignatureHeader: signature(body)}, ""},
		{"both, token only", both, nil, SignatureHeader + ": missing"},
		{"both, signature only", both, map[string]string{"Authorization": "", SignatureHeader: signature(body)}, "Authorization: missing bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRecipe(t)
			tt.auth(r)
			st := newFakeStarter(time.Now)
			h, logs := newTestHandler(t, r, st, nil)
			code, resp, hdr := post(t, h, body, tt.headers)
			starts, calls := st.snapshot()
			if tt.want == "" {
				assert.Equal(t, http.StatusOK, code, "%+v", resp)
				assert.Len(t, starts, 1)
				return
			}
			assert.Equal(t, http.StatusUnauthorized, code)
			assert.Equal(t, Response{Message: "not authenticated: nothing started", Errors: []string{tt.want}}, resp)
			assert.Empty(t, starts)
			assert.Zero(t, calls)
			assert.Equal(t, 1, logs.FilterMessage("webhook request refused: not authenticated").Len())
			if r.Alerts.Auth.BearerToken != "" {
				assert.Equal(t, `Bearer realm="drover"`, hdr.Get("WWW-Authenticate"))
			}
			for _, e := range logs.All() {
				for _, v := range e.ContextMap() {
					s, _ := v.(string)
					assert.NotContains(t, s, testToken[:12], "no secret in the log")
				}
			}
		})
	}

	// A bearer token is checked before the body is read: an oversized body
	// without one is 401, not 400.
	h, _ := newTestHandler(t, testRecipe(t), newFakeStarter(time.Now), nil)
	code, _, _ := post(t, h, make([]byte, 2*DefaultMaxBody), map[string]string{"Authorization": ""})
	assert.Equal(t, http.StatusUnauthorized, code)

	// Only POST.
	req := httptest.NewRequest(http.MethodGet, "/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, http.MethodPost, rec.Header().Get("Allow"))
}

func TestNewAuth(t *testing.T) {
	t.Setenv("SHORT_TOKEN", "abc")
	t.Setenv("GOOD_TOKEN", testToken)
	for _, tc := range []struct {
		auth recipe.AlertAuth
		want string
	}{
		{recipe.AlertAuth{}, "alerts.auth: set bearer_token or hmac_secret: the webhook never runs unauthenticated"},
		{recipe.AlertAuth{BearerToken: "env:DROVER_UNSET_VARIABLE"},
			"alerts.auth.bearer_token: resolve env:DROVER_UNSET_VARIABLE: environment variable is not set"},
		{recipe.AlertAuth{BearerToken: "env:GOOD_TOKEN", HMACSecret: "file:/nonexistent/webhook.key"},
			"alerts.auth.hmac_secret: resolve file:/nonexistent/webhook.key: open /nonexistent/webhook.key: no such file or directory"},
		{recipe.AlertAuth{HMACSecret: "env:SHORT_TOKEN"},
			"alerts.auth.hmac_secret: env:SHORT_TOKEN is 3 bytes long; use at least 16 (e.g. openssl rand -hex 32)"},
		{recipe.AlertAuth{BearerToken: "a-literal-token-never-shown"}, "alerts.auth.bearer_token: resolve secret: " +
			"must be a secret reference (env:NAME or file:/absolute/path), not a literal value"},
	} {
		_, err := NewAuth(tc.auth)
		if assert.Error(t, err) {
			assert.Equal(t, tc.want, err.Error())
		}
	}
	a, err := NewAuth(recipe.AlertAuth{BearerToken: "env:GOOD_TOKEN"})
	require.NoError(t, err)
	assert.True(t, a.Bearer())
}

// Alerts of one notification that ask for different runbooks of the
// application contradict each other (both sites "down"): a human decides.
// Two alerts asking for the same runbook start it once.
func TestConflictingAlerts(t *testing.T) {
	st := newFakeStarter(time.Now)
	h, _ := newTestHandler(t, testRecipe(t), st, nil)
	both := readPayload(t, "sitedown-firing.json", func(m *Message) {
		west := m.Alerts[0]
		west.Labels = map[string]string{"alertname": "SiteDown", "site": "west"}
		west.Fingerprint = "0000000000000001"
		m.Alerts = append(m.Alerts, west)
	})
	code, resp, _ := post(t, h, both, nil)
	require.Equal(t, http.StatusOK, code)
	for _, res := range resp.Alerts {
		assert.Equal(t, OutcomeRefused, res.Outcome)
		assert.Equal(t, "refused: alerts of this notification ask for 2 different runs of runbook-petclinic (failover east → west; failover west → east): a human decides", res.Message)
	}
	starts, _ := st.snapshot()
	assert.Empty(t, starts)

	twice := readPayload(t, "sitedown-firing.json", func(m *Message) {
		other := m.Alerts[0]
		other.Labels = map[string]string{"alertname": "SiteDown", "site": "east", "instance": "vantage-2"}
		other.Fingerprint = "0000000000000002"
		m.Alerts = append(m.Alerts, other)
	})
	_, resp, _ = post(t, h, twice, nil)
	assert.Equal(t, OutcomeStarted, resp.Alerts[0].Outcome)
	assert.Equal(t, OutcomeAlreadyRunning, resp.Alerts[1].Outcome)
	assert.Equal(t, "Failover runbook-petclinic (run runbook-petclinic-run-a) was started for another alert of this notification: acknowledged, nothing started",
		resp.Alerts[1].Message)
	assert.Equal(t, "1 already-running, 1 started", resp.Message)
}

// A notification with many alerts for one runbook asks Temporal once.
func TestManyAlertsAskTemporalOnce(t *testing.T) {
	st := newFakeStarter(time.Now)
	h, _ := newTestHandler(t, testRecipe(t), st, nil)
	many := readPayload(t, "sitedown-firing.json", func(m *Message) {
		for i := range 500 {
			a := m.Alerts[0]
			a.Labels = map[string]string{"alertname": "SiteDown", "site": "east", "instance": fmt.Sprint("probe-", i)}
			a.Fingerprint = fmt.Sprintf("%016x", i+1)
			m.Alerts = append(m.Alerts, a)
		}
	})
	code, resp, _ := post(t, h, many, nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "500 already-running, 1 started", resp.Message)
	starts, calls := st.snapshot()
	assert.Len(t, starts, 1)
	assert.Equal(t, 2, calls, "one Last, one Start")

	// And once more while it runs: one Last, no Start.
	_, resp, _ = post(t, h, many, nil)
	assert.Equal(t, "501 already-running", resp.Message)
	_, calls = st.snapshot()
	assert.Equal(t, 3, calls)
}

// When Temporal cannot be asked the answer is 503, so Alertmanager
// retries; the retry is acknowledged, not repeated.
func TestTemporalDownIs503(t *testing.T) {
	st := newFakeStarter(time.Now)
	h, _ := newTestHandler(t, testRecipe(t), st, nil)
	body := readPayload(t, "sitedown-firing.json", nil)
	st.failLast = errors.New("connection refused")
	code, resp, _ := post(t, h, body, nil)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, OutcomeError, resp.Alerts[0].Outcome)
	assert.Equal(t, "could not describe runbook-petclinic: connection refused", resp.Alerts[0].Message)
	assert.True(t, strings.HasPrefix(resp.Message, "Temporal could not be asked about every alert; retry: "), resp.Message)

	st.failLast, st.failStart = nil, errors.New("deadline exceeded")
	code, resp, _ = post(t, h, body, nil)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "could not start Failover runbook-petclinic: deadline exceeded", resp.Alerts[0].Message)

	st.failStart = nil
	code, resp, _ = post(t, h, body, nil)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, OutcomeStarted, resp.Alerts[0].Outcome)
	code, resp, _ = post(t, h, body, nil)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, OutcomeAlreadyRunning, resp.Alerts[0].Outcome)
}

func TestResolvedAndTruncatedAreLogged(t *testing.T) {
	st := newFakeStarter(time.Now)
	h, logs := newTestHandler(t, testRecipe(t), st, nil)
	code, resp, _ := post(t, h, readPayload(t, "sitedown-resolved.json", func(m *Message) { m.TruncatedAlerts = 3 }), nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "1 resolved", resp.Message)
	assert.Equal(t, 1, logs.FilterMessage("resolved: logged, nothing started").FilterField(zap.String("alert", "SiteDown")).Len())
	assert.Equal(t, 1, logs.FilterMessage("alertmanager left alerts out of this notification (max_alerts)").Len())
	_, calls := st.snapshot()
	assert.Zero(t, calls)

	_, resp, _ = post(t, h, []byte(`{"version":"4","status":"firing","alerts":[]}`), nil)
	assert.Equal(t, "no alerts", resp.Message)
}

func TestAlertKey(t *testing.T) {
	a := Alert{Labels: map[string]string{"alertname": "SiteDown", "site": "east"}, StartsAt: startsAt}
	b := a
	b.Labels = map[string]string{"site": "east", "alertname": "SiteDown"}
	assert.Equal(t, a.Key(), b.Key(), "without a fingerprint the labels identify the alert")
	b.Labels = map[string]string{"alertname": "SiteDown", "site": "west"}
	assert.NotEqual(t, a.Key(), b.Key())
	b = a
	b.StartsAt = startsAt.Add(time.Second)
	assert.NotEqual(t, a.Key(), b.Key(), "firing anew is another occurrence")
	a.Fingerprint = "abc"
	assert.Equal(t, "abc@2026-11-26T15:14:36.123Z", a.Key())
}

// lagStarter is a fakeStarter that also reads the standby's lag.
type lagStarter struct {
	*fakeStarter
	lag time.Duration
	why string
	err error
}

func (l *lagStarter) StandbyLag(context.Context, string, string, string) (time.Duration, string, error) {
	return l.lag, l.why, l.err
}

// With a Starter that reads the standby's lag, a failover starts only for a
// standby within policy.max_rpo (30s); an unknown lag or one over the
// bound is refused and starts nothing; a failed read is an error (Alertmanager
// retries). Switchovers check their lag themselves and are not asked.
func TestFailoverNeedsAStandbyWithinMaxRPO(t *testing.T) {
	for _, c := range []struct {
		name    string
		lag     time.Duration
		why     string
		err     error
		outcome string
		msg     string
	}{
		{"within", 2 * time.Second, "", nil, OutcomeStarted, "started"},
		{"over", 45 * time.Second, "", nil, OutcomeRefused, "standby west lagged 45.0s behind east, more than policy.max_rpo 30s"},
		{"unknown", 0, "replication east → west is paused", nil, OutcomeRefused, "the lag of standby west is unknown (replication east → west is paused)"},
		{"error", 0, "", errors.New("deadline exceeded"), OutcomeError, "could not read the lag of east → west: deadline exceeded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := testClock()
			st := &lagStarter{fakeStarter: newFakeStarter(clk.Now), lag: c.lag, why: c.why, err: c.err}
			h, _ := newTestHandler(t, testRecipe(t), st, func(cfg *Config) { cfg.Now = clk.Now })
			_, resp, _ := post(t, h, readPayload(t, "sitedown-firing.json", nil), nil)
			require.Len(t, resp.Alerts, 1)
			assert.Equal(t, c.outcome, resp.Alerts[0].Outcome)
			assert.Contains(t, resp.Alerts[0].Message, c.msg)
			starts, _ := st.snapshot()
			assert.Equal(t, c.outcome == OutcomeStarted, len(starts) == 1, "starts: %v", starts)
		})
	}
}
