package testenv

import (
	"io"
	"sort"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/drover-sre/drover/deploy/local/devstack"
)

// StackOptions is a dev stack in stateDir, with the binaries of binDir, on
// free ports, its sites east and west at the given loopback addresses, so
// it can run beside a developer's own stack and beside other tests'.
func StackOptions(stateDir, binDir, eastAddr, westAddr string) (devstack.Options, error) {
	o := devstack.DefaultOptions()
	o.StateDir, o.BinDir, o.Out = stateDir, binDir, io.Discard
	o.DrillAddress = "" // a test that drills gives its own
	o.StartTimeout = 2 * time.Minute
	bin, err := TemporalBinary()
	if err != nil {
		return o, err
	}
	o.TemporalBin = bin
	ports := make([]int, 9)
	for i := range ports {
		addr := "127.0.0.1"
		switch {
		case i >= 5 && i < 7:
			addr = eastAddr
		case i >= 7:
			addr = westAddr
		}
		if ports[i], err = FreePort(addr); err != nil {
			return o, err
		}
	}
	o.TemporalPort, o.UIPort, o.TemporalHTTPPort, o.TemporalMetricsPort, o.DNSPort = ports[0], ports[1], ports[2], ports[3], ports[4]
	o.Sites = []devstack.SiteSpec{
		{Name: "east", Address: eastAddr, DBPort: ports[5], AppPort: ports[6]},
		{Name: "west", Address: westAddr, DBPort: ports[7], AppPort: ports[8]},
	}
	return o, nil
}

// PublicAddrs asks an authoritative server (host:port) for name's A
// records without recursion, as a client resolving the public name afresh
// would see them; sorted.
func PublicAddrs(server, name string) ([]string, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	m.RecursionDesired = false
	in, _, err := (&mdns.Client{Timeout: time.Second}).Exchange(m, server)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range in.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	sort.Strings(out)
	return out, nil
}
