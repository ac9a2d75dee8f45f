package layout_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/layout"
)

// TestDocumentedPrefixes keeps docs/protocol.md's key table true: every prefix the layout defines
// must appear there as the start of a key in the table.
func TestDocumentedPrefixes(t *testing.T) {
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.SplitN(line, "|", 3)[1]
		for _, part := range strings.Split(cell, "`") {
			if strings.Contains(part, "/") || strings.HasSuffix(part, "…") {
				keys = append(keys, strings.TrimSpace(part))
			}
		}
	}
	if len(keys) < 10 {
		t.Fatalf("found only %d keys in docs/protocol.md's table; the check would prove nothing", len(keys))
	}
	for _, p := range layout.Prefixes() {
		short := strings.TrimPrefix(p.Path, "v1/")
		found := false
		for _, k := range keys {
			found = found || strings.HasPrefix(k, short)
		}
		if !found {
			t.Errorf("docs/protocol.md's key table lists no key under %s (%s)", p.Path, p.What)
		}
	}
}

func TestPrefixesEndInSlashAndAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range layout.Prefixes() {
		if !strings.HasPrefix(p.Path, "v1/") || !strings.HasSuffix(p.Path, "/") || seen[p.Path] {
			t.Errorf("prefix %q: want v1/…/, once", p.Path)
		}
		seen[p.Path] = true
	}
}

// TestKeysSortByTime: bells and audit records are found by listing from a key computed from a time;
// that only works if the computed key sorts between keys written just before and just after.
func TestKeysSortByTime(t *testing.T) {
	now := time.Now().UTC()
	cases := []struct {
		name          string
		at            func(time.Time) string
		before, after string
	}{
		{"bell", layout.BellAt, layout.BellAt(now.Add(-time.Second)), layout.BellAt(now.Add(time.Second))},
		{"audit", layout.AuditAt, layout.AuditAt(now.Add(-time.Second)), layout.AuditAt(now.Add(time.Second))},
		{"event", func(t time.Time) string { return layout.EventsSince("x", t) }, layout.Event("x", eventID(now.Add(-time.Millisecond))), layout.Event("x", eventID(now))},
	}
	for _, c := range cases {
		if k := c.at(now); !(c.before < k && k < c.after) {
			t.Errorf("%s: %s not between %s and %s", c.name, k, c.before, c.after)
		}
	}
}

// eventID is a UUIDv7 made at t.
func eventID(t time.Time) string {
	u := uuid.Must(uuid.NewV7())
	ms := t.UnixMilli()
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	return u.String()
}

// TestEventTime: an event key's time is its UUIDv7's, to the millisecond; other names have none.
func TestEventTime(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	cases := []struct {
		key  string
		want time.Time
		ok   bool
	}{
		{layout.Event("x", eventID(now)), now, true},
		{layout.Event("x", uuid.Must(uuid.NewV7()).String()), time.Time{}, true},
		{layout.Event("x", uuid.NewString()), time.Time{}, false},
		{layout.Event("x", "zzzz"), time.Time{}, false},
	}
	for _, c := range cases {
		got, ok := layout.EventTime(c.key)
		if ok != c.ok || (!c.want.IsZero() && !got.Equal(c.want)) {
			t.Errorf("EventTime(%s) = %v %v, want %v %v", c.key, got, ok, c.want, c.ok)
		}
	}
}

func TestName(t *testing.T) {
	for key, want := range map[string]string{
		layout.Agent("ag-1"):                 "ag-1",
		layout.Chunk("c", "a", 7):            "0000000007",
		layout.WorkflowVersion("w", 3):       "000003",
		layout.PlanVersion("web", 12):        "000012",
		layout.PlanStatus("web", "ag-1"):     "ag-1",
		layout.PlanRolloutEvent("web", 2, 3): "0003",
		layout.AuditRecord(time.Now(), "x"):  "x",
	} {
		if got := layout.Name(key); got != want {
			t.Errorf("Name(%s) = %s, want %s", key, got, want)
		}
	}
}
