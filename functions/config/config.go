// Package config reads the hub's configuration: defaults, then a TOML file, then environment variables,
// then command-line flags, each overriding the one before. A file with an unknown key or a bad value is
// refused with the line and the reason, because a silently ignored typo in a config is found at 3 a.m.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Hub is the configuration of `pulse serve`.
type Hub struct {
	// Addr is the listen address. Loopback by default: exposing the hub is a decision, not an accident.
	Addr string `toml:"addr"`
	// Store is the store URL (file:///dir, s3://bucket?endpoint=...).
	Store string `toml:"store"`
	// ShutdownGrace is how long in-flight requests get to finish on SIGINT/SIGTERM.
	ShutdownGrace Duration `toml:"shutdown_grace"`
	Log           Log      `toml:"log"`
	// Policy is a directory of .rego files that extend or replace the default policy.
	Policy string `toml:"policy"`
	Auth   Auth   `toml:"auth"`
	// AuditOutbox is a directory on the hub's own disk where audit records wait while the store fails,
	// so none is lost (default: pulse-audit-outbox beside the signing key file).
	AuditOutbox string `toml:"audit_outbox"`
	// Metrics says how long agents' metrics are kept, tier by tier (docs/metrics.md).
	Metrics Metrics `toml:"metrics"`
	// CORSOrigins are the web origins (scheme://host[:port]) whose pages may call the API from a
	// browser: a dashboard served from a bucket or a CDN rather than by the hub. Empty: none (the
	// dashboard the hub serves itself needs no CORS). "*" allows any origin; the API takes bearer
	// tokens, never cookies, so a page elsewhere can only use a token its user gives it.
	CORSOrigins []string `toml:"cors_origins"`
}

// Metrics is the retention of each metric tier, and how long after a window ends it is compacted.
// Zero means the default: raw 24h, minute 168h (7 d), hour 2160h (90 d), day 17520h (2 years), grace 2h.
type Metrics struct {
	Raw    Duration `toml:"raw"`
	Minute Duration `toml:"minute"`
	Hour   Duration `toml:"hour"`
	Day    Duration `toml:"day"`
	Grace  Duration `toml:"grace"`
}

// Auth configures the ways operators authenticate besides API tokens.
type Auth struct {
	OIDC    OIDC        `toml:"oidc"`
	Forward ForwardAuth `toml:"forward"`
}

// OIDC accepts bearer ID/access tokens from one issuer, checked against its JWKS.
type OIDC struct {
	Issuer      string `toml:"issuer"`
	Audience    string `toml:"audience"`
	GroupsClaim string `toml:"groups_claim"` // default "groups"
}

// ForwardAuth trusts identity headers (Remote-User, Remote-Groups, Remote-Name, Remote-Email) set by an
// authenticating proxy such as Authelia — only on requests whose peer address is one of TrustedProxies.
type ForwardAuth struct {
	TrustedProxies []string `toml:"trusted_proxies"` // IPs or CIDRs
}

// Log configures structured logging.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// Duration is a time.Duration written as "30s" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses "30s", "5m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, such as 30s or 5m", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back in the same form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults: a hub that works with nothing installed, on this machine only.
func Defaults() Hub {
	return Hub{
		Addr:          "127.0.0.1:8080",
		Store:         "file:pulse-data",
		ShutdownGrace: Duration{10 * time.Second},
		Log:           Log{Level: "info", Format: "text"},
	}
}

// Load returns the defaults overlaid by the TOML file at path (if not empty) and then by the PULSE_ADDR,
// PULSE_STORE, PULSE_LOG_LEVEL and PULSE_LOG_FORMAT environment variables. Flags are applied by the
// caller afterwards.
func Load(path string) (Hub, error) {
	cfg := Defaults()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := toml.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %s", path, describe(err))
		}
	}
	for env, field := range map[string]*string{
		"PULSE_ADDR": &cfg.Addr, "PULSE_STORE": &cfg.Store, "PULSE_LOG_LEVEL": &cfg.Log.Level, "PULSE_LOG_FORMAT": &cfg.Log.Format,
		"PULSE_AUDIT_OUTBOX": &cfg.AuditOutbox,
	} {
		if v, ok := os.LookupEnv(env); ok && v != "" {
			*field = v
		}
	}
	return cfg, nil
}

// describe turns go-toml's errors into one line with the position.
func describe(err error) string {
	var serr *toml.StrictMissingError
	if errors.As(err, &serr) {
		var keys []string
		for _, e := range serr.Errors {
			row, _ := e.Position()
			keys = append(keys, fmt.Sprintf("%q (line %d)", strings.Join(e.Key(), "."), row))
		}
		return "unknown key " + strings.Join(keys, ", ") + "; known keys: addr, store, shutdown_grace, policy, [log] level, format, [auth.oidc] issuer, audience, groups_claim, cors_origins, [auth.forward] trusted_proxies, [metrics] raw, minute, hour, day, grace"
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		row, col := derr.Position()
		return fmt.Sprintf("line %d, column %d: %s", row, col, derr.Error())
	}
	return err.Error()
}

// Validate checks values that the decoder cannot.
func (c Hub) Validate() error {
	if c.Addr == "" {
		return errors.New("config: addr is empty")
	}
	if c.Store == "" {
		return errors.New("config: store is empty")
	}
	if _, err := c.Log.SlogLevel(); err != nil {
		return err
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("config: log format %q: want text or json", c.Log.Format)
	}
	m := c.Metrics
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"raw", m.Raw.Duration}, {"minute", m.Minute.Duration}, {"hour", m.Hour.Duration}, {"day", m.Day.Duration}, {"grace", m.Grace.Duration}} {
		if d.v < 0 {
			return fmt.Errorf("config: metrics.%s %s: a retention is positive (or 0 for the default)", d.name, d.v)
		}
	}
	raw := m.Raw.Duration
	if raw == 0 {
		raw = 24 * time.Hour
	}
	if m.Grace.Duration >= raw {
		return fmt.Errorf("config: metrics.grace %s must be shorter than metrics.raw %s, or raw batches are deleted before they are compacted", m.Grace.Duration, raw)
	}
	for _, p := range c.Auth.Forward.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			return fmt.Errorf("config: auth.forward.trusted_proxies: %w", err)
		}
	}
	if (c.Auth.OIDC.Issuer == "") != (c.Auth.OIDC.Audience == "") {
		return errors.New("config: auth.oidc needs both issuer and audience")
	}
	if c.ShutdownGrace.Duration < 0 {
		return fmt.Errorf("config: shutdown_grace %s is negative", c.ShutdownGrace)
	}
	for _, o := range c.CORSOrigins {
		if err := CheckOrigin(o); err != nil {
			return fmt.Errorf("config: cors_origins: %w", err)
		}
	}
	return nil
}

// CheckOrigin refuses what a browser never sends as an Origin: an allowed origin is "*" or exactly
// scheme://host[:port], http or https, with no path, query or trailing slash.
func CheckOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("origin %q: want scheme://host[:port] such as https://dash.example.com (no path, no trailing slash), or *", o)
	}
	if strings.ToLower(o) != o {
		return fmt.Errorf("origin %q: browsers send origins in lower case", o)
	}
	return nil
}

// SlogLevel maps the level name to slog's.
func (l Log) SlogLevel() (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return 0, fmt.Errorf("config: log level %q: want debug, info, warn or error", l.Level)
	}
	return lv, nil
}

// Logger builds the process logger on stderr.
func (l Log) Logger() *slog.Logger {
	lv, _ := l.SlogLevel()
	opts := &slog.HandlerOptions{Level: lv}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// ParsePrefix reads an IP or CIDR ("10.0.0.5", "10.0.0.0/8", "::1").
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP or CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP or CIDR", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
