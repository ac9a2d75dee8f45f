package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
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
	src = untabJSON(src)
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		ps.list = append(ps.list, syntaxProblem(src, err))
		return nil, ps.err()
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		ps.add(loc{line: 1, col: 1}, "", "empty definition: want a mapping with steps")
		return nil, ps.err()
	}
	p := &parser{ps: &ps, lines: bytes.Split(src, []byte("\n")), d: &Definition{locs: map[string]loc{}}}
	p.definition(doc.Content[0])
	if len(ps.list) == 0 {
		p.index()
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return p.d, nil
}

// untabJSON replaces tabs with spaces in a document that looks like JSON. YAML forbids tabs as
// indentation and JSON is often tab-indented; JSON strings cannot hold a raw tab, so the replacement
// changes no value, and one byte for one keeps every column.
func untabJSON(src []byte) []byte {
	if !looksJSON(src) || !bytes.ContainsRune(src, '\t') {
		return src
	}
	return bytes.ReplaceAll(src, []byte("\t"), []byte(" "))
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem places a syntax error. JSON errors are placed exactly by encoding/json. The YAML parser
// reports the line where the enclosing construct began, not where it broke, so the broken line is found
// as the shortest prefix of the document that fails the same way; the column then points at the first
// character of that line's content, which is where an editor should jump.
func syntaxProblem(src []byte, err error) Problem {
	if looksJSON(src) {
		var v any
		var se *json.SyntaxError
		if jerr := json.Unmarshal(src, &v); errors.As(jerr, &se) {
			line, col := lineCol(src, int(se.Offset)-1)
			return Problem{Line: line, Column: col, Message: "syntax error: " + se.Error()}
		}
	}
	msg := err.Error()
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return Problem{Message: "syntax error: " + strings.TrimPrefix(msg, "yaml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	lines := bytes.SplitAfter(src, []byte("\n"))
	if len(src) <= 256<<10 {
		prefix := bytes.Join(lines[:min(line, len(lines))], nil)
		for n := line; n < len(lines) && n < line+2000; n++ {
			var doc yaml.Node
			perr := yaml.Unmarshal(prefix, &doc)
			if pm := yamlLineRE.FindStringSubmatch(fmt.Sprint(perr)); pm != nil && pm[2] == m[2] {
				line = n
				break
			}
			prefix = append(prefix, lines[n]...)
		}
	}
	col := 0
	if line >= 1 && line <= len(lines) {
		l := bytes.TrimRight(lines[line-1], "\r\n")
		col = len(l) - len(bytes.TrimLeft(l, " \t")) + 1
	}
	return Problem{Line: line, Column: col, Message: "syntax error: " + m[2]}
}

func looksJSON(src []byte) bool {
	t := bytes.TrimLeft(src, " \t\r\n\ufeff")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// lineCol turns a byte offset into a 1-based line and column (in characters).
func lineCol(src []byte, off int) (int, int) {
	off = max(0, min(off, len(src)))
	before := src[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

type parser struct {
	ps    *problems
	lines [][]byte
	d     *Definition
}

func nodeLoc(n *yaml.Node) loc { return loc{line: n.Line, col: n.Column} }

func (p *parser) errf(n *yaml.Node, path, format string, args ...any) {
	p.ps.add(nodeLoc(n), path, format, args...)
}

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

// pairs walks a mapping, refusing duplicate keys, non-scalar keys and keys outside known, and calls
// fn for each known key with the path of its value.
func (p *parser) pairs(n *yaml.Node, path string, known []string, fn func(key string, k, v *yaml.Node, path string)) {
	if !p.kind(n, path, yaml.MappingNode, "a mapping") {
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errf(k, path, "keys must be plain words")
			continue
		}
		key := k.Value
		sub := key
		if path != "" {
			sub = path + "." + key
		}
		if seen[key] {
			p.errf(k, sub, "%q given twice", key)
			continue
		}
		seen[key] = true
		if known != nil && !slices.Contains(known, key) {
			p.errf(k, sub, "unknown field %q (known: %s)", key, strings.Join(known, ", "))
			continue
		}
		if v.Kind == yaml.AliasNode || v.Anchor != "" || key == "<<" {
			p.errf(v, sub, "anchors, aliases and merge keys are not supported")
			continue
		}
		p.record(v, sub)
		fn(key, k, v, sub)
	}
}

// kind refuses a node of the wrong shape.
func (p *parser) kind(n *yaml.Node, path string, want yaml.Kind, what string) bool {
	if n.Kind == want {
		return true
	}
	if n.Kind == yaml.AliasNode {
		p.errf(n, path, "anchors, aliases and merge keys are not supported")
		return false
	}
	p.errf(n, path, "want %s, got %s", what, describe(n))
	return false
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// str reads a scalar as text: a string, or a number or boolean written bare (params: {count: 3}).
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if !p.kind(n, path, yaml.ScalarNode, "a string") {
		return "", false
	}
	if n.ShortTag() == "!!null" {
		p.errf(n, path, "want a string, got nothing")
		return "", false
	}
	return n.Value, true
}

// intv reads a non-negative integer.
func (p *parser) intv(n *yaml.Node, path string) int {
	if !p.kind(n, path, yaml.ScalarNode, "a whole number") {
		return 0
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || n.ShortTag() != "!!int" || v < 0 {
		p.errf(n, path, "want a whole number ≥ 0, got %q", n.Value)
		return 0
	}
	return v
}

// duration reads "30s"-style text or an integer number of milliseconds (the original system's unit).
func (p *parser) duration(n *yaml.Node, path string) Duration {
	if !p.kind(n, path, yaml.ScalarNode, `a duration such as "30s" or "5m"`) {
		return 0
	}
	var d time.Duration
	if n.ShortTag() == "!!int" {
		ms, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil || ms > int64(MaxWait/time.Millisecond) {
			p.errf(n, path, "%s milliseconds is out of range", n.Value)
			return 0
		}
		d = time.Duration(ms) * time.Millisecond
	} else {
		var err error
		if d, err = time.ParseDuration(n.Value); err != nil {
			p.errf(n, path, `want a duration such as "30s", "5m" or "1h30m" (or milliseconds as a number), got %q`, n.Value)
			return 0
		}
	}
	if d <= 0 {
		p.errf(n, path, "must be more than zero, got %q", n.Value)
		return 0
	}
	return Duration(d)
}

// strings reads a list of strings, or one string standing for a list of one (targets: all).
func (p *parser) strs(n *yaml.Node, path string, single bool) []string {
	if single && n.Kind == yaml.ScalarNode {
		if s, ok := p.str(n, path); ok {
			return []string{s}
		}
		return nil
	}
	if !p.kind(n, path, yaml.SequenceNode, "a list of strings") {
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		sub := stepPath(path, i)
		p.record(e, sub)
		if s, ok := p.str(e, sub); ok {
			out = append(out, s)
		}
	}
	return out
}

var topFields = []string{"name", "description", "inputs", "schedule", "steps", "handlers"}

func (p *parser) definition(n *yaml.Node) {
	d := p.d
	p.record(n, "")
	sawSteps := false
	p.pairs(n, "", topFields, func(key string, k, v *yaml.Node, path string) {
		switch key {
		case "name":
			d.Name, _ = p.str(v, path)
		case "description":
			d.Description, _ = p.str(v, path)
		case "inputs":
			p.inputs(v, path)
		case "schedule":
			d.Schedule = p.schedule(v, path)
		case "steps":
			sawSteps = true
			d.Steps = p.steps(v, path, 0)
			if len(d.Steps) == 0 && v.Kind == yaml.SequenceNode {
				p.errf(v, path, "a workflow needs at least one step")
			}
		case "handlers":
			d.Handlers = p.steps(v, path, 0)
		}
	})
	if !sawSteps && n.Kind == yaml.MappingNode {
		p.errf(n, "steps", "no steps: a workflow needs a list of steps")
	}
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func (p *parser) inputs(n *yaml.Node, path string) {
	p.d.Inputs = map[string]*Input{}
	p.pairs(n, path, nil, func(name string, k, v *yaml.Node, sub string) {
		if !identRE.MatchString(name) {
			p.errf(k, sub, "input name %q: want letters, digits and _, not starting with a digit", name)
			return
		}
		in := &Input{}
		var def *yaml.Node
		p.pairs(v, sub, []string{"type", "description", "required", "default"}, func(key string, _, fv *yaml.Node, fp string) {
			switch key {
			case "type":
				t, _ := p.str(fv, fp)
				in.Type = InputType(t)
				if !slices.Contains([]InputType{InputString, InputInt, InputBool}, in.Type) {
					p.errf(fv, fp, "unknown input type %q (want string, int or bool)", t)
				}
			case "description":
				in.Description, _ = p.str(fv, fp)
			case "required":
				if fv.Kind != yaml.ScalarNode || fv.ShortTag() != "!!bool" {
					p.errf(fv, fp, "want true or false")
					return
				}
				in.Required = fv.Value == "true"
			case "default":
				def = fv
			}
		})
		if v.Kind == yaml.MappingNode && in.Type == "" {
			p.errf(v, sub, "input %s has no type (want string, int or bool)", name)
		}
		if def != nil && in.Type != "" {
			val, err := coerceInput(in.Type, scalarValue(def))
			if err != nil || def.Kind != yaml.ScalarNode {
				p.errf(def, sub+".default", "default does not fit type %s: %q", in.Type, def.Value)
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
	p.pairs(n, path, []string{"cron", "timezone", "overlap"}, func(key string, _, v *yaml.Node, sub string) {
		switch key {
		case "cron":
			s.Cron, _ = p.str(v, sub)
			cronNode = v
		case "timezone":
			s.Timezone, _ = p.str(v, sub)
			tzNode = v
		case "overlap":
			o, _ := p.str(v, sub)
			s.Overlap = Overlap(o)
			if s.Overlap != OverlapSkip && s.Overlap != OverlapQueue {
				p.errf(v, sub, "unknown overlap %q (want skip or queue)", o)
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
		p.errf(n, path+".cron", "a schedule needs a cron expression")
	} else if err := s.compile(); err != nil {
		if tzNode != nil && strings.HasPrefix(err.Error(), "timezone") {
			p.errf(tzNode, path+".timezone", "%v", err)
		} else {
			p.errf(cronNode, path+".cron", "%v", err)
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
	if !p.kind(n, path, yaml.SequenceNode, "a list of steps") {
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
	if !p.kind(n, path, yaml.MappingNode, "a step (a mapping with name and type)") {
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
		p.errf(n, path+".type", "step has no type (want execute, prompt, wait or parallel)")
		return nil
	}
	t, ok := p.str(typeNode, path+".type")
	if !ok {
		return nil
	}
	s.Type = StepType(t)
	known, ok := stepFields[s.Type]
	if !ok {
		p.errf(typeNode, path+".type", "unknown step type %q (want execute, prompt, wait or parallel)", t)
		return nil
	}
	hasName := false
	p.pairs(n, path, allStepFields, func(key string, k, v *yaml.Node, sub string) {
		if !slices.Contains(known, key) {
			p.errf(k, sub, "%s step has no field %q (its fields: %s)", article(string(s.Type)), key, strings.Join(known, ", "))
			return
		}
		switch key {
		case "name":
			hasName = true
			s.Name, _ = p.str(v, sub)
			if msg := checkStepName(s.Name); msg != "" {
				p.errf(v, sub, "%s", msg)
			}
		case "type":
		case "condition":
			if s.Condition, _ = p.str(v, sub); strings.TrimSpace(s.Condition) == "" {
				p.errf(v, sub, "empty condition: remove the field or write an expression")
			}
		case "timeout":
			s.Timeout = p.duration(v, sub)
		case "retry":
			s.Retry = p.retry(v, sub)
		case "on_failure":
			s.OnFailure = p.onFailure(v, sub)
		case "targets":
			if s.Targets = p.strs(v, sub, true); len(s.Targets) == 0 && v.Kind == yaml.SequenceNode {
				p.errf(v, sub, "no targets: give all, agent ids or names, or label selectors k=v")
			}
		case "command":
			s.Command, _ = p.str(v, sub)
		case "params":
			s.Params = map[string]string{}
			p.pairs(v, sub, nil, func(name string, _, pv *yaml.Node, pp string) {
				if val, ok := p.str(pv, pp); ok {
					s.Params[name] = val
				}
			})
		case "max_concurrency":
			s.MaxConcurrency = p.intv(v, sub)
		case "max_errors":
			s.MaxErrors = p.intv(v, sub)
		case "message":
			s.Message, _ = p.str(v, sub)
		case "options":
			s.Options = p.strs(v, sub, false)
		case "default":
			if d, ok := p.str(v, sub); ok {
				s.Default = &d
			}
		case "duration":
			s.Duration = p.duration(v, sub)
		case "branches":
			s.Branches = p.branches(v, sub, depth+1)
		}
	})
	if !hasName {
		p.errf(n, path+".name", "step has no name")
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
	miss := func(field, why string) { p.errf(n, path+"."+field, "%s step needs %s", article(string(s.Type)), why) }
	switch s.Type {
	case TypeExecute:
		if s.Command == "" {
			miss("command", "a command (a name from the agents' catalog)")
		}
		if s.Targets == nil {
			miss("targets", "targets (all, agent ids or names, or label selectors k=v)")
		}
		if s.Timeout.Std() > MaxExecuteTimeout {
			p.errf(n, path+".timeout", "an execute step's timeout is at most %s", MaxExecuteTimeout)
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
			p.errf(n, path+"."+f.name, "at most %s", MaxWait)
		}
	}
}

func (p *parser) retry(n *yaml.Node, path string) *Retry {
	r := &Retry{}
	sawAttempts := false
	p.pairs(n, path, []string{"attempts", "backoff", "max_backoff"}, func(key string, _, v *yaml.Node, sub string) {
		switch key {
		case "attempts":
			sawAttempts = true
			r.Attempts = p.intv(v, sub)
			if r.Attempts < 1 || r.Attempts > MaxAttempts {
				p.errf(v, sub, "attempts counts every run, the first included: want 1 to %d, got %s", MaxAttempts, v.Value)
			}
		case "backoff":
			r.Backoff = p.duration(v, sub)
		case "max_backoff":
			r.MaxBackoff = p.duration(v, sub)
		}
	})
	if n.Kind == yaml.MappingNode && !sawAttempts {
		p.errf(n, path+".attempts", "retry needs attempts (every run, the first included)")
	}
	if r.MaxBackoff > 0 && r.Backoff > r.MaxBackoff {
		p.errf(n, path+".backoff", "backoff %s is more than max_backoff %s", r.Backoff.Std(), r.MaxBackoff.Std())
	}
	if r.Backoff.Std() > MaxWait || r.MaxBackoff.Std() > MaxWait {
		p.errf(n, path, "backoffs are at most %s", MaxWait)
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
			p.errf(n, path, "on_failure is stop, continue, or a list of handler step names; got %q", n.Value)
		}
	case yaml.SequenceNode:
		names := p.strs(n, path, false)
		if len(names) == 0 {
			p.errf(n, path, "empty list: name the handler steps to run, or use stop or continue")
		}
		return &OnFailure{Action: FailRun, Steps: names}
	default:
		p.errf(n, path, "on_failure is stop, continue, or a list of handler step names; got %s", describe(n))
	}
	return nil
}

// branches reads a parallel step's branches. Each entry is a branch: a list of steps, a mapping
// {name, steps}, or a single step (a branch of one step), whichever reads best.
func (p *parser) branches(n *yaml.Node, path string, depth int) []*Branch {
	if depth > MaxNesting {
		p.errf(n, path, "parallel steps nest at most %d deep", MaxNesting)
		return nil
	}
	if !p.kind(n, path, yaml.SequenceNode, "a list of branches") {
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
			p.pairs(e, sub, []string{"name", "steps"}, func(key string, _, v *yaml.Node, bp string) {
				if key == "name" {
					b.Name, _ = p.str(v, bp)
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
			p.errf(e, sub, "empty branch")
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
