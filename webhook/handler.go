// Package webhook serves Prometheus Alertmanager's webhook (payload version
// 4) for one application: it authenticates each request with the recipe's
// alerts.auth, routes each alert through the recipe's alerts.routes (first
// match wins) and starts what the route says — a Failover or Switchover
// runbook under the application's one runbook workflow ID, a Drill, or
// nothing (notify-only) — as far as the recipe's policy allows.
//
// Guarantees: an unauthenticated, malformed, oversized or unroutable request
// starts nothing; at most one runbook of an application runs at a time, so
// alert storms and repeats collapse into one run and are acknowledged, never
// errors; a runbook that moves traffic starts only when
// policy.auto_failover is true; the latest run is never started again for
// the same alert. The handler reaches Temporal only through a Starter, so
// tests can use a fake.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

// Workflow types the webhook starts, as the worker registers them.
const (
	TypeFailover   = "Failover"
	TypeSwitchover = "Switchover"
	TypeDrill      = "Drill"
)

// Defaults of Config.
const (
	// DefaultMaxBody is the largest request body read, in bytes.
	DefaultMaxBody = 1 << 20
	// DefaultCooldown is how long after a runbook of the application ended
	// alerts start no other one (as the health monitor's cool-down).
	DefaultCooldown = 10 * time.Minute
	// DefaultCallTimeout bounds the Temporal calls made for one alert.
	DefaultCallTimeout = 10 * time.Second
	// maxReason bounds the reason text passed to a workflow.
	maxReason = 500
)

// Outcomes of an alert, in Result.Outcome.
const (
	// OutcomeStarted: the workflow was started for this alert.
	OutcomeStarted = "started"
	// OutcomeAlreadyRunning: a run holds the workflow ID; acknowledged,
	// nothing started.
	OutcomeAlreadyRunning = "already-running"
	// OutcomeAlreadyHandled: the latest run under the workflow ID was
	// started by this same alert and has ended; acknowledged, nothing
	// started.
	OutcomeAlreadyHandled = "already-handled"
	// OutcomeRefused: the policy, the cool-down or conflicting alerts forbid
	// the action; logged, nothing started.
	OutcomeRefused = "refused"
	// OutcomeNotified: a notify-only route; logged, nothing started.
	OutcomeNotified = "notified"
	// OutcomeNoRoute: no route matches; logged, nothing started.
	OutcomeNoRoute = "no-route"
	// OutcomeResolved: the alert is resolved; logged, nothing started.
	OutcomeResolved = "resolved"
	// OutcomeError: Temporal could not be asked; the response is 503 so
	// that Alertmanager retries.
	OutcomeError = "error"
)

// ErrAlreadyRunning is what Starter.Start returns (wrapped) when a run with
// the requested workflow ID is open.
var ErrAlreadyRunning = errors.New("a run with this workflow ID is already open")

// Starter starts Drover's workflows. TemporalStarter is the production one.
type Starter interface {
	// Last describes the latest run under id; ok is false when the ID was
	// never used (or its history is gone).
	Last(ctx context.Context, id string) (run Run, ok bool, err error)
	// Start starts a run of req unless one under req.ID is open, in which
	// case it starts nothing and returns an error wrapping
	// ErrAlreadyRunning. It returns the new run's ID.
	Start(ctx context.Context, req StartRequest) (runID string, err error)
}

// LagReader is what a Starter may also do: tell how far a standby was
// behind its primary. A failover is started only for a standby whose lag,
// as its replication supervisor last measured it, is within the recipe's
// policy.max_rpo — as the health monitor decides. When the Starter does
// not implement it, that check is left to the operator.
type LagReader interface {
	// StandbyLag is the lag of the stream from → to of app. why is
	// non-empty, and lag meaningless, when the lag is unknown (no stream,
	// or one that does not follow its primary: paused, stopped, failed).
	StandbyLag(ctx context.Context, app, from, to string) (lag time.Duration, why string, err error)
}

// Run describes one workflow run, as Starter.Last finds it.
type Run struct {
	Type     string
	RunID    string
	Status   string // "running", "completed", "failed", …
	Running  bool
	Started  time.Time
	Closed   time.Time // zero while running
	AlertKey string    // Alert.Key of the alert that started it; "" when not started by the webhook
}

// StartRequest is one workflow start.
type StartRequest struct {
	ID, Type string
	Input    any
	// Summary and Details are shown in the Temporal UI.
	Summary, Details string
	// AlertKey is the Alert.Key of the alert that asks; Last returns it.
	AlertKey string
}

// drillInput is the input of the Drill workflow, referred to by name.
type drillInput struct {
	Recipe recipe.Recipe `json:"recipe"`
	Reason string        `json:"reason"`
}

// DrillWorkflowID is the workflow ID of an application's drill: one at a
// time.
func DrillWorkflowID(app string) string { return "drill-" + app }

// Config is what a Handler needs. Recipe, Auth, Starter and Logger are
// required.
type Config struct {
	// Recipe is the application's recipe, valid and with defaults applied
	// (as recipe.Load returns it); it is passed to every workflow started.
	Recipe *recipe.Recipe
	Auth   *Auth
	// Starter starts workflows (TemporalStarter in production).
	Starter Starter
	Logger  *zap.Logger
	// MaxBody is the largest body read, in bytes (default DefaultMaxBody).
	MaxBody int64
	// Cooldown: once a runbook of the application ended, alerts start no
	// failover or switchover for this long (default DefaultCooldown;
	// negative: none).
	Cooldown time.Duration
	// CallTimeout bounds the Temporal calls for one alert (default
	// DefaultCallTimeout).
	CallTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Handler is the webhook endpoint: an http.Handler for POSTs of
// Alertmanager's webhook payload. It is safe for concurrent use.
type Handler struct {
	cfg Config
	log *zap.Logger
}

// NewHandler checks cfg and fills in its defaults.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Recipe == nil || cfg.Auth == nil || cfg.Starter == nil || cfg.Logger == nil {
		return nil, errors.New("webhook config: Recipe, Auth, Starter and Logger are required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg, log: cfg.Logger.With(zap.String("app", cfg.Recipe.App))}, nil
}

// Response is the JSON body of every answer. Message sums it up; Errors
// lists why a request was rejected (400, 401, 405); Alerts says what was
// done with each alert, in the order of the request.
type Response struct {
	Message string   `json:"message"`
	Errors  []string `json:"errors,omitempty"`
	Alerts  []Result `json:"alerts,omitempty"`
}

// Result is what the webhook did with one alert.
type Result struct {
	Alert        string `json:"alert"` // its alertname
	Fingerprint  string `json:"fingerprint,omitempty"`
	Status       string `json:"status"` // firing or resolved
	Route        string `json:"route,omitempty"`
	Action       string `json:"action,omitempty"`
	Outcome      string `json:"outcome"`
	WorkflowType string `json:"workflow_type,omitempty"`
	WorkflowID   string `json:"workflow_id,omitempty"`
	RunID        string `json:"run_id,omitempty"`
	Message      string `json:"message"`
}

// ServeHTTP answers 405 to anything but POST; 401 when authentication fails
// (nothing read past the headers for a bearer token); 400 for a body over
// MaxBody, malformed JSON, a payload version other than 4, an alert of
// another application (label app) or a firing alert whose route cannot
// name its sites — in each case nothing is started; 503 when Temporal
// could not be asked about an alert (Alertmanager retries; retries are
// acknowledged, not repeated); 200 otherwise, with a Result per alert.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.log.With(zap.String("remote", r.RemoteAddr))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, Response{Message: "method not allowed", Errors: []string{"use POST"}})
		return
	}
	if err := h.cfg.Auth.CheckHeader(r); err != nil {
		h.unauthorized(w, log, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = fmt.Errorf("body is larger than %d bytes", h.cfg.MaxBody)
		}
		h.reject(w, log, err)
		return
	}
	if err := h.cfg.Auth.CheckBody(r, body); err != nil {
		h.unauthorized(w, log, err)
		return
	}
	msg, err := DecodeMessage(body)
	if err != nil {
		h.reject(w, log, err)
		return
	}
	log = log.With(zap.String("receiver", msg.Receiver), zap.String("group_key", msg.GroupKey))
	if msg.TruncatedAlerts > 0 {
		log.Warn("alertmanager left alerts out of this notification (max_alerts)", zap.Int("truncated", msg.TruncatedAlerts))
	}
	results, cands, problems := h.plan(msg)
	if len(problems) > 0 {
		h.reject(w, log, problems...)
		return
	}
	failed := h.execute(r.Context(), log, results, cands)
	resp := Response{Message: summary(results), Alerts: results}
	if failed {
		resp.Message = "Temporal could not be asked about every alert; retry: " + resp.Message
		reply(w, http.StatusServiceUnavailable, resp)
		return
	}
	reply(w, http.StatusOK, resp)
}

func (h *Handler) unauthorized(w http.ResponseWriter, log *zap.Logger, err error) {
	log.Warn("webhook request refused: not authenticated", zap.Error(err))
	if h.cfg.Auth.Bearer() {
		w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
	}
	reply(w, http.StatusUnauthorized, Response{Message: "not authenticated: nothing started", Errors: []string{err.Error()}})
}

func (h *Handler) reject(w http.ResponseWriter, log *zap.Logger, errs ...error) {
	resp := Response{Message: "bad request: nothing started"}
	for _, err := range errs {
		resp.Errors = append(resp.Errors, strings.Split(err.Error(), "\n")...)
	}
	log.Warn("webhook request rejected", zap.Strings("errors", resp.Errors))
	reply(w, http.StatusBadRequest, resp)
}

func reply(w http.ResponseWriter, code int, resp Response) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(resp)
}

// candidate is a firing alert whose route starts a workflow.
type candidate struct {
	i        int // index in the results
	req      StartRequest
	what     string // "failover east → west", "drill"
	from, to string // runbooks only
	traffic  bool   // failover or switchover
}

// plan decides, without any side effect, what each alert asks for. It
// returns a Result per alert (Outcome set for those that start nothing),
// the starts the alerts ask for, and the problems that make the request
// bad.
func (h *Handler) plan(msg Message) ([]Result, []candidate, []error) {
	r := h.cfg.Recipe
	results := make([]Result, len(msg.Alerts))
	var cands []candidate
	var problems []error
	for i, a := range msg.Alerts {
		res := &results[i]
		*res = Result{Alert: a.Name(), Fingerprint: a.Fingerprint, Status: a.Status}
		if app, ok := a.Labels[recipe.AppLabel]; ok && app != r.App {
			problems = append(problems, fmt.Errorf("alerts[%d].labels.app: unknown app %q: this webhook serves %s", i, clip(app), r.App))
			continue
		}
		k := r.Route(a.Labels)
		if k >= 0 {
			res.Route, res.Action = fmt.Sprintf("alerts.routes[%d]", k), r.Alerts.Routes[k].Action
		}
		switch {
		case a.Status == StatusResolved:
			res.Outcome, res.Message = OutcomeResolved, "resolved: logged, nothing started"
			continue
		case k < 0:
			res.Outcome, res.Message = OutcomeNoRoute, "no route of the recipe matches: nothing started"
			continue
		}
		rt := r.Alerts.Routes[k]
		c := candidate{i: i, traffic: rt.MovesTraffic()}
		reason := reasonText(msg, a)
		switch rt.Action {
		case recipe.ActionNotifyOnly:
			res.Outcome, res.Message = OutcomeNotified, "notify-only route: logged, nothing started"
			continue
		case recipe.ActionDrill:
			c.what = "drill"
			c.req = StartRequest{ID: DrillWorkflowID(r.App), Type: TypeDrill, Input: drillInput{Recipe: *r, Reason: reason}}
		case recipe.ActionFailover, recipe.ActionSwitchover:
			from, to, err := h.sites(i, a, rt, res.Route)
			if err != nil {
				problems = append(problems, err)
				continue
			}
			in := workflows.RunbookInput{Recipe: *r, From: from, To: to, Reason: reason}
			typ := TypeSwitchover
			if rt.Action == recipe.ActionFailover {
				typ = TypeFailover
				// RTO counts from when the alert started firing.
				if now := h.cfg.Now(); !a.StartsAt.IsZero() && !a.StartsAt.After(now) {
					in.DetectedAt = a.StartsAt.UTC()
				}
			}
			c.from, c.to, c.what = from, to, fmt.Sprintf("%s %s → %s", rt.Action, from, to)
			c.req = StartRequest{ID: workflows.RunbookWorkflowID(r.App), Type: typ, Input: in}
		default: // Validate allows no other action
			problems = append(problems, fmt.Errorf("alerts[%d]: %s: unknown action %q", i, res.Route, rt.Action))
			continue
		}
		c.req.Summary = fmt.Sprintf("%s of %s (alert %s)", c.what, r.App, clip(orUnnamed(a.Name())))
		c.req.Details, c.req.AlertKey = reason, a.Key()
		res.WorkflowType, res.WorkflowID = c.req.Type, c.req.ID
		cands = append(cands, c)
	}
	return results, cands, problems
}

// sites returns the from and to sites of a runbook route for alert i.
func (h *Handler) sites(i int, a Alert, rt recipe.AlertRoute, route string) (from, to string, err error) {
	r := h.cfg.Recipe
	from = rt.From
	if from == "" {
		v, ok := a.Labels[recipe.SiteLabel]
		if !ok {
			return "", "", fmt.Errorf("alerts[%d]: %s (%s) needs the site that failed: the alert has no %q label and the route no from", i, route, rt.Action, recipe.SiteLabel)
		}
		if _, ok := r.Site(v); !ok {
			return "", "", fmt.Errorf("alerts[%d].labels.%s: %q is not a site of %s (sites: %s)", i, recipe.SiteLabel, clip(v), r.App, siteNames(r))
		}
		from = v
	}
	to = rt.To
	if to == "" {
		var ok bool
		if to, ok = r.TakeoverSite(from); !ok {
			return "", "", fmt.Errorf("alerts[%d]: %s sets no to, and the recipe does not tell which site takes over from %s", i, route, from)
		}
	}
	if to == from {
		return "", "", fmt.Errorf("alerts[%d]: %s would move %s onto itself (from and to are both %s)", i, route, r.App, from)
	}
	return from, to, nil
}

func siteNames(r *recipe.Recipe) string {
	names := make([]string, len(r.Sites))
	for i, s := range r.Sites {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// reasonText is the runbook's reason: which alert, since when, its summary
// and where it comes from.
func reasonText(m Message, a Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "alertmanager: %s", orUnnamed(a.Name()))
	if s := a.Labels[recipe.SiteLabel]; s != "" {
		fmt.Fprintf(&b, " at %s", s)
	}
	if !a.StartsAt.IsZero() {
		fmt.Fprintf(&b, " firing since %s", a.StartsAt.UTC().Format(time.RFC3339))
	}
	if s := firstNonEmpty(a.Annotations["summary"], a.Annotations["description"]); s != "" {
		fmt.Fprintf(&b, ": %s", s)
	}
	if a.GeneratorURL != "" {
		fmt.Fprintf(&b, " (%s)", a.GeneratorURL)
	}
	if m.Receiver != "" {
		fmt.Fprintf(&b, " [receiver %s]", m.Receiver)
	}
	s := strings.ToValidUTF8(b.String(), "?")
	if len(s) > maxReason {
		s = strings.ToValidUTF8(s[:maxReason], "") + "…"
	}
	return s
}

func orUnnamed(s string) string {
	if s == "" {
		return "(alert without alertname)"
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// execute refuses what the policy or conflicting alerts forbid, starts the
// rest and logs every decision. It reports whether Temporal failed for any
// alert.
func (h *Handler) execute(ctx context.Context, log *zap.Logger, results []Result, cands []candidate) bool {
	r := h.cfg.Recipe
	// Alerts of one notification asking for different runbooks of the same
	// application (east down and west down) contradict each other.
	wants := map[string]map[string]bool{} // workflow ID → what is asked
	for _, c := range cands {
		if wants[c.req.ID] == nil {
			wants[c.req.ID] = map[string]bool{}
		}
		wants[c.req.ID][c.what] = true
	}
	failed := false
	first := map[string]*Result{} // workflow ID → the result of the alert that asked Temporal
	for _, c := range cands {
		res := &results[c.i]
		switch asked, prev := wants[c.req.ID], first[c.req.ID]; {
		case c.traffic && !r.Policy.AutoFailover:
			res.Outcome = OutcomeRefused
			res.Message = fmt.Sprintf("refused: policy.auto_failover is false, so alerts move no traffic: a human decides (drover %s -f RECIPE --from %s --to %s)",
				res.Action, c.from, c.to)
		case len(asked) > 1:
			res.Outcome = OutcomeRefused
			res.Message = fmt.Sprintf("refused: alerts of this notification ask for %d different runs of %s (%s): a human decides",
				len(asked), c.req.ID, strings.Join(slices.Sorted(maps.Keys(asked)), "; "))
		case prev != nil && prev.Outcome == OutcomeStarted:
			// Temporal is asked once per workflow ID and notification.
			res.Outcome, res.RunID = OutcomeAlreadyRunning, prev.RunID
			res.Message = fmt.Sprintf("%s %s (run %s) was started for another alert of this notification: acknowledged, nothing started",
				prev.WorkflowType, prev.WorkflowID, prev.RunID)
		case prev != nil:
			res.Outcome, res.RunID, res.Message = prev.Outcome, prev.RunID, prev.Message
		default:
			h.start(ctx, c, res)
			first[c.req.ID] = res
			failed = failed || res.Outcome == OutcomeError
		}
	}
	for _, res := range results {
		fields := []zap.Field{zap.String("alert", res.Alert), zap.String("fingerprint", res.Fingerprint), zap.String("status", res.Status),
			zap.String("route", res.Route), zap.String("action", res.Action), zap.String("outcome", res.Outcome)}
		if res.WorkflowID != "" {
			fields = append(fields, zap.String("workflow_id", res.WorkflowID), zap.String("run_id", res.RunID))
		}
		switch res.Outcome {
		case OutcomeRefused, OutcomeNotified, OutcomeError:
			log.Warn(res.Message, fields...)
		default:
			log.Info(res.Message, fields...)
		}
	}
	return failed
}

// start starts c's workflow unless its latest run is open, was started by
// this alert, or (for a runbook) ended within the cool-down.
func (h *Handler) start(ctx context.Context, c candidate, res *Result) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	defer cancel()
	req := c.req
	last, ok, err := h.cfg.Starter.Last(ctx, req.ID)
	if err != nil {
		res.Outcome, res.Message = OutcomeError, fmt.Sprintf("could not describe %s: %v", req.ID, err)
		return
	}
	if ok {
		res.RunID = last.RunID
		since := h.cfg.Now().Sub(last.Closed).Round(time.Second)
		switch {
		case last.Running:
			res.Outcome = OutcomeAlreadyRunning
			res.Message = fmt.Sprintf("%s %s (run %s) is already running since %s: acknowledged, nothing started",
				last.Type, req.ID, last.RunID, last.Started.UTC().Format(time.RFC3339))
			return
		case last.AlertKey == req.AlertKey:
			res.Outcome = OutcomeAlreadyHandled
			res.Message = fmt.Sprintf("%s %s (run %s) was started by this alert and ended %s ago (%s): acknowledged, nothing started",
				last.Type, req.ID, last.RunID, since, last.Status)
			return
		case c.traffic && h.cfg.Cooldown > 0 && since < h.cfg.Cooldown:
			res.Outcome = OutcomeRefused
			res.Message = fmt.Sprintf("refused: %s %s (run %s) ended %s ago (%s); alerts start no runbook within the %s cool-down: a human decides",
				last.Type, req.ID, last.RunID, since, last.Status, h.cfg.Cooldown)
			return
		}
	}
	if res.Action == recipe.ActionFailover && !h.lagAllows(ctx, c, res) {
		return
	}
	runID, err := h.cfg.Starter.Start(ctx, req)
	switch {
	case errors.Is(err, ErrAlreadyRunning):
		res.Outcome = OutcomeAlreadyRunning
		res.Message = fmt.Sprintf("a run of %s is already running: acknowledged, nothing started", req.ID)
	case err != nil:
		res.Outcome, res.Message = OutcomeError, fmt.Sprintf("could not start %s %s: %v", req.Type, req.ID, err)
	default:
		res.RunID, res.Outcome = runID, OutcomeStarted
		res.Message = fmt.Sprintf("%s %s (run %s) started: %s", req.Type, req.ID, runID, req.Summary)
	}
}

// summary counts the outcomes: "1 started, 2 already-running".
func summary(results []Result) string {
	if len(results) == 0 {
		return "no alerts"
	}
	n := map[string]int{}
	for _, r := range results {
		n[r.Outcome]++
	}
	var parts []string
	for _, o := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%d %s", n[o], o))
	}
	return strings.Join(parts, ", ")
}

// lagAllows refuses (in res) a failover whose standby lags more than
// policy.max_rpo or whose lag is unknown: promoting it would lose more
// than the recipe allows, and that is for a human to decide.
func (h *Handler) lagAllows(ctx context.Context, c candidate, res *Result) bool {
	lr, ok := h.cfg.Starter.(LagReader)
	if !ok {
		return true
	}
	r := h.cfg.Recipe
	lag, why, err := lr.StandbyLag(ctx, r.App, c.from, c.to)
	maxRPO := r.Policy.MaxRPO.D()
	switch {
	case err != nil:
		res.Outcome, res.Message = OutcomeError, fmt.Sprintf("could not read the lag of %s → %s: %v", c.from, c.to, err)
	case why != "":
		res.Outcome = OutcomeRefused
		res.Message = fmt.Sprintf("refused: the lag of standby %s is unknown (%s): a human decides (drover failover -f RECIPE --from %s --to %s)",
			c.to, why, c.from, c.to)
	case lag > maxRPO:
		res.Outcome = OutcomeRefused
		res.Message = fmt.Sprintf("refused: standby %s lagged %.1fs behind %s, more than policy.max_rpo %s: a failover now would lose more than the recipe allows; a human decides (drover failover -f RECIPE --from %s --to %s)",
			c.to, lag.Seconds(), c.from, maxRPO, c.from, c.to)
	default:
		return true
	}
	return false
}
