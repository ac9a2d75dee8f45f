package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pulsehq/pulse/functions/yamlsrc"
)

// Channel kinds.
const (
	Webhook   = "webhook"
	Slack     = "slack"
	Discord   = "discord"
	Teams     = "teams"
	Ntfy      = "ntfy"
	Gotify    = "gotify"
	PagerDuty = "pagerduty"
	Email     = "email"
)

// Kinds are every channel kind, in the order the docs describe them.
var Kinds = []string{Webhook, Slack, Discord, Teams, Ntfy, Gotify, PagerDuty, Email}

// SMTP connection security.
const (
	StartTLS = "starttls"
	TLS      = "tls"
	NoTLS    = "none"
)

// Defaults a channel takes when it leaves a field out.
const (
	DefaultNtfyServer        = "https://ntfy.sh"
	DefaultPagerDutyEndpoint = "https://events.pagerduty.com/v2/enqueue"
)

// MaxSourceBytes bounds one channel file.
const MaxSourceBytes = 64 << 10

// Channel is one configured channel with its secrets in clear: what an operator applies and what Send
// uses. It is stored only through Seal (the secrets sealed) and shown only through Redacted.
type Channel struct {
	Name string `json:"name"`
	Kind string `json:"kind" enum:"webhook,slack,discord,teams,ntfy,gotify,pagerduty,email"`
	// Default channels are notified by the rules that name no channels.
	Default bool `json:"default,omitempty"`
	// URL is where the channel posts: the webhook (webhook, slack, discord, teams), the server (ntfy,
	// gotify), the Events API endpoint (pagerduty, default DefaultPagerDutyEndpoint).
	URL string `json:"url,omitempty"`
	// Secret is a webhook's HMAC-SHA256 key (X-Pulse-Signature).
	Secret string `json:"secret,omitempty"`
	// Body is a webhook's Go text/template over Message; it must render valid JSON (default: the
	// Message as JSON).
	Body string `json:"body,omitempty"`
	// Topic, Token, Priority and Tags are ntfy's and Gotify's (Token: ntfy's access token, Gotify's
	// application token; Priority 1–5 for ntfy, 0–10 for Gotify, default by severity).
	Topic    string   `json:"topic,omitempty"`
	Token    string   `json:"token,omitempty"`
	Priority int      `json:"priority,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	// RoutingKey is PagerDuty's integration key.
	RoutingKey string `json:"routingKey,omitempty"`
	// Host, Port, Security, Username, Password, From and To are e-mail's.
	Host     string   `json:"host,omitempty"`
	Port     int      `json:"port,omitempty"`
	Security string   `json:"tls,omitempty" enum:"starttls,tls,none,"`
	Username string   `json:"username,omitempty"`
	Password string   `json:"password,omitempty"`
	From     string   `json:"from,omitempty"`
	To       []string `json:"to,omitempty"`
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	common = []string{"name", "kind", "default"}
	// fieldsOf are the fields each kind takes beyond the common ones.
	fieldsOf = map[string][]string{
		Webhook:   {"url", "secret", "body"},
		Slack:     {"url"},
		Discord:   {"url"},
		Teams:     {"url"},
		Ntfy:      {"url", "topic", "token", "priority", "tags"},
		Gotify:    {"url", "token", "priority"},
		PagerDuty: {"url", "routingKey"},
		Email:     {"host", "port", "tls", "username", "password", "from", "to"},
	}
	allFields = func() []string {
		out := slices.Clone(common)
		for _, k := range Kinds {
			for _, f := range fieldsOf[k] {
				if !slices.Contains(out, f) {
					out = append(out, f)
				}
			}
		}
		return out
	}()
)

// ValidName reports whether name may name a channel: lower-case letters, digits, - and _, at most 63,
// so it is safe in a store key and a URL path.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// ParseChannel reads one channel (a mapping) in YAML or JSON, named name: a name inside it must be the
// same. Every problem is refused at its line and column.
func ParseChannel(name string, src []byte) (*Channel, error) {
	var ps yamlsrc.Problems
	root := readRoot(src, &ps, "want a channel: a mapping with kind and its fields")
	if root == nil {
		return nil, ps.Err("channel " + name)
	}
	p := &parser{w: yamlsrc.Walker{Problems: &ps}}
	ch := p.channel(root, "", name)
	if err := ps.Err("channel " + name); err != nil {
		return nil, err
	}
	return &ch, nil
}

// ParseFile reads a file of channels for `pulse channels apply`: `channels:` with a list of them, or
// one channel with its name. Every problem is refused at its line and column.
func ParseFile(src []byte) ([]Channel, error) {
	var ps yamlsrc.Problems
	root := readRoot(src, &ps, "want channels: a list of channels (name, kind, …)")
	if root == nil {
		return nil, ps.Err("channels")
	}
	p := &parser{w: yamlsrc.Walker{Problems: &ps}}
	var out []Channel
	if root.Kind == yaml.MappingNode && !hasKey(root, "channels") {
		out = append(out, p.channel(root, "", ""))
	} else {
		p.w.Pairs(root, "", []string{"channels"}, func(_ string, _, v *yaml.Node, path string) {
			if !p.w.Kind(v, path, yaml.SequenceNode, "a list of channels") {
				return
			}
			seen := map[string]int{}
			for i, e := range v.Content {
				sub := yamlsrc.Index(path, i)
				ch := p.channel(e, sub, "")
				if first, dup := seen[ch.Name]; dup && ch.Name != "" {
					p.w.Errf(e, sub+".name", "channel %q is already defined at channels[%d]", ch.Name, first)
				}
				seen[ch.Name] = i
				out = append(out, ch)
			}
		})
	}
	if err := ps.Err("channels"); err != nil {
		return nil, err
	}
	return out, nil
}

func readRoot(src []byte, ps *yamlsrc.Problems, empty string) *yaml.Node {
	if len(src) > MaxSourceBytes {
		ps.Add(0, 0, "", "%d bytes, more than %d", len(src), MaxSourceBytes)
		return nil
	}
	root, _, syntax := yamlsrc.Read(src)
	if syntax != nil {
		ps.List = append(ps.List, *syntax)
		return nil
	}
	if root == nil {
		ps.Add(1, 1, "", "%s", empty)
	}
	return root
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

type parser struct{ w yamlsrc.Walker }

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// channel reads one channel mapping at path; want, when set, is the name it must have.
func (p *parser) channel(n *yaml.Node, path, want string) Channel {
	ch := Channel{Name: want}
	if !p.w.Kind(n, path, yaml.MappingNode, "a channel (a mapping with kind and its fields)") {
		return ch
	}
	var kindNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			kindNode = n.Content[i+1]
			if k, ok := p.w.Str(kindNode, join(path, "kind")); ok {
				if _, known := fieldsOf[k]; !known {
					p.w.Errf(kindNode, join(path, "kind"), "unknown kind %q (want %s)", k, strings.Join(Kinds, ", "))
				}
				ch.Kind = k
			}
		}
	}
	if kindNode == nil {
		p.w.Errf(n, join(path, "kind"), "no kind: want one of %s", strings.Join(Kinds, ", "))
	}
	known := allFields
	if fs, ok := fieldsOf[ch.Kind]; ok {
		known = append(slices.Clone(common), fs...)
	}
	at := map[string]*yaml.Node{}
	p.w.Pairs(n, path, known, func(key string, _, v *yaml.Node, sub string) {
		at[key] = v
		switch key {
		case "name":
			if s, ok := p.w.Str(v, sub); ok {
				switch {
				case !ValidName(s):
					p.w.Errf(v, sub, "channel name %q: lower-case letters, digits, - and _, at most 63 characters", s)
				case want != "" && s != want:
					p.w.Errf(v, sub, "the channel is named %q here and %q in the request: leave name out or make them the same", s, want)
				}
				ch.Name = s
			}
		case "default":
			if p.w.Kind(v, sub, yaml.ScalarNode, "true or false") {
				b, err := strconv.ParseBool(v.Value)
				if err != nil || v.ShortTag() != "!!bool" {
					p.w.Errf(v, sub, "want true or false, got %q", v.Value)
				}
				ch.Default = b
			}
		case "url":
			ch.URL, _ = p.w.Str(v, sub)
		case "secret":
			ch.Secret, _ = p.w.Str(v, sub)
		case "body":
			ch.Body, _ = p.w.Str(v, sub)
		case "topic":
			ch.Topic, _ = p.w.Str(v, sub)
		case "token":
			ch.Token, _ = p.w.Str(v, sub)
		case "priority":
			ch.Priority = p.w.Int(v, sub)
		case "tags":
			ch.Tags = p.w.Strings(v, sub, true)
		case "routingKey":
			ch.RoutingKey, _ = p.w.Str(v, sub)
		case "host":
			ch.Host, _ = p.w.Str(v, sub)
		case "port":
			ch.Port = p.w.Int(v, sub)
		case "tls":
			ch.Security, _ = p.w.Str(v, sub)
		case "username":
			ch.Username, _ = p.w.Str(v, sub)
		case "password":
			ch.Password, _ = p.w.Str(v, sub)
		case "from":
			ch.From, _ = p.w.Str(v, sub)
		case "to":
			ch.To = p.w.Strings(v, sub, true)
		}
	})
	if ch.Name == "" {
		p.w.Errf(n, join(path, "name"), "no name: every channel is named (rules name it in channels:)")
	}
	p.check(&ch, n, path, at)
	return ch
}

// check refuses what a kind needs and does not have, each at the field (or the channel when missing).
func (p *parser) check(ch *Channel, n *yaml.Node, path string, at map[string]*yaml.Node) {
	errAt := func(field, format string, args ...any) {
		node := at[field]
		if node == nil {
			node = n
		}
		p.w.Errf(node, join(path, field), format, args...)
	}
	needURL := func(what string) {
		if ch.URL == "" {
			errAt("url", "kind %s needs url: %s", ch.Kind, what)
			return
		}
		if msg := checkURL(ch.URL); msg != "" {
			errAt("url", "%s", msg)
		}
	}
	switch ch.Kind {
	case Webhook:
		needURL("where to POST")
		if ch.Body != "" {
			if msg := checkTemplate(ch.Body); msg != "" {
				errAt("body", "%s", msg)
			}
		}
	case Slack:
		needURL("the incoming webhook's URL (https://hooks.slack.com/services/…)")
	case Discord:
		needURL("the channel webhook's URL (https://discord.com/api/webhooks/…)")
	case Teams:
		needURL("the incoming webhook's or workflow's URL")
	case Ntfy:
		if ch.URL != "" {
			if msg := checkURL(ch.URL); msg != "" {
				errAt("url", "%s", msg)
			}
		}
		if ch.Topic == "" {
			errAt("topic", "kind ntfy needs topic")
		} else if strings.ContainsAny(ch.Topic, "/?#") {
			errAt("topic", "topic %q: a topic is one path segment", ch.Topic)
		}
		if at["priority"] != nil && (ch.Priority < 1 || ch.Priority > 5) {
			errAt("priority", "ntfy priority is 1 (min) to 5 (max), got %d", ch.Priority)
		}
	case Gotify:
		needURL("the Gotify server (https://gotify.example.com)")
		if ch.Token == "" {
			errAt("token", "kind gotify needs token: the application's token")
		}
		if ch.Priority > 10 {
			errAt("priority", "gotify priority is 0 to 10, got %d", ch.Priority)
		}
	case PagerDuty:
		if ch.URL != "" {
			if msg := checkURL(ch.URL); msg != "" {
				errAt("url", "%s", msg)
			}
		}
		if ch.RoutingKey == "" {
			errAt("routingKey", "kind pagerduty needs routingKey: the Events API v2 integration key")
		}
	case Email:
		if ch.Host == "" {
			errAt("host", "kind email needs host: the SMTP server")
		}
		if ch.Port > 65535 {
			errAt("port", "port %d: at most 65535", ch.Port)
		}
		switch ch.Security {
		case "", StartTLS, TLS:
		case NoTLS:
			if ch.Host != "" && !loopback(ch.Host) {
				errAt("tls", "tls: none sends in clear and is only for a server on this machine (localhost); %s is not", ch.Host)
			}
		default:
			errAt("tls", "tls %q: want starttls (default), tls or none", ch.Security)
		}
		if ch.Password != "" && ch.Username == "" {
			errAt("password", "password without username")
		}
		if ch.From == "" {
			errAt("from", "kind email needs from: the sender's address")
		} else if _, err := mail.ParseAddress(ch.From); err != nil {
			errAt("from", "from %q is not an e-mail address", ch.From)
		}
		if len(ch.To) == 0 {
			errAt("to", "kind email needs to: one or more addresses")
		}
		for i, a := range ch.To {
			if _, err := mail.ParseAddress(a); err != nil {
				p.w.Errf(cmpNode(at["to"], i, n), yamlsrc.Index(join(path, "to"), i), "%q is not an e-mail address", a)
			}
		}
	}
}

// cmpNode is the i-th element of a list node (the list itself, or fallback, when there is none).
func cmpNode(list *yaml.Node, i int, fallback *yaml.Node) *yaml.Node {
	if list == nil {
		return fallback
	}
	if list.Kind == yaml.SequenceNode && i < len(list.Content) {
		return list.Content[i]
	}
	return list
}

func checkURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("not a URL: %v", strings.TrimPrefix(err.Error(), "parse "))
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Sprintf("URL scheme %q: want https (or http)", u.Scheme)
	}
	if u.Host == "" {
		return "the URL has no host"
	}
	return ""
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Sample is the message a webhook's body template is tried on when the channel is applied, so a
// template that fails or renders broken JSON is refused then, not at the first alert.
func Sample() Message {
	v := 0.04
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return Message{Alert: "0123456789abcdef", Kind: KindFired, Rule: "disk_full", RuleKind: "metric", Severity: "critical",
		Agent: "agent-id", Name: "web-1", Subject: `node_filesystem_avail_ratio{mountpoint="/"}`, Value: &v,
		Detail: "avail ratio 0.04 < 0.10 on \"/\"", Since: at.Add(-5 * time.Minute), At: at, URL: "https://pulse.example.com/alerts/0123456789abcdef"}
}

func checkTemplate(body string) string {
	t, err := parseTemplate(body)
	if err != nil {
		return fmt.Sprintf("body template: %v", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, Sample()); err != nil {
		return fmt.Sprintf("body template fails on a sample message: %v", err)
	}
	if !json.Valid(b.Bytes()) {
		return fmt.Sprintf("body template renders no valid JSON on a sample message (use {{json .Detail}} for strings): %s", excerpt(b.String()))
	}
	return ""
}

// templateFuncs are what a body template may call besides the built-ins: json quotes a value as
// JSON, so a detail with quotes does not break the body.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"title": Title,
}

func parseTemplate(body string) (*template.Template, error) {
	return template.New("body").Funcs(templateFuncs).Option("missingkey=error").Parse(body)
}
