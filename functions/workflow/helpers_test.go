package workflow

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// testCatalog is what the fleet in these tests offers: whitelisted stand-ins for the seed's shell lines.
var testCatalog = SpecsOf([]wire.CommandSpec{
	{Name: "apt_update", Group: "exec"},
	{Name: "apt_upgrade", Group: "exec", Params: []wire.ParamSpec{{Name: "assume_yes", Pattern: "true|false"}}},
	{Name: "reboot", Group: "exec", Dangerous: true, Params: []wire.ParamSpec{{Name: "delay_minutes", Pattern: "[0-9]{1,3}"}}},
	{Name: "disk_usage", Group: "exec", Params: []wire.ParamSpec{{Name: "path", Pattern: "/[a-zA-Z0-9/._-]*", MaxBytes: 256, Required: true}}},
	{Name: "host_uptime", Group: "host"},
	{Name: "backup_create", Group: "exec", Params: []wire.ParamSpec{
		{Name: "source", Pattern: "/[a-zA-Z0-9/._-]*", Required: true},
		{Name: "archive_dir", Pattern: "/[a-zA-Z0-9/._-]*", Required: true},
	}},
	{Name: "backup_verify", Group: "exec", Params: []wire.ParamSpec{{Name: "archive_dir", Pattern: "/[a-zA-Z0-9/._-]*", Required: true}}},
	{Name: "backup_prune", Group: "exec", Params: []wire.ParamSpec{
		{Name: "archive_dir", Pattern: "/[a-zA-Z0-9/._-]*", Required: true},
		{Name: "older_than_days", Pattern: "[0-9]{1,4}", Required: true},
	}},
})

func mustLoad(t testing.TB, src string) *Definition {
	t.Helper()
	d, err := Load([]byte(src), testCatalog)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return d
}

func loadFile(t testing.TB, name string) *Definition {
	t.Helper()
	src, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return mustLoad(t, string(src))
}

var hubIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var t0 = time.Date(2025, 11, 30, 12, 0, 0, 0, time.UTC)

// sim plays the hub: it records events with increasing ids and times, folds, and asks Next.
type sim struct {
	t      testing.TB
	def    *Definition
	exec   string
	events []Event
	now    time.Time

	folder *Folder // fed the events as they come, checked against Fold in state
	folded int     // how many events folder has
}

func newSim(t testing.TB, def *Definition, inputs map[string]any) *sim {
	s := &sim{t: t, def: def, exec: "0199e2a4-exec", now: t0}
	s.add(Event{Kind: EventStarted, Inputs: inputs, By: "alice"})
	return s
}

func (s *sim) add(ev Event) *State {
	s.t.Helper()
	if ev.ID == "" {
		ev.ID = fmt.Sprintf("ev-%04d", len(s.events))
	}
	if ev.At.IsZero() {
		ev.At = s.now
	}
	s.events = append(s.events, ev)
	return s.state()
}

func (s *sim) state() *State {
	s.t.Helper()
	st, err := Fold(s.def, s.exec, s.events)
	if err != nil {
		s.t.Fatalf("fold: %v", err)
	}
	// Every scenario also checks the incremental fold the hub uses: the events since the last look,
	// added to a Folder that has seen the earlier ones, give exactly Fold's state.
	if s.folder == nil {
		if s.folder, err = NewFolder(s.def, s.exec); err != nil {
			s.t.Fatalf("new folder: %v", err)
		}
	}
	s.folder.Add(s.events[s.folded:]...)
	s.folded = len(s.events)
	if inc := s.folder.State(); !reflect.DeepEqual(inc, st) {
		s.t.Fatalf("after %d events the incremental fold differs from Fold:\n%+v\nwant\n%+v", len(s.events), inc, st)
	}
	return st
}

func (s *sim) next() []Action { return Next(s.def, s.state(), s.now) }

func (s *sim) wait(d time.Duration) { s.now = s.now.Add(d) }

// actions returns the actions of a kind.
func (s *sim) actions(kind ActionKind) []Action {
	var out []Action
	for _, a := range s.next() {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

// issue performs the issue_command action for step, accepting it on agents; it returns the command id.
func (s *sim) issue(step string, agents ...string) string {
	s.t.Helper()
	for _, a := range s.actions(ActIssueCommand) {
		if a.Step == step {
			if !hubIDRE.MatchString(a.CommandID) {
				s.t.Fatalf("command id %q is not a valid hub id", a.CommandID)
			}
			s.add(Event{Kind: EventCommandAccepted, CommandID: a.CommandID, Agents: agents})
			return a.CommandID
		}
	}
	s.t.Fatalf("no issue_command for %q in %+v", step, s.next())
	return ""
}

// result records one agent's result.
func (s *sim) result(cmd, agent, status string, code int) *State {
	return s.add(Event{Kind: EventCommandResult, CommandID: cmd, Agent: agent, Status: status, ExitCode: &code})
}

// runOK issues step on agents and makes every agent succeed.
func (s *sim) runOK(step string, agents ...string) string {
	s.t.Helper()
	id := s.issue(step, agents...)
	for _, a := range agents {
		s.result(id, a, "succeeded", 0)
	}
	return id
}

func (s *sim) answer(step, answer string) *State {
	return s.add(Event{Kind: EventPromptAnswered, Step: step, Answer: answer, AnsweredBy: "bob"})
}

// fireDue records timer_fired for every due timer, as the tick does.
func (s *sim) fireDue() int {
	n := 0
	for _, a := range s.actions(ActFireTimer) {
		s.add(Event{Kind: EventTimerFired, Timer: a.TimerID})
		n++
	}
	return n
}

func (s *sim) status(step string) StepStatus { return s.state().Steps[step].Status }

func (s *sim) wantStatus(want map[string]StepStatus) {
	s.t.Helper()
	st := s.state()
	for step, w := range want {
		if got := st.Steps[step].Status; got != w {
			s.t.Errorf("step %q: %s (%s), want %s", step, got, st.Steps[step].Reason, w)
		}
	}
}

func kinds(acts []Action) []string {
	var out []string
	for _, a := range acts {
		out = append(out, string(a.Kind)+":"+a.Step)
	}
	return out
}

func hasKind(acts []Action, kind ActionKind, step string) bool {
	return slices.ContainsFunc(acts, func(a Action) bool { return a.Kind == kind && a.Step == step })
}
