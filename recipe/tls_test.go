package recipe

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eastDB is the end of east's db block in testdata/valid.yaml, where a tls
// block is inserted.
const eastDB = "      password: env:DROVER_DB_PASSWORD\n    app:\n      endpoints: [\"http://127.0.0.2:8080\"]"

func withEastTLS(t *testing.T, block string) string {
	t.Helper()
	return validWith(t, eastDB, "      password: env:DROVER_DB_PASSWORD\n      tls:\n"+block+
		"    app:\n      endpoints: [\"http://127.0.0.2:8080\"]")
}

// A tls block parses strictly, gets mode verify-full by default, and
// survives the JSON round trip of workflow inputs; a site without one stays
// plain and adds nothing to its JSON (recorded histories are unchanged).
func TestParseDBTLS(t *testing.T) {
	r, err := Parse([]byte(withEastTLS(t, "        ca: /etc/drover/db-ca.pem\n        cert: /etc/drover/client.pem\n"+
		"        key: file:/etc/drover/client.key\n        server_name: db.east.example.net\n")))
	require.NoError(t, err)
	want := DBTLS{Mode: TLSVerifyFull, CA: "/etc/drover/db-ca.pem", Cert: "/etc/drover/client.pem",
		Key: "file:/etc/drover/client.key", ServerName: "db.east.example.net"}
	assert.Equal(t, want, r.Sites[0].DB.TLS)
	assert.True(t, r.Sites[1].DB.TLS.IsZero())
	assert.Equal(t, "", r.Sites[1].DB.TLS.EffectiveMode())

	b, err := json.Marshal(r.Sites[0].DB)
	require.NoError(t, err)
	var back Database
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, want, back.TLS)
	b, err = json.Marshal(r.Sites[1].DB)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "tls")

	ps := problemsOf(t, withEastTLS(t, "        ca: /x.pem\n        verify: true\n"))
	assert.Equal(t, "sites[0].db.tls.verify", ps[0].Path)
	assert.Contains(t, ps[0].Msg, "unknown field")
	ps = problemsOf(t, withEastTLS(t, "        insecure_skip_verify: yes\n"))
	assert.Equal(t, Problem{"sites[0].db.tls.insecure_skip_verify", "must be true or false"}, ps[0])
}

// Every rule of the tls block, each problem naming its field.
func TestValidateDBTLS(t *testing.T) {
	const keyLiteral = "-----BEGIN PRIVATE KEY-----MIIEv"
	p := func(field, msg string) Problems { return Problems{{"sites[0].db.tls." + field, msg}} }
	for _, tc := range []struct {
		name string
		tls  DBTLS
		want Problems
	}{
		{"system roots", DBTLS{Mode: TLSVerifyFull}, nil},
		{"full", DBTLS{Mode: TLSVerifyFull, CA: "/ca.pem", Cert: "/c.pem", Key: "env:DB_KEY", ServerName: "10.0.0.5"}, nil},
		{"mode left empty is verify-full", DBTLS{CA: "/ca.pem"}, nil},
		{"verify-ca", DBTLS{Mode: TLSVerifyCA, CA: "/ca.pem"}, nil},
		{"skip-verify acknowledged", DBTLS{Mode: TLSSkipVerify, InsecureSkipVerify: true}, nil},
		{"unknown mode", DBTLS{Mode: "require"}, p("mode", "must be one of verify-full, verify-ca, skip-verify")},
		{"verify-ca needs ca", DBTLS{Mode: TLSVerifyCA}, p("ca", "required for mode verify-ca")},
		{"skip-verify not acknowledged", DBTLS{Mode: TLSSkipVerify},
			p("insecure_skip_verify", "must be true for mode skip-verify (the server is not verified)")},
		{"insecure flag alone", DBTLS{InsecureSkipVerify: true}, p("insecure_skip_verify", "only allowed with mode skip-verify")},
		{"insecure flag with verify-ca", DBTLS{Mode: TLSVerifyCA, CA: "/ca.pem", InsecureSkipVerify: true},
			p("insecure_skip_verify", "only allowed with mode skip-verify")},
		{"skip-verify with ca", DBTLS{Mode: TLSSkipVerify, InsecureSkipVerify: true, CA: "/ca.pem"},
			p("ca", "not used with mode skip-verify (nothing is verified): remove it, or use verify-ca")},
		{"relative ca", DBTLS{CA: "certs/ca.pem"}, p("ca", "must be a clean absolute file path")},
		{"unclean cert", DBTLS{CA: "/ca.pem", Cert: "/etc/../c.pem", Key: "env:K"}, p("cert", "must be a clean absolute file path")},
		{"cert without key", DBTLS{Cert: "/c.pem"}, p("key", "required when cert is given")},
		{"key without cert", DBTLS{Key: "env:K"}, p("cert", "required when key is given")},
		{"literal key", DBTLS{Cert: "/c.pem", Key: keyLiteral},
			p("key", "must be a secret reference (env:NAME or file:/absolute/path), not a literal value")},
		{"bad server name", DBTLS{ServerName: "db east"}, p("server_name", hostMsg)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := wantValid()
			r.Sites[0].DB.TLS = tc.tls
			err := r.Validate()
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, tc.want, err)
			assert.False(t, strings.Contains(err.Error(), keyLiteral), "a literal key is echoed")
		})
	}
}

// ApplyDefaults sets the mode of a tls block only, and never overrides one.
func TestApplyDefaultsDBTLS(t *testing.T) {
	r := wantValid()
	r.Sites[0].DB.TLS = DBTLS{CA: "/ca.pem"}
	r.Sites[1].DB.TLS = DBTLS{Mode: TLSVerifyCA, CA: "/ca.pem"}
	r.ApplyDefaults()
	assert.Equal(t, TLSVerifyFull, r.Sites[0].DB.TLS.Mode)
	assert.Equal(t, TLSVerifyCA, r.Sites[1].DB.TLS.Mode)
	r.Sites[1].DB.TLS = DBTLS{}
	r.ApplyDefaults()
	assert.True(t, r.Sites[1].DB.TLS.IsZero())
}
