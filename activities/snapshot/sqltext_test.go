package snapshot

import (
	"bytes"
	"testing"
)

func TestAppendValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind valueKind
		in   []byte
		want string
	}{
		{"null", kindString, nil, "NULL"},
		{"empty string", kindString, []byte{}, "''"},
		{"escapes", kindString, []byte("a'b\\c\x00d\ne\rf\x1ag\"h"), `'a\'b\\c\0d\ne\rf\Zg"h'`},
		{"utf8 passes unchanged", kindString, []byte("é😀"), "'é😀'"},
		{"integer", kindNumber, []byte("-9223372036854775808"), "-9223372036854775808"},
		{"decimal", kindNumber, []byte("99999999999999999999.9999999999"), "99999999999999999999.9999999999"},
		{"double exponent", kindNumber, []byte("-1.7976931348623157e308"), "-1.7976931348623157e308"},
		{"float as double", kindFloat, []byte("0.10000000149011612"), "0.10000000149011612"},
		{"not a plain number is quoted", kindNumber, []byte("1;DROP"), "'1;DROP'"},
		{"empty number is quoted", kindNumber, []byte{}, "''"},
		{"bits", kindBits, []byte{0x02, 0xaa}, "X'02aa'"},
		{"no bits", kindBits, []byte{}, "0"},
		{"inet6 as characters", kindASCII, []byte("2001:db8::1"), "_latin1'2001:db8::1'"},
	} {
		if got := string(appendValue(nil, tc.kind, tc.in)); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestColumnClassify(t *testing.T) {
	for _, tc := range []struct {
		typ, charset string
		kind         valueKind
		bound        boundKind
	}{
		{"bigint", "", kindNumber, boundNumber},
		{"decimal", "", kindNumber, boundNumber},
		{"double", "", kindNumber, boundNone},
		{"float", "", kindFloat, boundNone},
		{"bit", "", kindBits, boundNone},
		{"varchar", "utf8mb4", kindString, boundText},
		{"char", "binary", kindString, boundBinary},
		{"varbinary", "", kindString, boundBinary},
		{"datetime", "", kindString, boundTemporal},
		{"uuid", "", kindASCII, boundTemporal},
		{"enum", "utf8mb4", kindString, boundNone},
		{"json", "utf8mb4", kindString, boundNone},
		{"point", "", kindString, boundNone},
	} {
		c := column{Name: "c", DataType: tc.typ, Charset: tc.charset}
		c.classify()
		if c.Kind != tc.kind || c.Bound != tc.bound {
			t.Errorf("%s/%s: kind %d bound %d, want %d %d", tc.typ, tc.charset, c.Kind, c.Bound, tc.kind, tc.bound)
		}
	}
	f := column{Name: "f`x", DataType: "float"}
	f.classify()
	if got := f.selectExpr(); got != "CAST(`f``x` AS DOUBLE)" {
		t.Errorf("FLOAT select expression %s", got)
	}
}

func TestRangeCond(t *testing.T) {
	id := column{Name: "id", DataType: "int", Bound: boundNumber}
	code := column{Name: "code", DataType: "varchar", Charset: "utf8mb4", Collation: "utf8mb4_unicode_ci", Bound: boundText}
	when := column{Name: "at", DataType: "datetime", Bound: boundTemporal}
	for _, tc := range []struct {
		name string
		pk   []column
		r    keyRange
		want string
	}{
		{"unbounded", []column{id}, keyRange{}, ""},
		{"lower", []column{id}, keyRange{Lo: key{[]byte("10")}}, "(`id` > 10)"},
		{"both", []column{id}, keyRange{Lo: key{[]byte("10")}, Hi: key{[]byte("20")}}, "(`id` > 10) AND (`id` <= 20)"},
		{"collated text", []column{code}, keyRange{Hi: key{[]byte("é'")}},
			`(` + "`code`" + ` <= CONVERT(_binary'é\'' USING utf8mb4) COLLATE utf8mb4_unicode_ci)`},
		{"composite", []column{id, when}, keyRange{Lo: key{[]byte("7"), []byte("2024-01-01 00:00:00")}},
			"(`id` > 7 OR (`id` = 7 AND (`at` > _latin1'2024-01-01 00:00:00')))"},
		{"composite upper", []column{id, when}, keyRange{Hi: key{[]byte("7"), []byte("2024-01-01 00:00:00")}},
			"(`id` < 7 OR (`id` = 7 AND (`at` <= _latin1'2024-01-01 00:00:00')))"},
	} {
		if got := rangeCond(tc.pk, tc.r); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestKeyEncoding(t *testing.T) {
	for _, k := range []key{nil, {[]byte{}}, {[]byte("42")}, {[]byte("a"), bytes.Repeat([]byte{0xff}, 300), []byte{}}} {
		n := len(k)
		if k == nil {
			n = 2
		}
		got, err := decodeKey(encodeKey(k), n)
		if err != nil || !keysEqual(got, k) {
			t.Errorf("round trip of %q: %q %v", k, got, err)
		}
	}
	enc := encodeKey(key{[]byte("ab"), []byte("c")})
	for _, bad := range [][]byte{enc[:len(enc)-1], append(append([]byte{}, enc...), 0), {0x80}} {
		if _, err := decodeKey(bad, 2); err == nil {
			t.Errorf("malformed key %x decoded", bad)
		}
	}
	if keysEqual(nil, key{}) || !keysEqual(key{[]byte("x")}, key{[]byte("x")}) || keysEqual(key{[]byte("x")}, key{[]byte("y")}) {
		t.Error("keysEqual")
	}
}

// An earlier attempt's records become tasks whose chunk prefix (seq
// 0, 1, … without a hole) is verified; anything after a hole is stray and
// is cleared and copied again.
func TestResumeTasks(t *testing.T) {
	tb := &table{Schema: "s", Name: "t", PK: []column{{Name: "id", Bound: boundNumber}}}
	k := func(s string) key { return key{[]byte(s)} }
	recs := []record{
		{task: 0, seq: -1, r: keyRange{Hi: k("100")}},
		{task: 0, seq: 0, r: keyRange{Hi: k("10")}},
		{task: 0, seq: 1, r: keyRange{Lo: k("10"), Hi: k("20")}},
		{task: 0, seq: 3, r: keyRange{Lo: k("30"), Hi: k("40")}},
		{task: 1, seq: -1, r: keyRange{Lo: k("100")}},
	}
	ts := resumeTasks(tb, recs)
	if len(ts) != 2 || len(ts[0].prefix) != 2 || !ts[0].stray || ts[0].fresh || len(ts[1].prefix) != 0 || ts[1].stray {
		t.Fatalf("tasks %+v", ts)
	}
	if resumeTasks(tb, recs[1:]) != nil {
		t.Error("chunks without their task record must not be trusted")
	}
	if resumeTasks(tb, nil) != nil {
		t.Error("no records: copy from scratch")
	}
	whole := &table{Schema: "s", Name: "w", Whole: "no primary key"}
	if resumeTasks(whole, recs[:2]) != nil {
		t.Error("records of a chunked table must not resume a whole-table copy")
	}
}

func TestSameDefinition(t *testing.T) {
	a := "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=1001 DEFAULT CHARSET=utf8mb4"
	b := "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4"
	if !sameDefinition(a, b) {
		t.Error("AUTO_INCREMENT values are not part of the definition")
	}
	if sameDefinition(a, b+" COMMENT='x'") {
		t.Error("a comment is")
	}
}
