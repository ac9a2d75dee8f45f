package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Timeout bounds one send (the connection, the request and the answer), so a receiver that hangs
// holds up no other delivery for long.
const Timeout = 15 * time.Second

// Webhook signature headers: X-Pulse-Signature is "sha256=" and the hex HMAC-SHA256, under the
// channel's secret, of the X-Pulse-Timestamp value, a dot and the body. A receiver recomputes it and
// refuses an old timestamp, so a captured request cannot be replayed later.
const (
	HeaderTimestamp = "X-Pulse-Timestamp"
	HeaderSignature = "X-Pulse-Signature"
)

// Sign is the X-Pulse-Signature value of body sent at timestamp (Unix seconds, as sent).
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Receipt is what a receiver answered to a send that it took.
type Receipt struct {
	Status int    `json:"status,omitempty" doc:"The receiver's HTTP status (0 for e-mail)."`
	Answer string `json:"answer,omitempty" doc:"A short excerpt of the receiver's answer."`
}

// Error is a send that failed: what the receiver answered, or why none answered. Its text never holds
// one of the channel's secrets (they are replaced by Mask), so it may be logged, stored and returned.
type Error struct {
	Status int
	Answer string
	// Permanent is true when trying again cannot help (the receiver refused the request as such).
	Permanent bool
	msg       string
}

func (e *Error) Error() string { return e.msg }

// Send sends m to ch and returns the receiver's answer. A failure is an *Error without secrets.
func Send(ctx context.Context, ch *Channel, m Message) (Receipt, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var r Receipt
	var err error
	if ch.Kind == Email {
		r, err = sendMail(ctx, ch, m)
	} else {
		r, err = sendHTTP(ctx, ch, m)
	}
	if err != nil {
		return r, clean(ch, err)
	}
	r.Answer = scrub(r.Answer, ch.SecretValues())
	return r, nil
}

// clean turns any error into an *Error whose text holds no secret of ch. A *url.Error prints the
// URL, which for Slack, Discord and Teams is the credential: it is replaced by the host.
func clean(ch *Channel, err error) error {
	var e *Error
	if errors.As(err, &e) {
		e.msg = scrub(e.msg, ch.SecretValues())
		e.Answer = scrub(e.Answer, ch.SecretValues())
		return e
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		host := ""
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
		msg = fmt.Sprintf("%s %s: %v", ue.Op, host, ue.Err)
	}
	return &Error{msg: fmt.Sprintf("%s: %s", ch.Kind, scrub(msg, ch.SecretValues()))}
}

// request is one HTTP request a kind makes.
type request struct {
	url     string
	body    []byte
	headers map[string]string
}

func sendHTTP(ctx context.Context, ch *Channel, m Message) (Receipt, error) {
	req, err := shape(ch, m)
	if err != nil {
		return Receipt{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.url, bytes.NewReader(req.body))
	if err != nil {
		return Receipt{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "pulse-hub")
	for k, v := range req.headers {
		hr.Header.Set(k, v)
	}
	resp, err := client.Do(hr)
	if err != nil {
		return Receipt{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	r := Receipt{Status: resp.StatusCode, Answer: excerpt(string(b))}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return r, nil
	}
	permanent := resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests
	msg := fmt.Sprintf("%s: the receiver answered %s", ch.Kind, resp.Status)
	if r.Answer != "" {
		msg += ": " + r.Answer
	}
	return r, &Error{Status: resp.StatusCode, Answer: r.Answer, Permanent: permanent, msg: msg}
}

// client follows no redirects: a webhook that redirects would get the body (and a signature) sent
// somewhere the operator did not configure.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// excerpt is the start of a receiver's answer, on one line.
func excerpt(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 200
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Title is a message's one-line headline: "[FIRING] disk_full on web-1".
func Title(m Message) string {
	on := m.Name
	if on == "" {
		on = m.Agent
	}
	word := map[string]string{KindFired: "FIRING", KindResolved: "RESOLVED", KindTest: "TEST"}[m.Kind]
	if word == "" {
		word = strings.ToUpper(m.Kind)
	}
	if m.Kind == KindTest {
		return "[TEST] a test notification from Pulse"
	}
	return fmt.Sprintf("[%s] %s on %s", word, m.Rule, on)
}

// Text is a message's body for the kinds that take plain text.
func Text(m Message) string {
	var b strings.Builder
	if m.Detail != "" {
		b.WriteString(m.Detail + "\n")
	}
	if m.Kind == KindTest {
		b.WriteString("The channel works: this is how an alert reaches you.\n")
	}
	for _, f := range facts(m) {
		fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
	}
	if m.URL != "" {
		b.WriteString(m.URL + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func facts(m Message) [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	add("severity", m.Severity)
	add("rule", m.Rule)
	add("agent", m.Name)
	if m.Subject != m.Agent {
		add("subject", m.Subject)
	}
	if m.Value != nil {
		add("value", strconv.FormatFloat(*m.Value, 'g', -1, 64))
	}
	if !m.Since.IsZero() {
		add("since", m.Since.UTC().Format(time.RFC3339))
	}
	add("alert", m.Alert)
	return out
}

// color is a severity's (or a resolution's) colour, as 0xRRGGBB.
func color(m Message) int {
	switch {
	case m.Kind == KindResolved:
		return 0x2eb886
	case m.Kind == KindTest:
		return 0x439fe0
	case m.Severity == "critical":
		return 0xd00000
	case m.Severity == "warning":
		return 0xdaa038
	}
	return 0x439fe0
}

func shape(ch *Channel, m Message) (request, error) {
	switch ch.Kind {
	case Webhook:
		return shapeWebhook(ch, m)
	case Slack:
		var fields []map[string]any
		for _, f := range facts(m) {
			fields = append(fields, map[string]any{"title": f[0], "value": f[1], "short": true})
		}
		return jsonRequest(ch.URL, map[string]any{
			"text": Title(m),
			"attachments": []map[string]any{{
				"color": fmt.Sprintf("#%06x", color(m)), "title": Title(m), "title_link": m.URL,
				"text": m.Detail, "fields": fields, "ts": m.At.Unix(),
			}},
		}, nil)
	case Discord:
		var fields []map[string]any
		for _, f := range facts(m) {
			fields = append(fields, map[string]any{"name": f[0], "value": f[1], "inline": true})
		}
		embed := map[string]any{"title": Title(m), "description": m.Detail, "color": color(m), "fields": fields}
		if !m.At.IsZero() {
			embed["timestamp"] = m.At.UTC().Format(time.RFC3339)
		}
		if m.URL != "" {
			embed["url"] = m.URL
		}
		return jsonRequest(ch.URL, map[string]any{"username": "Pulse", "content": Title(m), "embeds": []any{embed}}, nil)
	case Teams:
		var fs []map[string]string
		for _, f := range facts(m) {
			fs = append(fs, map[string]string{"title": f[0], "value": f[1]})
		}
		body := []map[string]any{
			{"type": "TextBlock", "text": Title(m), "weight": "Bolder", "size": "Medium", "wrap": true,
				"color": teamsColor(m)},
			{"type": "TextBlock", "text": m.Detail, "wrap": true},
			{"type": "FactSet", "facts": fs},
		}
		card := map[string]any{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": body}
		if m.URL != "" {
			card["actions"] = []map[string]any{{"type": "Action.OpenUrl", "title": "Open in Pulse", "url": m.URL}}
		}
		return jsonRequest(ch.URL, map[string]any{"type": "message", "attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": nil, "content": card}}}, nil)
	case Ntfy:
		server := ch.URL
		if server == "" {
			server = DefaultNtfyServer
		}
		prio := ch.Priority
		if prio == 0 {
			prio = map[string]int{"critical": 5, "warning": 4, "info": 3}[m.Severity]
			if m.Kind != KindFired || prio == 0 {
				prio = 3
			}
		}
		tag := map[string]string{KindFired: "rotating_light", KindResolved: "white_check_mark", KindTest: "test_tube"}[m.Kind]
		h := map[string]string{"Title": Title(m), "Priority": strconv.Itoa(prio), "Tags": strings.Join(append([]string{tag}, ch.Tags...), ","),
			"Content-Type": "text/plain; charset=utf-8"}
		if m.URL != "" {
			h["Click"] = m.URL
		}
		if ch.Token != "" {
			h["Authorization"] = "Bearer " + ch.Token
		}
		return request{url: strings.TrimRight(server, "/") + "/" + url.PathEscape(ch.Topic), body: []byte(Text(m)), headers: h}, nil
	case Gotify:
		prio := ch.Priority
		if prio == 0 {
			prio = map[string]int{"critical": 8, "warning": 5, "info": 2}[m.Severity]
			if m.Kind != KindFired || prio == 0 {
				prio = 2
			}
		}
		return jsonRequest(strings.TrimRight(ch.URL, "/")+"/message", map[string]any{"title": Title(m), "message": Text(m), "priority": prio},
			map[string]string{"X-Gotify-Key": ch.Token})
	case PagerDuty:
		endpoint := ch.URL
		if endpoint == "" {
			endpoint = DefaultPagerDutyEndpoint
		}
		action := "trigger"
		if m.Kind == KindResolved {
			action = "resolve"
		}
		sev := map[string]string{"critical": "critical", "warning": "warning", "info": "info"}[m.Severity]
		if sev == "" {
			sev = "info"
		}
		source := m.Name
		if source == "" {
			source = "pulse"
		}
		details := map[string]string{}
		for _, f := range facts(m) {
			details[f[0]] = f[1]
		}
		ev := map[string]any{"routing_key": ch.RoutingKey, "event_action": action, "dedup_key": m.Alert, "client": "Pulse",
			"payload": map[string]any{"summary": Title(m) + summaryDetail(m), "source": source, "severity": sev,
				"timestamp": m.At.UTC().Format(time.RFC3339), "component": m.Subject, "group": m.Rule, "class": m.RuleKind, "custom_details": details}}
		if m.URL != "" {
			ev["client_url"] = m.URL
		}
		return jsonRequest(endpoint, ev, nil)
	}
	return request{}, &Error{Permanent: true, msg: fmt.Sprintf("unknown channel kind %q", ch.Kind)}
}

// teamsColor is an Adaptive Card text colour for the message.
func teamsColor(m Message) string {
	switch {
	case m.Kind == KindResolved:
		return "Good"
	case m.Kind != KindFired:
		return "Accent"
	case m.Severity == "critical":
		return "Attention"
	case m.Severity == "warning":
		return "Warning"
	}
	return "Default"
}

func summaryDetail(m Message) string {
	if m.Detail == "" {
		return ""
	}
	s := ": " + m.Detail
	if len(s) > 900 { // PagerDuty cuts summaries at 1024 characters
		s = excerpt(s)
	}
	return s
}

func jsonRequest(u string, v any, headers map[string]string) (request, error) {
	b, err := json.Marshal(v)
	return request{url: u, body: b, headers: headers}, err
}

func shapeWebhook(ch *Channel, m Message) (request, error) {
	var body []byte
	if ch.Body == "" {
		var err error
		if body, err = json.Marshal(m); err != nil {
			return request{}, err
		}
	} else {
		t, err := parseTemplate(ch.Body)
		if err != nil {
			return request{}, &Error{Permanent: true, msg: fmt.Sprintf("webhook: body template: %v", err)}
		}
		var b bytes.Buffer
		if err := t.Execute(&b, m); err != nil {
			return request{}, &Error{Permanent: true, msg: fmt.Sprintf("webhook: body template: %v", err)}
		}
		if !json.Valid(b.Bytes()) {
			return request{}, &Error{Permanent: true, msg: "webhook: the body template rendered no valid JSON for this message"}
		}
		body = b.Bytes()
	}
	h := map[string]string{"X-Pulse-Alert": m.Alert, "X-Pulse-Kind": m.Kind}
	if ch.Secret != "" {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		h[HeaderTimestamp], h[HeaderSignature] = ts, Sign(ch.Secret, ts, body)
	}
	return request{url: ch.URL, body: body, headers: h}, nil
}
