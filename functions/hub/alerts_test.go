package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/hub/alerts"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
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

// failingAlertWrites refuses the first n writes of alert events, as a store that is briefly down.
type failingAlertWrites struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (f *failingAlertWrites) Put(ctx context.Context, k string, r io.Reader, size int64, o store.PutOptions) (store.ObjectInfo, error) {
	f.mu.Lock()
	fail := strings.HasPrefix(k, layout.Alerts) && f.n > 0
	if fail {
		f.n--
	}
	f.mu.Unlock()
	if fail {
		return store.ObjectInfo{}, errors.New("store down (test)")
	}
	return f.Store.Put(ctx, k, r, size, o)
}

// TestAlertNotLostWhenItsRecordFails: an alert whose event cannot be stored is not given up: its
// track is not moved (in memory or in the bucket), so the next evaluation, by this hub or by one that
// starts afresh from the stored tracks, fires and records it.
func TestAlertNotLostWhenItsRecordFails(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "file:" + t.TempDir()
	fw := &failingAlertWrites{n: 1}
	th := startTestHub(t, url, priv, func(s store.Store) store.Store { fw.Store = s; return fw })
	ctx := context.Background()
	a := th.agent("web-1", nil, nil)
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	th.h.Alerts.Every, th.h.Alerts.Now = time.Nanosecond, now
	th.applyAlertRules("rules:\n  - {name: down, kind: offline, for: 1m}\n")
	th.h.Alerts.Tick(ctx) // online: ok
	mu.Lock()
	clock = clock.Add(time.Hour)
	mu.Unlock()
	th.h.Alerts.Tick(ctx) // fires; its record is refused
	if keys := th.stored(layout.Alerts); len(keys) != 0 {
		t.Fatalf("stored %v through a failing store", keys)
	}
	// A hub that starts afresh on the same bucket goes on from the stored tracks.
	fresh := startTestHub(t, url, priv, nil)
	fresh.h.Alerts.Every, fresh.h.Alerts.Now = time.Nanosecond, now
	mu.Lock()
	clock = clock.Add(time.Second)
	mu.Unlock()
	fresh.h.Alerts.Tick(ctx)
	if keys := fresh.stored(layout.Alerts); len(keys) != 1 {
		t.Fatalf("after the store came back: %v, want the alert recorded", keys)
	}
}

func (th *testHub) applyAlertRules(src string) {
	th.t.Helper()
	if st := th.call(th.admin, "PUT", "/v1/alert-rules", map[string]any{"source": src}, nil); st != 200 {
		th.t.Fatalf("apply alert rules: %d", st)
	}
}
