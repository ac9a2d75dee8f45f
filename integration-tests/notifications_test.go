package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/notify/notifytest"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// deliveryLog is what `pulse notifications --json` prints.
type deliveryLog struct {
	Notifications []struct {
		ID, Channel, State string
		Attempts           []struct {
			State, Error string
			Status       int
		}
	} `json:"notifications"`
}

// TestChannelsEndToEnd: a real `pulse serve` on MinIO, channels of every kind applied with `pulse
// channels apply` pointing at real receivers started here (HTTP for seven kinds, SMTP with AUTH for
// e-mail). `pulse channels test` reaches each in its shape; a receiver that fails first makes the test
// fail, and the delivery log says retrying, then sent after the backoff. A broken channels file is
// refused at its line and column. No object in the bucket, no answer and no log line of the hub holds
// a secret.
func TestChannelsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL)
	rcv := notifytest.NewReceiver(t)
	mail := notifytest.NewSMTP(t, "pulse", "e2e-smtp-password")
	secrets := []string{"e2e-hmac-secret", "e2e-slack-T0B0X1", "e2e-discord-123456", "e2e-teams-wf-0001", "e2e-ntfy-token", "e2e-gotify-token", "e2e-pd-routing-key", "e2e-smtp-password"}

	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("channels:\n  - name: ops\n    kind: slack\n    url: ftp://hooks.slack.com/x\n"), 0o600)
	if _, errOut, code := pulseCLI(t, h.url, token, "channels", "apply", "-f", broken); code == 0 || !strings.Contains(errOut, broken+":4:10: channels[0].url: URL scheme \"ftp\"") {
		t.Fatalf("a broken channel: exit %d: %s", code, errOut)
	}
	var bad struct{ Detail string }
	if st := op(t, h, token, "PUT", "/v1/channels/ops", map[string]any{"source": "kind: telegram\n"}, &bad); st != 422 || !strings.Contains(bad.Detail, "1:7: kind: unknown kind \"telegram\"") {
		t.Fatalf("a bad channel through the API: %d %+v", st, bad)
	}

	file := filepath.Join(dir, "channels.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`channels:
  - {name: hook, kind: webhook, url: %[1]s/hook, secret: e2e-hmac-secret}
  - {name: slack, kind: slack, url: %[1]s/services/e2e-slack-T0B0X1, default: true}
  - {name: discord, kind: discord, url: %[1]s/api/webhooks/e2e-discord-123456}
  - {name: teams, kind: teams, url: %[1]s/workflows/e2e-teams-wf-0001}
  - {name: ntfy, kind: ntfy, url: %[1]s, topic: pulse, token: e2e-ntfy-token}
  - {name: gotify, kind: gotify, url: %[1]s, token: e2e-gotify-token}
  - {name: pd, kind: pagerduty, url: %[1]s/v2/enqueue, routingKey: e2e-pd-routing-key}
  - name: mail
    kind: email
    host: %[2]s
    port: %[3]d
    tls: none
    username: pulse
    password: e2e-smtp-password
    from: Pulse <pulse@example.com>
    to: [ops@example.com]
`, rcv.URL, mail.Host, mail.Port)), 0o600)
	if out, errOut, code := pulseCLI(t, h.url, token, "channels", "apply", "-f", file); code != 0 || strings.Count(out, "applied") != 8 {
		t.Fatalf("apply: exit %d: %s%s", code, out, errOut)
	}
	list, errOut, code := pulseCLI(t, h.url, token, "channels", "--json")
	if code != 0 || !strings.Contains(list, `"default": true`) {
		t.Fatalf("pulse channels: %d %s%s", code, list, errOut)
	}

	rcv.Fail("/api/webhooks/e2e-discord-123456", 1, 500, "discord is down")
	answers := list
	for _, name := range []string{"hook", "slack", "discord", "teams", "ntfy", "gotify", "pd", "mail"} {
		out, errOut, code := pulseCLI(t, h.url, token, "channels", "test", name)
		answers += out + errOut
		if want := 0; name == "discord" {
			if code == 0 || !strings.Contains(out, "failed (HTTP 500; discord: the receiver answered 500") {
				t.Fatalf("test discord: exit %d: %s%s", code, out, errOut)
			}
		} else if code != want || !strings.Contains(out, "channel "+name+": sent") {
			t.Fatalf("test %s: exit %d: %s%s", name, code, out, errOut)
		}
	}
	var l deliveryLog
	if out, _, _ := pulseCLI(t, h.url, token, "notifications", "--channel", "discord", "--json"); json.Unmarshal([]byte(out), &l) != nil ||
		len(l.Notifications) != 1 || l.Notifications[0].State != "retrying" {
		t.Fatalf("the failed Discord test in the log: %s", out)
	}
	shape := func(path string, check func(q notifytest.Request) bool) {
		t.Helper()
		got := rcv.Got(path)
		if len(got) == 0 || !check(got[len(got)-1]) {
			t.Fatalf("%s took %d requests; the last does not look right: %+v", path, len(got), got)
		}
	}
	js := func(q notifytest.Request) map[string]any {
		var v map[string]any
		json.Unmarshal(q.Body, &v)
		return v
	}
	shape("/hook", func(q notifytest.Request) bool {
		return q.Header.Get(notify.HeaderSignature) == notify.Sign("e2e-hmac-secret", q.Header.Get(notify.HeaderTimestamp), q.Body) && js(q)["kind"] == "test"
	})
	shape("/services/e2e-slack-T0B0X1", func(q notifytest.Request) bool { return js(q)["text"] == "[TEST] a test notification from Pulse" })
	shape("/workflows/e2e-teams-wf-0001", func(q notifytest.Request) bool { return js(q)["type"] == "message" })
	shape("/pulse", func(q notifytest.Request) bool {
		return q.Header.Get("Authorization") == "Bearer e2e-ntfy-token" && q.Header.Get("Title") != ""
	})
	shape("/message", func(q notifytest.Request) bool {
		return q.Header.Get("X-Gotify-Key") == "e2e-gotify-token" && js(q)["title"] != nil
	})
	shape("/v2/enqueue", func(q notifytest.Request) bool {
		return js(q)["routing_key"] == "e2e-pd-routing-key" && js(q)["event_action"] == "trigger"
	})
	if m := mail.Wait(t, 1, 5*time.Second)[0]; m.User != "pulse" || m.To[0] != "ops@example.com" || !strings.Contains(string(m.Data), "Subject: [TEST]") {
		t.Fatalf("mail: %+v", m)
	}

	// The failed test to Discord is retried after the first backoff (10 s) and sent.
	waitFor(t, "the Discord test retried and sent", 20*time.Second, func() bool {
		out, _, _ := pulseCLI(t, h.url, token, "notifications", "--channel", "discord", "--json")
		json.Unmarshal([]byte(out), &l)
		answers += out
		return len(l.Notifications) == 1 && l.Notifications[0].State == "sent"
	})
	if a := l.Notifications[0].Attempts; len(a) != 2 || a[0].State != "failed" || a[0].Status != 500 || a[1].State != "sent" {
		t.Fatalf("the Discord delivery's attempts: %+v", a)
	}
	shape("/api/webhooks/e2e-discord-123456", func(q notifytest.Request) bool {
		e, _ := js(q)["embeds"].([]any)
		return len(e) == 1
	})
	out, _, _ := pulseCLI(t, h.url, token, "notifications")
	answers += out

	for _, s := range secrets {
		if strings.Contains(answers, s) {
			t.Errorf("a CLI answer shows %s", s)
		}
		if strings.Contains(h.logs.String(), s) {
			t.Errorf("the hub's log shows %s", s)
		}
	}
	n := 0
	bucket := bucketStore(t, storeURL)
	err := store.Walk(t.Context(), bucket, "", "", 0, func(o store.ObjectInfo) error {
		b, _, err := store.ReadAll(t.Context(), bucket, o.Key)
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
		t.Fatalf("walked %d objects of the bucket: %v", n, err)
	}
}
