package events

import (
	"testing"
	"time"
)

// TestResumePoint: a Last-Event-ID resumes after the update it names; anything that is not one of
// ours (a stale or forged header) resumes from the start rather than skipping states.
func TestResumePoint(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(ms) }
	cases := []struct {
		lastID string
		ms     int64
		agent  string
		after  bool
	}{
		{"", 5, "ag-1", true},
		{"garbage", 5, "ag-1", true},
		{"x-ag-1", 5, "ag-1", true},
		{"5-ag-1", 5, "ag-1", false}, // the very update the client has
		{"5-ag-1", 5, "ag-2", true},  // same moment, a later agent
		{"5-ag-2", 5, "ag-1", false},
		{"5-ag-1", 4, "ag-9", false},
		{"5-ag-1", 6, "ag-0", true},
		{"1700000000000-ag-0a1b", 1700000000001, "ag-0000", true},
		{UpdateID(at(42), "ag-7"), 42, "ag-7", false},
	}
	for _, c := range cases {
		if got := ResumeFrom(c.lastID).After(at(c.ms), c.agent); got != c.after {
			t.Errorf("resume from %q: update (%d, %s) sent = %v, want %v", c.lastID, c.ms, c.agent, got, c.after)
		}
	}
}
