package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/plans"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// rolledPlan is webPlan with a rollout section.
func rolledPlan(content, rollout string) string {
	return webPlan(content) + "rollout: " + rollout + "\n"
}

// sixWeb enrolls six web servers, sorted by id (the order waves are cut in).
func sixWeb(th *testHub) []*simagent.Agent {
	var out []*simagent.Agent
	for i := range 6 {
		out = append(out, th.agent(fmt.Sprintf("web-%d", i+1), map[string]string{"role": "web"}, nil))
	}
	slices.SortFunc(out, func(a, b *simagent.Agent) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// reportPlan has agent a report the plan version it fetches, every unit in state (failed ones with
// a reason).
func reportPlan(t *testing.T, a *simagent.Agent, name, state string) int {
	t.Helper()
	ctx := context.Background()
	works, err := a.Plans(ctx)
	if err != nil {
		t.Fatalf("%s fetches: %v", a.Name, err)
	}
	for _, w := range works {
		if w.Plan.Name != name {
			continue
		}
		st := wire.PlanStatus{Plan: name, Version: w.Plan.Version}
		for _, u := range w.Plan.Units {
			us := wire.UnitStatus{Unit: u.Name, Type: u.Type, State: state, Desired: u.Digest(), ChangedAt: time.Now().UTC()}
			if state == wire.UnitFailed {
				us.Reason = "health check never passed"
			}
			st.Units = append(st.Units, us)
		}
		if err := a.ReportPlan(ctx, st); err != nil {
			t.Fatalf("%s reports: %v", a.Name, err)
		}
		return w.Plan.Version
	}
	t.Fatalf("%s got no plan %s", a.Name, name)
	return 0
}

func (th *testHub) rollout(name string) plans.RolloutView {
	th.t.Helper()
	var v plans.RolloutView
	if st := th.call(th.admin, "GET", "/v1/plans/"+name+"/rollout", nil, &v); st != 200 {
		th.t.Fatalf("get rollout: %d", st)
	}
	return v
}

// versionsOf is the plan version each agent gets, in the agents' order.
func versionsOf(t *testing.T, name string, agents []*simagent.Agent) []int {
	t.Helper()
	var out []int
	for _, a := range agents {
		out = append(out, planVersions(t, a)[name])
	}
	return out
}

// TestPlanRollout: a version with a rollout goes to its first wave only; the tick releases the next
// wave once the one before converged and its health condition held; a failed unit halts it there, and
// the agents after keep the version before; a rollback is a new version with the earlier content that
// reaches everyone at once.
func TestPlanRollout(t *testing.T) {
	th := newTestHub(t)
	th.h.Plans.RolloutEvery = time.Nanosecond
	web := sixWeb(th)
	ctx := context.Background()
	if st, out := th.applyPlan(th.admin, "web", webPlan("v1")); st != 200 || len(out.Agents) != 6 {
		t.Fatalf("apply v1: %d %+v", st, out)
	}
	for _, a := range web {
		reportPlan(t, a, "web", wire.UnitConverged)
	}

	st, out := th.applyPlan(th.admin, "web", rolledPlan("v2", `{first: 2, waves: 2, health: 'units.all(u, u.state == "converged")'}`))
	if st != 200 || out.Version != 2 || !sameSet(out.Agents, []string{web[0].ID, web[1].ID}) {
		t.Fatalf("apply v2: %d %+v, want it sent to the first two agents by id", st, out)
	}
	if got := versionsOf(t, "web", web); !slices.Equal(got, []int{2, 2, 1, 1, 1, 1}) {
		t.Fatalf("versions fetched after the apply: %v, want wave 1 on v2, the rest on v1", got)
	}
	r := th.rollout("web")
	if r.State != plans.RolloutRolling || r.Released != 1 || len(r.Waves) != 3 || len(r.Waves[1].Agents) != 2 {
		t.Fatalf("rollout: %+v", r)
	}

	th.h.Tick(ctx) // wave 1 has not reported v2: nothing moves
	if got := versionsOf(t, "web", web); !slices.Equal(got, []int{2, 2, 1, 1, 1, 1}) {
		t.Fatalf("versions before wave 1 converged: %v", got)
	}
	reportPlan(t, web[0], "web", wire.UnitConverged)
	th.h.Tick(ctx) // one of two converged: still nothing
	if r := th.rollout("web"); r.Released != 1 {
		t.Fatalf("wave 2 released before wave 1 converged: %+v", r)
	}
	reportPlan(t, web[1], "web", wire.UnitConverged)
	th.h.Tick(ctx)
	if got := versionsOf(t, "web", web); !slices.Equal(got, []int{2, 2, 2, 2, 1, 1}) {
		t.Fatalf("versions after wave 1 converged: %v, want wave 2 on v2", got)
	}

	reportPlan(t, web[2], "web", wire.UnitConverged)
	reportPlan(t, web[3], "web", wire.UnitFailed)
	th.h.Tick(ctx)
	r = th.rollout("web")
	if r.State != plans.RolloutHalted || r.Released != 2 || !strings.Contains(r.Reason, web[3].ID) || !strings.Contains(r.Reason, "health check never passed") {
		t.Fatalf("rollout after a failure in wave 2: %+v, want halted naming the agent and the reason", r)
	}
	if r.Waves[1].Failed != 1 || r.Waves[0].Converged != 2 {
		t.Errorf("waves: %+v", r.Waves)
	}
	th.h.Tick(ctx)
	if got := versionsOf(t, "web", web); !slices.Equal(got, []int{2, 2, 2, 2, 1, 1}) {
		t.Fatalf("versions after the halt: %v, want wave 3 still on v1", got)
	}

	// A viewer reads it but may not touch it; resuming with the failure still there halts again.
	viewer := th.token("eve", "viewer")
	var view plans.RolloutView
	if st := th.call(viewer, "GET", "/v1/plans/web/rollout", nil, &view); st != 200 || view.State != plans.RolloutHalted {
		t.Fatalf("viewer reads the rollout: %d %+v", st, view)
	}
	var problem struct{ Detail string }
	if st := th.call(viewer, "POST", "/v1/plans/web/rollout/resume", nil, &problem); st != 403 || !strings.Contains(problem.Detail, "resume-rollout") {
		t.Fatalf("viewer resumes: %d %q, want 403 naming the action", st, problem.Detail)
	}
	if st := th.call(th.admin, "POST", "/v1/plans/web/rollout/promote", nil, &problem); st != 409 || !strings.Contains(problem.Detail, "resume it first") {
		t.Fatalf("promote while halted: %d %q, want 409", st, problem.Detail)
	}
	if st := th.call(th.admin, "POST", "/v1/plans/web/rollout/resume", map[string]any{"reason": "looked at it"}, &view); st != 200 || view.State != plans.RolloutRolling {
		t.Fatalf("resume: %d %+v", st, view)
	}
	th.h.Tick(ctx)
	if r := th.rollout("web"); r.State != plans.RolloutHalted {
		t.Fatalf("resumed with the failure still there: %+v, want halted again", r)
	}

	// Roll back: version 3 has version 1's content, no rollout, and reaches every agent.
	var rb applied
	if st := th.call(th.admin, "POST", "/v1/plans/web/rollback", nil, &rb); st != 200 || rb.Version != 3 || len(rb.Agents) != 6 {
		t.Fatalf("rollback: %d %+v", st, rb)
	}
	if got := versionsOf(t, "web", web); !slices.Equal(got, []int{3, 3, 3, 3, 3, 3}) {
		t.Fatalf("versions after the rollback: %v", got)
	}
	var v3 plans.Version
	th.call(th.admin, "GET", "/v1/plans/web", nil, &v3)
	if v3.RollbackOf != 2 || v3.RolledBackTo != 1 || v3.Rollout != nil || !strings.Contains(v3.Source, `"v1"`) {
		t.Fatalf("version 3: %+v", v3)
	}
	var status planStatusView
	th.call(th.admin, "GET", "/v1/plans/web/status", nil, &status)
	if status.Version != 3 {
		t.Fatalf("status: %+v", status)
	}
	if st := th.call(th.admin, "GET", "/v1/plans/web/rollout", nil, &problem); st != 404 || !strings.Contains(problem.Detail, "has no rollout") {
		t.Fatalf("rollout of version 3: %d %q", st, problem.Detail)
	}
}

// TestRolloutOperations: pause holds a converged wave back, promote releases the next wave at once,
// abort ends it for good with the waves it reached, and every operation on an ended rollout is a 409.
func TestRolloutOperations(t *testing.T) {
	th := newTestHub(t)
	th.h.Plans.RolloutEvery = time.Nanosecond
	web := sixWeb(th)
	ctx := context.Background()
	th.applyPlan(th.admin, "web", webPlan("v1"))
	if st, out := th.applyPlan(th.admin, "web", rolledPlan("v2", `{first: 1, waves: 5}`)); st != 200 || len(out.Agents) != 1 {
		t.Fatalf("apply v2: %d %+v", st, out)
	}
	var view plans.RolloutView
	if st := th.call(th.admin, "POST", "/v1/plans/web/rollout/pause", map[string]any{"reason": "lunch"}, &view); st != 200 || view.State != plans.RolloutPaused || view.Reason != "lunch" {
		t.Fatalf("pause: %d %+v", st, view)
	}
	reportPlan(t, web[0], "web", wire.UnitConverged)
	th.h.Tick(ctx)
	if got := versionsOf(t, "web", web); !slices.Equal(got, []int{2, 1, 1, 1, 1, 1}) {
		t.Fatalf("paused, wave 1 converged: %v, want nothing more released", got)
	}
	if st := th.call(th.admin, "POST", "/v1/plans/web/rollout/promote", nil, &view); st != 200 || view.Released != 2 || view.State != plans.RolloutPaused {
		t.Fatalf("promote: %d %+v", st, view)
	}
	if got := versionsOf(t, "web", web); !slices.Equal(got, []int{2, 2, 1, 1, 1, 1}) {
		t.Fatalf("after promote: %v", got)
	}
	if st := th.call(th.admin, "POST", "/v1/plans/web/rollout/abort", map[string]any{"reason": "enough"}, &view); st != 200 || view.State != plans.RolloutAborted {
		t.Fatalf("abort: %d %+v", st, view)
	}
	var problem struct{ Detail string }
	for _, op := range []string{"pause", "resume", "promote", "abort"} {
		if st := th.call(th.admin, "POST", "/v1/plans/web/rollout/"+op, nil, &problem); st != 409 || !strings.Contains(problem.Detail, "aborted") {
			t.Errorf("%s after abort: %d %q, want 409", op, st, problem.Detail)
		}
	}
	th.h.Tick(ctx)
	if got := versionsOf(t, "web", web); !slices.Equal(got, []int{2, 2, 1, 1, 1, 1}) {
		t.Fatalf("aborted: %v, want the released agents on v2 and the rest on v1", got)
	}
	// A new version with a rollout that completes reaches every agent.
	if st, _ := th.applyPlan(th.admin, "web", rolledPlan("v3", `{first: 50%, waves: 1}`)); st != 200 {
		t.Fatal("apply v3")
	}
	for round := 0; round < 3; round++ {
		for _, a := range web {
			if planVersions(t, a)["web"] == 3 {
				reportPlan(t, a, "web", wire.UnitConverged)
			}
		}
		th.h.Tick(ctx)
	}
	if r := th.rollout("web"); r.State != plans.RolloutCompleted {
		t.Fatalf("v3's rollout: %+v, want completed", r)
	}
	if got := versionsOf(t, "web", web); !slices.Equal(got, []int{3, 3, 3, 3, 3, 3}) {
		t.Fatalf("completed: %v", got)
	}
}

// TestPlanStream: a plan's live stream sends the plan as a whole, then every agent, then each change
// as it is stored (a report, a rollout's step); a reconnect with Last-Event-ID is not sent again the
// agents it had; a viewer may watch; a missing plan is a 404 problem before any stream.
func TestPlanStream(t *testing.T) {
	th := newTestHub(t)
	th.h.Plans.RolloutEvery = time.Nanosecond
	web := sixWeb(th)[:2]
	th.applyPlan(th.admin, "web", webPlan("v1"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	viewer := th.token("eve", "viewer")
	ch := th.stream(ctx, viewer, "/v1/plans/web/events", "")
	if e := next(t, ch, "plan"); e.Data["version"] != float64(1) || e.Data["agents"] != float64(6) {
		t.Fatalf("first plan event: %+v", e.Data)
	}
	for range 6 {
		if e := next(t, ch, "agent"); e.Data["version"] != float64(0) {
			t.Fatalf("an agent before any report: %+v", e.Data)
		}
	}
	reportPlan(t, web[0], "web", wire.UnitConverged)
	// The plan as a whole comes first in a look, then the agents that changed.
	if p := next(t, ch, "plan"); p.Data["converged"] != float64(1) {
		t.Fatalf("plan after one converged: %+v", p.Data)
	}
	e := next(t, ch, "agent")
	if e.Data["agent"] != web[0].ID || e.Data["version"] != float64(1) || e.ID == "" {
		t.Fatalf("after web[0] reported: %+v (id %q)", e.Data, e.ID)
	}
	cancel()

	// Reconnecting with the id of web[0]'s event: the five that never reported, not web[0] again.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	ch2 := th.stream(ctx2, viewer, "/v1/plans/web/events", e.ID)
	next(t, ch2, "plan")
	for range 5 {
		if a := next(t, ch2, "agent"); a.Data["agent"] == web[0].ID {
			t.Fatalf("resumed stream sent web[0] again: %+v", a.Data)
		}
	}
	th.applyPlan(th.admin, "web", rolledPlan("v2", "{first: 1, waves: 1}"))
	if p := next(t, ch2, "plan"); p.Data["version"] != float64(2) || p.Data["rollout"] == nil {
		t.Fatalf("plan after a rollout started: %+v", p.Data)
	}
	var problem struct{ Status int }
	if st := th.call(viewer, "GET", "/v1/plans/nothing/events", nil, &problem); st != 404 {
		t.Fatalf("stream of no plan: %d", st)
	}
}

// TestRolloutAcrossHubs: two hub instances on one bucket tick the same rollout; each step is taken
// once (a wave released twice would be two events), and an agent fetching from the instance that did
// not release its wave gets the version within that instance's refresh.
func TestRolloutAcrossHubs(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "file:" + t.TempDir()
	one, other := startTestHub(t, url, priv, nil), startTestHub(t, url, priv, nil)
	for _, th := range []*testHub{one, other} {
		th.h.Plans.RolloutEvery = time.Nanosecond
		th.h.Plans.RefreshEvery = 50 * time.Millisecond
	}
	web := sixWeb(one)
	ctx := context.Background()
	one.applyPlan(one.admin, "web", webPlan("v1"))
	if st, _ := one.applyPlan(one.admin, "web", rolledPlan("v2", "{first: 3, waves: 1}")); st != 200 {
		t.Fatal("apply v2")
	}
	for _, a := range web[:3] {
		reportPlan(t, a, "web", wire.UnitConverged)
	}
	// Both tick at once, again and again: wave 2 is released once.
	var wg sync.WaitGroup
	for _, th := range []*testHub{one, other} {
		wg.Go(func() {
			for range 5 {
				th.h.Tick(ctx)
			}
		})
	}
	wg.Wait()
	r := one.rollout("web")
	released := 0
	for _, e := range r.Events {
		if e.Kind == "released" {
			released++
		}
	}
	if r.Released != 2 || released != 1 {
		t.Fatalf("rollout after both ticked: %+v, want wave 2 released by one event", r)
	}
	for _, a := range web[3:] {
		there := *a
		there.Hub = other.url
		deadline := time.Now().Add(10 * time.Second)
		for planVersions(t, &there)["web"] != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%s never got version 2 from the other instance", a.Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
