package delivery

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/layout"
)

func TestBellKeysOrderByTime(t *testing.T) {
	now := time.Now()
	before := layout.BellAt(now.Add(-time.Second))
	key := layout.Bell(uuid.Must(uuid.NewV7()).String())
	after := layout.BellAt(now.Add(time.Second))
	if !(before < key && key < after) {
		t.Fatalf("bell key %s not between %s and %s", key, before, after)
	}
	if at, ok := bellTime(key); !ok || at.Sub(now).Abs() > time.Second {
		t.Fatalf("bellTime(%s) = %v %v", key, at, ok)
	}
}

func TestValidIDs(t *testing.T) {
	for _, id := range []string{"", "a/b", "..", "x.json", strings.Repeat("a", 65), "a b"} {
		if layout.ValidID(id) {
			t.Errorf("validID(%q) = true", id)
		}
	}
	for _, id := range []string{"ag-0123abcd", "01a20358-c47e-71d3-a67a-bcc563421fa5", "x_y"} {
		if !layout.ValidID(id) {
			t.Errorf("validID(%q) = false", id)
		}
	}
	for name, want := range map[string]bool{"001767225600-abc-w1": true, "001767225600-abc-cancel": true, "../x": false, "x.json": false, "": false,
		strings.Repeat("a", 161): false} {
		if validAck(name) != want {
			t.Errorf("validAck(%q) != %v", name, want)
		}
	}
}
