package workflow

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
)

// Conditions are CEL expressions over these variables:
//
//	inputs.NAME     the execution's input NAME, typed as declared (string, int or bool)
//	promptResponse  string: the latest prompt answer ("" before any)
//	prompt.STEP     string: the answer to prompt STEP ("" until answered); prompt["Step name"] when
//	                the name is not an identifier
//	steps.STEP      StepVars: status, attempts, per-agent results of the last attempt, etc.
//
// Every step and prompt appears in the maps from the start (status "pending", answer ""), so a
// condition never fails on a missing key; a reference to a step that does not exist is refused when
// the workflow is saved.

// StepVars is what a condition sees of one step as steps.STEP. Field names are the CEL names.
type StepVars struct {
	// Status is one of the StepStatus values.
	Status string `cel:"status"`
	// Attempts is how many attempts have started (execute steps with retry run several).
	Attempts int64 `cel:"attempts"`
	// Succeeded and Failed count the agents of the last attempt that have reported either way.
	Succeeded int64 `cel:"succeeded"`
	Failed    int64 `cel:"failed"`
	// Results are the last attempt's per-agent results, ordered by agent id.
	Results []AgentVars `cel:"results"`
	// Answer and AnsweredBy are set for an answered prompt step.
	Answer     string `cel:"answer"`
	AnsweredBy string `cel:"answered_by"`
}

// AgentVars is one agent's result as conditions see it.
type AgentVars struct {
	Agent string `cel:"agent"`
	// Status is the wire status (succeeded, failed, timed_out, cancelled, rejected, expired).
	Status string `cel:"status"`
	// ExitCode is -1 when the command did not exit (it was not run, or was killed).
	ExitCode int64 `cel:"exit_code"`
	// Output is at most MaxOutputBytes of the command's output, as the hub excerpted it.
	Output string `cel:"output"`
}

const (
	stepVarsType  = "workflow.StepVars"
	agentVarsType = "workflow.AgentVars"
)

// celEnv declares the variables for this definition's inputs.
func (d *Definition) celEnv() (*cel.Env, error) {
	opts := []cel.EnvOption{
		ext.NativeTypes(ext.ParseStructTags(true), reflect.TypeOf(StepVars{}), reflect.TypeOf(AgentVars{})),
		cel.Variable("steps", cel.MapType(cel.StringType, cel.ObjectType(stepVarsType))),
		cel.Variable("prompt", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("promptResponse", cel.StringType),
	}
	for _, name := range sortedKeys(d.Inputs) {
		t := cel.StringType
		switch d.Inputs[name].Type {
		case InputInt:
			t = cel.IntType
		case InputBool:
			t = cel.BoolType
		}
		opts = append(opts, cel.Variable("inputs."+name, t))
	}
	return cel.NewEnv(opts...)
}

// jsCompat reads JavaScript's strict comparisons (===, !==), which the original system's conditions
// use, as CEL's == and !=. The replacement keeps the length, so error columns stay right, and leaves
// string literals alone.
func jsCompat(expr string) string {
	b := []byte(expr)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"' || c == '\'':
			i = skipString(b, i)
		case (c == '=' || c == '!') && i+2 < len(b) && b[i+1] == '=' && b[i+2] == '=':
			b[i+2] = ' '
			i += 2
		}
	}
	return string(b)
}

// skipString returns the index of the closing quote of the literal opening at i (or the end).
func skipString(b []byte, i int) int {
	q := b[i]
	triple := i+2 < len(b) && b[i+1] == q && b[i+2] == q
	if triple {
		i += 2
	}
	for j := i + 1; j < len(b); j++ {
		switch {
		case b[j] == '\\':
			j++
		case b[j] == q && !triple:
			return j
		case b[j] == q && triple && j+2 < len(b) && b[j+1] == q && b[j+2] == q:
			return j + 2
		}
	}
	return len(b)
}

// compileConditions type-checks, cost-checks and plans every condition once; problems are kept and
// reported by Validate (and make Fold refuse the definition).
func (d *Definition) compileConditions() ([]Problem, error) {
	d.compileOnce.Do(func() {
		d.programs = map[string]cel.Program{}
		env, err := d.celEnv()
		if err != nil {
			d.compileErr = fmt.Errorf("condition environment: %w", err)
			return
		}
		var ps problems
		for _, s := range d.order {
			if s.Condition == "" {
				continue
			}
			if prg := d.compileCondition(env, s, &ps); prg != nil {
				d.programs[s.Name] = prg
			}
		}
		d.condProblems = ps.List
	})
	return d.condProblems, d.compileErr
}

func (d *Definition) compileCondition(env *cel.Env, s *Step, ps *problems) cel.Program {
	path := s.path + ".condition"
	l := d.at(path)
	place := func(line, col int) loc {
		if l.contentLine == 0 {
			return l
		}
		if line <= 1 {
			return loc{line: l.contentLine, col: l.contentCol + col}
		}
		return loc{line: l.contentLine + line - 1, col: l.contentCol + col}
	}
	ast, iss := env.Compile(jsCompat(s.Condition))
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			ps.add(place(e.Location.Line(), e.Location.Column()), path, "%s", celMessage(e.Message))
		}
		return nil
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		ps.add(place(1, 0), path, "a condition must be true or false, but this is %s (compare it: promptResponse == 'Yes')", cel.FormatCELType(ast.OutputType()))
		return nil
	}
	bad := false
	info := ast.NativeRep().SourceInfo()
	celast.PreOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		variable, key, at, ok := mapKey(e)
		if !ok {
			return
		}
		target, exists := d.byName[key]
		msg := ""
		switch {
		case !exists:
			msg = fmt.Sprintf("no step named %q", key)
		case variable == "prompt" && target.Type != TypePrompt:
			msg = fmt.Sprintf("%q is a %s step, not a prompt: use steps[%q].status", key, target.Type, key)
		}
		if msg != "" {
			l := info.GetStartLocation(at)
			ps.add(place(l.Line(), l.Column()), path, "%s", msg)
			bad = true
		}
	}))
	if bad {
		return nil
	}
	est, err := env.EstimateCost(ast, sizeHints{d})
	if err != nil {
		ps.add(place(1, 0), path, "cannot estimate the cost: %v", err)
		return nil
	}
	if est.Max > MaxConditionCost {
		ps.add(place(1, 0), path, "too expensive: estimated cost up to %s, the limit is %d (avoid nested loops over results and long lists)", costText(est.Max), MaxConditionCost)
		return nil
	}
	prg, err := env.Program(ast, cel.CostLimit(RuntimeCostLimit))
	if err != nil {
		ps.add(place(1, 0), path, "%v", err)
		return nil
	}
	return prg
}

func costText(c uint64) string {
	if c > 1e15 {
		return "unbounded"
	}
	return fmt.Sprint(c)
}

// celMessage makes CEL's wording fit a workflow author.
func celMessage(m string) string {
	if strings.HasPrefix(m, "undeclared reference to 'inputs'") {
		return "undeclared reference: no such input (declare it under inputs)"
	}
	return m
}

// mapKey recognises steps.KEY, steps["KEY"], prompt.KEY and prompt["KEY"] with a literal key, and
// returns the id of the variable's node (where an error should point).
func mapKey(e celast.Expr) (variable, key string, at int64, ok bool) {
	switch e.Kind() {
	case celast.SelectKind:
		sel := e.AsSelect()
		if op := sel.Operand(); op.Kind() == celast.IdentKind && (op.AsIdent() == "steps" || op.AsIdent() == "prompt") {
			return op.AsIdent(), sel.FieldName(), op.ID(), true
		}
	case celast.CallKind:
		call := e.AsCall()
		if call.FunctionName() != "_[_]" || len(call.Args()) != 2 {
			return "", "", 0, false
		}
		op, k := call.Args()[0], call.Args()[1]
		if op.Kind() != celast.IdentKind || (op.AsIdent() != "steps" && op.AsIdent() != "prompt") || k.Kind() != celast.LiteralKind {
			return "", "", 0, false
		}
		if s, isStr := k.AsLiteral().Value().(string); isStr {
			return op.AsIdent(), s, op.ID(), true
		}
	}
	return "", "", 0, false
}

// sizeHints gives CEL's cost estimator the sizes it cannot know: how many steps and prompts the
// definition has, how many agent results a step may hold (ResultsSizeHint), and the caps on strings.
type sizeHints struct{ d *Definition }

// EstimateCallCost leaves function costs to CEL.
func (sizeHints) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// EstimateSize bounds the variables by path.
func (h sizeHints) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		return nil
	}
	last := p[len(p)-1]
	var size uint64
	switch n.Type().Kind() {
	case types.MapKind:
		switch p[0] {
		case "steps":
			size = uint64(len(h.d.order))
		case "prompt":
			for _, s := range h.d.order {
				if s.Type == TypePrompt {
					size++
				}
			}
		default:
			return nil
		}
	case types.ListKind:
		if last != "results" {
			return nil
		}
		size = ResultsSizeHint
	case types.StringKind:
		switch {
		case last == "@keys":
			size = MaxStepNameBytes
		case last == "output":
			size = MaxOutputBytes
		case last == "status":
			size = 16
		case last == "agent":
			size = 64
		case last == "answered_by":
			size = 256
		case strings.HasPrefix(p[0], "inputs."):
			size = MaxInputBytes
		default: // promptResponse, prompt values, answers
			size = MaxAnswerBytes
		}
	default:
		return nil
	}
	e := cost.RangedSizeEstimate(0, size)
	return &e
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
