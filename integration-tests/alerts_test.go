package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/layout"
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
// alert resolves.
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
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("rules:\n  - name: mail_backlog\n    kind: metric\n    targets: [role=worker]\n    metric: queue_length\n    labels: {queue: mail}\n"+
		"    above: 100\n    clear: 50\n    for: 4s\n    severity: warning\n"), 0o600)
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
}
