package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/hub/notifications"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/notify/notifytest"
	"github.com/pulsehq/pulse/functions/store"
)

// setChannel applies a channel through the API and fails the test on a refusal.
func (th *testHub) setChannel(name, source string) {
	th.t.Helper()
	var problem struct{ Detail string }
	if st := th.call(th.admin, "PUT", "/v1/channels/"+name, map[string]any{"source": source}, &problem); st != 200 {
		th.t.Fatalf("set channel %s: %d %s", name, st, problem.Detail)
	}
}

// deliveries reads the delivery log through the API.
func (th *testHub) deliveries(query string) []notifications.Entry {
	th.t.Helper()
	var out struct{ Notifications []notifications.Entry }
	if st := th.call(th.token("eve", "viewer"), "GET", "/v1/notifications"+query, nil, &out); st != 200 {
		th.t.Fatalf("list notifications: %d", st)
	}
	return out.Notifications
}

func alertMessage(id string) notify.Message {
	m := notify.Sample()
	m.Alert = id
	return m
}

// waitState waits for the delivery of alert to reach state and returns it.
func (th *testHub) waitState(alert, state string, timeout time.Duration) notifications.Entry {
	th.t.Helper()
	end := time.Now().Add(timeout)
	for {
		got := th.deliveries("?alert=" + alert)
		if len(got) == 1 && got[0].State == state {
			return got[0]
		}
		if time.Now().After(end) {
			th.t.Fatalf("the delivery of %s: %+v, want state %s", alert, got, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNotifyOnceWithTwoHubs: two hub instances queue the same notification, twice each; it is queued
// once, sent once (one instance claims the attempt), and leaves the queue. Rules without channels
// notify the default channels.
func TestNotifyOnceWithTwoHubs(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "file:" + t.TempDir()
	one, other := startTestHub(t, url, priv, nil), startTestHub(t, url, priv, nil)
	rcv := notifytest.NewReceiver(t)
	one.setChannel("ops", "kind: webhook\nurl: "+rcv.URL+"/ops\nsecret: s3cret-hmac\ndefault: true\n")
	one.setChannel("quiet", "kind: webhook\nurl: "+rcv.URL+"/quiet\n")
	ctx := context.Background()
	m := alertMessage("alert-twice")
	for range 2 {
		for _, th := range []*testHub{one, other} {
			if err := th.h.Notifications.Notify(ctx, m, nil, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := rcv.Wait(t, "/ops", 1, 5*time.Second)
	e := one.waitState("alert-twice", notifications.StateSent, 5*time.Second)
	time.Sleep(1500 * time.Millisecond) // both instances tick again
	if got = rcv.Got("/ops"); len(got) != 1 || len(rcv.Got("/quiet")) != 0 {
		t.Fatalf("the default channel took %d requests, the other %d: want 1 and 0", len(got), len(rcv.Got("/quiet")))
	}
	if ts := got[0].Header.Get(notify.HeaderTimestamp); got[0].Header.Get(notify.HeaderSignature) != notify.Sign("s3cret-hmac", ts, got[0].Body) {
		t.Fatal("the webhook's signature does not verify")
	}
	if e.Channel != "ops" || e.Kind != notify.Webhook || len(e.Attempts) != 1 || e.Attempts[0].Status != 200 {
		t.Fatalf("the delivery: %+v", e)
	}
	if keys := one.stored(layout.NotificationQueue); len(keys) != 0 {
		t.Fatalf("queue after sending: %v", keys)
	}
	if keys := one.stored(layout.Notifications); len(keys) != 2 {
		t.Fatalf("stored deliveries: %v, want one record and one attempt", keys)
	}
	var names []string
	if err := func() error { var err error; names, err = other.h.Notifications.Channels(ctx); return err }(); err != nil || strings.Join(names, ",") != "ops,quiet" {
		t.Fatalf("channels: %v %v", names, err)
	}
}

// TestNotificationRetries: a receiver failing twice is retried with backoff and the log says failed,
// failed, sent; a notification waits for its notBefore; a channel that does not exist fails at once
// with that reason; a test-send answers with the receiver's outcome.
func TestNotificationRetries(t *testing.T) {
	th := newTestHub(t)
	th.h.Notifications.Backoff = []time.Duration{300 * time.Millisecond}
	rcv := notifytest.NewReceiver(t)
	th.setChannel("flaky", "kind: slack\nurl: "+rcv.URL+"/services/flaky-secret\n")
	ctx := context.Background()

	rcv.Fail("/services/flaky-secret", 2, 503, "busy")
	if err := th.h.Notifications.Notify(ctx, alertMessage("alert-flaky"), []string{"flaky"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	e := th.waitState("alert-flaky", notifications.StateSent, 10*time.Second)
	var states []string
	for _, a := range e.Attempts {
		states = append(states, a.State)
	}
	if strings.Join(states, ",") != "failed,failed,sent" || e.Attempts[0].Status != 503 || !strings.Contains(e.Attempts[0].Error, "busy") ||
		e.Attempts[0].NextAt.IsZero() || e.Attempts[1].At.Sub(e.Attempts[0].At) < 300*time.Millisecond {
		t.Fatalf("attempts: %+v", e.Attempts)
	}
	if strings.Contains(fmt.Sprint(e), "flaky-secret") {
		t.Fatalf("the log shows the webhook URL: %+v", e)
	}
	req, _ := http.NewRequest("GET", th.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+th.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`pulse_notification_attempts_total{kind="slack",outcome="failed"} 2`, `pulse_notification_attempts_total{kind="slack",outcome="sent"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	// notBefore holds the delivery.
	at := time.Now().Add(2 * time.Second)
	if err := th.h.Notifications.Notify(ctx, alertMessage("alert-later"), []string{"flaky"}, at); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	if got := th.deliveries("?alert=alert-later"); len(got) != 1 || got[0].State != notifications.StateQueued {
		t.Fatalf("before notBefore: %+v", got)
	}
	e = th.waitState("alert-later", notifications.StateSent, 5*time.Second)
	if e.Attempts[0].ClaimedAt.Before(at) {
		t.Fatalf("sent at %s, before its notBefore %s", e.Attempts[0].ClaimedAt, at)
	}

	// A channel that does not exist: failed at once, with the reason.
	if err := th.h.Notifications.Notify(ctx, alertMessage("alert-nowhere"), []string{"nowhere"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	e = th.waitState("alert-nowhere", notifications.StateFailed, 5*time.Second)
	if len(e.Attempts) != 1 || !e.Attempts[0].Final || !strings.Contains(e.Attempts[0].Error, "channel nowhere does not exist") {
		t.Fatalf("an unknown channel: %+v", e)
	}
	if got := th.deliveries("?state=failed"); len(got) != 1 || got[0].Channel != "nowhere" {
		t.Fatalf("failed deliveries: %+v", got)
	}

	// A test-send answers with the outcome, a failure with the receiver's answer.
	var out notifications.Entry
	if st := th.call(th.admin, "POST", "/v1/channels/flaky/test", nil, &out); st != 200 || out.State != notifications.StateSent || out.Message.Kind != notify.KindTest {
		t.Fatalf("test-send: %d %+v", st, out)
	}
	rcv.Fail("/services/flaky-secret", 1, 500, "down for maintenance")
	if st := th.call(th.admin, "POST", "/v1/channels/flaky/test", nil, &out); st != 200 || out.State != notifications.StateRetrying || out.Attempts[0].Status != 500 ||
		!strings.Contains(out.Attempts[0].Error, "down for maintenance") {
		t.Fatalf("a failing test-send: %d %+v", st, out)
	}
	if st := th.call(th.token("op", "operator"), "POST", "/v1/channels/flaky/test", nil, nil); st != 403 {
		t.Fatalf("an operator test-sends: %d", st)
	}
	if st := th.call(th.admin, "POST", "/v1/channels/nope/test", nil, nil); st != 404 {
		t.Fatalf("test-send to no channel: %d", st)
	}
}

// TestChannelSecretsNeverInTheBucket: channels of every kind with distinctive secrets are applied,
// test-sent (one failing with a receiver that echoes the secret) and notified; no object in the
// bucket, and no answer of the API, holds a secret in clear. Broken channels are refused at their
// line and column; a viewer may list channels but not set them.
func TestChannelSecretsNeverInTheBucket(t *testing.T) {
	th := newTestHub(t)
	rcv := notifytest.NewReceiver(t)
	smtp := notifytest.NewSMTP(t, "pulse", "smtp-secret-pw-1")
	secrets := []string{"hmac-secret-1", "slack-secret-1", "discord-secret-1", "teams-secret-1", "ntfy-secret-1", "gotify-secret-1", "pd-routing-secret-1", "smtp-secret-pw-1"}
	channels := map[string]string{
		"hook":    "kind: webhook\nurl: " + rcv.URL + "/hook\nsecret: hmac-secret-1\n",
		"slack":   "kind: slack\nurl: " + rcv.URL + "/services/slack-secret-1\n",
		"discord": "kind: discord\nurl: " + rcv.URL + "/api/webhooks/discord-secret-1\n",
		"teams":   "kind: teams\nurl: " + rcv.URL + "/workflows/teams-secret-1\n",
		"ntfy":    "kind: ntfy\nurl: " + rcv.URL + "\ntopic: alerts\ntoken: ntfy-secret-1\n",
		"gotify":  "kind: gotify\nurl: " + rcv.URL + "\ntoken: gotify-secret-1\n",
		"pd":      "kind: pagerduty\nurl: " + rcv.URL + "/v2/enqueue\nroutingKey: pd-routing-secret-1\n",
		"mail":    fmt.Sprintf("kind: email\nhost: %s\nport: %d\ntls: none\nusername: pulse\npassword: smtp-secret-pw-1\nfrom: pulse@example.com\nto: [ops@example.com]\n", smtp.Host, smtp.Port),
	}
	var names []string
	for name, src := range channels {
		th.setChannel(name, src)
		names = append(names, name)
	}
	rcv.Fail("/services/slack-secret-1", 1, 500, "you sent slack-secret-1")
	for _, name := range names {
		var out notifications.Entry
		if st := th.call(th.admin, "POST", "/v1/channels/"+name+"/test", nil, &out); st != 200 {
			t.Fatalf("test %s: %d", name, st)
		}
		if name != "slack" && out.State != notifications.StateSent {
			t.Fatalf("test %s: %+v", name, out)
		}
	}
	smtp.Wait(t, 1, 5*time.Second)
	if err := th.h.Notifications.Notify(context.Background(), alertMessage("alert-all"), names, time.Time{}); err != nil {
		t.Fatal(err)
	}
	rcv.Wait(t, "/v2/enqueue", 2, 5*time.Second)

	var list struct{ Channels []notifications.View }
	if st := th.call(th.token("eve", "viewer"), "GET", "/v1/channels", nil, &list); st != 200 || len(list.Channels) != len(channels) {
		t.Fatalf("list channels: %d %+v", st, list)
	}
	answers := fmt.Sprintf("%+v %+v", list, th.deliveries(""))
	for _, name := range names {
		var v notifications.View
		th.call(th.admin, "GET", "/v1/channels/"+name, nil, &v)
		answers += fmt.Sprintf("%+v", v)
	}
	for _, s := range secrets {
		if strings.Contains(answers, s) {
			t.Errorf("an API answer shows %s", s)
		}
	}
	if !strings.Contains(answers, "••• (127.0.0.1") {
		t.Errorf("a webhook URL is not shown masked with its host: %s", answers)
	}
	n := 0
	err := store.Walk(context.Background(), th.bucket(), "", "", 0, func(o store.ObjectInfo) error {
		b, _, err := store.ReadAll(context.Background(), th.bucket(), o.Key)
		if err != nil {
			return err
		}
		n++
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %s in clear", o.Key, s)
			}
		}
		return nil
	})
	if err != nil || n < 20 {
		t.Fatalf("walked %d objects: %v", n, err)
	}

	var problem struct {
		Detail string
		Errors []struct{ Location, Message string }
	}
	if st := th.call(th.admin, "PUT", "/v1/channels/bad", map[string]any{"source": "kind: slack\nurl: hooks.slack.com/x\n"}, &problem); st != 422 ||
		!strings.Contains(problem.Detail, "2:6: url: URL scheme") || len(problem.Errors) != 1 || problem.Errors[0].Location != "body.source:2:6 url" {
		t.Fatalf("a bad channel: %d %+v", st, problem)
	}
	if st := th.call(th.token("eve", "viewer"), "PUT", "/v1/channels/x", map[string]any{"source": channels["hook"]}, nil); st != 403 {
		t.Fatalf("a viewer sets a channel: %d", st)
	}
	if st := th.call(th.admin, "DELETE", "/v1/channels/hook", nil, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st := th.call(th.admin, "GET", "/v1/channels/hook", nil, nil); st != 404 {
		t.Fatalf("a deleted channel: %d", st)
	}
}

// TestOfflineAlertNotifies: an offline alert that fires and resolves is sent to its rule's channel,
// once each, however many instances evaluate; PagerDuty gets a trigger and a resolve with the alert
// as the dedup key. A rule naming a channel that does not exist is refused at its place.
func TestOfflineAlertNotifies(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "file:" + t.TempDir()
	one, other := startTestHub(t, url, priv, nil), startTestHub(t, url, priv, nil)
	rcv := notifytest.NewReceiver(t)
	one.setChannel("oncall", "kind: pagerduty\nurl: "+rcv.URL+"/v2/enqueue\nroutingKey: pd-key-0001\n")
	ctx := context.Background()
	a := one.agent("web-1", map[string]string{"role": "web"}, nil)
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Now()
	setClock := func(c time.Time) { mu.Lock(); clock = c; mu.Unlock() }
	for _, th := range []*testHub{one, other} {
		th.h.Alerts.Every = time.Nanosecond
		th.h.Alerts.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	}
	var problem struct{ Detail string }
	if st := one.call(one.admin, "PUT", "/v1/alert-rules", map[string]any{"source": "rules:\n  - name: down\n    kind: offline\n    for: 1m\n    channels: [oncall, nowhere]\n"}, &problem); st != 422 ||
		!strings.Contains(problem.Detail, `5:24: rules[0].channels[1]: channel "nowhere" does not exist (configured: oncall)`) {
		t.Fatalf("a rule naming no channel: %d %+v", st, problem)
	}
	if st := one.call(one.admin, "PUT", "/v1/alert-rules", map[string]any{"source": "rules:\n  - name: down\n    kind: offline\n    for: 1m\n    severity: critical\n    channels: [oncall]\n"}, nil); st != 200 {
		t.Fatalf("apply: %d", st)
	}
	tick := func() {
		for _, th := range []*testHub{one, other} {
			th.h.Alerts.Tick(ctx)
		}
	}
	tick() // online at first sight
	setClock(time.Now().Add(20 * time.Minute))
	tick()
	tick()
	got := rcv.Wait(t, "/v2/enqueue", 1, 5*time.Second)
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	setClock(time.Now())
	tick()
	got = rcv.Wait(t, "/v2/enqueue", 2, 5*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if got = rcv.Got("/v2/enqueue"); len(got) != 2 {
		t.Fatalf("PagerDuty took %d events, want a trigger and a resolve", len(got))
	}
	var ev [2]struct {
		EventAction string `json:"event_action"`
		DedupKey    string `json:"dedup_key"`
		Payload     struct{ Severity, Source string }
	}
	for i := range got {
		if err := json.Unmarshal(got[i].Body, &ev[i]); err != nil {
			t.Fatal(err)
		}
	}
	if ev[0].EventAction != "trigger" || ev[1].EventAction != "resolve" || ev[0].DedupKey == "" || ev[0].DedupKey != ev[1].DedupKey ||
		ev[0].Payload.Severity != "critical" || ev[0].Payload.Source != "web-1" {
		t.Fatalf("events: %+v", ev)
	}
}
