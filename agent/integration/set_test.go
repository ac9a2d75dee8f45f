package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

func status(t *testing.T, s *integration.Set, id string) wire.IntegrationStatus {
	t.Helper()
	for _, st := range s.Statuses() {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("no status for %s in %+v", id, s.Statuses())
	return wire.IntegrationStatus{}
}

func catalogNames(s *integration.Set) []string {
	var names []string
	for _, c := range s.Catalog() {
		names = append(names, c.Name)
	}
	return names
}

// run runs a command and returns its result and output.
func run(t *testing.T, s *integration.Set, name string, params map[string]string) (integration.RunResult, string) {
	t.Helper()
	var out bytes.Buffer
	res := s.Run(context.Background(), wire.Command{CommandID: "c-" + name, Name: name, Params: params}, &out)
	return res, out.String()
}

func TestSoftDisable(t *testing.T) {
	cases := []struct {
		name  string
		table any
		want  string
	}{
		{"configure error", map[string]any{"enabled": true, "configure_error": "listen address missing"}, "configuration: listen address missing"},
		{"unknown config key", map[string]any{"enabled": true, "enabeld": true}, `configuration: unknown key "enabeld"`},
		{"config not a table", "yes please", "must be a table"},
		{"configure panics", map[string]any{"enabled": true, "panic_in": "configure"}, "panic in Configure: configure exploded"},
		{"enabled panics", map[string]any{"enabled": true, "panic_in": "enabled"}, "panic in Enabled"},
		{"precondition error", map[string]any{"enabled": true, "precondition_error": "widget binary not found"}, "precondition failed: widget binary not found"},
		{"precondition panics", map[string]any{"enabled": true, "panic_in": "precondition"}, "panic in Precondition"},
		{"commands error", map[string]any{"enabled": true, "commands_error": "spec file unreadable"}, "commands: spec file unreadable"},
		{"commands panics", map[string]any{"enabled": true, "panic_in": "commands"}, "panic in Commands: assignment to entry in nil map"},
		{"command in another group", map[string]any{"enabled": true, "group": "test_b"}, `has group "test_b"; it must be the integration's id "test_a"`},
		{"zero command", map[string]any{"enabled": true, "zero_command": true}, "not built with NewJob or NewSubprocess"},
		{"declares its refresh", map[string]any{"enabled": true, "declare_refresh": true}, "test_a_refresh is synthesized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := integration.Load(context.Background(), map[string]any{
				"test_a": tc.table,
				"test_b": map[string]any{"enabled": true},
			}, nil)

			a := status(t, s, "test_a")
			if a.Enabled || !strings.Contains(a.Reason, tc.want) {
				t.Fatalf("test_a status = %+v, want disabled with reason containing %q", a, tc.want)
			}
			for _, n := range catalogNames(s) {
				if strings.HasPrefix(n, "test_a") {
					t.Errorf("disabled integration's command %s is in the catalog", n)
				}
			}
			if res, _ := run(t, s, "test_a_echo", nil); res.Status != wire.StatusRejected {
				t.Errorf("disabled integration's command ran: %+v", res)
			}

			if b := status(t, s, "test_b"); !b.Enabled {
				t.Fatalf("test_b was taken down with test_a: %+v", b)
			}
			res, out := run(t, s, "test_b_echo", nil)
			if res.Status != wire.StatusSucceeded || out != "hello from test_b\n" {
				t.Fatalf("test_b_echo = %+v %q", res, out)
			}
		})
	}
}

func TestConstructorFailuresDisable(t *testing.T) {
	s := integration.Load(context.Background(), nil, nil)
	if st := status(t, s, "test_newnil"); st.Enabled || !strings.Contains(st.Reason, "New returned nil") {
		t.Errorf("test_newnil = %+v", st)
	}
	if st := status(t, s, "test_newpanic"); st.Enabled || !strings.Contains(st.Reason, "panic in New: constructor exploded") {
		t.Errorf("test_newpanic = %+v", st)
	}
	if st := status(t, s, "test_a"); st.Enabled || st.Reason != "not enabled by its configuration" {
		t.Errorf("test_a without a table = %+v", st)
	}
}

func TestDuplicateCommandAcrossIntegrations(t *testing.T) {
	s := integration.Load(context.Background(), map[string]any{
		"test_a": map[string]any{"enabled": true, "command": "test_shared"},
		"test_b": map[string]any{"enabled": true, "command": "test_shared"},
	}, nil)
	if st := status(t, s, "test_a"); !st.Enabled {
		t.Fatalf("first owner of the name was disabled: %+v", st)
	}
	b := status(t, s, "test_b")
	if b.Enabled || !strings.Contains(b.Reason, "command test_shared is already provided by integration test_a") {
		t.Fatalf("test_b = %+v", b)
	}
	res, out := run(t, s, "test_shared", nil)
	if res.Status != wire.StatusSucceeded || out != "hello from test_a\n" {
		t.Fatalf("test_shared = %+v %q", res, out)
	}
	if slices.Contains(catalogNames(s), "test_b_refresh") {
		t.Fatal("the disabled integration's synthesized refresh is in the catalog")
	}
}

func TestCatalogAndStatuses(t *testing.T) {
	s := integration.Load(context.Background(), map[string]any{
		"test_a":   map[string]any{"enabled": true},
		"test_b":   map[string]any{"enabled": true, "precondition_error": "nope"},
		"test_run": map[string]any{},
	}, nil)

	names := catalogNames(s)
	if !slices.IsSorted(names) {
		t.Errorf("catalog not sorted: %v", names)
	}
	for _, want := range []string{"test_a_echo", "test_a_refresh", "test_run_argv", "test_run_job_ok"} {
		if !slices.Contains(names, want) {
			t.Errorf("catalog %v lacks %s", names, want)
		}
	}
	for _, c := range s.Catalog() {
		if err := c.Check(); err != nil {
			t.Errorf("catalog entry %s does not pass wire's own check: %v", c.Name, err)
		}
	}

	var ids []string
	for _, st := range s.Statuses() {
		ids = append(ids, st.ID)
		if !st.Enabled && st.Reason == "" {
			t.Errorf("%s disabled without a reason", st.ID)
		}
	}
	if !slices.IsSorted(ids) {
		t.Errorf("statuses not sorted: %v", ids)
	}
	registered := len(integration.Modules())
	if len(ids) != registered {
		t.Errorf("%d statuses for %d registered integrations", len(ids), registered)
	}
}

func TestUnknownTablesAreWarned(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := integration.Load(context.Background(), map[string]any{
		"test_a":   map[string]any{"enabled": true},
		"garage":   map[string]any{"admin": "x"},
		"test_zzz": map[string]any{},
	}, log)
	if got := s.UnknownTables(); !slices.Equal(got, []string{"garage", "test_zzz"}) {
		t.Fatalf("UnknownTables = %v", got)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "table=garage") {
		t.Fatalf("no warning logged for unknown tables:\n%s", logs.String())
	}
}

func TestRefreshPrintsCollectedStateAsJSON(t *testing.T) {
	s := integration.Load(context.Background(), map[string]any{"test_a": map[string]any{"enabled": true}}, nil)
	res, out := run(t, s, "test_a_refresh", nil)
	if res.Status != wire.StatusSucceeded {
		t.Fatalf("test_a_refresh = %+v", res)
	}
	var got probeState
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("refresh output is not JSON: %v\n%s", err, out)
	}
	if want := (probeState{ID: "test_a", Answer: 42, Tags: []string{"x", "y"}}); !slices.Equal(got.Tags, want.Tags) || got.ID != want.ID || got.Answer != want.Answer {
		t.Fatalf("refresh printed %+v, want %+v", got, want)
	}
	spec := s.Catalog()[slices.Index(catalogNames(s), "test_a_refresh")]
	if spec.Group != "test_a" || spec.Dangerous {
		t.Fatalf("synthesized spec = %+v", spec)
	}
}

func TestSetCollect(t *testing.T) {
	s := integration.Load(context.Background(), map[string]any{
		"test_a": map[string]any{"enabled": true},
		"test_b": map[string]any{"enabled": true, "panic_in": "collect"},
	}, nil)
	states := s.Collect(context.Background())
	if len(states) != 2 || states[0].ID != "test_a" || states[1].ID != "test_b" {
		t.Fatalf("Collect = %+v", states)
	}
	if states[0].Err != nil || states[0].Value.(probeState).Answer != 42 {
		t.Errorf("test_a state = %+v", states[0])
	}
	if states[1].Err == nil || !strings.Contains(states[1].Err.Error(), "collect exploded") {
		t.Errorf("panicking collector state = %+v", states[1])
	}
	// The same panic through the synthesized command fails that command only.
	if res, _ := run(t, s, "test_b_refresh", nil); res.Status != wire.StatusFailed || !strings.Contains(res.Reason, "panicked") {
		t.Errorf("test_b_refresh = %+v", res)
	}
}
