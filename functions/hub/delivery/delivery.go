// Package delivery is the room that gets signed work to agents: each agent's inbox in the store, the
// long-poll that holds until work arrives, the in-process wake-up and the bell feed that wakes polls
// held by other hub instances, and the agents' reports of envelopes they refused.
package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// Service delivers envelopes.
type Service struct {
	Store store.Store
	Log   *slog.Logger
	// Keys sign every envelope.
	Keys *hubkey.Keys
	// PollHold is how long a poll waits for work (default 30s; short for cloud functions).
	PollHold time.Duration
	// Delivered is called with the envelopes a poll hands to an agent, before it answers; the commands
	// room records deliveries with it. Nil does nothing.
	Delivered func(ctx context.Context, agent string, envs []wire.SignedEnvelope)

	notify    notifier
	drainMu   sync.Mutex
	draining  chan struct{} // closed by Drain; made on first use
	drainOnce sync.Once
}

// Drain makes waiting polls return at once, for a quick graceful shutdown.
func (s *Service) Drain() {
	ch := s.drainCh()
	s.drainOnce.Do(func() { close(ch) })
}

func (s *Service) drainCh() chan struct{} {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	if s.draining == nil {
		s.draining = make(chan struct{})
	}
	return s.draining
}

// notifier wakes polls waiting in this process.
type notifier struct {
	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
}

func (n *notifier) wait(agent string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.waiters == nil {
		n.waiters = map[string]map[chan struct{}]struct{}{}
	}
	if n.waiters[agent] == nil {
		n.waiters[agent] = map[chan struct{}]struct{}{}
	}
	n.waiters[agent][ch] = struct{}{}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.waiters[agent], ch)
		if len(n.waiters[agent]) == 0 {
			delete(n.waiters, agent)
		}
		n.mu.Unlock()
	}
}

func (n *notifier) wake(agents []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range agents {
		for ch := range n.waiters[a] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

func (n *notifier) waiting() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.waiters)
}

// bell is one entry of the change feed that tells other hub instances which inboxes received work.
type bell struct {
	Agents []string `json:"agents"`
}

// Ring wakes the agents' polls here at once, and in other hub instances through the bell feed, which
// each instance lists about once a second while it has waiting polls: one LIST per instance, never one
// per agent.
func (s *Service) Ring(ctx context.Context, agents []string) {
	if len(agents) == 0 {
		return
	}
	s.notify.wake(agents)
	key := layout.Bell(uuid.Must(uuid.NewV7()).String())
	if _, err := store.CreateJSON(context.WithoutCancel(ctx), s.Store, key, bell{Agents: agents}); err != nil {
		s.Log.Warn("bell feed write failed; other hub instances notice the work at their next poll", "err", err)
	}
}

func bellTime(key string) (time.Time, bool) {
	u, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(key, layout.Bells), ".json"))
	if err != nil || u.Version() != 7 {
		return time.Time{}, false
	}
	sec, nsec := u.Time().UnixTime()
	return time.Unix(sec, nsec), true
}

const (
	bellInterval  = time.Second
	bellLookback  = 10 * time.Second // clock skew between hub instances, and writes landing late
	bellRetention = 10 * time.Minute
)

// WatchBells follows the bell feed until ctx ends, waking local polls for work that another instance
// enqueued, and deletes bells older than bellRetention.
func (s *Service) WatchBells(ctx context.Context) {
	seen := map[string]time.Time{}
	tick := time.NewTicker(bellInterval)
	defer tick.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s.notify.waiting() > 0 {
			now := time.Now()
			page, err := s.Store.List(ctx, layout.Bells, layout.BellAt(now.Add(-bellLookback)), 1000)
			if err == nil {
				for _, o := range page.Objects {
					if _, ok := seen[o.Key]; ok {
						continue
					}
					seen[o.Key] = now
					var b bell
					if _, err := store.ReadJSON(ctx, s.Store, o.Key, &b); err == nil {
						s.notify.wake(b.Agents)
					}
				}
			}
			for k, at := range seen {
				if now.Sub(at) > 2*bellLookback {
					delete(seen, k)
				}
			}
		}
		if time.Since(lastSweep) > time.Minute {
			lastSweep = time.Now()
			s.sweepBells(ctx)
		}
	}
}

func (s *Service) sweepBells(ctx context.Context) {
	cutoff := time.Now().Add(-bellRetention)
	page, err := s.Store.List(ctx, layout.Bells, "", 1000)
	if err != nil {
		return
	}
	for _, o := range page.Objects {
		if t, ok := bellTime(o.Key); ok && t.Before(cutoff) {
			s.Store.Delete(ctx, o.Key)
		}
	}
}

func (s *Service) pollHold() time.Duration {
	if s.PollHold > 0 {
		return s.PollHold
	}
	return 30 * time.Second
}

// Poll removes the acknowledged envelopes and returns the waiting ones: at once when there are some,
// else when work arrives or the hold ends.
func (s *Service) Poll(ctx context.Context, agent string, req wire.PollRequest) (wire.PollResponse, error) {
	for _, name := range req.Ack {
		if !validInboxName(name) {
			return wire.PollResponse{}, &domain.Error{Kind: domain.KindInvalid, Field: "body.ack", Msg: fmt.Sprintf("ack %q is not an inbox key", name)}
		}
		if err := s.Store.Delete(ctx, layout.InboxOf(agent)+name); err != nil {
			return wire.PollResponse{}, err
		}
	}
	hold := s.pollHold()
	deadline := time.Now().Add(hold)
	resp := wire.PollResponse{Envelopes: []wire.SignedEnvelope{}, HoldSeconds: int(hold / time.Second), HubKeys: s.Keys.Public(), HubKeySignatures: s.Keys.KeySetSignatures()}
	draining := s.drainCh()
	for {
		// Register before listing, so an enqueue between the two still wakes us.
		woken, stop := s.notify.wait(agent)
		envs, err := s.readInbox(ctx, agent)
		if err != nil {
			stop()
			return wire.PollResponse{}, err
		}
		left := time.Until(deadline)
		if len(envs) > 0 || left <= 0 {
			stop()
			resp.Envelopes = envs
			if s.Delivered != nil {
				s.Delivered(ctx, agent, envs)
			}
			return resp, nil
		}
		timer := time.NewTimer(left)
		select {
		case <-woken:
		case <-timer.C:
		case <-draining:
			resp.NextPollMillis = 1000 // this instance is stopping; come back (to another one)
			timer.Stop()
			stop()
			return resp, nil
		case <-ctx.Done():
			timer.Stop()
			stop()
			return resp, nil
		}
		timer.Stop()
		stop()
	}
}

func validInboxName(name string) bool {
	base, ok := strings.CutSuffix(name, ".json")
	return ok && layout.ValidID(base)
}

// readInbox returns the envelopes waiting for an agent, oldest command first. An object that is not a
// signed envelope is passed on as it is, so the agent rejects and reports it instead of it lingering.
func (s *Service) readInbox(ctx context.Context, agent string) ([]wire.SignedEnvelope, error) {
	page, err := s.Store.List(ctx, layout.InboxOf(agent), "", 100)
	if err != nil {
		return nil, err
	}
	out := []wire.SignedEnvelope{}
	for _, o := range page.Objects {
		b, _, err := store.ReadAll(ctx, s.Store, o.Key)
		if err != nil {
			continue // deleted by a concurrent ack
		}
		var se wire.SignedEnvelope
		if json.Unmarshal(b, &se) != nil {
			se = wire.SignedEnvelope{Payload: b}
		}
		se.InboxKey = strings.TrimPrefix(o.Key, layout.InboxOf(agent))
		out = append(out, se)
	}
	return out, nil
}

// Enqueue signs env and writes it into the agent's inbox under name (create-only, so enqueueing the
// same work twice leaves one envelope). It does not ring: callers ring once for a whole wave.
func (s *Service) Enqueue(ctx context.Context, agent, name string, env wire.Envelope) error {
	se, err := s.Keys.Sign(env)
	if err != nil {
		return fmt.Errorf("sign envelope %s for %s: %w", name, agent, err)
	}
	key := layout.InboxEntry(agent, name)
	created, err := store.CreateJSON(ctx, s.Store, key, se)
	if err != nil || created {
		return err
	}
	return s.reclaim(ctx, key, agent, env.ID, se)
}

// reclaim handles an inbox key that was already taken. The hub's own envelope of this id (an earlier
// try) is the same delivery. Anything else was planted by someone with write access to the bucket to
// keep the hub's envelope (a command, a cancel) from landing: it is replaced, on the condition that it
// is still the planted object. The agent would refuse the planted one anyway; replacing it is what
// keeps the genuine one from being lost.
func (s *Service) reclaim(ctx context.Context, key, agent, envID string, se wire.SignedEnvelope) error {
	obj, err := s.Store.Get(ctx, key, store.GetOptions{})
	if errors.Is(err, store.ErrNotFound) {
		_, err := store.CreateJSON(ctx, s.Store, key, se)
		return err
	}
	if err != nil {
		return fmt.Errorf("inbox %s: %w", key, err)
	}
	var held wire.SignedEnvelope
	derr := json.NewDecoder(io.LimitReader(obj.Body, 1<<20)).Decode(&held)
	obj.Body.Close()
	if derr == nil {
		if env, verr := held.Verify(s.Keys.Public()); verr == nil && env.ID == envID && env.Agent == agent {
			return nil
		}
	}
	s.Log.Error("replaced an inbox entry the hub did not write (someone with write access to the bucket planted it)", "key", key)
	b, err := json.Marshal(se)
	if err != nil {
		return err
	}
	_, err = store.PutBytes(ctx, s.Store, key, b, store.PutOptions{IfMatch: obj.ETag, ContentType: "application/json"})
	if errors.Is(err, store.ErrPreconditionFailed) {
		return fmt.Errorf("inbox %s changed while the hub replaced a planted entry (the release tick tries again): %w", key, err)
	}
	return err
}

// RejectionRecord is a stored rejection report.
type RejectionRecord struct {
	wire.Rejection
	Agent      string    `json:"agent"`
	ReceivedAt time.Time `json:"receivedAt"`
}

// Reject stores an agent's report of an envelope it refused, whatever the reason, including refusals of
// commands this hub does not know (their result is refused, the rejection is the only trace). Every text
// the agent sent is capped at wire.MaxReasonBytes, so a report cannot fill the bucket or the log.
func (s *Service) Reject(ctx context.Context, agent string, r wire.Rejection) error {
	if r.Reason == "" {
		return &domain.Error{Kind: domain.KindInvalid, Field: "body.reason", Msg: "a rejection needs a reason"}
	}
	r.Reason, r.EnvelopeKey = wire.CapReason(r.Reason), wire.CapReason(r.EnvelopeKey)
	r.EnvelopeID, r.CommandID = wire.CapReason(r.EnvelopeID), wire.CapReason(r.CommandID)
	rec := RejectionRecord{Rejection: r, Agent: agent, ReceivedAt: time.Now().UTC()}
	if _, err := store.CreateJSON(ctx, s.Store, layout.Rejection(agent, uuid.Must(uuid.NewV7()).String()), rec); err != nil {
		return err
	}
	s.Log.Warn("agent rejected an envelope", "agent", agent, "inbox_key", r.EnvelopeKey, "command", r.CommandID, "reason", r.Reason)
	return nil
}

// Rejections lists an agent's rejection reports, oldest first.
func (s *Service) Rejections(ctx context.Context, agent string) ([]RejectionRecord, error) {
	if !layout.ValidID(agent) {
		return nil, domain.NotFound("no agent %q", agent)
	}
	out := []RejectionRecord{}
	err := store.Walk(ctx, s.Store, layout.RejectionsOf(agent), "", 0, func(o store.ObjectInfo) error {
		var r RejectionRecord
		if _, err := store.ReadJSON(ctx, s.Store, o.Key, &r); errors.Is(err, store.ErrNotFound) {
			return nil // refused by the integrity check
		} else if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}
