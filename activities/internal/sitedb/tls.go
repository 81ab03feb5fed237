package sitedb

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/go-sql-driver/mysql"

	"github.com/drover-sre/drover/recipe"
)

// TLSConfig builds the TLS configuration of every connection to s's
// database from s.DB.TLS, or returns nil when that is zero (plain TCP). It
// reads the CA and certificate files and resolves the key reference now, on
// the calling worker, so a rotated file takes effect at the next connection.
// The result always names the server (ServerName), as go-mysql's binlog
// client needs; it never accepts TLS below 1.2. Errors are *ConfigError
// naming the site and the field (db.tls.ca, db.tls.cert, db.tls.key), never
// holding key material.
func TLSConfig(s recipe.Site) (*tls.Config, error) {
	t := s.DB.TLS
	mode := t.EffectiveMode()
	if mode == "" {
		return nil, nil
	}
	fail := func(field string, err error) error {
		return &ConfigError{What: "site " + s.Name + " db.tls." + field, Field: "db.tls." + field, Err: err}
	}
	host := s.DB.Host
	if host == "" {
		host = s.Address
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fail("ca", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fail("ca", fmt.Errorf("%s holds no PEM certificate", t.CA))
		}
	}
	if t.Cert != "" || t.Key != "" {
		certPEM, err := os.ReadFile(t.Cert)
		if err != nil {
			return nil, fail("cert", err)
		}
		keyPEM, err := t.Key.Resolve()
		if err != nil {
			return nil, fail("key", err)
		}
		pair, err := tls.X509KeyPair(certPEM, []byte(keyPEM))
		if err != nil {
			return nil, fail("cert", fmt.Errorf("%s with key %s: %w", t.Cert, t.Key, err))
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	switch mode {
	case recipe.TLSVerifyFull:
	case recipe.TLSVerifyCA:
		if cfg.RootCAs == nil {
			return nil, fail("ca", errors.New("required for mode verify-ca"))
		}
		// The chain is checked below instead of by crypto/tls, which would
		// check the name as well.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = verifyChain(cfg.RootCAs)
	case recipe.TLSSkipVerify:
		if !t.InsecureSkipVerify {
			return nil, fail("insecure_skip_verify", errors.New("must be true for mode skip-verify"))
		}
		cfg.InsecureSkipVerify = true
	default:
		return nil, fail("mode", fmt.Errorf("unknown mode %q", mode))
	}
	return cfg, nil
}

// verifyChain checks that the server's certificate chains up to roots,
// whatever name it carries (mode verify-ca).
func verifyChain(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: the server sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		return nil
	}
}

// TLSRefused reports whether err is a TLS failure no retry fixes: the
// server's certificate did not verify, the server refused the handshake
// (e.g. our client certificate), or it does not offer TLS at all.
func TLSRefused(err error) bool {
	var ve *tls.CertificateVerificationError
	var ae tls.AlertError
	return errors.As(err, &ve) || errors.As(err, &ae) || errors.Is(err, mysql.ErrNoTLS)
}
