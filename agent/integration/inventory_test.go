package integration_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// finder is an Inventory source whose answer its config chooses: resources, an error beside them, or
// a panic.
type finder struct {
	mode string
}

func (f *finder) Configure(raw map[string]any) error {
	if m, ok := raw["mode"].(string); ok {
		f.mode = m
	}
	return nil
}
func (f *finder) Enabled() bool { return f.mode != "off" }
func (f *finder) Resources(context.Context) ([]wire.Resource, error) {
	found := []wire.Resource{{Type: "widget", ID: "w1", Status: wire.ResourceOK}}
	switch f.mode {
	case "panic":
		panic("inventory exploded")
	case "partial":
		return found, errors.New("the second widget hides")
	}
	return found, nil
}

func init() {
	for _, id := range []string{"test_inv_a", "test_inv_b", "test_inv_c", "test_inv_off"} {
		integration.Register(integration.Module{ID: id, New: func() integration.Integration { return &finder{} }})
	}
}

// TestInventorySources: every enabled source is asked in id order; a panic or an error in one is its
// own Found's error, and the others still answer (a partial answer keeps its resources).
func TestInventorySources(t *testing.T) {
	s := integration.Load(context.Background(), map[string]any{
		"test_inv_a": map[string]any{"mode": "panic"}, "test_inv_b": map[string]any{"mode": "partial"},
		"test_inv_c": map[string]any{}, "test_inv_off": map[string]any{"mode": "off"},
	}, nil)
	if !s.HasInventory() {
		t.Fatal("HasInventory is false with three sources enabled")
	}
	got := map[string]integration.Found{}
	var order []string
	for _, f := range s.Inventory(context.Background()) {
		if strings.HasPrefix(f.ID, "test_inv_") {
			got[f.ID] = f
			order = append(order, f.ID)
		}
	}
	if strings.Join(order, ",") != "test_inv_a,test_inv_b,test_inv_c" {
		t.Fatalf("sources asked: %v, want a, b, c in id order and not the disabled one", order)
	}
	if f := got["test_inv_a"]; f.Err == nil || !strings.Contains(f.Err.Error(), "panic: inventory exploded") || f.Resources != nil {
		t.Errorf("panicking source: %+v", f)
	}
	if f := got["test_inv_b"]; f.Err == nil || !strings.Contains(f.Err.Error(), "inventory test_inv_b: the second widget hides") || len(f.Resources) != 1 {
		t.Errorf("partial source: %+v, want its resource and its error", f)
	}
	if f := got["test_inv_c"]; f.Err != nil || len(f.Resources) != 1 {
		t.Errorf("good source: %+v", f)
	}
}
