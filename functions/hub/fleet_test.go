package hub_test

import (
	"context"
	"testing"
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
