package workflows

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/layout"
)

// TestTickReadsWriteOnceObjectsOnce: a tick lists the active executions once, and reads each
// workflow's newest version and parses it once per process, not once per use per tick: a second
// tick over the same bucket reads no object at all, only listings (the active executions, the events
// of the one active, every workflow version, the scheduled workflow's fires).
func TestTickReadsWriteOnceObjectsOnce(t *testing.T) {
	b := newBench(t, 2)
	b.run(time.Now().Add(-time.Hour))
	b.create(layout.ActiveExecution(b.id), map[string]any{"workflow": "w"})
	b.create(layout.WorkflowVersion("nightly", 1), Version{Name: "nightly", Version: 1, AppliedAt: time.Now().UTC(),
		Source: "schedule: {cron: '@yearly'}\nsteps:\n  - {name: w, type: wait, duration: 1s}\n"})
	s := &Service{Store: b.store, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if n := s.Tick(b.ctx); n != 1 {
		t.Fatalf("first tick: %d active, want 1", n)
	}
	b.store.reset()
	if n := s.Tick(b.ctx); n != 1 {
		t.Fatalf("second tick: %d active, want 1", n)
	}
	if g, l, p, d := b.store.gets.Load(), b.store.lists.Load(), b.store.puts.Load(), b.store.deletes.Load(); g != 0 || l != 4 || p != 0 || d != 0 {
		t.Errorf("second tick: %d reads, %d listings, %d writes, %d deletes; want 0, 4, 0, 0", g, l, p, d)
	}
	if got := s.mem.get().defs.len(); got != 2 {
		t.Errorf("%d parsed definitions kept, want 2 (w and nightly)", got)
	}
}
