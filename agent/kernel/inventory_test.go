package kernel

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// testInventory is an Inventory source whose answer a test sets per run (inventoryOf).
type testInventory struct{ run string }

var inventoryOf sync.Map // run -> *inventoryAnswer

type inventoryAnswer struct {
	mu  sync.Mutex
	rs  []wire.Resource
	err error
}

func (a *inventoryAnswer) set(err error, rs ...wire.Resource) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rs, a.err = rs, err
}

func init() {
	integration.Register(integration.Module{ID: "test_inventory", New: func() integration.Integration { return &testInventory{} }})
}

func (i *testInventory) Configure(raw map[string]any) error {
	i.run, _ = raw["run"].(string)
	return nil
}
func (i *testInventory) Enabled() bool { return i.run != "" }
func (i *testInventory) Resources(context.Context) ([]wire.Resource, error) {
	v, ok := inventoryOf.Load(i.run)
	if !ok {
		return nil, nil
	}
	a := v.(*inventoryAnswer)
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]wire.Resource(nil), a.rs...), a.err
}

func widget(id, status string) wire.Resource {
	return wire.Resource{Type: "widget", ID: id, Status: status, Attributes: map[string]any{"size": 3}}
}

// inventoryAgent runs an agent collecting test_inventory every 50ms; logs go to the test and the buffer.
func inventoryAgent(t *testing.T, h *fakeHub) (*inventoryAnswer, *syncBuffer) {
	t.Helper()
	run := runName(t)
	ans := &inventoryAnswer{}
	ans.set(nil, widget("w1", wire.ResourceOK), widget("w2", wire.ResourceOK))
	inventoryOf.Store(run, ans)
	cfg := testConfig(t, h, t.TempDir())
	cfg.Integrations = map[string]any{"test_inventory": map[string]any{"run": run}}
	cfg.Inventory = 50 * time.Millisecond
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(&teeWriter{logs, t.Output()}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	startAgent(t, cfg)
	return ans, logs
}

func (h *fakeHub) inventoryCounts() (taken, puts int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.inventories), h.inventoryPuts
}

// lastInventory is the newest report taken, with only the test's widgets (the agent's host
// integration reports this machine's resources beside them).
func (h *fakeHub) lastInventory() wire.InventoryReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	rep := h.inventories[len(h.inventories)-1]
	var ws []wire.Resource
	for _, r := range rep.Resources {
		if r.Type == "widget" {
			ws = append(ws, r)
		}
	}
	rep.Resources = ws
	return rep
}

func statusOf(rep wire.InventoryReport, id string) (wire.Resource, bool) {
	for _, r := range rep.Resources {
		if r.ID == id {
			return r, true
		}
	}
	return wire.Resource{}, false
}

// TestInventoryUploadedOnlyWhenChanged: the agent reports its inventory once, then not again while
// nothing changes (ten collections later, still one request); a change is reported with a higher seq
// and a new ChangedAt on the changed resource only; while the hub fails, only the newest collection
// goes up once it is back (a state, not a history); a report the hub refuses is logged with its
// reason and not repeated while nothing changes; a failing source is reported as an error entry.
func TestInventoryUploadedOnlyWhenChanged(t *testing.T) {
	h := newFakeHub(t)
	ans, logs := inventoryAgent(t, h)
	eventually(t, 10*time.Second, func() bool { n, _ := h.inventoryCounts(); return n == 1 }, "the first report")
	first := h.lastInventory()
	if len(first.Resources) != 2 || len(first.Errors) != 0 {
		t.Fatalf("first report: %+v", first)
	}
	time.Sleep(500 * time.Millisecond)
	if taken, puts := h.inventoryCounts(); taken != 1 || puts != 1 {
		t.Fatalf("after ten unchanged collections: %d reports in %d requests, want 1 in 1", taken, puts)
	}

	ans.set(nil, widget("w1", wire.ResourceOK), widget("w2", wire.ResourceFailed))
	eventually(t, 10*time.Second, func() bool { n, _ := h.inventoryCounts(); return n == 2 }, "the change reported")
	second := h.lastInventory()
	w1a, _ := statusOf(first, "w1")
	w1b, _ := statusOf(second, "w1")
	w2b, _ := statusOf(second, "w2")
	if second.Seq <= first.Seq || w2b.Status != wire.ResourceFailed || !w1b.ChangedAt.Equal(w1a.ChangedAt) || !w2b.ChangedAt.After(w1a.ChangedAt) {
		t.Errorf("second report: seq %d after %d, w1 changed %s (was %s), w2 %s changed %s", second.Seq, first.Seq, w1b.ChangedAt, w1a.ChangedAt, w2b.Status, w2b.ChangedAt)
	}

	h.with(func() { h.failInventory = true })
	ans.set(nil, widget("w1", wire.ResourceDegraded))
	eventually(t, 10*time.Second, func() bool { _, puts := h.inventoryCounts(); return puts >= 4 }, "retries while the hub fails")
	ans.set(nil, widget("w1", wire.ResourceStopped))
	time.Sleep(200 * time.Millisecond)
	h.with(func() { h.failInventory = false })
	eventually(t, 10*time.Second, func() bool { n, _ := h.inventoryCounts(); return n == 3 }, "the newest report after the outage")
	third := h.lastInventory()
	if w1, _ := statusOf(third, "w1"); len(third.Resources) != 1 || w1.Status != wire.ResourceStopped {
		t.Errorf("after the outage: %+v, want only the newest collection (w1 stopped)", third.Resources)
	}
	time.Sleep(300 * time.Millisecond)
	if n, _ := h.inventoryCounts(); n != 3 {
		t.Errorf("%d reports after the outage, want 3: the older collection must not follow the newer", n)
	}

	h.with(func() { h.refuseInventory = 422 })
	ans.set(errors.New("the widget bus is down"), widget("w1", wire.ResourceOK))
	eventually(t, 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "the hub refused the inventory report") && strings.Contains(logs.String(), "refused by the test")
	}, "the refusal logged with the hub's reason")
	_, puts := h.inventoryCounts()
	time.Sleep(300 * time.Millisecond)
	if _, again := h.inventoryCounts(); again != puts {
		t.Errorf("a refused report was sent again (%d requests, then %d) though nothing changed", puts, again)
	}
	h.with(func() { h.refuseInventory = 0 })
	ans.set(errors.New("the widget bus is down"), widget("w1", wire.ResourceOK), widget("w3", wire.ResourceOK))
	eventually(t, 10*time.Second, func() bool { n, _ := h.inventoryCounts(); return n == 4 }, "the report with the source's error")
	last := h.lastInventory()
	if len(last.Errors) != 1 || last.Errors[0].Source != "test_inventory" || !strings.Contains(last.Errors[0].Error, "the widget bus is down") || len(last.Resources) != 2 {
		t.Errorf("report of a failing source: errors %+v, %d resources; want its error entry and what it did find", last.Errors, len(last.Resources))
	}
	if n := strings.Count(logs.String(), "inventory source incomplete"); n != 1 {
		t.Errorf("the source's lasting error was logged %d times, want once", n)
	}
}

// TestInventoryLeavesOutWhatTheHubWouldRefuse: a resource an integration got wrong (an unknown status,
// a duplicate) is left out and named in the source's error entry, and the rest is reported.
func TestInventoryLeavesOutWhatTheHubWouldRefuse(t *testing.T) {
	h := newFakeHub(t)
	ans, _ := inventoryAgent(t, h)
	ans.set(nil, widget("w1", wire.ResourceOK), widget("w1", wire.ResourceOK), widget("w2", "sort of fine"))
	eventually(t, 10*time.Second, func() bool {
		n, _ := h.inventoryCounts()
		return n > 0 && len(h.lastInventory().Errors) == 1
	}, "a report with the source's error")
	rep := h.lastInventory()
	if len(rep.Resources) != 1 || !strings.Contains(rep.Errors[0].Error, "2 resources left out") {
		t.Errorf("report: %+v", rep)
	}
}

func TestInventoryConfig(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    time.Duration
		problem bool
	}{
		{`"5m"`, 5 * time.Minute, false},
		{`"0"`, -1, false},
		{`"0s"`, -1, false},
		{`"500ms"`, 0, true},
		{`"soon"`, 0, true},
		{`300`, 0, true},
	} {
		c := ParseConfig([]byte("[agent]\ninventory = " + tc.value + "\n"))
		if c.Inventory != tc.want || (len(c.Problems) > 0) != tc.problem {
			t.Errorf("inventory = %s: %v, problems %v", tc.value, c.Inventory, c.Problems)
		}
	}
	var c Config
	c.setDefaults()
	if c.Inventory != wire.DefaultInventoryEvery {
		t.Errorf("default inventory interval %s", c.Inventory)
	}
}

// TestInventoryRefreshedWhenUnchanged: an inventory that does not change is reported again once the
// refresh interval (an hour in production) passed since the report the hub took, so the hub's
// "last seen" stays meaningful; not sooner.
func TestInventoryRefreshedWhenUnchanged(t *testing.T) {
	h := newFakeHub(t)
	run := runName(t)
	ans := &inventoryAnswer{}
	ans.set(nil, widget("w1", wire.ResourceOK))
	inventoryOf.Store(run, ans)
	cfg := testConfig(t, h, t.TempDir())
	cfg.Integrations = map[string]any{"test_inventory": map[string]any{"run": run}}
	cfg.Inventory = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	a.inventory.refresh = 700 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	eventually(t, 10*time.Second, func() bool { n, _ := h.inventoryCounts(); return n == 1 }, "the first report")
	time.Sleep(400 * time.Millisecond)
	if n, _ := h.inventoryCounts(); n != 1 {
		t.Fatalf("%d reports before the refresh interval, want 1", n)
	}
	eventually(t, 10*time.Second, func() bool { n, _ := h.inventoryCounts(); return n == 2 }, "the refresh")
	var first wire.InventoryReport
	h.with(func() { first = h.inventories[0] })
	second := h.lastInventory()
	w1a, _ := statusOf(first, "w1")
	w1b, _ := statusOf(second, "w1")
	if second.Seq <= first.Seq || !second.At.After(first.At) || !w1b.ChangedAt.Equal(w1a.ChangedAt) {
		t.Errorf("refresh: seq %d at %s after seq %d at %s; w1 changed %s, was %s (want unchanged)", second.Seq, second.At, first.Seq, first.At, w1b.ChangedAt, w1a.ChangedAt)
	}
}
