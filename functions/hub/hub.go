// Package hub is the composition root and the HTTP edge of the Pulse hub. New opens the store, loads
// the signing keys, prepares the policy and wires the rooms (access, fleet, delivery, commands,
// workflows, plans, artifacts, metrics, resources); NewAPI registers each room's routes on one huma API, takes the policy action of every
// operator operation from its operation id in one middleware, and maps the rooms' domain errors to
// RFC 9457 problems in one place. Every entrypoint (`pulse serve`, `pulse tick`, the tests, the
// benchmarks, a cloud function) builds its hub with New, so they all run the same wiring.
package hub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/hub/alerts"
	"github.com/pulsehq/pulse/functions/hub/artifacts"
	"github.com/pulsehq/pulse/functions/hub/commands"
	"github.com/pulsehq/pulse/functions/hub/delivery"
	"github.com/pulsehq/pulse/functions/hub/events"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/hub/metrics"
	"github.com/pulsehq/pulse/functions/hub/notifications"
	"github.com/pulsehq/pulse/functions/hub/plans"
	"github.com/pulsehq/pulse/functions/hub/resources"
	"github.com/pulsehq/pulse/functions/hub/telemetry"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/hub/workflows"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
	_ "github.com/pulsehq/pulse/functions/store/backends" // New opens stores by URL
	"github.com/pulsehq/pulse/functions/store/local"
	"github.com/pulsehq/pulse/policy"
)

// Config is what a hub is built from.
type Config struct {
	// Settings are the hub's settings from file, environment and flags (store URL, policy, auth).
	Settings config.Hub
	// Store, when set, is used instead of opening Settings.Store (tests wrap a store to count requests).
	Store store.Store
	// Keys, when set, are used instead of loading KeyFile.
	Keys *hubkey.Keys
	// KeyFile holds the signing key (or $PULSE_SIGNING_KEY); never in the bucket.
	KeyFile string
	// CreateKey makes KeyFile when it is missing and $PULSE_SIGNING_KEY is not set: the first start of
	// a hub on the embedded store just works.
	CreateKey bool
	Log       *slog.Logger
	Version   string
	// PollHold is how long an agent's poll waits for work (default 30s; short for cloud functions).
	PollHold time.Duration
	// HeartbeatInterval is what agents are configured with; three missed beats mean offline.
	HeartbeatInterval time.Duration
	// PublicScheme is "https" when a TLS-terminating proxy sits in front, so agent signatures over the
	// URL verify.
	PublicScheme string
	// Function is function mode (docs/functions.md): the hub runs as cloud functions, one request per
	// instance and nothing resident. Polls read their agent's doorbell and answer at once; forward
	// auth is refused (no trusted proxy sits in front of a function URL); the signing key comes from
	// Keys or $PULSE_SIGNING_KEY, never from a file the hub would create; the audit outbox is in the
	// instance's temporary directory.
	Function bool
	// PollEvery is how soon agents poll again in function mode (default delivery.DefaultPollEvery).
	PollEvery time.Duration
}

// Hub is one wired hub. It keeps no state that matters between requests: everything lives in the
// store, so any number of hubs can serve the same bucket.
type Hub struct {
	Store   store.Store
	Log     *slog.Logger
	Version string
	Keys    *hubkey.Keys
	Ready   *Readiness
	Bus     *events.Bus
	// Signed is Store's integrity check: what it refused, and a scan of the bucket.
	Signed *signed.Store

	Trail     *trail.Recorder
	Access    *access.Service
	Fleet     *fleet.Service
	Delivery  *delivery.Service
	Commands  *commands.Service
	Workflows *workflows.Service
	Plans     *plans.Service
	Artifacts *artifacts.Service
	Alerts    *alerts.Service
	// Notifications keeps the channels and sends the alerts' notifications.
	Notifications *notifications.Service
	// Telemetry is what the hub says about itself to Prometheus (GET /metrics); nil for a hub wired
	// on no store (the OpenAPI document's).
	Telemetry *telemetry.Metrics
	Metrics   *metrics.Service
	// Resources is the fleet's inventory: each agent's newest report of what its integrations found.
	Resources *resources.Service

	policyDir string
	verifier  *httpsig.Verifier
	// cors lets pages of the configured origins call the API from a browser (nil: none).
	cors      *corsPolicy
	closeOnce sync.Once
	sealMu    sync.Mutex
	lastSeal  time.Time
	tickStart sync.Once
	// active is how many workflow executions the last tick found active (telemetry).
	active atomic.Int64
}

// New builds a hub: it opens the store, loads the signing keys, prepares the policy and wires the
// rooms. It starts nothing; Run does the background work and Close ends it. Every error is one about
// the configuration (a bad store URL, an unreadable key, a policy that does not compile).
func New(ctx context.Context, cfg Config) (*Hub, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	url, st := store.Redact(cfg.Settings.Store), cfg.Store
	if st == nil {
		if cfg.Settings.Store == "" {
			cfg.Settings.Store = config.Defaults().Store
		}
		var err error
		if st, err = store.Open(ctx, cfg.Settings.Store); err != nil {
			return nil, err
		}
		url = store.Redact(cfg.Settings.Store)
	} else if url == "" {
		url = "(a store given in process)"
	}
	if cfg.Function {
		if err := functionMode(&cfg); err != nil {
			return nil, err
		}
	}
	keys := cfg.Keys
	if keys == nil {
		var err error
		keys, err = hubkey.Load(cfg.KeyFile)
		if errors.Is(err, iofs.ErrNotExist) && cfg.CreateKey && os.Getenv(hubkey.EnvVar) == "" {
			if keys, err = hubkey.Create(cfg.KeyFile); err == nil {
				log.Warn("created the hub's signing key; keep this file safe, it never goes into the bucket", "file", cfg.KeyFile, "key", keys.CurrentID())
			}
		}
		if err != nil {
			return nil, err
		}
	}
	engine, err := policy.New(ctx, cfg.Settings.Policy)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	var proxies []netip.Prefix
	for _, p := range cfg.Settings.Auth.Forward.TrustedProxies {
		pfx, err := config.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("auth.forward.trusted_proxies: %w", err)
		}
		proxies = append(proxies, pfx)
	}
	// Every store request is counted and timed (what reaches the bucket, integrity checks aside).
	tm := telemetry.New()
	st = tm.Store(st)
	// Every read of the bucket is checked against the hub's keys from here on: the bucket holds the
	// hub's state but is not trusted to say what the hub decided (docs/security.md).
	sst, err := signed.Wrap(st, keys, log)
	if err != nil {
		return nil, err
	}
	h := assemble(sst, keys, log, cfg.Version)
	h.Signed = sst
	h.instrument(tm)
	h.Ready = NewReadiness(st, url, log)
	h.policyDir = cfg.Settings.Policy
	h.Access.Policy, h.Access.TrustedProxies = engine, proxies
	if o := cfg.Settings.Auth.OIDC; o.Issuer != "" {
		h.Access.OIDC = &access.OIDCVerifier{Issuer: o.Issuer, Audience: o.Audience, GroupsClaim: o.GroupsClaim}
	}
	if dir := auditOutbox(cfg, keys); dir != "" {
		ob, err := local.New(dir)
		if err != nil {
			return nil, fmt.Errorf("audit outbox: %w", err)
		}
		h.Trail.Outbox = ob
	}
	h.Delivery.PollHold = cfg.PollHold
	h.Delivery.Doorbells, h.Delivery.PollEvery = cfg.Function, cfg.PollEvery
	m := cfg.Settings.Metrics
	h.Metrics.Retention = metrics.Retention{Raw: m.Raw.Duration, Minute: m.Minute.Duration, Hour: m.Hour.Duration, Day: m.Day.Duration, Grace: m.Grace.Duration}
	h.Fleet.HeartbeatInterval = cfg.HeartbeatInterval
	h.cors = newCORS(cfg.Settings.CORSOrigins)
	h.verifier = h.newVerifier(cfg.PublicScheme)
	return h, nil
}

// functionMode checks and completes the configuration of a hub run as cloud functions.
func functionMode(cfg *Config) error {
	if len(cfg.Settings.Auth.Forward.TrustedProxies) > 0 {
		return errors.New("auth.forward.trusted_proxies: function mode refuses forward auth, because no trusted proxy sits in front of a function URL; sign in with API tokens or OIDC")
	}
	if cfg.Keys == nil && os.Getenv(hubkey.EnvVar) == "" {
		return fmt.Errorf("function mode reads the signing key from $%s or a secret (docs/functions.md), never from a file it would create or from the bucket", hubkey.EnvVar)
	}
	cfg.CreateKey = false
	if cfg.Settings.AuditOutbox == "" {
		cfg.Settings.AuditOutbox = filepath.Join(os.TempDir(), "pulse-audit-outbox")
	}
	return nil
}

// instrument gives the hub its telemetry and the rooms' series in it.
func (h *Hub) instrument(tm *telemetry.Metrics) {
	h.Telemetry = tm
	tm.Gauge("pulse_polls_waiting", "Agent polls this hub instance holds now.", func() float64 { return float64(h.Delivery.Waiting()) })
	tm.Gauge("pulse_workflow_executions_active", "Workflow executions the last tick of this instance found active.", func() float64 { return float64(h.active.Load()) })
	results := tm.Counter("pulse_command_results_total", "Agents' final results of commands stored through this hub instance, by status.", "status")
	h.Bus.Results.Subscribe(func(_ context.Context, e events.ResultStored) { results.WithLabelValues(e.Status).Inc() })
	sent := tm.Counter("pulse_notification_attempts_total", "Attempts this hub instance made at sending notifications, by channel kind and outcome (sent, failed).", "kind", "outcome")
	h.Notifications.Counted = func(kind, outcome string) { sent.WithLabelValues(kind, outcome).Inc() }
}

// auditOutbox is where audit records wait while the store fails: the configured directory, else one
// beside the key file the keys came from (the working directory for a key from the environment);
// none for a hub given its keys in process (tests), whose records wait in memory.
func auditOutbox(cfg Config, keys *hubkey.Keys) string {
	switch {
	case cfg.Settings.AuditOutbox != "":
		return cfg.Settings.AuditOutbox
	case cfg.Keys != nil:
		return ""
	}
	return filepath.Join(filepath.Dir(cmp.Or(keys.Path, hubkey.DefaultFile)), "pulse-audit-outbox")
}

// assemble connects the rooms on a store; New adds what needs configuration. The OpenAPI document is
// rendered from a hub wired on no store at all.
func assemble(st store.Store, keys *hubkey.Keys, log *slog.Logger, version string) *Hub {
	bus := &events.Bus{}
	tr := &trail.Recorder{Store: st, Log: log, Keys: keys}
	h := &Hub{Store: st, Log: log, Version: version, Keys: keys, Bus: bus, Trail: tr}
	h.Access = &access.Service{Store: st, Log: log, Trail: tr}
	h.Fleet = &fleet.Service{Store: st, Log: log, Trail: tr, Keys: keys}
	h.Delivery = &delivery.Service{Store: st, Log: log, Keys: keys}
	h.Commands = &commands.Service{Store: st, Log: log, Trail: tr, Bus: bus, Fleet: h.Fleet, Policy: h.Access, Delivery: h.Delivery, Keys: keys}
	h.Workflows = &workflows.Service{Store: st, Log: log, Trail: tr, Bus: bus, Commands: h.Commands, Fleet: h.Fleet}
	h.Workflows.Subscribe(bus)
	h.Artifacts = &artifacts.Service{Store: st, Log: log, Trail: tr}
	h.Metrics = &metrics.Service{Store: st, Log: log}
	h.Resources = &resources.Service{Store: st, Log: log, Fleet: h.Fleet}
	h.Plans = &plans.Service{Store: st, Log: log, Trail: tr, Bus: bus, Fleet: h.Fleet, Policy: h.Access, Delivery: h.Delivery, Keys: keys}
	h.Notifications = &notifications.Service{Store: st, Log: log, Trail: tr, Keys: keys}
	h.Alerts = &alerts.Service{Store: st, Log: log, Trail: tr, Fleet: h.Fleet, Notifier: h.Notifications}
	return h
}

// Intervals of the background work.
const (
	readyInterval = 15 * time.Second
	sealInterval  = 30 * time.Second
	tickInterval  = time.Second
)

// Run does the hub's background work until ctx ends: readiness checks, the bell feed, audit seals and
// the one-second tick (interrupted releases, workflows, plans' rollouts, then metrics compaction once a minute). It audits the policy it runs with first.
func (h *Hub) Run(ctx context.Context) {
	h.recordStart(ctx)
	h.Access.PolicyLoaded(ctx, h.policyDir)
	h.Trail.Seal(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { h.Ready.Watch(ctx, readyInterval) })
	wg.Go(func() { h.Delivery.WatchBells(ctx) })
	wg.Go(func() { every(ctx, sealInterval, h.Trail.Seal) })
	wg.Go(func() {
		every(ctx, tickInterval, func(ctx context.Context) {
			h.Commands.Tick(ctx)
			h.active.Store(int64(h.Workflows.Tick(ctx)))
			h.Plans.Tick(ctx)
		})
	})
	// Metrics compaction has a loop of its own: compacting an hour of a large fleet takes a while,
	// and must not hold up timers, releases and rollouts.
	wg.Go(func() { every(ctx, tickInterval, h.Metrics.Tick) })
	// So has alert evaluation: a fleet that goes offline at once fires an alert per agent and rule.
	wg.Go(func() { every(ctx, tickInterval, h.Alerts.Tick) })
	// And so has sending notifications: a receiver that answers slowly holds up no other work.
	wg.Go(func() { every(ctx, tickInterval, h.Notifications.Tick) })
	wg.Wait()
}

// recordStart writes the record that explains the gap in the audit seals while no hub ran
// (audit.Verify).
func (h *Hub) recordStart(ctx context.Context) {
	h.Trail.Write(ctx, audit.Record{Principal: audit.Actor{ID: "hub", Via: "hub"}, Action: audit.ActionHubStarted, Outcome: "ok",
		Detail: map[string]any{"version": h.Version, "keyId": h.Keys.CurrentID()}})
}

// every calls fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn(ctx)
	}
}

// Tick runs the periodic work once (interrupted releases, timers, half-done executions, schedules),
// for a hub without a resident process. It returns how many executions were active.
func (h *Hub) Tick(ctx context.Context) int {
	h.tickStart.Do(func() {
		// A hub that only ticks (pulse tick from a scheduler, a cloud function) has no start of its
		// own; when the seals show that no hub ran for longer than the verifier allows, this tick
		// says so, as Run's start does.
		if at, ok, err := audit.NewestSeal(ctx, h.Store); err == nil && (!ok || time.Since(at) > audit.MaxGap) {
			h.recordStart(ctx)
		}
	})
	if h.sealDue(time.Now()) {
		h.Trail.Seal(ctx)
	}
	h.Commands.Tick(ctx)
	n := h.Workflows.Tick(ctx)
	h.active.Store(int64(n))
	h.Plans.Tick(ctx)
	h.Alerts.Tick(ctx)
	h.Notifications.Tick(ctx)
	h.Metrics.Tick(ctx)
	h.Delivery.Sweep(ctx)
	return n
}

// sealDue says whether a hub that only ticks should seal the audit trail now.
func (h *Hub) sealDue(now time.Time) bool {
	h.sealMu.Lock()
	defer h.sealMu.Unlock()
	if now.Sub(h.lastSeal) < sealInterval {
		return false
	}
	h.lastSeal = now
	return true
}

// Drain makes waiting polls return at once, for a quick graceful shutdown.
func (h *Hub) Drain() { h.Delivery.Drain() }

// Close drains the polls and waits for follow-up work started outside requests (driving executions
// after a result) to end.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		h.Drain()
		h.Bus.Wait()
	})
	return nil
}

// maxAgentSkew is how far an agent's clock may be from the hub's before its requests are refused.
const maxAgentSkew = 2 * time.Minute

func (h *Hub) newVerifier(scheme string) *httpsig.Verifier {
	v, err := httpsig.NewVerifier(h.Fleet.PublicKey, httpsig.DefaultComponents(), maxAgentSkew)
	if err != nil {
		panic(err) // constant arguments: a failure is a programming error
	}
	v.Scheme = scheme
	return v
}

// CreateAPIToken stores a new operator token and returns its secret, shown once: `pulse init` makes the
// first admin token with it before any hub runs.
func CreateAPIToken(ctx context.Context, s store.Store, name string, groups []string, ttl time.Duration, by string) (string, error) {
	return access.CreateAPIToken(ctx, s, name, groups, ttl, by)
}

// HasAPITokens reports whether any operator token was ever created in the store.
func HasAPITokens(ctx context.Context, s store.Store) (bool, error) {
	return access.HasAPITokens(ctx, s)
}
