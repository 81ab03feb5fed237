package probe

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/recipe"
)

// Target is one concrete check of one site, derived from an entry of a
// recipe's probes list: exactly the input field matching Kind is set, ready
// to pass to ProbeHTTP, ProbeTCP, ProbeMySQL or ProbeDNS. Spec is the
// recipe entry it came from (interval and thresholds).
type Target struct {
	Kind  string       `json:"kind"`
	Site  string       `json:"site"`
	Spec  recipe.Probe `json:"spec"`
	HTTP  *HTTPInput   `json:"http,omitempty"`
	TCP   *TCPInput    `json:"tcp,omitempty"`
	MySQL *MySQLInput  `json:"mysql,omitempty"`
	DNS   *DNSInput    `json:"dns,omitempty"`
}

// Key identifies the target across runs ("http west http://127.0.0.3:8080/healthz",
// "tcp west 127.0.0.3:3306", "mysql west", "dns west 127.0.0.1:5354 app.drover.test. A"):
// a health monitor keeps its failure counts under it. DNS targets of
// different sites have different keys though they ask the same question,
// since each site's monitor judges the answer for itself.
func (t Target) Key() string {
	switch {
	case t.HTTP != nil:
		return fmt.Sprintf("http %s %s", t.Site, t.HTTP.URL)
	case t.TCP != nil:
		return fmt.Sprintf("tcp %s %s", t.Site, t.TCP.Address)
	case t.MySQL != nil:
		return fmt.Sprintf("mysql %s", t.Site)
	case t.DNS != nil:
		return fmt.Sprintf("dns %s %s %s %s", t.Site, t.DNS.Server, t.DNS.Name, t.DNS.Type)
	}
	return t.Kind + " " + t.Site
}

// ExpandTargets turns the recipe's probes list into the concrete checks of
// site, in recipe order, each with its probe's timeout:
//   - http: Target (a path) on every app endpoint of the site;
//   - tcp: "db" is the site's database host:port, "app" every app
//     endpoint's host:port (80/443 by scheme when the URL has no port), any
//     other value a literal host:port;
//   - mysql: the site's database, with the stream that replicates into the
//     site when the recipe has one (for the checkpoint and lag);
//   - dns: Target, or the recipe's DNS record, asked of DNS.Server. A
//     recipe without a server (route53, designate) yields no dns target:
//     a check that cannot be run must not count as a failure.
//
// It is a pure function of its arguments (safe in workflow code). It fails
// for an unknown site or probe kind, or an unusable endpoint or address,
// which a validated recipe never has.
func ExpandTargets(r *recipe.Recipe, site string) ([]Target, error) {
	s, ok := r.Site(site)
	if !ok {
		return nil, fmt.Errorf("expand probes: unknown site %q", site)
	}
	var out []Target
	for i, p := range r.Probes {
		base := Target{Kind: p.Kind, Site: s.Name, Spec: p}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("expand probes[%d] (%s) for site %s: %s", i, p.Kind, s.Name, fmt.Sprintf(format, args...))
		}
		switch p.Kind {
		case recipe.ProbeHTTP:
			path := p.Target
			if path == "" {
				path = "/"
			}
			for _, ep := range s.App.Endpoints {
				t := base
				t.HTTP = &HTTPInput{Site: s.Name, URL: endpointURL(ep, path), Timeout: p.Timeout}
				out = append(out, t)
			}
		case recipe.ProbeTCP:
			var addrs []string
			switch p.Target {
			case "db":
				addrs = []string{sitedb.Addr(s)}
			case "app":
				for _, ep := range s.App.Endpoints {
					hp, err := endpointHostPort(ep)
					if err != nil {
						return nil, bad("%v", err)
					}
					addrs = append(addrs, hp)
				}
			default:
				if _, _, err := net.SplitHostPort(p.Target); err != nil {
					return nil, bad("target %q: must be db, app or host:port", p.Target)
				}
				addrs = []string{p.Target}
			}
			for _, addr := range addrs {
				t := base
				t.TCP = &TCPInput{Site: s.Name, Address: addr, Timeout: p.Timeout}
				out = append(out, t)
			}
		case recipe.ProbeMySQL:
			t := base
			t.MySQL = &MySQLInput{Site: s, Stream: streamInto(r, s.Name), Timeout: p.Timeout}
			out = append(out, t)
		case recipe.ProbeDNS:
			if r.DNS.Server == "" {
				continue
			}
			name := p.Target
			if name == "" {
				name = r.DNS.Record
			}
			t := base
			t.DNS = &DNSInput{Site: s.Name, Server: r.DNS.Server, Name: fqdn(name), Type: "A", Timeout: p.Timeout}
			out = append(out, t)
		default:
			return nil, bad("unknown kind")
		}
	}
	return out, nil
}

// streamInto is the name of the stream that replicates into site, or "".
// A validated recipe has at most one.
func streamInto(r *recipe.Recipe, site string) string {
	for _, st := range r.Replication {
		if st.To == site {
			return replicate.StreamName(r.App, st.From, st.To)
		}
	}
	return ""
}

// endpointHostPort is an app endpoint URL's host:port, with the scheme's
// default port when the URL names none.
func endpointHostPort(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("app endpoint is not an absolute URL")
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// fqdn adds the trailing dot DNS questions need.
func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}
