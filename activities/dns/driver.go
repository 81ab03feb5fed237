// Package dns moves an application's service name between sites. A Driver
// manages the A record set of one DNS name in one zone through one of three
// back ends: RFC 2136 dynamic updates signed with TSIG (RFC2136), AWS Route 53
// (Route53) and OpenStack Designate (Designate). Answers asks every
// authoritative server what it answers for a name, so a runbook can wait
// until the whole zone serves the new address. Activities wraps all of it as
// Temporal activities.
//
// Every change is idempotent: Set and Remove read the record set first and
// send nothing when it already is what was asked, and they return the record
// set they found so a runbook can register the undo. Errors are *Error values
// whose Kind says whether retrying can help. Secrets (TSIG keys, cloud
// credentials) are resolved on the worker and never appear in an error, a
// result or a String form.
package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/drover-sre/drover/activities/internal/cloud"
)

// Driver manages the A record set of names in one zone. Implementations are
// safe for concurrent use by several goroutines; two callers changing the
// same name at once may still overwrite each other (last writer wins) unless
// the implementation says otherwise.
type Driver interface {
	// Get returns the A record set of name as the zone's provider holds it
	// now. A name with no A records, or no records at all, gives an empty
	// RecordSet and no error.
	Get(ctx context.Context, name string) (RecordSet, error)
	// Set makes the A record set of name exactly want (addresses and TTL).
	// It returns the record set it found before. When that already equals
	// want it sends no change and changed is false. When it returns changed
	// true with a nil error, the provider has accepted the change and, where
	// the provider reports propagation, finished it. want must not be empty:
	// use Remove to delete addresses.
	Set(ctx context.Context, name string, want RecordSet) (prev RecordSet, changed bool, err error)
	// Remove deletes addr from the A record set of name, and deletes the set
	// when addr was its only address. It returns the record set it found
	// before. When addr is not in the set it sends no change and changed is
	// false.
	Remove(ctx context.Context, name string, addr netip.Addr) (prev RecordSet, changed bool, err error)
}

// RecordSet is the content of one A record set. Build it with NewRecordSet
// or ParseRecordSet so that Addrs is normalised: IPv4 only, ascending, without
// duplicates. An empty RecordSet (no Addrs) means the name has no A records;
// its TTL is then 0.
type RecordSet struct {
	Addrs []netip.Addr `json:"addrs"`
	TTL   uint32       `json:"ttl"`
}

// NewRecordSet returns the normalised record set of addrs with ttl. IPv4
// addresses written in IPv4-mapped IPv6 form are unmapped. It returns a
// Config error for an IPv6 or invalid address. With no addresses the result
// is the empty RecordSet and ttl is dropped.
func NewRecordSet(addrs []netip.Addr, ttl uint32) (RecordSet, error) {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		if !a.Is4() {
			return RecordSet{}, &Error{Op: "dns record", Kind: Config, Msg: fmt.Sprintf("%q is not an IPv4 address", a.String())}
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	out = slices.Compact(out)
	if len(out) == 0 {
		return RecordSet{}, nil
	}
	return RecordSet{Addrs: out, TTL: ttl}, nil
}

// ParseRecordSet is NewRecordSet for addresses written as strings ("192.0.2.7").
func ParseRecordSet(addrs []string, ttl uint32) (RecordSet, error) {
	parsed := make([]netip.Addr, 0, len(addrs))
	for _, s := range addrs {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return RecordSet{}, &Error{Op: "dns record", Kind: Config, Msg: fmt.Sprintf("%q is not an IPv4 address", s)}
		}
		parsed = append(parsed, a)
	}
	return NewRecordSet(parsed, ttl)
}

// Empty reports whether s has no addresses.
func (s RecordSet) Empty() bool { return len(s.Addrs) == 0 }

// Equal reports whether s and o hold the same addresses with the same TTL.
// Two empty record sets are equal whatever their TTL.
func (s RecordSet) Equal(o RecordSet) bool {
	if s.Empty() || o.Empty() {
		return s.Empty() && o.Empty()
	}
	return s.TTL == o.TTL && slices.Equal(s.Addrs, o.Addrs)
}

// Contains reports whether addr is in s.
func (s RecordSet) Contains(addr netip.Addr) bool {
	return slices.Contains(s.Addrs, addr.Unmap())
}

// Without returns s less addr, keeping the TTL unless nothing is left.
func (s RecordSet) Without(addr netip.Addr) RecordSet {
	addr = addr.Unmap()
	var out []netip.Addr
	for _, a := range s.Addrs {
		if a != addr {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return RecordSet{}
	}
	return RecordSet{Addrs: out, TTL: s.TTL}
}

// Strings returns the addresses in textual form, in order; nil when empty.
func (s RecordSet) Strings() []string {
	if s.Empty() {
		return nil
	}
	out := make([]string, len(s.Addrs))
	for i, a := range s.Addrs {
		out[i] = a.String()
	}
	return out
}

// String shows s as "[192.0.2.1 192.0.2.2] ttl 60", or "[]" when empty.
func (s RecordSet) String() string {
	if s.Empty() {
		return "[]"
	}
	return fmt.Sprintf("[%s] ttl %d", strings.Join(s.Strings(), " "), s.TTL)
}

// Kind classifies a driver error by what can fix it. It is the
// classification the provider package uses too; a driver gives only the
// four kinds below, with the meaning they have here.
type Kind = cloud.Kind

const (
	// Transient errors may go away by themselves: network failures,
	// timeouts, server failures, a concurrent change, a change that has not
	// propagated yet. Retrying later is right.
	Transient = cloud.Transient
	// Throttled means the provider asked the caller to slow down. Retrying
	// with backoff is right.
	Throttled = cloud.Throttled
	// Auth means the provider refused the credentials or the permission: a
	// rejected TSIG key, AccessDenied, HTTP 401/403. Retrying cannot help
	// until a person fixes the key, credentials or policy.
	Auth = cloud.Auth
	// Config means the request can never succeed as configured: an unknown
	// zone, a name outside the zone, an invalid address, a record set the
	// driver must not manage. Retrying cannot help.
	Config = cloud.Config
)

// Error is a failed driver operation. Its message names the operation, the
// record and the server or zone it was sent to, and never holds a secret.
type Error struct {
	Op     string // what was attempted, e.g. "dns update", "route53 change"
	Name   string // the record, e.g. "app.drover.test."; may be empty
	Target string // where: "host:port", "hosted zone Z123", "designate zone 1f3…"
	Kind   Kind
	Msg    string // what went wrong, for a person
	Err    error  // the underlying error, if any
}

// Error formats e as "OP NAME at TARGET: MSG", leaving out empty parts.
func (e *Error) Error() string {
	return cloud.Text(e.Op, e.Msg, e.Err, "", e.Name, "at", e.Target)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first *Error in err's chain, and Transient
// for any other non-nil error (context cancellation included) and for nil.
func KindOf(err error) Kind {
	return cloud.KindOf(err, func(e *Error) Kind { return e.Kind })
}

// fqdn returns name lower-cased with exactly one trailing dot.
func fqdn(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	return strings.TrimSuffix(name, ".") + "."
}

// inZone reports whether name (an FQDN) is zone or below it.
func inZone(name, zone string) bool {
	name, zone = fqdn(name), fqdn(zone)
	return name == zone || strings.HasSuffix(name, "."+zone) || zone == "."
}

// checkName returns name as a lower-case FQDN, or a Config error when it is
// empty or outside zone.
func checkName(op, name, zone, target string) (string, error) {
	if strings.TrimSpace(name) == "" || strings.Trim(name, ".") == "" {
		return "", &Error{Op: op, Target: target, Kind: Config, Msg: "record name is empty"}
	}
	n := fqdn(name)
	if zone != "" && !inZone(n, zone) {
		return "", &Error{Op: op, Name: n, Target: target, Kind: Config, Msg: fmt.Sprintf("name is not inside zone %s", fqdn(zone))}
	}
	return n, nil
}

// checkWant returns want normalised (see NewRecordSet), or a Config error
// unless it is a non-empty IPv4 record set with a TTL.
func checkWant(op, name, target string, want RecordSet) (RecordSet, error) {
	norm, err := NewRecordSet(want.Addrs, want.TTL)
	if err != nil {
		e := err.(*Error)
		e.Op, e.Name, e.Target = op, name, target
		return RecordSet{}, e
	}
	switch {
	case norm.Empty():
		return RecordSet{}, &Error{Op: op, Name: name, Target: target, Kind: Config, Msg: "no addresses to set (use Remove to delete addresses)"}
	case norm.TTL == 0:
		return RecordSet{}, &Error{Op: op, Name: name, Target: target, Kind: Config, Msg: "TTL must be at least 1"}
	}
	return norm, nil
}

// checkAddr returns addr unmapped, or a Config error unless it is IPv4.
func checkAddr(op, name, target string, addr netip.Addr) (netip.Addr, error) {
	addr = addr.Unmap()
	if !addr.Is4() {
		return addr, &Error{Op: op, Name: name, Target: target, Kind: Config, Msg: fmt.Sprintf("%q is not an IPv4 address", addr.String())}
	}
	return addr, nil
}

// waitFor calls check until it reports done or fails, at most once per
// interval (zero means DefaultPollInterval), for at most limit (zero means
// DefaultSyncTimeout) and never after ctx ends; with sleepFirst it waits one
// interval before the first call. It returns check's error as it is; when
// time or ctx runs out it returns a Transient error with at's Op, Name and
// Target whose message is pending() followed by why the wait ended.
func waitFor(ctx context.Context, interval, limit time.Duration, sleepFirst bool, at Error, pending func() string, check func() (bool, error)) error {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	if limit <= 0 {
		limit = DefaultSyncTimeout
	}
	ended := func(why string, cause error) error {
		e := at
		e.Kind, e.Msg, e.Err = Transient, pending()+" "+why, cause
		return &e
	}
	deadline := time.Now().Add(limit)
	maxCalls := int(limit/interval) + 2
	for calls := 0; ; calls++ {
		if sleepFirst || calls > 0 {
			if calls >= maxCalls || !time.Now().Before(deadline) {
				return ended(fmt.Sprintf("after %s", limit), nil)
			}
			t := time.NewTimer(interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return ended("when the wait was cut short: "+ctx.Err().Error(), ctx.Err())
			case <-t.C:
			}
		}
		if done, err := check(); err != nil || done {
			return err
		}
	}
}
