package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/pulsehq/pulse/agent/state"
	"github.com/pulsehq/pulse/agent/wire"
)

// DefaultConfigPath is read when no --config is given, and only if it exists: an agent configured
// entirely by flags needs no file.
const DefaultConfigPath = "/etc/pulse-agent/agent.toml"

// DefaultRunningAfter is when a still-running command is announced to the hub.
const DefaultRunningAfter = time.Second

// DefaultHeartbeat is how often the agent looks for something new to tell the hub (its catalog, an
// integration's state, the hatch) when the config says nothing; a change is sent at once.
const DefaultHeartbeat = 30 * time.Second

// DefaultPlanPeriod is how often the agent asks the hub for its plans and reconciles every plan it
// holds when nothing else made it look sooner (a new version, a unit an integration saw change).
const DefaultPlanPeriod = 60 * time.Second

// DefaultLiveness is how often the agent says it is alive when nothing changed: an idle agent costs
// the hub one store write per liveness interval, not one per heartbeat.
const DefaultLiveness = 2 * time.Minute

// Config is everything the kernel needs to run. The binary builds it from agent.toml (LoadConfig) and
// lets flags override single fields; tests build it directly and shorten the timings.
type Config struct {
	// Hub is the hub's base URL. Empty means the one stored at enrollment.
	Hub string
	// StateDir holds the key, the identity, the replay record and the outbox. Empty means state.DefaultDir.
	StateDir string
	// EnrollToken is used only when the state directory holds no identity yet.
	EnrollToken string
	// Heartbeat is how often the agent looks for a change to report (DefaultHeartbeat if zero).
	Heartbeat time.Duration
	// Liveness is how often an unchanged heartbeat is sent all the same (DefaultLiveness if zero,
	// never less than Heartbeat).
	Liveness time.Duration
	// PlanPeriod is how often plans are fetched and reconciled (DefaultPlanPeriod if zero).
	PlanPeriod time.Duration
	// LogLevel is what [agent] log_level said ("debug", "info", "warn", "error"); the binary applies it.
	LogLevel string
	// Integrations are the top-level tables of agent.toml other than [agent], handed to integration.Load.
	Integrations map[string]any
	// Problems are config mistakes that did not stop the agent. They are reported to the hub as the
	// soft-disabled pseudo-integration "config", so an operator sees them without reading the host's logs.
	Problems []string

	// Version is reported at enrollment and in heartbeats.
	Version string
	// Facts returns host facts for enrollment and heartbeats. The binary passes the host integration's;
	// the kernel itself knows no integration by name.
	Facts func(ctx context.Context) map[string]string
	// Logger receives the agent's structured logs (slog.Default if nil).
	Logger *slog.Logger
	// HTTPClient talks to the hub; requests carry their own deadlines, so it needs no Timeout.
	HTTPClient *http.Client

	// RetryMin and RetryMax bound the exponential backoff (full jitter) after a failed hub request
	// (1s and 60s if zero).
	RetryMin, RetryMax time.Duration
	// ClockSkew is how far in the future an envelope's IssuedAt may be (2m if zero).
	ClockSkew time.Duration
	// OutputFlush is how often a running command's partial output is cut into a chunk, so it can be
	// watched live (1s if zero).
	OutputFlush time.Duration
	// RunningAfter is how long a command runs before the agent tells the hub it is running
	// (DefaultRunningAfter if zero): a command done sooner is reported by its result alone.
	RunningAfter time.Duration
	// ShutdownGrace bounds how long shutdown waits for cancelled commands and for the final outbox
	// flush (5s if zero). Whatever is not uploaded by then stays on disk for the next start.
	ShutdownGrace time.Duration
	// MetricsUpload is how often sampled metrics are cut into a batch and uploaded ([agent]
	// metrics_upload; wire.DefaultMetricsUpload, 5m, if zero). Samples stay in memory until then, so
	// this is also how many minutes of samples a crash (not a shutdown) can lose.
	MetricsUpload time.Duration
	// MetricsOutboxBytes bounds the metric batches waiting for the hub (DefaultMetricsOutboxBytes if
	// zero); beyond it the oldest is dropped with a warning.
	MetricsOutboxBytes int64
	// Inventory is how often the integrations' resources and the plans' units are collected and, when
	// they changed, reported ([agent] inventory; wire.DefaultInventoryEvery, 5m, if zero; negative,
	// as "0" in the TOML, turns the inventory off).
	Inventory time.Duration
	// FirstHold is the hold assumed for the first poll, before the hub has said (30s if zero).
	FirstHold time.Duration
}

func (c *Config) setDefaults() {
	if c.StateDir == "" {
		c.StateDir = state.DefaultDir
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.ClockSkew <= 0 {
		c.ClockSkew = 2 * time.Minute
	}
	if c.PlanPeriod <= 0 {
		c.PlanPeriod = DefaultPlanPeriod
	}
	if c.Liveness <= 0 {
		c.Liveness = DefaultLiveness
	}
	c.Liveness = max(c.Liveness, c.Heartbeat)
	if c.RunningAfter <= 0 {
		c.RunningAfter = DefaultRunningAfter
	}
	if c.OutputFlush <= 0 {
		c.OutputFlush = time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 5 * time.Second
	}
	if c.MetricsUpload <= 0 {
		c.MetricsUpload = wire.DefaultMetricsUpload
	}
	if c.MetricsOutboxBytes <= 0 {
		c.MetricsOutboxBytes = DefaultMetricsOutboxBytes
	}
	if c.Inventory == 0 {
		c.Inventory = wire.DefaultInventoryEvery
	}
	if c.FirstHold <= 0 {
		c.FirstHold = 30 * time.Second
	}
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 0 // a long-poll legitimately waits for headers; the request deadline bounds it
		c.HTTPClient = &http.Client{Transport: t}
	}
}

// LoadConfig reads agent.toml. It never fails: the core of the agent may still be able to run from flags
// and its stored identity, so every problem (unreadable file, TOML syntax error, a bad [agent] value) is
// recorded in Problems and whatever could be read is kept. required says whether a missing file is a
// problem (an explicit --config) or normal (the default path).
func LoadConfig(path string, required bool) Config {
	var cfg Config
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !required {
			return cfg
		}
		cfg.Problems = append(cfg.Problems, fmt.Sprintf("config file: %v", err))
		return cfg
	}
	cfg = ParseConfig(data)
	for i, p := range cfg.Problems {
		cfg.Problems[i] = path + ": " + p
	}
	return cfg
}

// ParseConfig parses the contents of agent.toml; see LoadConfig. A syntax error loses every table
// (nothing in a broken document can be trusted), while a bad [agent] value loses only that value.
func ParseConfig(data []byte) Config {
	var cfg Config
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "toml: ")
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			msg = fmt.Sprintf("line %d column %d: %s", row, col, msg)
		}
		cfg.Problems = append(cfg.Problems, "syntax error: "+msg)
		return cfg
	}
	names := make([]string, 0, len(doc))
	for k := range doc {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := doc[k]
		if k == "agent" {
			continue
		}
		t, ok := v.(map[string]any)
		if !ok {
			cfg.Problems = append(cfg.Problems, fmt.Sprintf("top-level key %q is not a table; integration settings go under [%s]", k, k))
			continue
		}
		if cfg.Integrations == nil {
			cfg.Integrations = map[string]any{}
		}
		cfg.Integrations[k] = t
	}
	if raw, ok := doc["agent"]; ok {
		t, ok := raw.(map[string]any)
		if !ok {
			cfg.Problems = append(cfg.Problems, "agent must be a table ([agent])")
			return cfg
		}
		cfg.parseAgentTable(t)
	}
	return cfg
}

func (cfg *Config) parseAgentTable(t map[string]any) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := t[k]
		bad := func(format string, args ...any) {
			cfg.Problems = append(cfg.Problems, fmt.Sprintf("[agent] %s: ", k)+fmt.Sprintf(format, args...))
		}
		s, isString := v.(string)
		if !isString {
			switch k {
			case "hub", "state_dir", "heartbeat", "liveness", "plan_period", "log_level", "metrics_upload", "inventory":
				bad("want a string, got %v", v)
				continue
			}
		}
		switch k {
		case "hub":
			if err := CheckHubURL(s); err != nil {
				bad("%v", err)
				continue
			}
			cfg.Hub = s
		case "state_dir":
			if s == "" {
				bad("empty")
				continue
			}
			cfg.StateDir = s
		case "heartbeat":
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				bad("%q is not a positive duration such as \"30s\"", s)
				continue
			}
			cfg.Heartbeat = d
		case "liveness":
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				bad("%q is not a positive duration such as \"2m\"", s)
				continue
			}
			cfg.Liveness = d
		case "plan_period":
			d, err := time.ParseDuration(s)
			if err != nil || d < time.Second {
				bad("%q is not a duration of at least a second such as \"60s\"", s)
				continue
			}
			cfg.PlanPeriod = d
		case "metrics_upload":
			d, err := time.ParseDuration(s)
			if err != nil || d < time.Second || d > time.Hour {
				bad("%q is not a duration from 1s to 1h such as \"5m\"", s)
				continue
			}
			cfg.MetricsUpload = d
		case "inventory":
			d, err := time.ParseDuration(s)
			switch {
			case err == nil && d == 0:
				cfg.Inventory = -1 // off
			case err != nil || d < time.Second || d > 24*time.Hour:
				bad("%q is not 0 (off) or a duration from 1s to 24h such as \"5m\"", s)
			default:
				cfg.Inventory = d
			}
		case "log_level":
			if _, err := ParseLevel(s); err != nil {
				bad("%v", err)
				continue
			}
			cfg.LogLevel = s
		default:
			bad("unknown key (known: hub, state_dir, heartbeat, liveness, plan_period, metrics_upload, inventory, log_level)")
		}
	}
}

// ParseLevel turns a log level name into a slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// CheckHubURL refuses a hub address the agent could not build request URLs from, so the mistake is
// reported where it was made rather than as a connection error later.
func CheckHubURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("hub URL %q: %w", s, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("hub URL %q: want http:// or https://", s)
	}
	if u.Host == "" {
		return fmt.Errorf("hub URL %q: no host", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("hub URL %q: must not have a query or fragment", s)
	}
	return nil
}
