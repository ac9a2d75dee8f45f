package workflow

import (
	"maps"
	"slices"
	"time"
)

// ActionKind says what the hub must do.
type ActionKind string

// The action kinds, with the event that shows each was done.
const (
	// ActIssueCommand: create the command CommandID (Command, Params, Targets, limits) with a
	// create-only write, then record command_accepted (with the agent ids the targets resolved to)
	// or command_refused (with the reason). Repeated until one of those is folded.
	ActIssueCommand ActionKind = "issue_command"
	// ActCancelCommand: cancel command CommandID (an attempt was abandoned while agents still ran
	// it), then record command_cancelled. Repeated until that is folded or every agent reported.
	ActCancelCommand ActionKind = "cancel_command"
	// ActAwaitPrompt: make sure the question is visible and its audience notified (once per ID). It
	// stays in the list while the prompt waits; the answer arrives as prompt_answered.
	ActAwaitPrompt ActionKind = "await_prompt"
	// ActSetTimer: make sure the tick will look at this execution at TimerAt (once per TimerID).
	ActSetTimer ActionKind = "set_timer"
	// ActFireTimer: the timer is due: record timer_fired with Timer = TimerID (and At = now).
	ActFireTimer ActionKind = "fire_timer"
	// ActFinish: the execution has ended with Status and Reason; update its summary and indexes.
	ActFinish ActionKind = "finish"
)

// Action is one thing the state calls for. (Kind, ID) is its idempotency key: perform an action at
// most once per key (create-only writes keyed by it), because Next repeats an action until the event
// that proves it done has been folded, and two hubs compute the same actions with the same IDs. IDs
// are valid hub ids ([A-Za-z0-9_-], at most 64 characters).
type Action struct {
	Kind    ActionKind `json:"kind"`
	ID      string     `json:"id"`
	Step    string     `json:"step,omitempty"`
	Attempt int        `json:"attempt,omitempty"`

	// issue_command, cancel_command
	CommandID string `json:"commandId,omitempty"`
	// issue_command: Targets are expressions (all, ids, names, label selectors) the hub resolves;
	// Params are interpolated. TimeoutSeconds 0 means the command's own default.
	Command        string            `json:"command,omitempty"`
	Params         map[string]string `json:"params,omitempty"`
	Targets        []string          `json:"targets,omitempty"`
	TimeoutSeconds int               `json:"timeoutSeconds,omitempty"`
	MaxConcurrency int               `json:"maxConcurrency,omitempty"`
	MaxErrors      int               `json:"maxErrors,omitempty"`

	// await_prompt (ID is the prompt id). Deadline is zero when the prompt waits forever.
	Message  string    `json:"message,omitempty"`
	Options  []string  `json:"options,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	Default  *string   `json:"default,omitempty"`

	// set_timer, fire_timer
	TimerID string    `json:"timerId,omitempty"`
	TimerAt time.Time `json:"timerAt,omitzero"`

	// finish
	Status ExecutionStatus `json:"status,omitempty"`
	Reason string          `json:"reason,omitempty"`
}

// Next lists what the state calls for now that has not been shown done. It is level-triggered: it
// does not remember what it said before, it reads the state, so a hub that crashed between deciding
// and doing simply does it on the next call. It is deterministic: the same definition, state and now
// give the same actions in the same order (definition order, then timers by time); now only decides
// whether a timer is due (fire_timer) or still to come (set_timer).
func Next(def *Definition, st *State, now time.Time) []Action {
	if def == nil || st == nil || st.Status == ExecPending {
		return nil
	}
	var out []Action
	for _, s := range def.order {
		ss := st.Steps[s.Name]
		if ss == nil {
			continue
		}
		for _, a := range ss.Attempts {
			f := st.commands[a.CommandID]
			decided := f != nil && (f.accepted || f.refused != "")
			if a.Status == StepRunning && !decided && st.Status == ExecRunning {
				out = append(out, Action{
					Kind: ActIssueCommand, ID: a.CommandID, Step: s.Name, Attempt: a.Number, CommandID: a.CommandID,
					Command: s.Command, Params: maps.Clone(a.Params), Targets: slices.Clone(a.Targets),
					TimeoutSeconds: seconds(s.Timeout.Std()), MaxConcurrency: s.MaxConcurrency, MaxErrors: s.MaxErrors,
				})
			}
			if a.Abandoned && f != nil && f.accepted && !f.cancelled && !allReported(f) {
				out = append(out, Action{Kind: ActCancelCommand, ID: "cancel-" + a.CommandID, Step: s.Name, Attempt: a.Number, CommandID: a.CommandID})
			}
		}
		if ss.Status == StepAwaitingResponse && ss.Prompt != nil && st.Status == ExecRunning {
			p := ss.Prompt
			out = append(out, Action{
				Kind: ActAwaitPrompt, ID: p.ID, Step: s.Name, Attempt: 1,
				Message: p.Message, Options: slices.Clone(p.Options), Deadline: p.Deadline, Default: p.Default,
			})
		}
	}
	for _, t := range st.Timers {
		kind := ActSetTimer
		if !now.Before(t.At) {
			kind = ActFireTimer
		}
		out = append(out, Action{Kind: kind, ID: t.ID, Step: t.Step, Attempt: t.Attempt, TimerID: t.ID, TimerAt: t.At})
	}
	if st.Status.Final() {
		out = append(out, Action{Kind: ActFinish, ID: st.Execution, Status: st.Status, Reason: st.Reason})
	}
	return out
}

func allReported(f *commandFacts) bool {
	for _, ag := range f.agents {
		if _, ok := f.results[ag]; !ok {
			return false
		}
	}
	return true
}

// NextWake is when the execution next needs the tick: its earliest pending timer, or zero when it
// waits only for outside events (results, answers) or has ended. The hub keeps it in an index so the
// tick reads only executions that are due.
func (st *State) NextWake() time.Time {
	if st == nil || len(st.Timers) == 0 {
		return time.Time{}
	}
	return st.Timers[0].At
}
