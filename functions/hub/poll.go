package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/store"
)

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

// ring wakes the agents' polls here at once, and in other hub instances through the bell feed, which
// each instance lists about once a second while it has waiting polls: one LIST per instance, never one
// per agent.
func (h *Hub) ring(ctx context.Context, agents []string) {
	if len(agents) == 0 {
		return
	}
	h.notify.wake(agents)
	key := prefixBells + uuid.Must(uuid.NewV7()).String() + ".json"
	if _, err := createJSON(context.WithoutCancel(ctx), h.Store, key, bell{Agents: agents}); err != nil {
		h.Log.Warn("bell feed write failed; other hub instances notice the work at their next poll", "err", err)
	}
}

// bellKeyAt is the smallest bell key written at or after t (UUIDv7 keys sort by their millisecond time).
func bellKeyAt(t time.Time) string {
	ms := uint64(t.UnixMilli())
	return fmt.Sprintf("%s%08x-%04x", prefixBells, ms>>16, ms&0xffff)
}

func bellTime(key string) (time.Time, bool) {
	u, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(key, prefixBells), ".json"))
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
func (h *Hub) WatchBells(ctx context.Context) {
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
		if h.notify.waiting() > 0 {
			now := time.Now()
			page, err := h.Store.List(ctx, prefixBells, bellKeyAt(now.Add(-bellLookback)), 1000)
			if err == nil {
				for _, o := range page.Objects {
					if _, ok := seen[o.Key]; ok {
						continue
					}
					seen[o.Key] = now
					var b bell
					if _, err := readJSON(ctx, h.Store, o.Key, &b); err == nil {
						h.notify.wake(b.Agents)
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
			h.sweepBells(ctx)
		}
	}
}

func (h *Hub) sweepBells(ctx context.Context) {
	cutoff := time.Now().Add(-bellRetention)
	page, err := h.Store.List(ctx, prefixBells, "", 1000)
	if err != nil {
		return
	}
	for _, o := range page.Objects {
		if t, ok := bellTime(o.Key); ok && t.Before(cutoff) {
			h.Store.Delete(ctx, o.Key)
		}
	}
}

// PollInput is an agent's poll.
type PollInput struct {
	ID   string `path:"id"`
	Body wire.PollRequest
}

// PollOutput carries the waiting envelopes.
type PollOutput struct {
	Body wire.PollResponse
}

func (h *Hub) pollHold() time.Duration {
	if h.PollHold > 0 {
		return h.PollHold
	}
	return 30 * time.Second
}

func (h *Hub) poll(ctx context.Context, in *PollInput) (*PollOutput, error) {
	agent := in.ID
	for _, name := range in.Body.Ack {
		if !validInboxName(name) {
			return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("ack %q is not an inbox key", name))
		}
		if err := h.Store.Delete(ctx, inboxOf(agent)+name); err != nil {
			return nil, h.storeError(ctx, err)
		}
	}
	hold := h.pollHold()
	deadline := time.Now().Add(hold)
	resp := wire.PollResponse{Envelopes: []wire.SignedEnvelope{}, HoldSeconds: int(hold / time.Second), HubKeys: h.Keys.Public(), HubKeySignatures: h.Keys.KeySetSignatures()}
	for {
		// Register before listing, so an enqueue between the two still wakes us.
		woken, stop := h.notify.wait(agent)
		envs, err := h.readInbox(ctx, agent)
		if err != nil {
			stop()
			return nil, h.storeError(ctx, err)
		}
		left := time.Until(deadline)
		if len(envs) > 0 || left <= 0 {
			stop()
			resp.Envelopes = envs
			h.markDelivered(ctx, agent, envs)
			return &PollOutput{Body: resp}, nil
		}
		timer := time.NewTimer(left)
		select {
		case <-woken:
		case <-timer.C:
		case <-h.draining:
			resp.NextPollMillis = 1000 // this instance is stopping; come back (to another one)
			timer.Stop()
			stop()
			return &PollOutput{Body: resp}, nil
		case <-ctx.Done():
			timer.Stop()
			stop()
			return &PollOutput{Body: resp}, nil
		}
		timer.Stop()
		stop()
	}
}

func validInboxName(name string) bool {
	base, ok := strings.CutSuffix(name, ".json")
	return ok && validID(base)
}

// readInbox returns the envelopes waiting for an agent, oldest command first. An object that is not a
// signed envelope is passed on as it is, so the agent rejects and reports it instead of it lingering.
func (h *Hub) readInbox(ctx context.Context, agent string) ([]wire.SignedEnvelope, error) {
	page, err := h.Store.List(ctx, inboxOf(agent), "", 100)
	if err != nil {
		return nil, err
	}
	out := []wire.SignedEnvelope{}
	for _, o := range page.Objects {
		b, _, err := store.ReadAll(ctx, h.Store, o.Key)
		if err != nil {
			continue // deleted by a concurrent ack
		}
		var se wire.SignedEnvelope
		if json.Unmarshal(b, &se) != nil {
			se = wire.SignedEnvelope{Payload: b}
		}
		se.InboxKey = strings.TrimPrefix(o.Key, inboxOf(agent))
		out = append(out, se)
	}
	return out, nil
}

// markDelivered records that command envelopes reached the agent.
func (h *Hub) markDelivered(ctx context.Context, agent string, envs []wire.SignedEnvelope) {
	for _, se := range envs {
		cmd := strings.TrimSuffix(se.InboxKey, ".json")
		if !validID(cmd) || strings.HasSuffix(cmd, "-cancel") {
			continue
		}
		if _, err := h.command(ctx, cmd); err != nil {
			continue // not ours: the agent will reject and report it
		}
		if _, err := createJSON(context.WithoutCancel(ctx), h.Store, keyMarker(cmd, agent, "delivered"), map[string]any{"at": time.Now().UTC()}); err != nil {
			h.Log.Warn("record delivery", "command", cmd, "agent", agent, "err", err)
		}
	}
}
