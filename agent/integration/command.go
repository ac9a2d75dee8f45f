package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/pulsehq/pulse/agent/wire"
)

// Command is a validated command spec bound to how it runs. Its fields are unexported so the only way to
// get one is through NewJob or NewSubprocess, which refuse every shape that could not be enforced; Load
// refuses the zero value.
type Command struct {
	spec  wire.CommandSpec
	job   JobFunc
	sub   *subprocess
	hatch bool // runs only while the agent's hatch is open
}

// RequireHatch returns a copy of c that runs only while the agent's hatch is open (see WithHatch). It is
// for a command that runs opaque code, which no parameter rule can make safe: while the hatch is closed
// the command stays in the catalog but is rejected with ErrSealed and nothing runs.
func (c Command) RequireHatch() Command {
	c.hatch = true
	return c
}

// Spec returns the command as the agent advertises it. The copy keeps callers from mutating the
// parameter rules the runner enforces.
func (c Command) Spec() wire.CommandSpec { return copySpec(c.spec) }

func (c Command) built() bool { return c.job != nil || c.sub != nil }

// JobFunc is an in-process job. It must stop when ctx is done; output goes to out (safe for concurrent
// use, refused once Run has returned). Returning an error fails the command with the error as reason.
type JobFunc func(ctx context.Context, params map[string]string, out io.Writer) error

// NewJob binds a spec to an in-process handler, refusing a job without a handler or a spec the agent
// could not enforce (bad names, a parameter with neither pattern nor byte cap, a bad pattern, duplicates).
func NewJob(spec wire.CommandSpec, fn JobFunc) (Command, error) {
	if err := checkSpec(spec); err != nil {
		return Command{}, err
	}
	if fn == nil {
		return Command{}, fmt.Errorf("command %s: job has no handler", spec.Name)
	}
	return Command{spec: copySpec(spec), job: fn}, nil
}

// Subprocess says how to run a command as a program. There is never a shell: Binary is executed directly
// with Args, so a parameter value is one argv element whatever characters it holds.
type Subprocess struct {
	// Binary must be an absolute path, so what runs never depends on $PATH.
	Binary string
	// Args may contain "{{name}}" placeholders for declared parameters. A value replaces its placeholder
	// inside that one element and is never split or re-scanned. An element mentioning an optional
	// parameter that was not supplied is left out entirely, so "--flag={{x}}" disappears rather than
	// becoming "--flag=". Text such as "{{.Names}}" that is not a placeholder stays literal.
	Args []string
	// Env is extra KEY=VALUE pairs on top of a minimal environment (PATH, HOME, LANG, LC_ALL, TZ, USER,
	// LOGNAME, TMPDIR copied from the agent): the agent's own environment is not handed to commands.
	Env []string
	// Dir is the working directory; it must be absolute when set.
	Dir string
}

// subprocess is a Subprocess checked at construction, with each argument's placeholders resolved.
type subprocess struct {
	binary string
	args   []argTemplate
	env    []string
	dir    string
}

type argTemplate struct {
	text  string
	names []string // placeholders in text, in order
}

// placeholderRE matches anything shaped like a placeholder, including spaced or capitalised ones, so a
// typo is refused at construction instead of reaching the program as literal text. Template text of
// other shapes ("{{.Names}}", "{{json .}}") does not match and stays literal.
var placeholderRE = regexp.MustCompile(`\{\{\s*([A-Za-z][A-Za-z0-9_]*)\s*\}\}`)

// NewSubprocess binds a spec to a program, refusing a relative binary or working directory, a malformed
// env entry, a placeholder for a parameter the spec does not declare, and any spec the agent could not
// enforce.
func NewSubprocess(spec wire.CommandSpec, sp Subprocess) (Command, error) {
	if err := checkSpec(spec); err != nil {
		return Command{}, err
	}
	if sp.Binary == "" || !filepath.IsAbs(sp.Binary) {
		return Command{}, fmt.Errorf("command %s: binary %q is not an absolute path", spec.Name, sp.Binary)
	}
	if sp.Dir != "" && !filepath.IsAbs(sp.Dir) {
		return Command{}, fmt.Errorf("command %s: dir %q is not an absolute path", spec.Name, sp.Dir)
	}
	for _, kv := range sp.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return Command{}, fmt.Errorf("command %s: env entry %q: want KEY=VALUE", spec.Name, kv)
		}
	}
	declared := map[string]bool{}
	for _, p := range spec.Params {
		declared[p.Name] = true
	}
	s := &subprocess{binary: sp.Binary, env: slices.Clone(sp.Env), dir: sp.Dir}
	for i, a := range sp.Args {
		t := argTemplate{text: a}
		for _, m := range placeholderRE.FindAllStringSubmatch(a, -1) {
			name := m[1]
			if m[0] != "{{"+name+"}}" {
				return Command{}, fmt.Errorf("command %s: argument %d: placeholder %q: write {{%s}} without spaces", spec.Name, i, m[0], name)
			}
			if !declared[name] {
				return Command{}, fmt.Errorf("command %s: argument %d: placeholder {{%s}} names no declared parameter", spec.Name, i, name)
			}
			t.names = append(t.names, name)
		}
		s.args = append(s.args, t)
	}
	return Command{spec: copySpec(spec), sub: s}, nil
}

// argv substitutes validated params into the argument templates in one pass, so a value that happens to
// contain "{{x}}" is never expanded again.
func (s *subprocess) argv(params map[string]string) []string {
	out := make([]string, 0, len(s.args))
next:
	for _, t := range s.args {
		for _, n := range t.names {
			if _, ok := params[n]; !ok {
				continue next
			}
		}
		if len(t.names) == 0 {
			out = append(out, t.text)
			continue
		}
		out = append(out, placeholderRE.ReplaceAllStringFunc(t.text, func(m string) string {
			return params[placeholderRE.FindStringSubmatch(m)[1]]
		}))
	}
	return out
}

func checkSpec(spec wire.CommandSpec) error {
	if err := spec.Check(); err != nil {
		return err // wire's messages already name the command
	}
	if spec.DefaultTimeoutSeconds < 0 {
		return fmt.Errorf("command %s: negative default timeout", spec.Name)
	}
	for _, p := range spec.Params {
		if p.MaxBytes < 0 {
			return fmt.Errorf("command %s: parameter %s: negative byte cap", spec.Name, p.Name)
		}
	}
	return nil
}

func copySpec(s wire.CommandSpec) wire.CommandSpec {
	s.Params = slices.Clone(s.Params)
	return s
}

// errNoHandler reports a zero Command, i.e. one not built by NewJob or NewSubprocess.
var errNoHandler = errors.New("not built with NewJob or NewSubprocess")
