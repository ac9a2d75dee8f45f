package hub_test

import (
	"strings"
	"testing"

	"github.com/pulsehq/pulse/functions/hub/plans"
	"github.com/pulsehq/pulse/functions/layout"
)

// proposalAnswer is an apply's answer when it awaits approvals.
type proposalAnswer struct {
	Version  int
	Agents   []string
	Proposal *plans.ProposalView
	Detail   string
}

// TestPlanOnProdAwaitsApproval: an apply the policy allows only after approvals (a plan on env=prod
// agents) stores a proposal and nothing else; its proposer, a viewer and an admin twice cannot make
// it count; a second admin's approval applies it as proposed; a denied proposal is over; a proposal
// overtaken by a newer version is stale and changes nothing.
func TestPlanOnProdAwaitsApproval(t *testing.T) {
	th := newTestHub(t)
	web1 := th.agent("web-1", map[string]string{"role": "web", "env": "prod"}, nil)
	th.agent("web-2", map[string]string{"role": "web", "env": "prod"}, nil)
	// People onboarded by root: a token root made never approves what root proposed.
	alice, bob, carol := th.token("alice", "admin"), th.token("bob", "admin"), th.token("carol", "admin")

	var a proposalAnswer
	if st := th.call(alice, "PUT", "/v1/plans/web", map[string]any{"source": webPlan("v1")}, &a); st != 200 || a.Proposal == nil ||
		a.Proposal.State != plans.ProposalAwaiting || a.Proposal.Approvals.Count != 1 || len(a.Agents) != 0 {
		t.Fatalf("apply on prod: %d %+v, want a proposal awaiting one approval", st, a)
	}
	id := a.Proposal.ID
	if keys := th.stored(layout.PlanVersionsOf("web")); len(keys) != 0 {
		t.Fatalf("a proposal stored versions %v", keys)
	}
	if got := planVersions(t, web1); len(got) != 0 {
		t.Fatalf("web-1 got %v before any approval", got)
	}

	var p struct{ Detail string }
	approve := "/v1/plans/web/proposals/" + id + "/approve"
	if st := th.call(alice, "POST", approve, nil, &p); st != 403 || !strings.Contains(p.Detail, "someone else must approve") {
		t.Errorf("the proposer approves: %d %q, want 403", st, p.Detail)
	}
	if st := th.call(th.token("eve", "viewer"), "POST", approve, nil, &p); st != 403 || !strings.Contains(p.Detail, "approve-plan") {
		t.Errorf("a viewer approves: %d %q, want 403 naming approve-plan", st, p.Detail)
	}
	var pv plans.ProposalView
	if st := th.call(bob, "POST", approve, map[string]any{"comment": "looks right"}, &pv); st != 200 || pv.State != plans.ProposalDone || !strings.Contains(pv.Outcome, "version 1") {
		t.Fatalf("bob approves: %d %+v, want it applied as version 1", st, pv)
	}
	if st := th.call(carol, "POST", approve, nil, &p); st != 409 {
		t.Errorf("approving a done proposal: %d %q, want 409", st, p.Detail)
	}
	var v plans.Version
	th.call(th.admin, "GET", "/v1/plans/web", nil, &v)
	if v.Version != 1 || v.Proposal != id || v.ProposedBy == "" || !strings.Contains(v.Source, `"v1"`) {
		t.Fatalf("version 1: %+v", v)
	}
	if got := planVersions(t, web1); got["web"] != 1 {
		t.Fatalf("web-1 fetches %v after the approval", got)
	}

	// Two proposals at once: the first approved wins, the other is stale; a denial ends a third.
	var a2, a3, a4 proposalAnswer
	th.call(alice, "PUT", "/v1/plans/web", map[string]any{"source": webPlan("v2")}, &a2)
	th.call(alice, "PUT", "/v1/plans/web", map[string]any{"source": webPlan("v3")}, &a3)
	th.call(alice, "PUT", "/v1/plans/web", map[string]any{"source": webPlan("v4")}, &a4)
	if a2.Proposal == nil || a3.Proposal == nil || a4.Proposal == nil {
		t.Fatalf("proposals: %+v %+v %+v", a2, a3, a4)
	}
	if st := th.call(bob, "POST", "/v1/plans/web/proposals/"+a3.Proposal.ID+"/approve", nil, &pv); st != 200 || pv.State != plans.ProposalDone {
		t.Fatalf("approve v3: %d %+v", st, pv)
	}
	if st := th.call(bob, "POST", "/v1/plans/web/proposals/"+a2.Proposal.ID+"/approve", nil, &pv); st != 200 || pv.State != plans.ProposalStale || !strings.Contains(pv.Outcome, "changed since") {
		t.Fatalf("approve v2 after v3: %d %+v, want stale", st, pv)
	}
	if st := th.call(carol, "POST", "/v1/plans/web/proposals/"+a4.Proposal.ID+"/deny", map[string]any{"comment": "not today"}, &pv); st != 200 || pv.State != plans.ProposalDenied {
		t.Fatalf("deny v4: %d %+v", st, pv)
	}
	th.call(th.admin, "GET", "/v1/plans/web", nil, &v)
	if v.Version != 2 || !strings.Contains(v.Source, `"v3"`) {
		t.Fatalf("newest version: %d %q, want version 2 with v3's content", v.Version, v.Source)
	}
	var list struct{ Proposals []plans.ProposalView }
	if st := th.call(th.token("eve", "viewer"), "GET", "/v1/plans/web/proposals", nil, &list); st != 200 || len(list.Proposals) != 4 {
		t.Fatalf("proposals: %d %+v", st, list)
	}
	states := map[string]string{}
	for _, p := range list.Proposals {
		states[p.ID] = p.State
	}
	if states[id] != plans.ProposalDone || states[a2.Proposal.ID] != plans.ProposalStale || states[a4.Proposal.ID] != plans.ProposalDenied {
		t.Errorf("states: %v", states)
	}
	if st := th.call(bob, "POST", "/v1/plans/web/proposals/pp-nothing/approve", nil, &p); st != 404 {
		t.Errorf("no such proposal: %d", st)
	}

	// Promoting a rollout on prod is proposed too; once approved it releases the wave after the ones
	// released when it was proposed, and only that one.
	var a5 proposalAnswer
	th.call(alice, "PUT", "/v1/plans/web", map[string]any{"source": rolledPlan("v5", "{first: 1, waves: 1}")}, &a5)
	th.call(bob, "POST", "/v1/plans/web/proposals/"+a5.Proposal.ID+"/approve", nil, &pv)
	var r plans.RolloutView
	if st := th.call(alice, "POST", "/v1/plans/web/rollout/promote", nil, &r); st != 200 || r.Proposal == nil || r.Released != 1 {
		t.Fatalf("promote on prod: %d %+v, want a proposal and wave 1 only", st, r)
	}
	if st := th.call(carol, "POST", "/v1/plans/web/proposals/"+r.Proposal.ID+"/approve", nil, &pv); st != 200 || pv.State != plans.ProposalDone || !strings.Contains(pv.Outcome, "2 wave(s) released") {
		t.Fatalf("approve the promotion: %d %+v", st, pv)
	}
}
