// Package delivery is the room that gets signed work to agents: the deliveries in the store (one
// signed envelope for up to wire.MaxAddressees agents, stored once however many agents it is for), the
// index of open deliveries each hub instance keeps in memory, the long-poll that holds until work
// arrives, the in-process wake-up and the bell feed that tells other hub instances about new
// deliveries, and the agents' reports of envelopes they refused.
//
// A poll costs no store request: it answers from the index. The index is filled by this instance's own
// posts, by the bell feed (other instances' posts, within about a second), and by a listing of the
// open deliveries at start and every resync interval (a bell that was never written). Acknowledgements
// are kept in memory only: an instance that restarted, or another instance, may offer an envelope
// again, and the agent, which remembers every envelope it accepted, acknowledges it without acting.
package delivery

import (
	"context"
	"errors"
	"fmt"
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
	// Doorbells is function mode (doorbell.go): deliveries ring their agents' doorbells instead of
	// the bell feed, and a poll reads its agent's doorbell and answers at once.
	Doorbells bool
	// PollEvery is how soon an agent polls again in function mode (default DefaultPollEvery).
	PollEvery time.Duration

	notify    notifier
	index     index
	watching  watches
	sweepMu   sync.Mutex
	lastSweep time.Time
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

// Waiting is how many agent polls this instance holds now (the hub's telemetry).
func (s *Service) Waiting() int { return s.notify.waiting() }

// Batch is one signed envelope and the agents it is addressed to (also inside the signed bytes; kept
// beside them so the hub indexes a delivery without decoding every envelope).
type Batch struct {
	Agents   []string            `json:"agents"`
	Envelope wire.SignedEnvelope `json:"envelope"`
}

// Stored is a delivery as it is stored: written once, MACed like everything the hub writes.
type Stored struct {
	// Ref names what is delivered, for the index: the command id (its waves and its cancel share it).
	Ref      string    `json:"ref"`
	NotAfter time.Time `json:"notAfter"`
	Batches  []Batch   `json:"batches"`
}

// Post signs env once per wire.MaxAddressees agents and stores the lot as one delivery under id
// (create-only, so posting the same delivery again, as the release tick does, changes nothing), then
// indexes it and wakes the agents' polls, here and through the bell feed. It returns the delivery's
// key. ref groups deliveries for Done.
func (s *Service) Post(ctx context.Context, id, ref string, agents []string, env wire.Envelope) (string, error) {
	key, land, err := s.Offer(ctx, id, ref, agents, env)
	if err != nil || land == nil {
		return "", err
	}
	return key, land(ctx)
}

// Offer is Post without the store: it signs env, indexes the delivery and wakes the agents' polls on
// this instance, and returns land, which stores the delivery (create-only) and rings the bell feed
// for the other instances. A release answers its caller once its agents have the envelope, while
// the store write, which a thousand agents' results are about to queue behind, lands after. Until
// land returns nil only this instance offers the delivery and a restart forgets it, so the caller
// keeps its own record of the release (commands' releasing/ object) until then. land is nil for no
// agents.
func (s *Service) Offer(ctx context.Context, id, ref string, agents []string, env wire.Envelope) (key string, land func(context.Context) error, err error) {
	if len(agents) == 0 {
		return "", nil, nil
	}
	d := &Stored{Ref: ref, NotAfter: env.NotAfter}
	for i := 0; i < len(agents); i += wire.MaxAddressees {
		part := agents[i:min(i+wire.MaxAddressees, len(agents))]
		e := env
		e.Agent, e.Agents = "", part
		if len(part) == 1 {
			e.Agent, e.Agents = part[0], nil
		}
		se, err := s.Keys.Sign(e)
		if err != nil {
			return "", nil, fmt.Errorf("sign delivery %s: %w", id, err)
		}
		d.Batches = append(d.Batches, Batch{Agents: part, Envelope: se})
	}
	key = layout.Delivery(env.NotAfter, id)
	s.index.add(key, d)
	s.notify.wake(agents)
	return key, func(ctx context.Context) error {
		if _, err := store.CreateJSON(ctx, s.Store, key, d); err != nil {
			return fmt.Errorf("store delivery %s: %w", id, err)
		}
		if s.Doorbells {
			return s.ringDoorbells(ctx, key, env.NotAfter, agents)
		}
		s.ring(ctx, key, agents)
		return nil
	}, nil
}

// Done tells the index that agent has reported on ref (it started or finished the command), so this
// instance stops offering it that command's envelopes even before the agent's acknowledgement.
func (s *Service) Done(agent, ref string) { s.index.done(agent, ref) }

// bell is one entry of the change feed that tells other hub instances about a new delivery.
type bell struct {
	Delivery string   `json:"delivery,omitempty"`
	Agents   []string `json:"agents,omitempty"`
	// Watch, instead of a delivery, says an agent is watched live (watch.go).
	Watch *watchBell `json:"watch,omitempty"`
}

// ring tells other hub instances about a delivery through the bell feed, which each instance lists
// about once a second while it has waiting polls: one LIST per instance, never one per agent.
func (s *Service) ring(ctx context.Context, key string, agents []string) {
	b := bell{Delivery: key, Agents: agents}
	if _, err := store.CreateJSON(context.WithoutCancel(ctx), s.Store, layout.Bell(uuid.Must(uuid.NewV7()).String()), b); err != nil {
		s.Log.Warn("bell feed write failed; other hub instances find the delivery at their next resync", "key", key, "err", err)
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
	// resyncEvery is how often an instance lists the open deliveries while polls wait: it catches a
	// delivery whose bell was never written, for one LIST per instance per interval.
	resyncEvery = 30 * time.Second
	// deliveryRetention is how long an expired delivery is kept before the sweep deletes it.
	deliveryRetention = time.Hour
)

// WatchBells follows the bell feed until ctx ends, indexing deliveries another instance posted and
// waking the local polls they are for; it resyncs the index from the store every resyncEvery and
// deletes bells older than bellRetention and deliveries expired for deliveryRetention.
func (s *Service) WatchBells(ctx context.Context) {
	seen := map[string]time.Time{}
	tick := time.NewTicker(bellInterval)
	defer tick.Stop()
	s.sweepDue(time.Now()) // not at once: a start is busy enough
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
					_, err := store.ReadJSON(ctx, s.Store, o.Key, &b)
					switch {
					case err != nil:
					case b.Watch != nil:
						s.watching.set(b.Watch.Agent, b.Watch.Every, b.Watch.Until)
						s.notify.wake([]string{b.Watch.Agent})
					case s.load(ctx, b.Delivery) == nil:
						s.notify.wake(b.Agents)
					}
				}
			}
			for k, at := range seen {
				if now.Sub(at) > 2*bellLookback {
					delete(seen, k)
				}
			}
			if s.index.syncedBefore(now.Add(-resyncEvery)) {
				if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
					s.Log.Warn("resync open deliveries", "err", err)
				}
			}
		}
		s.Sweep(ctx)
	}
}

// Sweep deletes old bells and long-expired deliveries, a page of each at a time, at most once a
// minute per instance: the bell watcher calls it every second, and so does the tick of a hub without
// a resident process (function mode, `pulse tick`).
func (s *Service) Sweep(ctx context.Context) {
	if s.sweepDue(time.Now()) {
		s.sweep(ctx)
	}
}

// sweepDue says whether a minute passed since the last sweep, and if so counts one from now.
func (s *Service) sweepDue(now time.Time) bool {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	if now.Sub(s.lastSweep) < time.Minute {
		return false
	}
	s.lastSweep = now
	return true
}

func (s *Service) sweep(ctx context.Context) {
	now := time.Now()
	if page, err := s.Store.List(ctx, layout.Bells, "", 1000); err == nil {
		for _, o := range page.Objects {
			if t, ok := bellTime(o.Key); ok && t.Before(now.Add(-bellRetention)) {
				s.Store.Delete(ctx, o.Key)
			}
		}
	}
	if page, err := s.Store.List(ctx, layout.Deliveries, "", 1000); err == nil {
		for _, o := range page.Objects {
			if t, ok := layout.DeliveryExpiry(o.Key); !ok || t.Before(now.Add(-deliveryRetention)) {
				s.Store.Delete(ctx, o.Key)
			}
		}
	}
	s.index.expire(now)
}

// Sync lists the open deliveries and indexes the ones this instance does not know. A delivery that
// fails the integrity check (planted in the bucket) reads as missing and is never offered.
func (s *Service) Sync(ctx context.Context) error {
	started := time.Now()
	err := store.Walk(ctx, s.Store, layout.Deliveries, layout.DeliveriesFrom(started), 0, func(o store.ObjectInfo) error {
		if s.index.has(o.Key) {
			return nil
		}
		if err := s.load(ctx, o.Key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list open deliveries: %w", err)
	}
	s.index.synced(started)
	return nil
}

// load reads one delivery into the index (once: deliveries are write-once).
func (s *Service) load(ctx context.Context, key string) error {
	if !strings.HasPrefix(key, layout.Deliveries) || s.index.has(key) {
		return nil
	}
	var d Stored
	if _, err := store.ReadJSON(ctx, s.Store, key, &d); err != nil {
		return fmt.Errorf("read delivery %s: %w", key, err)
	}
	s.index.add(key, &d)
	return nil
}

func (s *Service) pollHold() time.Duration {
	if s.PollHold > 0 {
		return s.PollHold
	}
	return 30 * time.Second
}

// Poll takes the agent's acknowledgements and returns the envelopes waiting for it: at once when there
// are some, else when work arrives or the hold ends. It reads the store only on an instance that has
// not listed the open deliveries yet.
func (s *Service) Poll(ctx context.Context, agent string, req wire.PollRequest) (wire.PollResponse, error) {
	for _, name := range req.Ack {
		if !validAck(name) {
			return wire.PollResponse{}, &domain.Error{Kind: domain.KindInvalid, Field: "body.ack", Msg: fmt.Sprintf("ack %q names no delivery", name)}
		}
	}
	if s.Doorbells {
		return s.pollDoorbell(ctx, agent, req)
	}
	s.index.ack(agent, req.Ack)
	if !s.index.everSynced() {
		if err := s.Sync(ctx); err != nil {
			return wire.PollResponse{}, err
		}
	}
	hold := s.pollHold()
	deadline := time.Now().Add(hold)
	resp := wire.PollResponse{Envelopes: []wire.SignedEnvelope{}, HoldSeconds: int(hold / time.Second), HubKeys: s.Keys.Public(), HubKeySignatures: s.Keys.KeySetSignatures(),
		MetricsEverySeconds: s.watching.get(agent, time.Now())}
	draining := s.drainCh()
	for {
		// Register before looking, so a post between the two still wakes us.
		woken, stop := s.notify.wait(agent)
		envs := s.index.pending(agent, time.Now())
		left := time.Until(deadline)
		watched := s.watching.get(agent, time.Now())
		if len(envs) > 0 || left <= 0 || watched != resp.MetricsEverySeconds {
			resp.MetricsEverySeconds = watched // a watch that began or ended while the poll waited
			stop()
			resp.Envelopes = envs
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

// validAck accepts what the hub hands out as an envelope's InboxKey: a delivery's name.
func validAck(name string) bool { return layout.KeySafe(name, 160) }

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
