package alerts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pulsehq/pulse/functions/alert"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// Ack is a person saying they are on an alert: written once, so the first to acknowledge is the one
// named, and every hub shows the same.
type Ack struct {
	Alert string    `json:"alert"`
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	Note  string    `json:"note,omitempty"`
}

// Snooze holds a rule's notifications on one subject (an agent, one of its series) until a time: the
// alert's states still change and are recorded, and say they were snoozed, but no channel hears of
// them. It is per rule and subject rather than per alert, so the next firing of the same problem
// during the snooze stays quiet too.
type Snooze struct {
	Rule    string    `json:"rule"`
	Agent   string    `json:"agent"`
	Subject string    `json:"subject"`
	Until   time.Time `json:"until"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Note    string    `json:"note,omitempty"`
	// Alert is the alert it was set from.
	Alert string `json:"alert"`
}

// MaxSnooze bounds a snooze: a problem silenced for longer should have its rule changed.
const MaxSnooze = 30 * 24 * time.Hour

// fired reads an alert's firing, NotFound when there is none.
func (s *Service) fired(ctx context.Context, id string) (*Event, error) {
	if !layout.ValidID(id) {
		return nil, domain.NotFound("no alert %q (see pulse alerts)", id)
	}
	e, err := s.events.Get(ctx, s.Store, layout.AlertEvent(id, alert.Fired))
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.NotFound("no alert %q (see pulse alerts)", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read alert %s: %w", id, err)
	}
	return e, nil
}

// Acknowledge records that the caller is on the alert. The first acknowledgement stands: a second one
// is answered with it, and changes nothing.
func (s *Service) Acknowledge(ctx context.Context, id, note string) (*Ack, bool, error) {
	if _, err := s.fired(ctx, id); err != nil {
		return nil, false, err
	}
	p := domain.PrincipalFrom(ctx)
	a := &Ack{Alert: id, By: p.ID, At: s.now().UTC(), Note: note}
	key := layout.AlertAck(id)
	created, err := store.CreateJSON(ctx, s.Store, key, a)
	if err != nil {
		return nil, false, fmt.Errorf("store the acknowledgement of alert %s: %w", id, err)
	}
	if !created {
		held, err := s.acks.Get(ctx, s.Store, key)
		if err != nil {
			return nil, false, fmt.Errorf("read the acknowledgement of alert %s: %w", id, err)
		}
		return held, false, nil
	}
	s.acks.Put(key, a)
	s.Trail.Record(ctx, "ack-alert", []string{a.Alert}, nil, "ok", map[string]any{"alert": id, "note": note})
	return a, true, nil
}

// SetSnooze holds the notifications of the alert's rule on its subject for d from now (d 0 lifts a
// snooze). It returns the snooze as it stands.
func (s *Service) SetSnooze(ctx context.Context, id string, d time.Duration, note string) (*Snooze, error) {
	if d < 0 || d > MaxSnooze {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body.for", Msg: fmt.Sprintf("snooze for %s: between 0 (lift it) and %s", d, MaxSnooze)}
	}
	e, err := s.fired(ctx, id)
	if err != nil {
		return nil, err
	}
	p := domain.PrincipalFrom(ctx)
	now := s.now().UTC()
	sn := &Snooze{Rule: e.Rule, Agent: e.Agent, Subject: e.Subject, Until: now.Add(d), By: p.ID, At: now, Note: note, Alert: id}
	if err := store.PutJSON(ctx, s.Store, layout.AlertSnooze(e.Rule, snoozeName(e.Agent, e.Subject)), sn); err != nil {
		return nil, fmt.Errorf("store the snooze of alert %s: %w", id, err)
	}
	s.Trail.Record(ctx, "snooze-alert", []string{e.Agent}, nil, "ok", map[string]any{"alert": id, "rule": e.Rule, "subject": e.Subject, "until": sn.Until, "note": note})
	return sn, nil
}

// snoozed says whether the rule's notifications on the subject are held at t, and by whom. One GET,
// made only at a transition that would notify.
func (s *Service) snoozed(ctx context.Context, rule, agent, subject string, t time.Time) (string, error) {
	var sn Snooze
	_, err := store.ReadJSON(ctx, s.Store, layout.AlertSnooze(rule, snoozeName(agent, subject)), &sn)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the snooze of %s on %s: %w", rule, subject, err)
	}
	if !t.Before(sn.Until) {
		return "", nil
	}
	return fmt.Sprintf("snoozed by %s until %s", sn.By, sn.Until.Format(time.RFC3339)), nil
}

// snoozeName is the key-safe name of a subject on an agent.
func snoozeName(agent, subject string) string {
	if subject == agent {
		return trackName(agent)
	}
	return trackName(agent + " " + subject)
}
