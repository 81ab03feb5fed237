package replication

import (
	"testing"
)

func TestParsePositionNormalisesToOneGTIDPerDomain(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"1-1-5", "1-1-5"},
		{"1-1-5,", "1-1-5"}, // a trailing comma is tolerated
		{" 2-2-7 , 1-1-5 ", "1-1-5,2-2-7"},
		// Two servers wrote in domain 1 (e.g. after a failover): keep the highest.
		{"1-1-5,1-2-9,1-1-8", "1-2-9"},
		{"0-1-3,4294967295-4294967295-18446744073709551615", "0-1-3,4294967295-4294967295-18446744073709551615"},
	} {
		p, err := ParsePosition(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got := p.String(); got != tc.want {
			t.Errorf("ParsePosition(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"1-1", "1-1-x", "a-b-c", "-1-1-1", "4294967296-1-1"} {
		if _, err := ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) accepted", bad)
		}
	}
}

func TestPositionArithmetic(t *testing.T) {
	applied := MustParsePosition("1-1-10,2-2-3")
	source := MustParsePosition("1-1-15,2-2-3,3-3-2")
	if n := applied.Behind(source); n != 5+0+2 {
		t.Fatalf("Behind = %d, want 7", n)
	}
	if n := source.Behind(applied); n != 0 {
		t.Fatalf("source is not behind the replica: %d", n)
	}
	if !applied.Contains(GTID{1, 1, 10}) || applied.Contains(GTID{1, 1, 11}) || applied.Contains(GTID{3, 3, 1}) {
		t.Fatal("Contains")
	}
	m := applied.Merge(source)
	if m.String() != "1-1-15,2-2-3,3-3-2" || applied.String() != "1-1-10,2-2-3" {
		t.Fatalf("Merge %s (and must not modify its receiver: %s)", m, applied)
	}
	if got := source.Only([]uint32{1, 3, 9}).String(); got != "1-1-15,3-3-2" {
		t.Fatalf("Only = %s", got)
	}
	if got := source.Except([]uint32{1, 3, 9}).String(); got != "2-2-3" {
		t.Fatalf("Except = %s", got)
	}
	if !applied.Equal(MustParsePosition("2-2-3,1-1-10")) || applied.Equal(source) {
		t.Fatal("Equal")
	}
	p := Position{}
	p.Advance(GTID{1, 1, 4})
	p.Advance(GTID{1, 2, 3}) // older: ignored
	if p.String() != "1-1-4" {
		t.Fatalf("Advance kept %s", p)
	}
}

func TestParseMySQLGTIDSet(t *testing.T) {
	set, err := ParseMySQLGTIDSet("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7, 3E11FA47-71CA-11E1-9E33-C80AA9429563:1-3")
	if err != nil {
		t.Fatal(err)
	}
	other, err := ParseMySQLGTIDSet("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-3")
	if err != nil {
		t.Fatal(err)
	}
	if !set.Contain(other) || other.Contain(set) {
		t.Fatal("containment of MySQL GTID sets")
	}
	if _, err := ParseMySQLGTIDSet("not-a-uuid:1-2"); err == nil {
		t.Fatal("bad MySQL GTID set accepted")
	}
}
