package workflow

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/pulsehq/pulse/functions/yamlsrc"

	// Time zones must resolve the same on every hub, including minimal images without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// Parse reads a workflow written in YAML or JSON (JSON is read as YAML, so positions work for both).
// It refuses, with the line and column of each problem: syntax errors, unknown fields (also a field
// the step's type does not use), unknown step types, missing or duplicate step names, bad durations,
// bad numbers, bad cron expressions and time zones. What needs the command catalog or the CEL
// compiler is checked by Validate; Load does both.
func Parse(src []byte) (*Definition, error) {
	var ps problems
	if len(src) > MaxSourceBytes {
		ps.add(loc{}, "", "definition is %d bytes, more than %d", len(src), MaxSourceBytes)
		return nil, ps.err()
	}
	root, src, syntax := yamlsrc.Read(src)
	if syntax != nil {
		ps.List = append(ps.List, *syntax)
		return nil, ps.err()
	}
	if root == nil {
		ps.add(loc{line: 1, col: 1}, "", "empty definition: want a mapping with steps")
		return nil, ps.err()
	}
	p := &parser{ps: &ps, lines: bytes.Split(src, []byte("\n")), d: &Definition{locs: map[string]loc{}}}
	p.Walker = yamlsrc.Walker{Problems: &ps.Problems, Record: p.record}
	p.definition(root)
	if len(ps.List) == 0 {
		p.index()
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return p.d, nil
}

type parser struct {
	yamlsrc.Walker
	ps    *problems
	lines [][]byte
	d     *Definition
}

func nodeLoc(n *yaml.Node) loc { return loc{line: n.Line, col: n.Column} }

// record remembers where path is. For scalars it also finds where the text starts, so a position
// inside a condition maps back onto the file.
func (p *parser) record(n *yaml.Node, path string) {
	l := nodeLoc(n)
	l.contentLine, l.contentCol = n.Line, n.Column
	if n.Kind == yaml.ScalarNode {
		switch {
		case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
			l.contentCol++
		case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
			for i := n.Line; i < len(p.lines); i++ { // p.lines[i] is line i+1
				t := bytes.TrimLeft(p.lines[i], " ")
				if len(bytes.TrimSpace(t)) > 0 {
					l.contentLine, l.contentCol = i+1, len(p.lines[i])-len(t)+1
					break
				}
			}
		}
	}
	p.d.locs[path] = l
}

// duration reads "30s"-style text or an integer number of milliseconds (the original system's unit).
func (p *parser) duration(n *yaml.Node, path string) Duration {
	if !p.Kind(n, path, yaml.ScalarNode, `a duration such as "30s" or "5m"`) {
		return 0
	}
	var d time.Duration
	if n.ShortTag() == "!!int" {
		ms, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil || ms > int64(MaxWait/time.Millisecond) {
			p.Errf(n, path, "%s milliseconds is out of range", n.Value)
			return 0
		}
		d = time.Duration(ms) * time.Millisecond
	} else {
		var err error
		if d, err = time.ParseDuration(n.Value); err != nil {
			p.Errf(n, path, `want a duration such as "30s", "5m" or "1h30m" (or milliseconds as a number), got %q`, n.Value)
			return 0
		}
	}
	if d <= 0 {
		p.Errf(n, path, "must be more than zero, got %q", n.Value)
		return 0
	}
	return Duration(d)
}

var topFields = []string{"name", "description", "inputs", "schedule", "steps", "handlers"}

func (p *parser) definition(n *yaml.Node) {
	d := p.d
	p.record(n, "")
	sawSteps := false
	p.Pairs(n, "", topFields, func(key string, k, v *yaml.Node, path string) {
		switch key {
		case "name":
			d.Name, _ = p.Str(v, path)
		case "description":
			d.Description, _ = p.Str(v, path)
		case "inputs":
			p.inputs(v, path)
		case "schedule":
			d.Schedule = p.schedule(v, path)
		case "steps":
			sawSteps = true
			d.Steps = p.steps(v, path, 0)
			if len(d.Steps) == 0 && v.Kind == yaml.SequenceNode {
				p.Errf(v, path, "a workflow needs at least one step")
			}
		case "handlers":
			d.Handlers = p.steps(v, path, 0)
		}
	})
	if !sawSteps && n.Kind == yaml.MappingNode {
		p.Errf(n, "steps", "no steps: a workflow needs a list of steps")
	}
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func (p *parser) inputs(n *yaml.Node, path string) {
	p.d.Inputs = map[string]*Input{}
	p.Pairs(n, path, nil, func(name string, k, v *yaml.Node, sub string) {
		if !identRE.MatchString(name) {
			p.Errf(k, sub, "input name %q: want letters, digits and _, not starting with a digit", name)
			return
		}
		in := &Input{}
		var def *yaml.Node
		p.Pairs(v, sub, []string{"type", "description", "required", "default"}, func(key string, _, fv *yaml.Node, fp string) {
			switch key {
			case "type":
				t, _ := p.Str(fv, fp)
				in.Type = InputType(t)
				if !slices.Contains([]InputType{InputString, InputInt, InputBool}, in.Type) {
					p.Errf(fv, fp, "unknown input type %q (want string, int or bool)", t)
				}
			case "description":
				in.Description, _ = p.Str(fv, fp)
			case "required":
				if fv.Kind != yaml.ScalarNode || fv.ShortTag() != "!!bool" {
					p.Errf(fv, fp, "want true or false")
					return
				}
				in.Required = fv.Value == "true"
			case "default":
				def = fv
			}
		})
		if v.Kind == yaml.MappingNode && in.Type == "" {
			p.Errf(v, sub, "input %s has no type (want string, int or bool)", name)
		}
		if def != nil && in.Type != "" {
			val, err := coerceInput(in.Type, scalarValue(def))
			if err != nil || def.Kind != yaml.ScalarNode {
				p.Errf(def, sub+".default", "default does not fit type %s: %q", in.Type, def.Value)
			} else {
				in.Default = val
			}
		}
		p.d.Inputs[name] = in
	})
}

// scalarValue gives a YAML scalar as the Go value a JSON decoder would have produced, so defaults and
// started-event inputs go through the same coercion.
func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!int":
		if v, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
			return v
		}
	case "!!bool":
		return n.Value == "true"
	case "!!null":
		return nil
	}
	return n.Value
}

func (p *parser) schedule(n *yaml.Node, path string) *Schedule {
	s := &Schedule{}
	var cronNode, tzNode *yaml.Node
	p.Pairs(n, path, []string{"cron", "timezone", "overlap"}, func(key string, _, v *yaml.Node, sub string) {
		switch key {
		case "cron":
			s.Cron, _ = p.Str(v, sub)
			cronNode = v
		case "timezone":
			s.Timezone, _ = p.Str(v, sub)
			tzNode = v
		case "overlap":
			o, _ := p.Str(v, sub)
			s.Overlap = Overlap(o)
			if s.Overlap != OverlapSkip && s.Overlap != OverlapQueue {
				p.Errf(v, sub, "unknown overlap %q (want skip or queue)", o)
			}
		}
	})
	if n.Kind != yaml.MappingNode {
		return s
	}
	if s.Overlap == "" {
		s.Overlap = OverlapSkip
	}
	if cronNode == nil {
		p.Errf(n, path+".cron", "a schedule needs a cron expression")
	} else if err := s.compile(); err != nil {
		if tzNode != nil && strings.HasPrefix(err.Error(), "timezone") {
			p.Errf(tzNode, path+".timezone", "%v", err)
		} else {
			p.Errf(cronNode, path+".cron", "%v", err)
		}
	}
	return s
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// compile parses the expression and loads the zone. Errors about the zone start with "timezone".
func (s *Schedule) compile() error {
	tz := s.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return fmt.Errorf("timezone %q: not an IANA time zone name (e.g. Europe/Paris, UTC)", s.Timezone)
	}
	spec := strings.TrimSpace(s.Cron)
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return fmt.Errorf("give the time zone in timezone, not in the cron expression")
	}
	if strings.HasPrefix(spec, "@every") {
		return fmt.Errorf("@every is not supported: use a cron expression, which runs at the same wall-clock times whatever the hub's history")
	}
	sched, err := cronParser.Parse(spec)
	if err != nil {
		return fmt.Errorf("cron %q: %v (want five fields: minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly, @monthly, @yearly)", s.Cron, err)
	}
	s.sched, s.loc = sched, loc
	return nil
}

var stepFields = map[StepType][]string{
	TypeExecute:  {"name", "type", "condition", "timeout", "retry", "on_failure", "targets", "command", "params", "max_concurrency", "max_errors"},
	TypePrompt:   {"name", "type", "condition", "timeout", "on_failure", "message", "options", "default"},
	TypeWait:     {"name", "type", "condition", "on_failure", "duration"},
	TypeParallel: {"name", "type", "condition", "timeout", "on_failure", "branches"},
}

var allStepFields = func() []string {
	var all []string
	for _, t := range []StepType{TypeExecute, TypePrompt, TypeWait, TypeParallel} {
		for _, f := range stepFields[t] {
			if !slices.Contains(all, f) {
				all = append(all, f)
			}
		}
	}
	return all
}()

func (p *parser) steps(n *yaml.Node, path string, depth int) []*Step {
	if !p.Kind(n, path, yaml.SequenceNode, "a list of steps") {
		return nil
	}
	out := make([]*Step, 0, len(n.Content))
	for i, e := range n.Content {
		sub := stepPath(path, i)
		p.record(e, sub)
		if s := p.step(e, sub, depth); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// step reads one step. The type is read first so that a field the type does not use is reported as
// such rather than as unknown.
func (p *parser) step(n *yaml.Node, path string, depth int) *Step {
	if !p.Kind(n, path, yaml.MappingNode, "a step (a mapping with name and type)") {
		return nil
	}
	s := &Step{path: path}
	var typeNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typeNode = n.Content[i+1]
		}
	}
	if typeNode == nil {
		p.Errf(n, path+".type", "step has no type (want execute, prompt, wait or parallel)")
		return nil
	}
	t, ok := p.Str(typeNode, path+".type")
	if !ok {
		return nil
	}
	s.Type = StepType(t)
	known, ok := stepFields[s.Type]
	if !ok {
		p.Errf(typeNode, path+".type", "unknown step type %q (want execute, prompt, wait or parallel)", t)
		return nil
	}
	hasName := false
	p.Pairs(n, path, allStepFields, func(key string, k, v *yaml.Node, sub string) {
		if !slices.Contains(known, key) {
			p.Errf(k, sub, "%s step has no field %q (its fields: %s)", article(string(s.Type)), key, strings.Join(known, ", "))
			return
		}
		switch key {
		case "name":
			hasName = true
			s.Name, _ = p.Str(v, sub)
			if msg := checkStepName(s.Name); msg != "" {
				p.Errf(v, sub, "%s", msg)
			}
		case "type":
		case "condition":
			if s.Condition, _ = p.Str(v, sub); strings.TrimSpace(s.Condition) == "" {
				p.Errf(v, sub, "empty condition: remove the field or write an expression")
			}
		case "timeout":
			s.Timeout = p.duration(v, sub)
		case "retry":
			s.Retry = p.retry(v, sub)
		case "on_failure":
			s.OnFailure = p.onFailure(v, sub)
		case "targets":
			if s.Targets = p.Strings(v, sub, true); len(s.Targets) == 0 && v.Kind == yaml.SequenceNode {
				p.Errf(v, sub, "no targets: give all, agent ids or names, or label selectors k=v")
			}
		case "command":
			s.Command, _ = p.Str(v, sub)
		case "params":
			s.Params = map[string]string{}
			p.Pairs(v, sub, nil, func(name string, _, pv *yaml.Node, pp string) {
				if val, ok := p.Str(pv, pp); ok {
					s.Params[name] = val
				}
			})
		case "max_concurrency":
			s.MaxConcurrency = p.Int(v, sub)
		case "max_errors":
			s.MaxErrors = p.Int(v, sub)
		case "message":
			s.Message, _ = p.Str(v, sub)
		case "options":
			s.Options = p.Strings(v, sub, false)
		case "default":
			if d, ok := p.Str(v, sub); ok {
				s.Default = &d
			}
		case "duration":
			s.Duration = p.duration(v, sub)
		case "branches":
			s.Branches = p.branches(v, sub, depth+1)
		}
	})
	if !hasName {
		p.Errf(n, path+".name", "step has no name")
	}
	p.required(n, s, path)
	return s
}

func checkStepName(name string) string {
	switch {
	case strings.TrimSpace(name) == "":
		return "empty step name"
	case len(name) > MaxStepNameBytes:
		return fmt.Sprintf("step name longer than %d bytes", MaxStepNameBytes)
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "step name has control characters"
	}
	return ""
}

// required reports what a step of its type cannot do without.
func (p *parser) required(n *yaml.Node, s *Step, path string) {
	miss := func(field, why string) { p.Errf(n, path+"."+field, "%s step needs %s", article(string(s.Type)), why) }
	switch s.Type {
	case TypeExecute:
		if s.Command == "" {
			miss("command", "a command (a name from the agents' catalog)")
		}
		if s.Targets == nil {
			miss("targets", "targets (all, agent ids or names, or label selectors k=v)")
		}
		if s.Timeout.Std() > MaxExecuteTimeout {
			p.Errf(n, path+".timeout", "an execute step's timeout is at most %s", MaxExecuteTimeout)
		}
	case TypePrompt:
		if strings.TrimSpace(s.Message) == "" {
			miss("message", "a message")
		}
	case TypeWait:
		if s.Duration == 0 {
			miss("duration", `a duration such as "10s"`)
		}
	case TypeParallel:
		if len(s.Branches) == 0 {
			miss("branches", "branches")
		}
	}
	for _, f := range []struct {
		d    Duration
		name string
	}{{s.Timeout, "timeout"}, {s.Duration, "duration"}} {
		if f.d.Std() > MaxWait {
			p.Errf(n, path+"."+f.name, "at most %s", MaxWait)
		}
	}
}

func (p *parser) retry(n *yaml.Node, path string) *Retry {
	r := &Retry{}
	sawAttempts := false
	p.Pairs(n, path, []string{"attempts", "backoff", "max_backoff"}, func(key string, _, v *yaml.Node, sub string) {
		switch key {
		case "attempts":
			sawAttempts = true
			r.Attempts = p.Int(v, sub)
			if r.Attempts < 1 || r.Attempts > MaxAttempts {
				p.Errf(v, sub, "attempts counts every run, the first included: want 1 to %d, got %s", MaxAttempts, v.Value)
			}
		case "backoff":
			r.Backoff = p.duration(v, sub)
		case "max_backoff":
			r.MaxBackoff = p.duration(v, sub)
		}
	})
	if n.Kind == yaml.MappingNode && !sawAttempts {
		p.Errf(n, path+".attempts", "retry needs attempts (every run, the first included)")
	}
	if r.MaxBackoff > 0 && r.Backoff > r.MaxBackoff {
		p.Errf(n, path+".backoff", "backoff %s is more than max_backoff %s", r.Backoff.Std(), r.MaxBackoff.Std())
	}
	if r.Backoff.Std() > MaxWait || r.MaxBackoff.Std() > MaxWait {
		p.Errf(n, path, "backoffs are at most %s", MaxWait)
	}
	return r
}

func (p *parser) onFailure(n *yaml.Node, path string) *OnFailure {
	switch n.Kind {
	case yaml.ScalarNode:
		switch a := FailureAction(n.Value); a {
		case FailStop, FailContinue:
			return &OnFailure{Action: a}
		default:
			p.Errf(n, path, "on_failure is stop, continue, or a list of handler step names; got %q", n.Value)
		}
	case yaml.SequenceNode:
		names := p.Strings(n, path, false)
		if len(names) == 0 {
			p.Errf(n, path, "empty list: name the handler steps to run, or use stop or continue")
		}
		return &OnFailure{Action: FailRun, Steps: names}
	default:
		p.Errf(n, path, "on_failure is stop, continue, or a list of handler step names; got %s", yamlsrc.Describe(n))
	}
	return nil
}

// branches reads a parallel step's branches. Each entry is a branch: a list of steps, a mapping
// {name, steps}, or a single step (a branch of one step), whichever reads best.
func (p *parser) branches(n *yaml.Node, path string, depth int) []*Branch {
	if depth > MaxNesting {
		p.Errf(n, path, "parallel steps nest at most %d deep", MaxNesting)
		return nil
	}
	if !p.Kind(n, path, yaml.SequenceNode, "a list of branches") {
		return nil
	}
	var out []*Branch
	for i, e := range n.Content {
		sub := stepPath(path, i)
		p.record(e, sub)
		b := &Branch{}
		switch {
		case e.Kind == yaml.SequenceNode:
			b.Steps = p.steps(e, sub, depth)
		case e.Kind == yaml.MappingNode && hasKey(e, "steps") && !hasKey(e, "type"):
			p.Pairs(e, sub, []string{"name", "steps"}, func(key string, _, v *yaml.Node, bp string) {
				if key == "name" {
					b.Name, _ = p.Str(v, bp)
				} else {
					b.Steps = p.steps(v, bp, depth)
				}
			})
		default:
			if s := p.step(e, sub, depth); s != nil {
				b.Steps = []*Step{s}
			}
		}
		if len(b.Steps) == 0 && (e.Kind == yaml.SequenceNode || e.Kind == yaml.MappingNode) {
			p.Errf(e, sub, "empty branch")
		}
		out = append(out, b)
	}
	return out
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// index builds the by-name tables and refuses duplicate names: names key the state, the ids and the
// condition variables, so they are unique across the whole definition.
func (p *parser) index() {
	d := p.d
	d.byName = map[string]*Step{}
	d.parent = map[string]*Step{}
	var walk func(steps []*Step, parent *Step)
	walk = func(steps []*Step, parent *Step) {
		for _, s := range steps {
			if prev, dup := d.byName[s.Name]; dup {
				p.ps.add(d.at(s.path+".name"), s.path+".name", "step name %q is already used at %s", s.Name, prev.path)
				continue
			}
			d.byName[s.Name] = s
			d.order = append(d.order, s)
			if parent != nil {
				d.parent[s.Name] = parent
			}
			for _, b := range s.Branches {
				walk(b.Steps, s)
			}
		}
	}
	walk(d.Steps, nil)
	walk(d.Handlers, nil)
	if len(d.order) > MaxSteps {
		p.ps.add(d.at("steps"), "steps", "%d steps, more than %d", len(d.order), MaxSteps)
	}
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}
