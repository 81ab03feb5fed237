package snapshot

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// valueKind is how a column's value travels from the source's text
// protocol (character_set_results=binary, time_zone UTC) to an SQL literal
// on the target, byte for byte.
type valueKind int

const (
	// kindString: quoted with backslash escapes; the target session's
	// character_set_connection is binary, so the bytes reach the column
	// unconverted (character data, temporal values, JSON, ENUM/SET text,
	// geometry in its internal format, INET6/UUID text).
	kindString valueKind = iota
	// kindNumber: the server's text (integers, DECIMAL, YEAR, DOUBLE
	// printed round-trip exact), unquoted.
	kindNumber
	// kindFloat: a FLOAT column, selected as CAST(col AS DOUBLE): MariaDB
	// prints FLOAT with 6 significant digits, which loses bits; the
	// double of a float is exact and converts back exactly.
	kindFloat
	// kindBits: BIT(n), whose text-protocol value is raw bytes: a hex
	// literal (X'…'), which the column takes as a number.
	kindBits
	// kindASCII: INET4, INET6 and UUID, whose text form must arrive as a
	// character string (_latin1'…'): these types read a binary string as
	// their raw 4- or 16-byte form and, outside strict mode, store NULL
	// for a binary string of another length (checked on 10.11).
	kindASCII
)

// boundKind is how a primary key column's value is written in a WHERE
// bound so that the comparison orders exactly as ORDER BY on the column.
type boundKind int

const (
	boundNone     boundKind = iota // not chunkable
	boundNumber                    // unquoted number
	boundText                      // CONVERT(_binary'…' USING cs) COLLATE collation
	boundBinary                    // _binary'…' (BINARY/VARBINARY: bytewise order)
	boundTemporal                  // _latin1'…', converted to the column's type (DATE, DATETIME, TIMESTAMP, TIME, INET6, UUID)
)

// column is one copied column of a table.
type column struct {
	Name      string
	DataType  string // information_schema DATA_TYPE, lower case
	Charset   string // CHARACTER_SET_NAME, empty for non-character types
	Collation string
	Kind      valueKind
	Bound     boundKind
}

// classify sets Kind and Bound from DataType and character set.
func (c *column) classify() {
	c.Kind, c.Bound = kindString, boundNone
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "year":
		c.Kind, c.Bound = kindNumber, boundNumber
	case "double", "real", "double precision":
		c.Kind = kindNumber
	case "float":
		c.Kind = kindFloat
	case "bit":
		c.Kind = kindBits
	case "char", "varchar":
		if c.Charset == "" || c.Charset == "binary" {
			c.Bound = boundBinary
		} else {
			c.Bound = boundText
		}
	case "binary", "varbinary":
		c.Bound = boundBinary
	case "date", "datetime", "timestamp", "time":
		c.Bound = boundTemporal
	case "inet6", "inet4", "uuid":
		c.Kind, c.Bound = kindASCII, boundTemporal
	}
}

// selectExpr is the expression the reader selects for c.
func (c column) selectExpr() string {
	if c.Kind == kindFloat {
		return "CAST(" + quoteIdent(c.Name) + " AS DOUBLE)"
	}
	return quoteIdent(c.Name)
}

// appendValue writes v (nil = NULL) as the literal for kind k.
func appendValue(q []byte, k valueKind, v []byte) []byte {
	if v == nil {
		return append(q, "NULL"...)
	}
	switch k {
	case kindNumber, kindFloat:
		if plainNumber(v) {
			return append(q, v...)
		}
		return appendQuoted(q, v)
	case kindBits:
		if len(v) == 0 {
			return append(q, "0"...)
		}
		q = append(q, "X'"...)
		q = hex.AppendEncode(q, v)
		return append(q, '\'')
	case kindASCII:
		q = append(q, "_latin1"...)
	}
	return appendQuoted(q, v)
}

// plainNumber reports whether v is safe to write unquoted.
func plainNumber(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9', c == '.', c == '-', c == '+', c == 'e', c == 'E':
		default:
			return false
		}
	}
	return true
}

// appendQuoted writes b as a '…' literal with backslash escapes. The
// sessions that read it run without NO_BACKSLASH_ESCAPES (set by Drover).
func appendQuoted(q, b []byte) []byte {
	q = append(q, '\'')
	start := 0
	for i, c := range b {
		var esc byte
		switch c {
		case 0:
			esc = '0'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		case '\\':
			esc = '\\'
		case '\'':
			esc = '\''
		case 0x1a:
			esc = 'Z'
		default:
			continue
		}
		q = append(q, b[start:i]...)
		q = append(q, '\\', esc)
		start = i + 1
	}
	q = append(q, b[start:]...)
	return append(q, '\'')
}

// appendBound writes one primary key column's value for a WHERE bound.
func appendBound(q []byte, c column, v []byte) []byte {
	switch c.Bound {
	case boundNumber:
		if plainNumber(v) {
			return append(q, v...)
		}
		return appendQuoted(q, v)
	case boundText:
		q = append(q, "CONVERT(_binary"...)
		q = appendQuoted(q, v)
		q = append(q, " USING "...)
		q = append(q, c.Charset...)
		q = append(q, ") COLLATE "...)
		return append(q, c.Collation...)
	case boundBinary:
		q = append(q, "_binary"...)
		return appendQuoted(q, v)
	}
	// A character string whatever the session's character set (see
	// kindASCII).
	q = append(q, "_latin1"...)
	return appendQuoted(q, v)
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// key is a primary key value: one raw text-protocol value per key column.
// A nil key is unbounded (−∞ as a lower bound, +∞ as an upper one).
type key [][]byte

// encodeKey serialises k for drover.clone_progress: per column a uvarint
// length and the bytes. nil stays nil (SQL NULL).
func encodeKey(k key) []byte {
	if k == nil {
		return nil
	}
	out := []byte{}
	for _, v := range k {
		out = binary.AppendUvarint(out, uint64(len(v)))
		out = append(out, v...)
	}
	return out
}

// decodeKey is the inverse of encodeKey for a key of n columns.
func decodeKey(b []byte, n int) (key, error) {
	if b == nil {
		return nil, nil
	}
	k := make(key, 0, n)
	for i := 0; i < n; i++ {
		l, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < l {
			return nil, errors.New("malformed key")
		}
		k = append(k, append([]byte{}, b[w:w+int(l)]...))
		b = b[w+int(l):]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("malformed key: %d bytes left over", len(b))
	}
	return k, nil
}

// keyRange is the half-open key interval (Lo, Hi]; nil ends are unbounded.
type keyRange struct {
	Lo, Hi key
}

// rangeCond is the WHERE condition selecting the rows of r on a table
// whose primary key columns are pk; "" when r is unbounded on both sides.
// A composite key expands (a,b) > (x,y) into a > x OR (a = x AND b > y),
// which MariaDB's range optimizer turns into index ranges.
func rangeCond(pk []column, r keyRange) string {
	var parts []string
	if r.Lo != nil {
		parts = append(parts, "("+tupleCmp(pk, r.Lo, ">", 0)+")")
	}
	if r.Hi != nil {
		parts = append(parts, "("+tupleCmp(pk, r.Hi, "<=", 0)+")")
	}
	return strings.Join(parts, " AND ")
}

// tupleCmp writes (pk[i:]) op (v[i:]) for op ">" or "<=".
func tupleCmp(pk []column, v key, op string, i int) string {
	col := quoteIdent(pk[i].Name)
	lit := string(appendBound(nil, pk[i], v[i]))
	if i == len(pk)-1 {
		return col + " " + op + " " + lit
	}
	strict := ">"
	if op == "<=" {
		strict = "<"
	}
	return col + " " + strict + " " + lit + " OR (" + col + " = " + lit + " AND (" + tupleCmp(pk, v, op, i+1) + "))"
}
