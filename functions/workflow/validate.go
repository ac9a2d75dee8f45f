package workflow

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pulsehq/pulse/agent/wire"
)

// Catalog lets Validate check commands and parameters without knowing agents: the hub passes the union
// of its agents' catalogs. Which agents a step will reach is only known when it runs, and the hub checks
// every target's own catalog again then.
type Catalog interface {
	Lookup(command string) (spec wire.CommandSpec, ok bool)
}

// Specs is a Catalog over a fixed set of command specs, keyed by name.
type Specs map[string]wire.CommandSpec

// Lookup finds a command by name.
func (s Specs) Lookup(command string) (wire.CommandSpec, bool) {
	spec, ok := s[command]
	return spec, ok
}

// SpecsOf merges agents' catalogs into one Specs. When agents disagree about a command (different
// versions), the first catalog given wins; pass the catalogs in a stable order.
func SpecsOf(catalogs ...[]wire.CommandSpec) Specs {
	out := Specs{}
	for _, c := range catalogs {
		for _, spec := range c {
			if _, ok := out[spec.Name]; !ok {
				out[spec.Name] = spec
			}
		}
	}
	return out
}

// Load parses and validates in one call: what the hub does when a workflow is applied.
func Load(src []byte, cat Catalog) (*Definition, error) {
	d, err := Parse(src)
	if err != nil {
		return nil, err
	}
	if err := d.Validate(cat); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate checks what Parse cannot: every condition compiles against the variables (inputs typed from
// the definition, prompt.STEP, promptResponse, steps.STEP), is boolean, refers only to existing steps
// and stays under MaxConditionCost by CEL's static estimate; every command is in the catalog and every
// literal parameter validates against its spec; ${inputs.NAME} references name declared inputs;
// on_failure names handler steps; prompts' defaults are among their options; a scheduled workflow can
// start without inputs. With a nil catalog, commands and parameters are not checked (the engine runs
// without one). All problems are returned together as a *ValidationError.
func (d *Definition) Validate(cat Catalog) error {
	var ps problems
	v := validator{d: d, cat: cat, ps: &ps}
	if d.Schedule != nil {
		for _, name := range sortedKeys(d.Inputs) {
			if in := d.Inputs[name]; in.Required && in.Default == nil {
				ps.add(d.at("schedule"), "schedule", "input %s is required and has no default, so a scheduled run could not start", name)
			}
		}
	}
	for _, s := range d.order {
		v.step(s)
	}
	condProblems, err := d.compileConditions()
	if err != nil {
		return err
	}
	ps.List = append(ps.List, condProblems...)
	return ps.err()
}

type validator struct {
	d   *Definition
	cat Catalog
	ps  *problems
}

func (v *validator) add(path, format string, args ...any) {
	v.ps.add(v.d.at(path), path, format, args...)
}

// refs checks ${...} references in one string.
func (v *validator) refs(path, s string) []reference {
	refs, err := scanRefs(s)
	if err != nil {
		v.add(path, "%v", err)
		return nil
	}
	for _, r := range refs {
		if _, ok := v.d.Inputs[r.input]; !ok {
			v.add(path, "${inputs.%s}: no such input (declare it under inputs)", r.input)
		}
	}
	return refs
}

func (v *validator) step(s *Step) {
	p := s.path
	for i, t := range s.Targets {
		v.refs(stepPath(p+".targets", i), t)
		if strings.TrimSpace(t) == "" {
			v.add(stepPath(p+".targets", i), "empty target")
		}
	}
	if s.Message != "" {
		v.refs(p+".message", s.Message)
	}
	switch s.Type {
	case TypeExecute:
		v.command(s)
	case TypePrompt:
		v.prompt(s)
	}
	v.onFailure(s)
}

func (v *validator) command(s *Step) {
	p := s.path
	for name, val := range s.Params {
		v.refs(p+".params."+name, val)
	}
	if v.cat == nil {
		return
	}
	spec, ok := v.cat.Lookup(s.Command)
	if !ok {
		v.add(p+".command", "unknown command %q: no agent offers it (see pulse commands for the catalog)", s.Command)
		return
	}
	known := map[string]wire.ParamSpec{}
	for _, ps := range spec.Params {
		known[ps.Name] = ps
	}
	for _, name := range sortedKeys(s.Params) {
		val, path := s.Params[name], p+".params."+name
		ps, ok := known[name]
		if !ok {
			names := sortedKeys(known)
			if len(names) == 0 {
				v.add(path, "command %s takes no parameters", s.Command)
			} else {
				v.add(path, "command %s has no parameter %q (known: %s)", s.Command, name, strings.Join(names, ", "))
			}
			continue
		}
		refs, err := scanRefs(val)
		if err != nil {
			continue // reported by refs above
		}
		check := val
		if len(refs) > 0 {
			// With references, the value is known only at run time; check it with the defaults when
			// every referenced input has one, so a default that could never work is caught now.
			defaults := map[string]any{}
			for _, r := range refs {
				if in, ok := v.d.Inputs[r.input]; ok && in.Default != nil {
					defaults[r.input] = in.Default
				}
			}
			if check, err = interpolate(val, defaults); err != nil {
				continue
			}
		}
		one := wire.CommandSpec{Name: spec.Name, Params: []wire.ParamSpec{{Name: ps.Name, Pattern: ps.Pattern, MaxBytes: ps.MaxBytes}}}
		if err := one.ValidateParams(map[string]string{name: check}); err != nil {
			if len(refs) > 0 {
				v.add(path, "with the inputs' defaults, %v", err)
			} else {
				v.add(path, "%v", err)
			}
		}
	}
	for _, ps := range spec.Params {
		if _, ok := s.Params[ps.Name]; ps.Required && !ok {
			v.add(p+".params", "command %s needs parameter %s", s.Command, ps.Name)
		}
	}
}

func (v *validator) prompt(s *Step) {
	p := s.path
	seen := map[string]bool{}
	for i, o := range s.Options {
		switch {
		case strings.TrimSpace(o) == "":
			v.add(stepPath(p+".options", i), "empty option")
		case len(o) > MaxAnswerBytes:
			v.add(stepPath(p+".options", i), "option longer than %d bytes", MaxAnswerBytes)
		case seen[o]:
			v.add(stepPath(p+".options", i), "option %q given twice", o)
		}
		seen[o] = true
	}
	if s.Default != nil {
		switch {
		case s.Timeout == 0:
			v.add(p+".default", "a default answer is used when the prompt times out: give a timeout too")
		case len(s.Options) > 0 && !seen[*s.Default]:
			v.add(p+".default", "default %q is not one of the options (%s)", *s.Default, strings.Join(s.Options, ", "))
		}
	}
}

func (v *validator) onFailure(s *Step) {
	if s.OnFailure == nil || s.OnFailure.Action != FailRun {
		return
	}
	p := s.path + ".on_failure"
	isHandler := slices.ContainsFunc(v.d.Handlers, func(h *Step) bool { return h == s })
	switch {
	case v.d.parent[s.Name] != nil:
		v.add(p, "a step inside a parallel branch can only stop or continue; put on_failure handlers on the parallel step")
		return
	case isHandler:
		v.add(p, "a handler step can only stop or continue")
		return
	}
	seen := map[string]bool{}
	for i, name := range s.OnFailure.Steps {
		ip := stepPath(p, i)
		target, ok := v.d.byName[name]
		switch {
		case !ok:
			v.add(ip, "no step named %q%s", name, v.suggest(name))
		case !slices.Contains(v.d.Handlers, target):
			v.add(ip, "%q is a step of the normal sequence; on_failure runs steps listed under handlers", name)
		case seen[name]:
			v.add(ip, "%q named twice", name)
		}
		seen[name] = true
	}
}

func (v *validator) suggest(name string) string {
	var names []string
	for _, h := range v.d.Handlers {
		names = append(names, fmt.Sprintf("%q", h.Name))
	}
	if len(names) == 0 {
		return " (there are no handlers: declare the steps to run under handlers)"
	}
	return " (handlers: " + strings.Join(names, ", ") + ")"
}
