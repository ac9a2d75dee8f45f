package yamlsrc

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestRead: a syntax error is one problem at the line (and, for JSON, the column) where the source
// broke; an empty document has no root and no problem; tab-indented JSON reads.
func TestRead(t *testing.T) {
	cases := []struct {
		name      string
		src       string
		line, col int
		want      string
		root      bool
	}{
		{"yaml syntax error", "a:\n  b: 1\n c: 2\n", 3, 2, "syntax error", false},
		{"json syntax error", "{\n  \"a\": 1\n  \"b\": 2\n}\n", 3, 3, "syntax error", false},
		{"empty", "", 0, 0, "", false},
		{"comment only", "# nothing here\n", 0, 0, "", false},
		{"tab-indented json", "{\n\t\"a\": [1, 2]\n}\n", 0, 0, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, _, p := Read([]byte(c.src))
			switch {
			case c.want == "" && p != nil:
				t.Fatalf("problem %v, want none", p)
			case c.want != "" && (p == nil || p.Line != c.line || p.Column != c.col || !strings.Contains(p.Message, c.want)):
				t.Fatalf("problem %+v, want %d:%d %q", p, c.line, c.col, c.want)
			case (root != nil) != c.root:
				t.Fatalf("root %v, want one: %v", root, c.root)
			}
		})
	}
}

// TestWalker: wrong shapes, unknown and repeated keys and aliases are problems at their place, in
// source order, under the subject's name.
func TestWalker(t *testing.T) {
	src := "name: [x]\ncount: -2\nname: again\nextra: 1\nlist: [a, {b: 1}]\nalias: &a x\n"
	root, _, p := Read([]byte(src))
	if p != nil {
		t.Fatal(p)
	}
	var ps Problems
	seen := map[string]int{}
	w := Walker{Problems: &ps, Record: func(n *yaml.Node, path string) { seen[path] = n.Line }}
	w.Pairs(root, "", []string{"name", "count", "list", "alias"}, func(key string, _, v *yaml.Node, path string) {
		switch key {
		case "name":
			w.Str(v, path)
		case "count":
			w.Int(v, path)
		case "list":
			w.Strings(v, path, false)
		}
	})
	err := ps.Err("thing")
	want := []string{
		`1:7: name: want a string, got a list`,
		`2:8: count: want a whole number ≥ 0, got "-2"`,
		`3:1: name: "name" given twice`,
		`4:1: extra: unknown field "extra" (known: name, count, list, alias)`,
		`5:11: list[1]: want a string, got a mapping`,
		`6:8: alias: anchors, aliases and merge keys are not supported`,
	}
	if got := err.Error(); got != "thing refused:\n"+strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if seen["list[0]"] != 5 || seen["count"] != 2 {
		t.Errorf("Record saw %v", seen)
	}
	if (&Problems{}).Err("thing") != nil {
		t.Error("no problems must be no error")
	}
}
