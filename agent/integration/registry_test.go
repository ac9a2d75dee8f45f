package integration_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/integration"
)

func newProbe() integration.Integration { return &probe{} }

func panicMessage(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

func TestRegisterRefuses(t *testing.T) {
	cases := []struct {
		name string
		m    integration.Module
		want string
	}{
		{"empty id", integration.Module{ID: "", New: newProbe}, "id must be lower-case"},
		{"upper case", integration.Module{ID: "Test_x", New: newProbe}, "id must be lower-case"},
		{"leading digit", integration.Module{ID: "1test", New: newProbe}, "id must be lower-case"},
		{"dash", integration.Module{ID: "test-x", New: newProbe}, "id must be lower-case"},
		{"no room for refresh", integration.Module{ID: "test_" + strings.Repeat("x", 51), New: newProbe}, "no room for"},
		{"nil New", integration.Module{ID: "test_nil_new"}, "New is nil"},
		{"duplicate", integration.Module{ID: "test_a", New: newProbe}, "already registered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := panicMessage(func() { integration.Register(tc.m) })
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("Register(%q) panic = %q, want it to contain %q", tc.m.ID, msg, tc.want)
			}
		})
	}
	for _, m := range integration.Modules() {
		if m.ID == "test_nil_new" {
			t.Fatal("a refused module was registered anyway")
		}
	}
}

func TestModulesSortedByID(t *testing.T) {
	ms := integration.Modules()
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("Modules() not sorted: %v", ids)
	}
	for _, want := range []string{"test_a", "test_b", "test_run"} {
		if !slices.Contains(ids, want) {
			t.Errorf("Modules() = %v, missing %s", ids, want)
		}
	}
}
