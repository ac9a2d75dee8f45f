package fleet

import (
	"strings"
	"testing"
)

// FuzzSelect feeds arbitrary target expressions, and an agent with arbitrary labels, to Select.
// Properties: nothing panics; what is selected is a subset of the fleet, in fleet order, without
// duplicates; every non-blank expression matched something or the whole call failed; and a selector
// written from an agent's own valid labels ("k=v") selects it (the round trip operators rely on).
func FuzzSelect(f *testing.F) {
	for _, s := range [][3]string{
		{"env=prod", "env", "prod"},
		{"env=prod,role=web", "role", "web"},
		{"all", "k", "v"},
		{"ag-1", "a.b/c", ""},
		{" web-1 ", "x", "y z"},
		{"=,=", "", "="},
		{",,,", "k", ","},
		{"k=v=w", "k", "v=w"},
		{"k=", "other", "v"},
		{"\x00=\xff", "é", "🙂"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, expr, key, value string) {
		fuzzed := map[string]string{"env": "staging"}
		validLabel := ValidLabels(map[string]string{key: value}) == nil
		if validLabel {
			fuzzed[key] = value
		}
		all := []Target{
			{Ident: &AgentIdentity{ID: "ag-1", Name: "web-1"}, Labels: map[string]string{"env": "prod", "role": "web"}},
			{Ident: &AgentIdentity{ID: "ag-2", Name: "db-1"}, Labels: map[string]string{"env": "prod", "role": "db"}},
			{Ident: &AgentIdentity{ID: "ag-3", Name: "fuzzed"}, Labels: fuzzed},
		}
		exprs := strings.Split(expr, "|") // several expressions in one input
		got, err := Select(all, exprs)
		if err == nil {
			if len(got) == 0 {
				t.Fatal("no error and no targets")
			}
			seen := map[string]bool{}
			last := -1
			for _, g := range got {
				i := indexOf(all, g.Ident.ID)
				if i < 0 || i <= last || seen[g.Ident.ID] {
					t.Fatalf("selection %v is not an ordered subset of the fleet without duplicates", got)
				}
				seen[g.Ident.ID], last = true, i
			}
			for _, e := range exprs {
				if strings.TrimSpace(e) == "" {
					continue
				}
				if _, err := Select(all, []string{e}); err != nil {
					t.Fatalf("expression %q matches nothing alone, yet the union was accepted", e)
				}
			}
		}
		if validLabel && key != "" {
			sel, err := Select(all, []string{key + "=" + value})
			if err != nil || indexOf(sel, "ag-3") < 0 {
				t.Fatalf("selector %q does not select the agent labelled with it: %v", key+"="+value, err)
			}
		}
	})
}

func indexOf(ts []Target, id string) int {
	for i, t := range ts {
		if t.Ident.ID == id {
			return i
		}
	}
	return -1
}
