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
		ID, State, Rule, Agent, Name, Severity string
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
