package plan

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/yamlsrc"
)

const example = `targets: [role=web]
mode: enforce
units:
  - name: conf
    type: file
    notify: [app]
    spec: {path: /etc/app/app.conf, content: "port=8080\n", mode: "0644"}
  - name: app
    type: process
    requires: [conf]
    deadline: 30s
    spec: {command: /usr/bin/sleep, args: ["1000"], restart: always}
`

// TestParseExample: the documented example reads into its targets and a plan the agent accepts.
func TestParseExample(t *testing.T) {
	s, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Targets, []string{"role=web"}) || s.Plan.Mode != wire.ModeEnforce || len(s.Plan.Units) != 2 {
		t.Fatalf("%+v", s)
	}
	conf, app := s.Plan.Units[0], s.Plan.Units[1]
	if conf.Name != "conf" || conf.Type != "file" || !slices.Equal(conf.Notify, []string{"app"}) || conf.DeadlineSeconds != 0 {
		t.Errorf("conf: %+v", conf)
	}
	if app.Name != "app" || !slices.Equal(app.Requires, []string{"conf"}) || app.DeadlineSeconds != 30 {
		t.Errorf("app: %+v", app)
	}
	var spec map[string]any
	if err := json.Unmarshal(conf.Spec, &spec); err != nil || spec["content"] != "port=8080\n" || spec["mode"] != "0644" {
		t.Errorf("conf spec %s: %v", conf.Spec, err)
	}
	if string(app.Spec) != `{"args":["1000"],"command":"/usr/bin/sleep","restart":"always"}` {
		t.Errorf("app spec %s", app.Spec)
	}
	p := s.Plan
	p.Name, p.Version = "web", 1
	if err := p.Validate(); err != nil {
		t.Errorf("the agent would refuse it: %v", err)
	}
	if l, c := s.At(TargetPath(0)); l != 1 || c != 11 {
		t.Errorf("targets[0] at %d:%d, want 1:11", l, c)
	}
}

// TestParseForms: what else a plan may say, and what each reads as.
func TestParseForms(t *testing.T) {
	cases := []struct {
		name, src string
		check     func(*Spec) bool
	}{
		{"one target as a string, mode defaults to enforce", "targets: all\nunits:\n  - {name: a, type: file, spec: {}}\n", func(s *Spec) bool {
			l, c := s.At(TargetPath(0))
			return slices.Equal(s.Targets, []string{"all"}) && s.Plan.Mode == wire.ModeEnforce && string(s.Plan.Units[0].Spec) == "{}" && l == 1 && c == 10
		}},
		{"report mode", "targets: [ag-1, web-2]\nmode: report\nunits:\n  - {name: a, type: file, spec: {path: /x}}\n", func(s *Spec) bool {
			return s.Plan.Mode == wire.ModeReport && len(s.Targets) == 2
		}},
		{"JSON", `{"targets": ["env=prod"], "units": [{"name": "a", "type": "file", "spec": {"n": 3, "on": true, "none": null, "list": [1.5, "x"]}}]}`, func(s *Spec) bool {
			return string(s.Plan.Units[0].Spec) == `{"list":[1.5,"x"],"n":3,"none":null,"on":true}`
		}},
		{"spec values as YAML reads them; a time stays its text", "targets: all\nunits:\n  - name: a\n    type: file\n    spec:\n      mode: 0644\n      when: 2026-01-02\n      big: 12345678901234567890\n      nested: {deep: [{k: v}]}\n", func(s *Spec) bool {
			return string(s.Plan.Units[0].Spec) == `{"big":12345678901234567890,"mode":420,"nested":{"deep":[{"k":"v"}]},"when":"2026-01-02"}`
		}},
		{"deadline in minutes", "targets: all\nunits:\n  - {name: a, type: file, deadline: 2m, spec: {}}\n", func(s *Spec) bool {
			return s.Plan.Units[0].DeadlineSeconds == 120
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse([]byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(s) {
				t.Errorf("%+v", s)
			}
		})
	}
}

// TestRefused: every way a plan is refused names the place (line:column, path) and the reason.
func TestRefused(t *testing.T) {
	unit := func(extra string) string {
		return "targets: all\nunits:\n  - name: a\n    type: file\n" + extra + "    spec: {path: /x}\n"
	}
	two := "targets: all\nunits:\n  - name: a\n    type: file\n    spec: {}\n  - name: b\n    type: process\n"
	cases := []struct {
		name       string
		src        string
		line, col  int
		path, want string
	}{
		{"yaml syntax error", "targets: all\nunits:\n  - name: a\n   type: file\n", 4, 4, "", "syntax error"},
		{"json syntax error", "{\n  \"targets\": [\"all\"]\n  \"units\": []\n}\n", 3, 3, "", "syntax error"},
		{"empty", "", 1, 1, "", "empty plan"},
		{"not a mapping", "- a\n- b\n", 1, 1, "", "want a mapping, got a list"},
		{"unknown top-level field", "targets: all\nname: web\nunits:\n  - {name: a, type: file, spec: {}}\n", 2, 1, "name", `unknown field "name"`},
		{"no targets", "units:\n  - {name: a, type: file, spec: {}}\n", 1, 1, "targets", "no targets"},
		{"empty target list", "targets: []\nunits:\n  - {name: a, type: file, spec: {}}\n", 1, 10, "targets", "no targets"},
		{"empty target", "targets: [web, \" \"]\nunits:\n  - {name: a, type: file, spec: {}}\n", 1, 16, "targets[1]", "empty target"},
		{"target of the wrong type", "targets: {role: web}\nunits:\n  - {name: a, type: file, spec: {}}\n", 1, 10, "targets", "want a list of strings, got a mapping"},
		{"bad mode", "targets: all\nmode: fix\nunits:\n  - {name: a, type: file, spec: {}}\n", 2, 7, "mode", `unknown mode "fix"`},
		{"no units", "targets: all\n", 1, 1, "units", "no units"},
		{"empty units", "targets: all\nunits: []\n", 2, 8, "units", "at least one unit"},
		{"units not a list", "targets: all\nunits: {a: 1}\n", 2, 8, "units", "want a list of units, got a mapping"},
		{"a unit not a mapping", "targets: all\nunits:\n  - conf\n", 3, 5, "units[0]", "want a unit"},
		{"unknown unit field", unit("    requirez: [b]\n"), 5, 5, "units[0].requirez", `unknown field "requirez"`},
		{"missing name", "targets: all\nunits:\n  - type: file\n    spec: {}\n", 3, 5, "units[0].name", "a unit needs a name"},
		{"missing type", "targets: all\nunits:\n  - name: a\n    spec: {}\n", 3, 5, "units[0].type", "a unit needs a type"},
		{"missing spec", "targets: all\nunits:\n  - name: a\n    type: file\n", 3, 5, "units[0].spec", "a unit needs a spec"},
		{"bad unit name", "targets: all\nunits:\n  - {name: App-1, type: file, spec: {}}\n", 3, 12, "units[0].name", `unit name "App-1"`},
		{"bad unit type", "targets: all\nunits:\n  - {name: a, type: \"docker compose\", spec: {}}\n", 3, 21, "units[0].type", `unit type "docker compose"`},
		{"name of the wrong type", "targets: all\nunits:\n  - {name: [a], type: file, spec: {}}\n", 3, 12, "units[0].name", "want a string, got a list"},
		{"spec not a mapping", "targets: all\nunits:\n  - {name: a, type: file, spec: /etc/x}\n", 3, 33, "units[0].spec", "want a mapping"},
		{"spec with infinity", "targets: all\nunits:\n  - {name: a, type: file, spec: {size: .inf}}\n", 3, 40, "units[0].spec.size", "cannot be carried as JSON"},
		{"spec with an alias", "targets: all\nunits:\n  - name: a\n    type: file\n    spec:\n      x: &v 1\n      y: *v\n", 6, 10, "units[0].spec.x", "anchors"},
		{"requires not a list", unit("    requires: b\n"), 5, 15, "units[0].requires", "want a list of strings"},
		{"deadline without a unit", unit("    deadline: 30\n"), 5, 15, "units[0].deadline", "such as 30s"},
		{"bad deadline", unit("    deadline: soon\n"), 5, 15, "units[0].deadline", "want a duration"},
		{"deadline under a second", unit("    deadline: 500ms\n"), 5, 15, "units[0].deadline", "whole number of seconds"},
		{"deadline too long", unit("    deadline: 48h\n"), 5, 15, "units[0].deadline", "at most 24h"},
		{"a unit defined twice", two + "    name: a\n", 8, 5, "units[1].name", `"name" given twice`},
		{"a unit name used twice", two + "    spec: {}\n  - name: a\n    type: file\n    spec: {}\n", 9, 11, "units[2].name", `unit "a" is already defined at units[0] (line 3)`},
		{"requires an undefined unit", unit("    requires: [b]\n"), 5, 16, "units[0].requires[0]", `no unit named "b" in this plan (its units: a)`},
		{"notifies an undefined unit", unit("    notify: [conf, b]\n"), 5, 14, "units[0].notify[0]", `no unit named "conf"`},
		{"requires itself", unit("    requires: [a]\n"), 5, 16, "units[0].requires[0]", "unit a requires itself"},
		{"notifies itself", unit("    notify: [a]\n"), 5, 14, "units[0].notify[0]", "unit a notifies itself"},
		{"a cycle", "targets: all\nunits:\n  - {name: a, type: file, requires: [c], spec: {}}\n  - {name: b, type: file, requires: [a], spec: {}}\n  - {name: c, type: file, requires: [b], spec: {}}\n",
			4, 38, "units[1].requires[0]", "units require each other in a cycle: a → c → b → a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src))
			var ye *yamlsrc.Error
			if !errors.As(err, &ye) {
				t.Fatalf("want a *yamlsrc.Error, got %v", err)
			}
			if !strings.HasPrefix(err.Error(), "plan refused:\n") {
				t.Errorf("message %q does not say a plan was refused", err)
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

// TestEveryProblemAtOnce: one round trip shows every mistake, in source order.
func TestEveryProblemAtOnce(t *testing.T) {
	src := "targets: all\nmode: fix\nunits:\n  - name: a\n    type: file\n    deadline: 30\n    spec: {}\n  - name: B\n    type: file\n"
	_, err := Parse([]byte(src))
	var ye *yamlsrc.Error
	if !errors.As(err, &ye) {
		t.Fatalf("want a *yamlsrc.Error, got %v", err)
	}
	var got []string
	for _, p := range ye.Problems {
		got = append(got, p.String())
	}
	want := []string{
		`2:7: mode: unknown mode "fix" (want enforce: repair what differs, or report: say what differs and touch nothing)`,
		"6:15: units[0].deadline: want a duration with its unit, such as 30s",
		`8:5: units[1].spec: a unit needs a spec: a mapping of the unit type's own fields`,
		`8:11: units[1].name: unit name "B": lower-case letters, digits and _, starting with a letter, at most 63 characters`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestTooLarge: a source over the limit is refused before it is read.
func TestTooLarge(t *testing.T) {
	_, err := Parse([]byte("targets: all\n" + strings.Repeat("#", MaxSourceBytes)))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("got %v", err)
	}
}
