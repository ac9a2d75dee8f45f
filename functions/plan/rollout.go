package plan

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"go.yaml.in/yaml/v3"
)

// Rollout says how a new version reaches its targets in stages instead of all at once: a first wave,
// then the rest in waves, each started only when the one before converged, its health condition held
// and it baked; a failure threshold halts it. A plan without one goes to every target at once.
//
//	rollout:
//	  first: 1            # agents in the first wave: a count, or "10%" of the targets (default 1)
//	  waves: 2            # the rest, in this many waves of equal size (default 1)
//	  bake: 30s           # how long a converged wave must stay healthy before the next starts
//	  health: 'units.all(u, u.state == "converged")'   # CEL over the released agents' units
//	  maxFailed: 0        # released agents with a failed unit tolerated before the rollout halts
type Rollout struct {
	// First is the first wave's size as a count (FirstPercent 0), or a percentage of the targets.
	First        int `json:"first,omitempty"`
	FirstPercent int `json:"firstPercent,omitempty"`
	// Waves is how many waves the agents after the first are split into (at least 1).
	Waves int `json:"waves"`
	// BakeSeconds is how long a converged, healthy wave is watched before the next starts.
	BakeSeconds int `json:"bakeSeconds,omitempty"`
	// Health is a CEL condition (HealthVars) that must hold on every check once a wave converged.
	Health string `json:"health,omitempty"`
	// MaxFailed is how many released agents may have a failed unit (or refuse the version) before
	// the rollout halts.
	MaxFailed int `json:"maxFailed,omitempty"`
}

// Bake is the rollout's bake time.
func (r *Rollout) Bake() time.Duration { return time.Duration(r.BakeSeconds) * time.Second }

// Split assigns agents (in the order given, which the room makes deterministic) to waves: the first
// wave's size from First or FirstPercent (at least one agent), the rest in Waves waves as equal as
// they divide. Fewer agents than waves gives fewer waves, none empty.
func (r *Rollout) Split(agents []string) [][]string {
	n := len(agents)
	if n == 0 {
		return nil
	}
	first := r.First
	if r.FirstPercent > 0 {
		first = (n*r.FirstPercent + 99) / 100
	}
	first = min(max(first, 1), n)
	out := [][]string{append([]string(nil), agents[:first]...)}
	rest := agents[first:]
	waves := max(r.Waves, 1)
	for i := 0; i < waves && len(rest) > 0; i++ {
		size := (len(rest) + (waves - i) - 1) / (waves - i)
		out = append(out, append([]string(nil), rest[:size]...))
		rest = rest[size:]
	}
	return out
}

// UnitVars is one released agent's unit as a health condition sees it in units.
type UnitVars struct {
	Agent string `cel:"agent"`
	// Name is the agent's name.
	Name string `cel:"name"`
	Unit string `cel:"unit"`
	Type string `cel:"type"`
	// State is pending, applying, converged, failed or drifted; unknown before the agent reported the
	// version.
	State       string `cel:"state"`
	Reason      string `cel:"reason"`
	Corrections int64  `cel:"corrections"`
}

// AgentVars is one released agent as a health condition sees it in agents.
type AgentVars struct {
	Agent  string            `cel:"agent"`
	Name   string            `cel:"name"`
	Labels map[string]string `cel:"labels"`
	Online bool              `cel:"online"`
	// Version is the version the agent reports holding (0: none, or no report).
	Version int64 `cel:"version"`
	// Converged says it holds the rollout's version with every unit converged.
	Converged bool `cel:"converged"`
}

// HealthVars are the variables of a health condition: the units and agents of the waves released so
// far, and the wave being watched (counting from 1).
type HealthVars struct {
	Units  []UnitVars
	Agents []AgentVars
	Wave   int64
}

// HealthCostLimit bounds the work one evaluation of a health condition may do.
const HealthCostLimit = 1_000_000

// Health is a compiled health condition.
type Health struct {
	prg cel.Program
}

func healthEnv() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(ext.ParseStructTags(true), reflect.TypeOf(UnitVars{}), reflect.TypeOf(AgentVars{})),
		cel.Variable("units", cel.ListType(cel.ObjectType("plan.UnitVars"))),
		cel.Variable("agents", cel.ListType(cel.ObjectType("plan.AgentVars"))),
		cel.Variable("wave", cel.IntType),
		ext.Strings(),
	)
}

// CompileHealth compiles a health condition; an error says, for the author, what is wrong and where
// (line and column within the expression, counted from 1).
func CompileHealth(expr string) (*Health, error) {
	env, err := healthEnv()
	if err != nil {
		return nil, fmt.Errorf("health condition environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		var msgs []string
		for _, e := range iss.Errors() {
			msgs = append(msgs, fmt.Sprintf("%d:%d: %s", e.Location.Line(), e.Location.Column()+1, e.Message))
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return nil, fmt.Errorf("a health condition must be true or false, but this is %s (e.g. units.all(u, u.state == \"converged\"))", cel.FormatCELType(ast.OutputType()))
	}
	prg, err := env.Program(ast, cel.CostLimit(HealthCostLimit))
	if err != nil {
		return nil, err
	}
	return &Health{prg: prg}, nil
}

// Eval evaluates the condition; an error (the cost limit, a runtime error) says why it could not.
func (h *Health) Eval(v HealthVars) (bool, error) {
	out, _, err := h.prg.Eval(map[string]any{"units": v.Units, "agents": v.Agents, "wave": v.Wave})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("the condition gave %v, not true or false", out.Value())
	}
	return b, nil
}

var rolloutFields = []string{"first", "waves", "bake", "health", "maxFailed"}

// MaxWaves bounds a rollout's waves after the first.
const MaxWaves = 100

// rollout reads the rollout section.
func (p *parser) rollout(n *yaml.Node, path string) *Rollout {
	if !p.w.Kind(n, path, yaml.MappingNode, "a mapping (first, waves, bake, health, maxFailed)") {
		return nil
	}
	r := &Rollout{First: 1, Waves: 1}
	p.w.Pairs(n, path, rolloutFields, func(key string, _, v *yaml.Node, sub string) {
		switch key {
		case "first":
			if !p.w.Kind(v, sub, yaml.ScalarNode, `a count of agents, or a percentage such as "10%"`) {
				return
			}
			if pct, ok := strings.CutSuffix(v.Value, "%"); ok {
				n, err := strconv.Atoi(pct)
				if err != nil || n < 1 || n > 100 {
					p.w.Errf(v, sub, "want a percentage from 1%% to 100%%, got %q", v.Value)
					return
				}
				r.First, r.FirstPercent = 0, n
				return
			}
			n, err := strconv.Atoi(v.Value)
			if err != nil || v.ShortTag() != "!!int" || n < 1 {
				p.w.Errf(v, sub, `want a count of agents (at least 1) or a percentage such as "10%%", got %q`, v.Value)
				return
			}
			r.First = n
		case "waves":
			n := p.w.Int(v, sub)
			switch {
			case n < 1 && v.Kind == yaml.ScalarNode && v.Value == "0":
				p.w.Errf(v, sub, "want at least 1 wave after the first")
			case n > MaxWaves:
				p.w.Errf(v, sub, "at most %d waves, got %d", MaxWaves, n)
			case n >= 1:
				r.Waves = n
			}
		case "bake":
			if !p.w.Kind(v, sub, yaml.ScalarNode, `a duration such as "30s" or "5m"`) {
				return
			}
			d, err := time.ParseDuration(v.Value)
			switch {
			case v.ShortTag() == "!!int" && v.Value != "0":
				p.w.Errf(v, sub, "want a duration with its unit, such as %ss", v.Value)
			case v.Value == "0":
			case err != nil:
				p.w.Errf(v, sub, `want a duration such as "30s", "5m" or "1h30m", got %q`, v.Value)
			case d < 0 || d%time.Second != 0:
				p.w.Errf(v, sub, "want a whole number of seconds, got %q", v.Value)
			case d > MaxDeadline:
				p.w.Errf(v, sub, "at most %s, got %q", MaxDeadline, v.Value)
			default:
				r.BakeSeconds = int(d / time.Second)
			}
		case "health":
			s, ok := p.w.Str(v, sub)
			if !ok {
				return
			}
			if _, err := CompileHealth(s); err != nil {
				p.w.Errf(v, sub, "health condition: %v", err)
				return
			}
			r.Health = s
		case "maxFailed":
			r.MaxFailed = p.w.Int(v, sub)
		}
	})
	return r
}
