package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	// maxVisits bounds how many YAML values Parse looks at, counting every
	// expansion of an alias, so an alias bomb fails fast instead of
	// exhausting memory.
	maxVisits = 100_000
	// maxProblems bounds how many problems Parse reports.
	maxProblems = 200
)

// Parse decodes a recipe strictly from YAML, applies defaults and validates
// it. On success the recipe is valid and complete. On any failure it returns
// nil and a Problems error holding every problem found: YAML syntax, more
// than one document, unknown fields, duplicate keys, wrong types and
// validation, in input order. Input larger than MaxSize is rejected unread.
func Parse(data []byte) (*Recipe, error) {
	if len(data) > MaxSize {
		return nil, Problems{{Msg: fmt.Sprintf("recipe is larger than %d MiB", MaxSize>>20)}}
	}
	root, ps := parseDocument(data)
	if ps != nil {
		return nil, ps
	}

	w := walker{lines: map[string]int{}, ends: map[string]int{}, bad: map[string]bool{}, active: map[*yaml.Node]bool{}}
	clean := w.walk(root, recipeType, "")
	if w.aborted {
		return nil, Problems{{Msg: fmt.Sprintf("recipe is too large: more than %d values, counting every use of an alias", maxVisits)}}
	}
	if clean == nil {
		return nil, w.problems.sorted()
	}

	var r Recipe
	if err := decodeNode(clean, &r); err != nil {
		// The walk accepted every value it kept, so this is a bug; the error
		// is not shown because it could quote a value.
		w.problems.add("", 0, "recipe could not be decoded")
		return nil, w.problems.sorted()
	}
	r.ApplyDefaults()
	if err := r.Validate(); err != nil {
		for _, p := range err.(Problems) {
			if w.covered(p.Path) {
				continue // already reported as an unknown or ill-typed value
			}
			w.problems.add(p.Path, w.orderOf(p.Path), "%s", p.Msg)
		}
	}
	if len(w.problems) > 0 {
		return nil, w.problems.sorted()
	}
	return &r, nil
}

// Load reads the recipe file at path and parses it with Parse. A read error
// names the path; a parse failure is returned as Parse's Problems.
func Load(path string) (*Recipe, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load recipe: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("load recipe %s: %w", path, err)
	}
	return Parse(data)
}

// parseDocument parses data into the root node of its single YAML document.
func parseDocument(data []byte) (*yaml.Node, Problems) {
	fail := func(msg string) (*yaml.Node, Problems) {
		return nil, Problems{{Msg: msg}}
	}
	var doc, extra yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := safeYAML(func() error { return dec.Decode(&doc) })
	switch {
	case errors.Is(err, io.EOF):
		return fail("recipe is empty")
	case err != nil:
		return fail(yamlMessage(err))
	}
	err = safeYAML(func() error { return dec.Decode(&extra) })
	if !errors.Is(err, io.EOF) {
		return fail("recipe must be a single YAML document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return fail("recipe is empty")
	}
	root := doc.Content[0]
	if isNull(root) {
		return fail("recipe is empty")
	}
	if root.Kind != yaml.MappingNode {
		return fail("recipe must be a mapping of fields")
	}
	return root, nil
}

// safeYAML runs f, turning a panic inside the YAML library into an error so
// that no input can crash Parse.
func safeYAML(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("yaml: invalid document")
		}
	}()
	return f()
}

// decodeNode decodes a node that the walker built into v.
func decodeNode(n *yaml.Node, v any) error {
	return safeYAML(func() error { return n.Decode(v) })
}

// yamlMessage turns a YAML syntax error into a problem message.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return "invalid YAML: " + msg
}

// lineProblem is a problem with its place in the input, for sorting: twice
// the line it is on, or, for a value missing from a mapping, one more than
// twice the mapping's last line.
type lineProblem struct {
	Problem
	order int
}

type lineProblems []lineProblem

func (ps *lineProblems) add(path string, order int, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	*ps = append(*ps, lineProblem{Problem{Path: path, Msg: msg}, order})
}

// sorted returns the problems in input order, keeping discovery order for
// problems at the same place, and cut to maxProblems.
func (ps *lineProblems) sorted() Problems {
	s := *ps
	sort.SliceStable(s, func(i, j int) bool { return s[i].order < s[j].order })
	out := make(Problems, 0, len(s))
	for i, p := range s {
		if i == maxProblems {
			out = append(out, Problem{Msg: fmt.Sprintf("and %d more problems", len(s)-maxProblems)})
			break
		}
		out = append(out, p.Problem)
	}
	return out
}

// walker checks a YAML tree against the recipe's Go types, following the
// yaml struct tags, and builds a cleaned copy of the tree that holds only
// the values it accepted, with aliases expanded and merge keys applied, so
// that decoding the copy cannot fail.
type walker struct {
	problems lineProblems
	lines    map[string]int      // path → input line, for ordering problems
	ends     map[string]int      // path → last input line of its value
	bad      map[string]bool     // paths with structural problems
	active   map[*yaml.Node]bool // anchored nodes being walked, to catch alias cycles
	visits   int
	aborted  bool
}

var (
	recipeType   = reflect.TypeOf(Recipe{})
	durationType = reflect.TypeOf(Duration(0))
)

// fail records a structural problem at path, found on line.
func (w *walker) fail(path string, line int, format string, args ...any) {
	if path != "" {
		w.bad[path] = true
	}
	w.problems.add(path, 2*line, format, args...)
	w.extend(parent(path), line)
}

// seen records that path is on line.
func (w *walker) seen(path string, line int) {
	w.lines[path] = line
	w.extend(path, line)
}

// extend records that path and its ancestors reach at least line.
func (w *walker) extend(path string, line int) {
	for p := path; ; p = parent(p) {
		w.ends[p] = max(w.ends[p], line)
		if p == "" {
			return
		}
	}
}

// covered reports whether path is at or under a path with a structural
// problem, whose validation problems would only repeat it.
func (w *walker) covered(path string) bool {
	for p := path; p != ""; p = parent(p) {
		if w.bad[p] {
			return true
		}
	}
	return false
}

// orderOf returns the sort order of a problem at path: the input line of
// path, or for a missing value, just after the last line of its nearest
// ancestor present in the input.
func (w *walker) orderOf(path string) int {
	if l, ok := w.lines[path]; ok {
		return 2 * l
	}
	for p := parent(path); ; p = parent(p) {
		if _, ok := w.lines[p]; ok || p == "" {
			return 2*w.ends[p] + 1
		}
	}
}

// resolve follows an alias to its anchored node. It returns nil, having
// recorded a problem, for an alias to a node that contains the alias.
func (w *walker) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		if n.Alias == nil || w.active[n.Alias] {
			w.fail(path, n.Line, "alias *%s refers to a value that contains it", n.Value)
			return nil
		}
		n = n.Alias
	}
	return n
}

// count charges one visit against the budget and reports whether the walk
// may go on.
func (w *walker) count() bool {
	if w.aborted {
		return false
	}
	w.visits++
	if w.visits > maxVisits {
		w.aborted = true
		return false
	}
	return true
}

// walk checks n (which may be an alias, but not null) against type t and
// returns the cleaned node, or nil if n is unusable (the problem is recorded).
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) *yaml.Node {
	if !w.count() {
		return nil
	}
	if n = w.resolve(n, path); n == nil {
		return nil
	}
	if n.Anchor != "" {
		w.active[n] = true
		defer delete(w.active, n)
	}
	switch {
	case t == durationType:
		return w.duration(n, path)
	case t.Kind() == reflect.Struct, t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		return w.mapping(n, t, path)
	case t.Kind() == reflect.Slice:
		return w.sequence(n, t, path)
	case t.Kind() == reflect.String:
		return w.str(n, path)
	case t.Kind() == reflect.Bool:
		return w.boolean(n, path)
	case isInt(t.Kind()) || isUint(t.Kind()):
		return w.integer(n, t, path)
	}
	panic("recipe: walker has no rule for type " + t.String())
}

// typeMsg says what a value of type t must be.
func typeMsg(t reflect.Type) string {
	switch {
	case t == durationType:
		return `must be a duration such as "5s"`
	case t.Kind() == reflect.Struct, t.Kind() == reflect.Map:
		return "must be a mapping"
	case t.Kind() == reflect.Slice:
		return "must be a list"
	case t.Kind() == reflect.String:
		return "must be a string"
	case t.Kind() == reflect.Bool:
		return "must be true or false"
	case isUint(t.Kind()):
		return "must be a non-negative integer"
	}
	return "must be an integer"
}

func isInt(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Int64
}

func isUint(k reflect.Kind) bool {
	return k >= reflect.Uint && k <= reflect.Uint64
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// zeroNode returns a node that decodes to the zero value of t.
func zeroNode(t reflect.Type) *yaml.Node {
	switch {
	case t == durationType:
		return scalar("!!str", "0s")
	case t.Kind() == reflect.Struct, t.Kind() == reflect.Map:
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	case t.Kind() == reflect.Slice:
		return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	case t.Kind() == reflect.String:
		return scalar("!!str", "")
	case t.Kind() == reflect.Bool:
		return scalar("!!bool", "false")
	}
	return scalar("!!int", "0")
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// str accepts any plain scalar as a string, as YAML users expect
// (region: 2024 is the string "2024").
func (w *walker) str(n *yaml.Node, path string) *yaml.Node {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
			return scalar("!!str", n.Value)
		}
	}
	w.fail(path, n.Line, "must be a string")
	return nil
}

// boolean accepts only true and false (not YAML 1.1's yes/no/on/off).
func (w *walker) boolean(n *yaml.Node, path string) *yaml.Node {
	var b bool
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" && decodeNode(n, &b) == nil {
		return scalar("!!bool", strconv.FormatBool(b))
	}
	w.fail(path, n.Line, "must be true or false")
	return nil
}

// integer accepts an integer scalar that fits in type t.
func (w *walker) integer(n *yaml.Node, t reflect.Type, path string) *yaml.Node {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		w.fail(path, n.Line, "%s", typeMsg(t))
		return nil
	}
	var i int64
	var u uint64
	ierr := decodeNode(n, &i)
	uerr := decodeNode(n, &u)
	v := reflect.New(t).Elem()
	switch {
	case ierr != nil && uerr != nil:
		w.fail(path, n.Line, "%s", typeMsg(t))
	case isInt(t.Kind()) && ierr == nil && !v.OverflowInt(i):
		return scalar("!!int", strconv.FormatInt(i, 10))
	case isUint(t.Kind()) && uerr == nil && !v.OverflowUint(u):
		return scalar("!!int", strconv.FormatUint(u, 10))
	case isUint(t.Kind()):
		w.fail(path, n.Line, "must be 0-%d", uint64(1)<<t.Bits()-1)
	default:
		w.fail(path, n.Line, "must be an integer %d to %d", -int64(1)<<(t.Bits()-1), int64(1)<<(t.Bits()-1)-1)
	}
	return nil
}

// duration accepts a scalar holding a Go duration string.
func (w *walker) duration(n *yaml.Node, path string) *yaml.Node {
	if n.Kind != yaml.ScalarNode {
		w.fail(path, n.Line, `must be a duration such as "5s"`)
		return nil
	}
	if _, err := time.ParseDuration(n.Value); err != nil {
		w.fail(path, n.Line, "invalid duration %s", quoteShort(n.Value))
		return nil
	}
	return scalar("!!str", n.Value)
}

// sequence checks each element of a list; an unusable element is replaced
// by a zero value so that later elements keep their indexes.
func (w *walker) sequence(n *yaml.Node, t reflect.Type, path string) *yaml.Node {
	if n.Kind != yaml.SequenceNode {
		w.fail(path, n.Line, "must be a list")
		return nil
	}
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for i, e := range n.Content {
		p := index(path, i)
		w.seen(p, e.Line)
		var c *yaml.Node
		if r := w.resolve(e, p); r != nil && isNull(r) {
			w.fail(p, e.Line, "%s", typeMsg(t.Elem()))
		} else if r != nil {
			c = w.walk(e, t.Elem(), p)
		}
		if w.aborted {
			return nil
		}
		if c == nil {
			c = zeroNode(t.Elem()) // keeps the indexes of later elements
		}
		out.Content = append(out.Content, c)
	}
	return out
}

// entry is one key/value pair of a mapping.
type entry struct{ key, value *yaml.Node }

// mapping checks a mapping against struct type t: every key must be a field,
// at most once; values must fit their fields. Merge keys ("<<: *base") are
// applied: the mapping's own keys win over merged ones, and earlier merged
// mappings win over later ones. For a map type t (keys that are data, such
// as alert label matchers) any key is accepted, its value must fit t's
// element type, and a null or unusable value is reported, never dropped:
// dropping it would silently widen the map's meaning.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		w.fail(path, n.Line, "must be a mapping")
		return nil
	}
	isMap := t.Kind() == reflect.Map
	var fields map[string]reflect.StructField
	if !isMap {
		fields = fieldsOf(t)
	}
	var entries []entry
	w.entries(n, path, &entries)
	if w.aborted {
		return nil
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	done := map[string]bool{}
	for _, e := range entries {
		name := e.key.Value
		p := field(path, name)
		f, known := fields[name]
		if isMap {
			f.Type, known = t.Elem(), true
		}
		if !known {
			w.fail(p, e.key.Line, "unknown field (line %d)", e.key.Line)
			continue
		}
		if done[name] {
			continue // overridden: a higher-priority entry came first
		}
		done[name] = true
		w.seen(p, e.key.Line)
		var c *yaml.Node
		switch v := w.resolve(e.value, p); {
		case v == nil: // an alias cycle, reported
		case isNull(v) && !isMap:
			continue // null leaves the field at its zero value
		default:
			c = w.walk(e.value, f.Type, p)
		}
		if c == nil && isMap {
			c = zeroNode(f.Type) // the key stays, so the map is not reported empty as well
		}
		if c != nil {
			out.Content = append(out.Content, scalar("!!str", name), c)
		}
		if w.aborted {
			return nil
		}
	}
	return out
}

// entries appends the pairs of mapping n to out, highest priority first: its
// own keys in order, then those of each mapping merged in with "<<".
// Duplicate and non-string keys are reported and left out.
func (w *walker) entries(n *yaml.Node, path string, out *[]entry) {
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !w.count() {
			return
		}
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		line := k.Line
		if k = w.resolve(k, path); k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.problems.add(path, 2*line, "keys must be strings (line %d)", line)
			w.extend(path, line)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.fail(field(path, k.Value), line, "duplicate key (line %d, first at line %d)", line, first)
			continue
		}
		seen[k.Value] = line
		*out = append(*out, entry{k, v})
	}
	for _, m := range merges {
		line := m.Line
		if m = w.resolve(m, path); m == nil {
			continue
		}
		list := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			list = m.Content
		}
		for _, mm := range list {
			if mm = w.resolve(mm, path); mm == nil {
				continue
			}
			if mm.Kind != yaml.MappingNode {
				w.problems.add(path, 2*line, "merge key (<<) must refer to a mapping or a list of mappings (line %d)", line)
				continue
			}
			if w.active[mm] {
				w.problems.add(path, 2*line, "merge key (<<) refers to a mapping that contains it (line %d)", line)
				continue
			}
			w.active[mm] = true
			w.entries(mm, path, out)
			delete(w.active, mm)
			if w.aborted {
				return
			}
		}
	}
}

// fieldsOf maps the yaml names of t's fields to the fields.
func fieldsOf(t reflect.Type) map[string]reflect.StructField {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.StructField)
	}
	m := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f
	}
	fieldCache.Store(t, m)
	return m
}

var fieldCache sync.Map
