package workflow

import (
	"encoding/json"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"github.com/robfig/cron/v3"

	"github.com/pulsehq/pulse/functions/yamlsrc"
)

// StepType says what a step does. The set is closed: a definition naming anything else is refused at
// Parse, because a step the engine does not understand could only be skipped silently.
type StepType string

// The step types.
const (
	// TypeExecute runs one whitelisted command with parameters on targets.
	TypeExecute StepType = "execute"
	// TypePrompt asks a person a question and waits for the answer.
	TypePrompt StepType = "prompt"
	// TypeWait pauses the sequence it is in for a duration.
	TypeWait StepType = "wait"
	// TypeParallel runs its branches at the same time and ends when all have ended.
	TypeParallel StepType = "parallel"
)

// InputType is the type of a workflow input; it decides how a started event's value is checked and
// how conditions see it (string, int or bool in CEL).
type InputType string

// The input types.
const (
	InputString InputType = "string"
	InputInt    InputType = "int"
	InputBool   InputType = "bool"
)

// Overlap says what a scheduled tick does while an earlier execution of the same workflow still runs.
type Overlap string

// The overlap policies.
const (
	// OverlapSkip drops the tick: the next tick tries again. The default, because piling up runs of a
	// maintenance job is rarely what anyone wants.
	OverlapSkip Overlap = "skip"
	// OverlapQueue keeps one pending run that starts when the running one ends (further ticks while one
	// is queued are dropped, so a long outage never builds a backlog).
	OverlapQueue Overlap = "queue"
)

// FailureAction is what a sequence does after one of its steps failed (after every retry).
type FailureAction string

// The failure actions.
const (
	// FailStop ends the sequence as failed; later steps are skipped. The default.
	FailStop FailureAction = "stop"
	// FailContinue records the failure and goes on with the next step; the sequence can still succeed.
	FailContinue FailureAction = "continue"
	// FailRun runs the named handler steps, then ends the execution as failed.
	FailRun FailureAction = "run"
)

// Limits that keep a definition, and the state folded from it, bounded.
const (
	// MaxSourceBytes is the largest definition Parse reads.
	MaxSourceBytes = 1 << 20
	// MaxSteps bounds the number of steps in a definition, nested and handler steps included.
	MaxSteps = 500
	// MaxAttempts bounds retry.attempts: every attempt is a command the fleet runs.
	MaxAttempts = 20
	// MaxNesting bounds how deep parallel steps may nest.
	MaxNesting = 4
	// MaxStepNameBytes bounds step names, which appear in ids, messages and conditions.
	MaxStepNameBytes = 128
	// MaxExecuteTimeout is the longest timeout of an execute step (the hub refuses longer command runs).
	MaxExecuteTimeout = 24 * time.Hour
	// MaxWait bounds wait durations, prompt timeouts, parallel timeouts and retry backoffs.
	MaxWait = 30 * 24 * time.Hour
	// DefaultStepDeadline bounds an execute step attempt that has no timeout, so a target that never
	// answers cannot hold an execution forever; it matches how long the hub lets agents pick work up.
	DefaultStepDeadline = time.Hour
	// DefaultMaxBackoff caps exponential backoff when retry.max_backoff is not given.
	DefaultMaxBackoff = time.Hour
	// MaxConditionCost is the most a condition may cost according to CEL's static estimate, under the
	// size hints below. Saving a workflow whose condition could cost more is refused.
	MaxConditionCost = 100_000
	// RuntimeCostLimit stops a condition at evaluation (the step then fails). It is higher than the
	// static limit because real sizes may exceed the hints (a fleet larger than ResultsSizeHint).
	RuntimeCostLimit = 1_000_000
	// ResultsSizeHint is how many agent results the cost estimate assumes a step has.
	ResultsSizeHint = 1000
	// MaxOutputBytes is the longest output excerpt kept per agent result; longer excerpts are cut.
	MaxOutputBytes = 256
	// MaxAnswerBytes bounds prompt answers (and the strings conditions compare them with).
	MaxAnswerBytes = 1024
	// MaxInputBytes bounds string inputs.
	MaxInputBytes = 4096
)

// Duration is a time.Duration that reads the two spellings definitions use: a Go duration string
// ("30s", "5m", "1h30m") or, as in the original system, an integer number of milliseconds.
type Duration time.Duration

// MarshalText writes the Go spelling, which Parse reads back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Definition is a parsed workflow. Parse builds it; Validate checks what needs the catalog or CEL; the
// engine (Fold, Next) only reads it, so one Definition may serve any number of executions at once.
type Definition struct {
	// Name is optional: the original system's examples have none, and the hub names a workflow by the
	// key it is stored under.
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Inputs      map[string]*Input `json:"inputs,omitempty"`
	Schedule    *Schedule         `json:"schedule,omitempty"`
	Steps       []*Step           `json:"steps"`
	// Handlers are steps that run only when a step's on_failure names them. They live apart from Steps
	// so a remediation step can never run by falling through the normal sequence.
	Handlers []*Step `json:"handlers,omitempty"`

	locs   map[string]loc   // source position of every parsed path
	byName map[string]*Step // every step, nested and handler steps included
	order  []*Step          // every step in definition order (depth first), for deterministic walks
	parent map[string]*Step // the parallel step a nested step belongs to

	compileOnce  sync.Once
	programs     map[string]cel.Program // by step name
	condProblems []Problem
	compileErr   error
}

// Input declares one typed input. Steps reference it as ${inputs.NAME} in params, targets and
// messages, and conditions as inputs.NAME.
type Input struct {
	Type        InputType `json:"type"`
	Description string    `json:"description,omitempty"`
	Required    bool      `json:"required,omitempty"`
	// Default is used when the started event does not give the input: a string, an int64 or a bool,
	// per Type. Nil means none (then a missing optional input is the type's zero value).
	Default any `json:"default,omitempty"`
}

// Schedule starts the workflow on a cron expression in a time zone.
type Schedule struct {
	// Cron is a standard five-field expression (minute hour day-of-month month day-of-week) or a
	// descriptor such as @daily or @hourly.
	Cron string `json:"cron"`
	// Timezone is an IANA zone name (default UTC); the expression is read in it, daylight saving
	// included.
	Timezone string  `json:"timezone,omitempty"`
	Overlap  Overlap `json:"overlap,omitempty"`

	sched cron.Schedule
	loc   *time.Location
}

// Step is one step of a sequence. Which fields apply depends on Type; Parse refuses a field the type
// does not use, so a misplaced field is never silently ignored.
type Step struct {
	Name string   `json:"name"`
	Type StepType `json:"type"`
	// Condition is a CEL expression; when it is false at the moment the step is reached, the step is
	// skipped. JavaScript's === and !== are read as == and != so the original examples load unchanged.
	Condition string `json:"condition,omitempty"`
	// Timeout bounds an execute attempt (and is each agent's run limit), how long a prompt waits for an
	// answer, or how long a parallel group may run.
	Timeout   Duration   `json:"timeout,omitempty"`
	Retry     *Retry     `json:"retry,omitempty"`
	OnFailure *OnFailure `json:"on_failure,omitempty"`

	// execute
	Targets        []string          `json:"targets,omitempty"`
	Command        string            `json:"command,omitempty"`
	Params         map[string]string `json:"params,omitempty"`
	MaxConcurrency int               `json:"max_concurrency,omitempty"`
	MaxErrors      int               `json:"max_errors,omitempty"`

	// prompt
	Message string   `json:"message,omitempty"`
	Options []string `json:"options,omitempty"`
	// Default is the answer taken when the prompt's timeout passes unanswered; nil means the step fails
	// instead.
	Default *string `json:"default,omitempty"`

	// wait
	Duration Duration `json:"duration,omitempty"`

	// parallel
	Branches []*Branch `json:"branches,omitempty"`

	path string // where the step is in the source, e.g. steps[2].branches[0].steps[1]
}

// Branch is one sequence of a parallel step.
type Branch struct {
	Name  string  `json:"name,omitempty"`
	Steps []*Step `json:"steps"`
}

// Retry re-runs a failed execute step. Attempts counts every run, the first included.
type Retry struct {
	Attempts int `json:"attempts"`
	// Backoff is the wait before the second attempt; it doubles for each later attempt, up to
	// MaxBackoff.
	Backoff    Duration `json:"backoff,omitempty"`
	MaxBackoff Duration `json:"max_backoff,omitempty"`
}

// delay is the wait after attempt n failed, before attempt n+1.
func (r *Retry) delay(n int) time.Duration {
	if r == nil || r.Backoff <= 0 {
		return 0
	}
	maxB := r.MaxBackoff.Std()
	if maxB <= 0 {
		maxB = DefaultMaxBackoff
	}
	d := r.Backoff.Std()
	for i := 1; i < n && d < maxB; i++ {
		d *= 2
	}
	return min(d, maxB)
}

// attempts is the number of runs the step gets.
func (s *Step) attempts() int {
	if s.Retry == nil || s.Retry.Attempts < 1 {
		return 1
	}
	return s.Retry.Attempts
}

// onFailure is the step's failure action, stop when unset.
func (s *Step) onFailure() FailureAction {
	if s.OnFailure == nil {
		return FailStop
	}
	return s.OnFailure.Action
}

// OnFailure is a step's on_failure: "stop", "continue", or a list of handler step names (Action FailRun).
type OnFailure struct {
	Action FailureAction
	Steps  []string
}

// MarshalJSON writes the form Parse reads: a word, or the list of handler names.
func (o OnFailure) MarshalJSON() ([]byte, error) {
	if o.Action == FailRun {
		return json.Marshal(o.Steps)
	}
	return json.Marshal(string(o.Action))
}

// Step returns the step with that name, wherever it is (nested and handler steps included).
func (d *Definition) Step(name string) (*Step, bool) {
	s, ok := d.byName[name]
	return s, ok
}

// loc is where a value was in the source. For scalars, (contentLine, contentCol) is where the text
// itself starts (after an opening quote, or on the line after a block indicator), so positions inside
// a condition can be mapped back to the file.
type loc struct {
	line, col               int
	contentLine, contentCol int
}

// at returns the best known position for path: the path itself, else its nearest parent.
func (d *Definition) at(path string) loc {
	for p := path; ; {
		if l, ok := d.locs[p]; ok {
			return l
		}
		i := lastSep(p)
		if i < 0 {
			return loc{}
		}
		p = p[:i]
	}
}

func lastSep(p string) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '.' || p[i] == '[' {
			return i
		}
	}
	return -1
}

func stepPath(parent string, i int) string { return yamlsrc.Index(parent, i) }
