package webhook

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzHandler sends arbitrary bodies, authenticated, to the handler. It
// never panics and always answers JSON; a 400 starts nothing and asks
// Temporal nothing; otherwise every alert has an outcome and a message, at
// most one workflow per workflow ID is running, and a start is only ever
// what a route allows (no traffic move without policy.auto_failover).
func FuzzHandler(f *testing.F) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed payloads: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		f.Add(b, false)
	}
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"version":"4","status":"firing","alerts":[{"status":"firing"}]}`,
		`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"SiteDown","site":"west"}},` +
			`{"status":"firing","labels":{"alertname":"SiteDown","site":"east"}}]}`,
		`{"version":"4","status":"resolved","alerts":[{"status":"resolved","labels":{"app":"x"}}]}`,
		`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"DRDrillDue"},"startsAt":"9999-01-01T00:00:00Z"}]}`,
	} {
		f.Add([]byte(s), true)
	}
	r := testRecipe(f)
	f.Fuzz(func(t *testing.T, body []byte, autoFailover bool) {
		rr := *r
		rr.Policy.AutoFailover = autoFailover
		st := newFakeStarter(time.Now)
		h, _ := newTestHandler(t, &rr, st, func(c *Config) { c.MaxBody = 64 << 10 })
		code, resp, _ := post(t, h, body, nil)
		starts, calls := st.snapshot()
		switch code {
		case http.StatusBadRequest:
			if len(resp.Errors) == 0 || len(starts) > 0 || calls > 0 {
				t.Fatalf("400 without a reason, or with side effects: %+v, %d starts, %d calls", resp, len(starts), calls)
			}
			return
		case http.StatusOK:
		default:
			t.Fatalf("status %d: %+v", code, resp)
		}
		started := 0
		for i, res := range resp.Alerts {
			if res.Outcome == "" || res.Message == "" {
				t.Fatalf("alerts[%d] has no outcome or message: %+v", i, res)
			}
			if res.Outcome == OutcomeStarted {
				started++
			}
		}
		if started != len(starts) {
			t.Fatalf("%d alerts say started, %d starts happened", started, len(starts))
		}
		ids := map[string]bool{}
		for _, s := range starts {
			if ids[s.ID] {
				t.Fatalf("two starts under %s", s.ID)
			}
			ids[s.ID] = true
			if !autoFailover && s.Type != TypeDrill {
				t.Fatalf("%s started with auto_failover off", s.Type)
			}
		}
	})
}
