package recipe

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// wantValid is testdata/valid.yaml after defaults.
func wantValid() *Recipe {
	site := func(i int, name, addr string) Site {
		return Site{
			Name: name, Provider: "local", Address: addr,
			DB: Database{
				Host: addr, Port: 3306, User: "drover", Password: "env:DROVER_DB_PASSWORD",
				ServerID: uint32(i + 1), GTIDDomainID: uint32(i + 1),
			},
			App: AppTier{Endpoints: []string{"http://" + addr + ":8080"}, Instances: 1},
		}
	}
	probe := func(kind, target string, interval, timeout time.Duration) Probe {
		return Probe{
			Kind: kind, Target: target, Interval: Duration(interval), Timeout: Duration(timeout),
			FailureThreshold: 3, RecoveryThreshold: 2,
		}
	}
	return &Recipe{
		App:         "petclinic",
		Primary:     "east",
		Sites:       []Site{site(0, "east", "127.0.0.2"), site(1, "west", "127.0.0.3")},
		Replication: []Stream{{From: "east", To: "west"}},
		DNS: DNS{
			Zone: "drover.test.", Record: "app.drover.test.", TTL: 30, Driver: "rfc2136",
			Server: "127.0.0.1:5354",
			TSIG:   TSIG{Name: "drover-key", Algorithm: "hmac-sha256", Secret: "file:/tmp/drover-dev/secrets/tsig.key"},
		},
		Probes: []Probe{
			probe("http", "/healthz", 5*time.Second, 2*time.Second),
			probe("tcp", "db", 5*time.Second, 2*time.Second),
			probe("mysql", "", 5*time.Second, 2*time.Second),
			probe("dns", "", 10*time.Second, 3*time.Second),
		},
		Policy: Policy{
			MaxRPO: Duration(30 * time.Second),
			SLA:    SLA{RTO: Duration(2 * time.Minute), RPO: Duration(30 * time.Second)},
		},
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

// problemsOf parses doc and returns its problems, failing if it parses.
func problemsOf(t *testing.T, doc string) Problems {
	t.Helper()
	r, err := Parse([]byte(doc))
	require.Error(t, err)
	assert.Nil(t, r)
	var ps Problems
	require.ErrorAs(t, err, &ps)
	require.NotEmpty(t, ps)
	return ps
}

func TestParseValid(t *testing.T) {
	r, err := Load("testdata/valid.yaml")
	require.NoError(t, err)
	assert.Equal(t, wantValid(), r)
	assert.NoError(t, r.Validate())
}

func TestJSONRoundTrip(t *testing.T) {
	r, err := Load("testdata/valid.yaml")
	require.NoError(t, err)
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var back Recipe
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, *r, back)
	assert.Contains(t, string(b), `"interval":"5s"`)
	assert.Contains(t, string(b), `"rto":"2m0s"`)
}

func TestYAMLRoundTrip(t *testing.T) {
	r, err := Load("testdata/valid.yaml")
	require.NoError(t, err)
	b, err := yaml.Marshal(r)
	require.NoError(t, err)
	back, err := Parse(b)
	require.NoError(t, err, string(b))
	assert.Equal(t, r, back)
}

const minimal = `
app: shop
primary: a
sites:
  - {name: a, provider: local, address: 127.0.0.10, db: {user: u, password: "env:P"}, app: {endpoints: [http://127.0.0.10]}}
  - {name: b, provider: aws, region: eu-west-1, address: b.example.com, db: {user: u, password: "env:P"}, app: {endpoints: [https://b.example.com/]}}
dns: {zone: example.com, record: shop.example.com, driver: route53, zone_id: Z123}
probes:
  - {kind: http, target: /}
policy:
  sla: {rpo: 10s}
`

func TestParseDefaults(t *testing.T) {
	r, err := Parse([]byte(minimal))
	require.NoError(t, err)

	assert.Equal(t, Database{Host: "127.0.0.10", Port: 3306, User: "u", Password: "env:P", ServerID: 1, GTIDDomainID: 1}, r.Sites[0].DB)
	assert.Equal(t, Database{Host: "b.example.com", Port: 3306, User: "u", Password: "env:P", ServerID: 2, GTIDDomainID: 2}, r.Sites[1].DB)
	assert.Equal(t, 1, r.Sites[0].App.Instances)
	assert.Nil(t, r.Replication)
	assert.Equal(t, DNS{Zone: "example.com.", Record: "shop.example.com.", TTL: 60, Driver: "route53", ZoneID: "Z123"}, r.DNS)
	assert.Equal(t, Probe{Kind: "http", Target: "/", Interval: Duration(5 * time.Second), Timeout: Duration(2 * time.Second),
		FailureThreshold: 3, RecoveryThreshold: 2}, r.Probes[0])
	assert.Equal(t, Policy{
		AutoFailover: false,
		MaxRPO:       Duration(10 * time.Second), // follows sla.rpo
		SLA:          SLA{RTO: Duration(2 * time.Minute), RPO: Duration(10 * time.Second)},
	}, r.Policy)

	again := *r
	again.ApplyDefaults()
	assert.Equal(t, *r, again, "ApplyDefaults is idempotent")
}

func TestApplyDefaultsKeepsValues(t *testing.T) {
	r := wantValid()
	r.Sites[0].DB.Host = "127.0.0.9"
	r.Sites[0].DB.ServerID = 7
	r.DNS.TSIG.Algorithm = "hmac-sha512"
	r.Probes[0].Timeout = Duration(time.Second)
	r.Replication = []Stream{}
	r.Probes = r.Probes[:1]
	want := *r
	want.Replication = nil
	r.ApplyDefaults()
	assert.Equal(t, want, *r)
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "   \n\n", "# only a comment\n", "---\n", "~\n", "null", "--- # nothing\n...\n"} {
		assert.Equal(t, Problems{{Msg: "recipe is empty"}}, problemsOf(t, doc), "%q", doc)
	}
}

func TestParseDocumentProblems(t *testing.T) {
	tests := []struct {
		name, doc string
		want      string
	}{
		{"two documents", "app: a\n---\napp: b\n", "recipe must be a single YAML document"},
		{"trailing document marker", "app: a\n---\n", "recipe must be a single YAML document"},
		{"list", "- app: a\n", "recipe must be a mapping of fields"},
		{"scalar", "petclinic\n", "recipe must be a mapping of fields"},
		{"syntax", "app: [a\n", "invalid YAML: line 1: did not find expected ',' or ']'"},
		{"tab indentation", "sites:\n\t- name: a\n", "invalid YAML: line 2: found character that cannot start any token"},
		{"unknown anchor", "app: *nope\n", "invalid YAML: unknown anchor 'nope' referenced"},
		{"too large", "app: " + strings.Repeat("a", MaxSize), "recipe is larger than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, Problems{{Msg: tt.want}}, problemsOf(t, tt.doc))
		})
	}
}

// validWith returns testdata/valid.yaml with old replaced by new (once).
func validWith(t *testing.T, old, new string) string {
	t.Helper()
	doc := readTestdata(t, "valid.yaml")
	require.Equal(t, 1, strings.Count(doc, old), "fixture must contain %q once", old)
	return strings.Replace(doc, old, new, 1)
}

func TestParseStructuralProblems(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // edit applied to valid.yaml
		want     Problems
	}{
		{"unknown top-level field", "app: petclinic\n", "app: petclinic\napps: x\n",
			Problems{{"apps", "unknown field (line 3)"}}},
		{"unknown site field", "    provider: local\n    address: 127.0.0.2\n", "    provider: local\n    address: 127.0.0.2\n    dbb: {}\n",
			Problems{{"sites[0].dbb", "unknown field (line 9)"}}},
		{"unknown nested field", "      user: drover\n      password: env:DROVER_DB_PASSWORD\n    app:\n      endpoints: [\"http://127.0.0.3:8080\"]",
			"      user: drover\n      password: env:DROVER_DB_PASSWORD\n      prot: 1\n    app:\n      endpoints: [\"http://127.0.0.3:8080\"]",
			Problems{{"sites[1].db.prot", "unknown field (line 20)"}}},
		{"unknown tsig field", "    name: drover-key\n", "    name: drover-key\n    key: abc\n",
			Problems{{"dns.tsig.key", "unknown field (line 35)"}}},
		{"unknown sla field", "    rpo: 30s\n", "    rpo: 30s\n    rtoo: 1m\n",
			Problems{{"policy.sla.rtoo", "unknown field (line 52)"}}},
		{"odd key is quoted", "app: petclinic\n", "app: petclinic\n\"a b\": 1\n",
			Problems{{`"a b"`, "unknown field (line 3)"}}},
		{"duplicate key", "app: petclinic\n", "app: petclinic\napp: other\n",
			Problems{{"app", "duplicate key (line 3, first at line 2)"}}},
		{"duplicate mapping", "    address: 127.0.0.3\n", "    address: 127.0.0.3\n    db: {port: abc}\n",
			Problems{{"sites[1].db.port", "must be an integer"}, {"sites[1].db", "duplicate key (line 18, first at line 17)"}}},
		{"string for int", "  ttl: 30\n", "  ttl: \"30\"\n", Problems{{"dns.ttl", "must be an integer"}}},
		{"float for int", "  ttl: 30\n", "  ttl: 30.5\n", Problems{{"dns.ttl", "must be an integer"}}},
		{"huge int", "  ttl: 30\n", "  ttl: 99999999999999999999\n", Problems{{"dns.ttl", "must be an integer"}}},
		{"int overflows", "  ttl: 30\n", "  ttl: 9223372036854775808\n",
			Problems{{"dns.ttl", "must be an integer -9223372036854775808 to 9223372036854775807"}}},
		{"bad duration", "    interval: 10s\n", "    interval: 5x\n", Problems{{"probes[3].interval", `invalid duration "5x"`}}},
		{"number duration", "    interval: 10s\n", "    interval: 10\n", Problems{{"probes[3].interval", `invalid duration "10"`}}},
		{"mapping duration", "    interval: 10s\n", "    interval: {s: 10}\n", Problems{{"probes[3].interval", `must be a duration such as "5s"`}}},
		{"yes is not a bool", "  auto_failover: false\n", "  auto_failover: yes\n", Problems{{"policy.auto_failover", "must be true or false"}}},
		{"list for string", "app: petclinic\n", "app: [petclinic]\n", Problems{{"app", "must be a string"}}},
		{"mapping for list", "replication:\n  - from: east\n    to: west\n", "replication: {from: east, to: west}\n",
			Problems{{"replication", "must be a list"}}},
		{"list for mapping", "policy:\n  auto_failover: false\n  sla:\n    rto: 2m\n    rpo: 30s\n", "policy: [a]\n",
			Problems{{"policy", "must be a mapping"}}},
		{"null list element", "  - kind: mysql\n", "  - ~\n", Problems{{"probes[2]", "must be a mapping"}}},
		{"nested list", `endpoints: ["http://127.0.0.2:8080"]`, `endpoints: [["http://127.0.0.2:8080"]]`,
			Problems{{"sites[0].app.endpoints[0]", "must be a string"}}},
		{"binary for string", "app: petclinic\n", "app: !!binary cGV0Y2xpbmlj\n", Problems{{"app", "must be a string"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, problemsOf(t, validWith(t, tt.old, tt.new)))
		})
	}
}

func TestParseTypeProblemsInSite(t *testing.T) {
	doc := validWith(t, "      user: drover\n      password: env:DROVER_DB_PASSWORD\n    app:\n      endpoints: [\"http://127.0.0.3:8080\"]",
		"      user: drover\n      password: env:DROVER_DB_PASSWORD\n      port: abc\n      server_id: -1\n      gtid_domain_id: 4294967296\n    app:\n      endpoints: [\"http://127.0.0.3:8080\"]\n      instances: 1.5")
	assert.Equal(t, Problems{
		{"sites[1].db.port", "must be an integer"},
		{"sites[1].db.server_id", "must be 0-4294967295"},
		{"sites[1].db.gtid_domain_id", "must be 0-4294967295"},
		{"sites[1].app.instances", "must be an integer"},
	}, problemsOf(t, doc))
}

func TestParseTypeProblemHidesDerivedProblems(t *testing.T) {
	// name is wrong-typed, so it is not also reported as required, and the
	// site names that refer to it are still checked.
	doc := validWith(t, "  - name: west\n", "  - name: {w: 1}\n")
	assert.Equal(t, Problems{
		{"sites[1].name", "must be a string"},
		{"replication[0].to", `unknown site "west"`},
	}, problemsOf(t, doc))
}

func TestParseAnchorsAndMerge(t *testing.T) {
	doc := `
app: petclinic
primary: east
x-db: &db {user: drover, password: "env:DROVER_DB_PASSWORD"}
sites:
  - name: east
    provider: &p local
    address: 127.0.0.2
    db: *db
    app: {endpoints: ["http://127.0.0.2:8080"]}
  - name: west
    provider: *p
    address: 127.0.0.3
    db:
      <<: *db
      port: 3306
    app: {endpoints: ["http://127.0.0.3:8080"]}
replication: [{from: east, to: west}]
dns:
  zone: drover.test
  record: app.drover.test
  ttl: 30
  driver: rfc2136
  server: 127.0.0.1:5354
  tsig: {name: drover-key, secret: "file:/tmp/drover-dev/secrets/tsig.key"}
probes:
  - &probe {kind: http, target: /healthz}
  - {<<: *probe, kind: tcp, target: db}
  - {kind: mysql}
  - {<<: [{kind: dns, interval: 10s}, {kind: http, timeout: 3s}]}
policy: {auto_failover: false, sla: {rto: 2m, rpo: 30s}}
`
	// x-db is not a field; everything else is valid.
	assert.Equal(t, Problems{{"x-db", "unknown field (line 4)"}}, problemsOf(t, doc))

	// An alias is checked against the field it is used for.
	doc = strings.Replace(doc, "x-db: &db", "app: &db", 1)
	doc = strings.Replace(doc, "app: petclinic\n", "", 1)
	assert.Equal(t, Problems{{"app", "must be a string"}}, problemsOf(t, doc))

	// With the anchor on the first site's db the recipe equals valid.yaml.
	doc = `
app: petclinic
primary: east
sites:
  - name: east
    provider: &p local
    address: 127.0.0.2
    db: &db {user: drover, password: "env:DROVER_DB_PASSWORD"}
    app: {endpoints: ["http://127.0.0.2:8080"]}
  - name: west
    provider: *p
    address: 127.0.0.3
    db:
      <<: *db
      port: 3306
    app: {endpoints: ["http://127.0.0.3:8080"]}
replication: [{from: east, to: west}]
dns:
  zone: drover.test
  record: app.drover.test
  ttl: 30
  driver: rfc2136
  server: 127.0.0.1:5354
  tsig: {name: drover-key, secret: "file:/tmp/drover-dev/secrets/tsig.key"}
probes:
  - &probe {kind: http, target: /healthz}
  - {<<: *probe, kind: tcp, target: db}
  - {kind: mysql}
  - {<<: [{kind: dns, interval: 10s}, {kind: http, timeout: 3s}]}
policy: {auto_failover: false, sla: {rto: 2m, rpo: 30s}}
`
	r, err := Parse([]byte(doc))
	require.NoError(t, err)
	assert.Equal(t, wantValid(), r)
}

func TestParseAliasCycle(t *testing.T) {
	doc := validWith(t, "probes:\n  - kind: http\n", "probes: &p\n  - kind: http\n    target: *p\n")
	ps := problemsOf(t, doc)
	assert.Contains(t, ps, Problem{"probes[0].target", "alias *p refers to a value that contains it"})

	doc = validWith(t, "  sla:\n", "  sla: &s\n    <<: *s\n")
	assert.Equal(t, Problems{{"policy.sla", "alias *s refers to a value that contains it"}}, problemsOf(t, doc))
}

func TestParseBillionLaughs(t *testing.T) {
	var b strings.Builder
	b.WriteString("app: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "x%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			fmt.Fprintf(&b, "*a%d, ", i-1)
		}
		b.WriteString("]\n")
	}
	// An expansion the schema follows: every site shares one huge endpoint list.
	b.WriteString("sites:\n  - &s {name: a, app: {endpoints: &e [")
	for i := 0; i < 5000; i++ {
		b.WriteString(`"http://127.0.0.1", `)
	}
	b.WriteString("]}}\n")
	for i := 0; i < 5000; i++ {
		b.WriteString("  - *s\n")
	}
	// The count stops the expansion at 100,000 values (an unbounded one
	// would run out the test's timeout); no wall-clock bound here: timing
	// belongs in benchmarks.
	ps := problemsOf(t, b.String())
	assert.Equal(t, Problems{{Msg: "recipe is too large: more than 100000 values, counting every use of an alias"}}, ps)

	// A bomb outside the fields is never expanded.
	small := strings.SplitAfter(b.String(), "sites:")[0]
	small = strings.TrimSuffix(small, "sites:")
	ps = problemsOf(t, small)
	assert.Contains(t, ps, Problem{"app", "must be a string"})
	assert.Contains(t, ps, Problem{"x9", "unknown field (line 10)"})
}

func TestParseBroken(t *testing.T) {
	ps := problemsOf(t, readTestdata(t, "broken.yaml"))
	want := Problems{
		{"app", "must be 1-31 lower-case letters, digits or dashes, starting with a letter"},
		{"primary", `unknown site "nort"`},
		{"sites[0].address", "must be an IPv4 address in 127.0.0.0/8"},
		{"sites[0].db.password", "must be a secret reference (env:NAME or file:/absolute/path), not a literal value"},
		{"sites[0].db.port", "must be 1-65535"},
		{"sites[0].app.endpoints[0]", "must be an absolute http or https URL"},
		{"sites[1].provider", "must be one of local, aws, openstack"},
		{"sites[1].dbb", "unknown field (line 18)"},
		{"sites[1].app.instances", "must be an integer"},
		{"sites[1].db.user", "required"},
		{"sites[1].db.password", "required"},
		{"replication[0].to", "must differ from from"},
		{"dns.record", `must be inside zone "drover.test."`},
		{"dns.server", "required for driver rfc2136"},
		{"dns.tsig.name", "required for driver rfc2136"},
		{"dns.tsig.secret", "required for driver rfc2136"},
		{"probes[0].target", `must be a URL path starting with "/"`},
		{"probes[0].interval", `invalid duration "5x"`},
	}
	assert.Equal(t, want, ps)
	assert.NotContains(t, ps.Error(), "hunter2")
	assert.Equal(t, len(want), strings.Count(ps.Error(), "\n")+1, "one problem per line")
}

func TestParseOrdersProblemsByLine(t *testing.T) {
	doc := `
policy: {sla: {rto: -1s}}
dns: {zone: example.com, record: a.example.com, driver: route53, zone_id: Z, ttl: 90000}
bogus: 1
app: "-x"
`
	assert.Equal(t, Problems{
		{"policy.sla.rto", "must be > 0"},
		{"dns.ttl", "must be 1-86400"},
		{"bogus", "unknown field (line 4)"},
		{"app", "must be 1-31 lower-case letters, digits or dashes, starting with a letter"},
		// Missing values come after the block that lacks them.
		{"primary", "required"},
		{"sites", "must list at least one site"},
	}, problemsOf(t, doc))
}

func TestParseSecretLiteralNeverShown(t *testing.T) {
	const pw = "correct-horse-battery"
	doc := validWith(t, "      password: env:DROVER_DB_PASSWORD\n    app:\n      endpoints: [\"http://127.0.0.3:8080\"]",
		"      password: "+pw+"\n    app:\n      endpoints: [\"http://127.0.0.3:8080\"]")
	doc = strings.Replace(doc, "file:/tmp/drover-dev/secrets/tsig.key", "file:"+pw, 1)
	ps := problemsOf(t, doc)
	assert.Equal(t, Problems{
		{"sites[1].db.password", "must be a secret reference (env:NAME or file:/absolute/path), not a literal value"},
		{"dns.tsig.secret", "file reference must be a clean absolute path"},
	}, ps)
	assert.NotContains(t, ps.Error(), pw)
	for _, p := range ps {
		assert.NotContains(t, p.Path+p.Msg, pw)
	}
}

func TestLoad(t *testing.T) {
	_, err := Load("testdata/nope.yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "testdata/nope.yaml")

	_, err = Load("testdata/broken.yaml")
	var ps Problems
	require.ErrorAs(t, err, &ps)
	assert.Len(t, ps, 18)
}

func TestProblemsError(t *testing.T) {
	ps := Problems{{"sites[1].db.port", "must be 1-65535"}, {"", "recipe is empty"}}
	assert.Equal(t, "sites[1].db.port: must be 1-65535\nrecipe is empty", ps.Error())
	assert.Equal(t, "sites[1].db.port: must be 1-65535", ps[0].String())
}
