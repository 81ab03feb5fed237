package metrics_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drover-sre/drover/metrics"
)

// The example alert rules use only series a worker exports, and the
// alerts the webhook routes on carry its labels: SiteDown keeps app and
// site, the others app. (promtool test rules deploy/prometheus/rules_test.yml
// checks the expressions' behaviour.)
func TestAlertRulesUseExportedSeries(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Expr   string            `yaml:"expr"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}

	r := metrics.New()
	r.ObserveStream(metrics.StreamSample{App: "a", Stream: "s", RPOSLASeconds: 30})
	r.ObserveSiteProbes(metrics.SiteProbes{App: "a", Site: "east", Vantage: "west", Checks: []metrics.ProbeCheck{{Kind: "tcp"}}})
	metrics.RecordRunbook(r.SDKHandler(), "a", "switchover", "completed", time.Second)
	metrics.RecordDrill(r.SDKHandler(), "a", true, time.Now())
	exported := scrape(t, r)

	byClause := map[string]string{"ReplicationLagOverRPO": "by (app, stream)", "SiteDown": "by (app, site)", "DrillOverdue": "by (app)"}
	series := regexp.MustCompile(`drover_[a-z_]+`)
	seen := map[string]bool{}
	for _, g := range file.Groups {
		for _, rule := range g.Rules {
			seen[rule.Alert] = true
			for _, name := range series.FindAllString(rule.Expr, -1) {
				if _, n := exported.Value(name, nil); n == 0 {
					t.Errorf("%s uses %s, which no worker exports", rule.Alert, name)
				}
			}
			if want := byClause[rule.Alert]; want != "" && !strings.Contains(rule.Expr, want) {
				t.Errorf("%s must aggregate %s to keep its routing labels: %s", rule.Alert, want, rule.Expr)
			}
			if rule.Labels["severity"] == "" {
				t.Errorf("%s has no severity", rule.Alert)
			}
		}
	}
	for name := range byClause {
		if !seen[name] {
			t.Errorf("alert %s missing from rules.yml", name)
		}
	}
}
