package dbadmin

import (
	"context"
	"strings"

	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
)

// ErrantInput names the old primary (back up after a failover) and the new
// primary that replaced it.
type ErrantInput struct {
	Old recipe.Site `json:"old"`
	New recipe.Site `json:"new"`
}

// ErrantDomain is what the old primary has in one GTID domain that the new
// primary never received: sequences First..Last.
type ErrantDomain struct {
	Domain uint32 `json:"domain"`
	// OldGTID is the old primary's last GTID in the domain; NewGTID the new
	// primary's ("" when it has none in this domain).
	OldGTID string `json:"old_gtid"`
	NewGTID string `json:"new_gtid,omitempty"`
	// First and Last are the errant sequence numbers. When the new primary
	// has nothing in the domain, First is 0 and the count is unknown: the
	// old primary's binlog may start anywhere.
	First uint64 `json:"first,omitempty"`
	Last  uint64 `json:"last"`
	// Count is Last-First+1 when CountKnown (MariaDB numbers a domain's
	// transactions consecutively unless gtid_seq_no was set by hand).
	Count      uint64 `json:"count"`
	CountKnown bool   `json:"count_known"`
}

// ErrantResult lists the old primary's transactions the new one lacks.
type ErrantResult struct {
	Old string `json:"old"`
	New string `json:"new"`
	// OldPosition is the old primary's gtid_binlog_pos; NewPosition what the
	// new primary has received (gtid_binlog_pos, gtid_slave_pos and its
	// stream checkpoints merged).
	OldPosition string `json:"old_position"`
	NewPosition string `json:"new_position"`
	// Errant is the old primary's position in the errant domains, in
	// MariaDB's syntax ("1-1-45"): everything up to it that NewPosition
	// does not include is errant. Empty when nothing is errant.
	Errant  string         `json:"errant,omitempty"`
	Domains []ErrantDomain `json:"domains,omitempty"`
	// Count is the number of errant transactions; a lower bound when
	// CountExact is false (a domain's count is unknown).
	Count      uint64 `json:"count"`
	CountExact bool   `json:"count_exact"`
}

// DBErrant compares the old primary's GTID position with what the new
// primary received and reports the old primary's transactions that never
// reached the new one: the data a failover lost, which must be reconciled
// by hand before the old primary replicates from the new one. Every domain
// of the old primary counts except the new primary's own (transactions
// the new primary made itself are never errant on the old one).
//
// Both servers must be reachable: an unreachable one is a plain
// (retryable) error that says which. It changes nothing.
func (a *Activities) DBErrant(ctx context.Context, in ErrantInput) (ErrantResult, error) {
	res := ErrantResult{Old: in.Old.Name, New: in.New.Name}
	old, err := a.open(ctx, "errant", "old primary unreachable", in.Old)
	if err != nil {
		return res, err
	}
	defer old.close()
	raw, err := old.binlogPos(ctx)
	if err != nil {
		return res, err
	}
	oldPos, err := replication.ParsePosition(raw)
	if err != nil {
		return res, configError(old.prefix("gtid_binlog_pos: "+err.Error()), err)
	}

	nw, err := a.open(ctx, "errant", "new primary unreachable", in.New)
	if err != nil {
		return res, err
	}
	defer nw.close()
	received, ownDomain, err := nw.received(ctx)
	if err != nil {
		return res, err
	}
	res.OldPosition, res.NewPosition = oldPos.String(), received.String()

	errant := replication.Position{}
	res.CountExact = true
	for _, d := range oldPos.Domains() {
		o := oldPos[d]
		n, has := received[d]
		if d == ownDomain || has && n.Seq >= o.Seq {
			continue
		}
		errant[d] = o
		e := ErrantDomain{Domain: d, OldGTID: o.String(), Last: o.Seq}
		if has {
			e.NewGTID, e.First, e.Count, e.CountKnown = n.String(), n.Seq+1, o.Seq-n.Seq, true
		} else {
			res.CountExact = false
		}
		res.Count += e.Count
		res.Domains = append(res.Domains, e)
	}
	res.Errant = errant.String()
	return res, nil
}

// received is what this server has of other servers' transactions:
// gtid_binlog_pos, gtid_slave_pos (native replication, or a clone's start
// point) and every stream checkpoint, merged; and its own gtid_domain_id.
func (s *session) received(ctx context.Context) (replication.Position, uint32, error) {
	var binlog, slave string
	var domain uint32
	if err := s.conn.QueryRowContext(ctx, "SELECT @@global.gtid_binlog_pos, @@global.gtid_slave_pos, @@global.gtid_domain_id").
		Scan(&binlog, &slave, &domain); err != nil {
		return nil, 0, s.fail("read gtid state", err)
	}
	parts := []string{binlog, slave}
	cps, _, err := sitedb.Checkpoints(ctx, s.conn, "")
	if err != nil {
		return nil, 0, s.fail("read checkpoints", err)
	}
	for _, cp := range cps {
		parts = append(parts, cp.GTID)
	}
	p, err := replication.ParsePosition(strings.Join(parts, ","))
	if err != nil {
		return nil, 0, configError(s.prefix("gtid state: "+err.Error()), err)
	}
	return p, domain, nil
}
