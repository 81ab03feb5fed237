package sitedb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
)

const (
	tlsPassword  = "pw-tls-7f3a"
	x509Password = "pw-x509-91c2"
)

// session opens s as its admin account and returns the session's TLS
// cipher and version ("" when the session is not encrypted).
func session(ctx context.Context, s recipe.Site) (cipher, version string, err error) {
	db, err := Open(s, Admin(s), 5*time.Second, 5*time.Second)
	if err != nil {
		return "", "", err
	}
	defer db.Close()
	var name string
	if err := db.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		return "", "", err
	}
	if err := db.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_version'").Scan(&name, &version); err != nil {
		return "", "", err
	}
	return cipher, version, nil
}

// TLS against a real MariaDB serving TLS with a throwaway CA: the right CA
// gives an encrypted session (Ssl_cipher set) in every mode that should
// accept the server; a wrong CA or a wrong name is refused with an error
// that says why and is classified Config (no retry fixes it); an account
// created REQUIRE SSL cannot log in without TLS; an account created
// REQUIRE SUBJECT logs in only with the client certificate.
func TestTLSAgainstRealMariaDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	const addr = "127.0.0.40"
	good, err := testenv.NewPKI(dir, "good", addr)
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.NewPKI(dir, "other", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := testenv.StartServer(ctx, addr, 40, good.TLSArgs()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if err := srv.Exec(ctx,
		"CREATE USER tls_user@'%' IDENTIFIED BY '"+tlsPassword+"' REQUIRE SSL",
		"GRANT SELECT ON *.* TO tls_user@'%'",
		"CREATE USER x509_user@'%' IDENTIFIED BY '"+x509Password+"' REQUIRE SUBJECT '/CN="+testenv.ClientCN+"'",
		"GRANT SELECT ON *.* TO x509_user@'%'"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DROVER_SITEDB_TLS_PW", tlsPassword)
	t.Setenv("DROVER_SITEDB_X509_PW", x509Password)
	site := func(user string, tls recipe.DBTLS) recipe.Site {
		pw := recipe.SecretRef("env:DROVER_SITEDB_TLS_PW")
		if user == "x509_user" {
			pw = "env:DROVER_SITEDB_X509_PW"
		}
		return recipe.Site{Name: "east", Address: addr,
			DB: recipe.Database{Host: addr, Port: srv.Config.Port, User: user, Password: pw, TLS: tls}}
	}

	for _, tc := range []struct {
		name string
		user string
		tls  recipe.DBTLS
	}{
		{"verify-full with the right CA", "tls_user", recipe.DBTLS{Mode: recipe.TLSVerifyFull, CA: good.CA}},
		{"mode left empty is verify-full", "tls_user", recipe.DBTLS{CA: good.CA}},
		{"verify-ca accepts another name", "tls_user", recipe.DBTLS{Mode: recipe.TLSVerifyCA, CA: good.CA, ServerName: "db.elsewhere.test"}},
		{"skip-verify", "tls_user", recipe.DBTLS{Mode: recipe.TLSSkipVerify, InsecureSkipVerify: true}},
		{"client certificate", "x509_user", recipe.DBTLS{CA: good.CA, Cert: good.ClientCert, Key: recipe.SecretRef("file:" + good.ClientKey)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cipher, version, err := session(ctx, site(tc.user, tc.tls))
			if err != nil {
				t.Fatal(err)
			}
			if cipher == "" || !strings.HasPrefix(version, "TLSv1.") {
				t.Fatalf("session not encrypted: Ssl_cipher %q, Ssl_version %q", cipher, version)
			}
		})
	}

	for _, tc := range []struct {
		name string
		user string
		tls  recipe.DBTLS
		want string
		kind Kind
	}{
		{"no TLS for a REQUIRE SSL account", "tls_user", recipe.DBTLS{}, "Access denied", Auth},
		{"wrong CA", "tls_user", recipe.DBTLS{CA: other.CA}, "certificate signed by unknown authority", Config},
		{"verify-ca with the wrong CA", "tls_user", recipe.DBTLS{Mode: recipe.TLSVerifyCA, CA: other.CA}, "certificate signed by unknown authority", Config},
		{"verify-full with another name", "tls_user", recipe.DBTLS{CA: good.CA, ServerName: "db.elsewhere.test"}, "wanted to match db.elsewhere.test", Config},
		{"REQUIRE SUBJECT without a client certificate", "x509_user", recipe.DBTLS{CA: good.CA}, "Access denied", Auth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := session(ctx, site(tc.user, tc.tls))
			if err == nil {
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if k := KindOf(err); k != tc.kind {
				t.Errorf("KindOf(%v) = %v, want %v", err, k, tc.kind)
			}
			if strings.Contains(err.Error(), tlsPassword) || strings.Contains(err.Error(), x509Password) {
				t.Errorf("error %q contains a password", err)
			}
		})
	}

	// A client certificate of another CA: the server refuses the login.
	_, _, err = session(ctx, site("x509_user", recipe.DBTLS{CA: good.CA, Cert: other.ClientCert, Key: recipe.SecretRef("file:" + other.ClientKey)}))
	if err == nil {
		t.Error("a client certificate of another CA was accepted")
	}
}

// TLSConfig refuses unusable files and references before any connection,
// naming the site and field and never showing key material; a zero block
// is plain TCP; the server name defaults to the database host.
func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	p, err := testenv.NewPKI(dir, "unit", "db.east.test")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	site := func(tls recipe.DBTLS) recipe.Site {
		return recipe.Site{Name: "east", Address: "10.0.0.5", DB: recipe.Database{Host: "db.east.test", Port: 3306, TLS: tls}}
	}
	if cfg, err := TLSConfig(site(recipe.DBTLS{})); cfg != nil || err != nil {
		t.Errorf("zero block: %v, %v; want plain TCP", cfg, err)
	}
	cfg, err := TLSConfig(site(recipe.DBTLS{CA: p.CA, Cert: p.ClientCert, Key: recipe.SecretRef("file:" + p.ClientKey)}))
	if err != nil || cfg.ServerName != "db.east.test" || cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.InsecureSkipVerify {
		t.Fatalf("full block: %+v, %v", cfg, err)
	}
	for _, tc := range []struct {
		tls  recipe.DBTLS
		want string
	}{
		{recipe.DBTLS{CA: filepath.Join(dir, "missing.pem")}, "site east db.tls.ca: open "},
		{recipe.DBTLS{CA: notPEM}, "site east db.tls.ca: " + notPEM + " holds no PEM certificate"},
		{recipe.DBTLS{Mode: recipe.TLSVerifyCA}, "site east db.tls.ca: required for mode verify-ca"},
		{recipe.DBTLS{Mode: recipe.TLSSkipVerify}, "site east db.tls.insecure_skip_verify: must be true"},
		{recipe.DBTLS{Mode: "sometimes"}, `site east db.tls.mode: unknown mode "sometimes"`},
		{recipe.DBTLS{Cert: p.ClientCert, Key: "env:DROVER_SITEDB_UNSET_KEY"}, "site east db.tls.key: resolve env:DROVER_SITEDB_UNSET_KEY"},
		{recipe.DBTLS{Cert: filepath.Join(dir, "missing.crt"), Key: recipe.SecretRef("file:" + p.ClientKey)}, "site east db.tls.cert: open "},
		{recipe.DBTLS{Cert: p.ServerCert, Key: recipe.SecretRef("file:" + p.ClientKey)}, "site east db.tls.cert: " + p.ServerCert + " with key file:"},
	} {
		_, err := TLSConfig(site(tc.tls))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %q", tc.tls, err, tc.want)
			continue
		}
		if KindOf(err) != Config {
			t.Errorf("%+v: kind %v, want Config", tc.tls, KindOf(err))
		}
		if strings.Contains(err.Error(), string(keyPEM[40:80])) {
			t.Errorf("error %q shows key material", err)
		}
	}
}
