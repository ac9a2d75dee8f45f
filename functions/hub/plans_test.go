package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/hub/plans"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// webPlan is a plan for the agents labelled role=web whose one file holds content.
func webPlan(content string) string {
	return "targets: [role=web]\nunits:\n  - name: conf\n    type: file\n    notify: [app]\n    spec: {path: /etc/app.conf, content: \"" + content + "\"}\n" +
		"  - name: app\n    type: process\n    requires: [conf]\n    deadline: 30s\n    spec: {command: /usr/bin/sleep, args: [\"1000\"]}\n"
}

// applied is the answer to PUT /v1/plans/{name}, or its problem.
type applied struct {
	Name, Source string
	Version      int
	Targets      []string
	Plan         wire.Plan
	Unchanged    bool
	Agents       []string
	Detail       string
	Errors       []struct{ Location, Message string }
}

func (th *testHub) applyPlan(token, name, src string) (int, applied) {
	th.t.Helper()
	var out applied
	st := th.call(token, "PUT", "/v1/plans/"+name, map[string]any{"source": src}, &out)
	return st, out
}

// stored lists what the bucket holds under prefix, as the hub wrote it or not.
func (th *testHub) stored(prefix string) []string {
	th.t.Helper()
	var keys []string
	if err := store.Walk(context.Background(), th.bucket(), prefix, "", 0, func(o store.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		th.t.Fatal(err)
	}
	return keys
}

// fleetOfThree is two web servers and a database server.
func fleetOfThree(th *testHub) (web1, web2, db1 *simagent.Agent) {
	return th.agent("web-1", map[string]string{"role": "web"}, nil), th.agent("web-2", map[string]string{"role": "web"}, nil),
		th.agent("db-1", map[string]string{"role": "db"}, nil)
}

// planVersions returns the versions of the plans an agent fetches, by plan name.
func planVersions(t *testing.T, a *simagent.Agent) map[string]int {
	t.Helper()
	works, err := a.Plans(context.Background())
	if err != nil {
		t.Fatalf("%s fetches its plans: %v", a.Name, err)
	}
	out := map[string]int{}
	for _, w := range works {
		if w.Envelope.Agent != a.ID || w.Plan.Name == "" {
			t.Fatalf("%s got a plan envelope addressed to %q for %q", a.Name, w.Envelope.Addressees(), w.Plan.Name)
		}
		out[w.Plan.Name] = w.Plan.Version
	}
	return out
}

// TestPlanApplyRefusedWithPlaces: a broken plan is a 422 problem that places every problem at its
// line and column, and nothing is stored.
func TestPlanApplyRefusedWithPlaces(t *testing.T) {
	th := newTestHub(t)
	fleetOfThree(th)
	cases := []struct {
		name, src string
		want      []string // "location: message" prefixes, in order
	}{
		{"syntax", "targets: [role=web]\nunits:\n  - name: a\n   type: file\n", []string{"body.source:4:4: syntax error"}},
		{"undefined unit and unknown field", "targets: [role=web]\nunits:\n  - name: a\n    type: file\n    requires: [b]\n    spec: {}\n    color: red\n",
			[]string{`body.source:5:16 units[0].requires[0]: no unit named "b"`, `body.source:7:5 units[0].color: unknown field "color"`}},
		{"a target that matches no agent", "targets: [role=web, role=wbe]\nunits:\n  - {name: a, type: file, spec: {}}\n",
			[]string{`body.source:1:21 targets[1]: target "role=wbe" matches no agent`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, out := th.applyPlan(th.admin, "web", c.src)
			if st != 422 || !strings.HasPrefix(out.Detail, "plan web refused: ") {
				t.Fatalf("apply: %d %q, want a 422 saying plan web was refused", st, out.Detail)
			}
			var got []string
			for _, e := range out.Errors {
				got = append(got, e.Location+": "+e.Message)
			}
			if len(got) != len(c.want) {
				t.Fatalf("problems %q, want %d", got, len(c.want))
			}
			for i, w := range c.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d: %q, want it to start with %q", i, got[i], w)
				}
			}
		})
	}
	if st, out := th.applyPlan(th.admin, "Web-Plan", webPlan("x")); st != 422 || !strings.Contains(out.Detail, "plan name") {
		t.Errorf("a bad name: %d %q, want a 422 saying what a plan name may be", st, out.Detail)
	}
	if keys := th.stored(layout.Plans); len(keys) != 0 {
		t.Errorf("refused applies stored %v", keys)
	}
}

// TestPlanReachesItsTargets: a version goes, signed, to the agents its targets select (their poll
// and their fetch), never to another; the same source again writes nothing, a changed one is version
// 2, and an agent fetching its plans gets only the newest.
func TestPlanReachesItsTargets(t *testing.T) {
	th := newTestHub(t)
	web1, web2, db1 := fleetOfThree(th)
	ctx := context.Background()

	st, v1 := th.applyPlan(th.admin, "web", webPlan("port=8080"))
	if st != 200 || v1.Version != 1 || v1.Unchanged || v1.Plan.Name != "web" || v1.Plan.Version != 1 || len(v1.Plan.Units) != 2 {
		t.Fatalf("apply: %d %+v", st, v1)
	}
	if want := []string{web1.ID, web2.ID}; !sameSet(v1.Agents, want) {
		t.Errorf("sent to %v, want %v", v1.Agents, want)
	}
	works, _, err := web1.Poll(ctx, nil)
	if err != nil || len(works) != 1 {
		t.Fatalf("web-1 polls: %v %+v", err, works)
	}
	if w := works[0]; w.Envelope.Kind != wire.KindPlan || w.Envelope.ID != "plan-web-v1" || w.Plan.Version != 1 || w.Plan.Units[1].DeadlineSeconds != 30 {
		t.Errorf("web-1 got %+v", w)
	}
	if works, _, err := db1.Poll(ctx, nil); err != nil || len(works) != 0 {
		t.Errorf("db-1, not a target, polls: %v %+v", err, works)
	}
	for _, a := range []*simagent.Agent{web1, web2} {
		if got := planVersions(t, a); len(got) != 1 || got["web"] != 1 {
			t.Errorf("%s fetches %v, want web version 1", a.Name, got)
		}
	}
	if got := planVersions(t, db1); len(got) != 0 {
		t.Errorf("db-1, not a target, fetches %v", got)
	}

	st, again := th.applyPlan(th.admin, "web", webPlan("port=8080"))
	if st != 200 || !again.Unchanged || again.Version != 1 {
		t.Errorf("the same source again: %d %+v, want version 1 unchanged", st, again)
	}
	if keys := th.stored(layout.PlanVersionsOf("web")); len(keys) != 1 {
		t.Errorf("the same source again stored a version: %v", keys)
	}
	st, v2 := th.applyPlan(th.admin, "web", webPlan("port=9090"))
	if st != 200 || v2.Version != 2 || v2.Unchanged {
		t.Fatalf("a changed source: %d %+v, want version 2", st, v2)
	}
	if got := planVersions(t, web1); len(got) != 1 || got["web"] != 2 {
		t.Errorf("web-1 fetches %v after version 2, want only version 2", got)
	}
	var get struct {
		Version int
		Source  string
	}
	if st := th.call(th.admin, "GET", "/v1/plans/web", nil, &get); st != 200 || get.Version != 2 || !strings.Contains(get.Source, "port=9090") {
		t.Errorf("GET the plan: %d %+v", st, get)
	}
	var list struct {
		Plans []struct {
			Name           string
			Version, Units int
			Mode           string
		}
	}
	if st := th.call(th.token("eve", "viewer"), "GET", "/v1/plans", nil, &list); st != 200 || len(list.Plans) != 1 ||
		list.Plans[0].Version != 2 || list.Plans[0].Units != 2 || list.Plans[0].Mode != wire.ModeEnforce {
		t.Errorf("a viewer lists the plans: %d %+v", st, list)
	}
	if st := th.call(th.admin, "GET", "/v1/plans/nothing", nil, nil); st != 404 {
		t.Errorf("GET an unknown plan: %d, want 404", st)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// planStatusView is GET /v1/plans/{name}/status.
type planStatusView struct {
	Version   int
	Converged int
	Agents    []struct {
		Agent, Name, Refused    string
		Online                  bool
		Version, RefusedVersion int
		Units                   []struct{ Unit, State, Reason, Desired string }
	}
	Detail string
}

// TestPlanStatus: what a target reports shows in the plan's status beside the targets that have not
// reported; the same status again writes nothing; a status from an agent the plan does not target, or
// of a version the plan does not have, is refused and nothing is stored.
func TestPlanStatus(t *testing.T) {
	counted := &countingStore{}
	th := newTestHubOn(t, func(s store.Store) store.Store { counted.Store = s; return counted })
	web1, web2, db1 := fleetOfThree(th)
	ctx := context.Background()
	if st, out := th.applyPlan(th.admin, "web", webPlan("port=8080")); st != 200 {
		t.Fatalf("apply: %d %s", st, out.Detail)
	}
	works, err := web1.Plans(ctx)
	if err != nil || len(works) != 1 {
		t.Fatalf("fetch: %v %d", err, len(works))
	}
	p := works[0].Plan
	report := wire.PlanStatus{Plan: "web", Version: 1}
	for _, u := range p.Units {
		report.Units = append(report.Units, wire.UnitStatus{Unit: u.Name, Type: u.Type, State: wire.UnitConverged, Desired: u.Digest(), Observed: u.Digest(), ChangedAt: time.Now().UTC()})
	}
	statusKey := layout.PlanStatus("web", web1.ID)
	counted.reset()
	if err := web1.ReportPlan(ctx, report); err != nil {
		t.Fatalf("web-1 reports: %v", err)
	}
	if n := counted.puts(statusKey); n != 1 {
		t.Errorf("the first report wrote %d times, want 1", n)
	}
	report.At = time.Now().Add(time.Minute) // the same state, reported again later
	if err := web1.ReportPlan(ctx, report); err != nil {
		t.Fatalf("web-1 reports again: %v", err)
	}
	if n := counted.puts(statusKey); n != 1 {
		t.Errorf("an unchanged report was written again (%d writes)", n)
	}

	var view planStatusView
	if st := th.call(th.token("eve", "viewer"), "GET", "/v1/plans/web/status", nil, &view); st != 200 || view.Version != 1 || len(view.Agents) != 2 {
		t.Fatalf("status: %d %+v", st, view)
	}
	for _, a := range view.Agents {
		switch a.Agent {
		case web1.ID:
			if a.Name != "web-1" || a.Version != 1 || len(a.Units) != 2 || a.Units[0].State != wire.UnitConverged || a.Units[1].Unit != "app" {
				t.Errorf("web-1: %+v", a)
			}
		case web2.ID:
			if a.Version != 0 || len(a.Units) != 2 || a.Units[0].State != plans.UnitUnknown || a.Units[0].Reason != "no report yet" || a.Units[0].Desired != p.Units[0].Digest() {
				t.Errorf("web-2, which never reported: %+v", a)
			}
		default:
			t.Errorf("status shows %s, not a target", a.Agent)
		}
	}
	if view.Converged != 1 {
		t.Errorf("converged %d, want 1", view.Converged)
	}

	// A refusal shows too, and replaces what the agent said before.
	if err := web2.ReportPlan(ctx, wire.PlanStatus{Plan: "web", RefusedVersion: 1, Refused: "unit type process is not allowed here" + strings.Repeat("!", 2000)}); err != nil {
		t.Fatalf("web-2 reports a refusal: %v", err)
	}
	th.call(th.admin, "GET", "/v1/plans/web/status", nil, &view)
	for _, a := range view.Agents {
		if a.Agent == web2.ID && (a.RefusedVersion != 1 || !strings.HasPrefix(a.Refused, "unit type process") || len(a.Refused) > wire.MaxReasonBytes) {
			t.Errorf("web-2's refusal: %+v", a)
		}
	}

	var hErr *simagent.HTTPError
	err = db1.ReportPlan(ctx, wire.PlanStatus{Plan: "web", Version: 1})
	if !errors.As(err, &hErr) || hErr.Status != 409 || !strings.Contains(hErr.Body, "plan web does not target agent "+db1.ID) {
		t.Errorf("db-1, not a target, reports: %v, want a 409 naming the plan and the agent", err)
	}
	err = web1.ReportPlan(ctx, wire.PlanStatus{Plan: "web", Version: 7})
	if !errors.As(err, &hErr) || hErr.Status != 409 || !strings.Contains(hErr.Body, "reports version 7 of plan web") {
		t.Errorf("a version the plan does not have: %v, want a 409", err)
	}
	if err := web1.ReportPlan(ctx, wire.PlanStatus{Plan: "nothing", Version: 1}); !errors.As(err, &hErr) || hErr.Status != 404 {
		t.Errorf("a status of no plan: %v, want a 404", err)
	}
	if keys := th.stored(layout.PlanStatusesOf("web")); !sameSet(keys, []string{statusKey, layout.PlanStatus("web", web2.ID)}) {
		t.Errorf("statuses stored: %v", keys)
	}
	if keys := th.stored(layout.PlanOf("nothing")); len(keys) != 0 {
		t.Errorf("a status of no plan stored %v", keys)
	}
}

// TestPlantedPlanIsNeverServed: a plan version planted in the bucket (it fails the integrity check)
// reaches no agent, hides no genuine version and blocks no next version; the integrity view names it.
func TestPlantedPlanIsNeverServed(t *testing.T) {
	th := newTestHub(t)
	web1, _, db1 := fleetOfThree(th)
	everywhere := func(v int) plans.Version {
		return plans.Version{Name: "web", Version: v, Source: "targets: all", Targets: []string{"all"}, AppliedBy: "admin", AppliedAt: time.Now(),
			Plan: wire.Plan{Name: "web", Version: v, Units: []wire.Unit{{Name: "evil", Type: "file", Spec: json.RawMessage(`{"path":"/etc/sudoers"}`)}}}}
	}
	planted := layout.PlanVersion("web", 2)
	th.plant(planted, everywhere(2))
	th.plant(layout.PlanVersion("evil", 1), everywhere(1))
	if st, out := th.applyPlan(th.admin, "web", webPlan("port=8080")); st != 200 || out.Version != 1 {
		t.Fatalf("apply over a planted version 2: %d %+v, want version 1", st, out)
	}
	if got := planVersions(t, web1); len(got) != 1 || got["web"] != 1 {
		t.Errorf("web-1 fetches %v, want web version 1 only", got)
	}
	if got := planVersions(t, db1); len(got) != 0 {
		t.Errorf("db-1 fetches %v: the planted versions target all", got)
	}
	var get struct{ Version int }
	if st := th.call(th.admin, "GET", "/v1/plans/web", nil, &get); st != 200 || get.Version != 1 {
		t.Errorf("GET web: %d version %d, want version 1", st, get.Version)
	}
	if st := th.call(th.admin, "GET", "/v1/plans/evil", nil, nil); st != 404 {
		t.Errorf("GET the planted plan: %d, want 404", st)
	}
	th.refused(planted)
	if st, out := th.applyPlan(th.admin, "web", webPlan("port=9090")); st != 200 || out.Version != 2 {
		t.Fatalf("the next version, where one was planted: %d %+v", st, out)
	}
	works, err := web1.Plans(context.Background())
	if err != nil || len(works) != 1 || works[0].Plan.Version != 2 || works[0].Plan.Units[0].Name != "conf" {
		t.Errorf("web-1 fetches %+v (%v), want the genuine version 2", works, err)
	}
}

// TestPlanApplyNeedsThePolicy: a principal the policy does not let apply plans gets a 403 problem
// saying so, nothing is written and nothing delivered; an apply that is allowed is in the audit trail
// with its targets and the rule that allowed it.
func TestPlanApplyNeedsThePolicy(t *testing.T) {
	th := newTestHub(t)
	web1, web2, _ := fleetOfThree(th)
	for _, groups := range []string{"operator", "viewer"} {
		var p struct{ Detail string }
		if st := th.call(th.token("op-"+groups, groups), "PUT", "/v1/plans/web", map[string]any{"source": webPlan("x")}, &p); st != 403 || !strings.Contains(p.Detail, "apply-plan is reserved to admins") {
			t.Errorf("%s applies: %d %q, want a 403 naming apply-plan", groups, st, p.Detail)
		}
	}
	if keys := th.stored(layout.Plans); len(keys) != 0 {
		t.Errorf("denied applies stored %v", keys)
	}
	if got := planVersions(t, web1); len(got) != 0 {
		t.Errorf("web-1 fetches %v after denied applies", got)
	}
	if st, out := th.applyPlan(th.admin, "web", webPlan("x")); st != 200 {
		t.Fatalf("admin applies: %d %s", st, out.Detail)
	}
	recs, err := audit.List(context.Background(), th.h.Store, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var denied, ok int
	for _, r := range recs {
		if r.Action != "apply-plan" {
			continue
		}
		switch r.Outcome {
		case "denied":
			denied++
		case "ok":
			ok++
			if r.Principal.ID == "" || !sameSet(r.Targets, []string{web1.ID, web2.ID}) || r.Decision == nil || !slices.Contains(r.Decision.Rules, "admin_all") ||
				r.Detail["name"] != "web" || r.Detail["version"] != float64(1) {
				t.Errorf("the apply's audit record: %+v", r)
			}
		}
	}
	if denied != 2 || ok != 1 {
		t.Errorf("audit: %d denied, %d ok apply-plan records; want 2 and 1", denied, ok)
	}
}

// TestAgentPlansCostNoStoreRequest: once this hub has its view of the plans and the fleet, an agent
// fetching its plans (every minute, by a thousand agents) costs no store request, and signs nothing
// twice.
func TestAgentPlansCostNoStoreRequest(t *testing.T) {
	counted := &countingStore{}
	th := newTestHubOn(t, func(s store.Store) store.Store { counted.Store = s; return counted })
	web1, web2, db1 := fleetOfThree(th)
	if st, out := th.applyPlan(th.admin, "web", webPlan("port=8080")); st != 200 {
		t.Fatalf("apply: %d %s", st, out.Detail)
	}
	ctx := context.Background()
	for _, a := range []*simagent.Agent{web1, web2, db1} { // warm-up: the first fetch of each agent
		planVersions(t, a)
	}
	first, err := th.h.Plans.ForAgent(ctx, web1.ID)
	if err != nil || len(first.Plans) != 1 {
		t.Fatalf("ForAgent: %v %+v", err, first)
	}
	counted.reset()
	var wg sync.WaitGroup
	for range 20 {
		for _, a := range []*simagent.Agent{web1, web2, db1} {
			wg.Go(func() {
				got, err := th.h.Plans.ForAgent(ctx, a.ID)
				if err != nil {
					t.Error(err)
				}
				if a == web1 && (len(got.Plans) != 1 || string(got.Plans[0].Signature) != string(first.Plans[0].Signature)) {
					t.Errorf("web-1 got %+v, want the envelope signed for it before", got)
				}
			})
		}
	}
	wg.Wait()
	if n := counted.under(layout.Plans, layout.Agents, layout.AgentLabels, layout.RetiredAgents, layout.Heartbeats); n != 0 {
		t.Errorf("60 fetches of agents' plans cost %d store requests on plans and agents, want 0: %v", n, counted.keys())
	}
}

// TestPlanAcrossHubs: on two instances of one hub, a plan applied on one reaches the agents fetching
// from the other within its refresh interval, and their reports there are accepted at once.
func TestPlanAcrossHubs(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "file:" + t.TempDir()
	one, other := startTestHub(t, url, priv, nil), startTestHub(t, url, priv, nil)
	other.h.Plans.RefreshEvery = 100 * time.Millisecond
	ctx := context.Background()
	web1 := one.agent("web-1", map[string]string{"role": "web"}, nil)
	there := *web1
	there.Hub = other.url // the same agent, its requests balanced to the other instance
	if got := planVersions(t, &there); len(got) != 0 {
		t.Fatalf("before any plan: %v", got)
	}
	if st, out := one.applyPlan(one.admin, "web", webPlan("port=8080")); st != 200 || out.Version != 1 {
		t.Fatalf("apply on one: %d %+v", st, out)
	}
	if err := there.ReportPlan(ctx, wire.PlanStatus{Plan: "web", Version: 1}); err != nil {
		t.Errorf("a report to the other instance, before it refreshed: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for planVersions(t, &there)["web"] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the other instance never served version 1")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var view planStatusView
	if st := other.call(other.admin, "GET", "/v1/plans/web/status", nil, &view); st != 200 || len(view.Agents) != 1 || view.Agents[0].Version != 1 {
		t.Errorf("status on the other instance: %d %+v", st, view)
	}
}

// firstWriter writes another hub's version under key just before this hub's create-only write of
// it, as a hub applying at the same moment would.
type firstWriter struct {
	store.Store
	key   string
	other func() []byte // the bytes the other hub stores (MACed as the hub's)
	once  sync.Once
}

func (f *firstWriter) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	if k == f.key && o.CreateOnly {
		f.once.Do(func() {
			if _, err := store.PutBytes(ctx, f.Store, k, f.other(), store.PutOptions{}); err != nil {
				panic(err)
			}
		})
	}
	return f.Store.Put(ctx, k, r, n, o)
}

// TestPlanApplyCollision: when another hub writes the version number an apply is about to take, the
// apply takes the next one; when the other hub applied the very same source, that version is the
// answer and nothing more is written.
func TestPlanApplyCollision(t *testing.T) {
	for _, tc := range []struct {
		name, theirs string
		want         int
		unchanged    bool
	}{
		{"another source: the next number", webPlan("port=7070"), 3, false},
		{"the same source: theirs is the answer", webPlan("port=9090"), 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := layout.PlanVersion("web", 2)
			fw := &firstWriter{key: key}
			th := newTestHubOn(t, func(s store.Store) store.Store { fw.Store = s; return fw })
			web1, _, _ := fleetOfThree(th)
			if st, out := th.applyPlan(th.admin, "web", webPlan("port=8080")); st != 200 || out.Version != 1 {
				t.Fatalf("version 1: %d %+v", st, out)
			}
			fw.other = func() []byte {
				v := plans.Version{Name: "web", Version: 2, Source: tc.theirs, Targets: []string{"role=web"}, AppliedBy: "person:bob", AppliedAt: time.Now().UTC(),
					Plan: wire.Plan{Name: "web", Version: 2, Mode: wire.ModeEnforce, Units: []wire.Unit{{Name: "conf", Type: "file", Spec: json.RawMessage(`{}`)}}}}
				b, _ := json.Marshal(v)
				return th.h.Signed.Seal(key, b)
			}
			st, out := th.applyPlan(th.admin, "web", webPlan("port=9090"))
			if st != 200 || out.Version != tc.want || out.Unchanged != tc.unchanged {
				t.Fatalf("apply beside another hub: %d %+v, want version %d unchanged %v", st, out, tc.want, tc.unchanged)
			}
			if keys := th.stored(layout.PlanVersionsOf("web")); len(keys) != tc.want {
				t.Errorf("versions stored: %v", keys)
			}
			if got := planVersions(t, web1); got["web"] != tc.want {
				t.Errorf("web-1 fetches %v, want version %d", got, tc.want)
			}
		})
	}
}

// countingStore counts the requests that reach the store, by key (a listing by its prefix).
type countingStore struct {
	store.Store
	mu  sync.Mutex
	req []string // "GET key", "PUT key", "LIST prefix", "DELETE key"
}

func (c *countingStore) note(op, key string) {
	c.mu.Lock()
	c.req = append(c.req, op+" "+key)
	c.mu.Unlock()
}

func (c *countingStore) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	c.note("GET", k)
	return c.Store.Get(ctx, k, o)
}

func (c *countingStore) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	c.note("PUT", k)
	return c.Store.Put(ctx, k, r, n, o)
}

func (c *countingStore) List(ctx context.Context, p, after string, limit int) (store.Page, error) {
	c.note("LIST", p)
	return c.Store.List(ctx, p, after, limit)
}

func (c *countingStore) Delete(ctx context.Context, k string) error {
	c.note("DELETE", k)
	return c.Store.Delete(ctx, k)
}

func (c *countingStore) reset() {
	c.mu.Lock()
	c.req = nil
	c.mu.Unlock()
}

func (c *countingStore) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.req)
}

// puts counts the writes of key.
func (c *countingStore) puts(key string) int {
	n := 0
	for _, r := range c.keys() {
		if r == "PUT "+key {
			n++
		}
	}
	return n
}

// under counts the requests on keys (or listings of prefixes) under any of prefixes.
func (c *countingStore) under(prefixes ...string) int {
	n := 0
	for _, r := range c.keys() {
		_, key, _ := strings.Cut(r, " ")
		if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(key, p) }) {
			n++
		}
	}
	return n
}

// TestPlanApplyRefusesUnitTypesItsTargetsRefuse: agents say in their heartbeat which unit types they
// apply; a plan with a unit of a type some selected agent does not apply is refused at that unit's
// type, naming the agents and what they apply, and nothing is stored. An agent whose types are unknown
// (it predates plans) is sent the plan and decides itself.
func TestPlanApplyRefusesUnitTypesItsTargetsRefuse(t *testing.T) {
	th := newTestHub(t)
	web1, web2, db1 := fleetOfThree(th)
	ctx := context.Background()
	beat := func(a *simagent.Agent, types []string) {
		t.Helper()
		if err := a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/heartbeat", wire.Heartbeat{Version: "sim", Time: time.Now(), UnitTypes: types}, nil); err != nil {
			t.Fatalf("heartbeat of %s: %v", a.Name, err)
		}
	}
	beat(web1, []string{"file", "process"})
	beat(web2, []string{"file"})
	// An agent that predates plans sends no unitTypes at all: its heartbeat is taken as ever.
	if err := db1.Signed(ctx, "POST", "/v1/agents/"+db1.ID+"/heartbeat", map[string]any{"version": "old", "time": time.Now()}, nil); err != nil {
		t.Fatalf("a heartbeat without unitTypes: %v", err)
	}
	src := "targets: [role=web]\nunits:\n  - {name: conf, type: file, spec: {}}\n  - name: app\n    type: process\n    spec: {}\n"
	st, out := th.applyPlan(th.admin, "web", src)
	if st != 422 || len(out.Errors) != 1 {
		t.Fatalf("apply: %d %+v, want a 422 with one problem", st, out)
	}
	if e := out.Errors[0]; !strings.HasPrefix(e.Location, "body.source:5:11 units[1].type") || !strings.Contains(e.Message, "web-2") ||
		strings.Contains(e.Message, "web-1") || !strings.Contains(e.Message, "they apply: file") {
		t.Errorf("problem %q: %q, want it at units[1].type (5:11), naming web-2 only and what it applies", e.Location, e.Message)
	}
	if keys := th.stored(layout.Plans); len(keys) != 0 {
		t.Errorf("a refused apply stored %v", keys)
	}
	// A type every selected agent applies, or agents whose types are unknown, are no refusal.
	if st, out := th.applyPlan(th.admin, "web", "targets: [role=web]\nunits:\n  - {name: conf, type: file, spec: {}}\n"); st != 200 {
		t.Errorf("a plan of files: %d %q", st, out.Detail)
	}
	if st, out := th.applyPlan(th.admin, "db", "targets: [role=db]\nunits:\n  - {name: c, type: container, spec: {}}\n"); st != 200 {
		t.Errorf("a plan for an agent whose unit types are unknown: %d %q", st, out.Detail)
	}
}

// TestPlanDelete: deleting a plan takes the admins' right (delete-plan), stores a version that deletes
// it and audits it; its agents no longer fetch it, it is gone from the list, its view and its status
// (a status an agent still sends is refused, not stored), and applying it again starts at the next
// version.
func TestPlanDelete(t *testing.T) {
	th := newTestHub(t)
	web1, _, _ := fleetOfThree(th)
	ctx := context.Background()
	if st, out := th.applyPlan(th.admin, "web", webPlan("x")); st != 200 || out.Version != 1 {
		t.Fatalf("apply: %d %+v", st, out)
	}
	var p struct{ Detail string }
	if st := th.call(th.token("op", "operator"), "DELETE", "/v1/plans/web", nil, &p); st != 403 || !strings.Contains(p.Detail, "delete-plan is reserved to admins") {
		t.Errorf("an operator deletes: %d %q, want a 403 naming delete-plan", st, p.Detail)
	}
	if got := planVersions(t, web1); got["web"] != 1 {
		t.Fatalf("web-1 fetches %v after a refused delete, want web at version 1", got)
	}
	var del applied
	if st := th.call(th.admin, "DELETE", "/v1/plans/web", nil, &del); st != 200 || del.Version != 2 {
		t.Fatalf("delete: %d %+v, want version 2 (the one that deletes it)", st, del)
	}
	if got := planVersions(t, web1); len(got) != 0 {
		t.Errorf("web-1 fetches %v after the delete, want nothing", got)
	}
	var list struct{ Plans []struct{ Name string } }
	th.call(th.admin, "GET", "/v1/plans", nil, &list)
	if len(list.Plans) != 0 {
		t.Errorf("the list after the delete: %+v", list.Plans)
	}
	for _, path := range []string{"/v1/plans/web", "/v1/plans/web/status"} {
		if st := th.call(th.admin, "GET", path, nil, &p); st != 404 || !strings.Contains(p.Detail, "was deleted") {
			t.Errorf("GET %s after the delete: %d %q, want a 404 saying it was deleted", path, st, p.Detail)
		}
	}
	if err := web1.ReportPlan(ctx, wire.PlanStatus{Plan: "web", Version: 1}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a status for the deleted plan: %v, want a 404", err)
	}
	if keys := th.stored(layout.PlanStatusesOf("web")); len(keys) != 0 {
		t.Errorf("statuses stored for a deleted plan: %v", keys)
	}
	if st := th.call(th.admin, "DELETE", "/v1/plans/web", nil, &p); st != 404 {
		t.Errorf("deleting it again: %d %q, want 404", st, p.Detail)
	}
	if st, out := th.applyPlan(th.admin, "web", webPlan("x")); st != 200 || out.Version != 3 || out.Unchanged {
		t.Fatalf("apply after the delete: %d %+v, want version 3", st, out)
	}
	if got := planVersions(t, web1); got["web"] != 3 {
		t.Errorf("web-1 fetches %v after the new apply, want web at version 3", got)
	}
	recs, err := audit.List(ctx, th.h.Store, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	deletes := 0
	for _, r := range recs {
		if r.Action == "delete-plan" && r.Outcome == "ok" {
			deletes++
		}
	}
	if deletes != 1 {
		t.Errorf("%d delete-plan audit records, want 1", deletes)
	}
}
