package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func goodInventory() InventoryReport {
	at := time.UnixMilli(1_700_000_000_000).UTC()
	return InventoryReport{Seq: uint64(at.UnixMilli()), At: at, Resources: []Resource{
		{Type: ResourceMount, ID: "/", Status: ResourceOK, Attributes: map[string]any{"fstype": "ext4", "sizeBytes": uint64(1 << 30), "usedRatio": 0.42}},
		{Type: ResourceInterface, ID: "eth0", Status: ResourceStopped, Reason: "down", Attributes: map[string]any{"mtu": 1500, "up": false}},
		{Type: ResourcePlan, ID: "web", Status: ResourceOK},
		{Type: ResourceUnit, ID: "web/conf", Parent: "plan/web", Status: ResourceFailed, Reason: "permission denied"},
	}, Errors: []InventoryError{{Source: "container", Error: "the Docker daemon does not answer"}}}
}

// TestInventoryValidate: every report the hub cannot keep is refused with a reason that names what is
// wrong, and a good one passes.
func TestInventoryValidate(t *testing.T) {
	many := func(n int) []Resource {
		rs := make([]Resource, n)
		for i := range rs {
			rs[i] = Resource{Type: ResourceDisk, ID: fmt.Sprintf("sd%d", i), Status: ResourceOK}
		}
		return rs
	}
	attrs := func(n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprintf("a%d", i)] = i
		}
		return m
	}
	for _, tc := range []struct {
		name string
		mod  func(r *InventoryReport)
		bad  string
	}{
		{"good", func(*InventoryReport) {}, ""},
		{"empty inventory", func(r *InventoryReport) { r.Resources, r.Errors = nil, nil }, ""},
		{"seq 0", func(r *InventoryReport) { r.Seq = 0 }, "seq"},
		{"no time", func(r *InventoryReport) { r.At = time.Time{} }, "at:"},
		{"bad type", func(r *InventoryReport) { r.Resources[0].Type = "Mount Point" }, "type \"Mount Point\""},
		{"no type", func(r *InventoryReport) { r.Resources[0].Type = "" }, "type"},
		{"no id", func(r *InventoryReport) { r.Resources[0].ID = "" }, "id:"},
		{"id with a control character", func(r *InventoryReport) { r.Resources[0].ID = "a\nb" }, "id:"},
		{"id too long", func(r *InventoryReport) { r.Resources[0].ID = strings.Repeat("x", MaxResourceIDBytes+1) }, "id:"},
		{"duplicate id", func(r *InventoryReport) { r.Resources[1] = r.Resources[0] }, "mount// appears twice"},
		{"same id, other type", func(r *InventoryReport) { r.Resources[1].ID = "/" }, ""},
		{"unknown status", func(r *InventoryReport) { r.Resources[0].Status = "broken" }, "status \"broken\": one of ok, degraded"},
		{"no status", func(r *InventoryReport) { r.Resources[0].Status = "" }, "status"},
		{"reason too long", func(r *InventoryReport) { r.Resources[1].Reason = strings.Repeat("r", MaxReasonBytes+1) }, "reason"},
		{"parent not in the report", func(r *InventoryReport) { r.Resources[3].Parent = "plan/db" }, "parent \"plan/db\" is no resource"},
		{"parent without a type", func(r *InventoryReport) { r.Resources[3].Parent = "web" }, "parent \"web\""},
		{"its own parent", func(r *InventoryReport) { r.Resources[2].Parent = "plan/web" }, "own parent"},
		{"too many resources", func(r *InventoryReport) { r.Resources = many(MaxResources + 1) }, "2001 resources, at most 2000"},
		{"the most resources", func(r *InventoryReport) { r.Resources = many(MaxResources) }, ""},
		{"too many attributes", func(r *InventoryReport) { r.Resources[0].Attributes = attrs(MaxResourceAttributes + 1) }, "33 attributes, at most 32"},
		{"bad attribute name", func(r *InventoryReport) { r.Resources[0].Attributes = map[string]any{"used ratio": 1} }, "attribute \"used ratio\""},
		{"oversized attribute", func(r *InventoryReport) {
			r.Resources[0].Attributes = map[string]any{"model": strings.Repeat("m", MaxAttributeBytes+1)}
		}, "attribute model: a string must be"},
		{"nested attribute", func(r *InventoryReport) { r.Resources[0].Attributes = map[string]any{"addrs": []string{"::1"}} }, "attribute addrs: a []string"},
		{"null attribute", func(r *InventoryReport) { r.Resources[0].Attributes = map[string]any{"x": nil} }, "attribute x"},
		{"NaN attribute", func(r *InventoryReport) { r.Resources[0].Attributes = map[string]any{"x": math.NaN()} }, "finite"},
		{"error without source", func(r *InventoryReport) { r.Errors[0].Source = "" }, "source"},
		{"error without text", func(r *InventoryReport) { r.Errors[0].Error = "" }, "error 0"},
		{"too many errors", func(r *InventoryReport) {
			r.Errors = make([]InventoryError, MaxInventoryErrors+1)
		}, "65 errors"},
		{"too many bytes", func(r *InventoryReport) {
			r.Resources = many(MaxResources)
			for i := range r.Resources {
				r.Resources[i].Attributes = map[string]any{"a": strings.Repeat("x", MaxAttributeBytes), "b": strings.Repeat("y", MaxAttributeBytes),
					"c": strings.Repeat("z", MaxAttributeBytes)}
			}
		}, "bytes of JSON, at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goodInventory()
			tc.mod(&r)
			err := r.Validate()
			switch {
			case tc.bad == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.bad != "" && err == nil:
				t.Fatalf("accepted, want a refusal naming %q", tc.bad)
			case tc.bad != "" && (!errors.Is(err, ErrBadInventory) || !strings.Contains(err.Error(), tc.bad)):
				t.Fatalf("refused with %q, want ErrBadInventory naming %q", err, tc.bad)
			}
		})
	}
}

// TestInventoryRoundTrip: a report survives the JSON the agent sends and the hub decodes (numbers
// become float64 and are still accepted).
func TestInventoryRoundTrip(t *testing.T) {
	r := goodInventory()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back InventoryReport
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("decoded report refused: %v", err)
	}
	if got := back.Resources[0].Attributes["sizeBytes"]; got != float64(1<<30) {
		t.Errorf("sizeBytes after the round trip: %v (%T)", got, got)
	}
}

// FuzzInventoryValidate feeds arbitrary JSON to Validate as the hub decodes it. Properties: nothing
// panics; whatever it accepts has every id unique per type and a known status, and encodes within
// MaxInventoryBytes.
func FuzzInventoryValidate(f *testing.F) {
	good, _ := json.Marshal(goodInventory())
	f.Add(good)
	f.Add([]byte(`{"seq":1,"at":"2026-01-01T00:00:00Z","resources":[{"type":"disk","id":"sda","status":"ok","attributes":{"x":[1]}}]}`))
	f.Add([]byte(`{"seq":1,"at":"2026-01-01T00:00:00Z","resources":[{"type":"unit","id":"a/b","parent":"plan/a","status":"ok"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r InventoryReport
		if json.Unmarshal(data, &r) != nil {
			return
		}
		if r.Validate() != nil {
			return
		}
		seen := map[string]bool{}
		for _, res := range r.Resources {
			if seen[res.Key()] || !validStatus(res.Status) {
				t.Fatalf("accepted a duplicate or an unknown status: %+v", res)
			}
			seen[res.Key()] = true
		}
		if b, _ := json.Marshal(r); len(b) > MaxInventoryBytes {
			t.Fatalf("accepted %d bytes", len(b))
		}
	})
}
