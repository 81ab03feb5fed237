package recipe

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a recipe: Path locates it in the document
// ("sites[1].db.port"; empty for the document as a whole) and Msg says what
// is expected ("must be 1-65535"). Msg never contains a secret value.
type Problem struct{ Path, Msg string }

// String returns "path: msg", or just msg when Path is empty.
func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Problems is every problem found in a recipe, in input order (Parse) or in
// field order (Validate). A non-empty Problems is an error; Parse and
// Validate never return an empty one as an error.
type Problems []Problem

// Error returns one problem per line.
func (ps Problems) Error() string {
	switch len(ps) {
	case 0:
		return "no problems"
	case 1:
		return ps[0].String()
	}
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// add records a problem at path.
func (ps *Problems) add(path, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	*ps = append(*ps, Problem{Path: path, Msg: msg})
}

// err returns ps as an error, or nil when it is empty.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// field joins a field name onto a path: field("sites[0]", "db") is "sites[0].db".
func field(path, name string) string {
	if !plainKey(name) {
		name = quoteShort(name)
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

// index joins a list index onto a path: index("sites", 2) is "sites[2]".
func index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// plainKey reports whether a key can appear in a path unquoted.
func plainKey(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parent returns the path one level up: "sites[0].db" for "sites[0].db.port",
// "sites" for "sites[0]", and "" for a top-level field.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
