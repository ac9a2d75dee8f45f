package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestSelectTargets(t *testing.T) {
	all := []target{
		{ident: &AgentIdentity{ID: "ag-1", Name: "web-1", Labels: map[string]string{"env": "prod", "role": "web"}}},
		{ident: &AgentIdentity{ID: "ag-2", Name: "web-2", Labels: map[string]string{"env": "prod", "role": "web"}}},
		{ident: &AgentIdentity{ID: "ag-3", Name: "db-1", Labels: map[string]string{"env": "prod", "role": "db"}}},
		{ident: &AgentIdentity{ID: "ag-4", Name: "lab", Labels: map[string]string{"env": "staging"}}},
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
		got, err := selectTargets(all, c.exprs)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: %v, want error %q", c.exprs, err, c.err)
			}
			continue
		}
		var ids []string
		for _, g := range got {
			ids = append(ids, g.ident.ID)
		}
		if err != nil || strings.Join(ids, ",") != c.want {
			t.Errorf("%v = %v (%v), want %s", c.exprs, ids, err, c.want)
		}
	}
}

func TestBellKeysOrderByTime(t *testing.T) {
	now := time.Now()
	before := bellKeyAt(now.Add(-time.Second))
	key := prefixBells + uuid.Must(uuid.NewV7()).String() + ".json"
	after := bellKeyAt(now.Add(time.Second))
	if !(before < key && key < after) {
		t.Fatalf("bell key %s not between %s and %s", key, before, after)
	}
	if at, ok := bellTime(key); !ok || at.Sub(now).Abs() > time.Second {
		t.Fatalf("bellTime(%s) = %v %v", key, at, ok)
	}
}

func TestValidIDs(t *testing.T) {
	for _, id := range []string{"", "a/b", "..", "x.json", strings.Repeat("a", 65), "a b"} {
		if validID(id) {
			t.Errorf("validID(%q) = true", id)
		}
	}
	for _, id := range []string{"ag-0123abcd", "01a20358-c47e-71d3-a67a-bcc563421fa5", "x_y"} {
		if !validID(id) {
			t.Errorf("validID(%q) = false", id)
		}
	}
	for name, want := range map[string]bool{"abc.json": true, "abc-cancel.json": true, "../x.json": false, "abc": false} {
		if validInboxName(name) != want {
			t.Errorf("validInboxName(%q) != %v", name, want)
		}
	}
}

func TestLimits(t *testing.T) {
	var l limits
	spec := rateSpec{perSecond: 1, burst: 3}
	for i := range 3 {
		if ok, _ := l.allow("a", spec); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.allow("a", spec)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.allow("b", spec); !ok {
		t.Fatal("another caller was slowed down by the first")
	}
}
