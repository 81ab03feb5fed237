package probe

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/recipe"
)

// timeoutOr is d, or recipe.DefaultProbeTimeout when d is not positive.
func timeoutOr(d recipe.Duration) time.Duration {
	if d <= 0 {
		return recipe.DefaultProbeTimeout.D()
	}
	return d.D()
}

// HTTPInput is one HTTP check: GET URL.
type HTTPInput struct {
	Site string `json:"site"` // the site probed, echoed in the result
	URL  string `json:"url"`
	// ExpectStatus is the status that means healthy; 0 means any 2xx.
	ExpectStatus int `json:"expect_status,omitempty"`
	// BodyContains, when set, must occur in the body's first MiB.
	BodyContains string          `json:"body_contains,omitempty"`
	Timeout      recipe.Duration `json:"timeout,omitempty"` // default 2s
}

// HTTPResult is what one HTTP check saw; Up is the verdict.
type HTTPResult struct {
	Site    string `json:"site"`
	Vantage string `json:"vantage"`
	EndpointResult
}

// ProbeHTTP GETs in.URL once within the timeout and reports status, latency
// and the verdict. It never fails the activity for an unhealthy target.
func (a *Activities) ProbeHTTP(ctx context.Context, in HTTPInput) (HTTPResult, error) {
	timeout := timeoutOr(in.Timeout)
	hc := a.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: timeout}
	}
	return HTTPResult{Site: in.Site, Vantage: a.Vantage,
		EndpointResult: probeURL(ctx, hc, in.URL, timeout, in.ExpectStatus, in.BodyContains)}, nil
}

// TCPInput is one TCP check: connect to Address.
type TCPInput struct {
	Site    string          `json:"site"`
	Address string          `json:"address"`           // host:port
	Timeout recipe.Duration `json:"timeout,omitempty"` // default 2s
}

// TCPResult is what one TCP check saw: Up when the connection was accepted.
type TCPResult struct {
	Site      string `json:"site"`
	Vantage   string `json:"vantage"`
	Address   string `json:"address"`
	Up        bool   `json:"up"`
	LatencyMS int64  `json:"latency_ms"`
	Error     string `json:"error,omitempty"`
}

// ProbeTCP opens (and at once closes) a TCP connection to in.Address
// within the timeout. It never fails the activity for an unhealthy target.
func (a *Activities) ProbeTCP(ctx context.Context, in TCPInput) (TCPResult, error) {
	res := TCPResult{Site: in.Site, Vantage: a.Vantage, Address: in.Address}
	d := net.Dialer{Timeout: timeoutOr(in.Timeout)}
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", in.Address)
	res.LatencyMS = time.Since(start).Milliseconds()
	if err != nil {
		res.Error = describeNetError(err)
		return res, nil
	}
	c.Close()
	res.Up = true
	return res, nil
}

// MySQLInput is one database check of Site with its admin account.
type MySQLInput struct {
	Site recipe.Site `json:"site"`
	// Stream is the checkpoint key of the stream applied into Site
	// (replicate.StreamName); empty for a site nothing replicates into.
	Stream  string          `json:"stream,omitempty"`
	Timeout recipe.Duration `json:"timeout,omitempty"` // default 2s
}

// MySQLResult is what one database check saw. Up means the server answered;
// the replication fields are set when Stream was given and its checkpoint
// row exists.
type MySQLResult struct {
	Site          string `json:"site"`
	Vantage       string `json:"vantage"`
	Address       string `json:"address"`
	Up            bool   `json:"up"`
	ReadOnly      bool   `json:"read_only"`
	GTIDBinlogPos string `json:"gtid_binlog_pos,omitempty"`
	Stream        string `json:"stream,omitempty"`
	// CheckpointGTID is what the stream has applied (its checkpoint row).
	CheckpointGTID string    `json:"checkpoint_gtid,omitempty"`
	SourceTS       time.Time `json:"source_ts,omitzero"`
	AppliedAt      time.Time `json:"applied_at,omitzero"`
	// LagSeconds is the server's clock minus the source commit time of the
	// last applied transaction. It keeps growing while the source is idle:
	// read it with the GTID distance to the source. Nil when unknown (no
	// checkpoint, or only DDL applied).
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	LatencyMS  int64    `json:"latency_ms"`
	Error      string   `json:"error,omitempty"`
}

// ProbeMySQL logs in to the site's database, reads read_only and
// gtid_binlog_pos and, for in.Stream, its checkpoint row and lag. A missing
// checkpoint is reported in Error with Up still true: the server answers,
// but the stream has never applied anything. It never fails the activity
// for an unhealthy target.
func (a *Activities) ProbeMySQL(ctx context.Context, in MySQLInput) (MySQLResult, error) {
	res := MySQLResult{Site: in.Site.Name, Vantage: a.Vantage, Address: sitedb.Addr(in.Site), Stream: in.Stream}
	var ro int
	var note string
	res.LatencyMS, res.Error = withDB(ctx, in.Site, timeoutOr(in.Timeout), func(qctx context.Context, db *sql.DB) error {
		if err := db.QueryRowContext(qctx, "SELECT @@global.read_only, @@global.gtid_binlog_pos").Scan(&ro, &res.GTIDBinlogPos); err != nil {
			return err
		}
		if in.Stream == "" {
			return nil
		}
		cps, now, err := sitedb.Checkpoints(qctx, db, in.Stream)
		if err != nil {
			return err
		}
		if len(cps) == 0 {
			note = fmt.Sprintf("no checkpoint for stream %s: it has applied nothing", in.Stream)
		}
		for _, cp := range cps {
			res.CheckpointGTID, res.SourceTS, res.AppliedAt = cp.GTID, cp.SourceTS, cp.AppliedAt
			if !cp.SourceTS.IsZero() {
				lag := now.Sub(cp.SourceTS).Seconds()
				res.LagSeconds = &lag
			}
		}
		return nil
	})
	res.Up, res.ReadOnly = res.Error == "", res.Error == "" && ro != 0
	if res.Up {
		res.Error = note
	}
	return res, nil
}

// DNSInput is one question to one authoritative DNS server.
type DNSInput struct {
	Site   string `json:"site"`
	Server string `json:"server"` // host:port of the authoritative server
	Name   string `json:"name"`   // e.g. "app.drover.test."
	// Type is the record type asked for: "A" (default), "AAAA", "CNAME"...
	Type    string          `json:"type,omitempty"`
	Timeout recipe.Duration `json:"timeout,omitempty"` // default 2s
}

// DNSResult is the server's answer. Up means an authoritative NOERROR
// answer with at least one record of the type asked for.
type DNSResult struct {
	Site          string `json:"site"`
	Vantage       string `json:"vantage"`
	Server        string `json:"server"`
	Name          string `json:"name"`
	Type          string `json:"type"`
	Up            bool   `json:"up"`
	Rcode         string `json:"rcode,omitempty"` // "NOERROR", "NXDOMAIN", ...
	Authoritative bool   `json:"authoritative"`
	// Addresses are the answer's records of the type asked for: IPs for A
	// and AAAA, target names for CNAME, the record text otherwise.
	Addresses []string `json:"addresses,omitempty"`
	// TTL is the smallest TTL among them, in seconds.
	TTL       uint32 `json:"ttl,omitempty"`
	LatencyMS int64  `json:"latency_ms"`
	Error     string `json:"error,omitempty"`
}

// ProbeDNS asks in.Server what it answers for in.Name, without recursion
// (what that server itself serves, not what it could find out), over UDP,
// and again over TCP if the answer was truncated. It never fails the
// activity for an unhealthy target.
func (a *Activities) ProbeDNS(ctx context.Context, in DNSInput) (DNSResult, error) {
	typ := strings.ToUpper(in.Type)
	if typ == "" {
		typ = "A"
	}
	res := DNSResult{Site: in.Site, Vantage: a.Vantage, Server: in.Server, Name: dns.Fqdn(in.Name), Type: typ}
	qtype, ok := dns.StringToType[typ]
	if !ok {
		res.Error = fmt.Sprintf("unknown record type %q", in.Type)
		return res, nil
	}
	m := new(dns.Msg)
	m.SetQuestion(res.Name, qtype)
	m.RecursionDesired = false
	timeout := timeoutOr(in.Timeout)
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	c := &dns.Client{Net: "udp", Timeout: timeout}
	r, _, err := c.ExchangeContext(qctx, m, in.Server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(qctx, m, in.Server)
	}
	res.LatencyMS = time.Since(start).Milliseconds()
	if err != nil {
		res.Error = describeNetError(err)
		return res, nil
	}
	res.Rcode, res.Authoritative = dns.RcodeToString[r.Rcode], r.Authoritative
	for _, rr := range r.Answer {
		if rr.Header().Rrtype != qtype {
			continue
		}
		switch v := rr.(type) {
		case *dns.A:
			res.Addresses = append(res.Addresses, v.A.String())
		case *dns.AAAA:
			res.Addresses = append(res.Addresses, v.AAAA.String())
		case *dns.CNAME:
			res.Addresses = append(res.Addresses, v.Target)
		default:
			res.Addresses = append(res.Addresses, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		if ttl := rr.Header().Ttl; res.TTL == 0 || ttl < res.TTL {
			res.TTL = ttl
		}
	}
	switch {
	case r.Rcode != dns.RcodeSuccess:
		res.Error = "answer " + res.Rcode
	case !r.Authoritative:
		res.Error = "answer is not authoritative: the server does not serve this zone"
	case len(res.Addresses) == 0:
		res.Error = "no " + typ + " record"
	default:
		res.Up = true
	}
	return res, nil
}
