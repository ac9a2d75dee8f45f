package notify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/notify/notifytest"
)

func fired() notify.Message {
	m := notify.Sample()
	m.Detail = "no heartbeat since 2026-01-02T03:00:00Z"
	return m
}

// TestKindsSendTheirShape: every HTTP kind posts what its service requires to a real receiver.
func TestKindsSendTheirShape(t *testing.T) {
	rcv := notifytest.NewReceiver(t)
	ctx := context.Background()
	type check func(t *testing.T, q notifytest.Request)
	jsonOf := func(t *testing.T, q notifytest.Request) map[string]any {
		t.Helper()
		var v map[string]any
		if err := json.Unmarshal(q.Body, &v); err != nil {
			t.Fatalf("body %s: %v", q.Body, err)
		}
		return v
	}
	cases := []struct {
		name string
		ch   notify.Channel
		m    notify.Message
		path string
		ok   check
	}{
		{"webhook signed", notify.Channel{Kind: notify.Webhook, URL: rcv.URL + "/hook", Secret: "hmac-secret"}, fired(), "/hook", func(t *testing.T, q notifytest.Request) {
			ts := q.Header.Get(notify.HeaderTimestamp)
			if want := notify.Sign("hmac-secret", ts, q.Body); ts == "" || q.Header.Get(notify.HeaderSignature) != want {
				t.Fatalf("signature %q over %q, want %q", q.Header.Get(notify.HeaderSignature), ts, want)
			}
			if v := jsonOf(t, q); v["alert"] != fired().Alert || v["kind"] != "fired" || v["severity"] != "critical" {
				t.Fatalf("body %v", v)
			}
		}},
		{"webhook templated", notify.Channel{Kind: notify.Webhook, URL: rcv.URL + "/tpl", Body: `{"summary": {{json (title .)}}, "detail": {{json .Detail}}}`}, fired(), "/tpl", func(t *testing.T, q notifytest.Request) {
			if v := jsonOf(t, q); v["summary"] != "[FIRING] disk_full on web-1" || v["detail"] != fired().Detail {
				t.Fatalf("body %v", v)
			}
			if q.Header.Get(notify.HeaderSignature) != "" {
				t.Fatal("signed without a secret")
			}
		}},
		{"slack", notify.Channel{Kind: notify.Slack, URL: rcv.URL + "/services/T0/B0/slack-secret"}, fired(), "/services/T0/B0/slack-secret", func(t *testing.T, q notifytest.Request) {
			v := jsonOf(t, q)
			att, _ := v["attachments"].([]any)
			if v["text"] != "[FIRING] disk_full on web-1" || len(att) != 1 || att[0].(map[string]any)["color"] != "#d00000" {
				t.Fatalf("body %v", v)
			}
		}},
		{"discord", notify.Channel{Kind: notify.Discord, URL: rcv.URL + "/api/webhooks/1/discord-secret"}, fired(), "/api/webhooks/1/discord-secret", func(t *testing.T, q notifytest.Request) {
			v := jsonOf(t, q)
			embeds, _ := v["embeds"].([]any)
			if len(embeds) != 1 {
				t.Fatalf("body %v", v)
			}
			e := embeds[0].(map[string]any)
			if e["title"] != "[FIRING] disk_full on web-1" || e["description"] != fired().Detail || e["color"] != float64(0xd00000) || e["timestamp"] != "2026-01-02T03:04:05Z" {
				t.Fatalf("embed %v", e)
			}
		}},
		{"teams", notify.Channel{Kind: notify.Teams, URL: rcv.URL + "/workflows/teams-secret"}, fired(), "/workflows/teams-secret", func(t *testing.T, q notifytest.Request) {
			v := jsonOf(t, q)
			att, _ := v["attachments"].([]any)
			if v["type"] != "message" || len(att) != 1 {
				t.Fatalf("body %v", v)
			}
			a := att[0].(map[string]any)
			card, _ := a["content"].(map[string]any)
			if a["contentType"] != "application/vnd.microsoft.card.adaptive" || card["type"] != "AdaptiveCard" || card["version"] == nil {
				t.Fatalf("attachment %v", a)
			}
			if !strings.Contains(string(q.Body), "[FIRING] disk_full on web-1") {
				t.Fatalf("no title in %s", q.Body)
			}
		}},
		{"ntfy", notify.Channel{Kind: notify.Ntfy, URL: rcv.URL, Topic: "alerts", Token: "tk_ntfysecret", Tags: []string{"pulse"}}, fired(), "/alerts", func(t *testing.T, q notifytest.Request) {
			if q.Header.Get("Title") != "[FIRING] disk_full on web-1" || q.Header.Get("Priority") != "5" || q.Header.Get("Tags") != "rotating_light,pulse" ||
				q.Header.Get("Authorization") != "Bearer tk_ntfysecret" || !strings.Contains(string(q.Body), fired().Detail) {
				t.Fatalf("headers %v body %s", q.Header, q.Body)
			}
		}},
		{"gotify", notify.Channel{Kind: notify.Gotify, URL: rcv.URL + "/", Token: "gotify-app-secret"}, fired(), "/message", func(t *testing.T, q notifytest.Request) {
			v := jsonOf(t, q)
			if q.Header.Get("X-Gotify-Key") != "gotify-app-secret" || v["title"] != "[FIRING] disk_full on web-1" || v["priority"] != float64(8) || !strings.Contains(v["message"].(string), fired().Detail) {
				t.Fatalf("headers %v body %v", q.Header, v)
			}
		}},
		{"pagerduty trigger", notify.Channel{Kind: notify.PagerDuty, URL: rcv.URL + "/v2/enqueue", RoutingKey: "R0UTINGKEY0000000000000000000001"}, fired(), "/v2/enqueue", func(t *testing.T, q notifytest.Request) {
			v := jsonOf(t, q)
			p, _ := v["payload"].(map[string]any)
			if v["routing_key"] != "R0UTINGKEY0000000000000000000001" || v["event_action"] != "trigger" || v["dedup_key"] != fired().Alert ||
				p["severity"] != "critical" || p["source"] != "web-1" || !strings.HasPrefix(p["summary"].(string), "[FIRING] disk_full on web-1") {
				t.Fatalf("body %v", v)
			}
		}},
		{"pagerduty resolve", notify.Channel{Kind: notify.PagerDuty, URL: rcv.URL + "/v2/enqueue", RoutingKey: "R0UTINGKEY0000000000000000000001"},
			func() notify.Message { m := fired(); m.Kind = notify.KindResolved; return m }(), "/v2/enqueue", func(t *testing.T, q notifytest.Request) {
				if v := jsonOf(t, q); v["event_action"] != "resolve" || v["dedup_key"] != fired().Alert {
					t.Fatalf("body %v", v)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(rcv.Got(c.path))
			r, err := notify.Send(ctx, &c.ch, c.m)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status/100 != 2 {
				t.Fatalf("receipt %+v", r)
			}
			got := rcv.Got(c.path)
			if len(got) != before+1 {
				t.Fatalf("%s took %d requests, want %d", c.path, len(got), before+1)
			}
			c.ok(t, got[len(got)-1])
		})
	}
}

// TestEmail: a mail reaches a real SMTP server after AUTH PLAIN, with its subject and recipients; a
// wrong password is refused with the server's answer and never the password.
func TestEmail(t *testing.T) {
	srv := notifytest.NewSMTP(t, "pulse", "smtp-pass-secret")
	ch := notify.Channel{Name: "mail", Kind: notify.Email, Host: srv.Host, Port: srv.Port, Security: notify.NoTLS, Username: "pulse", Password: "smtp-pass-secret",
		From: "Pulse <pulse@example.com>", To: []string{"ops@example.com", "Oncall <oncall@example.com>"}}
	if _, err := notify.Send(context.Background(), &ch, fired()); err != nil {
		t.Fatal(err)
	}
	mails := srv.Wait(t, 1, 5*time.Second)
	m := mails[0]
	if m.User != "pulse" || m.From != "pulse@example.com" || strings.Join(m.To, ",") != "ops@example.com,oncall@example.com" {
		t.Fatalf("mail %+v", m)
	}
	if !strings.Contains(string(m.Data), "Subject: [FIRING] disk_full on web-1\r\n") || !strings.Contains(string(m.Data), "no heartbeat since") {
		t.Fatalf("mail data %s", m.Data)
	}
	ch.Password = "wrong-pass-secret"
	_, err := notify.Send(context.Background(), &ch, fired())
	if err == nil || !strings.Contains(err.Error(), "AUTH") || strings.Contains(err.Error(), "wrong-pass-secret") {
		t.Fatalf("a wrong password: %v", err)
	}
}

// TestErrorsHoldNoSecret: a receiver that fails, and echoes the request back, makes an error that
// says its status and answer, never a secret; so does a receiver that cannot be reached (the
// *url.Error prints the URL).
func TestErrorsHoldNoSecret(t *testing.T) {
	rcv := notifytest.NewReceiver(t)
	cases := []notify.Channel{
		{Kind: notify.Webhook, URL: rcv.URL + "/hook", Secret: "hmac-secret-123"},
		{Kind: notify.Slack, URL: rcv.URL + "/services/T0/B0/slack-secret-123"},
		{Kind: notify.Discord, URL: rcv.URL + "/api/webhooks/1/discord-secret-123"},
		{Kind: notify.Teams, URL: rcv.URL + "/workflows/teams-secret-123"},
		{Kind: notify.Ntfy, URL: rcv.URL, Topic: "t", Token: "ntfy-secret-123"},
		{Kind: notify.Gotify, URL: rcv.URL, Token: "gotify-secret-123"},
		{Kind: notify.PagerDuty, URL: rcv.URL + "/v2/enqueue", RoutingKey: "pd-secret-123"},
	}
	for _, ch := range cases {
		secret := ch.SecretValues()[0]
		for _, path := range []string{"/hook", "/services/T0/B0/slack-secret-123", "/api/webhooks/1/discord-secret-123", "/workflows/teams-secret-123", "/t", "/message", "/v2/enqueue"} {
			rcv.Fail(path, 1, 500, "internal trouble, you sent "+secret)
		}
		_, err := notify.Send(context.Background(), &ch, fired())
		var ne *notify.Error
		if !errors.As(err, &ne) || ne.Status != 500 || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "internal trouble") {
			t.Fatalf("%s: %v", ch.Kind, err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(ne.Answer, secret) {
			t.Fatalf("%s: the error holds the secret: %v", ch.Kind, err)
		}
		// Nothing listens: the transport's error.
		down := ch
		down.URL = strings.Replace(ch.URL, rcv.URL, "http://127.0.0.1:1", 1)
		_, err = notify.Send(context.Background(), &down, fired())
		if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("%s unreachable: %v", ch.Kind, err)
		}
	}
}

// TestParseRefusals: every broken channel is refused at its line and column with the reason.
func TestParseRefusals(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"unknown kind", "kind: telegram\nurl: https://x\n", "1:7: kind: unknown kind \"telegram\""},
		{"no kind", "url: https://x\n", "1:1: kind: no kind"},
		{"unknown field", "kind: slack\nurl: https://hooks.slack.com/x\nchannel: '#ops'\n", "3:1: channel: unknown field \"channel\""},
		{"field of another kind", "kind: slack\nurl: https://hooks.slack.com/x\ntopic: a\n", "3:1: topic: unknown field \"topic\""},
		{"missing url", "kind: discord\n", "1:1: url: kind discord needs url"},
		{"bad scheme", "kind: webhook\nurl: ftp://example.com/x\n", "2:6: url: URL scheme \"ftp\""},
		{"no scheme", "kind: teams\nurl: example.com/hook\n", "2:6: url: URL scheme \"\""},
		{"bad from", "kind: email\nhost: smtp.example.com\nfrom: not-an-address\nto: [ops@example.com]\n", "3:7: from: from \"not-an-address\" is not an e-mail address"},
		{"bad to", "kind: email\nhost: smtp.example.com\nfrom: a@example.com\nto:\n  - ops@example.com\n  - nobody\n", "6:5: to[1]: \"nobody\" is not an e-mail address"},
		{"clear smtp", "kind: email\nhost: smtp.example.com\ntls: none\nfrom: a@example.com\nto: [b@example.com]\n", "3:6: tls: tls: none sends in clear"},
		{"template syntax", "kind: webhook\nurl: https://x.example\nbody: '{\"a\": {{.Detail}'\n", "3:7: body: body template:"},
		{"template field", "kind: webhook\nurl: https://x.example\nbody: '{\"a\": {{json .Nope}}}'\n", "3:7: body: body template fails on a sample message"},
		{"template not json", "kind: webhook\nurl: https://x.example\nbody: '{\"a\": {{.Detail}}}'\n", "3:7: body: body template renders no valid JSON"},
		{"ntfy priority", "kind: ntfy\ntopic: t\npriority: 9\n", "3:11: priority: ntfy priority is 1 (min) to 5 (max)"},
		{"pagerduty key", "kind: pagerduty\n", "1:1: routingKey: kind pagerduty needs routingKey"},
		{"name differs", "name: other\nkind: slack\nurl: https://x.example/y\n", "1:7: name: the channel is named \"other\" here and \"ops\""},
		{"default not bool", "kind: slack\nurl: https://x.example/y\ndefault: yes please\n", "3:10: default: want true or false"},
		{"json", "{\"kind\": \"slack\",\n \"url\": \"gopher://x\"}\n", "2:9: url: URL scheme \"gopher\""},
		{"syntax", "kind: [slack\n", "syntax error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := notify.ParseChannel("ops", []byte(c.src))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	chs, err := notify.ParseFile([]byte("channels:\n  - name: ops\n    kind: slack\n    url: https://hooks.slack.com/services/x\n    default: true\n  - name: ops\n    kind: ntfy\n    topic: a\n"))
	if err == nil || !strings.Contains(err.Error(), "6:5: channels[1].name: channel \"ops\" is already defined") {
		t.Fatalf("duplicate names: %v %v", chs, err)
	}
	chs, err = notify.ParseFile([]byte("channels:\n  - name: ops\n    kind: slack\n    url: https://hooks.slack.com/services/x\n    default: true\n  - name: phone\n    kind: ntfy\n    topic: a\n"))
	if err != nil || len(chs) != 2 || !chs[0].Default || chs[1].Topic != "a" {
		t.Fatalf("a good file: %+v %v", chs, err)
	}
}

// TestSealOpen: secrets come out of a channel sealed, open with the same hub's keys and after a
// rotation (the previous key kept), not with another hub's keys nor under another channel's name; the
// redacted channel shows no secret.
func TestSealOpen(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := &hubkey.Keys{Current: priv}
	ch := notify.Channel{Name: "ops", Kind: notify.Slack, URL: "https://hooks.slack.com/services/T0/B0/very-secret", Default: true}
	plain, sealed, err := notify.Seal(keys, ch)
	if err != nil || plain.URL != "" || sealed == nil || sealed.Key != keys.CurrentID() {
		t.Fatalf("seal: %+v %+v %v", plain, sealed, err)
	}
	b, _ := json.Marshal(struct {
		notify.Channel
		S *notify.Sealed
	}{plain, sealed})
	if strings.Contains(string(b), "very-secret") || strings.Contains(string(b), "hooks.slack.com") {
		t.Fatalf("stored form shows the URL: %s", b)
	}
	opened, err := notify.Open(keys, plain, sealed)
	if err != nil || opened.URL != ch.URL {
		t.Fatalf("open: %+v %v", opened, err)
	}
	_, next, _ := ed25519.GenerateKey(rand.Reader)
	rotated := &hubkey.Keys{Current: next, Previous: priv}
	if opened, err := notify.Open(rotated, plain, sealed); err != nil || opened.URL != ch.URL {
		t.Fatalf("open after a rotation: %+v %v", opened, err)
	}
	if _, err := notify.Open(&hubkey.Keys{Current: next}, plain, sealed); err == nil || !strings.Contains(err.Error(), "no longer holds") {
		t.Fatalf("open without the sealing key: %v", err)
	}
	moved := plain
	moved.Name = "other"
	if _, err := notify.Open(keys, moved, sealed); err == nil {
		t.Fatal("a sealed box moved to another channel opened")
	}
	if r := ch.Redacted(); r.URL != "••• (hooks.slack.com)" || ch.URL == r.URL {
		t.Fatalf("redacted: %+v", r)
	}
	mail := notify.Channel{Name: "m", Kind: notify.Email, Password: "pw-secret", Username: "u"}
	if r := mail.Redacted(); r.Password != notify.Mask || r.Username != "u" {
		t.Fatalf("redacted mail: %+v", r)
	}
}
