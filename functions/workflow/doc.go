// Package workflow is the pure core of Pulse's workflows: definitions, their validation, and a
// deterministic engine. It does no I/O and reads no clock; the hub stores definitions and events, runs
// the tick, and performs the actions this package decides. That split is what lets any number of
// stateless hub instances drive one execution (DESIGN.md §3, §7).
//
// # Definitions
//
// A workflow is YAML or JSON, in the original system's shape so its examples load with only their shell
// lines replaced by whitelisted commands and params:
//
//	name: nightly-update            # optional
//	inputs:
//	  version: {type: string, required: true}
//	  batch:   {type: int, default: 5}
//	schedule: {cron: "30 3 * * 1", timezone: Europe/Paris, overlap: skip}
//	steps:
//	  - name: Update package list
//	    type: execute
//	    targets: all                 # or a list: agent ids, names, label selectors k=v
//	    command: apt_update          # a command from the agents' catalog, never shell
//	    params: {}                   # values may use ${inputs.NAME}
//	    timeout: 5m                  # "5m" or milliseconds (300000) as in the original
//	    max_concurrency: 5           # agents at once; max_errors: failures that fail the step
//	    retry: {attempts: 3, backoff: 30s, max_backoff: 5m}
//	    on_failure: stop             # stop | continue | [handler, names]
//	  - name: User approval
//	    type: prompt
//	    message: Proceed with upgrade?
//	    options: ["Yes", "No"]
//	    timeout: 4h                  # optional; then default is taken, or the step fails
//	    default: "No"
//	  - name: Upgrade packages
//	    type: execute
//	    targets: all
//	    command: apt_upgrade
//	    condition: promptResponse === 'Yes'
//	  - name: Settle
//	    type: wait
//	    duration: 30s
//	  - name: Checks
//	    type: parallel
//	    branches:                    # each: a list of steps, {name, steps}, or one step
//	      - - {name: Disk, type: execute, targets: all, command: disk_usage, params: {path: /}}
//	      - {name: Uptime, type: execute, targets: all, command: host_uptime}
//	handlers:                        # run only when an on_failure names them
//	  - {name: Report, type: execute, targets: all, command: collect_logs}
//
// Parse refuses, with line:column, anything malformed; Validate (or Load, which does both) refuses what
// needs the catalog or the CEL compiler. Step names are unique across the whole definition.
//
// # Interpolation
//
// Params values, targets and prompt messages may contain ${inputs.NAME}; "$${" is a literal "${". Only
// inputs can be referenced, never a command's output, so a parameter is always something the person who
// started the execution chose, and the agent validates it against its catalog like any other.
//
// # Conditions
//
// A condition is a CEL expression, evaluated when its sequence reaches the step; false skips the step.
// Variables: inputs.NAME (typed), promptResponse (the latest answer), prompt.STEP (an answer),
// steps.STEP (a StepVars: status, attempts, succeeded, failed, results[{agent, status, exit_code,
// output}], answer, answered_by). Names that are not identifiers are written prompt["User approval"].
// JavaScript's === and !== are read as == and !=. Validate refuses a condition that does not compile,
// is not boolean, names a step that does not exist, or whose estimated cost exceeds MaxConditionCost
// (assuming ResultsSizeHint results per step); evaluation is stopped at RuntimeCostLimit.
//
// # Semantics
//
// Steps run in order. An execute step issues one command per attempt and succeeds when every agent the
// command reached succeeded; with max_errors N it fails as soon as N agents failed and tolerates fewer.
// A failed attempt is retried after backoff (doubling up to max_backoff) while attempts remain, each
// attempt a new command with a new id. timeout bounds an attempt (default DefaultStepDeadline) and is
// also each agent's run limit. A prompt waits in awaiting_response for an answer among its options. A
// parallel step starts every branch at once and ends when all have ended, failed if any branch failed.
// After a failure: stop skips the rest of the sequence (the execution fails), continue goes on,
// [names] runs those handler steps and then fails the execution. A branch step may only stop (its
// branch) or continue. A cancelled execution cancels every step not yet ended.
//
// # Engine
//
// Every input is an immutable Event. Fold(def, execution, events) computes the State; Next(def, state,
// now) lists the Actions the state calls for. Both are pure and deterministic, so two hubs handling the
// same events decide the same actions with the same ids (CommandID, TimerID, PromptID are derived from
// execution, step and attempt). The hub's side:
//
//   - start: ResolveInputs, then record a started event (Inputs, By, Version).
//   - after recording any event: list the execution's events, Fold, Next(now), perform each action
//     idempotently (create-only writes keyed by Kind and ID), recording the confirming event:
//     issue_command → create the command with id CommandID, then command_accepted with the agent ids
//     of the created command (read them back if another hub created it first) or command_refused;
//     cancel_command → cancel, then command_cancelled; fire_timer → timer_fired (Timer, At = now);
//     await_prompt → show and notify; set_timer → index the wake-up time; finish → update the summary.
//   - results: when an agent's result for a workflow command arrives, record command_result
//     (CommandID, Agent, Status, ExitCode, a short Output excerpt).
//   - answers: check the policy and State.CheckAnswer, then record prompt_answered.
//   - tick: for executions whose NextWake has passed, Fold and Next(now) and perform fire_timer.
//   - schedules: NextFire(schedule, lastSlot, now); record the returned slot as lastSlot when firing,
//     and apply the schedule's Overlap against running executions.
//
// An execution must always be folded with the definition version it started with (Event.Version).
package workflow
