package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/hub/alerts"
	"github.com/pulsehq/pulse/functions/layout"
)

// TestOfflineAlerts: two hub instances on one bucket evaluate an offline rule. Agents already
// offline when the rule first sees them are not alerts (transitions only); agents that go offline
// later fire once each however many instances evaluate, and resolve when they come back. Rules of a
// kind this hub does not evaluate are refused at their kind; a broken rule at its place.
func TestOfflineAlerts(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "file:" + t.TempDir()
	one, other := startTestHub(t, url, priv, nil), startTestHub(t, url, priv, nil)
	ctx := context.Background()
	a := one.agent("web-1", map[string]string{"role": "web"}, nil)
	b := one.agent("web-2", map[string]string{"role": "web"}, nil)
	for _, ag := range []interface{ Heartbeat(context.Context) error }{a, b} {
		if err := ag.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	clock := time.Now()
	setClock := func(c time.Time) { mu.Lock(); clock = c; mu.Unlock() }
	for _, th := range []*testHub{one, other} {
		th.h.Alerts.Every = time.Nanosecond
		th.h.Alerts.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	}
	var problem struct {
		Detail string
		Errors []struct{ Location, Message string }
	}
	if st := one.call(one.admin, "PUT", "/v1/alert-rules", map[string]any{"source": "rules:\n  - name: cpu\n    kind: metric\n    metric: node_load1\n    above: 4\n"}, &problem); st != 422 ||
		!strings.Contains(problem.Detail, "3:11") || !strings.Contains(problem.Detail, "does not evaluate metric rules yet") {
		t.Fatalf("a metric rule: %d %+v", st, problem)
	}
	if st := one.call(one.admin, "PUT", "/v1/alert-rules", map[string]any{"source": "rules:\n  - name: down\n    kind: offline\n"}, &problem); st != 422 || !strings.Contains(problem.Detail, "needs a duration") {
		t.Fatalf("an offline rule without for: %d %+v", st, problem)
	}
	if st := one.call(one.token("eve", "viewer"), "PUT", "/v1/alert-rules", map[string]any{"source": "rules: []\n"}, &problem); st != 403 {
		t.Fatalf("a viewer applies rules: %d", st)
	}
	var applied struct{ Version int }
	if st := one.call(one.admin, "PUT", "/v1/alert-rules", map[string]any{"source": "rules:\n  - name: down\n    kind: offline\n    targets: [role=web]\n    for: 1m\n    severity: critical\n"}, &applied); st != 200 || applied.Version != 1 {
		t.Fatalf("apply: %d %+v", st, applied)
	}
	list := func(th *testHub, state string) []alerts.Alert {
		var out struct{ Alerts []alerts.Alert }
		path := "/v1/alerts"
		if state != "" {
			path += "?state=" + state
		}
		if st := th.call(th.token("eve", "viewer"), "GET", path, nil, &out); st != 200 {
			t.Fatalf("list alerts: %d", st)
		}
		return out.Alerts
	}
	tick := func() {
		for _, th := range []*testHub{one, other} {
			th.h.Alerts.Tick(ctx)
		}
	}

	// First sight, long after the last heartbeats: both already offline, no alert.
	setClock(time.Now().Add(10 * time.Minute))
	tick()
	tick()
	if got := list(one, ""); len(got) != 0 {
		t.Fatalf("agents offline at first sight fired: %+v", got)
	}
	// Back online (the clock at their heartbeats), then gone for long: each fires, once.
	setClock(time.Now())
	tick()
	setClock(time.Now().Add(20 * time.Minute))
	tick()
	tick()
	firing := list(other, "firing")
	if len(firing) != 2 || firing[0].ID == firing[1].ID || firing[0].Rule != "down" || firing[0].Severity != "critical" || !strings.Contains(firing[0].Detail, "no heartbeat since") {
		t.Fatalf("firing: %+v, want one alert per agent", firing)
	}
	if keys := one.stored(layout.Alerts); len(keys) != 2 {
		t.Fatalf("alert events stored: %v, want one fired event per agent", keys)
	}
	// web-1 heartbeats: its alert resolves.
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	setClock(time.Now())
	tick()
	var resolved int
	for _, al := range list(one, "") {
		if al.Agent == a.ID && al.State == "resolved" && !al.ResolvedAt.IsZero() {
			resolved++
		}
	}
	if resolved != 1 {
		t.Fatalf("after web-1 came back: %+v", list(one, ""))
	}
}
