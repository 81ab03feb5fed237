package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// DefaultQueryTimeout bounds one query of Answers and NameServers when the
// caller sets none.
const DefaultQueryTimeout = 2 * time.Second

// maxNameServers bounds how many servers NameServers returns and Answers
// queries at once.
const maxNameServers = 32

// Answer is what one server answered for a name's A records. A server that
// could not be asked, or whose answer is not a usable authoritative answer,
// has Error set.
type Answer struct {
	Server        string   `json:"server"`               // host:port asked
	Addrs         []string `json:"addrs,omitempty"`      // A records for the name, ascending
	TTL           uint32   `json:"ttl,omitempty"`        // of the A records
	Rcode         string   `json:"rcode,omitempty"`      // e.g. "NOERROR", "NXDOMAIN"
	Authoritative bool     `json:"authoritative"`        // the AA bit was set
	Error         string   `json:"error,omitempty"`      // why this answer is not usable
	LatencyMS     int64    `json:"latency_ms"`           // time to the answer
	CNAME         string   `json:"cname,omitempty"`      // when the name is an alias
	Serial        uint32   `json:"soa_serial,omitempty"` // the zone's SOA serial, when the server sent it
	Truncated     bool     `json:"truncated,omitempty"`  // UDP answer was cut; it was asked again over TCP
}

// Matches reports whether a is a usable authoritative answer holding
// exactly the addresses of want (TTL not compared). An empty want matches an
// authoritative NXDOMAIN or an authoritative answer without A records.
func (a Answer) Matches(want RecordSet) bool {
	if a.Error != "" || !a.Authoritative {
		return false
	}
	got, err := ParseRecordSet(a.Addrs, 1)
	if err != nil {
		return false
	}
	return slices.Equal(got.Addrs, want.Addrs)
}

// Converged reports whether there is at least one answer and every answer
// Matches want.
func Converged(answers []Answer, want RecordSet) bool {
	if len(answers) == 0 {
		return false
	}
	for _, a := range answers {
		if !a.Matches(want) {
			return false
		}
	}
	return true
}

// Answers asks each server ("host:port"; a bare host means port 53), in
// parallel and without recursion, for the A records of name, and returns one
// Answer per server in the order given. It never fails as a whole: a server
// that cannot be asked gets an Answer with Error set. Each query is bounded
// by timeout (zero means DefaultQueryTimeout) and by ctx; a truncated UDP
// answer is asked again over TCP. At most 32 servers are asked; the rest get
// an Error.
func Answers(ctx context.Context, servers []string, name string, timeout time.Duration) []Answer {
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	name = fqdn(name)
	out := make([]Answer, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		if i >= maxNameServers {
			out[i] = Answer{Server: s, Error: fmt.Sprintf("not asked: more than %d servers", maxNameServers)}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = ask(ctx, withPort(s, 53), name, timeout)
		}()
	}
	wg.Wait()
	return out
}

// ask queries one server for name's A records.
func ask(ctx context.Context, server, name string, timeout time.Duration) Answer {
	a := Answer{Server: server}
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	m.RecursionDesired = false
	start := time.Now()
	resp, err := query(ctx, server, m, timeout, "udp")
	if err == nil && resp.Truncated {
		a.Truncated = true
		resp, err = query(ctx, server, m, timeout, "tcp")
	}
	a.LatencyMS = time.Since(start).Milliseconds()
	if err != nil {
		if c := contextError(err); c != nil {
			err = c
		}
		a.Error = err.Error()
		return a
	}
	a.Rcode = rcodeName(resp.Rcode)
	a.Authoritative = resp.Authoritative
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*mdns.SOA); ok {
			a.Serial = soa.Serial
		}
	}
	var addrs []netip.Addr
	for _, rr := range resp.Answer {
		if !strings.EqualFold(rr.Header().Name, name) {
			continue
		}
		switch v := rr.(type) {
		case *mdns.A:
			if ip, ok := netip.AddrFromSlice(v.A); ok {
				addrs = append(addrs, ip.Unmap())
				a.TTL = v.Hdr.Ttl
			}
		case *mdns.CNAME:
			a.CNAME = v.Target
		}
	}
	rs, _ := NewRecordSet(addrs, a.TTL)
	a.Addrs = rs.Strings()
	switch {
	case resp.Rcode != mdns.RcodeSuccess && resp.Rcode != mdns.RcodeNameError:
		a.Error = "server answered " + a.Rcode
	case !resp.Authoritative:
		a.Error = "answer is not authoritative (server does not serve the zone)"
	case a.CNAME != "":
		a.Error = "name is a CNAME to " + a.CNAME
	}
	return a
}

// query sends m to server over network, bounded by timeout and ctx.
func query(ctx context.Context, server string, m *mdns.Msg, timeout time.Duration, network string) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &mdns.Client{Net: network, Timeout: timeout}
	resp, _, err := c.ExchangeContext(ctx, m.Copy(), server)
	if err != nil {
		return nil, err
	}
	if resp.Id != m.Id {
		return nil, fmt.Errorf("answer id %d does not match query id %d", resp.Id, m.Id)
	}
	return resp, nil
}

// NameServers finds the authoritative servers of zone by asking server
// ("host:port": an authoritative server of the zone, or a recursive
// resolver) for the zone's NS records, then finding each name server's IPv4
// addresses: from the additional section of that answer, else by asking
// server for them, else through the system resolver. It returns
// "addr:port" strings, sorted and without duplicates, dialled on port (zero
// means 53: a lab server on another port passes its own). It fails when
// server gives no NS records or none of them has an address.
func NameServers(ctx context.Context, server, zone string, port int, timeout time.Duration) ([]string, error) {
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	if port <= 0 {
		port = 53
	}
	zone = fqdn(zone)
	server = withPort(server, 53)
	fail := func(msg string, err error) ([]string, error) {
		return nil, &Error{Op: "dns ns lookup", Name: zone, Target: server, Kind: Transient, Msg: msg, Err: err}
	}
	m := new(mdns.Msg)
	m.SetQuestion(zone, mdns.TypeNS) // recursion desired: a resolver resolves, an authoritative server ignores it
	resp, err := query(ctx, server, m, timeout, "tcp")
	if err != nil {
		return fail(err.Error(), err)
	}
	if resp.Rcode != mdns.RcodeSuccess {
		return fail("server answered "+rcodeName(resp.Rcode), nil)
	}
	glue := map[string][]netip.Addr{}
	for _, rr := range resp.Extra {
		if a, ok := rr.(*mdns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A); ok {
				glue[fqdn(a.Hdr.Name)] = append(glue[fqdn(a.Hdr.Name)], ip.Unmap())
			}
		}
	}
	var hosts []string
	for _, rr := range resp.Answer {
		if ns, ok := rr.(*mdns.NS); ok && strings.EqualFold(ns.Hdr.Name, zone) {
			hosts = append(hosts, fqdn(ns.Ns))
		}
	}
	if len(hosts) == 0 {
		return fail("no NS records for the zone", nil)
	}
	if len(hosts) > maxNameServers {
		hosts = hosts[:maxNameServers]
	}
	var out []string
	var missing []string
	for _, h := range hosts {
		addrs := glue[h]
		if len(addrs) == 0 {
			addrs = lookupA(ctx, server, h, timeout)
		}
		if len(addrs) == 0 {
			missing = append(missing, h)
		}
		for _, a := range addrs {
			out = append(out, net.JoinHostPort(a.String(), strconv.Itoa(port)))
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return fail(fmt.Sprintf("no address found for name servers %s", strings.Join(missing, ", ")), nil)
	}
	return out, nil
}

// lookupA finds host's IPv4 addresses: asked of server first, then through
// the system resolver.
func lookupA(ctx context.Context, server, host string, timeout time.Duration) []netip.Addr {
	m := new(mdns.Msg)
	m.SetQuestion(host, mdns.TypeA)
	var out []netip.Addr
	if resp, err := query(ctx, server, m, timeout, "tcp"); err == nil {
		for _, rr := range resp.Answer {
			if a, ok := rr.(*mdns.A); ok {
				if ip, ok := netip.AddrFromSlice(a.A); ok {
					out = append(out, ip.Unmap())
				}
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(lctx, "ip4", strings.TrimSuffix(host, "."))
	if err != nil {
		return nil
	}
	for _, ip := range ips {
		out = append(out, ip.Unmap())
	}
	return out
}

// withPort returns s as host:port, adding port when s has none.
func withPort(s string, port int) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), strconv.Itoa(port))
}
