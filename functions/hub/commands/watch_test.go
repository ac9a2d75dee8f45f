package commands

import (
	"fmt"
	"testing"
)

// TestResumePoint: a Last-Event-ID resumes after the update it names; anything that is not one of
// ours (a stale or forged header) resumes from the start rather than skipping states.
func TestResumePoint(t *testing.T) {
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
	}
	for _, c := range cases {
		ms, agent := parseUpdateID(c.lastID)
		if got := after(c.ms, c.agent, ms, agent); got != c.after {
			t.Errorf("resume from %q: update (%d, %s) sent = %v, want %v", c.lastID, c.ms, c.agent, got, c.after)
		}
	}
}

// TestPairsStartOverWhenFull: a bounded cache of pairs never holds more than its bound; a pair it
// dropped reads as unknown (the caller reads the store), never as a wrong answer.
func TestPairsStartOverWhenFull(t *testing.T) {
	var p pairs[int]
	for i := range 10 {
		p.addUpTo("c", fmt.Sprint(i), i, 4)
		if len(p.m) > 4 {
			t.Fatalf("%d pairs kept, bound 4", len(p.m))
		}
	}
	if v, ok := p.get("c", "9"); !ok || v != 9 {
		t.Fatalf("the newest pair: %v %v", v, ok)
	}
	if _, ok := p.get("c", "0"); ok {
		t.Fatal("a pair from before the cache started over is still answered")
	}
}
