package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// hatchRuns counts runs of test_hatch_sealed, so a test can tell that a rejected command did nothing.
var hatchRuns atomic.Int64

func init() {
	integration.Register(integration.Module{ID: "test_hatch", New: func() integration.Integration { return &hatched{} }})
}

// hatched is on only when its table is present; it has one command behind the hatch and one not.
type hatched struct{ on bool }

func (h *hatched) Configure(raw map[string]any) error { h.on = raw != nil; return nil }
func (h *hatched) Enabled() bool                      { return h.on }

func (h *hatched) Commands() ([]integration.Command, error) {
	sealed, err := integration.NewJob(wire.CommandSpec{Name: "test_hatch_sealed", Group: "test_hatch", Dangerous: true},
		func(_ context.Context, _ map[string]string, out io.Writer) error {
			hatchRuns.Add(1)
			_, err := fmt.Fprintln(out, "ran")
			return err
		})
	if err != nil {
		return nil, err
	}
	free, err := integration.NewJob(wire.CommandSpec{Name: "test_hatch_free", Group: "test_hatch"},
		func(context.Context, map[string]string, io.Writer) error { return nil })
	if err != nil {
		return nil, err
	}
	return []integration.Command{sealed.RequireHatch(), free}, nil
}

func loadHatched(t *testing.T, opts ...integration.Option) *integration.Set {
	t.Helper()
	return integration.Load(context.Background(), map[string]any{"test_hatch": map[string]any{}}, nil, opts...)
}

func TestRequireHatchWithoutAHatchNeverRuns(t *testing.T) {
	s := loadHatched(t)
	before := hatchRuns.Load()
	cmd := wire.Command{CommandID: "c1", Name: "test_hatch_sealed"}
	if err := s.Admit(cmd); !errors.Is(err, integration.ErrSealed) {
		t.Fatalf("Admit = %v, want ErrSealed", err)
	}
	res, out := run(t, s, "test_hatch_sealed", nil)
	if res.Status != wire.StatusRejected || res.Reason != integration.ErrSealed.Error() || !res.StartedAt.IsZero() || out != "" {
		t.Fatalf("sealed command = %+v %q", res, out)
	}
	if hatchRuns.Load() != before {
		t.Fatal("the sealed command ran")
	}
	// The command is still advertised, so the hub can offer it and show why it is refused.
	if !slices.Contains(catalogNames(s), "test_hatch_sealed") {
		t.Fatalf("catalog %v lacks the sealed command", catalogNames(s))
	}
	if res, _ := run(t, s, "test_hatch_free", nil); res.Status != wire.StatusSucceeded {
		t.Fatalf("a command without the hatch requirement was held back: %+v", res)
	}
}

func TestRequireHatchAsksTheGateAtEveryRun(t *testing.T) {
	var asked atomic.Int64
	var open atomic.Bool
	closedWhy := errors.New("sealed: closed for the test")
	s := loadHatched(t, integration.WithHatch(func() error {
		asked.Add(1)
		if open.Load() {
			return nil
		}
		return closedWhy
	}))

	before := hatchRuns.Load()
	if res, _ := run(t, s, "test_hatch_sealed", nil); res.Status != wire.StatusRejected || res.Reason != closedWhy.Error() {
		t.Fatalf("closed gate: %+v", res)
	}
	open.Store(true)
	if res, out := run(t, s, "test_hatch_sealed", nil); res.Status != wire.StatusSucceeded || out != "ran\n" {
		t.Fatalf("open gate: %+v %q", res, out)
	}
	open.Store(false)
	if res, _ := run(t, s, "test_hatch_sealed", nil); res.Status != wire.StatusRejected {
		t.Fatalf("closed again: %+v", res)
	}
	if got := hatchRuns.Load() - before; got != 1 {
		t.Fatalf("the sealed command ran %d times, want 1", got)
	}

	n := asked.Load()
	run(t, s, "test_hatch_free", nil)
	if asked.Load() != n {
		t.Fatal("the gate was asked for a command that does not require the hatch")
	}
	// Parameters are checked before the gate: a malformed request is refused for what it is.
	if err := s.Admit(wire.Command{Name: "test_hatch_sealed", Params: map[string]string{"x": "y"}}); err == nil || errors.Is(err, closedWhy) {
		t.Fatalf("Admit with a bad parameter = %v", err)
	}
	if err := s.Admit(wire.Command{Name: "test_hatch_nope"}); err == nil || err.Error() != `unknown command "test_hatch_nope": not in this agent's catalog` {
		t.Fatalf("Admit of an unknown command = %v", err)
	}
}
