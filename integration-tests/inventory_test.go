package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// resourcesAnswer is what `pulse resources --json` prints (and GET /v1/resources answers).
type resourcesAnswer struct {
	Resources []struct {
		Agent, AgentName, Type, ID, Name, Parent, Status, Reason string
		Attributes                                               map[string]any
		LastSeen                                                 time.Time
	} `json:"resources"`
	Errors []struct{ Agent, Source, Error string } `json:"errors"`
}

// find is the resource of type and id, if listed.
func (r resourcesAnswer) find(typ, id string) (int, bool) {
	for i, x := range r.Resources {
		if x.Type == typ && x.ID == id {
			return i, true
		}
	}
	return -1, false
}

// TestInventoryEndToEnd: real `pulse serve` on MinIO and a real pulse-agent collecting its inventory
// every second. `pulse resources` shows the agent's root mount (with its fstype and used ratio) and a
// network interface; a plan with a file unit shows up as a plan resource and a unit resource whose
// parent is the plan, ok once the file is in place, and failed once the agent cannot converge it;
// the API answers the same with its filters, and the agent's own resources read alone.
func TestInventoryEndToEnd(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	tok, errOut, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--labels", "role=web")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", errOut)
	}
	root := filepath.Join(dir, "managed")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\ninventory = \"1s\"\nplan_period = \"1s\"\n", 1) + fmt.Sprintf("\n[files]\nroots = [%q]\n", root)
	a := startAgent(t, h.url, filepath.Join(dir, "agent"), cfg, "--enroll-token", strings.TrimSpace(tok))
	id := a.id()
	resources := func(args ...string) resourcesAnswer {
		t.Helper()
		out, errOut, code := pulseCLI(t, h.url, token, append([]string{"resources", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("pulse resources %v: exit %d: %s", args, code, errOut)
		}
		var r resourcesAnswer
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("pulse resources --json: %v: %s", err, out)
		}
		return r
	}

	var r resourcesAnswer
	waitFor(t, "the agent's mounts and interfaces at the hub", 20*time.Second, func() bool {
		r = resources("--agent", id)
		_, mount := r.find("mount", "/")
		ifs := 0
		for _, x := range r.Resources {
			if x.Type == "interface" {
				ifs++
			}
		}
		return mount && ifs > 0
	})
	i, _ := r.find("mount", "/")
	m := r.Resources[i]
	if m.Agent != id || m.AgentName == "" || m.Attributes["fstype"] == nil || m.Attributes["usedRatio"] == nil || m.LastSeen.IsZero() {
		t.Errorf("root mount: %+v", m)
	}
	for _, x := range r.Resources {
		if x.Type == "interface" && x.ID == "lo" {
			t.Error("loopback listed")
		}
	}

	conf := filepath.Join(root, "site.conf")
	if out, code := applyPlan(t, h.url, token, "site", dir, fmt.Sprintf(`targets: [role=web]
units:
  - name: conf
    type: file
    spec: {path: %q, content: "port=8080\n", mode: "0644"}
`, conf)); code != 0 {
		t.Fatalf("plan apply: %s", out)
	}
	waitFor(t, "the plan's unit as a resource, ok", 20*time.Second, func() bool {
		r = resources("--type", "unit", "--label", "role=web")
		i, ok := r.find("unit", "site/conf")
		return ok && r.Resources[i].Status == "ok"
	})
	u := r.Resources[0]
	if len(r.Resources) != 1 || u.Parent != "plan/site" || u.Name != "conf" || u.Attributes["unitType"] != "file" || u.Attributes["state"] != "converged" {
		t.Errorf("unit resources: %+v", r.Resources)
	}
	if b, err := os.ReadFile(conf); err != nil || string(b) != "port=8080\n" {
		t.Fatalf("the file unit's file: %q %v", b, err)
	}
	if p := resources("--type", "plan"); len(p.Resources) != 1 || p.Resources[0].ID != "site" || p.Resources[0].Status != "ok" {
		t.Errorf("plan resources: %+v", p.Resources)
	}

	// The file's directory made unwritable: the unit fails to converge, and the inventory says so.
	// A directory where the file should be. The agent repairs a missing file at once (drift), so
	// between the remove and the mkdir it may have written the file back: try again until the
	// directory is there first.
	waitFor(t, "a directory in the file's place", 10*time.Second, func() bool {
		if err := os.Remove(conf); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return os.Mkdir(conf, 0o755) == nil
	})
	waitFor(t, "the unit failed in the inventory", 20*time.Second, func() bool {
		r = resources("--status", "failed")
		_, ok := r.find("unit", "site/conf")
		return ok
	})
	if p := resources("--type", "plan"); len(p.Resources) != 1 || p.Resources[0].Status != "failed" {
		t.Errorf("plan of a failed unit: %+v", p.Resources)
	}

	var api resourcesAnswer
	if code := op(t, h, token, "GET", "/v1/resources", nil, &api); code != 200 || len(api.Resources) < 3 {
		t.Errorf("GET /v1/resources: %d, %d resources", code, len(api.Resources))
	}
	var one struct {
		Agent     string
		Resources []struct{ Type, ID string }
	}
	if code := op(t, h, token, "GET", "/v1/agents/"+id+"/resources", nil, &one); code != 200 || one.Agent != id || len(one.Resources) != len(api.Resources) {
		t.Errorf("GET /v1/agents/%s/resources: %d, %d resources (the fleet list has %d)", id, code, len(one.Resources), len(api.Resources))
	}
}
