package integration_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

func noop(context.Context, map[string]string, io.Writer) error { return nil }

func TestNewJobRefusesBrokenShapes(t *testing.T) {
	cases := []struct {
		name string
		spec wire.CommandSpec
		fn   integration.JobFunc
		want string
	}{
		{"no handler", wire.CommandSpec{Name: "x_do", Group: "x"}, nil, "job has no handler"},
		{"bad name", wire.CommandSpec{Name: "X-Do", Group: "x"}, noop, "command name"},
		{"bad group", wire.CommandSpec{Name: "x_do", Group: "X"}, noop, "group"},
		{"unconstrained param", wire.CommandSpec{Name: "x_do", Group: "x", Params: []wire.ParamSpec{{Name: "p"}}}, noop, "neither a pattern nor a byte cap"},
		{"bad pattern", wire.CommandSpec{Name: "x_do", Group: "x", Params: []wire.ParamSpec{{Name: "p", Pattern: "("}}}, noop, "pattern"},
		{"duplicate param", wire.CommandSpec{Name: "x_do", Group: "x", Params: []wire.ParamSpec{{Name: "p", MaxBytes: 1}, {Name: "p", MaxBytes: 2}}}, noop, "declared twice"},
		{"negative cap", wire.CommandSpec{Name: "x_do", Group: "x", Params: []wire.ParamSpec{{Name: "p", Pattern: "a", MaxBytes: -1}}}, noop, "negative byte cap"},
		{"negative timeout", wire.CommandSpec{Name: "x_do", Group: "x", DefaultTimeoutSeconds: -1}, noop, "negative default timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := integration.NewJob(tc.spec, tc.fn)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewJob error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestNewSubprocessRefusesBrokenShapes(t *testing.T) {
	path := wire.ParamSpec{Name: "path", Pattern: "/[a-z]+"}
	spec := wire.CommandSpec{Name: "x_ls", Group: "x", Params: []wire.ParamSpec{path}}
	cases := []struct {
		name string
		spec wire.CommandSpec
		sp   integration.Subprocess
		want string
	}{
		{"relative binary", spec, integration.Subprocess{Binary: "ls"}, `binary "ls" is not an absolute path`},
		{"dot-relative binary", spec, integration.Subprocess{Binary: "./ls"}, "not an absolute path"},
		{"no binary", spec, integration.Subprocess{}, "not an absolute path"},
		{"unconstrained param", wire.CommandSpec{Name: "x_ls", Group: "x", Params: []wire.ParamSpec{{Name: "path"}}},
			integration.Subprocess{Binary: "/bin/ls", Args: []string{"{{path}}"}}, "neither a pattern nor a byte cap"},
		{"undeclared placeholder", spec, integration.Subprocess{Binary: "/bin/ls", Args: []string{"{{path}}", "--color={{colour}}"}}, "{{colour}} names no declared parameter"},
		{"placeholder with spaces", spec, integration.Subprocess{Binary: "/bin/ls", Args: []string{"{{ path }}"}}, "without spaces"},
		{"capitalised placeholder", spec, integration.Subprocess{Binary: "/bin/ls", Args: []string{"{{Path}}"}}, "{{Path}} names no declared parameter"},
		{"relative dir", spec, integration.Subprocess{Binary: "/bin/ls", Dir: "tmp"}, "dir"},
		{"env without =", spec, integration.Subprocess{Binary: "/bin/ls", Env: []string{"FOO"}}, "KEY=VALUE"},
		{"env without key", spec, integration.Subprocess{Binary: "/bin/ls", Env: []string{"=x"}}, "KEY=VALUE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := integration.NewSubprocess(tc.spec, tc.sp)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSubprocess error = %v, want it to mention %q", err, tc.want)
			}
		})
	}

	// Template text that is not a placeholder (a docker --format, say) is allowed and stays literal.
	if _, err := integration.NewSubprocess(spec, integration.Subprocess{Binary: "/usr/bin/docker", Args: []string{"--format", "{{.Names}} {{json .}}", "{{path}}"}}); err != nil {
		t.Fatalf("literal template text refused: %v", err)
	}
}

func TestSpecIsACopy(t *testing.T) {
	c, err := integration.NewJob(wire.CommandSpec{Name: "x_do", Group: "x", Params: []wire.ParamSpec{{Name: "p", Pattern: "[a-z]+"}}}, noop)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Spec()
	s.Params[0].Pattern = ".*"
	if got := c.Spec().Params[0].Pattern; got != "[a-z]+" {
		t.Fatalf("mutating Spec() changed the command's rule to %q", got)
	}
}
