package workflow

import (
	"reflect"
	"testing"
	"time"
)

// folderScenarios are whole executions, recorded by the sim, to fold in pieces.
func folderScenarios(t *testing.T) map[string]*sim {
	t.Helper()
	update := newSim(t, loadFile(t, "interactive-system-update.json"), nil)
	update.runOK("Update package list", "web-1", "web-2")
	update.answer("User approval", "Yes")
	update.runOK("Upgrade packages", "web-1", "web-2")
	update.answer("Reboot confirmation", "No")

	cancelled := newSim(t, loadFile(t, "interactive-system-update.json"), nil)
	cancelled.runOK("Update package list", "a1")
	cancelled.answer("User approval", "Yes")
	id := cancelled.issue("Upgrade packages", "a1", "a2")
	cancelled.result(id, "a1", "succeeded", 0)
	cancelled.add(Event{Kind: EventCancelled, By: "carol", Reason: "maintenance window over"})
	cancelled.result(id, "a1", "succeeded", 0) // a repeat, ignored
	cancelled.add(cancelled.events[3])         // an event listed twice

	retry := newSim(t, mustLoad(t, "steps:\n  - {name: up, type: execute, command: host_uptime, targets: [all], retry: {attempts: 3, backoff: 10s}}\n"), nil)
	for range 2 {
		cmd := retry.issue("up", "a1")
		retry.result(cmd, "a1", "failed", 1)
		retry.wait(time.Minute)
		retry.fireDue()
	}
	retry.runOK("up", "a1")
	return map[string]*sim{"prompts and commands": update, "cancelled with repeats": cancelled, "retries and timers": retry}
}

// TestFolderMatchesFold: however an execution's events are cut into batches, adding them to a Folder
// gives exactly Fold's state, and a State taken along the way is not changed by later batches.
func TestFolderMatchesFold(t *testing.T) {
	cuts := []struct {
		name  string
		sizes func(n int) []int // batch sizes, summing to n
	}{
		{"all at once", func(n int) []int { return []int{n} }},
		{"one at a time", func(n int) []int {
			out := make([]int, n)
			for i := range out {
				out[i] = 1
			}
			return out
		}},
		{"halves", func(n int) []int { return []int{n / 2, n - n/2} }},
		{"empty batches between", func(n int) []int { return []int{0, 1, 0, n - 1, 0} }},
	}
	for name, s := range folderScenarios(t) {
		for _, c := range cuts {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				f, err := NewFolder(s.def, s.exec)
				if err != nil {
					t.Fatal(err)
				}
				at := 0
				type snap struct {
					n  int
					st *State
				}
				var snaps []snap
				for _, size := range c.sizes(len(s.events)) {
					f.Add(s.events[at : at+size]...)
					at += size
					snaps = append(snaps, snap{at, f.State()})
				}
				want, err := Fold(s.def, s.exec, s.events)
				if err != nil {
					t.Fatal(err)
				}
				if got := f.State(); !reflect.DeepEqual(got, want) {
					t.Fatalf("incremental state differs from Fold:\n%+v\nwant\n%+v", got, want)
				}
				for _, sn := range snaps {
					want, _ := Fold(s.def, s.exec, s.events[:sn.n])
					if !reflect.DeepEqual(sn.st, want) {
						t.Errorf("the state taken after %d events changed when more were added", sn.n)
					}
				}
			})
		}
	}
}

// TestNewFolderRefusesWhatFoldRefuses: a definition that did not come from Parse, or no execution id.
func TestNewFolderRefusesWhatFoldRefuses(t *testing.T) {
	def := mustLoad(t, "steps:\n  - {name: w, type: wait, duration: 1s}\n")
	for _, c := range []struct {
		name string
		def  *Definition
		exec string
	}{
		{"definition not parsed", &Definition{}, "x"},
		{"nil definition", nil, "x"},
		{"no execution", def, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, ferr := NewFolder(c.def, c.exec)
			_, err := Fold(c.def, c.exec, nil)
			if ferr == nil || err == nil || ferr.Error() != err.Error() {
				t.Fatalf("NewFolder: %v, Fold: %v", ferr, err)
			}
		})
	}
}
