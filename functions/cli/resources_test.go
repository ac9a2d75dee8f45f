package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// TestResourcesCommand drives pulse resources against a real hub: an agent's reported resources are
// listed as a table with the agent's name, their status and reason and their key attributes; the
// filters reach the hub; a source's error is named on stderr; --json prints the hub's answer; --help
// explains types and statuses.
func TestResourcesCommand(t *testing.T) {
	url, admin := startHub(t)
	useHub(t, url, admin)
	ctx := context.Background()
	tok := strings.TrimSpace(pulse("enroll-token", "create").stdout)
	a, err := simagent.Enroll(ctx, url, tok, "web-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	rep := wire.InventoryReport{Seq: 1, At: now, Resources: []wire.Resource{
		{Type: wire.ResourceMount, ID: "/", Status: wire.ResourceDegraded, Reason: "93% used: nearly full", ChangedAt: now,
			Attributes: map[string]any{"fstype": "ext4", "sizeBytes": 10 << 30, "usedRatio": 0.93}},
		{Type: wire.ResourceInterface, ID: "eth0", Status: wire.ResourceOK, ChangedAt: now.Add(-time.Minute), Attributes: map[string]any{"mtu": 1500, "addresses": "192.0.2.7/24"}},
	}, Errors: []wire.InventoryError{{Source: "container", Error: "the Docker daemon does not answer"}}}
	if err := a.Signed(ctx, "PUT", "/v1/agents/"+a.ID+"/resources", rep, nil); err != nil {
		t.Fatal(err)
	}

	r := pulse("resources")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "TYPE") ||
		!strings.Contains(lines[1], "mount") || !strings.Contains(lines[1], "web-1") || !strings.Contains(lines[1], "degraded (93% used: nearly full)") ||
		!strings.Contains(lines[1], "fstype=ext4 10.0 GiB 93% used") || !strings.Contains(lines[2], "addresses=192.0.2.7/24 mtu=1500") {
		t.Errorf("table: exit %d\n%s", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "web-1 ("+a.ID+"): container could not report everything: the Docker daemon does not answer") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if r := pulse("resources", "--type", "interface", "--agent", "web-1"); strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, "eth0") {
		t.Errorf("--type interface:\n%s", r.stdout)
	}
	if r := pulse("resources", "--status", "failed"); strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stderr, "no resources match") {
		t.Errorf("--status failed: %s %s", r.stdout, r.stderr)
	}
	r = pulse("resources", "--label", "role=db", "--json")
	var out struct{ Resources []any }
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil || len(out.Resources) != 0 {
		t.Errorf("--label role=db --json: %d %v %s", r.code, err, r.stdout)
	}
	if r := pulse("resources", "--status", "broken"); r.code != 1 || !strings.Contains(r.stderr, "status") {
		t.Errorf("a bad status: exit %d %s", r.code, r.stderr)
	}
	if r := pulse("resources", "--help"); r.code != 0 || !strings.Contains(r.stdout, "degraded (needs attention") || !strings.Contains(r.stdout, "-label") {
		t.Errorf("help: %d\n%s", r.code, r.stdout)
	}
}
