package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// Function mode (Service.Doorbells). A hub run as cloud functions has no resident instance: every poll
// may land on a fresh instance with an empty index, and no post can wake a poll held by another
// instance. Listing the open deliveries or the bell feed on every poll would cost a LIST per agent per
// poll, so instead each agent has a doorbell object naming the deliveries waiting for it (and its live
// watch). A post adds itself to its addressees' doorbells (a read and a conditional write each), a
// poll reads its agent's doorbell once (one GET, about a twelfth of a LIST's price on S3), and an
// acknowledgement takes the delivery off it again. The poll answers at once and tells the agent when
// to come back (PollEvery): holding it would bill the function for time in which nothing can wake it.

// doorbell is one agent's doorbell as stored.
type doorbell struct {
	Deliveries []ringing `json:"deliveries,omitempty"`
	// Watch is the agent's live watch, when one was asked for (watch.go).
	Watch *watchBell `json:"watch,omitempty"`
}

// ringing is one delivery waiting for the agent.
type ringing struct {
	Key      string    `json:"key"`
	NotAfter time.Time `json:"notAfter"`
}

// doorbellTries bounds the conditional writes of one doorbell change: a thousand-agent fan-out touches
// each doorbell once, so conflicts come only from the agent's own acknowledgement or another post.
const doorbellTries = 16

// doorbellWriters is how many doorbells a post updates at once.
const doorbellWriters = 32

// stale says whether prune would drop anything.
func (d *doorbell) stale(acked map[string]bool, now time.Time) bool {
	if d.Watch != nil && !now.Before(d.Watch.Until) {
		return true
	}
	return slices.ContainsFunc(d.Deliveries, func(r ringing) bool { return acked[layout.Name(r.Key)] || now.After(r.NotAfter) })
}

// prune drops the deliveries that are acknowledged or expired; it says whether any was.
func (d *doorbell) prune(acked map[string]bool, now time.Time) bool {
	if !d.stale(acked, now) {
		return false
	}
	d.Deliveries = slices.DeleteFunc(d.Deliveries, func(r ringing) bool {
		return acked[layout.Name(r.Key)] || now.After(r.NotAfter)
	})
	if d.Watch != nil && !now.Before(d.Watch.Until) {
		d.Watch = nil
	}
	return true
}

// ringDoorbells adds the delivery under key to the doorbell of each of agents. Adding is idempotent,
// so the release tick posting an interrupted delivery again rings once more without duplicates.
func (s *Service) ringDoorbells(ctx context.Context, key string, notAfter time.Time, agents []string) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, doorbellWriters)
	)
	now := time.Now()
	for _, a := range agents {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := store.UpdateJSON(ctx, s.Store, layout.Doorbell(a), doorbellTries, func(d *doorbell, _ bool) (bool, error) {
				changed := d.prune(nil, now)
				if slices.ContainsFunc(d.Deliveries, func(r ringing) bool { return r.Key == key }) {
					return changed, nil
				}
				d.Deliveries = append(d.Deliveries, ringing{Key: key, NotAfter: notAfter})
				return true, nil
			})
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("ring the doorbell of %s: %w", a, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// watchDoorbell records a live watch on the agent's doorbell, where its next poll finds it.
func (s *Service) watchDoorbell(ctx context.Context, agent string, every int, until time.Time) error {
	_, err := store.UpdateJSON(ctx, s.Store, layout.Doorbell(agent), doorbellTries, func(d *doorbell, _ bool) (bool, error) {
		// As on the bell feed: a renewal while the known watch lasts more than half as long again
		// writes nothing.
		if w := d.Watch; w != nil && w.Every <= every && 2*time.Until(w.Until) >= time.Until(until) {
			return false, nil
		}
		d.Watch = &watchBell{Agent: agent, Every: every, Until: until}
		return true, nil
	})
	return err
}

// pollDoorbell answers a poll in function mode: one read of the agent's doorbell, a write only when
// the poll acknowledged a delivery on it (or one expired), and a read of each delivery this instance
// has not seen yet. A doorbell that fails the integrity check reads as missing: a planted one offers
// nothing, and a forged delivery it names would not read either.
func (s *Service) pollDoorbell(ctx context.Context, agent string, req wire.PollRequest) (wire.PollResponse, error) {
	now := time.Now()
	key := layout.Doorbell(agent)
	var d doorbell
	if _, err := store.ReadJSON(ctx, s.Store, key, &d); err != nil && !errors.Is(err, store.ErrNotFound) {
		return wire.PollResponse{}, fmt.Errorf("read the doorbell of %s: %w", agent, err)
	}
	acked := map[string]bool{}
	for _, n := range req.Ack {
		acked[n] = true
	}
	if d.stale(acked, now) {
		var err error
		d, err = store.UpdateJSON(ctx, s.Store, key, doorbellTries, func(v *doorbell, _ bool) (bool, error) {
			return v.prune(acked, now), nil
		})
		if err != nil {
			// The agent acknowledges again when it is offered the envelope again; nothing is lost.
			s.Log.Warn("take acknowledged deliveries off a doorbell", "agent", agent, "err", err)
			d.prune(acked, now)
		}
	}
	keys := make([]string, 0, len(d.Deliveries))
	for _, r := range d.Deliveries {
		if err := s.load(ctx, r.Key); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				s.Log.Warn("a doorbell names a delivery that does not read (swept, or not genuine)", "agent", agent, "delivery", r.Key)
				continue
			}
			return wire.PollResponse{}, err
		}
		keys = append(keys, r.Key)
	}
	resp := wire.PollResponse{Envelopes: s.index.offer(agent, keys), HoldSeconds: 1, NextPollMillis: int(s.pollEvery() / time.Millisecond),
		HubKeys: s.Keys.Public(), HubKeySignatures: s.Keys.KeySetSignatures()}
	if len(resp.Envelopes) > 0 {
		resp.NextPollMillis = 0 // the agent acknowledges them at once
	}
	if w := d.Watch; w != nil && now.Before(w.Until) {
		resp.MetricsEverySeconds = w.Every
	}
	return resp, nil
}

// pollEvery is how soon an agent polls again in function mode.
func (s *Service) pollEvery() time.Duration {
	if s.PollEvery > 0 {
		return s.PollEvery
	}
	return DefaultPollEvery
}

// DefaultPollEvery is how soon an agent polls again in function mode unless configured: a command
// reaches an idle agent within this, and each agent costs 3600/5 = 720 polls (function invocations
// and doorbell GETs) an hour.
const DefaultPollEvery = 5 * time.Second
