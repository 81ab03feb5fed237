package dns

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/drover-sre/drover/recipe"
)

// DefaultExchangeTimeout bounds one DNS query or update exchange when the
// caller sets none.
const DefaultExchangeTimeout = 5 * time.Second

// tsigFudge is the clock skew, in seconds, a TSIG signature tolerates.
const tsigFudge = 300

// TSIGKey is a TSIG key: name, algorithm and base64 secret. Its String and
// GoString forms never show the secret.
type TSIGKey struct {
	Name      string // key name as the server knows it, e.g. "drover-key"
	Algorithm string // hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512
	Secret    string // base64, as tsig-keygen writes it
}

// String shows the key's name and algorithm, never its secret.
func (k TSIGKey) String() string { return fmt.Sprintf("tsig key %s (%s)", k.Name, k.Algorithm) }

// GoString is String, so that %#v does not show the secret either.
func (k TSIGKey) GoString() string { return k.String() }

// tsigAlgorithms maps recipe algorithm names to miekg/dns ones.
var tsigAlgorithms = map[string]string{
	"hmac-sha1":   mdns.HmacSHA1,
	"hmac-sha224": mdns.HmacSHA224,
	"hmac-sha256": mdns.HmacSHA256,
	"hmac-sha384": mdns.HmacSHA384,
	"hmac-sha512": mdns.HmacSHA512,
}

// RFC2136 manages A records of one zone with RFC 2136 dynamic updates sent to
// the zone's primary server and signed with a TSIG key. Reads are
// TSIG-signed, non-recursive queries to the same server, so a rejected key
// is reported on the first read, before anything changes. Every update
// carries a prerequisite that the record set is still what was read, so a
// concurrent change makes the update fail (Transient) instead of being
// overwritten; after an update the driver reads the record set again and
// fails unless the server now serves what was asked.
type RFC2136 struct {
	// Server is the zone primary's "host:port".
	Server string
	// Zone is the zone's FQDN, e.g. "drover.test.".
	Zone string
	// Key signs every query and update.
	Key TSIGKey
	// Net is "tcp" (the default) or "udp".
	Net string
	// Timeout bounds each exchange; zero means DefaultExchangeTimeout.
	Timeout time.Duration
}

// NewRFC2136 builds the driver for a recipe's rfc2136 DNS section, resolving
// the TSIG secret reference here, on the worker. Every problem (missing
// server, unknown algorithm, unresolvable or non-base64 secret) is a Config
// error that names the field but never the secret.
func NewRFC2136(d recipe.DNS) (*RFC2136, error) {
	fail := func(msg string, err error) (*RFC2136, error) {
		return nil, &Error{Op: "rfc2136 driver", Target: d.Server, Kind: Config, Msg: msg, Err: err}
	}
	if d.Server == "" {
		return fail("dns.server is required for driver rfc2136", nil)
	}
	if _, _, err := net.SplitHostPort(d.Server); err != nil {
		return fail("dns.server must be host:port", err)
	}
	if d.Zone == "" {
		return fail("dns.zone is required", nil)
	}
	if d.TSIG.Name == "" {
		return fail("dns.tsig.name is required for driver rfc2136", nil)
	}
	alg := d.TSIG.Algorithm
	if alg == "" {
		alg = recipe.DefaultTSIGAlgorithm
	}
	secret, err := d.TSIG.Secret.Resolve()
	if err != nil {
		return fail("dns.tsig.secret: "+err.Error(), err)
	}
	r := &RFC2136{Server: d.Server, Zone: fqdn(d.Zone), Key: TSIGKey{Name: d.TSIG.Name, Algorithm: alg, Secret: secret}}
	if err := r.checkKey(); err != nil {
		return nil, err
	}
	return r, nil
}

// checkKey returns a Config error unless the key is complete and usable.
func (r *RFC2136) checkKey() error {
	fail := func(msg string) error {
		return &Error{Op: "rfc2136 driver", Target: r.Server, Kind: Config, Msg: msg}
	}
	if r.Key.Name == "" {
		return fail("tsig key name is empty")
	}
	if _, ok := tsigAlgorithms[strings.ToLower(strings.TrimSuffix(r.Key.Algorithm, "."))]; !ok {
		return fail(fmt.Sprintf("tsig algorithm %q is not one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512", r.Key.Algorithm))
	}
	if r.Key.Secret == "" {
		return fail("tsig secret is empty")
	}
	if _, err := base64.StdEncoding.DecodeString(r.Key.Secret); err != nil {
		return fail("tsig secret is not valid base64")
	}
	return nil
}

// Get implements Driver with a TSIG-signed, non-recursive query for name's A
// records. It fails with Config when the server is not authoritative for the
// name or when the name is a CNAME.
func (r *RFC2136) Get(ctx context.Context, name string) (RecordSet, error) {
	n, err := r.prepare("dns query", name)
	if err != nil {
		return RecordSet{}, err
	}
	return r.get(ctx, n)
}

// Set implements Driver with one UPDATE that deletes the A record set of
// name and adds want, conditional on the set still being what was read.
func (r *RFC2136) Set(ctx context.Context, name string, want RecordSet) (RecordSet, bool, error) {
	n, err := r.prepare("dns update", name)
	if err != nil {
		return RecordSet{}, false, err
	}
	if want, err = checkWant("dns update", n, r.Server, want); err != nil {
		return RecordSet{}, false, err
	}
	prev, err := r.get(ctx, n)
	if err != nil {
		return RecordSet{}, false, err
	}
	if prev.Equal(want) {
		return prev, false, nil
	}
	m := r.updateMsg(n, prev)
	m.RemoveRRset([]mdns.RR{aHeader(n, 0)})
	m.Insert(aRecords(n, want))
	if err := r.update(ctx, n, m, want); err != nil {
		return prev, false, err
	}
	return prev, true, nil
}

// Remove implements Driver with one UPDATE that deletes addr (or the whole
// set when addr is its only address), conditional on the set still being
// what was read.
func (r *RFC2136) Remove(ctx context.Context, name string, addr netip.Addr) (RecordSet, bool, error) {
	n, err := r.prepare("dns update", name)
	if err != nil {
		return RecordSet{}, false, err
	}
	if addr, err = checkAddr("dns update", n, r.Server, addr); err != nil {
		return RecordSet{}, false, err
	}
	prev, err := r.get(ctx, n)
	if err != nil {
		return RecordSet{}, false, err
	}
	if !prev.Contains(addr) {
		return prev, false, nil
	}
	want := prev.Without(addr)
	m := r.updateMsg(n, prev)
	if want.Empty() {
		m.RemoveRRset([]mdns.RR{aHeader(n, 0)})
	} else {
		m.Remove(aRecords(n, RecordSet{Addrs: []netip.Addr{addr}}))
	}
	if err := r.update(ctx, n, m, want); err != nil {
		return prev, false, err
	}
	return prev, true, nil
}

// prepare checks the key and returns name as a canonical FQDN inside the zone.
func (r *RFC2136) prepare(op, name string) (string, error) {
	if err := r.checkKey(); err != nil {
		return "", err
	}
	return checkName(op, name, r.Zone, r.Server)
}

// updateMsg starts an UPDATE for the zone with the prerequisite that the A
// record set of name is exactly prev (or absent when prev is empty).
func (r *RFC2136) updateMsg(name string, prev RecordSet) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetUpdate(r.Zone)
	if prev.Empty() {
		m.RRsetNotUsed([]mdns.RR{aHeader(name, 0)})
	} else {
		m.Used(aRecords(name, prev))
	}
	return m
}

// update sends m, checks the answer and then reads name again to confirm
// that the server now serves want.
func (r *RFC2136) update(ctx context.Context, name string, m *mdns.Msg, want RecordSet) error {
	resp, err := r.exchange(ctx, m)
	if err := r.check("dns update", name, resp, err); err != nil {
		return err
	}
	got, err := r.get(ctx, name)
	if err != nil {
		return err
	}
	if !got.Equal(want) {
		return &Error{Op: "dns update", Name: name, Target: r.Server, Kind: Transient,
			Msg: fmt.Sprintf("server accepted the update but now answers %s, not %s", got, want)}
	}
	return nil
}

// get reads the A record set of the canonical name.
func (r *RFC2136) get(ctx context.Context, name string) (RecordSet, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	m.RecursionDesired = false
	resp, err := r.exchange(ctx, m)
	if err := r.check("dns query", name, resp, err); err != nil {
		return RecordSet{}, err
	}
	if !resp.Authoritative {
		return RecordSet{}, &Error{Op: "dns query", Name: name, Target: r.Server, Kind: Config,
			Msg: fmt.Sprintf("server is not authoritative for zone %s (is dns.server the zone's primary?)", r.Zone)}
	}
	var addrs []netip.Addr
	var ttl uint32
	for _, rr := range resp.Answer {
		if !strings.EqualFold(rr.Header().Name, name) {
			continue
		}
		switch v := rr.(type) {
		case *mdns.A:
			if a, ok := netip.AddrFromSlice(v.A); ok {
				addrs = append(addrs, a.Unmap())
				ttl = v.Hdr.Ttl
			}
		case *mdns.CNAME:
			return RecordSet{}, &Error{Op: "dns query", Name: name, Target: r.Server, Kind: Config,
				Msg: fmt.Sprintf("name is a CNAME to %s; Drover manages only A records", v.Target)}
		}
	}
	return NewRecordSet(addrs, ttl)
}

// exchange signs m with the key and sends it to the server.
func (r *RFC2136) exchange(ctx context.Context, m *mdns.Msg) (*mdns.Msg, error) {
	keyName := mdns.CanonicalName(r.Key.Name)
	alg := tsigAlgorithms[strings.ToLower(strings.TrimSuffix(r.Key.Algorithm, "."))]
	m.SetTsig(keyName, alg, tsigFudge, time.Now().Unix())
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultExchangeTimeout
	}
	network := r.Net
	if network == "" {
		network = "tcp"
	}
	c := &mdns.Client{Net: network, Timeout: timeout, TsigSecret: map[string]string{keyName: r.Key.Secret}}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, _, err := c.ExchangeContext(ctx, m, r.Server)
	return resp, err
}

// check turns an exchange outcome into nil or a classified *Error. A
// response that fails TSIG verification is an error even when its rcode says
// success: it may not come from the server that holds the key.
func (r *RFC2136) check(op, name string, resp *mdns.Msg, err error) error {
	fail := func(kind Kind, msg string, cause error) error {
		return &Error{Op: op, Name: name, Target: r.Server, Kind: kind, Msg: msg, Err: cause}
	}
	if resp == nil {
		if err == nil {
			err = errors.New("no response")
		}
		if ctxErr := contextError(err); ctxErr != nil {
			return fail(Transient, ctxErr.Error(), err)
		}
		return fail(Transient, err.Error(), err)
	}
	tsigErr := 0
	if t := resp.IsTsig(); t != nil {
		tsigErr = int(t.Error)
	}
	if tsigErr != mdns.RcodeSuccess {
		return fail(Auth, fmt.Sprintf("%s, TSIG error %s (TSIG key %s rejected: check its name, algorithm and secret)",
			rcodeName(resp.Rcode), rcodeName(tsigErr), r.Key.Name), err)
	}
	switch resp.Rcode {
	case mdns.RcodeSuccess:
	case mdns.RcodeNameError:
		if op == "dns query" {
			break // NXDOMAIN: the name has no records at all
		}
		return fail(Config, "NXDOMAIN", err)
	case mdns.RcodeRefused:
		if op == "dns query" {
			return fail(Config, fmt.Sprintf("REFUSED (does the server serve zone %s and answer this worker?)", r.Zone), err)
		}
		return fail(Auth, fmt.Sprintf("REFUSED (TSIG key %s rejected? the zone's allow-update or update-policy must grant it)", r.Key.Name), err)
	case mdns.RcodeNotAuth:
		return fail(Auth, fmt.Sprintf("NOTAUTH (TSIG key %s rejected, or server not authoritative for %s)", r.Key.Name, r.Zone), err)
	case mdns.RcodeNotZone:
		return fail(Config, fmt.Sprintf("NOTZONE (name is not in zone %s as the server sees it)", r.Zone), err)
	case mdns.RcodeNXRrset, mdns.RcodeYXRrset:
		return fail(Transient, fmt.Sprintf("%s (the record set changed since it was read; read it again)", rcodeName(resp.Rcode)), err)
	case mdns.RcodeFormatError, mdns.RcodeNotImplemented:
		return fail(Config, fmt.Sprintf("%s (the server does not accept this request)", rcodeName(resp.Rcode)), err)
	default:
		return fail(Transient, rcodeName(resp.Rcode), err)
	}
	if err != nil {
		// The rcode is fine but the response's TSIG did not verify.
		if errors.Is(err, mdns.ErrSig) || errors.Is(err, mdns.ErrTime) || errors.Is(err, mdns.ErrSecret) || errors.Is(err, mdns.ErrKeyAlg) {
			return fail(Auth, "response failed TSIG verification: "+err.Error(), err)
		}
		return fail(Transient, err.Error(), err)
	}
	return nil
}

// contextError returns the context error err stands for, if any.
func contextError(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("timeout: %w", context.DeadlineExceeded)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("timeout: %w", err)
	}
	return nil
}

// rcodeName names a DNS rcode, e.g. "REFUSED", or "RCODE17" when unknown.
func rcodeName(rcode int) string {
	if s, ok := mdns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rcode)
}

// aHeader is an A record of name without rdata, for whole-set operations.
func aHeader(name string, ttl uint32) mdns.RR {
	return &mdns.ANY{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl}}
}

// aRecords returns fresh A records of name for s (miekg/dns's update helpers
// rewrite the headers of what they are given).
func aRecords(name string, s RecordSet) []mdns.RR {
	out := make([]mdns.RR, len(s.Addrs))
	for i, a := range s.Addrs {
		out[i] = &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: s.TTL}, A: net.IP(a.AsSlice())}
	}
	return out
}
