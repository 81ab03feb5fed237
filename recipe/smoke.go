package recipe

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// RunToken is replaced, in a SmokeCheck's Path, Body and ExpectBody, by a
// token unique to the run that executes the checks (letters and digits
// only), so a check can write a record and then read that same record back.
const RunToken = "{run}"

// SmokeCheck is one HTTP request a DR drill sends to the application of
// the promoted copy, in order, after the copy is writable: e.g. create a
// record, then read it back. It proves more than a health probe: the
// application works against the copied data.
type SmokeCheck struct {
	// Name labels the check in reports (default "METHOD PATH").
	Name string `yaml:"name" json:"name,omitempty"`
	// Method is GET (default), POST, PUT, PATCH or DELETE.
	Method string `yaml:"method" json:"method,omitempty"`
	// Path is appended to the site's first app endpoint; it starts with "/".
	Path string `yaml:"path" json:"path"`
	// Body is sent with Content-Type application/json when set.
	Body string `yaml:"body" json:"body,omitempty"`
	// ExpectStatus is the status that passes (default: any 2xx).
	ExpectStatus int `yaml:"expect_status" json:"expect_status,omitempty"`
	// ExpectBody, when set, must occur in the response body.
	ExpectBody string `yaml:"expect_body" json:"expect_body,omitempty"`
}

// DrillSettings are the recipe's defaults for DR drills.
type DrillSettings struct {
	// Address is the IPv4 loopback address an isolated drill of a local
	// standby listens on (its own address: never a site's).
	Address string `yaml:"address,omitempty" json:"address,omitempty"`
}

// validate returns the settings' problems.
func (d DrillSettings) validate(r *Recipe) Problems {
	if d.Address == "" {
		return nil
	}
	ip := net.ParseIP(d.Address)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return Problems{{"drill.address", fmt.Sprintf("%q must be an IPv4 loopback address (e.g. 127.0.0.4)", d.Address)}}
	}
	for i, s := range r.Sites {
		if s.Address == d.Address || s.DB.Host == d.Address {
			return Problems{{"drill.address", fmt.Sprintf("%s is the address of sites[%d] (%s): a drill needs an address of its own", d.Address, i, s.Name)}}
		}
	}
	return nil
}

// Label is the check's name for reports.
func (c SmokeCheck) Label() string {
	if c.Name != "" {
		return c.Name
	}
	m := c.Method
	if m == "" {
		m = http.MethodGet
	}
	return m + " " + c.Path
}

// Validate returns the check's problems, located under path (e.g.
// "app.smoke[0]").
func (c SmokeCheck) Validate(path string) Problems {
	var ps Problems
	switch strings.ToUpper(c.Method) {
	case "", http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		ps = append(ps, Problem{path + ".method", fmt.Sprintf("%q is not one of GET, POST, PUT, PATCH, DELETE", c.Method)})
	}
	if !strings.HasPrefix(c.Path, "/") {
		ps = append(ps, Problem{path + ".path", fmt.Sprintf("%q must start with /", c.Path)})
	}
	if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
		ps = append(ps, Problem{path + ".expect_status", fmt.Sprintf("%d is not an HTTP status", c.ExpectStatus)})
	}
	if c.Body != "" && (c.Method == "" || strings.EqualFold(c.Method, http.MethodGet)) {
		ps = append(ps, Problem{path + ".body", "a GET sends no body: set method"})
	}
	return ps
}
