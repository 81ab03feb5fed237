package recipe

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestValidate(t *testing.T) {
	const (
		literalMsg = "must be a secret reference (env:NAME or file:/absolute/path), not a literal value"
		// A third local site, for rules that need more than two.
		southAddr = "127.0.0.4"
	)
	south := func(r *Recipe) {
		s := r.Sites[1]
		s.Name, s.Address, s.DB.Host = "south", southAddr, southAddr
		s.DB.ServerID, s.DB.GTIDDomainID = 3, 3
		s.App.Endpoints = []string{"http://127.0.0.4:8080"}
		r.Sites = append(r.Sites, s)
	}
	cloud := func(r *Recipe) {
		r.Sites[1].Provider, r.Sites[1].Region = "aws", "eu-west-1"
		r.Sites[1].Address, r.Sites[1].DB.Host = "west.example.com", "db.west.example.com"
	}
	p := func(path, msg string) Problems { return Problems{{path, msg}} }
	// route gives the recipe one alert route, SiteDown at east → failover,
	// changed by mut.
	route := func(mut func(*AlertRoute)) func(*Recipe) {
		return func(r *Recipe) {
			rt := siteDown()
			mut(&rt)
			withRoutes(r, rt)
		}
	}

	tests := []struct {
		name   string
		mutate func(r *Recipe)
		want   Problems
	}{
		// app and site names
		{"app required", func(r *Recipe) { r.App = "" }, p("app", "required")},
		{"app upper case", func(r *Recipe) { r.App = "PetClinic" }, p("app", nameMsg)},
		{"app starts with digit", func(r *Recipe) { r.App = "1pet" }, p("app", nameMsg)},
		{"app too long", func(r *Recipe) { r.App = "a" + strings.Repeat("b", 31) }, p("app", nameMsg)},
		{"app longest", func(r *Recipe) { r.App = "a" + strings.Repeat("b", 30) }, nil},
		{"site name bad", func(r *Recipe) { r.Sites[1].Name = "we_st"; r.Replication = nil }, p("sites[1].name", nameMsg)},
		{"site name required", func(r *Recipe) { r.Sites[1].Name = ""; r.Replication = nil }, p("sites[1].name", "required")},
		{"site name duplicate", func(r *Recipe) { r.Sites[1].Name = "east"; r.Replication = nil },
			p("sites[1].name", `duplicate site "east"`)},

		// sites and primary
		{"no sites", func(r *Recipe) { r.Sites = nil; r.Replication = nil }, Problems{
			{"primary", `unknown site "east"`}, {"sites", "must list at least one site"}}},
		{"primary required", func(r *Recipe) { r.Primary = "" }, p("primary", "required")},
		{"primary unknown", func(r *Recipe) { r.Primary = "nort" }, p("primary", `unknown site "nort"`)},

		// provider, region, address
		{"provider required", func(r *Recipe) { r.Sites[0].Provider = "" }, p("sites[0].provider", "required")},
		{"provider unknown", func(r *Recipe) { r.Sites[0].Provider = "gcp" }, p("sites[0].provider", "must be one of local, aws, openstack")},
		{"cloud site", cloud, nil},
		{"cloud needs region", func(r *Recipe) { cloud(r); r.Sites[1].Region = "" }, p("sites[1].region", "required for provider aws")},
		{"openstack needs region", func(r *Recipe) { cloud(r); r.Sites[1].Provider = "openstack"; r.Sites[1].Region = "" },
			p("sites[1].region", "required for provider openstack")},
		{"cloud address IP", func(r *Recipe) { cloud(r); r.Sites[1].Address = "2001:db8::1" }, nil},
		{"cloud address bad", func(r *Recipe) { cloud(r); r.Sites[1].Address = "west example" }, p("sites[1].address", hostMsg)},
		{"cloud address numeric", func(r *Recipe) { cloud(r); r.Sites[1].Address = "10.0.0.256" }, p("sites[1].address", hostMsg)},
		{"cloud db host bad", func(r *Recipe) { cloud(r); r.Sites[1].DB.Host = "-db" }, p("sites[1].db.host", hostMsg)},
		{"address required", func(r *Recipe) { r.Sites[0].Address = "" }, p("sites[0].address", "required")},
		{"local address not loopback", func(r *Recipe) { r.Sites[0].Address = "10.0.0.2" }, p("sites[0].address", loopbackMsg)},
		{"local address hostname", func(r *Recipe) { r.Sites[0].Address = "localhost" }, p("sites[0].address", loopbackMsg)},
		{"local address IPv6", func(r *Recipe) { r.Sites[0].Address = "::1" }, p("sites[0].address", loopbackMsg)},
		{"local address not reported twice", func(r *Recipe) { r.Sites[0].Address = "10.0.0.2"; r.Sites[0].DB.Host = "10.0.0.2" },
			p("sites[0].address", loopbackMsg)},
		{"local db host not loopback", func(r *Recipe) { r.Sites[0].DB.Host = "db.example.com" }, p("sites[0].db.host", loopbackMsg)},
		{"local db host other loopback", func(r *Recipe) { r.Sites[0].DB.Host = "127.0.1.2" }, nil},

		// database
		{"db port zero", func(r *Recipe) { r.Sites[0].DB.Port = 0 }, p("sites[0].db.port", "must be 1-65535")},
		{"db port too big", func(r *Recipe) { r.Sites[0].DB.Port = 65536 }, p("sites[0].db.port", "must be 1-65535")},
		{"db host:port shared", func(r *Recipe) { r.Sites[1].DB.Host = "127.0.0.2" },
			p("sites[1].db", `127.0.0.2:3306 already used by site "east"`)},
		{"db same host other port", func(r *Recipe) { r.Sites[1].DB.Host = "127.0.0.2"; r.Sites[1].DB.Port = 3307 }, nil},
		{"db host:port shared ignoring case", func(r *Recipe) {
			cloud(r)
			r.Sites = append(r.Sites, r.Sites[1])
			r.Sites[2].Name, r.Sites[2].DB.Host, r.Sites[2].DB.ServerID, r.Sites[2].DB.GTIDDomainID = "north", "DB.west.example.com", 3, 3
		}, p("sites[2].db", `db.west.example.com:3306 already used by site "west"`)},
		{"db user required", func(r *Recipe) { r.Sites[0].DB.User = "" }, p("sites[0].db.user", "required")},
		{"db password required", func(r *Recipe) { r.Sites[0].DB.Password = "" }, p("sites[0].db.password", "required")},
		{"db password literal", func(r *Recipe) { r.Sites[0].DB.Password = "s3cret" }, p("sites[0].db.password", literalMsg)},
		{"db password bad env", func(r *Recipe) { r.Sites[0].DB.Password = "env:DB-PASS" }, p("sites[0].db.password", errSecretEnv.Error())},
		{"db password relative file", func(r *Recipe) { r.Sites[0].DB.Password = "file:secrets/db" }, p("sites[0].db.password", errSecretFile.Error())},
		{"server id zero", func(r *Recipe) { r.Sites[0].DB.ServerID = 0 }, p("sites[0].db.server_id", "must be non-zero")},
		{"server id shared", func(r *Recipe) { r.Sites[1].DB.ServerID = 1 }, p("sites[1].db.server_id", `1 already used by site "east"`)},
		{"gtid domain shared", func(r *Recipe) { r.Sites[1].DB.GTIDDomainID = 1 }, p("sites[1].db.gtid_domain_id", `1 already used by site "east"`)},
		{"gtid domain zero is fine", func(r *Recipe) { r.Sites[1].DB.GTIDDomainID = 0 }, nil},

		// app tier
		{"endpoints required", func(r *Recipe) { r.Sites[0].App.Endpoints = nil }, p("sites[0].app.endpoints", "must list at least one endpoint")},
		{"endpoint not http", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"ftp://127.0.0.2"} },
			p("sites[0].app.endpoints[0]", "must be an absolute http or https URL")},
		{"endpoint without scheme", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"127.0.0.2:8080"} },
			p("sites[0].app.endpoints[0]", "must be an absolute http or https URL")},
		{"endpoint relative", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"/app"} },
			p("sites[0].app.endpoints[0]", "must be an absolute http or https URL")},
		{"endpoint with path", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"http://127.0.0.2:8080/app"} },
			p("sites[0].app.endpoints[0]", `must have no path other than "/"`)},
		{"endpoint with slash", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"https://127.0.0.2:8443/"} }, nil},
		{"endpoint with query", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"http://127.0.0.2:8080/?x=1"} },
			p("sites[0].app.endpoints[0]", "must have no query or fragment")},
		{"endpoint with fragment", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"http://127.0.0.2:8080#top"} },
			p("sites[0].app.endpoints[0]", "must have no query or fragment")},
		{"endpoint with credentials", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"http://admin:pw@127.0.0.2:8080"} },
			p("sites[0].app.endpoints[0]", "must not contain user information")},
		{"endpoint port zero", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"http://127.0.0.2:0"} },
			p("sites[0].app.endpoints[0]", "must have a port 1-65535")},
		{"endpoint port too big", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"http://127.0.0.2:65536"} },
			p("sites[0].app.endpoints[0]", "must have a port 1-65535")},
		{"endpoint bad host", func(r *Recipe) { r.Sites[0].App.Endpoints = []string{"http://a_b:80"} },
			p("sites[0].app.endpoints[0]", "must have a valid host")},
		{"endpoint shared by local sites", func(r *Recipe) { r.Sites[1].App.Endpoints = []string{"http://127.0.0.2:8080"} },
			p("sites[1].app.endpoints[0]", `127.0.0.2:8080 already used by site "east"`)},
		{"endpoint default port shared", func(r *Recipe) {
			r.Sites[0].App.Endpoints = []string{"http://127.0.0.2"}
			r.Sites[1].App.Endpoints = []string{"http://127.0.0.3:8080", "HTTP://127.0.0.2:80/"}
		}, p("sites[1].app.endpoints[1]", `127.0.0.2:80 already used by site "east"`)},
		{"endpoint listed twice", func(r *Recipe) {
			r.Sites[0].App.Endpoints = []string{"http://127.0.0.2:8080", "http://127.0.0.2:8080/"}
		},
			p("sites[0].app.endpoints[1]", "duplicate endpoint 127.0.0.2:8080")},
		{"cloud sites may share an endpoint", func(r *Recipe) {
			cloud(r)
			r.Sites = append(r.Sites, r.Sites[1])
			r.Sites[2].Name, r.Sites[2].DB.Port, r.Sites[2].DB.ServerID, r.Sites[2].DB.GTIDDomainID = "north", 3307, 3, 3
		}, nil},
		{"instances zero", func(r *Recipe) { r.Sites[0].App.Instances = 0 }, p("sites[0].app.instances", "must be 1-100")},
		{"instances too many", func(r *Recipe) { r.Sites[0].App.Instances = 101 }, p("sites[0].app.instances", "must be 1-100")},
		{"instances max", func(r *Recipe) { r.Sites[0].App.Instances = 100 }, nil},

		// replication
		{"no replication", func(r *Recipe) { r.Replication = nil }, nil},
		{"stream from required", func(r *Recipe) { r.Replication[0].From = "" }, p("replication[0].from", "required")},
		{"stream to unknown", func(r *Recipe) { r.Replication[0].To = "wets" }, p("replication[0].to", `unknown site "wets"`)},
		{"stream to itself", func(r *Recipe) { r.Replication[0].To = "east" }, p("replication[0].to", "must differ from from")},
		{"stream duplicate", func(r *Recipe) { r.Replication = append(r.Replication, r.Replication[0]) },
			p("replication[1]", "duplicate stream east -> west")},
		{"stream both ways", func(r *Recipe) { r.Replication = append(r.Replication, Stream{"west", "east"}) }, nil},
		{"site with two sources", func(r *Recipe) {
			south(r)
			r.Replication = append(r.Replication, Stream{"south", "west"})
		}, p("replication[1].to", `site "west" already receives from "east"`)},
		{"chain", func(r *Recipe) { south(r); r.Replication = append(r.Replication, Stream{"west", "south"}) }, nil},

		// dns
		{"zone required", func(r *Recipe) { r.DNS.Zone = "" }, p("dns.zone", "required")},
		{"zone bad", func(r *Recipe) { r.DNS.Zone = "drover..test" }, p("dns.zone", domainMsg)},
		{"record required", func(r *Recipe) { r.DNS.Record = "" }, p("dns.record", "required")},
		{"record bad", func(r *Recipe) { r.DNS.Record = "app drover.test." }, p("dns.record", domainMsg)},
		{"record outside zone", func(r *Recipe) { r.DNS.Record = "app.example.com." }, p("dns.record", `must be inside zone "drover.test."`)},
		{"record suffix is not zone", func(r *Recipe) { r.DNS.Record = "appdrover.test." }, p("dns.record", `must be inside zone "drover.test."`)},
		{"record is zone apex", func(r *Recipe) { r.DNS.Record = "drover.test." }, nil},
		{"record case differs", func(r *Recipe) { r.DNS.Record = "App.Drover.TEST." }, nil},
		{"ttl zero", func(r *Recipe) { r.DNS.TTL = 0 }, p("dns.ttl", "must be 1-86400")},
		{"ttl too big", func(r *Recipe) { r.DNS.TTL = 86401 }, p("dns.ttl", "must be 1-86400")},
		{"driver required", func(r *Recipe) { r.DNS.Driver = "" }, p("dns.driver", "required")},
		{"driver unknown", func(r *Recipe) { r.DNS.Driver = "bind" }, p("dns.driver", "must be one of rfc2136, route53, designate")},
		{"rfc2136 server required", func(r *Recipe) { r.DNS.Server = "" }, p("dns.server", "required for driver rfc2136")},
		{"rfc2136 server without port", func(r *Recipe) { r.DNS.Server = "127.0.0.1" }, p("dns.server", "must be host:port")},
		{"rfc2136 server bad port", func(r *Recipe) { r.DNS.Server = "127.0.0.1:dns" }, p("dns.server", "must be host:port")},
		{"rfc2136 server port zero", func(r *Recipe) { r.DNS.Server = "127.0.0.1:0" }, p("dns.server", "port must be 1-65535")},
		{"rfc2136 server port too big", func(r *Recipe) { r.DNS.Server = "ns1.example.com:65536" }, p("dns.server", "port must be 1-65535")},
		{"rfc2136 server IPv6", func(r *Recipe) { r.DNS.Server = "[::1]:53" }, nil},
		{"tsig name required", func(r *Recipe) { r.DNS.TSIG.Name = "" }, p("dns.tsig.name", "required for driver rfc2136")},
		{"tsig name bad", func(r *Recipe) { r.DNS.TSIG.Name = "drover key" }, p("dns.tsig.name", domainMsg)},
		{"tsig algorithm required", func(r *Recipe) { r.DNS.TSIG.Algorithm = "" }, p("dns.tsig.algorithm", "required for driver rfc2136")},
		{"tsig algorithm unknown", func(r *Recipe) { r.DNS.TSIG.Algorithm = "hmac-md5" },
			p("dns.tsig.algorithm", "must be one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512")},
		{"tsig algorithm sha512", func(r *Recipe) { r.DNS.TSIG.Algorithm = "hmac-sha512" }, nil},
		{"tsig secret required", func(r *Recipe) { r.DNS.TSIG.Secret = "" }, p("dns.tsig.secret", "required for driver rfc2136")},
		{"tsig secret literal", func(r *Recipe) { r.DNS.TSIG.Secret = "c2VjcmV0" }, p("dns.tsig.secret", literalMsg)},
		{"route53 zone id required", func(r *Recipe) { r.DNS.Driver = "route53" }, p("dns.zone_id", "required for driver route53")},
		{"designate zone id required", func(r *Recipe) { r.DNS.Driver = "designate" }, p("dns.zone_id", "required for driver designate")},
		{"route53 needs no tsig", func(r *Recipe) { r.DNS.Driver, r.DNS.ZoneID, r.DNS.Server, r.DNS.TSIG = "route53", "Z1", "", TSIG{} }, nil},
		{"route53 still rejects a literal", func(r *Recipe) { r.DNS.Driver, r.DNS.ZoneID, r.DNS.TSIG.Secret = "route53", "Z1", "abc" },
			p("dns.tsig.secret", literalMsg)},

		// probes
		{"probe kind required", func(r *Recipe) { r.Probes[0].Kind = "" }, p("probes[0].kind", "required")},
		{"probe kind unknown", func(r *Recipe) { r.Probes[0].Kind = "icmp" }, p("probes[0].kind", "must be one of http, tcp, mysql, dns")},
		{"http target not a path", func(r *Recipe) { r.Probes[0].Target = "healthz" }, p("probes[0].target", `must be a URL path starting with "/"`)},
		{"http target empty", func(r *Recipe) { r.Probes[0].Target = "" }, p("probes[0].target", `must be a URL path starting with "/"`)},
		{"http target URL", func(r *Recipe) { r.Probes[0].Target = "http://x/healthz" }, p("probes[0].target", `must be a URL path starting with "/"`)},
		{"http target host-relative", func(r *Recipe) { r.Probes[0].Target = "//x/healthz" }, p("probes[0].target", `must be a URL path starting with "/"`)},
		{"http target with query", func(r *Recipe) { r.Probes[0].Target = "/healthz?full=1" }, nil},
		{"tcp target required", func(r *Recipe) { r.Probes[1].Target = "" }, p("probes[1].target", "must be db, app or host:port")},
		{"tcp target app", func(r *Recipe) { r.Probes[1].Target = "app" }, nil},
		{"tcp target host:port", func(r *Recipe) { r.Probes[1].Target = "cache.internal:6379" }, nil},
		{"tcp target ip:port", func(r *Recipe) { r.Probes[1].Target = "127.0.0.9:11211" }, nil},
		{"tcp target other", func(r *Recipe) { r.Probes[1].Target = "web" }, p("probes[1].target", "must be db, app or host:port")},
		{"tcp target bad port", func(r *Recipe) { r.Probes[1].Target = "web:0" }, p("probes[1].target", "must be db, app or host:port")},
		{"mysql target db", func(r *Recipe) { r.Probes[2].Target = "db" }, nil},
		{"mysql target app", func(r *Recipe) { r.Probes[2].Target = "app" }, p("probes[2].target", "must be empty or db")},
		{"dns target fqdn", func(r *Recipe) { r.Probes[3].Target = "app.drover.test." }, nil},
		{"dns target bad", func(r *Recipe) { r.Probes[3].Target = "/healthz" }, p("probes[3].target", "must be empty or a domain name")},
		{"interval zero", func(r *Recipe) { r.Probes[0].Interval = 0 }, p("probes[0].interval", "must be > 0")},
		{"interval negative", func(r *Recipe) { r.Probes[0].Interval = -1 }, p("probes[0].interval", "must be > 0")},
		{"timeout zero", func(r *Recipe) { r.Probes[0].Timeout = 0 }, p("probes[0].timeout", "must be > 0")},
		{"timeout equals interval", func(r *Recipe) { r.Probes[0].Timeout = r.Probes[0].Interval },
			p("probes[0].timeout", "must be less than interval (5s)")},
		{"timeout above interval", func(r *Recipe) { r.Probes[3].Timeout = Duration(time.Minute) },
			p("probes[3].timeout", "must be less than interval (10s)")},
		{"failure threshold", func(r *Recipe) { r.Probes[0].FailureThreshold = 0 }, p("probes[0].failure_threshold", "must be >= 1")},
		{"recovery threshold", func(r *Recipe) { r.Probes[0].RecoveryThreshold = -2 }, p("probes[0].recovery_threshold", "must be >= 1")},
		{"no probes", func(r *Recipe) { r.Probes = nil }, nil},

		// policy
		{"max rpo negative", func(r *Recipe) { r.Policy.MaxRPO = -1 }, p("policy.max_rpo", "must not be negative")},
		{"auto failover needs max rpo", func(r *Recipe) { r.Policy.AutoFailover = true; r.Policy.MaxRPO = 0 },
			p("policy.max_rpo", "must be > 0 when auto_failover is true")},
		{"auto failover", func(r *Recipe) { r.Policy.AutoFailover = true }, nil},
		{"manual failover may have zero max rpo", func(r *Recipe) { r.Policy.MaxRPO = 0 }, nil},
		{"rto zero", func(r *Recipe) { r.Policy.SLA.RTO = 0 }, p("policy.sla.rto", "must be > 0")},
		{"rpo negative", func(r *Recipe) { r.Policy.SLA.RPO = Duration(-time.Second) }, p("policy.sla.rpo", "must be > 0")},

		// alerts (webhook routes)
		{"a failover route", route(func(*AlertRoute) {}), nil},
		{"auth without routes", func(r *Recipe) { r.Alerts.Auth.HMACSecret = "file:/etc/drover/webhook.key" }, nil},
		{"hmac only", func(r *Recipe) { withRoutes(r, siteDown()); r.Alerts.Auth = AlertAuth{HMACSecret: "env:HMAC"} }, nil},
		{"routes need auth", func(r *Recipe) { withRoutes(r, siteDown()); r.Alerts.Auth = AlertAuth{} },
			p("alerts.auth", "required when alerts.routes is set: bearer_token or hmac_secret")},
		{"bearer token literal", func(r *Recipe) { withRoutes(r, siteDown()); r.Alerts.Auth.BearerToken = "s3cret-token" },
			p("alerts.auth.bearer_token", literalMsg)},
		{"hmac secret relative file", func(r *Recipe) { r.Alerts.Auth.HMACSecret = "file:webhook.key" },
			p("alerts.auth.hmac_secret", errSecretFile.Error())},

		{"match required", route(func(rt *AlertRoute) { rt.Match = nil }),
			p("alerts.routes[0].match", "must have at least one label matcher, e.g. {alertname: SiteDown}")},
		{"label name bad", route(func(rt *AlertRoute) { rt.Match["alert-name"] = "x" }),
			p("alerts.routes[0].match.alert-name", "label name must match [a-zA-Z_][a-zA-Z0-9_]*")},
		{"label name quoted in path", route(func(rt *AlertRoute) { rt.Match["a b"] = "x" }),
			p(`alerts.routes[0].match."a b"`, "label name must match [a-zA-Z_][a-zA-Z0-9_]*")},
		{"label value empty", route(func(rt *AlertRoute) { rt.Match["severity"] = "" }),
			p("alerts.routes[0].match.severity", "must not be empty")},
		{"app of another recipe", route(func(rt *AlertRoute) { rt.Match["app"] = "shop" }),
			p("alerts.routes[0].match.app", "never matches: this recipe is for app petclinic")},
		{"app of this recipe", route(func(rt *AlertRoute) { rt.Match["app"] = "petclinic" }), nil},

		{"action required", route(func(rt *AlertRoute) { rt.Action = "" }), p("alerts.routes[0].action", "required")},
		{"action unknown", route(func(rt *AlertRoute) { rt.Action = "reboot" }),
			p("alerts.routes[0].action", "must be one of failover, switchover, drill, notify-only")},
		{"switchover", route(func(rt *AlertRoute) { rt.Action = ActionSwitchover }), nil},
		{"drill", route(func(rt *AlertRoute) { rt.Action = ActionDrill; delete(rt.Match, "site") }), nil},
		{"notify-only", route(func(rt *AlertRoute) { rt.Action = ActionNotifyOnly }), nil},
		{"drill takes no sites", route(func(rt *AlertRoute) { rt.Action, rt.From, rt.To = ActionDrill, "east", "west" }), Problems{
			{"alerts.routes[0].from", "only for actions failover and switchover"},
			{"alerts.routes[0].to", "only for actions failover and switchover"}}},

		{"from and to", route(func(rt *AlertRoute) { rt.From, rt.To = "east", "west" }), nil},
		{"from unknown", route(func(rt *AlertRoute) { rt.From = "nort" }), p("alerts.routes[0].from", `unknown site "nort"`)},
		{"to unknown", route(func(rt *AlertRoute) { rt.To = "wets" }), p("alerts.routes[0].to", `unknown site "wets"`)},
		{"to equals from", route(func(rt *AlertRoute) { rt.From, rt.To = "west", "west" }),
			p("alerts.routes[0].to", "must differ from from (west)")},
		{"to equals the site matched", route(func(rt *AlertRoute) { rt.To = "east" }),
			p("alerts.routes[0].to", "must differ from from (east)")},
		{"to not derivable", func(r *Recipe) {
			south(r)
			rt := siteDown()
			rt.From = "south"
			withRoutes(r, rt)
		}, p("alerts.routes[0].to", "required: the recipe does not tell which site takes over from south")},
		{"to derived from the stream", func(r *Recipe) {
			south(r)
			rt := siteDown()
			rt.From = "east"
			withRoutes(r, rt)
		}, nil},

		{"same matchers twice", func(r *Recipe) {
			second := siteDown()
			second.Action = ActionNotifyOnly
			withRoutes(r, siteDown(), second)
		}, p("alerts.routes[1].match", "never used: alerts.routes[0] has the same matchers")},
		{"every problem at once", func(r *Recipe) {
			r.Alerts = Alerts{Routes: []AlertRoute{{Action: "x"}, {Match: map[string]string{"Site": ""}, Action: ActionFailover, From: "nort"}}}
		}, Problems{
			{"alerts.auth", "required when alerts.routes is set: bearer_token or hmac_secret"},
			{"alerts.routes[0].match", "must have at least one label matcher, e.g. {alertname: SiteDown}"},
			{"alerts.routes[0].action", "must be one of failover, switchover, drill, notify-only"},
			{"alerts.routes[1].match.Site", "must not be empty"},
			{"alerts.routes[1].from", `unknown site "nort"`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := wantValid()
			tt.mutate(r)
			err := r.Validate()
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, tt.want, err)
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	r := &Recipe{
		App:         "Bad",
		Sites:       []Site{{Name: "a", Provider: "local", Address: "127.0.0.1", DB: Database{Port: 3306, ServerID: 1}}},
		Replication: []Stream{{From: "a", To: "b"}},
		Probes:      []Probe{{Kind: "http"}},
	}
	assert.Equal(t, Problems{
		{"app", nameMsg},
		{"primary", "required"},
		{"sites[0].db.user", "required"},
		{"sites[0].db.password", "required"},
		{"sites[0].app.endpoints", "must list at least one endpoint"},
		{"sites[0].app.instances", "must be 1-100"},
		{"replication[0].to", `unknown site "b"`},
		{"dns.zone", "required"},
		{"dns.record", "required"},
		{"dns.ttl", "must be 1-86400"},
		{"dns.driver", "required"},
		{"probes[0].target", `must be a URL path starting with "/"`},
		{"probes[0].interval", "must be > 0"},
		{"probes[0].timeout", "must be > 0"},
		{"probes[0].failure_threshold", "must be >= 1"},
		{"probes[0].recovery_threshold", "must be >= 1"},
		{"policy.sla.rto", "must be > 0"},
		{"policy.sla.rpo", "must be > 0"},
	}, r.Validate())

	r.ApplyDefaults()
	assert.Equal(t, Problems{
		{"app", nameMsg},
		{"primary", "required"},
		{"sites[0].db.user", "required"},
		{"sites[0].db.password", "required"},
		{"sites[0].app.endpoints", "must list at least one endpoint"},
		{"replication[0].to", `unknown site "b"`},
		{"dns.zone", "required"},
		{"dns.record", "required"},
		{"dns.driver", "required"},
		{"probes[0].target", `must be a URL path starting with "/"`},
	}, r.Validate())
}

func TestReplicationAccounts(t *testing.T) {
	r, err := Load("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if a := r.Sites[0].DB.StreamAccount(); a.User != r.Sites[0].DB.User || a.Password != r.Sites[0].DB.Password {
		t.Fatalf("stream account should default to the admin account: %+v", a)
	}
	r.Sites[0].DB.Stream = Account{User: "drover_stream", Password: "env:STREAM_PW"}
	r.Sites[1].DB.Apply = Account{User: "drover_apply"}
	r.Sites[1].DB.Stream = Account{Password: "literal"}
	err = r.Validate()
	ps, ok := err.(Problems)
	if !ok {
		t.Fatalf("want Problems, got %v", err)
	}
	got := ps.Error()
	for _, want := range []string{"sites[1].db.apply.password: required", "sites[1].db.stream.user: required when a password is given"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "sites[0].db.stream") {
		t.Errorf("a complete stream account was rejected:\n%s", got)
	}
	if a := r.Sites[0].DB.StreamAccount(); a.User != "drover_stream" {
		t.Fatalf("StreamAccount = %+v", a)
	}
}
