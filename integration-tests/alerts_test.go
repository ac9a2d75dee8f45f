package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/notify/notifytest"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// alertList is what `pulse alerts --json` prints.
type alertList struct {
	Alerts []struct {
		ID, State, Rule, Agent, Name, Severity, Subject, Detail string
		Value                                                   *float64
	} `json:"alerts"`
}

func listAlerts(t *testing.T, hubURL, token string) alertList {
	t.Helper()
	out, errOut, code := pulseCLI(t, hubURL, token, "alerts", "--json")
	if code != 0 {
		t.Fatalf("pulse alerts: exit %d: %s", code, errOut)
	}
	var l alertList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("pulse alerts --json: %v: %s", err, out)
	}
	return l
}

// TestOfflineAlertFiresOnceWithTwoHubs: two real `pulse serve` instances on one MinIO bucket and a
// real pulse-agent. An offline rule applied with `pulse alert-rules apply`; the agent is killed: it
// shows offline and its alert fires once, not once per hub instance, and is recorded once in the
// bucket; started again, the alert resolves. A broken rule file is refused at its line.
func TestOfflineAlertFiresOnceWithTwoHubs(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	// Agents send an unchanged heartbeat every second: three missed make one offline.
	one := startHub(t, dir, s3server.Env(), "--store", storeURL, "--agent-liveness", "1s", "--poll-hold", "2s")
	other := startHub(t, dir, s3server.Env(), "--store", storeURL, "--agent-liveness", "1s", "--poll-hold", "2s")
	tok, errOut, code := pulseCLI(t, one.url, token, "enroll-token", "create", "--labels", "role=web")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", errOut)
	}
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nliveness = \"1s\"\n", 1)
	stateDir := filepath.Join(dir, "agent")
	a := startAgent(t, one.url, stateDir, cfg, "--enroll-token", strings.TrimSpace(tok))
	id := a.id()

	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("rules:\n  - name: down\n    kind: offline\n    for: 2\n"), 0o600)
	if _, errOut, code := pulseCLI(t, one.url, token, "alert-rules", "apply", "-f", broken); code == 0 || !strings.Contains(errOut, broken+":4:10: rules[0].for: want a duration with its unit") {
		t.Fatalf("a broken rule: exit %d: %s", code, errOut)
	}
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("rules:\n  - name: down\n    kind: offline\n    targets: [role=web]\n    for: 2s\n    severity: critical\n"), 0o600)
	if out, errOut, code := pulseCLI(t, other.url, token, "alert-rules", "apply", "-f", rules); code != 0 || !strings.Contains(out, "alert rules version 1 applied: 1 rule(s)") {
		t.Fatalf("apply: exit %d: %s%s", code, out, errOut)
	}
	time.Sleep(3 * time.Second) // both hubs see the agent online first: an alert is a transition
	if l := listAlerts(t, one.url, token); len(l.Alerts) != 0 {
		t.Fatalf("alerts while the agent runs: %+v", l)
	}

	a.stop()
	var l alertList
	waitFor(t, "the offline alert firing", 60*time.Second, func() bool {
		l = listAlerts(t, other.url, token)
		return len(l.Alerts) == 1 && l.Alerts[0].State == "firing"
	})
	if al := l.Alerts[0]; al.Agent != id || al.Rule != "down" || al.Severity != "critical" {
		t.Fatalf("the alert: %+v", al)
	}
	time.Sleep(3 * time.Second) // both hubs go on evaluating
	if l := listAlerts(t, one.url, token); len(l.Alerts) != 1 {
		t.Fatalf("after more evaluations on two hubs: %+v, want one alert", l)
	}
	bucket := bucketStore(t, storeURL)
	var events []string
	store.Walk(t.Context(), bucket, layout.Alerts, "", 0, func(o store.ObjectInfo) error {
		events = append(events, o.Key)
		return nil
	})
	if len(events) != 1 || !strings.HasSuffix(events[0], "/fired.json") {
		t.Fatalf("alert events in the bucket: %v, want one fired", events)
	}

	startAgent(t, one.url, stateDir, cfg)
	waitFor(t, "the alert resolved", 60*time.Second, func() bool {
		l = listAlerts(t, one.url, token)
		return len(l.Alerts) == 1 && l.Alerts[0].State == "resolved"
	})
}

// writeTextfile replaces a textfile metric the way a script does: write aside, then rename.
func writeTextfile(t *testing.T, dir, name, body string) {
	t.Helper()
	tmp := filepath.Join(dir, name+".prom.tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name+".prom")); err != nil {
		t.Fatal(err)
	}
}

// TestThresholdAlertFromARealAgent: a real pulse-agent reports a value a script writes to its
// textfile directory, sampled every second and uploaded every second to a real `pulse serve` on
// MinIO. A metric rule (above 100 for 4s, clear under 50): a spike of 1.5 s, seen in the history,
// does not fire; the value held high fires once, with the value and the series; brought back, the
// alert resolves. The firing and the resolution reach a real HTTP receiver in every channel kind's
// shape (webhook signed, Slack, Discord, Teams, ntfy, Gotify, PagerDuty trigger then resolve with the
// alert as dedup key) and a real SMTP server, once each.
func TestThresholdAlertFromARealAgent(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	tok, errOut, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--labels", "role=worker")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", errOut)
	}
	textDir := filepath.Join(dir, "textfile")
	os.MkdirAll(textDir, 0o755)
	writeTextfile(t, textDir, "queue", "# TYPE queue_length gauge\nqueue_length{queue=\"mail\"} 1\n")
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nmetrics_upload = \"1s\"\n", 1) +
		"\n[host]\nsample_every = \"1s\"\ntextfile_dir = \"" + textDir + "\"\n"
	a := startAgent(t, h.url, filepath.Join(dir, "agent"), cfg, "--enroll-token", strings.TrimSpace(tok))
	id := a.id()
	rcv := notifytest.NewReceiver(t)
	mail := notifytest.NewSMTP(t, "pulse", "smtp-pw")
	channels := filepath.Join(dir, "channels.yaml")
	os.WriteFile(channels, []byte(fmt.Sprintf(`channels:
  - {name: hook, kind: webhook, url: %[1]s/hook, secret: hmac-secret}
  - {name: slack, kind: slack, url: %[1]s/services/T0/B0/x}
  - {name: discord, kind: discord, url: %[1]s/api/webhooks/1/x}
  - {name: teams, kind: teams, url: %[1]s/workflows/x}
  - {name: ntfy, kind: ntfy, url: %[1]s, topic: alerts}
  - {name: gotify, kind: gotify, url: %[1]s, token: gotify-token}
  - {name: pd, kind: pagerduty, url: %[1]s/v2/enqueue, routingKey: pd-key}
  - {name: mail, kind: email, host: %[2]s, port: %[3]d, tls: none, username: pulse, password: smtp-pw, from: pulse@example.com, to: [ops@example.com]}
`, rcv.URL, mail.Host, mail.Port)), 0o600)
	if out, errOut, code := pulseCLI(t, h.url, token, "channels", "apply", "-f", channels); code != 0 {
		t.Fatalf("channels apply: exit %d: %s%s", code, out, errOut)
	}
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("rules:\n  - name: mail_backlog\n    kind: metric\n    targets: [role=worker]\n    metric: queue_length\n    labels: {queue: mail}\n"+
		"    above: 100\n    clear: 50\n    for: 4s\n    severity: warning\n    channels: [hook, slack, discord, teams, ntfy, gotify, pd, mail]\n"), 0o600)
	if out, errOut, code := pulseCLI(t, h.url, token, "alert-rules", "apply", "-f", rules); code != 0 {
		t.Fatalf("apply: exit %d: %s%s", code, out, errOut)
	}
	peak := func() float64 {
		out, errOut, code := pulseCLI(t, h.url, token, "metrics", id, "queue_length", "--since", "2m", "--step", "10s", "--json")
		if code != 0 {
			t.Fatalf("pulse metrics: exit %d: %s", code, errOut)
		}
		var m metricsAnswer
		json.Unmarshal([]byte(out), &m)
		top := -1.0
		for _, s := range m.Series {
			for _, p := range s.Points {
				if p.Count > 0 && p.Max > top {
					top = p.Max
				}
			}
		}
		return top
	}
	waitFor(t, "the script's value at the hub", 60*time.Second, func() bool { return peak() >= 1 })

	// A spike shorter than for: seen in the history, never an alert.
	writeTextfile(t, textDir, "queue", "queue_length{queue=\"mail\"} 500\n")
	time.Sleep(1500 * time.Millisecond)
	writeTextfile(t, textDir, "queue", "queue_length{queue=\"mail\"} 1\n")
	waitFor(t, "the spike in the history", 30*time.Second, func() bool { return peak() >= 500 })
	time.Sleep(5 * time.Second) // samples after the spike are taken and evaluated
	if l := listAlerts(t, h.url, token); len(l.Alerts) != 0 {
		t.Fatalf("a 1.5 s spike fired: %+v", l)
	}

	// Held high: fires once, with what crossed.
	writeTextfile(t, textDir, "queue", "queue_length{queue=\"mail\"} 500\n")
	var l alertList
	waitFor(t, "the threshold alert firing", 60*time.Second, func() bool {
		l = listAlerts(t, h.url, token)
		return len(l.Alerts) > 0
	})
	if al := l.Alerts[0]; len(l.Alerts) != 1 || al.State != "firing" || al.Rule != "mail_backlog" || al.Agent != id || al.Value == nil || *al.Value != 500 ||
		al.Subject != `queue_length{queue="mail"}` {
		t.Fatalf("the alert: %+v", l)
	}
	// 80 is under the trigger but above clear: still firing. 1 resolves it.
	writeTextfile(t, textDir, "queue", "queue_length{queue=\"mail\"} 80\n")
	time.Sleep(3 * time.Second)
	if l = listAlerts(t, h.url, token); len(l.Alerts) != 1 || l.Alerts[0].State != "firing" {
		t.Fatalf("between clear and the trigger: %+v", l)
	}
	writeTextfile(t, textDir, "queue", "queue_length{queue=\"mail\"} 1\n")
	waitFor(t, "the alert resolved", 60*time.Second, func() bool {
		l = listAlerts(t, h.url, token)
		return len(l.Alerts) == 1 && l.Alerts[0].State == "resolved"
	})

	// Every channel heard the firing and the resolution, once each, in its shape.
	alertID := l.Alerts[0].ID
	js := func(q notifytest.Request) map[string]any {
		var v map[string]any
		json.Unmarshal(q.Body, &v)
		return v
	}
	for _, path := range []string{"/hook", "/services/T0/B0/x", "/api/webhooks/1/x", "/workflows/x", "/alerts", "/message", "/v2/enqueue"} {
		got := rcv.Wait(t, path, 2, 30*time.Second)
		if len(got) != 2 {
			t.Fatalf("%s took %d notifications, want the firing and the resolution", path, len(got))
		}
		first, second := got[0], got[1]
		switch path {
		case "/hook":
			for _, q := range got {
				if q.Header.Get(notify.HeaderSignature) != notify.Sign("hmac-secret", q.Header.Get(notify.HeaderTimestamp), q.Body) {
					t.Errorf("the webhook's signature does not verify: %s", q.Body)
				}
			}
			if js(first)["kind"] != "fired" || js(second)["kind"] != "resolved" || js(first)["alert"] != alertID {
				t.Errorf("webhook bodies: %s / %s", first.Body, second.Body)
			}
		case "/services/T0/B0/x":
			if txt, _ := js(first)["text"].(string); !strings.Contains(txt, "mail_backlog") {
				t.Errorf("slack: %s", first.Body)
			}
		case "/api/webhooks/1/x":
			if e, _ := js(first)["embeds"].([]any); len(e) != 1 {
				t.Errorf("discord: %s", first.Body)
			}
		case "/workflows/x":
			if js(first)["type"] != "message" {
				t.Errorf("teams: %s", first.Body)
			}
		case "/alerts":
			if first.Header.Get("Title") == "" || !strings.Contains(string(first.Body), "queue_length") {
				t.Errorf("ntfy: %v %s", first.Header, first.Body)
			}
		case "/message":
			if first.Header.Get("X-Gotify-Key") != "gotify-token" || js(first)["title"] == nil {
				t.Errorf("gotify: %v %s", first.Header, first.Body)
			}
		case "/v2/enqueue":
			if js(first)["event_action"] != "trigger" || js(second)["event_action"] != "resolve" || js(first)["dedup_key"] != alertID || js(second)["dedup_key"] != alertID {
				t.Errorf("pagerduty: %s / %s", first.Body, second.Body)
			}
		}
	}
	if m := mail.Wait(t, 2, 30*time.Second); len(m) != 2 || m[0].To[0] != "ops@example.com" || !strings.Contains(string(m[0].Data), "mail_backlog") {
		t.Fatalf("mail: %+v", m)
	}
	var deliveries deliveryLog
	out, _, _ := pulseCLI(t, h.url, token, "notifications", "--alert", alertID, "--json")
	if json.Unmarshal([]byte(out), &deliveries); len(deliveries.Notifications) != 16 {
		t.Fatalf("the delivery log of the alert holds %d deliveries, want 8 channels × fired and resolved: %s", len(deliveries.Notifications), out)
	}
	for _, d := range deliveries.Notifications {
		if d.State != "sent" {
			t.Errorf("delivery %s to %s: %s", d.ID, d.Channel, d.State)
		}
	}
}
