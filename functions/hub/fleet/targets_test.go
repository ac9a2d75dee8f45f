package fleet

import (
	"strings"
	"testing"
)

// testFleet is four agents: two web servers and a database in prod, a lab machine in staging.
var testFleet = []Target{
	{Ident: &AgentIdentity{ID: "ag-1", Name: "web-1"}, Labels: map[string]string{"env": "prod", "role": "web"}},
	{Ident: &AgentIdentity{ID: "ag-2", Name: "web-2"}, Labels: map[string]string{"env": "prod", "role": "web"}},
	{Ident: &AgentIdentity{ID: "ag-3", Name: "db-1"}, Labels: map[string]string{"env": "prod", "role": "db"}},
	{Ident: &AgentIdentity{ID: "ag-4", Name: "lab"}, Labels: map[string]string{"env": "staging"}},
}

func TestSelectTargets(t *testing.T) {
	all := testFleet
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

// TestMatches: one agent at a time, the union Select takes, where an expression that matches nothing
// (here, or anywhere) is no error.
func TestMatches(t *testing.T) {
	cases := []struct {
		exprs []string
		want  string
	}{
		{[]string{"all"}, "ag-1,ag-2,ag-3,ag-4"},
		{[]string{"env=prod,role=web"}, "ag-1,ag-2"},
		{[]string{"role=db", " lab "}, "ag-3,ag-4"},
		{[]string{"role=nope", "web-2"}, "ag-2"},
		{[]string{"role=nope"}, ""},
		{[]string{" ", ""}, ""},
		{nil, ""},
	}
	for _, c := range cases {
		var ids []string
		for _, a := range testFleet {
			if Matches(a, c.exprs) {
				ids = append(ids, a.Ident.ID)
			}
		}
		if got := strings.Join(ids, ","); got != c.want {
			t.Errorf("%q matches %s, want %s", c.exprs, got, c.want)
		}
	}
}
