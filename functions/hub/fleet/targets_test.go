package fleet

import (
	"strings"
	"testing"
)

func TestSelectTargets(t *testing.T) {
	all := []Target{
		{Ident: &AgentIdentity{ID: "ag-1", Name: "web-1"}, Labels: map[string]string{"env": "prod", "role": "web"}},
		{Ident: &AgentIdentity{ID: "ag-2", Name: "web-2"}, Labels: map[string]string{"env": "prod", "role": "web"}},
		{Ident: &AgentIdentity{ID: "ag-3", Name: "db-1"}, Labels: map[string]string{"env": "prod", "role": "db"}},
		{Ident: &AgentIdentity{ID: "ag-4", Name: "lab"}, Labels: map[string]string{"env": "staging"}},
	}
	cases := []struct {
		exprs []string
		want  string
		err   string
	}{
		{[]string{"all"}, "ag-1,ag-2,ag-3,ag-4", ""},
		{[]string{"env=prod,role=web"}, "ag-1,ag-2", ""},
		{[]string{"role=db", "lab"}, "ag-3,ag-4", ""}, // union
		{[]string{"ag-2", "web-2"}, "ag-2", ""},       // id and name of one agent: once
		{[]string{"env=prod", "role=nope"}, "", `"role=nope" matches no agent`},
		{[]string{"web"}, "", "matches no agent"},
		{[]string{" "}, "", "no targets"},
	}
	for _, c := range cases {
		got, err := Select(all, c.exprs)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: %v, want error %q", c.exprs, err, c.err)
			}
			continue
		}
		var ids []string
		for _, g := range got {
			ids = append(ids, g.Ident.ID)
		}
		if err != nil || strings.Join(ids, ",") != c.want {
			t.Errorf("%v = %v (%v), want %s", c.exprs, ids, err, c.want)
		}
	}
}
