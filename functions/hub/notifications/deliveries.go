package notifications

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/store"
)

// Tuning of the queue.
const (
	// DefaultQueueEvery is how often an idle instance lists the queue: a hub with nothing queued
	// costs one LIST per DefaultQueueEvery. Its own Notify wakes it at once, and a retry falls due at
	// its time, not at the next listing.
	DefaultQueueEvery = 10 * time.Second
	// MaxAttempts is how many attempts a delivery gets before it is given up.
	MaxAttempts = 8
	// MaxAge is how long after it was queued a delivery is still tried.
	MaxAge = 24 * time.Hour
	// ClaimTimeout is how long an attempt claimed by an instance that recorded no outcome (it stopped
	// while sending) holds the delivery; after it the attempt counts as failed.
	ClaimTimeout = 4 * notify.Timeout
	// Retention is how long a delivery and its attempts are kept after it was queued.
	Retention = 30 * 24 * time.Hour
	// expireEvery is how often an instance sweeps deliveries older than Retention.
	expireEvery = time.Hour
	// senders bounds the sends one tick has in flight.
	senders = 8
)

// DefaultBackoff are the waits after the first, second, … failed attempt; the last repeats.
var DefaultBackoff = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute}

// Delivery states, as the log shows them.
const (
	StateQueued   = "queued"
	StateSending  = "sending"
	StateRetrying = "retrying"
	StateSent     = "sent"
	StateFailed   = "failed"
)

// Delivery is one notification to one channel, written once.
type Delivery struct {
	ID      string         `json:"id"`
	Channel string         `json:"channel"`
	Kind    string         `json:"channelKind,omitempty" doc:"The channel's kind when the notification was queued (empty for a channel that did not exist)."`
	Message notify.Message `json:"message"`
	// NotBefore holds the delivery until then (the end of quiet hours).
	NotBefore time.Time `json:"notBefore,omitzero"`
	QueuedAt  time.Time `json:"queuedAt"`
}

// Attempt is one attempt at a delivery: claimed by one instance, then its outcome.
type Attempt struct {
	N         int       `json:"n"`
	Hub       string    `json:"hub" doc:"The hub instance that made the attempt."`
	ClaimedAt time.Time `json:"claimedAt"`
	State     string    `json:"state" enum:"sending,sent,failed"`
	At        time.Time `json:"at,omitzero" doc:"When the outcome was known."`
	Status    int       `json:"status,omitempty" doc:"The receiver's HTTP status."`
	Answer    string    `json:"answer,omitempty" doc:"An excerpt of the receiver's answer."`
	Error     string    `json:"error,omitempty" doc:"Why the attempt failed (never a secret)."`
	NextAt    time.Time `json:"nextAt,omitzero" doc:"When the next attempt is due, after a failure that is retried."`
	Final     bool      `json:"final,omitempty" doc:"The delivery is given up after this failure."`
}

// Entry is a delivery as the log shows it: its state and every attempt.
type Entry struct {
	Delivery
	State    string    `json:"state" enum:"queued,sending,retrying,sent,failed"`
	Attempts []Attempt `json:"attempts"`
}

// DeliveryID names the delivery of one message kind of one alert to one channel: the same on every
// hub, so queueing it twice queues it once.
func DeliveryID(alert, kind, channel string) string {
	sum := sha256.Sum256([]byte(alert + "\x00" + kind + "\x00" + channel))
	return hex.EncodeToString(sum[:16])
}

// Notify queues m for each channel (nil: the default channels), to be sent at or after notBefore
// (alerts.Notifier). Each delivery's queue entry and record are created only if absent, so a second
// call, from this hub or another, queues nothing more. A channel that does not exist is queued all the
// same and fails with that reason in the log: a notification is never dropped in silence.
func (s *Service) Notify(ctx context.Context, m notify.Message, channels []string, notBefore time.Time) error {
	if channels == nil {
		defaults, err := s.defaults(ctx)
		if err != nil {
			return err
		}
		if len(defaults) == 0 {
			s.Log.Warn("a notification has no channel: its rule names none and no channel is a default (pulse channels --help)", "alert", m.Alert, "kind", m.Kind, "rule", m.Rule)
			return nil
		}
		channels = defaults
	} else if len(channels) == 0 {
		s.Log.Warn("a notification names no channel: nothing sent", "alert", m.Alert, "kind", m.Kind, "rule", m.Rule)
		return nil
	}
	var errs []error
	for _, name := range channels {
		if _, err := s.enqueue(ctx, m, name, notBefore); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	s.wake = true
	s.mu.Unlock()
	return errors.Join(errs...)
}

// enqueue writes the queue entry, then the record; the tick writes a record that is missing, so a
// hub stopping between the two loses nothing. A delivery that is already final when queued again is
// told by its attempts, and the tick drops the entry without sending.
func (s *Service) enqueue(ctx context.Context, m notify.Message, channel string, notBefore time.Time) (*Delivery, error) {
	d := &Delivery{ID: DeliveryID(m.Alert, m.Kind, channel), Channel: channel, Message: m, NotBefore: notBefore.UTC(), QueuedAt: s.now().UTC()}
	// The kind is for telemetry and the log; a channel that does not exist (or could not be read) is
	// queued all the same and fails with the reason when due.
	var st Stored
	if notify.ValidName(channel) {
		if _, err := store.ReadJSON(ctx, s.Store, layout.Channel(channel), &st); err == nil {
			d.Kind = st.Kind
		} else if !errors.Is(err, store.ErrNotFound) {
			s.Log.Warn("read a channel to queue a notification; queued without its kind", "channel", channel, "err", err)
		}
	}
	created, err := store.CreateJSON(ctx, s.Store, layout.NotificationQueued(d.ID), d)
	if err != nil {
		return nil, fmt.Errorf("queue the notification of alert %s to channel %s: %w", m.Alert, channel, err)
	}
	if !created {
		return d, nil
	}
	if _, err := store.CreateJSON(ctx, s.Store, layout.Notification(d.ID), d); err != nil {
		s.Log.Warn("record a queued notification; the tick records it", "delivery", d.ID, "err", err)
	}
	s.Log.Info("notification queued", "delivery", d.ID, "alert", m.Alert, "kind", m.Kind, "channel", channel, "notBefore", d.NotBefore)
	return d, nil
}

func (s *Service) defaults(ctx context.Context) ([]string, error) {
	names, err := s.Channels(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		var st Stored
		if _, err := store.ReadJSON(ctx, s.Store, layout.Channel(n), &st); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("read channel %s: %w", n, err)
		}
		if st.Default {
			out = append(out, n)
		}
	}
	return out, nil
}

// Test sends a test message to a channel now and returns the attempt. It is a delivery like any other:
// in the log, and retried when it fails.
func (s *Service) Test(ctx context.Context, name string) (*Entry, error) {
	ch, err := s.stored(ctx, name)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 8)
	rand.Read(id)
	p := domain.PrincipalFrom(ctx)
	now := s.now().UTC()
	m := notify.Message{Alert: "test-" + hex.EncodeToString(id), Kind: notify.KindTest, Rule: "test", RuleKind: "test", Severity: "info",
		Detail: fmt.Sprintf("A test of channel %s (%s), sent by %s.", name, ch.Kind, p.ID), Since: now, At: now}
	d, err := s.enqueue(ctx, m, name, time.Time{})
	if err != nil {
		return nil, err
	}
	a, err := s.attempt(ctx, d, nil)
	if err != nil {
		return nil, err
	}
	e := &Entry{Delivery: *d, Attempts: []Attempt{}}
	if a == nil { // another instance's tick claimed it first: it sends
		if e.Attempts, err = s.attempts(ctx, d.ID); err != nil {
			return nil, err
		}
	} else {
		e.Attempts = append(e.Attempts, *a)
		if a.State == StateSent || a.Final {
			s.done(ctx, d.ID)
		} else {
			s.later(d.ID, a.NextAt)
		}
	}
	e.State = stateOf(e.Attempts)
	s.Trail.Record(ctx, "test-channel", []string{name}, nil, e.State, map[string]any{"delivery": d.ID})
	return e, nil
}

func (s *Service) id() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.instance == "" {
		b := make([]byte, 6)
		rand.Read(b)
		s.instance = hex.EncodeToString(b)
	}
	return s.instance
}

func (s *Service) backoff(failures int) time.Duration {
	b := s.Backoff
	if len(b) == 0 {
		b = DefaultBackoff
	}
	return b[min(failures, len(b))-1]
}

// Tick sends the deliveries that are due. An instance lists the queue when its own Notify woke it,
// when a retry it knows of falls due, and otherwise every QueueEvery; so an idle hub costs one LIST per
// QueueEvery. Once an hour it also drops deliveries older than Retention.
func (s *Service) Tick(ctx context.Context) {
	now := s.now()
	every := s.QueueEvery
	if every <= 0 {
		every = DefaultQueueEvery
	}
	s.mu.Lock()
	due := s.wake || now.Sub(s.listedAt) >= every || now.Before(s.listedAt) || (!s.soonest.IsZero() && !now.Before(s.soonest))
	if due {
		s.wake, s.listedAt, s.soonest = false, now, time.Time{}
	}
	expire := now.Sub(s.expiredAt) >= expireEvery
	if expire {
		s.expiredAt = now
	}
	s.mu.Unlock()
	if due {
		if err := s.sendDue(ctx, now); err != nil {
			s.Log.Warn("send due notifications", "err", err)
		}
	}
	if expire {
		if err := s.expire(ctx, now); err != nil {
			s.Log.Warn("expire old notifications", "err", err)
		}
	}
}

func (s *Service) sendDue(ctx context.Context, now time.Time) error {
	var ids []string
	err := store.Walk(ctx, s.Store, layout.NotificationQueue, "", 0, func(o store.ObjectInfo) error {
		ids = append(ids, layout.Name(o.Key))
		return nil
	})
	if err != nil {
		return fmt.Errorf("list the notification queue: %w", err)
	}
	var g errgroup.Group
	g.SetLimit(senders)
	for _, id := range ids {
		s.mu.Lock()
		wait := s.waitUntil[id]
		s.mu.Unlock()
		if now.Before(wait) {
			s.later(id, wait)
			continue
		}
		g.Go(func() error {
			if err := s.step(ctx, id, now); err != nil {
				s.Log.Warn("a queued notification", "delivery", id, "err", err)
				s.later(id, now.Add(time.Second))
			}
			return nil
		})
	}
	return g.Wait()
}

// later remembers when this instance looks at a delivery again, and wakes the tick then.
func (s *Service) later(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waitUntil == nil {
		s.waitUntil = map[string]time.Time{}
	}
	s.waitUntil[id] = at
	if s.soonest.IsZero() || at.Before(s.soonest) {
		s.soonest = at
	}
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.waitUntil, id)
	s.mu.Unlock()
}

// step looks at one queued delivery: drops it when final, waits while it is not due or another
// instance is sending, and otherwise makes the next attempt.
func (s *Service) step(ctx context.Context, id string, now time.Time) error {
	var d Delivery
	if _, err := store.ReadJSON(ctx, s.Store, layout.NotificationQueued(id), &d); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.forget(id)
			return nil
		}
		return err
	}
	attempts, err := s.attempts(ctx, id)
	if err != nil {
		return err
	}
	if next, final := s.nextAt(&d, attempts, now); final {
		s.done(ctx, id)
		return nil
	} else if now.Before(next) {
		s.later(id, next)
		return nil
	}
	if len(attempts) == 0 {
		// The record is written by Notify; this covers a hub that stopped between the two writes.
		if _, err := store.CreateJSON(ctx, s.Store, layout.Notification(id), &d); err != nil {
			return err
		}
	}
	a, err := s.attempt(ctx, &d, attempts)
	if err != nil || a == nil {
		return err
	}
	if a.State == StateSent || a.Final {
		s.done(ctx, id)
	} else {
		s.later(id, a.NextAt)
	}
	return nil
}

// nextAt is when the next attempt of d is due, or final when there is none to make.
func (s *Service) nextAt(d *Delivery, attempts []Attempt, now time.Time) (time.Time, bool) {
	if len(attempts) == 0 {
		return d.NotBefore, false
	}
	last := attempts[len(attempts)-1]
	switch {
	case last.State == StateSent || last.Final:
		return time.Time{}, true
	case last.State == StateSending:
		return last.ClaimedAt.Add(ClaimTimeout), false // then it counts as failed
	}
	return last.NextAt, false
}

// done drops a final delivery from the queue.
func (s *Service) done(ctx context.Context, id string) {
	if err := s.Store.Delete(ctx, layout.NotificationQueued(id)); err != nil {
		s.Log.Warn("drop a finished notification from the queue; the next tick does", "delivery", id, "err", err)
		return
	}
	s.forget(id)
}

func (s *Service) attempts(ctx context.Context, id string) ([]Attempt, error) {
	var out []Attempt
	err := store.Walk(ctx, s.Store, layout.NotificationAttemptsOf(id), "", 0, func(o store.ObjectInfo) error {
		var a Attempt
		if _, err := store.ReadJSON(ctx, s.Store, o.Key, &a); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the attempts of notification %s: %w", id, err)
	}
	slices.SortFunc(out, func(a, b Attempt) int { return a.N - b.N })
	return out, nil
}

// attempt claims the next attempt of d (create-only: another instance that claimed it first makes
// it, and this returns nil), sends, and records the outcome over the claim.
func (s *Service) attempt(ctx context.Context, d *Delivery, before []Attempt) (*Attempt, error) {
	n := len(before) + 1
	claimed := s.now().UTC()
	a := &Attempt{N: n, Hub: s.id(), ClaimedAt: claimed, State: StateSending}
	created, err := store.CreateJSON(ctx, s.Store, layout.NotificationAttempt(d.ID, n), a)
	if err != nil {
		return nil, fmt.Errorf("claim attempt %d of notification %s: %w", n, d.ID, err)
	}
	if !created {
		s.later(d.ID, claimed.Add(time.Second))
		return nil, nil
	}
	kind := d.Kind
	ch, err := s.open(ctx, d.Channel)
	var r notify.Receipt
	permanent := false
	switch {
	case errors.Is(err, errGone):
		err, permanent = fmt.Errorf("channel %s does not exist (deleted, or never configured): nothing was sent", d.Channel), true
	case err != nil:
		var de *domain.Error
		permanent = errors.As(err, &de) // the secrets do not open: trying again cannot help
	case err == nil:
		kind = ch.Kind
		r, err = notify.Send(ctx, ch, d.Message)
		var ne *notify.Error
		permanent = errors.As(err, &ne) && ne.Permanent
	}
	a.At, a.Status, a.Answer = s.now().UTC(), r.Status, r.Answer
	if err == nil {
		a.State = StateSent
	} else {
		a.State, a.Error = StateFailed, err.Error()
		if ne := (*notify.Error)(nil); errors.As(err, &ne) {
			a.Status, a.Answer = ne.Status, ne.Answer
		}
		next := a.At.Add(s.backoff(n))
		if permanent || n >= MaxAttempts || next.After(d.QueuedAt.Add(MaxAge)) {
			a.Final = true
		} else {
			a.NextAt = next
		}
	}
	if err := store.PutJSON(ctx, s.Store, layout.NotificationAttempt(d.ID, n), a); err != nil {
		return nil, fmt.Errorf("record attempt %d of notification %s (%s): %w", n, d.ID, a.State, err)
	}
	if s.Counted != nil {
		s.Counted(cmpKind(kind), a.State)
	}
	log := s.Log.With("delivery", d.ID, "alert", d.Message.Alert, "kind", d.Message.Kind, "channel", d.Channel, "attempt", n)
	switch {
	case a.State == StateSent:
		log.Info("notification sent", "status", a.Status)
	case a.Final:
		log.Error("notification failed; given up", "err", a.Error)
	default:
		log.Warn("notification failed; retrying", "err", a.Error, "next", a.NextAt)
	}
	return a, nil
}

func cmpKind(k string) string {
	if k == "" {
		return "unknown"
	}
	return k
}

// stateOf is a delivery's state from its attempts.
func stateOf(attempts []Attempt) string {
	if len(attempts) == 0 {
		return StateQueued
	}
	last := attempts[len(attempts)-1]
	switch {
	case last.State == StateSending:
		return StateSending
	case last.State == StateSent:
		return StateSent
	case last.Final:
		return StateFailed
	}
	return StateRetrying
}

// Filter picks deliveries from the log; empty fields match all.
type Filter struct {
	Alert   string
	Channel string
	State   string
}

// Deliveries is the delivery log: the deliveries, newest first, with every attempt: one listing of the deliveries and
// their attempts, a read of each delivery this process has not read (they are write-once) and of each
// attempt.
func (s *Service) Deliveries(ctx context.Context, f Filter) ([]Entry, error) {
	byID := map[string]*Entry{}
	var order []string
	err := store.Walk(ctx, s.Store, layout.Notifications, "", 0, func(o store.ObjectInfo) error {
		rest := strings.TrimPrefix(o.Key, layout.Notifications)
		id, attempt, isAttempt := strings.Cut(rest, "/")
		if !isAttempt {
			id = layout.Name(o.Key)
			d, err := s.deliveries.Get(ctx, s.Store, o.Key)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if (f.Alert != "" && d.Message.Alert != f.Alert) || (f.Channel != "" && d.Channel != f.Channel) {
				return nil
			}
			byID[id] = &Entry{Delivery: *d, Attempts: []Attempt{}}
			order = append(order, id)
			return nil
		}
		e := byID[id]
		if e == nil || attempt == "" {
			return nil // a delivery filtered out, or its record not (yet) written
		}
		var a Attempt
		if _, err := store.ReadJSON(ctx, s.Store, o.Key, &a); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		e.Attempts = append(e.Attempts, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the delivery log: %w", err)
	}
	out := []Entry{}
	for _, id := range order {
		e := byID[id]
		slices.SortFunc(e.Attempts, func(a, b Attempt) int { return a.N - b.N })
		e.State = stateOf(e.Attempts)
		if f.State == "" || f.State == e.State {
			out = append(out, *e)
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return b.QueuedAt.Compare(a.QueuedAt) })
	return out, nil
}

// expire deletes the deliveries queued longer than Retention ago, with their attempts, and their
// queue entries if any are left. One listing of the deliveries an hour.
func (s *Service) expire(ctx context.Context, now time.Time) error {
	old := map[string]bool{}
	cutoff := now.Add(-Retention)
	var drop []string
	err := store.Walk(ctx, s.Store, layout.Notifications, "", 0, func(o store.ObjectInfo) error {
		rest := strings.TrimPrefix(o.Key, layout.Notifications)
		if id, _, isAttempt := strings.Cut(rest, "/"); isAttempt {
			if old[id] {
				drop = append(drop, o.Key)
			}
			return nil
		}
		if !o.LastModified.IsZero() && o.LastModified.After(cutoff) {
			return nil // young by the store's clock: no need to read it
		}
		d, err := s.deliveries.Get(ctx, s.Store, o.Key)
		if err != nil {
			return nil // planted or gone: not this sweep's business
		}
		if d.QueuedAt.Before(cutoff) {
			old[d.ID] = true
			drop = append(drop, o.Key, layout.NotificationQueued(d.ID))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := s.Store.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	if len(old) > 0 {
		s.Log.Info("expired old notifications", "deliveries", len(old))
	}
	return nil
}
