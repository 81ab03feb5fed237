package recipe

import (
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Actions an alert route can take.
const (
	// ActionFailover starts the Failover runbook; only when
	// Policy.AutoFailover is true.
	ActionFailover = "failover"
	// ActionSwitchover starts the Switchover runbook; only when
	// Policy.AutoFailover is true (it moves traffic on its own too).
	ActionSwitchover = "switchover"
	// ActionDrill starts the Drill workflow, which changes nothing in service.
	ActionDrill = "drill"
	// ActionNotifyOnly logs the alert and starts nothing.
	ActionNotifyOnly = "notify-only"
)

// SiteLabel is the alert label that names the site an alert is about; a
// route without From takes its failover or switchover source from it.
const SiteLabel = "site"

// AppLabel is the alert label that names the application an alert is about.
const AppLabel = "app"

// labelNameRE is Prometheus' rule for label names.
var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Alerts is what Drover's Alertmanager webhook (drover webhook) does with
// this application's alerts: who may send them (Auth) and which alert
// starts what (Routes, first match wins). A recipe without routes makes the
// webhook start nothing.
type Alerts struct {
	Auth   AlertAuth    `yaml:"auth,omitempty" json:"auth,omitzero"`
	Routes []AlertRoute `yaml:"routes" json:"routes,omitempty"`
}

// AlertAuth is how the webhook authenticates a request. Each secret set must
// be proved by every request: BearerToken as "Authorization: Bearer
// <token>", HMACSecret as "X-Drover-Signature: sha256=<hex of
// HMAC-SHA256(secret, body)>". At least one is required once Routes exist.
type AlertAuth struct {
	BearerToken SecretRef `yaml:"bearer_token" json:"bearer_token,omitempty"`
	HMACSecret  SecretRef `yaml:"hmac_secret" json:"hmac_secret,omitempty"`
}

// AlertRoute maps the alerts whose labels equal every matcher of Match to
// an action. From and To are the runbook's sites (failover and switchover
// only): From defaults to the alert's SiteLabel, To to TakeoverSite(From).
type AlertRoute struct {
	Match  map[string]string `yaml:"match" json:"match"`
	Action string            `yaml:"action" json:"action"`
	From   string            `yaml:"from" json:"from,omitempty"`
	To     string            `yaml:"to" json:"to,omitempty"`
}

// MovesTraffic reports whether the route's action is a runbook that moves
// the primary (failover or switchover).
func (a AlertRoute) MovesTraffic() bool {
	return a.Action == ActionFailover || a.Action == ActionSwitchover
}

// Matches reports whether labels has every label of Match with the same
// value. A route with no matcher matches nothing.
func (a AlertRoute) Matches(labels map[string]string) bool {
	if len(a.Match) == 0 {
		return false
	}
	for k, want := range a.Match {
		if got, ok := labels[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// Route returns the index of the first route of the recipe that matches
// labels, or -1 when none does.
func (r *Recipe) Route(labels map[string]string) int {
	for i, rt := range r.Alerts.Routes {
		if rt.Matches(labels) {
			return i
		}
	}
	return -1
}

// TakeoverSite returns the site that becomes primary when from fails: the
// one site the recipe replicates from into, or else, in a two-site recipe,
// the other site. It returns "" and false when the recipe does not tell.
func (r *Recipe) TakeoverSite(from string) (string, bool) {
	var to []string
	for _, s := range r.Replication {
		if s.From == from {
			to = append(to, s.To)
		}
	}
	if len(to) == 1 {
		return to[0], true
	}
	if len(to) == 0 && len(r.Sites) == 2 {
		switch a, b := r.Sites[0].Name, r.Sites[1].Name; from {
		case a:
			return b, b != a
		case b:
			return a, a != b
		}
	}
	return "", false
}

// alerts checks the alerts section.
func (v *validator) alerts() {
	a := v.r.Alerts
	v.secret("alerts.auth.bearer_token", a.Auth.BearerToken, false)
	v.secret("alerts.auth.hmac_secret", a.Auth.HMACSecret, false)
	if len(a.Routes) > 0 && a.Auth.BearerToken == "" && a.Auth.HMACSecret == "" {
		v.add("alerts.auth", "required when alerts.routes is set: bearer_token or hmac_secret")
	}
	for i, rt := range a.Routes {
		p := index("alerts.routes", i)
		v.matchers(p+".match", rt.Match)
		for j := range i {
			if len(rt.Match) > 0 && maps.Equal(rt.Match, a.Routes[j].Match) {
				v.add(p+".match", "never used: %s has the same matchers", index("alerts.routes", j))
				break
			}
		}
		switch rt.Action {
		case ActionFailover, ActionSwitchover:
			v.routeSites(p, rt)
		case ActionDrill, ActionNotifyOnly:
			for _, f := range []struct{ name, val string }{{"from", rt.From}, {"to", rt.To}} {
				if f.val != "" {
					v.add(p+"."+f.name, "only for actions failover and switchover")
				}
			}
		case "":
			v.add(p+".action", "required")
		default:
			v.add(p+".action", "must be one of failover, switchover, drill, notify-only")
		}
	}
}

// matchers checks a route's label matchers.
func (v *validator) matchers(path string, m map[string]string) {
	if len(m) == 0 {
		v.add(path, "must have at least one label matcher, e.g. {alertname: SiteDown}")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch {
		case !labelNameRE.MatchString(k):
			v.add(field(path, k), "label name must match [a-zA-Z_][a-zA-Z0-9_]*")
		case m[k] == "":
			v.add(field(path, k), "must not be empty")
		case k == AppLabel && m[k] != v.r.App:
			v.add(field(path, k), "never matches: this recipe is for app %s", nameOrQuoted(v.r.App))
		}
	}
}

// routeSites checks From and To of a failover or switchover route.
func (v *validator) routeSites(p string, rt AlertRoute) {
	fromOK := rt.From != "" && v.siteRef(p+".from", rt.From)
	if rt.To != "" && !v.siteRef(p+".to", rt.To) {
		return
	}
	from := rt.From
	if from == "" {
		from = rt.Match[SiteLabel] // what the alert's site label must be
	}
	switch {
	case rt.To != "" && rt.To == from:
		v.add(p+".to", "must differ from from (%s)", nameOrQuoted(from))
	case rt.To == "" && fromOK:
		if _, ok := v.r.TakeoverSite(rt.From); !ok {
			v.add(p+".to", "required: the recipe does not tell which site takes over from %s", nameOrQuoted(rt.From))
		}
	}
}

// String describes the route for logs and messages: its action and matchers
// in a stable order, e.g. "failover {alertname=SiteDown, site=east}".
func (a AlertRoute) String() string {
	var b strings.Builder
	b.WriteString(a.Action)
	b.WriteString(" {")
	for i, k := range slices.Sorted(maps.Keys(a.Match)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + a.Match[k])
	}
	b.WriteString("}")
	return b.String()
}
