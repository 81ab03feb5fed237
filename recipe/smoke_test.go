package recipe

import (
	"strings"
	"testing"
)

func TestSmokeCheckValidate(t *testing.T) {
	for _, c := range []struct {
		check SmokeCheck
		want  string
	}{
		{SmokeCheck{Path: "/healthz"}, ""},
		{SmokeCheck{Method: "post", Path: "/api/owners", Body: `{"last_name":"{run}"}`, ExpectStatus: 201}, ""},
		{SmokeCheck{Path: "healthz"}, `app.smoke[0].path: "healthz" must start with /`},
		{SmokeCheck{Method: "TRACE", Path: "/"}, `app.smoke[0].method: "TRACE" is not one of`},
		{SmokeCheck{Path: "/", ExpectStatus: 42}, "app.smoke[0].expect_status: 42 is not an HTTP status"},
		{SmokeCheck{Path: "/", Body: "{}"}, "app.smoke[0].body: a GET sends no body"},
	} {
		ps := c.check.Validate("app.smoke[0]")
		switch {
		case c.want == "" && len(ps) > 0:
			t.Errorf("%+v refused: %v", c.check, ps)
		case c.want != "" && !strings.Contains(ps.Error(), c.want):
			t.Errorf("%+v: got %v, want %q", c.check, ps, c.want)
		}
	}
	if got := (SmokeCheck{Method: "POST", Path: "/x"}).Label(); got != "POST /x" {
		t.Errorf("label %q", got)
	}
}

func TestDrillSettingsValidate(t *testing.T) {
	r := &Recipe{Sites: []Site{{Name: "east", Address: "127.0.0.2", DB: Database{Host: "127.0.0.2"}}}}
	for addr, want := range map[string]string{
		"":          "",
		"127.0.0.4": "",
		"10.0.0.4":  `drill.address: "10.0.0.4" must be an IPv4 loopback address`,
		"127.0.0.2": "drill.address: 127.0.0.2 is the address of sites[0] (east)",
	} {
		ps := DrillSettings{Address: addr}.validate(r)
		if (want == "") != (len(ps) == 0) || (want != "" && !strings.Contains(ps.Error(), want)) {
			t.Errorf("%q: got %v, want %q", addr, ps, want)
		}
	}
}
