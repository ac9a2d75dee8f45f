// Package kernel is the agent's runtime: it enrolls, authenticates every request with the agent's key,
// long-polls the hub, verifies and dispatches signed work, streams output, uploads results through a
// durable outbox, sends heartbeats, and batches the metrics integrations sample into compressed uploads
// with an outbox of their own (metrics.go). It knows no integration by name: commands and metric
// sources come from whatever registered with agent/integration.
//
// The order of operations is what makes the agent safe to crash at any point. An envelope is recorded in
// the replay record before its command starts, so it can never run twice; every report (running notice,
// output chunk, result, rejection) is written to the outbox before anyone is told about it, so a hub or
// store outage only delays it; and an envelope is acknowledged to the hub only after what it caused is
// durable, so the hub never forgets work the agent has not secured.
package kernel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/artifacts"
	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/state"
	"github.com/pulsehq/pulse/agent/wire"
)

// ConfigStatusID is the pseudo-integration under which config problems are reported to the hub, so an
// operator sees "config: disabled: line 3: ..." next to the real integrations.
const ConfigStatusID = "config"

// errShutdown is the cause given to commands cancelled because the agent stops.
var errShutdown = errors.New("cancelled: the agent is shutting down")

// Agent is an enrolled agent, ready to run. Build it with New, then call Run once.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	st    *state.State
	key   ed25519.PrivateKey
	set   *integration.Set
	hub   *hubClient
	facts map[string]string

	idMu          sync.Mutex
	id            state.Identity
	refusedKeySet string // the last unendorsed key set the hub offered, to warn once about it

	acks pendingAcks // envelopes handled, to acknowledge with the next poll

	plans *plans // the plan versions held and their reconciliation

	artifacts *artifacts.Cache // the one fetcher of artifacts, for the integrations that use them

	metrics *metrics // samples, batches and uploads what the integrations' MetricSources read

	inventory *inventory // collects the integrations' resources and the plans' units, reports changes

	wake    chan struct{} // nudges the uploader when the outbox grows
	beatNow chan struct{} // asks for a heartbeat at once (the hatch opened or closed)

	// One outage tracker per activity: each says once that it cannot reach the hub, and none flaps
	// because another activity happens to get through.
	pollHealth, beatHealth, uploadHealth *health

	jobsMu    sync.Mutex
	jobs      map[string]*job      // running commands by command id
	cancelled map[string]time.Time // cancels that arrived before their command, until when to remember them
	jobsWG    sync.WaitGroup
	jobsCtx   context.Context
	stopJobs  context.CancelCauseFunc

	// recovered is closed once Run has dealt with what the previous run left (recoverJobs): no envelope
	// is handled before, or recovery would take a command just started for a leftover and kill it.
	recovered chan struct{}
}

// New opens the state directory, loads the key and the integrations, and enrolls if the agent has no
// identity yet (retrying while the hub is unreachable, until ctx ends). Its errors are the fatal ones:
// no hub URL, no identity and no token, a refused token, an unusable state directory or key. The
// returned Agent holds the state directory's lock until Run returns.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	cfg.setDefaults()
	a := &Agent{
		cfg:       cfg,
		log:       cfg.Logger,
		wake:      make(chan struct{}, 1),
		beatNow:   make(chan struct{}, 1),
		jobs:      map[string]*job{},
		cancelled: map[string]time.Time{},
		recovered: make(chan struct{}),
	}
	a.jobsCtx, a.stopJobs = context.WithCancelCause(context.Background())

	st, err := state.Open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	a.st = st
	if a.key, err = st.Key(); err != nil {
		return nil, err
	}
	id, err := st.Identity()
	enrolled := err == nil
	if err != nil && !errors.Is(err, state.ErrNoIdentity) {
		return nil, err
	}

	hubURL := cfg.Hub
	if hubURL == "" {
		hubURL = id.Hub
	}
	if hubURL == "" {
		return nil, errors.New("no hub URL: pass --hub or set hub in the [agent] table of agent.toml")
	}
	if err := CheckHubURL(hubURL); err != nil {
		return nil, err
	}
	if !enrolled && cfg.EnrollToken == "" {
		return nil, fmt.Errorf("not enrolled yet (no %s in %s): pass --enroll-token or set PULSE_ENROLL_TOKEN", state.IdentityFile, st.Dir())
	}
	if u, _ := url.Parse(hubURL); u.Scheme == "http" && !isLoopback(u.Hostname()) {
		a.log.Warn("the hub URL is plain http: requests stay signed, but enrollment and hub key rotation trust the network; use https", "hub", hubURL)
	}

	if err := a.resealAtStart(); err != nil {
		return nil, err
	}
	// The fetcher is handed to integrations now and gets its hub connection once the agent knows its
	// identity (below), before anything runs.
	a.artifacts = &artifacts.Cache{Dir: filepath.Join(st.Dir(), artifactsDir), Log: a.log.With("component", "artifacts")}
	a.set = integration.Load(ctx, cfg.Integrations, a.log.With("component", "integration"),
		integration.WithHatch(a.hatchGate), integration.WithStateDir(filepath.Join(st.Dir(), integrationsDir)),
		integration.WithArtifacts(a.artifacts))
	if cfg.Facts != nil {
		a.facts = cfg.Facts(ctx)
	}
	a.hub = &hubClient{base: strings.TrimRight(hubURL, "/"), http: cfg.HTTPClient}
	a.pollHealth = &health{log: a.log}

	if enrolled {
		if cfg.EnrollToken != "" {
			a.log.Info("already enrolled; ignoring the enrollment token", "agent", id.AgentID, "stateDir", st.Dir())
		}
		if id.Hub != hubURL {
			a.log.Info("using a hub URL different from the one at enrollment", "hub", hubURL, "enrolledWith", id.Hub)
		}
	} else {
		if id, err = a.enroll(ctx, hubURL); err != nil {
			return nil, err
		}
	}
	a.id = id
	a.hub.agentID = id.AgentID
	signer, err := httpsig.NewSigner(a.key, id.AgentID, nil)
	if err != nil {
		return nil, fmt.Errorf("request signer: %w", err)
	}
	a.hub.signer = signer
	a.artifacts.Source = &artifacts.HubSource{Base: a.hub.base, AgentID: id.AgentID, Signer: signer, HTTP: cfg.HTTPClient}
	a.artifacts.Log = a.artifacts.Log.With("agent", id.AgentID)
	a.log = a.log.With("agent", id.AgentID)
	a.pollHealth = &health{log: a.log}
	a.beatHealth = &health{log: a.log}
	a.uploadHealth = &health{log: a.log}
	a.plans = newPlans(a)
	if a.metrics, err = newMetrics(a); err != nil {
		return nil, err
	}
	a.inventory = newInventory(a)
	ok = true
	return a, nil
}

// integrationsDir is where, inside the state directory, integrations that keep records across
// restarts get a directory each (integration.Stateful).
const integrationsDir = "integrations"

// artifactsDir is where, inside the state directory, the artifacts plans name are cached: <hex>
// verified, <hex>.part while downloading (agent/artifacts).
const artifactsDir = "artifacts"

// ID is the agent id the hub assigned at enrollment.
func (a *Agent) ID() string { return a.identity().AgentID }

func (a *Agent) identity() state.Identity {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	return a.id
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// statuses are the integrations' statuses plus the "config" pseudo-integration when the config has
// problems (including tables no integration claims, which are usually typos).
func (a *Agent) statuses() []wire.IntegrationStatus {
	st := a.set.Statuses()
	problems := append([]string(nil), a.cfg.Problems...)
	for _, t := range a.set.UnknownTables() {
		problems = append(problems, fmt.Sprintf("table [%s] names no integration known to this agent; its settings are ignored", t))
	}
	if len(problems) > 0 {
		st = append(st, wire.IntegrationStatus{ID: ConfigStatusID, Enabled: false, Reason: strings.Join(problems, "; ")})
	}
	return st
}

// enroll exchanges the token for an identity. A refused token is fatal (retrying will not help); an
// unreachable hub is retried until ctx ends.
func (a *Agent) enroll(ctx context.Context, hubURL string) (state.Identity, error) {
	host, _ := os.Hostname()
	req := wire.EnrollRequest{
		Token:        a.cfg.EnrollToken,
		PublicKey:    a.key.Public().(ed25519.PublicKey),
		Hostname:     host,
		Version:      a.cfg.Version,
		Facts:        a.facts,
		Catalog:      a.set.Catalog(),
		Integrations: a.statuses(),
	}
	b := backoff{min: a.cfg.RetryMin, max: a.cfg.RetryMax}
	for {
		var resp wire.EnrollResponse
		err := a.hub.postJSON(ctx, "enroll", a.hub.base+"/v1/enroll", req, &resp, 30*time.Second, false)
		if err == nil {
			a.pollHealth.ok()
			return a.storeEnrollment(hubURL, resp)
		}
		var he *HubError
		if errors.As(err, &he) && he.Status == http.StatusForbidden {
			return state.Identity{}, fmt.Errorf("enrollment refused (the token is wrong, expired or used up): %s", he.Detail)
		}
		if !retryable(err) || (he != nil && he.Status < 500 && he.Status != http.StatusTooManyRequests) {
			return state.Identity{}, fmt.Errorf("enrollment failed: %w", err)
		}
		a.pollHealth.fail("enroll", err)
		if !sleep(ctx, b.next()) {
			return state.Identity{}, fmt.Errorf("enrollment interrupted: %w", context.Cause(ctx))
		}
	}
}

func (a *Agent) storeEnrollment(hubURL string, resp wire.EnrollResponse) (state.Identity, error) {
	if resp.AgentID == "" {
		return state.Identity{}, errors.New("enrollment: the hub answered without an agent id")
	}
	keys := usableKeys(resp.HubKeys)
	if len(keys) == 0 {
		return state.Identity{}, errors.New("enrollment: the hub sent no usable signing key, so no work could ever be verified")
	}
	id := state.Identity{
		AgentID:    resp.AgentID,
		Hub:        hubURL,
		HubKeys:    keys,
		Labels:     maps.Clone(resp.Labels),
		EnrolledAt: time.Now().UTC(),
	}
	if err := a.st.SaveIdentity(id); err != nil {
		return state.Identity{}, fmt.Errorf("enrollment succeeded as %s but the identity could not be stored: %w", id.AgentID, err)
	}
	a.log.Info("enrolled", "agent", id.AgentID, "hub", hubURL, "hubKeys", len(keys), "labels", id.Labels)
	return id, nil
}

// usableKeys drops keys that could never verify anything, so a bad entry cannot hide the good ones.
func usableKeys(keys []wire.HubKey) []wire.HubKey {
	var out []wire.HubKey
	for _, k := range keys {
		if k.KeyID != "" && len(k.PublicKey) == ed25519.PublicKeySize {
			out = append(out, k)
		}
	}
	return out
}

// Run runs the agent until ctx ends: polls, heartbeats, uploads, reconciles plans. On the way out it
// stops polling, cancels running commands (they end "cancelled") and reconciliation (what plans
// started, such as supervised processes, keeps running), flushes the outbox for at most ShutdownGrace
// and closes the state directory. What could not be uploaded stays on disk for the next start. It returns
// nil after a requested shutdown.
func (a *Agent) Run(ctx context.Context) error {
	defer a.st.Close()
	a.log.Info("agent running", "hub", a.hub.base, "version", a.cfg.Version,
		"commands", len(a.set.Catalog()), "heartbeat", a.cfg.Heartbeat, "stateDir", a.st.Dir())
	for _, s := range a.statuses() {
		if s.ID == ConfigStatusID {
			a.log.Warn("configuration problems; the agent runs with what it could read", "problems", s.Reason)
		}
	}
	a.recoverJobs()
	a.set.Start(ctx)   // integration.Starter: a self-update finishing or rolling back its swap
	a.plans.start(ctx) // before any envelope is handled: a polled plan meets the cached ones
	close(a.recovered)
	a.purgeReplay()

	upCtx, stopUploader := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { a.uploader(upCtx) })
	bg.Go(func() { a.metrics.uploader(upCtx) })
	bg.Go(func() { a.metrics.run(ctx) }) // on the way out, writes what it sampled to its outbox
	bg.Go(func() { a.heartbeats(ctx) })
	bg.Go(func() { a.inventory.run(ctx) })
	bg.Go(func() { a.housekeeping(ctx) })
	bg.Go(func() { a.watchHatch(ctx) })

	a.pollLoop(ctx)

	// Shutdown: commands first (their results go to the outbox), then one last flush.
	a.log.Info("shutting down")
	a.stopJobs(errShutdown)
	jobsDone := make(chan struct{})
	go func() { a.jobsWG.Wait(); close(jobsDone) }()
	select {
	case <-jobsDone:
	case <-time.After(a.cfg.ShutdownGrace):
		a.log.Warn("some commands did not stop in time; the next start reports them as failed", "grace", a.cfg.ShutdownGrace)
	}
	a.plans.wait()
	stopUploader()
	bg.Wait()
	var flush sync.WaitGroup
	flush.Go(func() { a.finalMetricsFlush() })
	a.finalFlush()
	flush.Wait()
	if n := a.st.Outbox().Len(); n > 0 {
		a.log.Info("reports left for the next start", "pending", n)
	}
	return nil
}

// finalFlush uploads what it can before the agent exits, retrying briefly (a load balancer's 503 during
// a hub deploy should not leave results behind), but never longer than ShutdownGrace.
func (a *Agent) finalFlush() {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
	defer cancel()
	b := backoff{min: a.cfg.RetryMin, max: a.cfg.RetryMax}
	for attempt := 1; ; attempt++ {
		err := a.drain(ctx)
		if err == nil {
			return
		}
		if attempt == 3 || !sleep(ctx, b.next()) {
			a.log.Debug("final flush incomplete", "err", err)
			return
		}
	}
}

// finalMetricsFlush tries once, within ShutdownGrace, to upload the metric batches waiting (the last
// one was just written); what the hub does not take waits for the next start.
func (a *Agent) finalMetricsFlush() {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
	defer cancel()
	if err := a.metrics.drain(ctx); err != nil {
		a.log.Debug("final metrics upload incomplete; the batches wait on disk", "err", err)
	}
	a.metrics.seqf.close()
}

// Run is New followed by Agent.Run, for the binary.
func Run(ctx context.Context, cfg Config) error {
	a, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// heartbeats tells the hub the agent is alive, what it can do and whether its hatch is open: at once,
// then whenever that changes (looked at every Heartbeat interval, and at once when the hatch opens or
// closes), and every Liveness interval when nothing did. Heartbeats are not queued: a missed one is
// superseded by the next.
func (a *Agent) heartbeats(ctx context.Context) {
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	var lastSent []byte
	var sentAt time.Time
	accepted := false
	for {
		hb := wire.Heartbeat{
			Version:      a.cfg.Version,
			Integrations: a.statuses(),
			Catalog:      a.set.Catalog(),
			Facts:        a.facts,
			Hatch:        a.hatchStatus(),
			UnitTypes:    append([]string{}, a.set.UnitTypes()...),
		}
		content, _ := json.Marshal(hb)
		if !bytes.Equal(content, lastSent) || time.Since(sentAt) >= a.cfg.Liveness {
			hb.Time = time.Now().UTC()
			if err := a.hub.postJSON(ctx, "heartbeat", a.hub.agentURL("heartbeat"), hb, nil, 30*time.Second, true); err != nil {
				if ctx.Err() != nil {
					return
				}
				a.beatHealth.fail("heartbeat", err)
			} else {
				a.beatHealth.ok()
				lastSent, sentAt = content, time.Now()
				if !accepted {
					accepted = true
					a.set.HeartbeatAccepted(ctx) // integration.HeartbeatListener: the hub knows this binary now
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.beatNow:
		}
	}
}

// housekeeping forgets replay records past their expiry and cancels-before-arrival nobody needs.
func (a *Agent) housekeeping(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.purgeReplay()
		}
	}
}

func (a *Agent) purgeReplay() {
	// Keep records a little past NotAfter: an envelope is refused as expired then anyway, but a record
	// that outlives it costs nothing and covers a clock that steps back.
	n, err := a.st.PurgeReplay(time.Now().Add(-a.cfg.ClockSkew))
	if err != nil {
		a.log.Warn("purging the replay record failed", "err", err)
	} else if n > 0 {
		a.log.Debug("purged expired replay records", "count", n)
	}
	a.jobsMu.Lock()
	for id, until := range a.cancelled {
		if time.Now().After(until) {
			delete(a.cancelled, id)
		}
	}
	a.jobsMu.Unlock()
}
