// Package yamlsrc is how the hub reads what operators write by hand — workflows, plans — in YAML or
// JSON (JSON is read as YAML, so positions work for both): the document tree, and every problem found
// in it placed at its line and column, so an author goes straight to it and one round trip fixes
// every mistake. The packages that own a format (functions/workflow, functions/plan) walk the tree with
// a Walker and say what their fields mean; this package knows no format.
package yamlsrc

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Problem is one reason a source is refused, placed so an author can go straight to it.
type Problem struct {
	// Line and Column are 1-based positions in the source; 0 when unknown (YAML syntax errors carry a
	// line only).
	Line   int `json:"line"`
	Column int `json:"column"`
	// Path names the value, e.g. "steps[2].condition" or "units[1].requires[0]".
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// String renders "line:column: path: message", the form editors and CI annotate.
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Line > 0 && p.Column > 0:
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	case p.Line > 0:
		fmt.Fprintf(&b, "%d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is every problem found in a source, not just the first. The format's parser returns it (as
// error) for anything that is the author's fault.
type Error struct {
	// Subject says what was refused ("workflow", "plan"), to start the message.
	Subject  string    `json:"-"`
	Problems []Problem `json:"problems"`
}

// Error lists the problems one per line, in source order.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.TrimSpace(e.Subject+" refused:") + "\n" + strings.Join(lines, "\n")
}

// Problems collects Problems while a source is walked.
type Problems struct {
	List []Problem
}

// Add records a problem at line:col (0 when unknown).
func (ps *Problems) Add(line, col int, path, format string, args ...any) {
	ps.List = append(ps.List, Problem{Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...)})
}

// Err is nil without problems, else an *Error of subject with the problems in source order.
func (ps *Problems) Err(subject string) error {
	if len(ps.List) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.List, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &Error{Subject: subject, Problems: ps.List}
}

// Read parses src into its document's root node. It returns the (possibly rewritten, see untabJSON)
// bytes the positions refer to; a nil root with no problem is an empty document, which the caller
// refuses in its own words. A syntax error is one problem, placed as well as the parsers allow.
func Read(src []byte) (root *yaml.Node, text []byte, problem *Problem) {
	src = untabJSON(src)
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		p := syntaxProblem(src, err)
		return nil, src, &p
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, src, nil
	}
	return doc.Content[0], src, nil
}

// untabJSON replaces tabs with spaces in a document that looks like JSON. YAML forbids tabs as
// indentation and JSON is often tab-indented; JSON strings cannot hold a raw tab, so the replacement
// changes no value, and one byte for one keeps every column.
func untabJSON(src []byte) []byte {
	if !looksJSON(src) || !bytes.ContainsRune(src, '\t') {
		return src
	}
	return bytes.ReplaceAll(src, []byte("\t"), []byte(" "))
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem places a syntax error. JSON errors are placed exactly by encoding/json. The YAML parser
// reports the line where the enclosing construct began, not where it broke, so the broken line is found
// as the shortest prefix of the document that fails the same way; the column then points at the first
// character of that line's content, which is where an editor should jump.
func syntaxProblem(src []byte, err error) Problem {
	if looksJSON(src) {
		var v any
		var se *json.SyntaxError
		if jerr := json.Unmarshal(src, &v); errors.As(jerr, &se) {
			line, col := lineCol(src, int(se.Offset)-1)
			return Problem{Line: line, Column: col, Message: "syntax error: " + se.Error()}
		}
	}
	msg := err.Error()
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return Problem{Message: "syntax error: " + strings.TrimPrefix(msg, "yaml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	lines := bytes.SplitAfter(src, []byte("\n"))
	if len(src) <= 256<<10 {
		prefix := bytes.Join(lines[:min(line, len(lines))], nil)
		for n := line; n < len(lines) && n < line+2000; n++ {
			var doc yaml.Node
			perr := yaml.Unmarshal(prefix, &doc)
			if pm := yamlLineRE.FindStringSubmatch(fmt.Sprint(perr)); pm != nil && pm[2] == m[2] {
				line = n
				break
			}
			prefix = append(prefix, lines[n]...)
		}
	}
	col := 0
	if line >= 1 && line <= len(lines) {
		l := bytes.TrimRight(lines[line-1], "\r\n")
		col = len(l) - len(bytes.TrimLeft(l, " \t")) + 1
	}
	return Problem{Line: line, Column: col, Message: "syntax error: " + m[2]}
}

func looksJSON(src []byte) bool {
	t := bytes.TrimLeft(src, " \t\r\n\ufeff")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// lineCol turns a byte offset into a 1-based line and column (in characters).
func lineCol(src []byte, off int) (int, int) {
	off = max(0, min(off, len(src)))
	before := src[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

// Walker reads the values of a document tree, refusing wrong shapes as problems at their place.
type Walker struct {
	Problems *Problems
	// Record, when set, is told where every value the walker visits is (Pairs' values, Strings'
	// elements), so a format can place problems it finds later (a CEL error inside a condition).
	Record func(n *yaml.Node, path string)
}

// Errf records a problem at n.
func (w *Walker) Errf(n *yaml.Node, path, format string, args ...any) {
	w.Problems.Add(n.Line, n.Column, path, format, args...)
}

func (w *Walker) record(n *yaml.Node, path string) {
	if w.Record != nil {
		w.Record(n, path)
	}
}

// Pairs walks a mapping, refusing duplicate keys, non-scalar keys, keys outside known (nil: any key)
// and anchors, aliases and merge keys, and calls fn for each accepted key with the path of its value.
func (w *Walker) Pairs(n *yaml.Node, path string, known []string, fn func(key string, k, v *yaml.Node, path string)) {
	if !w.Kind(n, path, yaml.MappingNode, "a mapping") {
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.Errf(k, path, "keys must be plain words")
			continue
		}
		key := k.Value
		sub := key
		if path != "" {
			sub = path + "." + key
		}
		if seen[key] {
			w.Errf(k, sub, "%q given twice", key)
			continue
		}
		seen[key] = true
		if known != nil && !slices.Contains(known, key) {
			w.Errf(k, sub, "unknown field %q (known: %s)", key, strings.Join(known, ", "))
			continue
		}
		if v.Kind == yaml.AliasNode || v.Anchor != "" || key == "<<" {
			w.Errf(v, sub, "anchors, aliases and merge keys are not supported")
			continue
		}
		w.record(v, sub)
		fn(key, k, v, sub)
	}
}

// Kind refuses a node of the wrong shape; what names the shape wanted ("a list of steps").
func (w *Walker) Kind(n *yaml.Node, path string, want yaml.Kind, what string) bool {
	if n.Kind == want {
		return true
	}
	if n.Kind == yaml.AliasNode {
		w.Errf(n, path, "anchors, aliases and merge keys are not supported")
		return false
	}
	w.Errf(n, path, "want %s, got %s", what, Describe(n))
	return false
}

// Describe names what a node is, for "want …, got …".
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// Str reads a scalar as text: a string, or a number or boolean written bare (params: {count: 3}).
func (w *Walker) Str(n *yaml.Node, path string) (string, bool) {
	if !w.Kind(n, path, yaml.ScalarNode, "a string") {
		return "", false
	}
	if n.ShortTag() == "!!null" {
		w.Errf(n, path, "want a string, got nothing")
		return "", false
	}
	return n.Value, true
}

// Int reads a non-negative integer.
func (w *Walker) Int(n *yaml.Node, path string) int {
	if !w.Kind(n, path, yaml.ScalarNode, "a whole number") {
		return 0
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || n.ShortTag() != "!!int" || v < 0 {
		w.Errf(n, path, "want a whole number ≥ 0, got %q", n.Value)
		return 0
	}
	return v
}

// Strings reads a list of strings, or with single one string standing for a list of one (targets: all).
func (w *Walker) Strings(n *yaml.Node, path string, single bool) []string {
	if single && n.Kind == yaml.ScalarNode {
		if s, ok := w.Str(n, path); ok {
			return []string{s}
		}
		return nil
	}
	if !w.Kind(n, path, yaml.SequenceNode, "a list of strings") {
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		sub := Index(path, i)
		w.record(e, sub)
		if s, ok := w.Str(e, sub); ok {
			out = append(out, s)
		}
	}
	return out
}

// Index is the path of element i of the list at parent: "steps[2]".
func Index(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }
