package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority with one server and one client
// certificate, written as PEM files (keys 0600) into a directory. Nothing
// of it is trusted anywhere else.
type PKI struct {
	CA         string // CA certificate
	ServerCert string // server certificate for the hosts given to NewPKI
	ServerKey  string
	ClientCert string // client certificate, CN ClientCN
	ClientKey  string
}

// ClientCN is the common name of every PKI's client certificate.
const ClientCN = "drover-client"

// NewPKI makes a CA called name in dir, a server certificate valid for
// hosts (IP addresses or DNS names) and a client certificate, each valid
// for a day.
func NewPKI(dir, name string, hosts ...string) (*PKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &PKI{CA: filepath.Join(dir, name+"-ca.pem")}
	if err := writePEM(p.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certPath, keyPath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			for _, h := range hosts {
				if ip := net.ParseIP(h); ip != nil {
					tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
				} else {
					tmpl.DNSNames = append(tmpl.DNSNames, h)
				}
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		return writePEM(keyPath, "PRIVATE KEY", keyDER, 0o600)
	}
	p.ServerCert, p.ServerKey = filepath.Join(dir, name+"-server.pem"), filepath.Join(dir, name+"-server.key")
	p.ClientCert, p.ClientKey = filepath.Join(dir, name+"-client.pem"), filepath.Join(dir, name+"-client.key")
	if err := leaf(2, hostsOr(hosts, name+" server"), x509.ExtKeyUsageServerAuth, p.ServerCert, p.ServerKey); err != nil {
		return nil, err
	}
	if err := leaf(3, ClientCN, x509.ExtKeyUsageClientAuth, p.ClientCert, p.ClientKey); err != nil {
		return nil, err
	}
	return p, nil
}

func hostsOr(hosts []string, def string) string {
	if len(hosts) > 0 {
		return hosts[0]
	}
	return def
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// TLSArgs are the mariadbd options that serve TLS with p's server
// certificate and trust p's CA for client certificates.
func (p *PKI) TLSArgs() []string {
	return []string{"--ssl-ca=" + p.CA, "--ssl-cert=" + p.ServerCert, "--ssl-key=" + p.ServerKey}
}

// ServerTLS is a server-side configuration with p's server certificate
// that requires a client certificate signed by p's CA.
func (p *PKI) ServerTLS() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(p.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", p.CA)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}, nil
}

// TLSProxy terminates TLS on a loopback port and forwards every connection
// in clear to a backend: a stand-in for a TLS-only server (such as a
// Temporal cluster's frontend) in front of a plain test server.
type TLSProxy struct {
	// Addr is the proxy's host:port.
	Addr       string
	ln         net.Listener
	wg         sync.WaitGroup
	mu         sync.Mutex
	open       map[net.Conn]bool // nil once closed
	handshakes int
}

// StartTLSProxy listens on a free port of address with cfg (offering HTTP/2
// by ALPN, as gRPC requires) and forwards to backend. Stop it with Close.
func StartTLSProxy(address, backend string, cfg *tls.Config) (*TLSProxy, error) {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	ln, err := tls.Listen("tcp", net.JoinHostPort(address, "0"), cfg)
	if err != nil {
		return nil, err
	}
	p := &TLSProxy{Addr: net.JoinHostPort(address, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)), ln: ln, open: map[net.Conn]bool{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c.(*tls.Conn), backend)
			}()
		}
	}()
	return p, nil
}

// Handshakes is how many TLS handshakes the proxy completed.
func (p *TLSProxy) Handshakes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handshakes
}

func (p *TLSProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add && p.open == nil {
		return false // closed
	}
	if add {
		p.open[c] = true
	} else {
		delete(p.open, c)
	}
	return true
}

func (p *TLSProxy) forward(c *tls.Conn, backend string) {
	defer c.Close()
	if !p.track(c, true) {
		return
	}
	defer p.track(c, false)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	p.mu.Lock()
	p.handshakes++
	p.mu.Unlock()
	b, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	if !p.track(b, true) {
		return
	}
	defer p.track(b, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
	<-done
	c.Close()
	b.Close()
	<-done
}

// Close stops accepting, closes every forwarded connection and waits for
// the proxy's goroutines.
func (p *TLSProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.open {
		c.Close()
	}
	p.open = nil
	p.mu.Unlock()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// TemporalServerName is the name on the certificate TemporalTLS serves.
const TemporalServerName = "temporal.drover.test"

// TemporalTLS puts a TLS proxy on address in front of the Temporal frontend
// at backend — TLS only, a client certificate required, a certificate for
// TemporalServerName rather than the address — and points the SDK's
// environment configuration at it for the rest of the test (TEMPORAL_ADDRESS
// and the TEMPORAL_TLS_* variables, with t.Setenv). The proxy stops when the
// test ends.
func TemporalTLS(t testing.TB, address, backend string) (*PKI, *TLSProxy) {
	t.Helper()
	pki, err := NewPKI(t.TempDir(), "temporal", TemporalServerName)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := StartTLSProxy(address, backend, serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	t.Setenv("TEMPORAL_ADDRESS", proxy.Addr)
	t.Setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", pki.CA)
	t.Setenv("TEMPORAL_TLS_SERVER_NAME", TemporalServerName)
	t.Setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", pki.ClientCert)
	t.Setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", pki.ClientKey)
	return pki, proxy
}
