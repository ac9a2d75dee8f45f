package workflow

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/cel"

	"github.com/pulsehq/pulse/agent/wire"
)

// Fold computes an execution's state from its events, in the order given (the hub's time-ordered event
// ids). It is pure and deterministic: the same definition, execution id and events give the same state
// on any hub, which is what lets several stateless hubs drive one execution. Times in the state come
// from the events (a transition happens at the time of the latest event folded so far), never from the
// clock. Events that change nothing are listed in State.Ignored, not refused, so a stray event can
// never wedge an execution.
//
// The definition must be the version the execution started with. Fold errors only when the
// definition cannot run (it did not come from Parse, or a condition does not compile).
func Fold(def *Definition, execution string, events []Event) (*State, error) {
	f, err := NewFolder(def, execution)
	if err != nil {
		return nil, err
	}
	f.Add(events...)
	f.m.view()
	return f.m.st, nil
}

// Folder is Fold taken a few events at a time, for a hub that keeps an execution's state in memory
// and reads only the events recorded since: adding events one batch after another gives exactly the
// state Fold gives for all of them in the same order. The caller keeps the order (the hub folds keys in
// ascending order, and starts a new Folder when an event turns up that sorts before one already
// added). A Folder is not safe for concurrent use; State hands out copies that are.
type Folder struct {
	m    machine
	seen map[string]bool // event ids folded, to ignore repeats as Fold does
}

// NewFolder starts the fold of an execution: no event yet. It errors as Fold does, when the definition
// cannot run.
func NewFolder(def *Definition, execution string) (*Folder, error) {
	if def == nil || def.byName == nil {
		return nil, errors.New("workflow: the definition was not built by Parse")
	}
	if execution == "" {
		return nil, errors.New("workflow: no execution id")
	}
	probs, err := def.compileConditions()
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, &ValidationError{Subject: subject, Problems: probs}
	}
	st := &State{
		Execution: execution,
		Status:    ExecPending,
		Steps:     make(map[string]*StepState, len(def.order)),
		Answers:   map[string]string{},
		commands:  map[string]*commandFacts{},
		cmdIndex:  map[string]stepAttempt{},
		answers:   map[string]answerFact{},
		fired:     map[string]time.Time{},
	}
	for _, s := range def.order {
		st.Steps[s.Name] = &StepState{Name: s.Name, Type: s.Type, Status: StepPending}
		if s.Type == TypeExecute {
			for n := 1; n <= s.attempts(); n++ {
				st.cmdIndex[CommandID(execution, s.Name, n)] = stepAttempt{s.Name, n}
			}
		}
	}
	return &Folder{m: machine{d: def, st: st}, seen: map[string]bool{}}, nil
}

// Add folds events after those already added, in the order given.
func (f *Folder) Add(events ...Event) {
	m, st := &f.m, f.m.st
	for i := range events {
		ev := &events[i]
		if ev.ID != "" && f.seen[ev.ID] {
			st.Events++
			m.ignore(ev, "event listed twice")
			continue
		}
		f.seen[ev.ID] = true
		m.apply(ev)
		m.settle()
	}
}

// State is the fold of the events added so far: a copy that later Adds do not change, so the hub can
// hand it out (to Next, to a client) while the Folder goes on.
func (f *Folder) State() *State {
	st := f.m.st.clone()
	(&machine{d: f.m.d, st: st}).view()
	return st
}

// clone copies everything the machine changes in place; what it only ever sets once (inputs, the
// command index, prompts, targets and params of attempts) is shared, and the timeline, which it only
// appends to, is shared up to its current length.
func (st *State) clone() *State {
	c := *st
	c.Steps = make(map[string]*StepState, len(st.Steps))
	for name, ss := range st.Steps {
		cs := *ss
		cs.Attempts = make([]*Attempt, len(ss.Attempts))
		for i, a := range ss.Attempts {
			ca := *a
			ca.Results = maps.Clone(a.Results)
			cs.Attempts[i] = &ca
		}
		if ss.Attempts == nil {
			cs.Attempts = nil
		}
		c.Steps[name] = &cs
	}
	c.Answers = maps.Clone(st.Answers)
	c.Timers = slices.Clone(st.Timers)
	c.Timeline = slices.Clip(st.Timeline)
	c.Ignored = slices.Clone(st.Ignored)
	c.commands = make(map[string]*commandFacts, len(st.commands))
	for id, f := range st.commands {
		cf := *f
		cf.results = maps.Clone(f.results)
		c.commands[id] = &cf
	}
	c.answers = maps.Clone(st.answers)
	c.fired = maps.Clone(st.fired)
	return &c
}

// machine applies events to a state.
type machine struct {
	d  *Definition
	st *State
}

func (m *machine) ignore(ev *Event, format string, args ...any) {
	st := m.st
	st.Ignored = append(st.Ignored, Ignored{Event: ev.ID, Reason: fmt.Sprintf(format, args...)})
	if len(st.Ignored) > MaxIgnored {
		st.Ignored = slices.Delete(st.Ignored, 0, len(st.Ignored)-MaxIgnored)
	}
}

// apply records what an event says. It changes steps only for started and cancelled; everything else
// becomes a fact that settle consumes when the step it concerns is ready for it.
func (m *machine) apply(ev *Event) {
	st := m.st
	st.Events++
	st.LastEvent = ev.ID
	if ev.At.IsZero() {
		m.ignore(ev, "no time")
		return
	}
	if ev.At.After(st.clock) {
		st.clock = ev.At
	}
	switch ev.Kind {
	case EventStarted:
		switch {
		case st.started:
			m.ignore(ev, "already started")
			return
		case st.Status == ExecCancelled:
			m.ignore(ev, "cancelled before it started")
			return
		}
		st.started = true
		st.Status = ExecRunning
		st.StartedAt, st.StartedBy, st.Version = st.clock, ev.By, ev.Version
		st.Timeline = append(st.Timeline, Entry{At: st.clock, Status: string(ExecRunning), Reason: by("started", ev.By)})
		inputs, err := m.d.ResolveInputs(ev.Inputs)
		if err != nil {
			m.end(ExecFailed, "inputs: "+err.Error())
			return
		}
		st.Inputs = inputs
	case EventCommandAccepted, EventCommandRefused, EventCommandResult, EventCommandCancelled:
		m.applyCommand(ev)
	case EventPromptAnswered:
		s, ok := m.d.byName[ev.Step]
		if !ok || s.Type != TypePrompt {
			m.ignore(ev, "no prompt step %q", ev.Step)
			return
		}
		if _, done := st.answers[ev.Step]; done {
			m.ignore(ev, "prompt %q was already answered", ev.Step)
			return
		}
		if ss := st.Steps[ev.Step]; ss.Status.Final() {
			m.ignore(ev, "prompt %q is not awaiting an answer (%s)", ev.Step, ss.Status)
			return
		}
		if err := checkAnswer(s, ev.Answer); err != nil {
			m.ignore(ev, "%v", err)
			return
		}
		st.answers[ev.Step] = answerFact{answer: ev.Answer, by: ev.AnsweredBy}
	case EventTimerFired:
		if ev.Timer == "" {
			m.ignore(ev, "no timer id")
			return
		}
		if ev.At.After(st.fired[ev.Timer]) {
			st.fired[ev.Timer] = ev.At
		}
		for _, t := range st.Timers {
			if t.ID == ev.Timer && ev.At.Before(t.At) {
				m.ignore(ev, "timer %s fired at %s, before its time %s", ev.Timer, ev.At.Format(time.RFC3339), t.At.Format(time.RFC3339))
			}
		}
	case EventCancelled:
		if st.Status.Final() || st.cancel != nil {
			m.ignore(ev, "execution already %s", st.Status)
			return
		}
		c := *ev // the caller's slice may be reused once Add returns
		st.cancel = &c
	default:
		m.ignore(ev, "unknown event kind %q", ev.Kind)
	}
}

func by(what, who string) string {
	if who == "" {
		return what
	}
	return what + " by " + who
}

func (m *machine) applyCommand(ev *Event) {
	st := m.st
	id := ev.CommandID
	if id == "" && ev.Step != "" {
		id = CommandID(st.Execution, ev.Step, ev.Attempt)
	}
	if _, ok := st.cmdIndex[id]; !ok {
		m.ignore(ev, "command %q is not one this execution issues", id)
		return
	}
	f := st.commands[id]
	if f == nil {
		f = &commandFacts{results: map[string]AgentResult{}}
		st.commands[id] = f
	}
	switch ev.Kind {
	case EventCommandAccepted, EventCommandRefused:
		if f.accepted || f.refused != "" {
			m.ignore(ev, "command %s was already accepted or refused", id)
			return
		}
		if ev.Kind == EventCommandRefused {
			f.refused = cmpOr(ev.Reason, "refused by the hub")
			return
		}
		agents := slices.Clone(ev.Agents)
		slices.Sort(agents)
		agents = slices.Compact(slices.DeleteFunc(agents, func(a string) bool { return a == "" }))
		if len(agents) == 0 {
			f.refused = "the targets matched no agent"
			return
		}
		f.accepted, f.agents = true, agents
	case EventCommandResult:
		switch {
		case ev.Agent == "":
			m.ignore(ev, "result without an agent")
		case !wire.Status(ev.Status).Final() && ev.Status != "expired":
			m.ignore(ev, "result status %q is not final", ev.Status)
		default:
			if _, dup := f.results[ev.Agent]; dup {
				m.ignore(ev, "command %s already has a result from %s", id, ev.Agent)
				return
			}
			f.results[ev.Agent] = AgentResult{Agent: ev.Agent, Status: ev.Status, ExitCode: ev.ExitCode, Output: excerpt(ev.Output), At: ev.At}
		}
	case EventCommandCancelled:
		f.cancelled = true
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// excerpt cuts output to MaxOutputBytes on a character boundary, keeping the end (where a command
// prints its verdict).
func excerpt(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxOutputBytes {
		return s
	}
	s = s[len(s)-MaxOutputBytes:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s
}

// checkAnswer refuses an answer a prompt cannot take.
func checkAnswer(s *Step, answer string) error {
	switch {
	case len(s.Options) > 0 && !slices.Contains(s.Options, answer):
		return fmt.Errorf("answer %q is not one of %s", answer, strings.Join(s.Options, ", "))
	case strings.TrimSpace(answer) == "":
		return errors.New("empty answer")
	case len(answer) > MaxAnswerBytes:
		return fmt.Errorf("answer longer than %d bytes", MaxAnswerBytes)
	}
	return nil
}

// CheckAnswer tells the hub, before it records a prompt_answered event, whether the answer would
// count: the step must be awaiting an answer and the answer must be one of its options. (Who may
// answer is the policy's decision, not the engine's.)
func (st *State) CheckAnswer(def *Definition, step, answer string) error {
	s, ok := def.byName[step]
	if !ok || s.Type != TypePrompt {
		return fmt.Errorf("no prompt step %q", step)
	}
	ss := st.Steps[step]
	if ss == nil || ss.Status != StepAwaitingResponse || st.Status != ExecRunning {
		return fmt.Errorf("prompt %q is not awaiting an answer", step)
	}
	if _, done := st.answers[step]; done {
		return fmt.Errorf("prompt %q was already answered", step)
	}
	return checkAnswer(s, answer)
}

type seqResult int

const (
	seqRunning seqResult = iota
	seqSucceeded
	seqFailed
)

// settle advances the execution as far as the facts allow. Advancing is re-run until nothing changes,
// because one transition can enable another (a skipped step lets the next one start).
func (m *machine) settle() {
	st := m.st
	if st.Status == ExecPending && st.cancel != nil {
		m.end(ExecCancelled, by("cancelled before it started", st.cancel.By))
		return
	}
	if st.Status != ExecRunning {
		return
	}
	if st.cancel != nil {
		reason := by("cancelled", st.cancel.By)
		if st.cancel.Reason != "" {
			reason += ": " + st.cancel.Reason
		}
		m.end(ExecCancelled, reason)
		return
	}
	for range 10_000 {
		st.changed = false
		res, failed := m.sequence(m.d.Steps, true)
		switch res {
		case seqSucceeded:
			m.end(ExecSucceeded, "")
			return
		case seqFailed:
			m.end(ExecFailed, fmt.Sprintf("step %q failed: %s", failed.Name, st.Steps[failed.Name].Reason))
			return
		}
		if !st.changed {
			return
		}
	}
}

// end finishes the execution. Steps not yet final become skipped, or cancelled when the execution is;
// running commands are abandoned (Next then asks for their cancellation).
func (m *machine) end(status ExecutionStatus, reason string) {
	st := m.st
	stepStatus, stepReason := StepSkipped, "not run"
	if status == ExecCancelled {
		stepStatus, stepReason = StepCancelled, reason
	}
	for _, s := range m.d.order {
		if ss := st.Steps[s.Name]; !ss.Status.Final() {
			m.abandonAttempts(s, stepStatus, stepReason)
			m.set(s, stepStatus, stepReason)
		}
	}
	st.Status, st.Reason, st.FinishedAt = status, reason, st.clock
	st.Timers = nil
	st.Timeline = append(st.Timeline, Entry{At: st.clock, Status: string(status), Reason: reason})
}

// sequence advances a list of steps in order and says whether it is still running, done, or stopped by
// a failure (then it also returns the failed step). Top-level sequences may run on_failure handlers.
func (m *machine) sequence(steps []*Step, top bool) (seqResult, *Step) {
	st := m.st
	for i, s := range steps {
		ss := st.Steps[s.Name]
		if !ss.Status.Final() {
			m.advance(s)
		}
		if !ss.Status.Final() {
			return seqRunning, nil
		}
		if ss.Status != StepFailed {
			continue
		}
		switch s.onFailure() {
		case FailContinue:
			continue
		case FailRun:
			if top {
				if res, _ := m.sequence(m.handlers(s), false); res == seqRunning {
					return seqRunning, nil
				}
			}
		}
		m.skip(steps[i+1:], fmt.Sprintf("not run: step %q failed", s.Name))
		return seqFailed, s
	}
	return seqSucceeded, nil
}

func (m *machine) handlers(s *Step) []*Step {
	var out []*Step
	for _, name := range s.OnFailure.Steps {
		if h, ok := m.d.byName[name]; ok {
			out = append(out, h)
		}
	}
	return out
}

// skip marks steps (and what they contain) skipped.
func (m *machine) skip(steps []*Step, reason string) {
	for _, s := range steps {
		if !m.st.Steps[s.Name].Status.Final() {
			m.set(s, StepSkipped, reason)
		}
		for _, b := range s.Branches {
			m.skip(b.Steps, reason)
		}
	}
}

// set moves a step to a status and records the transition; a final status drops the step's timers.
func (m *machine) set(s *Step, status StepStatus, reason string) {
	st := m.st
	ss := st.Steps[s.Name]
	if ss.Status == status && ss.Reason == reason {
		return
	}
	ss.Status, ss.Reason = status, reason
	if status.Final() {
		ss.FinishedAt = st.clock
		ss.RetryAt = time.Time{}
		m.dropTimers(s.Name, 0)
	}
	st.Timeline = append(st.Timeline, Entry{At: st.clock, Step: s.Name, Status: string(status), Reason: reason})
	st.changed = true
}

// advance moves one non-final step forward as far as its facts allow.
func (m *machine) advance(s *Step) {
	ss := m.st.Steps[s.Name]
	if ss.Status == StepPending {
		m.reach(s)
		if ss.Status.Final() {
			return
		}
	}
	switch s.Type {
	case TypeExecute:
		m.progressExecute(s)
	case TypePrompt:
		m.progressPrompt(s)
	case TypeWait:
		if m.fired(TimerID(m.st.Execution, s.Name, 1, TimerWait)) {
			m.set(s, StepSucceeded, "")
		}
	case TypeParallel:
		m.progressParallel(s)
	}
}

// reach is the moment a sequence arrives at a step: the condition is evaluated now, against the state
// as it is now, and the step starts or is skipped.
func (m *machine) reach(s *Step) {
	st := m.st
	ss := st.Steps[s.Name]
	if prg, ok := m.d.programs[s.Name]; ok {
		yes, err := m.eval(prg)
		if err != nil {
			m.set(s, StepFailed, "condition: "+err.Error())
			m.skipInside(s)
			return
		}
		if !yes {
			m.set(s, StepSkipped, "condition is false")
			m.skipInside(s)
			return
		}
	}
	ss.StartedAt = st.clock
	switch s.Type {
	case TypeExecute:
		m.startAttempt(s, 1)
	case TypePrompt:
		msg, err := interpolate(s.Message, st.Inputs)
		if err != nil {
			m.set(s, StepFailed, "message: "+err.Error())
			return
		}
		ss.Prompt = &PromptState{ID: PromptID(st.Execution, s.Name), Message: msg, Options: slices.Clone(s.Options), Default: s.Default}
		if s.Timeout > 0 {
			ss.Prompt.Deadline = st.clock.Add(s.Timeout.Std())
			m.addTimer(s, 1, TimerTimeout, ss.Prompt.Deadline)
		}
		m.set(s, StepAwaitingResponse, "")
	case TypeWait:
		m.set(s, StepRunning, "")
		m.addTimer(s, 1, TimerWait, st.clock.Add(s.Duration.Std()))
	case TypeParallel:
		m.set(s, StepRunning, "")
		if s.Timeout > 0 {
			m.addTimer(s, 1, TimerTimeout, st.clock.Add(s.Timeout.Std()))
		}
	}
}

func (m *machine) skipInside(s *Step) {
	for _, b := range s.Branches {
		m.skip(b.Steps, fmt.Sprintf("not run: step %q did not run", s.Name))
	}
}

// startAttempt issues attempt n of an execute step: a new command id, a deadline timer.
func (m *machine) startAttempt(s *Step, n int) {
	st := m.st
	ss := st.Steps[s.Name]
	a := &Attempt{Number: n, CommandID: CommandID(st.Execution, s.Name, n), Status: StepRunning, StartedAt: st.clock}
	var err error
	for _, t := range s.Targets {
		var v string
		if v, err = interpolate(t, st.Inputs); err != nil {
			break
		}
		a.Targets = append(a.Targets, v)
	}
	if err == nil && len(s.Params) > 0 {
		a.Params = make(map[string]string, len(s.Params))
		for _, k := range sortedKeys(s.Params) {
			if a.Params[k], err = interpolate(s.Params[k], st.Inputs); err != nil {
				break
			}
		}
	}
	if err != nil {
		m.set(s, StepFailed, err.Error())
		return
	}
	ss.Attempts = append(ss.Attempts, a)
	ss.RetryAt = time.Time{}
	m.dropTimers(s.Name, n-1)
	st.Timeline = append(st.Timeline, Entry{At: st.clock, Step: s.Name, Attempt: n, Status: string(StepRunning), Reason: "command " + a.CommandID})
	if ss.Status != StepRunning {
		m.set(s, StepRunning, "")
	}
	deadline := s.Timeout.Std()
	if deadline <= 0 {
		deadline = DefaultStepDeadline
	}
	m.addTimer(s, n, TimerTimeout, st.clock.Add(deadline))
	st.changed = true
}

// endAttempt closes an attempt. Abandoned attempts (timed out, cancelled) get their command cancelled.
func (m *machine) endAttempt(s *Step, a *Attempt, status StepStatus, reason string, abandoned bool) {
	st := m.st
	a.Status, a.Reason, a.FinishedAt, a.Abandoned = status, reason, st.clock, abandoned
	m.dropTimers(s.Name, a.Number)
	st.Timeline = append(st.Timeline, Entry{At: st.clock, Step: s.Name, Attempt: a.Number, Status: string(status), Reason: reason})
	st.changed = true
}

func (m *machine) abandonAttempts(s *Step, status StepStatus, reason string) {
	for _, a := range m.st.Steps[s.Name].Attempts {
		if a.Status == StepRunning {
			m.endAttempt(s, a, status, reason, true)
		}
	}
}

func (m *machine) progressExecute(s *Step) {
	st := m.st
	ss := st.Steps[s.Name]
	if len(ss.Attempts) == 0 {
		return
	}
	a := ss.Attempts[len(ss.Attempts)-1]
	if a.Status != StepRunning {
		if !ss.RetryAt.IsZero() && m.fired(TimerID(st.Execution, s.Name, a.Number, TimerRetry)) {
			m.startAttempt(s, a.Number+1)
		}
		return
	}
	f := st.commands[a.CommandID]
	switch {
	case f != nil && f.refused != "":
		m.endAttempt(s, a, StepFailed, "refused: "+f.refused, false)
	case f != nil && f.accepted && m.judge(s, a, f):
	case m.fired(TimerID(st.Execution, s.Name, a.Number, TimerTimeout)):
		reported, total := 0, 0
		if f != nil && f.accepted {
			total = len(f.agents)
			for _, ag := range f.agents {
				if _, ok := f.results[ag]; ok {
					reported++
				}
			}
		}
		limit := s.Timeout.Std()
		if limit <= 0 {
			limit = DefaultStepDeadline
		}
		why := fmt.Sprintf("timed out after %s: %d of %d agents reported", limit, reported, total)
		if f == nil || !f.accepted {
			why = fmt.Sprintf("timed out after %s: the command was never accepted", limit)
		}
		m.endAttempt(s, a, StepFailed, why, true)
	}
	if a.Status == StepRunning {
		return
	}
	if a.Status == StepSucceeded {
		m.set(s, StepSucceeded, a.Reason)
		return
	}
	if a.Number < s.attempts() {
		d := s.Retry.delay(a.Number)
		if d <= 0 {
			m.startAttempt(s, a.Number+1)
			return
		}
		ss.RetryAt = st.clock.Add(d)
		m.addTimer(s, a.Number, TimerRetry, ss.RetryAt)
		return
	}
	reason := a.Reason
	if s.attempts() > 1 {
		reason = fmt.Sprintf("%s (attempt %d of %d)", reason, a.Number, s.attempts())
	}
	m.set(s, StepFailed, reason)
}

// judge decides an accepted attempt from its results: succeeded when every agent succeeded, failed as
// soon as max_errors agents failed (when set), otherwise failed when all reported and any failed.
// With max_errors N, fewer than N failures are tolerated. It reports whether it decided.
func (m *machine) judge(s *Step, a *Attempt, f *commandFacts) bool {
	var failed []string
	reported := 0
	for _, ag := range f.agents {
		r, ok := f.results[ag]
		if !ok {
			continue
		}
		reported++
		if r.Status != string(wire.StatusSucceeded) {
			d := ag + " " + r.Status
			if r.ExitCode != nil {
				d += fmt.Sprintf(" (exit %d)", *r.ExitCode)
			}
			failed = append(failed, d)
		}
	}
	total := len(f.agents)
	list := strings.Join(failed[:min(len(failed), 3)], ", ")
	if len(failed) > 3 {
		list += fmt.Sprintf(", and %d more", len(failed)-3)
	}
	switch {
	case s.MaxErrors > 0 && len(failed) >= s.MaxErrors:
		m.endAttempt(s, a, StepFailed, fmt.Sprintf("%d of %d agents failed, max_errors is %d: %s", len(failed), total, s.MaxErrors, list), false)
	case reported < total:
		return false
	case len(failed) == 0:
		m.endAttempt(s, a, StepSucceeded, "", false)
	case s.MaxErrors > 0:
		m.endAttempt(s, a, StepSucceeded, fmt.Sprintf("%d of %d agents failed, within max_errors %d: %s", len(failed), total, s.MaxErrors, list), false)
	default:
		m.endAttempt(s, a, StepFailed, fmt.Sprintf("%d of %d agents failed: %s", len(failed), total, list), false)
	}
	return true
}

func (m *machine) progressPrompt(s *Step) {
	st := m.st
	if ans, ok := st.answers[s.Name]; ok {
		m.answer(s, ans.answer, ans.by)
		m.set(s, StepSucceeded, "")
		return
	}
	if !m.fired(TimerID(st.Execution, s.Name, 1, TimerTimeout)) {
		return
	}
	if s.Default == nil {
		m.set(s, StepFailed, fmt.Sprintf("no answer within %s", s.Timeout.Std()))
		return
	}
	m.answer(s, *s.Default, "")
	m.set(s, StepSucceeded, fmt.Sprintf("no answer within %s: took the default %q", s.Timeout.Std(), *s.Default))
}

func (m *machine) answer(s *Step, answer, by string) {
	st := m.st
	ss := st.Steps[s.Name]
	ss.Answer, ss.AnsweredBy = answer, by
	st.Answers[s.Name] = answer
	st.PromptResponse = answer
}

func (m *machine) progressParallel(s *Step) {
	st := m.st
	if s.Timeout > 0 && m.fired(TimerID(st.Execution, s.Name, 1, TimerTimeout)) {
		reason := fmt.Sprintf("not finished: parallel step %q timed out", s.Name)
		m.cancelInside(s, reason)
		m.set(s, StepFailed, fmt.Sprintf("timed out after %s", s.Timeout.Std()))
		return
	}
	done, why := true, ""
	for i, b := range s.Branches {
		res, failed := m.sequence(b.Steps, false)
		switch res {
		case seqRunning:
			done = false
		case seqFailed:
			if why == "" {
				name := b.Name
				if name == "" {
					name = fmt.Sprint(i + 1)
				}
				why = fmt.Sprintf("branch %s: step %q failed: %s", name, failed.Name, st.Steps[failed.Name].Reason)
			}
		}
	}
	switch {
	case !done:
	case why != "":
		m.set(s, StepFailed, why)
	default:
		m.set(s, StepSucceeded, "")
	}
}

// cancelInside cancels what is still running inside a parallel step.
func (m *machine) cancelInside(s *Step, reason string) {
	for _, b := range s.Branches {
		for _, in := range b.Steps {
			if !m.st.Steps[in.Name].Status.Final() {
				m.abandonAttempts(in, StepCancelled, reason)
				m.set(in, StepCancelled, reason)
			}
			m.cancelInside(in, reason)
		}
	}
}

// addTimer adds a pending timer, keeping Timers ordered by time then id.
func (m *machine) addTimer(s *Step, attempt int, purpose TimerPurpose, at time.Time) {
	st := m.st
	t := Timer{ID: TimerID(st.Execution, s.Name, attempt, purpose), At: at, Step: s.Name, Attempt: attempt, Purpose: purpose}
	if slices.ContainsFunc(st.Timers, func(x Timer) bool { return x.ID == t.ID }) {
		return
	}
	i, _ := slices.BinarySearchFunc(st.Timers, t, func(a, b Timer) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	st.Timers = slices.Insert(st.Timers, i, t)
}

// dropTimers removes a step's timers: those of one attempt, or all of them (attempt 0).
func (m *machine) dropTimers(step string, attempt int) {
	m.st.Timers = slices.DeleteFunc(m.st.Timers, func(t Timer) bool {
		return t.Step == step && (attempt == 0 || t.Attempt == attempt)
	})
}

// fired consumes a pending timer that a timer_fired event has reached.
func (m *machine) fired(id string) bool {
	st := m.st
	for i, t := range st.Timers {
		if t.ID != id {
			continue
		}
		at, ok := st.fired[id]
		if !ok || at.Before(t.At) {
			return false
		}
		st.Timers = slices.Delete(st.Timers, i, i+1)
		st.changed = true
		return true
	}
	return false
}

// eval runs a condition against the variables as they are now.
func (m *machine) eval(prg cel.Program) (bool, error) {
	out, _, err := prg.Eval(m.vars())
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("not a boolean: %v", out)
	}
	return b, nil
}

// vars builds the condition variables (see StepVars).
func (m *machine) vars() map[string]any {
	st := m.st
	steps := make(map[string]StepVars, len(st.Steps))
	prompt := map[string]string{}
	for _, s := range m.d.order {
		ss := st.Steps[s.Name]
		v := StepVars{Status: string(ss.Status), Answer: ss.Answer, AnsweredBy: ss.AnsweredBy}
		switch {
		case s.Type == TypeExecute:
			v.Attempts = int64(len(ss.Attempts))
		case !ss.StartedAt.IsZero():
			v.Attempts = 1
		}
		if n := len(ss.Attempts); n > 0 {
			if f := st.commands[ss.Attempts[n-1].CommandID]; f != nil {
				for _, ag := range sortedKeys(f.results) {
					r := f.results[ag]
					code := int64(-1)
					if r.ExitCode != nil {
						code = int64(*r.ExitCode)
					}
					v.Results = append(v.Results, AgentVars{Agent: ag, Status: r.Status, ExitCode: code, Output: r.Output})
					if r.Status == string(wire.StatusSucceeded) {
						v.Succeeded++
					} else {
						v.Failed++
					}
				}
			}
		}
		if v.Results == nil {
			v.Results = []AgentVars{}
		}
		steps[s.Name] = v
		if s.Type == TypePrompt {
			prompt[s.Name] = st.Answers[s.Name]
		}
	}
	vars := map[string]any{"steps": steps, "prompt": prompt, "promptResponse": st.PromptResponse}
	for name, v := range st.Inputs {
		vars["inputs."+name] = v
	}
	return vars
}

// view copies the command facts into the attempts, for the hub to show.
func (m *machine) view() {
	st := m.st
	for _, s := range m.d.order {
		for _, a := range st.Steps[s.Name].Attempts {
			f := st.commands[a.CommandID]
			if f == nil {
				continue
			}
			a.Accepted, a.Agents, a.CancelSent = f.accepted, f.agents, f.cancelled
			if len(f.results) > 0 {
				a.Results = f.results
			}
		}
	}
}

// seconds rounds a duration up to whole seconds, as commands take them.
func seconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}
