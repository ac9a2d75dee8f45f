// Package notifications is the room of notification channels and of the deliveries to them. Channels
// are stored one object each, their secrets sealed (notify.Seal) so the bucket never holds them in
// clear. The alerts room queues a notification through Notify: one delivery per channel, create-only at
// a key made from the alert, the message kind and the channel, so queueing is idempotent across calls
// and hub instances. Every instance's Tick sends the due deliveries; each attempt is claimed create-only
// before it is made, so one instance makes it; failures are retried with backoff, and every attempt's
// outcome is kept as the delivery log. A newcomer reads Put (a channel), Notify (the queue), Tick and
// attempt (the sending), Deliveries (the log), in that order.
package notifications

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/store"
)

// Service keeps the channels, the delivery queue and the delivery log.
type Service struct {
	Store store.Store
	Log   *slog.Logger
	Trail *trail.Recorder
	// Keys seal and open the channels' secrets.
	Keys *hubkey.Keys
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time
	// QueueEvery is how often an idle instance lists the queue (0: DefaultQueueEvery).
	QueueEvery time.Duration
	// Backoff are the waits after each failed attempt (nil: DefaultBackoff); the last repeats.
	Backoff []time.Duration
	// Counted, when set, is told each attempt's channel kind and outcome (sent, failed) for telemetry.
	Counted func(kind, outcome string)

	deliveries store.Once[Delivery]

	mu        sync.Mutex
	instance  string
	listedAt  time.Time
	wake      bool
	soonest   time.Time
	waitUntil map[string]time.Time // delivery → when this instance looks at it again
	expiredAt time.Time
}

// Stored is a channel as it sits in the bucket: the channel without its secrets, and the secrets sealed.
type Stored struct {
	notify.Channel
	Sealed    *notify.Sealed `json:"sealed,omitempty"`
	UpdatedBy string         `json:"updatedBy"`
	UpdatedAt time.Time      `json:"updatedAt"`
}

// View is a channel as operators see it: its secrets masked (a webhook URL shows only its host).
type View struct {
	notify.Channel
	UpdatedBy string    `json:"updatedBy"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Put parses a channel's source (YAML or JSON, refused with line:column) and stores it under name,
// its secrets sealed; it replaces the channel of that name.
func (s *Service) Put(ctx context.Context, name, source string) (*View, error) {
	if !notify.ValidName(name) {
		return nil, domain.Invalid("channel name %q: lower-case letters, digits, - and _, at most 63 characters", name)
	}
	ch, err := notify.ParseChannel(name, []byte(source))
	if err != nil {
		return nil, domain.Refused("channel "+name, err)
	}
	_, sealed, err := notify.Seal(s.Keys, *ch)
	if err != nil {
		return nil, fmt.Errorf("seal the secrets of channel %s: %w", name, err)
	}
	// Stored masked: reading and listing channels never opens a secret, and a channel whose secrets
	// no longer open (its key rotated out) is still shown and deleted; sending opens them over the masks.
	p := domain.PrincipalFrom(ctx)
	st := Stored{Channel: ch.Redacted(), Sealed: sealed, UpdatedBy: p.ID, UpdatedAt: s.now().UTC()}
	if err := store.PutJSON(ctx, s.Store, layout.Channel(name), st); err != nil {
		return nil, fmt.Errorf("store channel %s: %w", name, err)
	}
	s.Log.Info("channel set", "channel", name, "kind", ch.Kind, "default", ch.Default, "by", p.ID)
	s.Trail.Record(ctx, "set-channel", []string{name}, nil, "ok", map[string]any{"kind": ch.Kind, "default": ch.Default})
	return &View{Channel: ch.Redacted(), UpdatedBy: st.UpdatedBy, UpdatedAt: st.UpdatedAt}, nil
}

// Get returns one channel, its secrets masked.
func (s *Service) Get(ctx context.Context, name string) (*View, error) {
	st, err := s.stored(ctx, name)
	if err != nil {
		return nil, err
	}
	return &View{Channel: st.Channel, UpdatedBy: st.UpdatedBy, UpdatedAt: st.UpdatedAt}, nil
}

// List returns every channel by name, secrets masked.
func (s *Service) List(ctx context.Context) ([]View, error) {
	names, err := s.Channels(ctx)
	if err != nil {
		return nil, err
	}
	out := []View{}
	for _, name := range names {
		v, err := s.Get(ctx, name)
		if errors.Is(err, errGone) {
			continue // deleted while listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

// Channels lists the configured channels' names (alerts.Notifier): a rule naming another is refused.
func (s *Service) Channels(ctx context.Context) ([]string, error) {
	var names []string
	err := store.Walk(ctx, s.Store, layout.Channels, "", 0, func(o store.ObjectInfo) error {
		names = append(names, layout.Name(o.Key))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// Delete removes a channel. Deliveries queued for it fail with that reason when they are due.
func (s *Service) Delete(ctx context.Context, name string) error {
	if _, err := s.stored(ctx, name); err != nil {
		return err
	}
	if err := s.Store.Delete(ctx, layout.Channel(name)); err != nil {
		return fmt.Errorf("delete channel %s: %w", name, err)
	}
	s.Log.Info("channel deleted", "channel", name, "by", domain.PrincipalFrom(ctx).ID)
	s.Trail.Record(ctx, "delete-channel", []string{name}, nil, "ok", nil)
	return nil
}

// errGone marks a channel that does not exist; it is a domain not-found.
var errGone = errors.New("no such channel")

// stored reads a channel as stored: its secrets masked and sealed.
func (s *Service) stored(ctx context.Context, name string) (*Stored, error) {
	if !notify.ValidName(name) {
		return nil, &domain.Error{Kind: domain.KindNotFound, Msg: fmt.Sprintf("no channel %q", name), Err: errGone}
	}
	var st Stored
	if _, err := store.ReadJSON(ctx, s.Store, layout.Channel(name), &st); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &domain.Error{Kind: domain.KindNotFound, Msg: fmt.Sprintf("no channel %q (pulse channels lists them)", name), Err: errGone}
		}
		return nil, fmt.Errorf("read channel %s: %w", name, err)
	}
	return &st, nil
}

// open reads a channel with its secrets in clear, for sending.
func (s *Service) open(ctx context.Context, name string) (*notify.Channel, error) {
	st, err := s.stored(ctx, name)
	if err != nil {
		return nil, err
	}
	ch, err := notify.Open(s.Keys, st.Channel, st.Sealed)
	if err != nil {
		return nil, domain.Internal("%v", err)
	}
	return &ch, nil
}
