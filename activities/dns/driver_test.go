package dns_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drover-sre/drover/activities/dns"
)

// RecordSet values are normalised (IPv4 only, unmapped, sorted, no
// duplicates) so that comparing two of them compares their content.
func TestRecordSet(t *testing.T) {
	rs, err := dns.ParseRecordSet([]string{" 192.0.2.9", "::ffff:192.0.2.1", "192.0.2.9", "192.0.2.10"}, 60)
	require.NoError(t, err)
	assert.Equal(t, []string{"192.0.2.1", "192.0.2.9", "192.0.2.10"}, rs.Strings())
	assert.Equal(t, "[192.0.2.1 192.0.2.9 192.0.2.10] ttl 60", rs.String())
	assert.True(t, rs.Contains(netip.MustParseAddr("::ffff:192.0.2.9")))
	assert.False(t, rs.Contains(netip.MustParseAddr("192.0.2.2")))

	tests := []struct {
		a, b  dns.RecordSet
		equal bool
	}{
		{set(60, "192.0.2.1", "192.0.2.2"), set(60, "192.0.2.2", "192.0.2.1"), true},
		{set(60, "192.0.2.1"), set(30, "192.0.2.1"), false},
		{set(60, "192.0.2.1"), set(60, "192.0.2.1", "192.0.2.2"), false},
		{dns.RecordSet{}, dns.RecordSet{TTL: 60}, true},
		{dns.RecordSet{}, set(60, "192.0.2.1"), false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.equal, tt.a.Equal(tt.b), "%v vs %v", tt.a, tt.b)
		assert.Equal(t, tt.equal, tt.b.Equal(tt.a), "%v vs %v", tt.b, tt.a)
	}

	assert.Equal(t, set(60, "192.0.2.2"), set(60, "192.0.2.1", "192.0.2.2").Without(netip.MustParseAddr("192.0.2.1")))
	assert.Equal(t, dns.RecordSet{}, set(60, "192.0.2.1").Without(netip.MustParseAddr("192.0.2.1")))
	assert.Equal(t, "[]", dns.RecordSet{}.String())
	assert.Nil(t, dns.RecordSet{}.Strings())

	empty, err := dns.NewRecordSet(nil, 60)
	require.NoError(t, err)
	assert.Equal(t, dns.RecordSet{}, empty, "no addresses: TTL dropped")

	for _, bad := range []string{"2001:db8::1", "192.0.2", "app.example.com", ""} {
		_, err := dns.ParseRecordSet([]string{bad}, 60)
		assert.Equal(t, dns.Config, dns.KindOf(err), "%q: %v", bad, err)
	}
}

// Errors read "OP NAME at TARGET: MSG" and carry their Kind through wrapping.
func TestErrorFormatAndKind(t *testing.T) {
	cause := errors.New("connection refused")
	e := &dns.Error{Op: "dns update", Name: "app.drover.test.", Target: "127.0.0.1:5354", Kind: dns.Auth, Msg: "REFUSED (TSIG key rejected?)", Err: cause}
	assert.Equal(t, "dns update app.drover.test. at 127.0.0.1:5354: REFUSED (TSIG key rejected?)", e.Error())
	wrapped := fmt.Errorf("point: %w", e)
	assert.Equal(t, dns.Auth, dns.KindOf(wrapped))
	assert.ErrorIs(t, wrapped, cause)
	assert.Equal(t, "dns query: connection refused", (&dns.Error{Op: "dns query", Err: cause}).Error())
	assert.Equal(t, dns.Transient, dns.KindOf(cause))
	assert.Equal(t, dns.Transient, dns.KindOf(nil))
	for k, s := range map[dns.Kind]string{dns.Transient: "transient", dns.Throttled: "throttled", dns.Auth: "auth", dns.Config: "config"} {
		assert.Equal(t, s, k.String())
	}
}
