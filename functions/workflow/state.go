package workflow

import (
	"time"
)

// EventKind says what an event records. Events are the engine's only inputs.
type EventKind string

// The event kinds. Each names the hub's duty that produces it.
const (
	// EventStarted starts the execution with its inputs (and who started it, and the definition
	// version it runs). Only the first counts.
	EventStarted EventKind = "started"
	// EventCommandAccepted: the hub created the command of an issue_command action; Agents lists the
	// agent ids the targets resolved to. Written after performing issue_command.
	EventCommandAccepted EventKind = "command_accepted"
	// EventCommandRefused: the hub could not create the command (no agent matched, policy denied it, a
	// target lacks the command, a parameter failed validation); Reason says why. The attempt fails.
	EventCommandRefused EventKind = "command_refused"
	// EventCommandResult: one agent's final result for a command (Agent, Status, ExitCode, Output).
	EventCommandResult EventKind = "command_result"
	// EventCommandCancelled: the hub performed a cancel_command action.
	EventCommandCancelled EventKind = "command_cancelled"
	// EventPromptAnswered: a person the policy allows answered a prompt step (Step, Answer,
	// AnsweredBy). Only the first valid answer counts.
	EventPromptAnswered EventKind = "prompt_answered"
	// EventTimerFired: the tick found a timer due (Timer). Ignored if At is before the timer's time.
	EventTimerFired EventKind = "timer_fired"
	// EventCancelled: someone cancelled the execution (By, Reason).
	EventCancelled EventKind = "cancelled"
)

// Event is one immutable input. The hub stores each as its own object and feeds them all to Fold in
// the order of their time-ordered ids. Events may repeat (two hubs recording the same thing) and may
// arrive a little out of causal order (clock skew between hubs): Fold ignores repeats and holds facts
// that arrive early (a result before its command_accepted, an answer before its prompt is reached)
// until they apply.
type Event struct {
	ID   string    `json:"id"`
	At   time.Time `json:"at"`
	Kind EventKind `json:"kind"`

	// Step and Attempt place prompt answers and command events; for command events CommandID alone
	// is enough (Fold knows which step and attempt every command id of the execution belongs to).
	Step      string `json:"step,omitempty"`
	Attempt   int    `json:"attempt,omitempty"`
	CommandID string `json:"commandId,omitempty"`

	// command_accepted
	Agents []string `json:"agents,omitempty"`
	// command_result
	Agent    string `json:"agent,omitempty"`
	Status   string `json:"status,omitempty"` // a wire.Status, or "expired"
	ExitCode *int   `json:"exitCode,omitempty"`
	Output   string `json:"output,omitempty"` // a short excerpt; cut to MaxOutputBytes
	// command_refused, cancelled
	Reason string `json:"reason,omitempty"`
	// prompt_answered
	Answer     string `json:"answer,omitempty"`
	AnsweredBy string `json:"answeredBy,omitempty"`
	// timer_fired
	Timer string `json:"timer,omitempty"`
	// started
	Inputs  map[string]any `json:"inputs,omitempty"`
	Version string         `json:"version,omitempty"`
	// started, cancelled: who
	By string `json:"by,omitempty"`
}

// ExecutionStatus is where an execution stands.
type ExecutionStatus string

// The execution statuses.
const (
	// ExecPending: no started event yet.
	ExecPending   ExecutionStatus = "pending"
	ExecRunning   ExecutionStatus = "running"
	ExecSucceeded ExecutionStatus = "succeeded"
	ExecFailed    ExecutionStatus = "failed"
	ExecCancelled ExecutionStatus = "cancelled"
)

// Final reports whether the execution has ended.
func (s ExecutionStatus) Final() bool {
	return s == ExecSucceeded || s == ExecFailed || s == ExecCancelled
}

// StepStatus is where a step (or an attempt) stands.
type StepStatus string

// The step statuses.
const (
	StepPending          StepStatus = "pending"
	StepRunning          StepStatus = "running"
	StepAwaitingResponse StepStatus = "awaiting_response"
	StepSucceeded        StepStatus = "succeeded"
	StepFailed           StepStatus = "failed"
	StepSkipped          StepStatus = "skipped"
	StepCancelled        StepStatus = "cancelled"
)

// Final reports whether the step has ended.
func (s StepStatus) Final() bool {
	return s == StepSucceeded || s == StepFailed || s == StepSkipped || s == StepCancelled
}

// TimerPurpose tells apart the timers of one step attempt.
type TimerPurpose string

// The timer purposes.
const (
	TimerTimeout TimerPurpose = "timeout" // an execute attempt, prompt or parallel step ran out of time
	TimerRetry   TimerPurpose = "retry"   // the backoff before the next attempt is over
	TimerWait    TimerPurpose = "wait"    // a wait step's duration is over
)

// Timer is a pending timer: the tick must record a timer_fired event for it at or after At.
type Timer struct {
	ID      string       `json:"id"`
	At      time.Time    `json:"at"`
	Step    string       `json:"step"`
	Attempt int          `json:"attempt"`
	Purpose TimerPurpose `json:"purpose"`
}

// State is the fold of an execution's events: everything the hub shows and everything Next needs. It
// is a value computed from the events, never stored as the truth, so any hub can rebuild it.
type State struct {
	Execution string          `json:"execution"`
	Version   string          `json:"version,omitempty"`
	Status    ExecutionStatus `json:"status"`
	// Reason says why the execution failed or was cancelled.
	Reason     string    `json:"reason,omitempty"`
	StartedBy  string    `json:"startedBy,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Inputs are the resolved inputs (every declared input, defaults applied).
	Inputs map[string]any `json:"inputs,omitempty"`
	// Steps holds every step of the definition, nested and handler steps included, by name.
	Steps map[string]*StepState `json:"steps"`
	// Answers are the prompt answers by step; PromptResponse is the latest.
	Answers        map[string]string `json:"answers,omitempty"`
	PromptResponse string            `json:"promptResponse,omitempty"`
	// Timers are the pending timers, earliest first.
	Timers []Timer `json:"timers,omitempty"`
	// Timeline lists every step transition in the order it happened.
	Timeline []Entry `json:"timeline,omitempty"`
	// Ignored lists events that changed nothing (repeats, late or invalid ones) and why: normal in small
	// numbers when several hubs record the same fact, worth a look otherwise. The last MaxIgnored kept.
	Ignored []Ignored `json:"ignored,omitempty"`
	// Events is how many events were folded; LastEvent is the id of the last.
	Events    int    `json:"events"`
	LastEvent string `json:"lastEvent,omitempty"`

	commands map[string]*commandFacts // by command id
	cmdIndex map[string]stepAttempt   // every command id this execution can issue
	answers  map[string]answerFact    // first valid answer per prompt step, consumed or not
	fired    map[string]time.Time     // latest timer_fired time per timer id
	cancel   *Event
	clock    time.Time
	started  bool
	changed  bool
}

// MaxIgnored bounds State.Ignored.
const MaxIgnored = 100

// StepState is one step's progress.
type StepState struct {
	Name       string     `json:"name"`
	Type       StepType   `json:"type"`
	Status     StepStatus `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	StartedAt  time.Time  `json:"startedAt,omitzero"`
	FinishedAt time.Time  `json:"finishedAt,omitzero"`
	// Attempts are an execute step's runs, one command each.
	Attempts []*Attempt `json:"attempts,omitempty"`
	// RetryAt is set while the step waits for its next attempt.
	RetryAt time.Time `json:"retryAt,omitzero"`
	// Prompt is the question of a reached prompt step.
	Prompt     *PromptState `json:"prompt,omitempty"`
	Answer     string       `json:"answer,omitempty"`
	AnsweredBy string       `json:"answeredBy,omitempty"`
}

// Attempt is one run of an execute step: one command.
type Attempt struct {
	Number     int        `json:"number"`
	CommandID  string     `json:"commandId"`
	Status     StepStatus `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt time.Time  `json:"finishedAt,omitzero"`
	// Targets and Params are interpolated: what the command asks for.
	Targets []string          `json:"targets"`
	Params  map[string]string `json:"params,omitempty"`
	// Accepted is set when the hub created the command; Agents are the agents it went to.
	Accepted bool     `json:"accepted"`
	Agents   []string `json:"agents,omitempty"`
	// Results are the agents' results, by agent id, including any that came after the attempt ended.
	Results map[string]AgentResult `json:"results,omitempty"`
	// Abandoned is set when the attempt ended before every agent reported (timeout, cancel): its
	// command must be cancelled.
	Abandoned bool `json:"abandoned,omitempty"`
	// CancelSent is set once the hub confirmed the cancel (command_cancelled).
	CancelSent bool `json:"cancelSent,omitempty"`
}

// AgentResult is one agent's result.
type AgentResult struct {
	Agent    string    `json:"agent"`
	Status   string    `json:"status"`
	ExitCode *int      `json:"exitCode,omitempty"`
	Output   string    `json:"output,omitempty"`
	At       time.Time `json:"at"`
}

// PromptState is the question of a prompt step, as the person answering sees it.
type PromptState struct {
	ID      string   `json:"id"`
	Message string   `json:"message"`
	Options []string `json:"options,omitempty"`
	// Deadline is when the default answer is taken (or the step fails); zero for none.
	Deadline time.Time `json:"deadline,omitzero"`
	Default  *string   `json:"default,omitempty"`
}

// Entry is one transition in the timeline.
type Entry struct {
	At      time.Time `json:"at"`
	Step    string    `json:"step,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	Status  string    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
}

// Ignored is an event that changed nothing.
type Ignored struct {
	Event  string `json:"event"`
	Reason string `json:"reason"`
}

type stepAttempt struct {
	step    string
	attempt int
}

type commandFacts struct {
	accepted  bool
	agents    []string
	refused   string
	results   map[string]AgentResult
	cancelled bool
}

type answerFact struct {
	answer, by string
}
