package recipe

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

const (
	nameMsg      = "must be 1-31 lower-case letters, digits or dashes, starting with a letter"
	loopbackMsg  = "must be an IPv4 address in 127.0.0.0/8"
	hostMsg      = "must be an IP address or host name"
	domainMsg    = "must be a domain name"
	maxInstances = 100
	maxTTL       = 86400
)

// tsigAlgorithms are the TSIG algorithms an rfc2136 driver may use.
var tsigAlgorithms = []string{"hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}

// Validate checks every rule of a recipe and returns all violations as
// Problems, in field order, or nil. It checks r as it stands: it does not
// apply defaults (call ApplyDefaults first for a hand-built recipe) and
// never reads secrets.
func (r *Recipe) Validate() error {
	v := validator{r: r, siteIndex: map[string]int{}}
	for i, s := range r.Sites {
		if _, dup := v.siteIndex[s.Name]; !dup && s.Name != "" {
			v.siteIndex[s.Name] = i
		}
	}
	v.name("app", r.App)
	v.primary()
	v.sites()
	v.replication()
	v.dns()
	v.probes()
	v.policy()
	v.alerts()
	v.ps = append(v.ps, r.Drill.validate(r)...)
	for i, c := range r.Smoke {
		v.ps = append(v.ps, c.Validate(fmt.Sprintf("smoke[%d]", i))...)
	}
	return v.ps.err()
}

// validator collects the problems of one recipe.
type validator struct {
	r         *Recipe
	ps        Problems
	siteIndex map[string]int // site name → index of its first definition
}

func (v *validator) add(path, format string, args ...any) {
	v.ps.add(path, format, args...)
}

// name checks an app or site name, which becomes a task queue name and a
// DNS label.
func (v *validator) name(path, s string) {
	switch {
	case s == "":
		v.add(path, "required")
	case !nameRE.MatchString(s):
		v.add(path, nameMsg)
	}
}

// site names site i for a message: `site "east"`, or sites[i] if unnamed.
func (v *validator) site(i int) string {
	if n := v.r.Sites[i].Name; n != "" {
		return "site " + quoteShort(n)
	}
	return index("sites", i)
}

// siteRef checks that s names a site of the recipe.
func (v *validator) siteRef(path, s string) bool {
	if s == "" {
		v.add(path, "required")
		return false
	}
	if _, ok := v.siteIndex[s]; !ok {
		v.add(path, "unknown site %s", quoteShort(s))
		return false
	}
	return true
}

func (v *validator) primary() {
	v.siteRef("primary", v.r.Primary)
}

func (v *validator) sites() {
	if len(v.r.Sites) == 0 {
		v.add("sites", "must list at least one site")
	}
	dbAddrs := map[string]int{}   // lower-case db host:port → site index
	endpoints := map[string]int{} // lower-case app host:port of local sites → site index
	serverIDs := map[uint32]int{}
	domainIDs := map[uint32]int{}
	for i, s := range v.r.Sites {
		p := index("sites", i)
		v.name(p+".name", s.Name)
		if first := v.siteIndex[s.Name]; s.Name != "" && first != i {
			v.add(p+".name", "duplicate site %s", quoteShort(s.Name))
		}

		local := s.Provider == ProviderLocal
		switch s.Provider {
		case ProviderLocal, ProviderAWS, ProviderOpenStack:
		case "":
			v.add(p+".provider", "required")
		default:
			v.add(p+".provider", "must be one of local, aws, openstack")
		}
		if (s.Provider == ProviderAWS || s.Provider == ProviderOpenStack) && s.Region == "" {
			v.add(p+".region", "required for provider %s", s.Provider)
		}
		s.computeProblems(p, false, &v.ps)
		switch {
		case s.Address == "":
			v.add(p+".address", "required")
		case local && !isLoopback4(s.Address):
			v.add(p+".address", loopbackMsg)
		case !local && !validHost(s.Address):
			v.add(p+".address", hostMsg)
		}

		db := s.DB
		dp := p + ".db"
		host := firstNonEmpty(db.Host, s.Address)
		hostOK := host != "" && (local && isLoopback4(host) || !local && validHost(host))
		switch {
		case db.Host == "" || db.Host == s.Address: // checked as the address
		case !hostOK && local:
			v.add(dp+".host", loopbackMsg)
		case !hostOK:
			v.add(dp+".host", hostMsg)
		}
		portOK := db.Port >= 1 && db.Port <= 65535
		if !portOK {
			v.add(dp+".port", "must be 1-65535")
		}
		if hostOK && portOK {
			key := strings.ToLower(joinHostPort(host, db.Port))
			if j, dup := dbAddrs[key]; dup {
				v.add(dp, "%s already used by %s", key, v.site(j))
			} else {
				dbAddrs[key] = i
			}
		}
		if db.User == "" {
			v.add(dp+".user", "required")
		}
		v.secret(dp+".password", db.Password, true)
		for _, acct := range []struct {
			name string
			a    Account
		}{{"stream", db.Stream}, {"apply", db.Apply}} {
			switch {
			case acct.a.User == "" && acct.a.Password != "":
				v.add(dp+"."+acct.name+".user", "required when a password is given")
			case acct.a.User != "":
				v.secret(dp+"."+acct.name+".password", acct.a.Password, true)
			}
		}
		db.TLS.problems(dp+".tls", &v.ps)
		if db.ServerID == 0 {
			v.add(dp+".server_id", "must be non-zero")
		} else if j, dup := serverIDs[db.ServerID]; dup {
			v.add(dp+".server_id", "%d already used by %s", db.ServerID, v.site(j))
		} else {
			serverIDs[db.ServerID] = i
		}
		if j, dup := domainIDs[db.GTIDDomainID]; dup {
			v.add(dp+".gtid_domain_id", "%d already used by %s", db.GTIDDomainID, v.site(j))
		} else {
			domainIDs[db.GTIDDomainID] = i
		}

		ap := p + ".app"
		if len(s.App.Endpoints) == 0 {
			v.add(ap+".endpoints", "must list at least one endpoint")
		}
		for k, e := range s.App.Endpoints {
			ep := index(ap+".endpoints", k)
			hostPort, msg := checkEndpoint(e)
			if msg != "" {
				v.add(ep, "%s", msg)
				continue
			}
			if !local {
				continue
			}
			if j, dup := endpoints[hostPort]; dup && j == i {
				v.add(ep, "duplicate endpoint %s", hostPort)
			} else if dup {
				v.add(ep, "%s already used by %s", hostPort, v.site(j))
			} else {
				endpoints[hostPort] = i
			}
		}
		if s.App.Instances < 1 || s.App.Instances > maxInstances {
			v.add(ap+".instances", "must be 1-%d", maxInstances)
		}
	}
}

// secret checks a secret reference; required says whether it may be empty.
func (v *validator) secret(path string, ref SecretRef, required bool) {
	if ref == "" {
		if required {
			v.add(path, "required")
		}
		return
	}
	if err := ref.Validate(); err != nil {
		v.add(path, "%s", err.Error())
	}
}

func (v *validator) replication() {
	type stream struct{ from, to string }
	seen := map[stream]bool{}
	source := map[string]string{} // receiving site → its source
	for i, st := range v.r.Replication {
		p := index("replication", i)
		fromOK := v.siteRef(p+".from", st.From)
		toOK := v.siteRef(p+".to", st.To)
		if !fromOK || !toOK {
			continue
		}
		switch from, dup := source[st.To]; {
		case st.From == st.To:
			v.add(p+".to", "must differ from from")
		case seen[stream{st.From, st.To}]:
			v.add(p, "duplicate stream %s -> %s", nameOrQuoted(st.From), nameOrQuoted(st.To))
		case dup:
			v.add(p+".to", "site %s already receives from %s", quoteShort(st.To), quoteShort(from))
		default:
			seen[stream{st.From, st.To}] = true
			source[st.To] = st.From
		}
	}
}

func (v *validator) dns() {
	d := v.r.DNS
	zoneOK := false
	switch {
	case d.Zone == "":
		v.add("dns.zone", "required")
	case !validDomain(d.Zone):
		v.add("dns.zone", domainMsg)
	default:
		zoneOK = true
	}
	switch {
	case d.Record == "":
		v.add("dns.record", "required")
	case !validDomain(d.Record):
		v.add("dns.record", domainMsg)
	case zoneOK && !inZone(d.Record, d.Zone):
		v.add("dns.record", "must be inside zone %s", quoteShort(fqdn(d.Zone)))
	}
	if d.TTL < 1 || d.TTL > maxTTL {
		v.add("dns.ttl", "must be 1-%d", maxTTL)
	}
	switch d.Driver {
	case DriverRFC2136:
		v.server(d.Server)
		if d.TSIG.Name == "" {
			v.add("dns.tsig.name", "required for driver rfc2136")
		} else if !validDomain(d.TSIG.Name) {
			v.add("dns.tsig.name", domainMsg)
		}
		if d.TSIG.Algorithm == "" {
			v.add("dns.tsig.algorithm", "required for driver rfc2136")
		}
		if d.TSIG.Secret == "" {
			v.add("dns.tsig.secret", "required for driver rfc2136")
		}
	case DriverRoute53, DriverDesignate:
		if d.ZoneID == "" {
			v.add("dns.zone_id", "required for driver %s", d.Driver)
		}
	case "":
		v.add("dns.driver", "required")
	default:
		v.add("dns.driver", "must be one of rfc2136, route53, designate")
	}
	if a := d.TSIG.Algorithm; a != "" && !contains(tsigAlgorithms, a) {
		v.add("dns.tsig.algorithm", "must be one of %s", strings.Join(tsigAlgorithms, ", "))
	}
	v.secret("dns.tsig.secret", d.TSIG.Secret, false)
}

// server checks the rfc2136 server address.
func (v *validator) server(s string) {
	const path = "dns.server"
	if s == "" {
		v.add(path, "required for driver rfc2136")
		return
	}
	host, port, err := splitHostPort(s)
	switch {
	case err != nil || !validHost(host):
		v.add(path, "must be host:port")
	case port < 1 || port > 65535:
		v.add(path, "port must be 1-65535")
	}
}

func (v *validator) probes() {
	for i, pr := range v.r.Probes {
		p := index("probes", i)
		tp := p + ".target"
		switch pr.Kind {
		case ProbeHTTP:
			if !isURLPath(pr.Target) {
				v.add(tp, `must be a URL path starting with "/"`)
			}
		case ProbeTCP:
			if pr.Target != "db" && pr.Target != "app" && !validHostPort(pr.Target) {
				v.add(tp, "must be db, app or host:port")
			}
		case ProbeMySQL:
			if pr.Target != "" && pr.Target != "db" {
				v.add(tp, "must be empty or db")
			}
		case ProbeDNS:
			if pr.Target != "" && !validDomain(pr.Target) {
				v.add(tp, "must be empty or a domain name")
			}
		case "":
			v.add(p+".kind", "required")
		default:
			v.add(p+".kind", "must be one of http, tcp, mysql, dns")
		}
		if pr.Interval <= 0 {
			v.add(p+".interval", "must be > 0")
		}
		switch {
		case pr.Timeout <= 0:
			v.add(p+".timeout", "must be > 0")
		case pr.Interval > 0 && pr.Timeout >= pr.Interval:
			v.add(p+".timeout", "must be less than interval (%s)", pr.Interval)
		}
		if pr.FailureThreshold < 1 {
			v.add(p+".failure_threshold", "must be >= 1")
		}
		if pr.RecoveryThreshold < 1 {
			v.add(p+".recovery_threshold", "must be >= 1")
		}
	}
}

func (v *validator) policy() {
	pol := v.r.Policy
	switch {
	case pol.MaxRPO < 0:
		v.add("policy.max_rpo", "must not be negative")
	case pol.AutoFailover && pol.MaxRPO == 0:
		v.add("policy.max_rpo", "must be > 0 when auto_failover is true")
	}
	if pol.SLA.RTO <= 0 {
		v.add("policy.sla.rto", "must be > 0")
	}
	if pol.SLA.RPO <= 0 {
		v.add("policy.sla.rpo", "must be > 0")
	}
}

// nameOrQuoted returns s as it is if it is a valid name, else quoted.
func nameOrQuoted(s string) string {
	if nameRE.MatchString(s) {
		return s
	}
	return quoteShort(s)
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isLoopback4 reports whether s is an IPv4 address in 127.0.0.0/8.
func isLoopback4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4() && a.IsLoopback()
}

// validHost reports whether s is an IP address or a host name.
func validHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if !validDomain(s) || strings.Contains(s, "_") {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	_, err := strconv.Atoi(labels[len(labels)-1])
	return err != nil // an all-numeric top label is a mistyped IP
}

// validDomain reports whether s is a domain name: dot-separated labels of
// 1-63 letters, digits, dashes or underscores, not starting or ending with a
// dash, 253 characters at most, with an optional trailing dot.
func validDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// inZone reports whether name is zone or a name below it, ignoring case and
// trailing dots.
func inZone(name, zone string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	zone = strings.ToLower(strings.TrimSuffix(zone, "."))
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// splitHostPort splits "host:port" with a numeric port.
func splitHostPort(s string) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number", ps)
	}
	return host, port, nil
}

// validHostPort reports whether s is "host:port" with a valid host and a
// port 1-65535.
func validHostPort(s string) bool {
	host, port, err := splitHostPort(s)
	return err == nil && validHost(host) && port >= 1 && port <= 65535
}

// isURLPath reports whether s is an absolute URL path, optionally with a
// query: "/healthz", "/status?full=1".
func isURLPath(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "# \t\r\n") {
		return false
	}
	u, err := url.ParseRequestURI(s)
	return err == nil && u.Scheme == "" && u.Host == ""
}

// checkEndpoint checks an app endpoint URL. It returns the endpoint's
// lower-case host:port (with the scheme's default port) or a problem
// message. The message never repeats the URL, which could hold credentials.
func checkEndpoint(raw string) (hostPort, msg string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", "must be an absolute http or https URL"
	}
	if u.User != nil {
		return "", "must not contain user information"
	}
	if u.Path != "" && u.Path != "/" {
		return "", `must have no path other than "/"`
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return "", "must have no query or fragment"
	}
	host := u.Hostname()
	if !validHost(host) {
		return "", "must have a valid host"
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if ps := u.Port(); ps != "" {
		p, err := strconv.Atoi(ps)
		if err != nil || p < 1 || p > 65535 {
			return "", "must have a port 1-65535"
		}
		port = p
	}
	return strings.ToLower(joinHostPort(host, port)), ""
}
