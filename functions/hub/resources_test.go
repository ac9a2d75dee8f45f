package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/resources"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// resourceList is the answer of GET /v1/resources.
type resourceList struct {
	Resources []struct {
		Agent, AgentName, Type, ID, Name, Parent, Status, Reason string
		Attributes                                               map[string]any
		ChangedAt, LastSeen                                      time.Time
	}
	Errors []struct{ Agent, Source, Error string }
	Next   string
	Detail string
}

func (l resourceList) keys() []string {
	var out []string
	for _, r := range l.Resources {
		out = append(out, r.AgentName+":"+r.Type+"/"+r.ID)
	}
	return out
}

func inventoryOf(seq uint64, rs ...wire.Resource) wire.InventoryReport {
	return wire.InventoryReport{Seq: seq, At: time.Now().UTC().Add(-time.Minute).Add(time.Duration(seq) * time.Millisecond), Resources: rs}
}

func res(typ, id, status string) wire.Resource {
	return wire.Resource{Type: typ, ID: id, Status: status, ChangedAt: time.Now().UTC(), Attributes: map[string]any{"note": "n-" + id}}
}

func report(a *simagent.Agent, rep any) (int, string) {
	return status(a.Signed(context.Background(), "PUT", "/v1/agents/"+a.ID+"/resources", rep, nil))
}

// TestResourcesReportedAndFiltered: agents' reports are stored one object per agent and listed with
// their agents' names; the list filters by type, agent (id or name), label, status and text, and
// pages; one agent's resources read alone; an error entry shows beside its agent's resources.
func TestResourcesReportedAndFiltered(t *testing.T) {
	th := newTestHub(t)
	web := th.agent("web1", map[string]string{"role": "web", "env": "prod"}, nil)
	db := th.agent("db1", map[string]string{"role": "db", "env": "prod"}, nil)
	webRep := inventoryOf(10, res("mount", "/", wire.ResourceOK), res("interface", "eth0", wire.ResourceOK), res("plan", "site", wire.ResourceOK),
		wire.Resource{Type: "unit", ID: "site/conf", Name: "conf", Parent: "plan/site", Status: wire.ResourceFailed, Reason: "permission denied"})
	webRep.Errors = []wire.InventoryError{{Source: "container", Error: "the Docker daemon does not answer"}}
	if st, body := report(web, webRep); st != 204 {
		t.Fatalf("web report: %d %s", st, body)
	}
	if st, body := report(db, inventoryOf(5, res("mount", "/", wire.ResourceDegraded), res("mount", "/var/lib/pg", wire.ResourceOK))); st != 204 {
		t.Fatalf("db report: %d %s", st, body)
	}
	if st, body := report(db, inventoryOf(5, res("mount", "/", wire.ResourceDegraded), res("mount", "/var/lib/pg", wire.ResourceOK))); st == 204 {
		// the same seq with another ChangedAt is another report: refused
		t.Fatalf("another report under a seq already stored: %d %s, want 409", st, body)
	}
	if keys := th.stored(layout.Resources); len(keys) != 2 {
		t.Fatalf("stored: %v, want one object per agent", keys)
	}

	list := func(query string) resourceList {
		t.Helper()
		var out resourceList
		if st := th.call(th.admin, "GET", "/v1/resources"+query, nil, &out); st != 200 {
			t.Fatalf("GET /v1/resources%s: %d %s", query, st, out.Detail)
		}
		return out
	}
	if all := list(""); len(all.Resources) != 6 || len(all.Errors) != 1 || all.Errors[0].Source != "container" || all.Resources[0].LastSeen.IsZero() {
		t.Fatalf("all: %v, errors %+v", all.keys(), all.Errors)
	}
	for _, tc := range []struct{ query, want string }{
		{"?type=mount", "db1:mount//,db1:mount//var/lib/pg,web1:mount//"},
		{"?agent=db1", "db1:mount//,db1:mount//var/lib/pg"},
		{"?agent=" + web.ID + "&type=unit", "web1:unit/site/conf"},
		{"?label=role=web", "web1:interface/eth0,web1:mount//,web1:plan/site,web1:unit/site/conf"},
		{"?label=env=prod&label=role=db&status=degraded", "db1:mount//"},
		{"?status=failed", "web1:unit/site/conf"},
		{"?q=PERMISSION", "web1:unit/site/conf"},
		{"?q=n-eth", "web1:interface/eth0"},
		{"?label=role=cache", ""},
	} {
		got := list(tc.query).keys()
		slicesSort(got)
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s: %v, want %s", tc.query, got, tc.want)
		}
	}
	page1 := list("?limit=4")
	page2 := list("?limit=4&cursor=" + url.QueryEscape(page1.Next))
	if len(page1.Resources) != 4 || page1.Next == "" || len(page2.Resources) != 2 || page2.Next != "" {
		t.Errorf("pages: %v (next %q), then %v (next %q)", page1.keys(), page1.Next, page2.keys(), page2.Next)
	}
	for _, bad := range []string{"?status=broken", "?label=role", "?agent=nobody"} {
		var out resourceList
		if st := th.call(th.admin, "GET", "/v1/resources"+bad, nil, &out); st != 422 && st != 404 {
			t.Errorf("%s: %d, want a refusal", bad, st)
		}
	}

	var one struct {
		Agent, AgentName string
		Seq              uint64
		Resources        []struct{ Type, ID, Parent string }
		Errors           []wire.InventoryError
	}
	if st := th.call(th.admin, "GET", "/v1/agents/web1/resources", nil, &one); st != 200 || one.Agent != web.ID || one.Seq != 10 || len(one.Resources) != 4 || len(one.Errors) != 1 {
		t.Errorf("one agent's resources: %d %+v", st, one)
	}
	viewer := th.token("vera", "viewer")
	if st := th.call(viewer, "GET", "/v1/resources?type=mount", nil, nil); st != 200 {
		t.Errorf("a viewer lists resources: %d", st)
	}
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestResourcesLateReportAndRefusals: a report older (by seq) than the stored one is answered 409
// and changes nothing; the same report again is 204 and written once; an agent cannot report for
// another; a malformed report is refused with an RFC 9457 problem naming the reason, and stores
// nothing.
func TestResourcesLateReportAndRefusals(t *testing.T) {
	counted := &countingStore{}
	th := newTestHubOn(t, func(s store.Store) store.Store { counted.Store = s; return counted })
	a := th.agent("box", nil, nil)
	b := th.agent("other", nil, nil)
	newer := inventoryOf(20, res("mount", "/", wire.ResourceDegraded))
	if st, body := report(a, newer); st != 204 {
		t.Fatalf("report: %d %s", st, body)
	}
	key := layout.AgentResources(a.ID)
	counted.reset()
	if st, body := report(a, newer); st != 204 || counted.puts(key) != 0 {
		t.Errorf("the same report again: %d %s, %d writes; want 204 and none", st, body, counted.puts(key))
	}
	if st, body := report(a, inventoryOf(19, res("mount", "/", wire.ResourceOK))); st != 409 || !strings.Contains(body, "came late") || counted.puts(key) != 0 {
		t.Errorf("a late report: %d %s; want 409 saying it came late, nothing written", st, body)
	}
	var one struct{ Resources []struct{ Status string } }
	th.call(th.admin, "GET", "/v1/agents/box/resources", nil, &one)
	if len(one.Resources) != 1 || one.Resources[0].Status != wire.ResourceDegraded {
		t.Errorf("after the late report: %+v, want the newer one kept", one)
	}

	if err := b.Signed(context.Background(), "PUT", "/v1/agents/"+a.ID+"/resources", inventoryOf(30, res("mount", "/", wire.ResourceOK)), nil); err == nil {
		t.Error("an agent reported for another")
	} else if st, body := status(err); st != 403 || !strings.Contains(body, "cannot act for agent") {
		t.Errorf("an agent reporting for another: %d %s, want 403", st, body)
	}

	for _, tc := range []struct {
		name string
		rep  wire.InventoryReport
		want string
	}{
		{"duplicate id", inventoryOf(40, res("disk", "sda", wire.ResourceOK), res("disk", "sda", wire.ResourceOK)), "disk/sda appears twice"},
		{"missing parent", inventoryOf(41, wire.Resource{Type: "unit", ID: "p/u", Parent: "plan/p", Status: wire.ResourceOK}), "parent \\\"plan/p\\\" is no resource"},
		{"bad type", inventoryOf(42, res("Disk", "sda", wire.ResourceOK)), "type \\\"Disk\\\""},
		{"too many attributes", func() wire.InventoryReport {
			r := res("disk", "sda", wire.ResourceOK)
			r.Attributes = map[string]any{}
			for i := range wire.MaxResourceAttributes + 1 {
				r.Attributes[string(rune('a'+i%26))+strings.Repeat("x", i)] = i
			}
			return inventoryOf(43, r)
		}(), "33 attributes, at most 32"},
		{"no seq", inventoryOf(0), "seq counts from 1"},
		{"from the future", wire.InventoryReport{Seq: 44, At: time.Now().Add(time.Hour)}, "after the hub's clock"},
	} {
		counted.reset()
		st, body := report(a, tc.rep)
		if st != 422 || !strings.Contains(body, tc.want) || !strings.Contains(body, `"status":422`) || counted.puts(key) != 0 {
			t.Errorf("%s: %d %s; want a 422 problem naming %q, nothing stored", tc.name, st, body, tc.want)
		}
	}
	if st, body := report(a, map[string]any{"seq": 50, "at": time.Now(), "resources": []map[string]any{{"type": "disk", "id": "sda", "status": "broken"}}}); st != 422 || !strings.Contains(body, "status") {
		t.Errorf("an unknown status: %d %s", st, body)
	}
}

// TestResourcesListCost: listing the inventory costs no store request for the resources while the
// instance's copy is fresh, one LIST and no GET after it when nothing changed, and one GET per agent
// whose report changed; a retired agent's resources are left out and its report deleted.
func TestResourcesListCost(t *testing.T) {
	counted := &countingStore{}
	th := newTestHubOn(t, func(s store.Store) store.Store { counted.Store = s; return counted })
	th.h.Resources.Fresh = 300 * time.Millisecond
	const n = 12
	var agents []*simagent.Agent
	for i := range n {
		a := th.agent("n"+string(rune('a'+i)), nil, nil)
		agents = append(agents, a)
		if st, body := report(a, inventoryOf(1, res("mount", "/", wire.ResourceOK))); st != 204 {
			t.Fatalf("report: %d %s", st, body)
		}
	}
	count := func() (lists, gets int) {
		for _, r := range counted.keys() {
			switch {
			case r == "LIST "+layout.Resources:
				lists++
			case strings.HasPrefix(r, "GET "+layout.Resources):
				gets++
			}
		}
		return
	}
	time.Sleep(400 * time.Millisecond)
	counted.reset()
	var out resourceList
	th.call(th.admin, "GET", "/v1/resources", nil, &out)
	if lists, gets := count(); len(out.Resources) != n || lists != 1 || gets != 0 {
		t.Errorf("first list after the copy went stale: %d resources, %d LISTs, %d GETs; want %d, 1 and 0 (every report was written through this instance)", len(out.Resources), lists, gets, n)
	}
	counted.reset()
	for range 5 {
		th.call(th.admin, "GET", "/v1/resources?type=mount", nil, nil)
	}
	if lists, gets := count(); lists != 0 || gets != 0 {
		t.Errorf("five lists while the copy is fresh: %d LISTs, %d GETs; want none", lists, gets)
	}

	// Another instance takes a report (written to the bucket past this instance's room): this one
	// reads that object alone when its copy goes stale.
	later := resources.Stored{Agent: agents[0].ID, InventoryReport: inventoryOf(2, res("mount", "/", wire.ResourceFailed)), ReceivedAt: time.Now().UTC()}
	if err := store.PutJSON(context.Background(), th.h.Store, layout.AgentResources(agents[0].ID), later); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	counted.reset()
	th.call(th.admin, "GET", "/v1/resources?status=failed", nil, &out)
	if lists, gets := count(); len(out.Resources) != 1 || lists != 1 || gets > 1 {
		t.Errorf("after one report: %v, %d LISTs, %d GETs; want it, 1 LIST and at most 1 GET", out.keys(), lists, gets)
	}

	if st := th.call(th.admin, "POST", "/v1/agents/"+agents[1].ID+"/retire", map[string]any{"reason": "gone"}, nil); st != 200 {
		t.Fatalf("retire: %d", st)
	}
	time.Sleep(2500 * time.Millisecond) // the fleet's listing of agents is reused for 2 s
	th.call(th.admin, "GET", "/v1/resources", nil, &out)
	for _, r := range out.Resources {
		if r.Agent == agents[1].ID {
			t.Errorf("a retired agent's resource listed: %+v", r)
		}
	}
	if ok, _ := store.Exists(context.Background(), th.h.Store, layout.AgentResources(agents[1].ID)); ok {
		t.Error("a retired agent's inventory is still stored")
	}
}

// TestMeasureInventoryCost measures what the inventory costs in store requests with
// PULSE_MEASURE_INVENTORY agents (e.g. 1000), each reporting ten resources: a report, a query on a
// cold instance, queries while its copy is fresh, and one after it went stale with nothing changed.
// It is skipped unless the variable is set (docs/inventory.md has the figures).
func TestMeasureInventoryCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PULSE_MEASURE_INVENTORY"))
	if n <= 0 {
		t.Skip("set PULSE_MEASURE_INVENTORY=1000 to measure")
	}
	counted := &countingStore{}
	th := newTestHubOn(t, func(s store.Store) store.Store { counted.Store = s; return counted })
	ctx := context.Background()
	var tok struct{ Token string }
	if st := th.call(th.admin, "POST", "/v1/enroll-tokens", map[string]any{"uses": n}, &tok); st != 201 {
		t.Fatalf("enroll token: %d", st)
	}
	rep := inventoryOf(1)
	for i := range 10 {
		rep.Resources = append(rep.Resources, wire.Resource{Type: "mount", ID: fmt.Sprintf("/srv/%d", i), Status: wire.ResourceOK, ChangedAt: time.Now().UTC(),
			Attributes: map[string]any{"device": fmt.Sprintf("/dev/vd%c1", 'a'+i), "fstype": "ext4", "sizeBytes": 274877906944, "usedRatio": 0.33, "readOnly": false}})
	}
	body, _ := json.Marshal(rep)
	var reportPuts, reportGets int
	for i := range n {
		var a *simagent.Agent
		for {
			var err error
			if a, err = simagent.Enroll(ctx, th.url, tok.Token, fmt.Sprintf("m%04d", i), nil); err == nil {
				break
			} else if st, _ := status(err); st != 429 {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if i == 0 {
			counted.reset()
		}
		if st, b := report(a, rep); st != 204 {
			t.Fatalf("report: %d %s", st, b)
		}
		if i == 0 {
			for _, r := range counted.keys() {
				reportPuts += strings.Count(r, "PUT "+layout.Resources)
				reportGets += strings.Count(r, "GET "+layout.Resources)
			}
		}
	}
	size := 0
	if obj, err := th.h.Store.(*signed.Store).Inner().Get(ctx, layout.AgentResources(mustFirst(th.stored(layout.Resources))), store.GetOptions{}); err == nil {
		b, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		size = len(b)
	}
	t.Logf("one report of 10 resources: %d bytes as sent, %d bytes stored; %d GET and %d PUT of the room", len(body), size, reportGets, reportPuts)

	measure := func(what string, fn func()) {
		counted.reset()
		start := time.Now()
		fn()
		byOp := map[string]int{}
		room := 0
		for _, r := range counted.keys() {
			op, key, _ := strings.Cut(r, " ")
			byOp[op]++
			if strings.HasPrefix(key, layout.Resources) {
				room++
			}
		}
		t.Logf("%s: %s, %d requests of the room's prefix, all requests %v", what, time.Since(start).Round(time.Millisecond), room, byOp)
	}
	th.h.Resources = &resources.Service{Store: th.h.Store, Log: th.h.Log, Fleet: th.h.Fleet}
	measure(fmt.Sprintf("a cold instance lists %d agents' resources", n), func() { th.call(th.admin, "GET", "/v1/resources?status=failed", nil, nil) })
	measure("ten more lists while its copy is fresh", func() {
		for range 10 {
			th.call(th.admin, "GET", "/v1/resources?type=mount&limit=10", nil, nil)
		}
	})
	th.h.Resources.Fresh = time.Millisecond
	time.Sleep(2100 * time.Millisecond) // past the fleet's own listing cache too
	measure("a list after its copy went stale, nothing changed", func() { th.call(th.admin, "GET", "/v1/resources?status=failed", nil, nil) })
}

func mustFirst(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return layout.Name(keys[0])
}
