package replication

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// GTID is one MariaDB global transaction id: domain-server-sequence.
type GTID struct {
	Domain   uint32
	ServerID uint32
	Seq      uint64
}

// String formats g as MariaDB does: "1-1-42".
func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.ServerID, g.Seq) }

// ParseGTID reads "domain-server-seq".
func ParseGTID(s string) (GTID, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return GTID{}, fmt.Errorf("gtid %q: want domain-server-sequence", s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	sv, err2 := strconv.ParseUint(parts[1], 10, 32)
	q, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return GTID{}, fmt.Errorf("gtid %q: domain, server and sequence must be unsigned integers", s)
	}
	return GTID{Domain: uint32(d), ServerID: uint32(sv), Seq: q}, nil
}

// Position is a MariaDB GTID position normalised to at most one GTID per
// replication domain — the highest sequence seen in it. MariaDB rejects a
// position that names a domain twice (ERROR 1943), and go-mysql's
// MariadbGTIDSet can hold several server ids per domain, so Drover keeps its
// own type. The zero value (nil map) is the empty position.
type Position map[uint32]GTID

// ParsePosition reads a comma-separated list of GTIDs such as
// "1-1-42,2-2-7" (empty string = empty position). Several GTIDs of one
// domain are normalised to the one with the highest sequence.
func ParsePosition(s string) (Position, error) {
	p := Position{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		g, err := ParseGTID(item)
		if err != nil {
			return nil, err
		}
		p.Advance(g)
	}
	return p, nil
}

// MustParsePosition is ParsePosition for constants in tests and examples.
func MustParsePosition(s string) Position {
	p, err := ParsePosition(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String formats p sorted by domain, as MariaDB accepts it in gtid_slave_pos.
func (p Position) String() string {
	domains := p.Domains()
	parts := make([]string, len(domains))
	for i, d := range domains {
		parts[i] = p[d].String()
	}
	return strings.Join(parts, ",")
}

// Domains lists p's domains in ascending order.
func (p Position) Domains() []uint32 {
	ds := make([]uint32, 0, len(p))
	for d := range p {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// Clone returns an independent copy of p.
func (p Position) Clone() Position {
	c := make(Position, len(p))
	for d, g := range p {
		c[d] = g
	}
	return c
}

// Advance records g if it is ahead of what p holds for g's domain.
func (p Position) Advance(g GTID) {
	if cur, ok := p[g.Domain]; !ok || g.Seq > cur.Seq {
		p[g.Domain] = g
	}
}

// Contains reports whether g is at or behind p in g's domain, i.e. a
// transaction that p already includes.
func (p Position) Contains(g GTID) bool {
	cur, ok := p[g.Domain]
	return ok && g.Seq <= cur.Seq
}

// Merge returns the per-domain maximum of p and o.
func (p Position) Merge(o Position) Position {
	m := p.Clone()
	for _, g := range o {
		m.Advance(g)
	}
	return m
}

// Only returns the part of p in the given domains.
func (p Position) Only(domains []uint32) Position {
	out := Position{}
	for _, d := range domains {
		if g, ok := p[d]; ok {
			out[d] = g
		}
	}
	return out
}

// Except returns the part of p outside the given domains.
func (p Position) Except(domains []uint32) Position {
	skip := map[uint32]bool{}
	for _, d := range domains {
		skip[d] = true
	}
	out := Position{}
	for d, g := range p {
		if !skip[d] {
			out[d] = g
		}
	}
	return out
}

// Behind counts the transactions in o that p lacks: the sum over o's
// domains of how far p's sequence trails. It is the replication lag in
// transactions when p is what a replica applied and o the source's position.
func (p Position) Behind(o Position) uint64 {
	var n uint64
	for d, g := range o {
		if cur := p[d].Seq; g.Seq > cur {
			n += g.Seq - cur
		}
	}
	return n
}

// Equal reports whether p and o hold the same GTIDs.
func (p Position) Equal(o Position) bool {
	if len(p) != len(o) {
		return false
	}
	for d, g := range p {
		if o[d] != g {
			return false
		}
	}
	return true
}

// ParseMySQLGTIDSet reads MySQL 8's GTID set syntax
// ("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7,…"), so a MySQL source can be
// described and compared; Drover's applier currently targets MariaDB.
func ParseMySQLGTIDSet(s string) (*mysql.MysqlGTIDSet, error) {
	set, err := mysql.ParseMysqlGTIDSet(s)
	if err != nil {
		return nil, fmt.Errorf("mysql gtid set %q: %w", s, err)
	}
	return set.(*mysql.MysqlGTIDSet), nil
}
