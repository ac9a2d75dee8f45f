package hub_test

import (
	"context"
	"testing"

	"github.com/pulsehq/pulse/agent/wire"
)

// TestFleetAPI: one agent by name, its labels changed (selectors follow at once), enrollment tokens
// listed and revoked, and a retired agent refused from then on.
func TestFleetAPI(t *testing.T) {
	th := newTestHub(t)
	a := th.agent("web-1", map[string]string{"env": "dev"}, nil)
	var got struct {
		ID     string
		Labels map[string]string
	}
	if st := th.call(th.admin, "GET", "/v1/agents/web-1", nil, &got); st != 200 || got.ID != a.ID {
		t.Fatalf("get by name: %d %+v", st, got)
	}
	if st := th.call(th.admin, "PUT", "/v1/agents/"+a.ID+"/labels", map[string]any{"labels": map[string]string{"env": "prod"}}, &got); st != 200 || got.Labels["env"] != "prod" {
		t.Fatalf("set labels: %d %+v", st, got)
	}
	// A second change is a second version (a version computed wrongly would collide with the first).
	if st := th.call(th.admin, "PUT", "/v1/agents/"+a.ID+"/labels", map[string]any{"labels": map[string]string{"env": "prod", "tier": "1"}}, &got); st != 200 || got.Labels["tier"] != "1" {
		t.Fatalf("set labels again: %d %+v", st, got)
	}
	if st := th.call(th.admin, "GET", "/v1/agents/"+a.ID, nil, &got); st != 200 || got.Labels["tier"] != "1" {
		t.Fatalf("get by id after two changes: %d %+v", st, got)
	}
	for _, missing := range []string{"nope", "ag-0000", "a%2Fb"} {
		if st := th.call(th.admin, "GET", "/v1/agents/"+missing, nil, nil); st != 404 {
			t.Errorf("GET /v1/agents/%s: %d, want 404", missing, st)
		}
	}
	var list struct{ Agents []struct{ ID string } }
	if st := th.call(th.admin, "GET", "/v1/agents?selector=env=prod", nil, &list); st != 200 || len(list.Agents) != 1 {
		t.Fatalf("selector on the new labels: %d %+v", st, list)
	}
	if st := th.call(th.admin, "PUT", "/v1/agents/"+a.ID+"/labels", map[string]any{"labels": map[string]string{"bad key": "x"}}, nil); st != 422 {
		t.Errorf("a bad label: %d, want 422", st)
	}
	var toks struct {
		Tokens []struct {
			ID   string
			Used int
		}
	}
	if st := th.call(th.admin, "GET", "/v1/enroll-tokens", nil, &toks); st != 200 || len(toks.Tokens) != 1 || toks.Tokens[0].Used != 1 {
		t.Fatalf("enroll tokens: %d %+v", st, toks)
	}
	if st := th.call(th.admin, "DELETE", "/v1/enroll-tokens/"+toks.Tokens[0].ID, nil, nil); st != 204 {
		t.Fatalf("revoke enroll token: %d", st)
	}
	if st := th.call(th.admin, "POST", "/v1/agents/"+a.ID+"/retire", map[string]any{"reason": "decommissioned"}, nil); st != 200 {
		t.Fatalf("retire: %d", st)
	}
	if err := a.Heartbeat(context.Background()); err == nil {
		t.Error("a retired agent's heartbeat was accepted")
	}
	if st := th.call(th.admin, "GET", "/v1/agents", nil, &list); st != 200 || len(list.Agents) != 0 {
		t.Errorf("agents after retirement: %d %+v", st, list)
	}
	viewer := th.token("eve", "viewer")
	if st := th.call(viewer, "POST", "/v1/agents/"+a.ID+"/retire", nil, nil); st != 403 {
		t.Errorf("a viewer retires an agent: %d, want 403", st)
	}
}

// TestAgentCatalog: one agent's view carries its catalog with each parameter's pattern and cap (what
// the dashboard's run form validates with before sending); the list names the commands only.
func TestAgentCatalog(t *testing.T) {
	th := newTestHub(t)
	cat := []wire.CommandSpec{{Name: "count_to", Group: "exec", Params: []wire.ParamSpec{{Name: "n", Pattern: "[0-9]{1,8}", MaxBytes: 8, Required: true}}}}
	a := th.agent("web-1", nil, cat)
	var one struct {
		Commands []string
		Catalog  []wire.CommandSpec
	}
	if st := th.call(th.admin, "GET", "/v1/agents/"+a.ID, nil, &one); st != 200 {
		t.Fatalf("get: %d", st)
	}
	if len(one.Catalog) != 1 || len(one.Catalog[0].Params) != 1 || one.Catalog[0].Params[0].Pattern != "[0-9]{1,8}" || one.Catalog[0].Params[0].MaxBytes != 8 || !one.Catalog[0].Params[0].Required {
		t.Fatalf("catalog of one agent: %+v", one.Catalog)
	}
	var list struct {
		Agents []map[string]any
	}
	if st := th.call(th.admin, "GET", "/v1/agents", nil, &list); st != 200 || len(list.Agents) != 1 {
		t.Fatalf("list: %d %+v", st, list)
	}
	if _, ok := list.Agents[0]["catalog"]; ok {
		t.Errorf("the list carries whole catalogs: %+v", list.Agents[0])
	}
}
