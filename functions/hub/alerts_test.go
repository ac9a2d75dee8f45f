package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/alert"
	"github.com/pulsehq/pulse/functions/hub/alerts"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// TestOfflineAlerts: two hub instances on one bucket evaluate an offline rule. Agents already
// offline when the rule first sees them are not alerts (transitions only); agents that go offline
// later fire once each however many instances evaluate, and resolve when they come back. A broken rule
// is refused at its place.
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

// notified records what the alerts room queued, as the notifications room would take it.
type notified struct {
	mu    sync.Mutex
	calls []notifyCall
	names []string
	fail  int // refuse this many Notify calls
}

type notifyCall struct {
	m         notify.Message
	channels  []string
	notBefore time.Time
}

func (n *notified) Notify(_ context.Context, m notify.Message, channels []string, notBefore time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail > 0 {
		n.fail--
		return errors.New("queue down (test)")
	}
	n.calls = append(n.calls, notifyCall{m, channels, notBefore})
	return nil
}

func (n *notified) Channels(context.Context) ([]string, error) { return n.names, nil }

// queued is what was queued, one line per call: kind, alert, channels.
func (n *notified) queued() []notifyCall {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]notifyCall(nil), n.calls...)
}

// fsBatch is seq of an agent's free-space ratio on / over the 5 minutes from from, sample i of 30
// being v(i); and a series of another mount the rule does not name, always nearly full.
func fsBatch(seq uint64, from time.Time, v func(i int) float64) wire.MetricBatch {
	b := wire.MetricBatch{Seq: seq, From: from, To: from.Add(5 * time.Minute), IntervalSeconds: 10}
	root := wire.Series{Name: "node_filesystem_avail_ratio", Kind: wire.MetricGauge, Labels: map[string]string{"mountpoint": "/", "fstype": "ext4"}}
	boot := wire.Series{Name: "node_filesystem_avail_ratio", Kind: wire.MetricGauge, Labels: map[string]string{"mountpoint": "/boot"}}
	for i := range 30 {
		at := from.Add(time.Duration(i) * 10 * time.Second).UnixMilli()
		root.Points = append(root.Points, wire.Point{T: at, V: v(i)})
		boot.Points = append(boot.Points, wire.Point{T: at, V: 0.01})
	}
	b.Series = []wire.Series{root, boot}
	return b
}

// TestMetricAlerts: a metric rule is evaluated over the batches as hubs take them, by the samples'
// times: a dip shorter than for never fires; a dip that lasts fires once at the sample that makes for,
// even with its batches taken by two hub instances and one uploaded again; a value between the
// trigger and clear keeps it firing (hysteresis); it resolves when the value clears. Each transition
// is queued for the rule's channels, held to the end of quiet hours; a queue that fails makes the
// upload fail, and the batch uploaded again queues it (nothing lost, nothing twice). A rule naming a
// channel that does not exist is refused at its place.
func TestMetricAlerts(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "file:" + t.TempDir()
	one, other := startTestHub(t, url, priv, nil), startTestHub(t, url, priv, nil)
	n := &notified{names: []string{"ops", "pager"}}
	one.h.Alerts.Notifier, other.h.Alerts.Notifier = n, n
	ctx := context.Background()
	a := one.agent("db-1", map[string]string{"role": "db"}, nil)
	var problem struct{ Detail string }
	src := "rules:\n  - name: disk_full\n    kind: metric\n    targets: [role=db]\n    metric: node_filesystem_avail_ratio\n    labels: {mountpoint: /}\n" +
		"    below: 0.10\n    clear: 0.15\n    for: 1m\n    severity: critical\n    channels: [ops, pgaer]\n"
	if st := one.call(one.admin, "PUT", "/v1/alert-rules", map[string]any{"source": src}, &problem); st != 422 ||
		!strings.Contains(problem.Detail, "11:") || !strings.Contains(problem.Detail, `"pgaer"`) {
		t.Fatalf("a rule naming an unknown channel: %d %+v", st, problem)
	}
	quiet := "quiet: {from: \"00:00\", to: \"23:59\", zone: UTC}\n"
	one.applyAlertRules(strings.Replace(src, "pgaer", "pager", 1) + quiet)

	from := time.Now().UTC().Truncate(5 * time.Minute).Add(-40 * time.Minute)
	upload := func(th *testHub, b wire.MetricBatch) error {
		a.Hub = th.url
		return a.UploadMetrics(ctx, b)
	}
	batches := []wire.MetricBatch{
		fsBatch(1, from, func(int) float64 { return 0.5 }),
		// a dip of 50 s (samples 10..14): shorter than for
		fsBatch(2, from.Add(5*time.Minute), func(i int) float64 {
			if i >= 10 && i < 15 {
				return 0.05
			}
			return 0.5
		}),
		// from sample 6 (one minute in): below 0.10 for 2 minutes, then 0.12, under clear
		fsBatch(3, from.Add(10*time.Minute), func(i int) float64 {
			switch {
			case i < 6:
				return 0.5
			case i < 18:
				return 0.05
			}
			return 0.12
		}),
		fsBatch(4, from.Add(15*time.Minute), func(i int) float64 { return 0.12 }),
		// clears at sample 3
		fsBatch(5, from.Add(20*time.Minute), func(i int) float64 {
			if i < 3 {
				return 0.12
			}
			return 0.4
		}),
	}
	for i, b := range batches[:3] {
		if err := upload([]*testHub{one, other}[i%2], b); err != nil {
			t.Fatalf("batch %d: %v", b.Seq, err)
		}
	}
	got := n.queued()
	if len(got) != 1 {
		t.Fatalf("queued %+v, want the one firing", got)
	}
	fired := got[0]
	dipStart := from.Add(10*time.Minute + 60*time.Second)
	if m := fired.m; m.Kind != notify.KindFired || m.Rule != "disk_full" || m.Severity != "critical" || m.Agent != a.ID || m.Name != "db-1" ||
		!m.Since.Equal(dipStart) || !m.At.Equal(dipStart.Add(time.Minute)) || m.Value == nil || *m.Value != 0.05 ||
		!strings.Contains(m.Subject, `mountpoint="/"`) || !strings.Contains(m.Detail, "< 0.1") {
		t.Fatalf("fired: %+v", m)
	}
	if !slices.Equal(fired.channels, []string{"ops", "pager"}) {
		t.Fatalf("channels %v", fired.channels)
	}
	rs, err := alert.Parse([]byte("rules: []\n" + quiet))
	if err != nil {
		t.Fatal(err)
	}
	if want := rs.Quiet.Ends(fired.m.At); !fired.notBefore.Equal(want) || !want.After(fired.m.At) {
		t.Fatalf("held until %s, want the end of quiet hours %s", fired.notBefore, want)
	}
	// The same batch again, at the other hub: nothing new.
	if err := upload(one, batches[2]); err != nil {
		t.Fatal(err)
	}
	// Under clear but above the trigger: still firing. Then the queue fails once: the upload fails,
	// and the agent's second upload of the batch queues the resolution once.
	if err := upload(other, batches[3]); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.fail = 1
	n.mu.Unlock()
	if st, _ := status(upload(one, batches[4])); st < 500 {
		t.Fatalf("a batch whose resolution could not be queued: %d, want a 5xx the agent retries", st)
	}
	if err := upload(other, batches[4]); err != nil {
		t.Fatal(err)
	}
	if err := upload(one, batches[4]); err != nil {
		t.Fatal(err)
	}
	got = n.queued()
	if len(got) != 2 || got[1].m.Kind != notify.KindResolved || got[1].m.Alert != fired.m.Alert ||
		!got[1].m.At.Equal(from.Add(20*time.Minute+30*time.Second)) {
		t.Fatalf("queued %+v, want fired then its resolution at the first clear sample", got)
	}
	var list struct{ Alerts []alerts.Alert }
	if st := one.call(one.admin, "GET", "/v1/alerts", nil, &list); st != 200 || len(list.Alerts) != 1 || list.Alerts[0].State != "resolved" {
		t.Fatalf("alerts: %d %+v", st, list)
	}
}

// TestAckAndSnooze: an operator acknowledges an alert (a viewer may not; the first acknowledgement
// stands) and snoozes its rule on its agent: the resolution is recorded, listed as snoozed and queued
// for no channel; once the snooze is lifted the next firing of the same problem is queued again.
func TestAckAndSnooze(t *testing.T) {
	th := newTestHub(t)
	n := &notified{names: []string{"ops"}}
	th.h.Alerts.Notifier = n
	ctx := context.Background()
	a := th.agent("web-1", nil, nil)
	var mu sync.Mutex
	clock := time.Now()
	th.h.Alerts.Every = time.Nanosecond
	th.h.Alerts.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	at := func(c time.Time) { mu.Lock(); clock = c; mu.Unlock(); th.h.Alerts.Tick(ctx) }
	beat := func() {
		if err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	beat()
	th.applyAlertRules("rules:\n  - {name: down, kind: offline, for: 1m, channels: [ops]}\n")
	at(time.Now())
	at(time.Now().Add(time.Hour))
	var list struct{ Alerts []alerts.Alert }
	th.call(th.admin, "GET", "/v1/alerts", nil, &list)
	if len(list.Alerts) != 1 || len(n.queued()) != 1 {
		t.Fatalf("alerts %+v, queued %+v", list.Alerts, n.queued())
	}
	id := list.Alerts[0].ID
	viewer, alice, bob := th.token("eve", "viewer"), th.token("alice", "operator"), th.token("bob", "operator")
	var ack struct {
		By      string
		Already bool
	}
	if st := th.call(viewer, "POST", "/v1/alerts/"+id+"/ack", map[string]any{}, nil); st != 403 {
		t.Fatalf("a viewer acknowledges: %d", st)
	}
	if st := th.call(alice, "POST", "/v1/alerts/"+id+"/ack", map[string]any{"note": "on it"}, &ack); st != 200 || ack.By != "alice" || ack.Already {
		t.Fatalf("ack: %d %+v", st, ack)
	}
	if st := th.call(bob, "POST", "/v1/alerts/"+id+"/ack", map[string]any{}, &ack); st != 200 || ack.By != "alice" || !ack.Already {
		t.Fatalf("a second ack: %d %+v", st, ack)
	}
	var problem struct{ Detail string }
	if st := th.call(alice, "POST", "/v1/alerts/al-nope/ack", map[string]any{}, &problem); st != 404 || !strings.Contains(problem.Detail, "pulse alerts") {
		t.Fatalf("ack of no alert: %d %+v", st, problem)
	}
	if st := th.call(alice, "POST", "/v1/alerts/"+id+"/snooze", map[string]any{"for": "soon"}, &problem); st != 422 || !strings.Contains(problem.Detail, "30m") {
		t.Fatalf("snooze for soon: %d %+v", st, problem)
	}
	if st := th.call(alice, "POST", "/v1/alerts/"+id+"/snooze", map[string]any{"for": "1d", "note": "maintenance"}, nil); st != 200 {
		t.Fatalf("snooze: %d", st)
	}
	// Back online: resolved, recorded as snoozed, queued for no one.
	beat()
	at(time.Now())
	th.call(th.admin, "GET", "/v1/alerts", nil, &list)
	if len(list.Alerts) != 1 || list.Alerts[0].State != "resolved" || list.Alerts[0].Ack == nil || list.Alerts[0].Ack.Note != "on it" || len(n.queued()) != 1 {
		t.Fatalf("after the snooze: %+v, queued %d", list.Alerts, len(n.queued()))
	}
	var resolved alerts.Event
	if _, err := store.ReadJSON(ctx, th.h.Store, layout.AlertEvent(id, "resolved"), &resolved); err != nil || resolved.Notify || !strings.Contains(resolved.Silenced, "snoozed by alice") {
		t.Fatalf("resolution: %+v %v", resolved, err)
	}
	// Lifted: the next time it goes, it is queued.
	if st := th.call(bob, "POST", "/v1/alerts/"+id+"/snooze", map[string]any{"for": "0"}, nil); st != 200 {
		t.Fatalf("lift: %d", st)
	}
	at(time.Now().Add(2 * time.Hour))
	if got := n.queued(); len(got) != 2 || got[1].m.Alert == id || got[1].m.Kind != notify.KindFired {
		t.Fatalf("after lifting: queued %+v", got)
	}
}

// TestUnitAlerts: a unit rule fires when an agent reports one of its plan's units failed, with the
// unit and the reason, once however often the status is reported, and resolves when the unit
// converges; a status older than one taken changes nothing; a unit the plan dropped counts as clear;
// a rule for another plan stays silent. A duration on a unit rule is refused at its place.
func TestUnitAlerts(t *testing.T) {
	th := newTestHub(t)
	n := &notified{names: []string{"ops"}}
	th.h.Alerts.Notifier = n
	ctx := context.Background()
	web := th.agent("web-1", map[string]string{"role": "web"}, nil)
	var problem struct{ Detail string }
	if st := th.call(th.admin, "PUT", "/v1/alert-rules", map[string]any{"source": "rules:\n  - name: units\n    kind: unit\n    for: 5m\n"}, &problem); st != 422 ||
		!strings.Contains(problem.Detail, "4:10") || !strings.Contains(problem.Detail, "leave out for") {
		t.Fatalf("a unit rule with for: %d %+v", st, problem)
	}
	th.applyAlertRules("rules:\n  - {name: units, kind: unit, targets: [role=web], severity: critical}\n  - {name: other, kind: unit, plan: db}\n")
	if st, out := th.applyPlan(th.admin, "web", webPlan("port=8080")); st != 200 {
		t.Fatalf("apply: %d %s", st, out.Detail)
	}
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	report := func(at time.Time, conf string, units ...string) error {
		st := wire.PlanStatus{Plan: "web", Version: 1, At: at}
		for _, u := range units {
			us := wire.UnitStatus{Unit: u, Type: "file", State: wire.UnitConverged, ChangedAt: t0}
			if u == "conf" {
				us.State, us.ChangedAt = conf, at
				if conf == wire.UnitFailed {
					us.Reason = "permission denied"
				}
			}
			st.Units = append(st.Units, us)
		}
		return web.ReportPlan(ctx, st)
	}
	if err := report(t0, wire.UnitConverged, "conf", "app"); err != nil {
		t.Fatal(err)
	}
	if err := report(t0.Add(time.Second), wire.UnitFailed, "conf", "app"); err != nil {
		t.Fatal(err)
	}
	if err := report(t0.Add(2*time.Second), wire.UnitFailed, "conf", "app"); err != nil { // still failed
		t.Fatal(err)
	}
	got := n.queued()
	if len(got) != 1 || got[0].m.Kind != notify.KindFired || got[0].m.Rule != "units" || got[0].m.Subject != "web/conf" ||
		!got[0].m.Since.Equal(t0.Add(time.Second)) || !strings.Contains(got[0].m.Detail, "permission denied") {
		t.Fatalf("queued %+v, want one firing of web/conf", got)
	}
	// An older status, arriving late, changes nothing; converged resolves.
	if err := report(t0.Add(500*time.Millisecond), wire.UnitConverged, "conf", "app"); err != nil {
		t.Fatal(err)
	}
	if len(n.queued()) != 1 {
		t.Fatalf("a late status moved the alert: %+v", n.queued())
	}
	if err := report(t0.Add(3*time.Second), wire.UnitConverged, "conf", "app"); err != nil {
		t.Fatal(err)
	}
	// Failed again, then the unit leaves the plan: that resolves it too.
	if err := report(t0.Add(4*time.Second), wire.UnitFailed, "conf", "app"); err != nil {
		t.Fatal(err)
	}
	if err := report(t0.Add(5*time.Second), "", "app"); err != nil {
		t.Fatal(err)
	}
	got = n.queued()
	kinds := []string{}
	for _, c := range got {
		kinds = append(kinds, c.m.Kind+" "+c.m.Rule+" "+c.m.Subject)
	}
	want := []string{"fired units web/conf", "resolved units web/conf", "fired units web/conf", "resolved units web/conf"}
	if !slices.Equal(kinds, want) || got[2].m.Alert == got[0].m.Alert {
		t.Fatalf("queued %v, want %v (two alerts)", kinds, want)
	}
}

// TestCommandsAlerts: a commands rule fires when enough commands fail on an agent within its window:
// two failures reported at once to two hub instances are both counted (the tracks are written with a
// condition on their version) and fire once; a result reported again is counted once; cancelled is
// no failure; once the failures age out of the window, the next result resolves it.
func TestCommandsAlerts(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "file:" + t.TempDir()
	one, other := startTestHub(t, url, priv, nil), startTestHub(t, url, priv, nil)
	n := &notified{names: []string{"ops"}}
	one.h.Alerts.Notifier, other.h.Alerts.Notifier = n, n
	ctx := context.Background()
	a := one.agent("box", nil, nil)
	one.applyAlertRules("rules:\n  - {name: failing, kind: commands, failures: 3, within: 3s}\n")
	var ack []string
	run := func() simagent.Work {
		var cmd commandView
		if st := one.call(one.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{a.ID}}, &cmd); st != 202 {
			t.Fatalf("create: %d", st)
		}
		works, _, err := a.Poll(ctx, ack)
		if err != nil || len(works) != 1 {
			t.Fatalf("poll: %v %+v", err, works)
		}
		ack = []string{works[0].InboxKey}
		return works[0]
	}
	w1, w2, w3 := run(), run(), run()
	complete := func(th *testHub, w simagent.Work, st wire.Status) error {
		ag := *a
		ag.Hub = th.url
		return ag.Complete(ctx, w, st, 1, nil)
	}
	if err := complete(one, w1, wire.StatusCancelled); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, w := range []simagent.Work{w2, w3} {
		wg.Go(func() {
			if err := complete([]*testHub{one, other}[i], w, wire.StatusFailed); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := complete(other, w3, wire.StatusFailed); err != nil { // reported again
		t.Fatal(err)
	}
	if got := n.queued(); len(got) != 0 {
		t.Fatalf("fired on two failures and a cancel: %+v", got)
	}
	w4 := run()
	if err := complete(other, w4, wire.StatusTimedOut); err != nil {
		t.Fatal(err)
	}
	got := n.queued()
	if len(got) != 1 || got[0].m.Kind != notify.KindFired || got[0].m.Subject != "commands" || !strings.Contains(got[0].m.Detail, "3 command(s) failed") {
		t.Fatalf("queued %+v, want one firing on the third failure", got)
	}
	time.Sleep(3100 * time.Millisecond) // the failures age out of the window
	w5 := run()
	if err := complete(one, w5, wire.StatusSucceeded); err != nil {
		t.Fatal(err)
	}
	if got := n.queued(); len(got) != 2 || got[1].m.Kind != notify.KindResolved || got[1].m.Alert != got[0].m.Alert {
		t.Fatalf("queued %+v, want the resolution", got)
	}
}

func (th *testHub) applyAlertRules(src string) {
	th.t.Helper()
	if st := th.call(th.admin, "PUT", "/v1/alert-rules", map[string]any{"source": src}, nil); st != 200 {
		th.t.Fatalf("apply alert rules: %d", st)
	}
}
