package exec_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/pulsehq/pulse/agent/integration"
	_ "github.com/pulsehq/pulse/agent/integrations/exec"
	"github.com/pulsehq/pulse/agent/wire"
)

// load parses an agent config document the way the agent does and loads the integrations from it.
func load(t *testing.T, doc string) (*integration.Set, wire.IntegrationStatus) {
	t.Helper()
	var tables map[string]any
	if err := toml.Unmarshal([]byte(doc), &tables); err != nil {
		t.Fatalf("parse config: %v\n%s", err, doc)
	}
	s := integration.Load(context.Background(), tables, nil)
	for _, st := range s.Statuses() {
		if st.ID == "exec" {
			return s, st
		}
	}
	t.Fatal("exec is not registered")
	return nil, wire.IntegrationStatus{}
}

func run(s *integration.Set, name string, params map[string]string) (integration.RunResult, string) {
	var out bytes.Buffer
	res := s.Run(context.Background(), wire.Command{Name: name, Params: params}, &out)
	return res, out.String()
}

const goodConfig = `
[exec.commands.disk_usage]
binary = "/usr/bin/df"
args = ["-h", "{{path}}"]
timeout = "30s"
description = "Disk usage of a path"
dangerous = false
[exec.commands.disk_usage.params.path]
pattern = "/[a-zA-Z0-9/._-]*"
max_bytes = 256
required = true

[exec.commands.say]
binary = "/bin/echo"
args = ["said:", "{{words}}"]
[exec.commands.say.params.words]
max_bytes = 100
required = true

[exec.commands.wipe_cache]
binary = "/bin/sh"
args = ["-c", "exit 0"]
dangerous = true
timeout = "2m"
`

func TestExecFromTOML(t *testing.T) {
	for _, bin := range []string{"/usr/bin/df", "/bin/echo", "/bin/sh"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s not present: %v", bin, err)
		}
	}
	s, st := load(t, goodConfig)
	if !st.Enabled {
		t.Fatalf("exec disabled: %s", st.Reason)
	}

	specs := map[string]wire.CommandSpec{}
	for _, c := range s.Catalog() {
		specs[c.Name] = c
	}
	du := specs["disk_usage"]
	want := wire.CommandSpec{
		Name: "disk_usage", Group: "exec", Description: "Disk usage of a path", DefaultTimeoutSeconds: 30,
		Params: []wire.ParamSpec{{Name: "path", Pattern: "/[a-zA-Z0-9/._-]*", MaxBytes: 256, Required: true}},
	}
	if du.Name != want.Name || du.Group != want.Group || du.Description != want.Description ||
		du.DefaultTimeoutSeconds != want.DefaultTimeoutSeconds || du.Dangerous || !slices.Equal(du.Params, want.Params) {
		t.Fatalf("disk_usage spec = %+v\nwant %+v", du, want)
	}
	if w := specs["wipe_cache"]; !w.Dangerous || w.DefaultTimeoutSeconds != 120 || w.Description != "Runs /bin/sh -c exit 0" {
		t.Fatalf("wipe_cache spec = %+v", w)
	}
	if _, ok := specs["exec_refresh"]; ok {
		t.Fatal("exec has no state, so no refresh")
	}

	res, out := run(s, "disk_usage", map[string]string{"path": "/"})
	if res.Status != wire.StatusSucceeded || !strings.Contains(out, "/") {
		t.Fatalf("disk_usage = %+v %q", res, out)
	}

	// The value is one argument to echo: no shell splits it or runs the substitution.
	words := `a;b $(id) | c`
	res, out = run(s, "say", map[string]string{"words": words})
	if res.Status != wire.StatusSucceeded || out != "said: "+words+"\n" {
		t.Fatalf("say = %+v %q", res, out)
	}

	for _, tc := range []struct {
		name   string
		params map[string]string
	}{
		{"disk_usage", map[string]string{"path": "relative"}},
		{"disk_usage", map[string]string{"path": "/; rm -rf /"}},
		{"disk_usage", nil},
		{"say", map[string]string{"words": strings.Repeat("x", 101)}},
		{"wipe_cache", map[string]string{"force": "yes"}},
		{"not_declared", nil},
	} {
		if res, out := run(s, tc.name, tc.params); res.Status != wire.StatusRejected || out != "" {
			t.Errorf("%s %v = %+v %q, want rejected", tc.name, tc.params, res, out)
		}
	}
}

func TestExecBrokenDefinitionsDisable(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	command := func(body string) string { return "[exec.commands.broken]\n" + body + "\n" }
	cases := []struct {
		name string
		doc  string
		want []string
	}{
		{"relative binary", command(`binary = "df"`), []string{"command broken", `binary "df" is not an absolute path`}},
		{"param without pattern or cap", command("binary = \"/bin/echo\"\nargs = [\"{{p}}\"]\n[exec.commands.broken.params.p]\nrequired = true"),
			[]string{"command broken", "parameter p has neither a pattern nor a byte cap"}},
		{"bad regexp", command("binary = \"/bin/echo\"\n[exec.commands.broken.params.p]\npattern = \"([a-z\""),
			[]string{"command broken", "parameter p: pattern"}},
		{"negative cap", command("binary = \"/bin/echo\"\n[exec.commands.broken.params.p]\nmax_bytes = -3"),
			[]string{"command broken", "max_bytes must be positive"}},
		{"undeclared placeholder", command("binary = \"/bin/echo\"\nargs = [\"{{nope}}\"]"),
			[]string{"command broken", "{{nope}} names no declared parameter"}},
		{"unknown command key", command("binary = \"/bin/echo\"\nargz = [\"x\"]"), []string{`unknown key "commands.broken.argz"`}},
		{"unknown param key", command("binary = \"/bin/echo\"\n[exec.commands.broken.params.p]\nmax_bytes = 3\nrequried = true"),
			[]string{`unknown key "commands.broken.params.p.requried"`}},
		{"unknown exec key", "[exec]\nshell = true\n" + command(`binary = "/bin/echo"`), []string{`unknown key "shell"`}},
		{"wrong type", command("binary = \"/bin/echo\"\ndangerous = \"no\""), []string{"commands.broken.dangerous"}},
		{"bad duration", command("binary = \"/bin/echo\"\ntimeout = \"ten minutes\""), []string{"command broken", `timeout "ten minutes"`}},
		{"sub-second duration", command("binary = \"/bin/echo\"\ntimeout = \"1500ms\""), []string{"command broken", "whole number of seconds"}},
		{"invalid name", "[exec.commands.Broken-Name]\nbinary = \"/bin/echo\"\n", []string{`command "Broken-Name"`, "lower-case"}},
		{"missing binary", command(`binary = "/nonexistent/pulse-test-binary"`), []string{"precondition failed", "command broken", "/nonexistent/pulse-test-binary", "no such file"}},
		{"binary not executable", command(`binary = "` + notExec + `"`), []string{"precondition failed", "command broken", "is not executable"}},
		{"binary is a directory", command(`binary = "` + dir + `"`), []string{"precondition failed", "command broken", "not a regular file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A good command next to the broken one: one bad definition disables the whole integration.
			s, st := load(t, "[exec.commands.fine]\nbinary = \"/bin/echo\"\n"+tc.doc)
			if st.Enabled {
				t.Fatalf("exec enabled despite %s", tc.name)
			}
			t.Logf("reason: %s", st.Reason)
			for _, w := range tc.want {
				if !strings.Contains(st.Reason, w) {
					t.Errorf("reason %q does not mention %q", st.Reason, w)
				}
			}
			if len(s.Catalog()) != 0 {
				t.Errorf("catalog of a disabled exec: %+v", s.Catalog())
			}
		})
	}
}

func TestExecWithoutCommandsIsOff(t *testing.T) {
	for _, doc := range []string{"", "[exec]\n", "[exec.commands]\n"} {
		_, st := load(t, doc)
		if st.Enabled || !strings.Contains(st.Reason, "not enabled") {
			t.Errorf("config %q: exec = %+v, want off", doc, st)
		}
	}
}
