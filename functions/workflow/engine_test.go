package workflow

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInteractiveSystemUpdate(t *testing.T) {
	for _, c := range []struct {
		name            string
		upgrade, reboot string // the two answers
		want            map[string]StepStatus
	}{
		{"yes, no", "Yes", "No", map[string]StepStatus{
			"Update package list": StepSucceeded, "User approval": StepSucceeded, "Upgrade packages": StepSucceeded,
			"Reboot confirmation": StepSucceeded, "Reboot servers": StepSkipped,
		}},
		{"no, yes", "No", "Yes", map[string]StepStatus{
			"Update package list": StepSucceeded, "User approval": StepSucceeded, "Upgrade packages": StepSkipped,
			"Reboot confirmation": StepSucceeded, "Reboot servers": StepSucceeded,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSim(t, loadFile(t, "interactive-system-update.json"), nil)
			if acts := s.next(); len(acts) != 2 || acts[0].Kind != ActIssueCommand || acts[0].Command != "apt_update" || acts[0].Targets[0] != "all" || acts[1].Kind != ActSetTimer {
				t.Fatalf("first actions: %+v", acts)
			}
			s.runOK("Update package list", "web-1", "web-2")
			st := s.state()
			if st.Steps["User approval"].Status != StepAwaitingResponse {
				t.Fatalf("prompt: %+v", st.Steps["User approval"])
			}
			acts := s.next()
			if len(acts) != 1 || acts[0].Kind != ActAwaitPrompt || acts[0].Message != "Packages updated. Proceed with upgrade?" || !slices.Equal(acts[0].Options, []string{"Yes", "No"}) {
				t.Fatalf("await: %+v", acts)
			}
			if err := st.CheckAnswer(s.def, "User approval", "Maybe"); err == nil {
				t.Fatal("an answer outside the options was accepted")
			}
			s.answer("User approval", c.upgrade)
			if c.upgrade == "Yes" {
				up := s.actions(ActIssueCommand)
				if len(up) != 1 || up[0].Command != "apt_upgrade" || up[0].Params["assume_yes"] != "true" {
					t.Fatalf("upgrade: %+v", up)
				}
				s.runOK("Upgrade packages", "web-1", "web-2")
			}
			s.answer("Reboot confirmation", c.reboot)
			if c.reboot == "Yes" {
				s.runOK("Reboot servers", "web-1", "web-2")
			}
			s.wantStatus(c.want)
			st = s.state()
			if st.Status != ExecSucceeded || st.PromptResponse != c.reboot || st.Answers["User approval"] != c.upgrade || st.Steps["User approval"].AnsweredBy != "bob" {
				t.Fatalf("execution: %s %q %v", st.Status, st.PromptResponse, st.Answers)
			}
			if acts := s.next(); len(acts) != 1 || acts[0].Kind != ActFinish || acts[0].Status != ExecSucceeded {
				t.Fatalf("finish: %+v", acts)
			}
		})
	}
}

func TestBackupWithVerification(t *testing.T) {
	s := newSim(t, loadFile(t, "backup-with-verification.json"), nil)
	s.runOK("Create backup", "db-1")
	timers := s.actions(ActSetTimer)
	if s.status("Wait for backup") != StepRunning || len(timers) != 1 || !timers[0].TimerAt.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("wait: %s %+v", s.status("Wait for backup"), timers)
	}
	s.wait(4 * time.Second)
	if n := s.fireDue(); n != 0 {
		t.Fatal("a timer fired early")
	}
	// A tick on a hub whose clock runs ahead is not trusted before the timer's time.
	s.add(Event{Kind: EventTimerFired, Timer: timers[0].TimerID, At: t0.Add(4 * time.Second)})
	if s.status("Wait for backup") != StepRunning {
		t.Fatal("an early timer_fired event was taken")
	}
	s.wait(time.Second)
	if n := s.fireDue(); n != 1 {
		t.Fatalf("fired %d timers", n)
	}
	id := s.issue("Verify backup", "db-1")
	out := "listing...\nOK"
	s.add(Event{Kind: EventCommandResult, CommandID: id, Agent: "db-1", Status: "succeeded", Output: out})
	s.answer("Cleanup decision", "No")
	s.wantStatus(map[string]StepStatus{"Wait for backup": StepSucceeded, "Verify backup": StepSucceeded, "Cleanup old backups": StepSkipped})
	if st := s.state(); st.Status != ExecSucceeded || st.Steps["Verify backup"].Attempts[0].Results["db-1"].Output != out {
		t.Fatalf("%s %+v", st.Status, st.Steps["Verify backup"].Attempts[0])
	}
}

func TestRetryWithBackoff(t *testing.T) {
	def := mustLoad(t, `
steps:
  - name: flaky
    type: execute
    targets: all
    command: apt_update
    timeout: 1m
    retry: {attempts: 3, backoff: 10s}
  - name: after
    type: wait
    duration: 1s
`)
	s := newSim(t, def, nil)
	var ids []string
	for attempt := 1; attempt <= 3; attempt++ {
		id := s.issue("flaky", "a1")
		ids = append(ids, id)
		if attempt < 3 {
			s.result(id, "a1", "failed", 1)
			st := s.state()
			ss := st.Steps["flaky"]
			wantAt := s.now.Add(10 * time.Second << (attempt - 1)) // 10s, then 20s
			if ss.Status != StepRunning || !ss.RetryAt.Equal(wantAt) || len(s.actions(ActIssueCommand)) != 0 {
				t.Fatalf("attempt %d: %s retry at %s (want %s), actions %v", attempt, ss.Status, ss.RetryAt, wantAt, kinds(s.next()))
			}
			s.now = wantAt
			if s.fireDue() != 1 {
				t.Fatalf("attempt %d: no backoff timer due", attempt)
			}
		} else {
			s.result(id, "a1", "succeeded", 0)
		}
	}
	st := s.state()
	ss := st.Steps["flaky"]
	if ss.Status != StepSucceeded || len(ss.Attempts) != 3 {
		t.Fatalf("%s after %d attempts", ss.Status, len(ss.Attempts))
	}
	for i, a := range ss.Attempts {
		if a.CommandID != ids[i] || a.Number != i+1 || a.CommandID != CommandID(s.exec, "flaky", i+1) || !hubIDRE.MatchString(a.CommandID) {
			t.Fatalf("attempt %d: %+v", i+1, a)
		}
	}
	if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("command ids repeat: %v", ids)
	}
	if ss.Attempts[0].Status != StepFailed || ss.Attempts[1].Status != StepFailed || ss.Attempts[2].Status != StepSucceeded {
		t.Fatalf("attempts: %+v", ss.Attempts)
	}
	if s.status("after") != StepRunning {
		t.Fatalf("next step: %s", s.status("after"))
	}
}

func TestRetryExhausted(t *testing.T) {
	def := mustLoad(t, "steps:\n  - {name: x, type: execute, targets: all, command: apt_update, retry: {attempts: 2}}\n")
	s := newSim(t, def, nil)
	s.result(s.issue("x", "a1"), "a1", "failed", 2) // no backoff: the next attempt starts at once
	s.result(s.issue("x", "a1"), "a1", "failed", 2)
	st := s.state()
	if st.Status != ExecFailed || !strings.Contains(st.Reason, "attempt 2 of 2") || !strings.Contains(st.Reason, "a1 failed (exit 2)") {
		t.Fatalf("%s: %s", st.Status, st.Reason)
	}
}

func TestStepTimeout(t *testing.T) {
	def := mustLoad(t, `
steps:
  - {name: slow, type: execute, targets: all, command: apt_update, timeout: 30s}
  - {name: never, type: wait, duration: 1s}
`)
	s := newSim(t, def, nil)
	id := s.issue("slow", "a1", "a2")
	s.result(id, "a1", "succeeded", 0)
	s.wait(29 * time.Second)
	if s.fireDue() != 0 || s.status("slow") != StepRunning {
		t.Fatal("timed out early")
	}
	s.wait(time.Second)
	if s.fireDue() != 1 {
		t.Fatal("no timeout timer")
	}
	st := s.state()
	if st.Steps["slow"].Status != StepFailed || !strings.Contains(st.Steps["slow"].Reason, "timed out after 30s: 1 of 2 agents reported") {
		t.Fatalf("slow: %+v", st.Steps["slow"])
	}
	if st.Status != ExecFailed || st.Steps["never"].Status != StepSkipped {
		t.Fatalf("execution %s, never %s", st.Status, st.Steps["never"].Status)
	}
	// a2 still runs the command: the hub is asked to cancel it until it confirms.
	acts := s.next()
	if !hasKind(acts, ActCancelCommand, "slow") || acts[0].CommandID != id || !hubIDRE.MatchString(acts[0].ID) {
		t.Fatalf("want cancel_command: %+v", acts)
	}
	s.add(Event{Kind: EventCommandCancelled, CommandID: id})
	if acts := s.next(); hasKind(acts, ActCancelCommand, "slow") {
		t.Fatalf("cancel repeated after confirmation: %v", kinds(acts))
	}
	// The late result is kept for the record but changes nothing.
	s.result(id, "a2", "cancelled", -1)
	if st := s.state(); st.Status != ExecFailed || len(st.Steps["slow"].Attempts[0].Results) != 2 {
		t.Fatalf("late result: %+v", st.Steps["slow"].Attempts[0])
	}
}

func TestCommandRefused(t *testing.T) {
	def := mustLoad(t, "steps:\n  - {name: x, type: execute, targets: [role=db], command: apt_update}\n")
	s := newSim(t, def, nil)
	a := s.actions(ActIssueCommand)[0]
	s.add(Event{Kind: EventCommandRefused, CommandID: a.CommandID, Reason: `target "role=db" matches no agent`})
	if st := s.state(); st.Status != ExecFailed || !strings.Contains(st.Reason, "refused: target") {
		t.Fatalf("%s: %s", st.Status, st.Reason)
	}
}

func TestMaxErrors(t *testing.T) {
	def := mustLoad(t, "steps:\n  - {name: x, type: execute, targets: all, command: apt_update, max_errors: 2, max_concurrency: 1}\n")
	t.Run("tolerated", func(t *testing.T) {
		s := newSim(t, def, nil)
		if a := s.actions(ActIssueCommand)[0]; a.MaxErrors != 2 || a.MaxConcurrency != 1 {
			t.Fatalf("limits not passed on: %+v", a)
		}
		id := s.issue("x", "a1", "a2", "a3")
		s.result(id, "a1", "failed", 1)
		s.result(id, "a2", "succeeded", 0)
		if s.status("x") != StepRunning {
			t.Fatal("decided before every agent reported")
		}
		s.result(id, "a3", "succeeded", 0)
		if st := s.state(); st.Status != ExecSucceeded || !strings.Contains(st.Steps["x"].Reason, "within max_errors 2") {
			t.Fatalf("%s %q", st.Status, st.Steps["x"].Reason)
		}
	})
	t.Run("reached", func(t *testing.T) {
		s := newSim(t, def, nil)
		id := s.issue("x", "a1", "a2", "a3")
		s.result(id, "a1", "failed", 1)
		s.result(id, "a2", "expired", -1)
		if st := s.state(); st.Status != ExecFailed || !strings.Contains(st.Reason, "2 of 3 agents failed, max_errors is 2") {
			t.Fatalf("%s %q", st.Status, st.Reason)
		}
	})
}

const parallelDef = `
steps:
  - name: checks
    type: parallel
    branches:
      - - {name: disk, type: execute, targets: all, command: disk_usage, params: {path: /}}
        - {name: disk pause, type: wait, duration: 10s}
      - name: up
        steps:
          - {name: uptime, type: execute, targets: all, command: host_uptime}
      - {name: ask, type: prompt, message: "Carry on?", options: [Yes, No]}
  - {name: done, type: execute, targets: all, command: apt_update}
`

func TestParallel(t *testing.T) {
	s := newSim(t, mustLoad(t, parallelDef), nil)
	acts := s.next()
	if !hasKind(acts, ActIssueCommand, "disk") || !hasKind(acts, ActIssueCommand, "uptime") || !hasKind(acts, ActAwaitPrompt, "ask") {
		t.Fatalf("branches do not start together: %v", kinds(acts))
	}
	s.runOK("uptime", "a1")
	s.runOK("disk", "a1")
	s.answer("ask", "Yes")
	s.wantStatus(map[string]StepStatus{"uptime": StepSucceeded, "disk": StepSucceeded, "ask": StepSucceeded, "disk pause": StepRunning, "checks": StepRunning, "done": StepPending})
	if len(s.actions(ActIssueCommand)) != 0 {
		t.Fatal("the step after the parallel group started before every branch ended")
	}
	s.wait(10 * time.Second)
	s.fireDue()
	s.wantStatus(map[string]StepStatus{"checks": StepSucceeded, "done": StepRunning})
	s.runOK("done", "a1")
	if st := s.state(); st.Status != ExecSucceeded {
		t.Fatalf("%s %s", st.Status, st.Reason)
	}
}

func TestParallelBranchFails(t *testing.T) {
	src := strings.Replace(parallelDef, "  - {name: done", "    on_failure: continue\n  - {name: done", 1)
	s := newSim(t, mustLoad(t, src), nil)
	s.result(s.issue("disk", "a1"), "a1", "failed", 1)
	s.wantStatus(map[string]StepStatus{"disk": StepFailed, "disk pause": StepSkipped, "checks": StepRunning})
	s.runOK("uptime", "a1")
	s.answer("ask", "No")
	st := s.state()
	if st.Steps["checks"].Status != StepFailed || !strings.Contains(st.Steps["checks"].Reason, `branch 1: step "disk" failed`) {
		t.Fatalf("checks: %+v", st.Steps["checks"])
	}
	if st.Steps["done"].Status != StepRunning {
		t.Fatalf("on_failure continue: done is %s", st.Steps["done"].Status)
	}
}

func TestParallelTimeout(t *testing.T) {
	src := strings.Replace(parallelDef, "    type: parallel\n", "    type: parallel\n    timeout: 1m\n", 1)
	s := newSim(t, mustLoad(t, src), nil)
	id := s.issue("uptime", "a1")
	s.wait(time.Minute)
	s.fireDue()
	st := s.state()
	if st.Steps["checks"].Status != StepFailed || st.Steps["uptime"].Status != StepCancelled || st.Steps["ask"].Status != StepCancelled || st.Status != ExecFailed {
		t.Fatalf("checks %s, uptime %s, ask %s, exec %s", st.Steps["checks"].Status, st.Steps["uptime"].Status, st.Steps["ask"].Status, st.Status)
	}
	if acts := s.next(); !hasKind(acts, ActCancelCommand, "uptime") || acts[0].CommandID != id || hasKind(acts, ActIssueCommand, "disk") {
		t.Fatalf("actions: %+v", acts)
	}
}

func TestOnFailureHandlers(t *testing.T) {
	def := mustLoad(t, `
steps:
  - {name: upgrade, type: execute, targets: all, command: apt_upgrade, on_failure: [report, rollback]}
  - {name: reboot, type: execute, targets: all, command: reboot}
handlers:
  - {name: report, type: execute, targets: all, command: disk_usage, params: {path: /var/log}}
  - {name: rollback, type: wait, duration: 1s}
  - {name: unused, type: wait, duration: 1s}
`)
	s := newSim(t, def, nil)
	s.result(s.issue("upgrade", "a1"), "a1", "failed", 100)
	s.wantStatus(map[string]StepStatus{"upgrade": StepFailed, "report": StepRunning, "reboot": StepPending})
	if st := s.state(); st.Status != ExecRunning {
		t.Fatal("ended before its handlers ran")
	}
	s.runOK("report", "a1")
	s.wait(time.Second)
	s.fireDue()
	s.wantStatus(map[string]StepStatus{"report": StepSucceeded, "rollback": StepSucceeded, "reboot": StepSkipped, "unused": StepSkipped})
	if st := s.state(); st.Status != ExecFailed || !strings.Contains(st.Reason, `step "upgrade" failed`) {
		t.Fatalf("%s %s", st.Status, st.Reason)
	}
}

func TestConditionsAndInputs(t *testing.T) {
	def := mustLoad(t, `
inputs:
  path: {type: string, default: /srv}
  min_ok: {type: int, default: 2}
steps:
  - {name: probe, type: execute, targets: "${inputs.path}-hosts", command: disk_usage, params: {path: "${inputs.path}/data"}, on_failure: continue}
  - name: enough
    type: wait
    duration: 1s
    condition: steps.probe.succeeded >= inputs.min_ok && steps.probe.results.exists(r, r.output.contains("OK"))
  - name: bad exit
    type: wait
    duration: 1s
    condition: steps["probe"].results.exists(r, r.exit_code == 3) && steps.probe.status == "failed"
`)
	s := newSim(t, def, map[string]any{"path": "/var"})
	a := s.actions(ActIssueCommand)[0]
	if a.Params["path"] != "/var/data" || a.Targets[0] != "/var-hosts" {
		t.Fatalf("interpolation: %+v", a)
	}
	id := s.issue("probe", "a1", "a2", "a3")
	s.add(Event{Kind: EventCommandResult, CommandID: id, Agent: "a1", Status: "succeeded", Output: "fine\nOK"})
	s.result(id, "a2", "succeeded", 0)
	s.result(id, "a3", "failed", 3)
	s.wantStatus(map[string]StepStatus{"probe": StepFailed, "enough": StepRunning, "bad exit": StepPending})
	s.wait(time.Second)
	s.fireDue()
	s.wantStatus(map[string]StepStatus{"enough": StepSucceeded, "bad exit": StepRunning})
}

func TestConditionRuntimeError(t *testing.T) {
	def := mustLoad(t, "inputs: {n: {type: int}}\nsteps:\n  - {name: x, type: wait, duration: 1s, condition: \"10 / inputs.n > 1\"}\n")
	st := newSim(t, def, nil).state()
	if st.Status != ExecFailed || !strings.Contains(st.Steps["x"].Reason, "condition: division by zero") {
		t.Fatalf("%s %q", st.Status, st.Steps["x"].Reason)
	}
}

func TestPromptTimeout(t *testing.T) {
	def := mustLoad(t, `
steps:
  - {name: ask, type: prompt, message: "Reboot?", options: [Yes, No], timeout: 1h, default: "No"}
  - {name: reboot, type: execute, targets: all, command: reboot, condition: "promptResponse == 'Yes'"}
  - {name: strict, type: prompt, message: "Sure?", timeout: 1h}
`)
	s := newSim(t, def, nil)
	if a := s.actions(ActAwaitPrompt)[0]; !a.Deadline.Equal(t0.Add(time.Hour)) || *a.Default != "No" {
		t.Fatalf("await: %+v", a)
	}
	s.wait(time.Hour)
	s.fireDue()
	s.answer("ask", "Yes") // too late: the default was taken
	st := s.state()
	if st.Steps["ask"].Answer != "No" || st.Steps["reboot"].Status != StepSkipped || st.Steps["strict"].Status != StepAwaitingResponse || len(st.Ignored) != 1 {
		t.Fatalf("ask %+v, reboot %s, ignored %v", st.Steps["ask"], st.Steps["reboot"].Status, st.Ignored)
	}
	s.wait(time.Hour)
	s.fireDue()
	if st := s.state(); st.Status != ExecFailed || !strings.Contains(st.Reason, "no answer within 1h0m0s") {
		t.Fatalf("%s %s", st.Status, st.Reason)
	}
}

func TestCancel(t *testing.T) {
	s := newSim(t, loadFile(t, "interactive-system-update.json"), nil)
	s.runOK("Update package list", "a1")
	s.answer("User approval", "Yes")
	id := s.issue("Upgrade packages", "a1", "a2")
	s.result(id, "a1", "succeeded", 0)
	s.add(Event{Kind: EventCancelled, By: "carol", Reason: "maintenance window over"})
	s.wantStatus(map[string]StepStatus{
		"Update package list": StepSucceeded, "User approval": StepSucceeded,
		"Upgrade packages": StepCancelled, "Reboot confirmation": StepCancelled, "Reboot servers": StepCancelled,
	})
	st := s.state()
	if st.Status != ExecCancelled || st.Reason != "cancelled by carol: maintenance window over" || len(st.Timers) != 0 {
		t.Fatalf("%s %q %v", st.Status, st.Reason, st.Timers)
	}
	acts := s.next()
	if len(acts) != 2 || acts[0].Kind != ActCancelCommand || acts[0].CommandID != id || acts[1].Kind != ActFinish || acts[1].Status != ExecCancelled {
		t.Fatalf("actions: %+v", acts)
	}
	// Nothing after the cancel changes the outcome.
	s.answer("Reboot confirmation", "Yes")
	s.result(id, "a2", "succeeded", 0)
	if st := s.state(); st.Status != ExecCancelled || st.Steps["Upgrade packages"].Status != StepCancelled {
		t.Fatal("an event after the cancel changed the outcome")
	}
	if acts := s.next(); len(acts) != 1 {
		t.Fatalf("every agent reported, so no cancel is needed any more: %v", kinds(acts))
	}
}

func TestCancelBeforeAccepted(t *testing.T) {
	// Hub A issues the command while hub B records the cancel: the acceptance arrives after the cancel,
	// and the command it created must still be cancelled.
	s := newSim(t, loadFile(t, "simple-command-execution.json"), nil)
	a := s.actions(ActIssueCommand)[0]
	s.add(Event{Kind: EventCancelled, By: "carol"})
	if acts := s.next(); len(acts) != 1 || acts[0].Kind != ActFinish {
		t.Fatalf("issue after cancel: %v", kinds(acts))
	}
	s.add(Event{Kind: EventCommandAccepted, CommandID: a.CommandID, Agents: []string{"a1"}})
	if acts := s.next(); !hasKind(acts, ActCancelCommand, "Check disk space") {
		t.Fatalf("late acceptance not cancelled: %v", kinds(acts))
	}
}

func TestBadInputsFailTheExecution(t *testing.T) {
	def := mustLoad(t, "inputs: {v: {type: string, required: true}}\nsteps:\n  - {name: x, type: wait, duration: 1s}\n")
	st := newSim(t, def, map[string]any{"w": 1}).state()
	if st.Status != ExecFailed || !strings.Contains(st.Reason, "input v is required") || st.Steps["x"].Status != StepSkipped {
		t.Fatalf("%s %q %s", st.Status, st.Reason, st.Steps["x"].Status)
	}
}

// TestDeterminism: the same events give the same state and the same actions, on any hub and any number
// of times; repeated events (two hubs recording the same fact) and facts that arrive before the step
// is ready for them (clock skew between hubs) give the same decisions.
func TestDeterminism(t *testing.T) {
	def := loadFile(t, "interactive-system-update.yaml")
	s := newSim(t, def, map[string]any{"targets": "role=web"})
	id := s.issue("Update package list", "w1", "w2")
	s.result(id, "w1", "succeeded", 0)
	s.result(id, "w2", "failed", 1)
	s.wait(30 * time.Second)
	s.fireDue()

	// Two hubs fold the same events independently, with separately parsed definitions.
	def2 := loadFile(t, "interactive-system-update.yaml")
	st1, err1 := Fold(def, s.exec, s.events)
	st2, err2 := Fold(def2, s.exec, slices.Clone(s.events))
	if err1 != nil || err2 != nil || !reflect.DeepEqual(st1, st2) {
		t.Fatalf("two folds differ:\n%+v\n%+v", st1, st2)
	}
	a1, a2, a3 := Next(def, st1, s.now), Next(def2, st2, s.now), Next(def, st1, s.now)
	if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(a1, a3) {
		t.Fatalf("actions differ:\n%+v\n%+v\n%+v", a1, a2, a3)
	}
	if len(a1) != 2 || a1[0].Kind != ActIssueCommand || a1[0].Attempt != 2 || a1[0].Targets[0] != "role=web" || a1[0].TimeoutSeconds != 300 {
		t.Fatalf("want attempt 2 issued: %+v", a1)
	}

	// Both hubs perform the action and record it: the second record is ignored.
	acc := Event{Kind: EventCommandAccepted, CommandID: a1[0].CommandID, Agents: []string{"w1", "w2"}}
	s.add(acc)
	s.add(acc)
	res := Event{Kind: EventCommandResult, CommandID: a1[0].CommandID, Agent: "w1", Status: "succeeded"}
	s.add(res)
	s.add(res)
	st := s.state()
	if len(st.Ignored) != 2 || st.Steps["Update package list"].Status != StepRunning {
		t.Fatalf("duplicates: %+v %s", st.Ignored, st.Steps["Update package list"].Status)
	}

	// A result recorded (by a hub with a slower clock) before the acceptance it depends on.
	events := slices.Clone(s.events)
	late := Event{ID: "zz-late", At: s.now, Kind: EventCommandResult, CommandID: a1[0].CommandID, Agent: "w2", Status: "succeeded"}
	events = slices.Insert(events, len(events)-4, late)
	stSkew, err := Fold(def, s.exec, events)
	if err != nil || stSkew.Steps["Update package list"].Status != StepSucceeded || stSkew.Steps["User approval"].Status != StepAwaitingResponse {
		t.Fatalf("early result: %v %+v", err, stSkew.Steps["Update package list"])
	}
}

func TestEarlyAnswer(t *testing.T) {
	// An answer recorded by a hub whose clock is behind sorts before the result that made the prompt
	// visible; it is held until the prompt is reached.
	def := loadFile(t, "interactive-system-update.json")
	s := newSim(t, def, nil)
	id := s.issue("Update package list", "a1")
	s.answer("User approval", "Yes")
	s.result(id, "a1", "succeeded", 0)
	s.wantStatus(map[string]StepStatus{"User approval": StepSucceeded, "Upgrade packages": StepRunning})
}

func TestIDs(t *testing.T) {
	a, b := CommandID("e1", "s", 1), CommandID("e1", "s", 2)
	c, d := CommandID("e2", "s", 1), TimerID("e1", "s", 1, TimerTimeout)
	if a == b || a == c || a == d || a != CommandID("e1", "s", 1) {
		t.Fatal("ids collide or are not stable")
	}
	for _, id := range []string{a, b, c, d, PromptID("e1", "Step with spaces/and slashes")} {
		if !hubIDRE.MatchString(id) {
			t.Fatalf("%q is not a valid hub id", id)
		}
	}
}

func TestNestedParallelWithoutCatalog(t *testing.T) {
	// Parse alone is enough for the engine; conditions compile on first use.
	def, err := Parse([]byte(`
steps:
  - name: outer
    type: parallel
    branches:
      - name: inner
        type: parallel
        branches:
          - {name: w1, type: wait, duration: 1s}
          - {name: w2, type: wait, duration: 2s}
      - {name: w3, type: wait, duration: 3s, condition: "steps.w1.status == 'running'"}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := newSim(t, def, nil)
	if n := len(s.actions(ActSetTimer)); n != 3 {
		t.Fatalf("want 3 timers at once, got %v", kinds(s.next()))
	}
	s.wait(2 * time.Second)
	s.fireDue()
	s.wantStatus(map[string]StepStatus{"inner": StepSucceeded, "outer": StepRunning, "w3": StepRunning})
	s.wait(time.Second)
	s.fireDue()
	if st := s.state(); st.Status != ExecSucceeded || st.NextWake() != (time.Time{}) {
		t.Fatalf("%s %s", st.Status, st.Reason)
	}
}

func TestDefinitionJSON(t *testing.T) {
	def := loadFile(t, "interactive-system-update.yaml")
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	// What the API shows can be applied again.
	again, err := Load(b, testCatalog)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	b2, _ := json.Marshal(again)
	if string(b) != string(b2) {
		t.Fatalf("round trip differs:\n%s\n%s", b, b2)
	}
}
