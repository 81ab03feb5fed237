package recipe

import (
	"path"
	"strings"
)

// TLS modes of a site's database connections (DBTLS.Mode).
const (
	// TLSVerifyFull verifies the server's certificate chain against DBTLS.CA
	// (or the system's roots when CA is empty) and that the certificate
	// names DBTLS.ServerName (default: the database host). The default.
	TLSVerifyFull = "verify-full"
	// TLSVerifyCA verifies the chain against DBTLS.CA (required) but not the
	// name: for servers whose certificates do not name the address Drover
	// dials.
	TLSVerifyCA = "verify-ca"
	// TLSSkipVerify encrypts without verifying the server at all (open to
	// a man in the middle); refused unless DBTLS.InsecureSkipVerify is true.
	TLSSkipVerify = "skip-verify"
)

// DBTLS is how every Drover connection to a site's database — probes,
// runbook steps, snapshots, the binlog stream read from it and the applier
// writing into it — uses TLS. A zero DBTLS (no block, or an empty one) is
// plain TCP; any field set turns TLS on, in mode TLSVerifyFull unless Mode
// says otherwise. Files are read, and Key resolved, on the worker that
// connects, each time it connects; none of their contents ever enters a
// workflow input or history.
type DBTLS struct {
	Mode string `yaml:"mode" json:"mode,omitempty"` // verify-full (default) | verify-ca | skip-verify
	// CA is the absolute path of a PEM file of the CA certificates to trust
	// (verify-full: default the system's roots; verify-ca: required).
	CA string `yaml:"ca" json:"ca,omitempty"`
	// Cert (absolute path of a PEM certificate chain) and Key (a secret
	// reference to its PEM private key) are the client certificate, for
	// accounts created REQUIRE X509 or REQUIRE SUBJECT; both or neither.
	Cert string    `yaml:"cert" json:"cert,omitempty"`
	Key  SecretRef `yaml:"key" json:"key,omitempty"`
	// ServerName is the name the server's certificate must carry in mode
	// verify-full (and is sent as SNI); default the database host.
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
	// InsecureSkipVerify must be true for mode skip-verify, and only then:
	// a recipe must say in words that it accepts an unverified server.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// IsZero reports whether no field is set: the site's database connections
// do not use TLS.
func (t DBTLS) IsZero() bool {
	return t.Mode == "" && t.CA == "" && t.Cert == "" && t.Key == "" && t.ServerName == "" && !t.InsecureSkipVerify
}

// EffectiveMode is Mode, or TLSVerifyFull when TLS is on and Mode is empty
// (a site whose defaults were not applied), or "" when TLS is off.
func (t DBTLS) EffectiveMode() string {
	if t.IsZero() {
		return ""
	}
	if t.Mode == "" {
		return TLSVerifyFull
	}
	return t.Mode
}

// problems adds every violation of t, under path p (e.g. "sites[0].db.tls").
// It never reads a file or a secret.
func (t DBTLS) problems(p string, ps *Problems) {
	if t.IsZero() {
		return
	}
	mode := t.EffectiveMode()
	switch mode {
	case TLSVerifyFull, TLSVerifyCA, TLSSkipVerify:
	default:
		ps.add(p+".mode", "must be one of verify-full, verify-ca, skip-verify")
	}
	for _, f := range []struct{ name, path string }{{"ca", t.CA}, {"cert", t.Cert}} {
		if f.path != "" && !cleanAbsPath(f.path) {
			ps.add(p+"."+f.name, "must be a clean absolute file path")
		}
	}
	switch {
	case mode == TLSVerifyCA && t.CA == "":
		ps.add(p+".ca", "required for mode verify-ca")
	case mode == TLSSkipVerify && t.CA != "":
		ps.add(p+".ca", "not used with mode skip-verify (nothing is verified): remove it, or use verify-ca")
	}
	switch {
	case mode == TLSSkipVerify && !t.InsecureSkipVerify:
		ps.add(p+".insecure_skip_verify", "must be true for mode skip-verify (the server is not verified)")
	case mode != TLSSkipVerify && t.InsecureSkipVerify:
		ps.add(p+".insecure_skip_verify", "only allowed with mode skip-verify")
	}
	switch {
	case t.Cert != "" && t.Key == "":
		ps.add(p+".key", "required when cert is given")
	case t.Cert == "" && t.Key != "":
		ps.add(p+".cert", "required when key is given")
	}
	if t.Key != "" {
		if err := t.Key.Validate(); err != nil {
			ps.add(p+".key", "%s", err.Error())
		}
	}
	if t.ServerName != "" && !validHost(t.ServerName) {
		ps.add(p+".server_name", hostMsg)
	}
}

// cleanAbsPath reports whether s is an absolute, clean file path.
func cleanAbsPath(s string) bool {
	return path.IsAbs(s) && path.Clean(s) == s && !strings.ContainsRune(s, 0)
}
