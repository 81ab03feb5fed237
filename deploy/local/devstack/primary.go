package devstack

import (
	"context"
	"fmt"

	"github.com/miekg/dns"

	"github.com/drover-sre/drover/recipe"
)

// currentPrimary decides which site a (re)started stack makes writable:
// the site the public name answers. On a fresh stack that is the recipe's
// primary (the zone file names it); after a failover or switchover it is
// the site the runbook moved traffic to, and the old primary must stay
// read-only. An empty answer (a runbook stopped between removing the old
// address and adding the new one) makes nobody writable: a human decides.
func currentPrimary(ctx context.Context, n *Named, r *recipe.Recipe) (string, error) {
	rrs, err := n.Lookup(ctx, r.DNS.Record, dns.TypeA)
	if err != nil {
		return "", fmt.Errorf("which site is primary: ask %s for %s: %w", n.Addr(), r.DNS.Record, err)
	}
	var addrs []string
	for _, rr := range rrs {
		if a, ok := rr.(*dns.A); ok {
			addrs = append(addrs, a.A.String())
		}
	}
	if len(addrs) != 1 {
		return "", nil
	}
	for _, s := range r.Sites {
		if s.Address == addrs[0] {
			return s.Name, nil
		}
	}
	return "", nil
}
