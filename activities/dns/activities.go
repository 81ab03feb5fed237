package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	mdns "github.com/miekg/dns"
	"go.temporal.io/sdk/activity"

	"github.com/drover-sre/drover/activities/internal/cloud"
	"github.com/drover-sre/drover/recipe"
)

// Application error types of the DNS activities, for a workflow's
// RetryPolicy.NonRetryableErrorTypes and for reports.
const (
	// ErrTypeAuth marks a refused TSIG key, credentials or permission. Not retryable.
	ErrTypeAuth = "DNSAuth"
	// ErrTypeConfig marks a request that can never succeed as configured
	// (unknown zone, bad address, name outside the zone). Not retryable.
	ErrTypeConfig = "DNSConfig"
	// ErrTypeThrottled marks a provider asking to slow down. Retryable.
	ErrTypeThrottled = "DNSThrottled"
	// ErrTypeTransient marks anything else: network, timeouts, server
	// failures, a concurrent change. Retryable.
	ErrTypeTransient = "DNSTransient"
)

// Defaults of Activities' zero fields.
const (
	// DefaultAnswersPollInterval is how often DNSAnswers asks again while it
	// waits for the servers to converge.
	DefaultAnswersPollInterval = time.Second
	// DefaultHeartbeatInterval is how often a DNS activity heartbeats while a
	// driver waits for a change to propagate.
	DefaultHeartbeatInterval = 5 * time.Second
	// MaxAnswersWait bounds AnswersInput.WaitFor.
	MaxAnswersWait = 30 * time.Minute
)

// Factory builds the Driver for a recipe's DNS section. It runs inside an
// activity, on the worker, so it may resolve secret references and read
// cloud credentials; nothing it resolves may reach a result or an error.
type Factory func(ctx context.Context, d recipe.DNS) (Driver, error)

// DefaultFactory builds the driver d.Driver names: RFC2136 with its TSIG
// secret resolved by NewRFC2136, Route53 with NewRoute53Client, Designate
// with NewDesignateClient. It builds a new client on every call (for
// Designate that is one Keystone token request per activity; a worker that
// calls often can inject a Factory that keeps one client). An unknown
// driver is a Config error.
func DefaultFactory(ctx context.Context, d recipe.DNS) (Driver, error) {
	switch d.Driver {
	case recipe.DriverRFC2136:
		return NewRFC2136(d)
	case recipe.DriverRoute53:
		c, err := NewRoute53Client(ctx)
		if err != nil {
			return nil, err
		}
		return &Route53{Client: c, ZoneID: d.ZoneID}, nil
	case recipe.DriverDesignate:
		c, err := NewDesignateClient(ctx)
		if err != nil {
			return nil, err
		}
		return &Designate{Client: c, ZoneID: d.ZoneID}, nil
	default:
		return nil, &Error{Op: "dns driver", Kind: Config, Msg: fmt.Sprintf("dns.driver %q is not one of rfc2136, route53, designate", d.Driver)}
	}
}

// Activities are the DNS traffic-switching activities: point the service
// name at a site, take an address out, read the record, and ask every
// authoritative server what it answers. Every method is idempotent and
// safe to retry. Errors are Temporal application errors of type
// ErrTypeAuth or ErrTypeConfig (non-retryable) or ErrTypeThrottled or
// ErrTypeTransient (retryable); none holds a secret. The zero value is ready
// to use.
type Activities struct {
	// Factories overrides the Factory of a driver name ("rfc2136",
	// "route53", "designate"); names it lacks use DefaultFactory.
	Factories map[string]Factory
	// QueryTimeout bounds each query DNSAnswers sends; zero means
	// DefaultQueryTimeout.
	QueryTimeout time.Duration
	// PollInterval is DNSAnswers' interval while waiting; zero means
	// DefaultAnswersPollInterval.
	PollInterval time.Duration
	// HeartbeatInterval is how often DNSPoint and DNSRemove heartbeat while
	// a driver works; zero means DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
}

// PointInput asks for the service record to hold exactly Addrs.
type PointInput struct {
	DNS recipe.DNS `json:"dns"`
	// Addrs are the IPv4 addresses the record must hold, e.g. the new
	// primary site's address.
	Addrs []string `json:"addrs"`
	// TTL of the record set; zero means DNS.TTL (or recipe.DefaultTTL).
	TTL int `json:"ttl,omitempty"`
}

// PointResult says what DNSPoint found and did. Previous and PreviousTTL are
// what the record held before this activity changed it (across all its
// attempts): pass them to DNSPoint to undo, or DNSRemove each of Addrs when
// Previous is empty.
type PointResult struct {
	Record      string   `json:"record"`
	Driver      string   `json:"driver"`
	Addrs       []string `json:"addrs"`
	TTL         int      `json:"ttl"`
	Previous    []string `json:"previous,omitempty"`
	PreviousTTL int      `json:"previous_ttl,omitempty"`
	Changed     bool     `json:"changed"`
}

// RemoveInput asks for Addr to be taken out of the service record.
type RemoveInput struct {
	DNS  recipe.DNS `json:"dns"`
	Addr string     `json:"addr"`
}

// RemoveResult says what DNSRemove found and did: Addrs is what the record
// holds now (empty when Addr was the last address), Previous what it held
// before this activity changed it.
type RemoveResult struct {
	Record      string   `json:"record"`
	Driver      string   `json:"driver"`
	Addrs       []string `json:"addrs,omitempty"`
	Previous    []string `json:"previous,omitempty"`
	PreviousTTL int      `json:"previous_ttl,omitempty"`
	Changed     bool     `json:"changed"`
}

// GetInput names the recipe whose service record DNSGet reads.
type GetInput struct {
	DNS recipe.DNS `json:"dns"`
}

// GetResult is the service record as the driver's provider holds it.
type GetResult struct {
	Record string   `json:"record"`
	Driver string   `json:"driver"`
	Addrs  []string `json:"addrs,omitempty"`
	TTL    int      `json:"ttl,omitempty"`
}

// AnswersInput says which servers DNSAnswers asks and, optionally, what it
// waits for.
type AnswersInput struct {
	DNS recipe.DNS `json:"dns"`
	// Name to ask for; empty means DNS.Record.
	Name string `json:"name,omitempty"`
	// Servers ("host:port") to ask. Empty means: for rfc2136, DNS.Server;
	// for the cloud drivers, the zone's NS set (DiscoverNS is implied).
	Servers []string `json:"servers,omitempty"`
	// DiscoverNS adds the zone's NS set, asked of DNS.Server (rfc2136) or
	// of Resolver, to Servers.
	DiscoverNS bool `json:"discover_ns,omitempty"`
	// NSPort is the port discovered name servers are asked on; zero means
	// DNS.Server's port for rfc2136 and 53 otherwise.
	NSPort int `json:"ns_port,omitempty"`
	// Resolver ("host:port") finds the NS set of a cloud zone; empty means
	// the first nameserver of /etc/resolv.conf.
	Resolver string `json:"resolver,omitempty"`
	// Want, when set, is the address set every server must answer for
	// Converged to be true.
	Want []string `json:"want,omitempty"`
	// WaitFor, with Want, makes DNSAnswers ask again every PollInterval
	// until every server answers Want or WaitFor has passed (at most
	// MaxAnswersWait). Zero asks once.
	WaitFor recipe.Duration `json:"wait_for,omitempty"`
}

// AnswersResult is what every server answered in the last round. Not
// converging is a result, not an error: the runbook decides.
type AnswersResult struct {
	Name      string   `json:"name"`
	Want      []string `json:"want,omitempty"`
	Answers   []Answer `json:"answers"`
	Converged bool     `json:"converged"` // Want was given and every server answered exactly Want
	Rounds    int      `json:"rounds"`
}

// pointProgress is the heartbeat of DNSPoint and DNSRemove: what the record
// held before the first attempt changed anything, so a retry after a change
// that went through still reports it.
type pointProgress struct {
	Previous RecordSet `json:"previous"`
}

// DNSGet reads the service record through the recipe's driver.
func (a *Activities) DNSGet(ctx context.Context, in GetInput) (GetResult, error) {
	res := GetResult{Driver: in.DNS.Driver}
	drv, name, err := a.driver(ctx, in.DNS)
	if err != nil {
		return res, activityError(ctx, err)
	}
	res.Record = name
	rs, err := drv.Get(ctx, name)
	if err != nil {
		return res, activityError(ctx, err)
	}
	res.Addrs, res.TTL = rs.Strings(), int(rs.TTL)
	return res, nil
}

// DNSPoint makes the service record hold exactly in.Addrs with the TTL
// asked. When it already does, nothing is sent and Changed is false. It
// heartbeats the record set it found before changing anything, so that a
// retry after a change that went through still returns Changed and the true
// Previous value for compensation. With the cloud drivers it returns only
// once the provider reports the change propagated, which can take up to
// DefaultSyncTimeout: give it a StartToCloseTimeout above that and a
// HeartbeatTimeout above HeartbeatInterval.
func (a *Activities) DNSPoint(ctx context.Context, in PointInput) (PointResult, error) {
	res := PointResult{Driver: in.DNS.Driver}
	ttl := in.TTL
	if ttl == 0 {
		ttl = in.DNS.TTL
	}
	if ttl == 0 {
		ttl = recipe.DefaultTTL
	}
	if ttl < 1 || ttl > 86400 {
		return res, activityError(ctx, &Error{Op: "dns point", Kind: Config, Msg: fmt.Sprintf("ttl %d is not 1-86400", ttl)})
	}
	want, err := ParseRecordSet(in.Addrs, uint32(ttl))
	if err != nil {
		return res, activityError(ctx, err)
	}
	if want.Empty() {
		return res, activityError(ctx, &Error{Op: "dns point", Kind: Config, Msg: "no addresses given"})
	}
	name, orig, prev, changed, err := a.change(ctx, in.DNS, func(drv Driver, name string) (RecordSet, bool, error) {
		return drv.Set(ctx, name, want)
	})
	res.Record = name
	if err != nil {
		return res, err
	}
	if !changed {
		prev = orig // nothing sent now; an earlier attempt may have changed orig
	}
	res.Addrs, res.TTL = want.Strings(), int(want.TTL)
	res.Previous, res.PreviousTTL = prev.Strings(), int(prev.TTL)
	res.Changed = changed || !orig.Equal(want)
	activity.GetLogger(ctx).Info("dns point", "record", name, "addrs", res.Addrs, "previous", res.Previous, "changed", res.Changed)
	return res, nil
}

// DNSRemove takes in.Addr out of the service record (deleting the record
// set when it was the last address). When the address is not there,
// nothing is sent and Changed is false. Like DNSPoint it heartbeats what it
// found first, so a retry reports the true Previous value.
func (a *Activities) DNSRemove(ctx context.Context, in RemoveInput) (RemoveResult, error) {
	res := RemoveResult{Driver: in.DNS.Driver}
	addr, err := netip.ParseAddr(in.Addr)
	if err != nil || !addr.Unmap().Is4() {
		return res, activityError(ctx, &Error{Op: "dns remove", Kind: Config, Msg: fmt.Sprintf("%q is not an IPv4 address", in.Addr)})
	}
	addr = addr.Unmap()
	name, orig, prev, changed, err := a.change(ctx, in.DNS, func(drv Driver, name string) (RecordSet, bool, error) {
		return drv.Remove(ctx, name, addr)
	})
	res.Record = name
	if err != nil {
		return res, err
	}
	// When nothing was sent now, prev is the current record set and an
	// earlier attempt may have removed addr from orig.
	res.Addrs = prev.Without(addr).Strings()
	if !changed {
		prev = orig
	}
	res.Previous, res.PreviousTTL = prev.Strings(), int(prev.TTL)
	res.Changed = changed || orig.Contains(addr)
	activity.GetLogger(ctx).Info("dns remove", "record", name, "addr", addr.String(), "previous", res.Previous, "changed", res.Changed)
	return res, nil
}

// DNSAnswers asks every authoritative server what it answers for the name
// (see AnswersInput for which servers) and, with Want and WaitFor, asks
// again until they all answer Want or WaitFor passes, heartbeating each
// round. Only a configuration that names no server is an error (DNSConfig);
// a failed NS discovery is retryable; unreachable servers are reported in
// their Answer.
func (a *Activities) DNSAnswers(ctx context.Context, in AnswersInput) (AnswersResult, error) {
	name := in.Name
	if name == "" {
		name = in.DNS.Record
	}
	res := AnswersResult{Name: fqdn(name)}
	if name == "" {
		return res, activityError(ctx, &Error{Op: "dns answers", Kind: Config, Msg: "no name to ask for (dns.record is empty)"})
	}
	var want RecordSet
	if len(in.Want) > 0 {
		var err error
		if want, err = ParseRecordSet(in.Want, 1); err != nil {
			return res, activityError(ctx, err)
		}
		res.Want = want.Strings()
	}
	servers, err := a.servers(ctx, in)
	if err != nil {
		return res, activityError(ctx, err)
	}
	wait := min(in.WaitFor.D(), MaxAnswersWait)
	if len(in.Want) == 0 {
		wait = 0
	}
	interval := a.PollInterval
	if interval <= 0 {
		interval = DefaultAnswersPollInterval
	}
	deadline := time.Now().Add(wait)
	maxRounds := int(wait/interval) + 1
	for {
		res.Answers = Answers(ctx, servers, res.Name, a.QueryTimeout)
		res.Rounds++
		res.Converged = len(in.Want) > 0 && Converged(res.Answers, want)
		if res.Converged || res.Rounds >= maxRounds || !time.Now().Add(interval).Before(deadline) {
			return res, nil
		}
		activity.RecordHeartbeat(ctx, res.Rounds)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, ctx.Err()
		case <-t.C:
		}
	}
}

// servers lists the servers DNSAnswers asks.
func (a *Activities) servers(ctx context.Context, in AnswersInput) ([]string, error) {
	d := in.DNS
	servers := append([]string(nil), in.Servers...)
	discover := in.DiscoverNS
	seed, port := in.Resolver, in.NSPort
	if d.Driver == recipe.DriverRFC2136 && d.Server != "" {
		if len(servers) == 0 {
			servers = []string{d.Server}
		}
		if seed == "" {
			seed = d.Server
		}
		if _, p, err := net.SplitHostPort(d.Server); err == nil && port == 0 {
			port, _ = strconv.Atoi(p)
		}
	} else if len(servers) == 0 {
		discover = true
	}
	if discover {
		if seed == "" {
			conf, err := mdns.ClientConfigFromFile("/etc/resolv.conf")
			if err != nil || len(conf.Servers) == 0 {
				return nil, &Error{Op: "dns answers", Name: d.Zone, Kind: Config, Msg: "no resolver to find the zone's name servers: set servers or resolver"}
			}
			seed = net.JoinHostPort(conf.Servers[0], conf.Port)
		}
		if d.Zone == "" {
			return nil, &Error{Op: "dns answers", Kind: Config, Msg: "dns.zone is empty: cannot find its name servers"}
		}
		ns, err := NameServers(ctx, seed, d.Zone, port, a.QueryTimeout)
		if err != nil {
			return nil, err
		}
		servers = append(servers, ns...)
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range servers {
		s = withPort(s, 53)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, &Error{Op: "dns answers", Name: d.Record, Kind: Config, Msg: "no server to ask"}
	}
	return out, nil
}

// driver builds the recipe's driver and returns it with the record's
// canonical name, checked to lie inside the zone.
func (a *Activities) driver(ctx context.Context, d recipe.DNS) (Driver, string, error) {
	name, err := checkName("dns", d.Record, d.Zone, "")
	if err != nil {
		return nil, "", err
	}
	f := a.Factories[d.Driver]
	if f == nil {
		f = DefaultFactory
	}
	drv, err := f(ctx, d)
	if err != nil {
		return nil, "", err
	}
	return drv, name, nil
}

// change runs one driver change for DNSPoint and DNSRemove: it builds the
// driver, finds the record set as it was before this activity's first
// attempt (see original), and runs do while heartbeating that value. It
// returns the record's name, that original record set, and do's previous
// record set and changed flag; err is already an activity error. When do
// changed nothing, prev is the current record set.
func (a *Activities) change(ctx context.Context, d recipe.DNS, do func(drv Driver, name string) (RecordSet, bool, error)) (name string, orig, prev RecordSet, changed bool, err error) {
	drv, name, err := a.driver(ctx, d)
	if err != nil {
		return name, orig, prev, false, activityError(ctx, err)
	}
	if orig, err = a.original(ctx, drv, name); err != nil {
		return name, orig, prev, false, activityError(ctx, err)
	}
	err = a.heartbeating(ctx, pointProgress{Previous: orig}, func() error {
		var err error
		prev, changed, err = do(drv, name)
		return err
	})
	if err != nil {
		return name, orig, prev, false, activityError(ctx, err)
	}
	return name, orig, prev, changed, nil
}

// original returns the record set from an earlier attempt's heartbeat, or
// reads it now and heartbeats it before anything is changed.
func (a *Activities) original(ctx context.Context, drv Driver, name string) (RecordSet, error) {
	if activity.HasHeartbeatDetails(ctx) {
		var p pointProgress
		if err := activity.GetHeartbeatDetails(ctx, &p); err == nil {
			return p.Previous, nil
		}
	}
	rs, err := drv.Get(ctx, name)
	if err != nil {
		return RecordSet{}, err
	}
	activity.RecordHeartbeat(ctx, pointProgress{Previous: rs})
	return rs, nil
}

// heartbeating runs fn, heartbeating details every HeartbeatInterval until
// fn returns.
func (a *Activities) heartbeating(ctx context.Context, details any, fn func() error) error {
	interval := a.HeartbeatInterval
	if interval <= 0 {
		interval = DefaultHeartbeatInterval
	}
	return cloud.Heartbeating(ctx, interval, fn, details)
}

// errTypePrefix starts the application error type of every DNS activity
// error: a Kind k gives the type k.ErrType(errTypePrefix), one of the
// ErrType* constants.
const errTypePrefix = "DNS"

// activityError turns a driver error into the Temporal error a workflow
// sees (cloud.ActivityError): Auth and Config are non-retryable, the rest
// retryable, and a cancelled activity returns its context's error.
func activityError(ctx context.Context, err error) error {
	return cloud.ActivityError(ctx, err, KindOf(err), errTypePrefix)
}
