package recipe

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// withRoutes gives the valid recipe a bearer token and the given routes.
func withRoutes(r *Recipe, routes ...AlertRoute) {
	r.Alerts = Alerts{Auth: AlertAuth{BearerToken: "env:DROVER_WEBHOOK_TOKEN"}, Routes: routes}
}

// siteDown is the usual route: SiteDown at east fails over.
func siteDown() AlertRoute {
	return AlertRoute{Match: map[string]string{"alertname": "SiteDown", "site": "east"}, Action: ActionFailover}
}

// testdata/alerts.yaml parses into exactly the routes it shows, in order,
// and survives JSON and YAML round trips.
func TestParseAlerts(t *testing.T) {
	r, err := Load("testdata/alerts.yaml")
	require.NoError(t, err)
	want := wantValid()
	want.Alerts = Alerts{
		Auth: AlertAuth{BearerToken: "env:DROVER_WEBHOOK_TOKEN", HMACSecret: "file:/etc/drover/webhook.key"},
		Routes: []AlertRoute{
			{Match: map[string]string{"alertname": "SiteDown", "app": "petclinic", "site": "east"}, Action: ActionFailover},
			{Match: map[string]string{"alertname": "SiteDown", "site": "west"}, Action: ActionFailover, From: "west", To: "east"},
			{Match: map[string]string{"alertname": "PlannedMaintenance"}, Action: ActionSwitchover, From: "east"},
			{Match: map[string]string{"alertname": "DRDrillDue"}, Action: ActionDrill},
			{Match: map[string]string{"severity": "warning"}, Action: ActionNotifyOnly},
		},
	}
	assert.Equal(t, want, r)

	b, err := json.Marshal(r)
	require.NoError(t, err)
	var back Recipe
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, *r, back)
	y, err := yaml.Marshal(r)
	require.NoError(t, err)
	again, err := Parse(y)
	require.NoError(t, err)
	assert.Equal(t, r, again)

	// Without an alerts section nothing about alerts is written.
	b, err = json.Marshal(wantValid())
	require.NoError(t, err)
	assert.NotContains(t, string(b), "alerts")
}

// Label matchers are a mapping of strings: wrong shapes, duplicate labels
// and unknown route fields are reported with their path and line; anchors
// and merge keys work as elsewhere.
func TestParseAlertMatchers(t *testing.T) {
	auth := "alerts:\n  auth: {bearer_token: env:T}\n  routes:\n"
	line := strings.Count(readTestdata(t, "valid.yaml"), "\n") + 4 // of the first route
	tests := []struct {
		name, routes string
		want         []string
	}{
		{"list instead of mapping", "    - {match: [SiteDown], action: failover}\n",
			[]string{"alerts.routes[0].match: must be a mapping"}},
		{"value not a string", "    - {match: {site: [east]}, action: failover}\n",
			[]string{"alerts.routes[0].match.site: must be a string"}},
		{"null value", "    - {match: {site: ~}, action: failover}\n",
			[]string{"alerts.routes[0].match.site: must be a string"}},
		{"duplicate label", "    - match: {site: east, site: west}\n      action: failover\n",
			[]string{fmt.Sprintf("alerts.routes[0].match.site: duplicate key (line %d, first at line %d)", line, line)}},
		{"unknown route field", "    - {match: {site: east}, action: failover, when: always}\n",
			[]string{fmt.Sprintf("alerts.routes[0].when: unknown field (line %d)", line)}},
		{"alias cycle", "    - {match: &m {site: *m}, action: failover}\n",
			[]string{"alerts.routes[0].match.site: alias *m refers to a value that contains it"}},
		{"scalar labels are strings", "    - {match: {code: 503, ok: true}, action: notify-only}\n", nil},
		{"merge key", "    - match: &m {alertname: SiteDown}\n      action: notify-only\n    - match: {<<: *m, site: east}\n      action: failover\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := readTestdata(t, "valid.yaml") + auth + tt.routes
			r, err := Parse([]byte(doc))
			if tt.want == nil {
				require.NoError(t, err)
				require.NotEmpty(t, r.Alerts.Routes)
				return
			}
			require.Error(t, err)
			assert.Equal(t, strings.Join(tt.want, "\n"), err.Error())
		})
	}

	r, err := Parse([]byte(readTestdata(t, "valid.yaml") + auth +
		"    - {match: {code: 503, ok: true}, action: notify-only}\n    - match: &m {alertname: SiteDown}\n      action: notify-only\n    - match: {<<: *m, site: east}\n      action: failover\n"))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"code": "503", "ok": "true"}, r.Alerts.Routes[0].Match)
	assert.Equal(t, map[string]string{"alertname": "SiteDown", "site": "east"}, r.Alerts.Routes[2].Match)
}

func TestRouteMatching(t *testing.T) {
	r, err := Load("testdata/alerts.yaml")
	require.NoError(t, err)
	tests := []struct {
		labels map[string]string
		want   int
	}{
		{map[string]string{"alertname": "SiteDown", "app": "petclinic", "site": "east", "severity": "critical"}, 0},
		{map[string]string{"alertname": "SiteDown", "site": "east"}, -1}, // route 0 wants app too
		{map[string]string{"alertname": "SiteDown", "site": "west"}, 1},
		{map[string]string{"alertname": "SiteDown", "site": "West"}, -1}, // values are case-sensitive
		{map[string]string{"alertname": "DRDrillDue", "severity": "warning"}, 3},
		{map[string]string{"severity": "warning"}, 4},
		{map[string]string{}, -1},
		{nil, -1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, r.Route(tt.labels), "labels %v", tt.labels)
	}
	assert.False(t, AlertRoute{Action: ActionFailover}.Matches(map[string]string{"a": "b"}), "no matcher matches nothing")
	assert.Equal(t, "failover {alertname=SiteDown, app=petclinic, site=east}", r.Alerts.Routes[0].String())
	assert.True(t, r.Alerts.Routes[2].MovesTraffic())
	assert.False(t, r.Alerts.Routes[3].MovesTraffic())
}

func TestTakeoverSite(t *testing.T) {
	r := wantValid()
	to, ok := r.TakeoverSite("east")
	assert.Equal(t, "west", to)
	assert.True(t, ok, "east replicates into west")
	to, ok = r.TakeoverSite("west")
	assert.Equal(t, "east", to)
	assert.True(t, ok, "two sites: the other one")
	_, ok = r.TakeoverSite("nort")
	assert.False(t, ok)

	south := r.Sites[1]
	south.Name = "south"
	r.Sites = append(r.Sites, south)
	_, ok = r.TakeoverSite("west")
	assert.False(t, ok, "three sites and no stream from west")
	r.Replication = append(r.Replication, Stream{"east", "south"})
	_, ok = r.TakeoverSite("east")
	assert.False(t, ok, "east replicates into two sites")
}
