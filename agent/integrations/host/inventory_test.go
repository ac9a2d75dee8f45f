package host_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/integrations/host"
	"github.com/pulsehq/pulse/agent/wire"
)

// TestHostInventoryOnThisMachine: on the machine the tests run on, the host reports its root mount
// (with fstype, size and a used ratio in [0, 1] whose status agrees with it) and at least one network
// interface but never loopback, every resource valid under the hub's own rules; and two collections
// a moment apart are the same, so an idle host costs no upload.
func TestHostInventoryOnThisMachine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := &host.Host{}
	if err := h.Configure(nil); err != nil {
		t.Fatal(err)
	}
	var _ integration.Inventory = h
	rs, err := h.Resources(ctx)
	if err != nil {
		t.Logf("partial inventory (allowed in a sandbox): %v", err)
	}
	byType := map[string][]wire.Resource{}
	for _, r := range rs {
		byType[r.Type] = append(byType[r.Type], r)
	}
	var root *wire.Resource
	for i, m := range byType[wire.ResourceMount] {
		if m.ID == "/" {
			root = &byType[wire.ResourceMount][i]
		}
	}
	if root == nil {
		t.Fatalf("no mount / among %+v", byType[wire.ResourceMount])
	}
	ratio, ok := root.Attributes["usedRatio"].(float64)
	if !ok || ratio < 0 || ratio > 1 || root.Attributes["fstype"] == "" || root.Attributes["sizeBytes"] == nil {
		t.Fatalf("root mount attributes: %+v", root.Attributes)
	}
	want := wire.ResourceOK
	switch {
	case ratio >= 0.98:
		want = wire.ResourceFailed
	case ratio >= 0.90:
		want = wire.ResourceDegraded
	}
	if root.Status != want {
		t.Errorf("root mount %.2f used has status %s (%s), want %s", ratio, root.Status, root.Reason, want)
	}
	ifs := byType[wire.ResourceInterface]
	if len(ifs) == 0 {
		t.Fatal("no network interface reported")
	}
	for _, i := range ifs {
		if i.ID == "lo" {
			t.Error("loopback reported")
		}
		up, _ := i.Attributes["up"].(bool)
		if (i.Status == wire.ResourceStopped) == up || i.Attributes["mtu"] == nil {
			t.Errorf("interface %s: status %s with up=%v, attributes %+v", i.ID, i.Status, i.Attributes["up"], i.Attributes)
		}
	}
	for _, d := range byType[wire.ResourceDisk] {
		if d.Status != wire.ResourceOK {
			t.Errorf("disk %+v", d)
		}
	}
	t.Logf("%d disks, %d mounts, %d interfaces; root %+v", len(byType[wire.ResourceDisk]), len(byType[wire.ResourceMount]), len(ifs), root.Attributes)

	report := wire.InventoryReport{Seq: 1, At: time.Now(), Resources: rs}
	if err := report.Validate(); err != nil {
		t.Fatalf("the host's inventory is refused by the hub's rules: %v", err)
	}
	again, _ := h.Resources(ctx)
	a, _ := json.Marshal(rs)
	b, _ := json.Marshal(again)
	if string(a) != string(b) {
		t.Logf("first:  %s\nsecond: %s", a, b)
		t.Error("two collections a moment apart differ: an idle host would upload every time")
	}
}
