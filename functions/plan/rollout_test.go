package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/functions/yamlsrc"
)

const units = "units:\n  - {name: a, type: file, spec: {path: /x}}\n"

// TestParseRollout: the rollout section reads into its fields, with its defaults.
func TestParseRollout(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want *Rollout
	}{
		{"none", "targets: all\n" + units, nil},
		{"defaults", "targets: all\nrollout: {}\n" + units, &Rollout{First: 1, Waves: 1}},
		{"all fields", "targets: all\nrollout:\n  first: 2\n  waves: 3\n  bake: 1m\n  health: units.all(u, u.state == \"converged\")\n  maxFailed: 1\n" + units,
			&Rollout{First: 2, Waves: 3, BakeSeconds: 60, Health: `units.all(u, u.state == "converged")`, MaxFailed: 1}},
		{"percent", "targets: all\nrollout: {first: 10%}\n" + units, &Rollout{FirstPercent: 10, Waves: 1}},
		{"bake zero", "targets: all\nrollout: {bake: 0}\n" + units, &Rollout{First: 1, Waves: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse([]byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(s.Rollout) != fmt.Sprint(c.want) {
				t.Fatalf("rollout %+v, want %+v", s.Rollout, c.want)
			}
		})
	}
}

// TestRolloutRefused: each mistake in a rollout section is placed at its line and column.
func TestRolloutRefused(t *testing.T) {
	cases := []struct {
		name      string
		rollout   string
		line, col int
		path      string
		want      string
	}{
		{"not a mapping", "rollout: fast\n", 2, 10, "rollout", "want a mapping"},
		{"unknown field", "rollout: {speed: 2}\n", 2, 11, "rollout.speed", `unknown field "speed"`},
		{"first zero", "rollout: {first: 0}\n", 2, 18, "rollout.first", "at least 1"},
		{"first percent too big", "rollout: {first: 120%}\n", 2, 18, "rollout.first", "1% to 100%"},
		{"first words", "rollout: {first: some}\n", 2, 18, "rollout.first", "a count of agents"},
		{"waves zero", "rollout: {waves: 0}\n", 2, 18, "rollout.waves", "at least 1 wave"},
		{"waves too many", "rollout: {waves: 1000}\n", 2, 18, "rollout.waves", "at most 100"},
		{"bake without unit", "rollout: {bake: 30}\n", 2, 17, "rollout.bake", "such as 30s"},
		{"bake bad", "rollout: {bake: soon}\n", 2, 17, "rollout.bake", "want a duration"},
		{"health does not compile", "rollout: {health: 'units.all(u, u.stat == 1'}\n", 2, 19, "rollout.health", "health condition: 1:"},
		{"health not a bool", "rollout: {health: 'size(units)'}\n", 2, 19, "rollout.health", "must be true or false"},
		{"health unknown variable", "rollout: {health: 'steps.a'}\n", 2, 19, "rollout.health", "undeclared reference"},
		{"maxFailed negative", "rollout: {maxFailed: -1}\n", 2, 22, "rollout.maxFailed", "whole number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte("targets: all\n" + c.rollout + units))
			var ye *yamlsrc.Error
			if !errors.As(err, &ye) {
				t.Fatalf("want a *yamlsrc.Error, got %v", err)
			}
			for _, p := range ye.Problems {
				if p.Line == c.line && p.Column == c.col && p.Path == c.path && strings.Contains(p.Message, c.want) {
					return
				}
			}
			t.Fatalf("want %d:%d: %s: ...%s..., got:\n%v", c.line, c.col, c.path, c.want, err)
		})
	}
}

// TestSplit: waves by count and percentage, the rest as equal as they divide, none empty.
func TestSplit(t *testing.T) {
	agents := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("a%d", i))
		}
		return out
	}
	sizes := func(ws [][]string) []int {
		var out []int
		for _, w := range ws {
			out = append(out, len(w))
		}
		return out
	}
	cases := []struct {
		r    Rollout
		n    int
		want []int
	}{
		{Rollout{First: 1, Waves: 1}, 6, []int{1, 5}},
		{Rollout{First: 2, Waves: 2}, 6, []int{2, 2, 2}},
		{Rollout{First: 1, Waves: 2}, 6, []int{1, 3, 2}},
		{Rollout{FirstPercent: 10, Waves: 3}, 25, []int{3, 8, 7, 7}},
		{Rollout{First: 10, Waves: 2}, 3, []int{3}},
		{Rollout{First: 1, Waves: 5}, 3, []int{1, 1, 1}},
		{Rollout{First: 1, Waves: 1}, 0, nil},
	}
	for _, c := range cases {
		ws := c.r.Split(agents(c.n))
		if !slices.Equal(sizes(ws), c.want) {
			t.Errorf("%+v over %d agents: waves of %v, want %v", c.r, c.n, sizes(ws), c.want)
		}
		if c.n > 0 && !slices.Equal(slices.Concat(ws...), agents(c.n)) {
			t.Errorf("%+v: waves %v do not hold every agent once, in order", c.r, ws)
		}
	}
}

// TestHealthEval: a condition over units and agents, true and false.
func TestHealthEval(t *testing.T) {
	h, err := CompileHealth(`units.all(u, u.state == "converged") && agents.all(a, a.online) && wave >= 1`)
	if err != nil {
		t.Fatal(err)
	}
	vars := HealthVars{Wave: 1, Units: []UnitVars{{Agent: "a", Unit: "x", State: "converged"}}, Agents: []AgentVars{{Agent: "a", Online: true}}}
	if ok, err := h.Eval(vars); err != nil || !ok {
		t.Fatalf("healthy wave: %v %v", ok, err)
	}
	vars.Units = append(vars.Units, UnitVars{Agent: "b", Unit: "x", State: "failed"})
	if ok, err := h.Eval(vars); err != nil || ok {
		t.Fatalf("a failed unit: %v %v", ok, err)
	}
}
