package shell_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/integrations/shell"
	"github.com/pulsehq/pulse/agent/wire"
)

func open() error { return nil }

func load(t *testing.T, table map[string]any, opts ...integration.Option) *integration.Set {
	t.Helper()
	var tables map[string]any
	if table != nil {
		tables = map[string]any{shell.ID: table}
	}
	return integration.Load(context.Background(), tables, nil, opts...)
}

func runScript(s *integration.Set, script string, timeout int) (integration.RunResult, string) {
	var out bytes.Buffer
	res := s.Run(context.Background(), wire.Command{CommandID: "c", Name: "shell_run",
		Params: map[string]string{"script": script}, TimeoutSeconds: timeout}, &out)
	return res, out.String()
}

func TestSpec(t *testing.T) {
	s := load(t, nil)
	if st := s.Statuses()[0]; st.ID != shell.ID || !st.Enabled {
		t.Fatalf("status %+v: the shell integration ships enabled (and sealed)", st)
	}
	cat := s.Catalog()
	if len(cat) != 1 {
		t.Fatalf("catalog %+v, want shell_run only", cat)
	}
	c := cat[0]
	if c.Name != "shell_run" || c.Group != shell.ID || !c.Dangerous || len(c.Params) != 1 {
		t.Fatalf("spec %+v", c)
	}
	if p := c.Params[0]; p.Name != "script" || p.MaxBytes != 64<<10 || !p.Required || p.Pattern != "" {
		t.Fatalf("script parameter %+v", p)
	}
}

func TestSealedRunsNothing(t *testing.T) {
	side := filepath.Join(t.TempDir(), "side")
	// No hatch given at all, and a hatch that says closed: both refuse with the same words.
	for _, s := range []*integration.Set{
		load(t, nil),
		load(t, nil, integration.WithHatch(func() error { return integration.ErrSealed })),
	} {
		res, out := runScript(s, "echo ran > "+side, 0)
		if res.Status != wire.StatusRejected || out != "" || !res.StartedAt.IsZero() {
			t.Fatalf("sealed shell_run = %+v %q", res, out)
		}
		const want = "sealed: the shell hatch is closed on this host; open it there with `pulse-agent unseal`"
		if res.Reason != want {
			t.Fatalf("reason %q, want %q", res.Reason, want)
		}
	}
	if _, err := os.Stat(side); !os.IsNotExist(err) {
		t.Fatalf("the sealed script ran: %v", err)
	}
}

func TestOpenRunsTheScript(t *testing.T) {
	s := load(t, nil, integration.WithHatch(open))
	side := filepath.Join(t.TempDir(), "side")
	t.Setenv("PULSE_TEST_SECRET", "the agent's own environment")

	res, out := runScript(s, "echo ran >> '"+side+"'\necho \"${PULSE_TEST_SECRET-not inherited}\" | tr a-z A-Z\necho oops >&2", 0)
	if res.Status != wire.StatusSucceeded || res.ExitCode == nil || *res.ExitCode != 0 {
		t.Fatalf("shell_run = %+v %q", res, out)
	}
	if out != "NOT INHERITED\noops\n" {
		t.Fatalf("output %q", out)
	}
	if b, _ := os.ReadFile(side); string(b) != "ran\n" {
		t.Fatalf("side effect %q", b)
	}

	res, _ = runScript(s, "exit 7", 0)
	if res.Status != wire.StatusFailed || res.ExitCode == nil || *res.ExitCode != 7 {
		t.Fatalf("exit 7 = %+v", res)
	}

	start := time.Now()
	res, _ = runScript(s, "sleep 30", 1)
	if res.Status != wire.StatusTimedOut || time.Since(start) > 10*time.Second {
		t.Fatalf("timeout = %+v after %s", res, time.Since(start))
	}

	res, _ = runScript(s, strings.Repeat("#", 64<<10+1), 0)
	if res.Status != wire.StatusRejected || !strings.Contains(res.Reason, "more than 65536") {
		t.Fatalf("oversized script = %+v", res)
	}
}

func TestConfig(t *testing.T) {
	if s := load(t, map[string]any{"enabled": false}); len(s.Catalog()) != 0 || s.Statuses()[0].Enabled {
		t.Fatalf("enabled = false: %+v %+v", s.Catalog(), s.Statuses())
	}
	if st := load(t, map[string]any{"enabeld": false}).Statuses()[0]; st.Enabled || !strings.Contains(st.Reason, `unknown key "enabeld"`) {
		t.Fatalf("misspelt key: %+v", st)
	}
}
