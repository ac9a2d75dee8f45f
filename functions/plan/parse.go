// Package plan reads plan sources: the YAML (or JSON) in which an operator says what must be true on
// which agents. It is pure (no I/O, no clock): the hub's plans room stores what Parse returns and
// delivers it to the agents, whose integrations own the unit types and read each unit's spec. This
// package knows no unit type; it checks what hub and agent both rely on (wire.Plan.Validate) and places
// every problem at its line and column, as workflows are refused.
//
//	targets: [role=web]        # agent ids, names or label selectors k=v, as commands take them
//	mode: enforce              # or report: say what differs, touch nothing (default enforce)
//	units:
//	  - name: conf
//	    type: file
//	    notify: [app]          # restart app when conf changed
//	    spec: {path: /etc/app/app.conf, content: "port=8080\n", mode: "0644"}
//	  - name: app
//	    type: process
//	    requires: [conf]       # apply conf first, and app only once conf converged
//	    deadline: 30s          # each phase of applying app; then it is failed, with the reason
//	    spec: {command: /usr/bin/sleep, args: ["1000"], restart: always}
//	rollout: {first: 1, waves: 2, bake: 30s}   # optional: stage new versions (see Rollout)
package plan

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/yamlsrc"
)

const (
	// MaxSourceBytes is the largest plan source Parse reads.
	MaxSourceBytes = 1 << 20
	// MaxDeadline bounds a unit's phase deadline: a unit stuck for longer is failed, with its reason,
	// instead of "applying" for a day.
	MaxDeadline = 24 * time.Hour
	// MaxTargets bounds the target expressions of a plan.
	MaxTargets = 100
)

// subject starts the message of the error Parse returns.
const subject = "plan"

// Spec is a plan source as read: whom it is for and the desired state.
type Spec struct {
	// Targets are the target expressions as written: agent ids, agent names, label selectors k=v
	// (union), exactly as commands take them.
	Targets []string
	// Plan is the desired state, checked by wire.Plan.Validate; Name and Version are the room's to set.
	Plan wire.Plan
	// Rollout, when the source has one, stages how a new version reaches the targets.
	Rollout *Rollout

	locs map[string]pos
}

// pos is where a value was in the source.
type pos struct{ line, col int }

// TargetPath names target expression i in problems and for At.
func TargetPath(i int) string { return yamlsrc.Index("targets", i) }

// At is where path ("targets[1]", "units[0].spec") was in the source, or its nearest enclosing value
// when the path itself was not written (one target written as a string is "targets"); 0, 0 when
// nothing encloses it. The room places what it finds later (a target that matches no agent) with it.
func (s *Spec) At(path string) (line, col int) {
	for p := path; ; {
		if l, ok := s.locs[p]; ok {
			return l.line, l.col
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return 0, 0
		}
		p = p[:i]
	}
}

// Parse reads a plan. It refuses, with the line and column of each problem: syntax errors, unknown
// fields, missing fields, values of the wrong type, names that are not unit names, a unit defined
// twice (at its second definition), requires and notify naming a unit the plan does not define or the
// unit itself, units that require each other in a cycle, bad deadlines, and a spec that is not a
// mapping JSON can carry. The error is a *yamlsrc.Error.
func Parse(src []byte) (*Spec, error) {
	var ps yamlsrc.Problems
	if len(src) > MaxSourceBytes {
		ps.Add(0, 0, "", "plan is %d bytes, more than %d", len(src), MaxSourceBytes)
		return nil, ps.Err(subject)
	}
	root, _, syntax := yamlsrc.Read(src)
	if syntax != nil {
		ps.List = append(ps.List, *syntax)
		return nil, ps.Err(subject)
	}
	if root == nil {
		ps.Add(1, 1, "", "empty plan: want a mapping with targets and units")
		return nil, ps.Err(subject)
	}
	p := &parser{ps: &ps, s: &Spec{locs: map[string]pos{}}}
	p.w = yamlsrc.Walker{Problems: &ps, Record: func(n *yaml.Node, path string) { p.s.locs[path] = pos{n.Line, n.Column} }}
	p.plan(root)
	p.references()
	if len(ps.List) == 0 {
		p.cycles()
	}
	if len(ps.List) == 0 {
		// What hub and agent both rely on, as the agent will check it; the walk above should have
		// found anything it refuses, each at its place, so this only guards against the two drifting.
		check := p.s.Plan
		check.Name, check.Version = "plan", 1
		if err := check.Validate(); err != nil {
			p.w.Errf(root, "", "%v", err)
		}
	}
	if err := ps.Err(subject); err != nil {
		return nil, err
	}
	return p.s, nil
}

type parser struct {
	w  yamlsrc.Walker
	ps *yamlsrc.Problems
	s  *Spec
	// units' name nodes in order, for the checks that need every name first.
	names []*yaml.Node
	// refs are every requires and notify entry: which unit, which list, which entry.
	refs []ref
}

// ref is one entry of a unit's requires or notify list.
type ref struct {
	unit       int
	field      string // "requires" or "notify"
	name, path string
}

func (p *parser) at(path string) pos {
	l, c := p.s.At(path)
	return pos{l, c}
}

func (p *parser) add(path, format string, args ...any) {
	l := p.at(path)
	p.ps.Add(l.line, l.col, path, format, args...)
}

var (
	topFields  = []string{"targets", "mode", "units", "rollout"}
	unitFields = []string{"name", "type", "requires", "notify", "deadline", "spec"}
)

func (p *parser) plan(n *yaml.Node) {
	s := p.s
	p.s.locs[""] = pos{n.Line, n.Column}
	var sawTargets, sawUnits bool
	s.Plan.Mode = wire.ModeEnforce
	p.w.Pairs(n, "", topFields, func(key string, _, v *yaml.Node, path string) {
		switch key {
		case "targets":
			sawTargets = true
			s.Targets = p.targets(v, path)
		case "mode":
			if m, ok := p.w.Str(v, path); ok {
				if m != wire.ModeEnforce && m != wire.ModeReport {
					p.w.Errf(v, path, "unknown mode %q (want %s: repair what differs, or %s: say what differs and touch nothing)", m, wire.ModeEnforce, wire.ModeReport)
				}
				s.Plan.Mode = m
			}
		case "units":
			sawUnits = true
			s.Plan.Units = p.units(v, path)
		case "rollout":
			s.Rollout = p.rollout(v, path)
		}
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if !sawTargets {
		p.w.Errf(n, "targets", "no targets: say which agents the plan is for (agent ids or names, or label selectors k=v)")
	}
	if !sawUnits {
		p.w.Errf(n, "units", "no units: a plan needs a list of units (name, type, spec)")
	}
}

func (p *parser) targets(n *yaml.Node, path string) []string {
	ts := p.w.Strings(n, path, true)
	if len(ts) == 0 && n.Kind == yaml.SequenceNode {
		p.w.Errf(n, path, "no targets: give agent ids or names, or label selectors k=v")
	}
	if len(ts) > MaxTargets {
		p.w.Errf(n, path, "%d target expressions; at most %d (a label selector names many agents at once)", len(ts), MaxTargets)
	}
	for i, t := range ts {
		if strings.TrimSpace(t) == "" {
			sub := path
			if n.Kind == yaml.SequenceNode {
				sub = TargetPath(i)
			}
			p.add(sub, "empty target: give an agent id or name, or a label selector k=v")
		}
	}
	return ts
}

func (p *parser) units(n *yaml.Node, path string) []wire.Unit {
	if !p.w.Kind(n, path, yaml.SequenceNode, "a list of units") {
		return nil
	}
	if len(n.Content) == 0 {
		p.w.Errf(n, path, "no units: a plan needs at least one unit (name, type, spec)")
	}
	if len(n.Content) > wire.MaxUnits {
		p.w.Errf(n, path, "%d units; at most %d", len(n.Content), wire.MaxUnits)
		return nil
	}
	out := make([]wire.Unit, 0, len(n.Content))
	for i, e := range n.Content {
		sub := yamlsrc.Index(path, i)
		p.s.locs[sub] = pos{e.Line, e.Column}
		out = append(out, p.unit(e, sub, len(out)))
	}
	return out
}

func (p *parser) unit(n *yaml.Node, path string, index int) wire.Unit {
	var u wire.Unit
	if !p.w.Kind(n, path, yaml.MappingNode, "a unit (a mapping with name, type and spec)") {
		p.names = append(p.names, nil)
		return u
	}
	var nameNode *yaml.Node
	sawName, sawType, sawSpec := false, false, false
	p.w.Pairs(n, path, unitFields, func(key string, _, v *yaml.Node, sub string) {
		switch key {
		case "name":
			sawName = true
			if name, ok := p.w.Str(v, sub); ok {
				u.Name, nameNode = name, v
				if !wire.ValidName(name) {
					p.w.Errf(v, sub, "unit name %q: lower-case letters, digits and _, starting with a letter, at most 63 characters", name)
				}
			}
		case "type":
			sawType = true
			if t, ok := p.w.Str(v, sub); ok {
				u.Type = t
				if !wire.ValidName(t) {
					p.w.Errf(v, sub, "unit type %q: a type is a name such as file, process or container (lower-case letters, digits and _)", t)
				}
			}
		case "requires", "notify":
			list := p.w.Strings(v, sub, false)
			for i, name := range list {
				p.refs = append(p.refs, ref{unit: index, field: key, name: name, path: yamlsrc.Index(sub, i)})
			}
			if key == "requires" {
				u.Requires = list
			} else {
				u.Notify = list
			}
		case "deadline":
			u.DeadlineSeconds = p.deadline(v, sub)
		case "spec":
			sawSpec = true
			if p.w.Kind(v, sub, yaml.MappingNode, "a mapping (the unit type's own fields)") {
				if val, ok := p.value(v, sub); ok {
					b, err := json.Marshal(val)
					if err != nil {
						p.w.Errf(v, sub, "cannot be carried as JSON: %v", err)
					}
					u.Spec = b
				}
			}
		}
	})
	missing := func(field, what string) { p.w.Errf(n, path+"."+field, "a unit needs %s", what) }
	if !sawName {
		missing("name", "a name (lower-case letters, digits and _), unique in the plan")
	}
	if !sawType {
		missing("type", "a type (file, process, container, … as the agents' integrations offer)")
	}
	if !sawSpec {
		missing("spec", "a spec: a mapping of the unit type's own fields")
	}
	p.names = append(p.names, nameNode)
	return u
}

// deadline reads a phase deadline, "30s" or "2m", as whole seconds.
func (p *parser) deadline(n *yaml.Node, path string) int {
	if !p.w.Kind(n, path, yaml.ScalarNode, `a duration such as "30s" or "2m"`) {
		return 0
	}
	d, err := time.ParseDuration(n.Value)
	switch {
	case n.ShortTag() == "!!int":
		p.w.Errf(n, path, "want a duration with its unit, such as %ss", n.Value)
	case err != nil:
		p.w.Errf(n, path, `want a duration such as "30s", "5m" or "1h30m", got %q`, n.Value)
	case d < time.Second || d%time.Second != 0:
		p.w.Errf(n, path, "want a whole number of seconds, at least 1s, got %q", n.Value)
	case d > MaxDeadline:
		p.w.Errf(n, path, "at most %s, got %q", MaxDeadline, n.Value)
	default:
		return int(d / time.Second)
	}
	return 0
}

// value turns a spec's YAML into what encoding/json carries: mappings with text keys, lists, text,
// numbers, booleans and null. A value YAML reads as a time stays the text written (JSON has no
// times); infinities and NaN, which JSON cannot carry, are refused.
func (p *parser) value(n *yaml.Node, path string) (any, bool) {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		p.w.Errf(n, path, "anchors, aliases and merge keys are not supported")
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		ok := true
		p.w.Pairs(n, path, nil, func(key string, _, v *yaml.Node, sub string) {
			val, vok := p.value(v, sub)
			out[key], ok = val, ok && vok
		})
		return out, ok
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, e := range n.Content {
			val, vok := p.value(e, yamlsrc.Index(path, i))
			out, ok = append(out, val), ok && vok
		}
		return out, ok
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!timestamp", "!!binary":
			return n.Value, true
		}
		var v any
		if err := n.Decode(&v); err != nil {
			p.w.Errf(n, path, "cannot read %q: %v", n.Value, err)
			return nil, false
		}
		if f, isFloat := v.(float64); isFloat && (math.IsInf(f, 0) || math.IsNaN(f)) {
			p.w.Errf(n, path, "%s cannot be carried as JSON: write a number, or quote it as text", n.Value)
			return nil, false
		}
		return v, true
	}
	p.w.Errf(n, path, "anchors, aliases and merge keys are not supported")
	return nil, false
}

// references refuses a unit name defined twice (at its second definition) and requires and notify
// entries that name no unit of the plan, or the unit itself.
func (p *parser) references() {
	defined := map[string]int{}
	for i, nn := range p.names {
		if nn == nil {
			continue
		}
		name := p.s.Plan.Units[i].Name
		if first, dup := defined[name]; dup {
			p.w.Errf(nn, yamlsrc.Index("units", i)+".name", "unit %q is already defined at units[%d] (line %d): unit names are unique in a plan", name, first, p.names[first].Line)
			continue
		}
		defined[name] = i
	}
	for _, r := range p.refs {
		self := p.s.Plan.Units[r.unit].Name
		switch _, ok := defined[r.name]; {
		case r.name == self && r.field == "requires":
			p.add(r.path, "unit %s requires itself", self)
		case r.name == self:
			p.add(r.path, "unit %s notifies itself", self)
		case !ok:
			p.add(r.path, "no unit named %q in this plan (its units: %s)", r.name, strings.Join(p.unitNames(), ", "))
		}
	}
}

func (p *parser) unitNames() []string {
	var names []string
	for _, u := range p.s.Plan.Units {
		if u.Name != "" && !slices.Contains(names, u.Name) {
			names = append(names, u.Name)
		}
	}
	return names
}

// cycles refuses units that require each other in a cycle, at the requires entry that closes it.
func (p *parser) cycles() {
	units := p.s.Plan.Units
	index := map[string]int{}
	for i, u := range units {
		index[u.Name] = i
	}
	const (
		unvisited = iota
		visiting
		done
	)
	mark := make([]int, len(units))
	var stack []string
	var visit func(i int)
	visit = func(i int) {
		mark[i] = visiting
		stack = append(stack, units[i].Name)
		for j, dep := range units[i].Requires {
			k := index[dep]
			switch mark[k] {
			case visiting:
				start := slices.Index(stack, dep)
				cycle := strings.Join(append(slices.Clone(stack[start:]), dep), " → ")
				p.add(fmt.Sprintf("units[%d].requires[%d]", i, j), "units require each other in a cycle: %s (none could ever be applied first)", cycle)
			case unvisited:
				visit(k)
			}
		}
		stack = stack[:len(stack)-1]
		mark[i] = done
	}
	for i := range units {
		if mark[i] == unvisited {
			visit(i)
		}
	}
}
