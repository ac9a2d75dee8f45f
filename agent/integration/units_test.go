package integration_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// Unit-owning test modules: each declares the unit types its table names and records the state
// directory it was given.
func init() {
	for _, id := range []string{"test_units_a", "test_units_b"} {
		integration.Register(integration.Module{ID: id, New: func() integration.Integration { return &owner{id: id} }})
	}
	for _, id := range []string{"test_units_s", "test_units_t"} {
		integration.Register(integration.Module{ID: id, New: func() integration.Integration { return &statefulOwner{owner{id: id}} }})
	}
}

type owner struct {
	id  string
	cfg struct {
		Enabled  bool     `toml:"enabled"`
		Types    []string `toml:"types"`
		DirError string   `toml:"dir_error"`
	}
}

// statefulOwner also keeps records, in the directory Load gives it.
type statefulOwner struct{ owner }

var (
	_ integration.Reconciler = (*owner)(nil)
	_ integration.Stateful   = (*statefulOwner)(nil)
)

func (o *owner) Configure(raw map[string]any) error { return integration.DecodeConfig(raw, &o.cfg) }
func (o *owner) Enabled() bool                      { return o.cfg.Enabled }
func (o *owner) UnitTypes() []string                { return o.cfg.Types }
func (o *owner) CheckUnit(wire.Unit) error          { return nil }
func (o *owner) Observe(context.Context, wire.Unit) (integration.Observation, error) {
	return integration.Observation{InState: true, Detail: o.id}, nil
}
func (o *owner) Apply(context.Context, wire.Unit) error { return nil }
func (o *statefulOwner) UseStateDir(dir string) error {
	if o.cfg.DirError != "" {
		return errors.New(o.cfg.DirError)
	}
	return os.WriteFile(filepath.Join(dir, "record"), []byte(o.id), 0o600)
}

func observedBy(t *testing.T, s *integration.Set, unitType string) string {
	t.Helper()
	r, err := s.Reconciler(unitType)
	if err != nil {
		t.Fatalf("Reconciler(%s): %v", unitType, err)
	}
	obs, _ := r.Observe(context.Background(), wire.Unit{})
	return obs.Detail
}

func TestUnitTypesHaveOneOwner(t *testing.T) {
	s := integration.Load(context.Background(), map[string]any{
		"test_units_a": map[string]any{"enabled": true, "types": []any{"widget", "gadget"}},
		"test_units_b": map[string]any{"enabled": true, "types": []any{"gadget"}},
	}, nil)
	if got := observedBy(t, s, "widget"); got != "test_units_a" {
		t.Fatalf("widget owned by %s", got)
	}
	if got := observedBy(t, s, "gadget"); got != "test_units_a" {
		t.Fatalf("gadget owned by %s, want the integration loaded first", got)
	}
	if st := status(t, s, "test_units_b"); st.Enabled || !strings.Contains(st.Reason, "gadget is already owned by integration test_units_a") {
		t.Fatalf("test_units_b = %+v", st)
	}
	if got := s.UnitTypes(); !slices.Equal(got, []string{"gadget", "widget"}) {
		t.Fatalf("UnitTypes = %v", got)
	}
	if n := len(s.Reconcilers()); n != 1 {
		t.Fatalf("%d reconcilers, want 1", n)
	}
}

func TestReconcilerRefusalsSayWhy(t *testing.T) {
	cases := []struct {
		name   string
		tables map[string]any
		typ    string
		want   string
	}{
		{"nobody owns it", map[string]any{"test_units_a": map[string]any{"enabled": true, "types": []any{"widget"}}},
			"container", `unit type "container" is not allowed here: no integration of this agent owns it (unit types it allows: widget)`},
		{"nothing owns anything", nil, "file", "(unit types it allows: none)"},
		{"its owner is off", map[string]any{"test_units_a": map[string]any{"types": []any{"widget"}}},
			"widget", "integration test_units_a, which owns it, is not running on this agent: not enabled by its configuration"},
		{"its owner is broken", map[string]any{"test_units_s": map[string]any{"enabled": true, "types": []any{"widget"}}},
			"widget", "integration test_units_s, which owns it, is not running on this agent: it keeps records across restarts and the agent gave it no state directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := integration.Load(context.Background(), tc.tables, nil)
			if _, err := s.Reconciler(tc.typ); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reconciler(%s) error = %v, want it to mention %q", tc.typ, err, tc.want)
			}
		})
	}
}

func TestBadUnitTypeDeclarationsDisable(t *testing.T) {
	cases := []struct {
		name  string
		types []any
		want  string
	}{
		{"none", []any{}, "declares no unit type"},
		{"bad name", []any{"Widget"}, `"Widget" is not a valid unit type name`},
		{"twice", []any{"widget", "widget"}, "widget declared twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := integration.Load(context.Background(), map[string]any{"test_units_a": map[string]any{"enabled": true, "types": tc.types}}, nil)
			if st := status(t, s, "test_units_a"); st.Enabled || !strings.Contains(st.Reason, tc.want) {
				t.Fatalf("status = %+v, want disabled mentioning %q", st, tc.want)
			}
		})
	}
}

func TestStatefulIntegrationsGetTheirOwnDirectory(t *testing.T) {
	root := filepath.Join(t.TempDir(), "integrations")
	s := integration.Load(context.Background(), map[string]any{
		"test_units_s": map[string]any{"enabled": true, "types": []any{"widget"}},
		"test_units_t": map[string]any{"enabled": true, "types": []any{"gadget"}, "dir_error": "records unreadable"},
	}, nil, integration.WithStateDir(root))
	if st := status(t, s, "test_units_s"); !st.Enabled {
		t.Fatalf("test_units_s = %+v", st)
	}
	fi, err := os.Stat(filepath.Join(root, "test_units_s"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("its directory: %v, %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "test_units_s", "record")); err != nil || string(b) != "test_units_s" {
		t.Fatalf("record in its directory: %q, %v", b, err)
	}
	if st := status(t, s, "test_units_t"); st.Enabled || !strings.Contains(st.Reason, "records unreadable") {
		t.Fatalf("test_units_t = %+v", st)
	}
}

func TestMinimalEnv(t *testing.T) {
	t.Setenv("PULSE_SECRET_FOR_TEST", "hunter2")
	env := integration.MinimalEnv("K=v")
	if !slices.Contains(env, "K=v") || slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PULSE_SECRET_FOR_TEST=") }) {
		t.Fatalf("MinimalEnv = %v", env)
	}
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		t.Fatalf("MinimalEnv has no PATH: %v", env)
	}
}
