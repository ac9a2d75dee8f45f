// Package alerts is the room of alerts: the rule set operators apply (functions/alert reads it and
// decides), evaluated from the tick on every hub instance, and the alerts it fires and resolves. Every
// instance evaluates the same data and names an alert by it (alert.ID), and an alert's events are
// written create-only, so an alert fires once however many hubs run. A newcomer reads Apply (the
// rules), Tick (evaluate and record) and List (what fired), in that order.
//
// Offline rules are evaluated from the tick; metric rules over each batch as the hub takes it
// (ObserveBatch, metric.go), by the samples' own times; unit rules over each plan status as the hub
// takes it (ObservePlanStatus, unit.go); commands rules over each final result (ObserveResult,
// commands.go). Rules of the other kinds are refused when
// applied, at their kind, rather than stored and never evaluated. An alert's event is stored, then its
// notifications queued (Notifier), then its track moved: a failure at any step leaves the track, and
// the next evaluation does it again, which records and queues nothing twice.
package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/functions/alert"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/yamlsrc"
)

// Fleet is what alerts need of the fleet room: the agents, their heartbeats, when one counts offline.
type Fleet interface {
	Identities(ctx context.Context, withRetired bool) ([]fleet.Target, error)
	WithCatalogs(ctx context.Context, ts []fleet.Target) error
	OfflineAfter() time.Duration
}

// Notifier queues the notifications of alerts (the notifications room). An alert's event is stored
// before it is queued, and queueing is idempotent, so a hub that fails between the two queues it at the
// next evaluation and no notification is lost or sent twice.
type Notifier interface {
	// Notify queues m for each named channel (nil: the channels configured as defaults), to be sent at
	// or after notBefore (the end of quiet hours). It is idempotent per (m.Alert, m.Kind, channel):
	// a second call, from this hub or another, queues nothing more.
	Notify(ctx context.Context, m notify.Message, channels []string, notBefore time.Time) error
	// Channels lists the configured channels' names, so a rule naming one that does not exist is
	// refused when applied rather than silently notifying no one.
	Channels(ctx context.Context) ([]string, error)
}

// Service keeps the alert rules and the alerts.
type Service struct {
	Store store.Store
	Log   *slog.Logger
	Trail *trail.Recorder
	Fleet Fleet
	// Notifier queues the alerts' notifications (nil: alerts are recorded and logged only).
	Notifier Notifier
	// Every is how often this instance evaluates (0: DefaultEvery).
	Every time.Duration
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time

	versions store.Once[Version]
	events   store.Once[Event]
	acks     store.Once[Ack]

	mu   sync.Mutex
	last time.Time
	// rules is the newest rule set as this instance last listed it (nil: none), at rulesAt: the tick
	// lists the versions every RulesRefresh, not at every evaluation.
	rules   *Version
	rulesAt time.Time
	tracks  map[string]map[string]*alert.Track // rule → subject → track
	loaded  map[string]bool                    // rules whose stored tracks this instance read
	written map[string]alert.Track             // key → the track this instance last wrote
}

// DefaultEvery is how often each instance evaluates the rules.
const DefaultEvery = 5 * time.Second

// RulesRefresh is how often an instance lists the rule versions to see another hub's apply (its own
// applies it sees at once): a hub with no rules costs one LIST per RulesRefresh.
const RulesRefresh = 30 * time.Second

// Version is one stored version of the rule set.
type Version struct {
	Version   int          `json:"version"`
	Source    string       `json:"source" doc:"The YAML or JSON as applied."`
	Rules     *alert.Rules `json:"rules"`
	AppliedBy string       `json:"appliedBy"`
	AppliedAt time.Time    `json:"appliedAt"`
}

// Event is one event of an alert, stored once.
type Event struct {
	Alert    string    `json:"alert"`
	Kind     string    `json:"kind" enum:"fired,resolved"`
	Rule     string    `json:"rule"`
	RuleKind string    `json:"ruleKind"`
	Severity string    `json:"severity"`
	Agent    string    `json:"agent"`
	Name     string    `json:"name" doc:"The agent's name."`
	Subject  string    `json:"subject"`
	Since    time.Time `json:"since" doc:"When the condition began, by the data."`
	At       time.Time `json:"at"`
	Detail   string    `json:"detail"`
	// Value is the value that crossed (metric rules).
	Value  *float64 `json:"value,omitempty"`
	Notify bool     `json:"notify" doc:"False while the alert flaps, or for a resolution its rule does not notify."`
	// Silenced says why the event notifies no one.
	Silenced string `json:"silenced,omitempty"`
}

// Alert is an alert as operators see it: its firing and, once it cleared, its resolution.
type Alert struct {
	ID         string    `json:"id"`
	State      string    `json:"state" enum:"firing,resolved"`
	Rule       string    `json:"rule"`
	Severity   string    `json:"severity"`
	Agent      string    `json:"agent"`
	Name       string    `json:"name"`
	Since      time.Time `json:"since"`
	FiredAt    time.Time `json:"firedAt"`
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	Detail     string    `json:"detail"`
	// Subject is what the rule watched on the agent: the agent itself, or one of its series.
	Subject string `json:"subject"`
	// Value is the value that crossed (metric rules).
	Value *float64 `json:"value,omitempty"`
	// Silenced says why the firing notified no one (flapping, snoozed).
	Silenced string `json:"silenced,omitempty"`
	// Ack is who acknowledged the alert first.
	Ack *Ack `json:"ack,omitempty"`
}

// evaluated are the rule kinds this hub evaluates.
var evaluated = []string{alert.KindOffline, alert.KindMetric, alert.KindUnit, alert.KindCommands}

// Apply parses and stores a new version of the rule set, create-only (two hubs applying at once
// collide and the loser takes the next number). A source identical to the newest version's writes
// nothing. A refusal says why at the place in the source, and stores nothing.
func (s *Service) Apply(ctx context.Context, source string) (*Version, bool, error) {
	rs, err := alert.Parse([]byte(source))
	if err != nil {
		return nil, false, domain.Refused("alert rules", err)
	}
	if err := notEvaluated(rs); err != nil {
		return nil, false, domain.Refused("alert rules", err)
	}
	if err := s.unknownChannels(ctx, rs); err != nil {
		return nil, false, err
	}
	prev, err := s.latest(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, false, err
	}
	if prev != nil && prev.Source == source {
		return prev, true, nil
	}
	next := 1
	if prev != nil {
		next = prev.Version + 1
	}
	p := domain.PrincipalFrom(ctx)
	for range 5 {
		v := &Version{Version: next, Source: source, Rules: rs, AppliedBy: p.ID, AppliedAt: s.now().UTC()}
		created, err := store.CreateJSON(ctx, s.Store, layout.AlertRulesVersion(next), v)
		if err != nil {
			return nil, false, fmt.Errorf("store alert rules version %d: %w", next, err)
		}
		if created {
			s.versions.Put(layout.AlertRulesVersion(next), v)
			s.mu.Lock()
			s.rules, s.rulesAt = v, s.now()
			s.mu.Unlock()
			s.Log.Info("alert rules applied", "version", next, "rules", len(rs.Rules), "by", p.ID)
			s.Trail.Record(ctx, "apply-alert-rules", nil, nil, "ok", map[string]any{"version": next, "rules": len(rs.Rules)})
			return v, false, nil
		}
		next++
	}
	return nil, false, domain.Conflict("other hubs kept writing alert rules at the same time; try again")
}

// notEvaluated refuses, at their kind, rules this hub would store and never evaluate.
func notEvaluated(rs *alert.Rules) error {
	var ps yamlsrc.Problems
	for i, r := range rs.Rules {
		if !slices.Contains(evaluated, r.Kind) {
			path := yamlsrc.Index("rules", i) + ".kind"
			line, col := rs.At(path)
			ps.Add(line, col, path, "kind %s: this hub does not evaluate %s rules yet (it evaluates: %s), so the rule would never fire",
				r.Kind, r.Kind, strings.Join(evaluated, ", "))
		}
		if r.Kind == alert.KindUnit && r.ForSeconds > 0 {
			path := yamlsrc.Index("rules", i) + ".for"
			line, col := rs.At(path)
			ps.Add(line, col, path, "a unit rule fires when the agent reports the unit's state; this hub does not evaluate a duration for unit rules yet, so leave out for")
		}
	}
	return ps.Err("alert rules")
}

// unknownChannels refuses, at their place, channels a rule names that are not configured: the rule
// would fire and notify no one.
func (s *Service) unknownChannels(ctx context.Context, rs *alert.Rules) error {
	if s.Notifier == nil {
		return nil
	}
	names, err := s.Notifier.Channels(ctx)
	if err != nil {
		return fmt.Errorf("list the notification channels: %w", err)
	}
	var ps yamlsrc.Problems
	for i, r := range rs.Rules {
		for j, c := range r.Channels {
			if slices.Contains(names, c) {
				continue
			}
			path := yamlsrc.Index(yamlsrc.Index("rules", i)+".channels", j)
			line, col := rs.At(path)
			if line == 0 {
				line, col = rs.At(yamlsrc.Index("rules", i) + ".channels")
			}
			known := "none is configured yet (pulse channels)"
			if len(names) > 0 {
				known = "configured: " + strings.Join(names, ", ")
			}
			ps.Add(line, col, path, "channel %q does not exist (%s), so the rule would notify no one", c, known)
		}
	}
	if err := ps.Err("alert rules"); err != nil {
		return domain.Refused("alert rules", err)
	}
	return nil
}

// Rules returns the newest version of the rule set.
func (s *Service) Rules(ctx context.Context) (*Version, error) {
	v, err := s.latest(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.NotFound("no alert rules yet (pulse alert-rules apply -f FILE)")
	}
	return v, err
}

func (s *Service) latest(ctx context.Context) (*Version, error) {
	return s.versions.Latest(ctx, s.Store, layout.AlertRules)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) every() time.Duration {
	if s.Every > 0 {
		return s.Every
	}
	return DefaultEvery
}

// Tick evaluates the newest rule set once every Every on this instance: for each rule and each agent
// its targets select, it observes the condition, steps the track (alert.Step), writes the track when it
// changed, and records the alert's events create-only.
func (s *Service) Tick(ctx context.Context) {
	now := s.now()
	s.mu.Lock()
	due := now.Sub(s.last) >= s.every() || now.Before(s.last) // a clock set back must not stop it
	if due {
		s.last = now
	}
	s.mu.Unlock()
	if !due {
		return
	}
	if err := s.evaluate(ctx, now); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.Log.Warn("evaluate alert rules", "err", err)
	}
}

// inForce is the newest rule set, listed at most every RulesRefresh (nil when there is none).
func (s *Service) inForce(ctx context.Context, now time.Time) (*Version, error) {
	s.mu.Lock()
	v, at := s.rules, s.rulesAt
	s.mu.Unlock()
	if !at.IsZero() && now.Sub(at) < RulesRefresh && !now.Before(at) {
		return v, nil
	}
	v, err := s.latest(ctx)
	if errors.Is(err, store.ErrNotFound) {
		v, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.rules, s.rulesAt = v, now
	s.mu.Unlock()
	return v, nil
}

func (s *Service) evaluate(ctx context.Context, now time.Time) error {
	v, err := s.inForce(ctx, now)
	if err != nil || v == nil {
		return err
	}
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return err
	}
	if err := s.Fleet.WithCatalogs(ctx, all); err != nil {
		return err
	}
	for i := range v.Rules.Rules {
		r := &v.Rules.Rules[i]
		if r.Kind != alert.KindOffline {
			continue
		}
		if err := s.loadTracks(ctx, r.Name); err != nil {
			return err
		}
		// Steps that change nothing cost no request; a fleet going offline at once writes a track and
		// an alert per agent, which go out side by side, not one after another.
		var g errgroup.Group
		g.SetLimit(stepWriters)
		for _, t := range all {
			if !fleet.Matches(t, r.Targets) {
				continue
			}
			g.Go(func() error {
				s.step(ctx, v, r, t, offline(t, s.Fleet.OfflineAfter(), now), now)
				return nil
			})
		}
		g.Wait()
	}
	return nil
}

// stepWriters bounds the store writes one evaluation has in flight.
const stepWriters = 32

// offline observes whether an agent is offline: its last heartbeat (its enrollment, before any) is
// older than the fleet's offline threshold. The condition began at that heartbeat plus the threshold.
func offline(t fleet.Target, after time.Duration, now time.Time) alert.Observation {
	seen := t.Ident.EnrolledAt
	if t.HB != nil {
		seen = t.HB.ReceivedAt
	}
	since := seen.Add(after)
	return alert.Observation{Active: !now.Before(since), Since: since,
		Detail: fmt.Sprintf("no heartbeat since %s", seen.UTC().Format(time.RFC3339))}
}

// step moves one track and records a transition: the alert's event first (create-only), then its
// notifications, then the track, so a track never says firing for an alert that was not recorded and
// notified. When either cannot be stored the track stays as it was, and the next evaluation decides
// again (the same alert, by the same id: recording and queueing are idempotent).
func (s *Service) step(ctx context.Context, v *Version, r *alert.Rule, t fleet.Target, o alert.Observation, now time.Time) {
	subject := t.Ident.ID
	s.mu.Lock()
	prev := s.tracks[r.Name][subject]
	s.mu.Unlock()
	next, change := alert.Step(r, subject, prev, o, now)
	if change != nil {
		if err := s.record(ctx, v, r, t.Ident.ID, t.Ident.Name, subject, next, change, o); err != nil {
			s.Log.Error("record an alert; the next evaluation records it", "alert", change.AlertID, "kind", change.Kind, "err", err)
			return
		}
	}
	s.keepTrack(ctx, r.Name, subject, next)
}

// record stores a transition's event create-only and queues its notifications. An event already
// stored (by another hub, or by this one before a failure) is queued again, which queues nothing new.
func (s *Service) record(ctx context.Context, v *Version, r *alert.Rule, agent, name, subject string, next alert.Track, change *alert.Transition, o alert.Observation) error {
	e := Event{Alert: change.AlertID, Kind: change.Kind, Rule: r.Name, RuleKind: r.Kind, Severity: r.Severity, Agent: agent, Name: name,
		Subject: subject, Since: next.Since, At: change.At.UTC(), Detail: o.Detail, Notify: change.Notify}
	if r.Kind == alert.KindMetric {
		val := o.Value
		e.Value = &val
	}
	if !change.Notify {
		e.Silenced = silenced(r, next, change)
	} else if why, err := s.snoozed(ctx, r.Name, agent, subject, e.At); err != nil {
		return err
	} else if why != "" {
		e.Notify, e.Silenced = false, why
	}
	key := layout.AlertEvent(change.AlertID, change.Kind)
	created, err := store.CreateJSON(ctx, s.Store, key, e)
	if err != nil {
		return fmt.Errorf("store alert %s %s: %w", change.AlertID, change.Kind, err)
	}
	if created {
		s.events.Put(key, &e)
		s.Log.Warn("alert "+change.Kind, "alert", change.AlertID, "rule", r.Name, "agent", name, "subject", subject, "severity", r.Severity, "detail", o.Detail, "silenced", e.Silenced)
	} else {
		// Recorded before (by another hub, or by this one before a failure): the stored event is
		// what happened, and what is notified.
		held, err := s.events.Get(ctx, s.Store, key)
		if err != nil {
			return fmt.Errorf("read alert %s %s, stored before: %w", change.AlertID, change.Kind, err)
		}
		e = *held
	}
	if !e.Notify || s.Notifier == nil {
		return nil
	}
	m := notify.Message{Alert: e.Alert, Kind: e.Kind, Rule: e.Rule, RuleKind: e.RuleKind, Severity: e.Severity, Agent: e.Agent, Name: e.Name,
		Subject: e.Subject, Value: e.Value, Detail: e.Detail, Since: e.Since, At: e.At}
	var notBefore time.Time // at once
	if v.Rules.Quiet.Holds(e.At) {
		notBefore = v.Rules.Quiet.Ends(e.At)
	}
	if err := s.Notifier.Notify(ctx, m, r.Channels, notBefore); err != nil {
		return fmt.Errorf("queue the notifications of alert %s %s: %w", e.Alert, e.Kind, err)
	}
	return nil
}

// silenced says why a transition notifies no one.
func silenced(r *alert.Rule, t alert.Track, change *alert.Transition) string {
	switch {
	case t.Flapping:
		return fmt.Sprintf("flapping: fired more than %d times within %s", alert.FlapLimit, alert.FlapWindow)
	case change.Kind == alert.Resolved && !r.NotifyResolved:
		return "the rule does not notify resolutions (notifyResolved: false)"
	}
	return ""
}

// keepTrack keeps a track in memory and, when it changed, in the store, so a restarted hub goes on
// from it (an agent that went offline while no hub ran is not "already so at first sight").
func (s *Service) keepTrack(ctx context.Context, rule, subject string, tr alert.Track) {
	s.mu.Lock()
	if s.tracks[rule] == nil {
		s.tracks[rule] = map[string]*alert.Track{}
	}
	s.tracks[rule][subject] = &tr
	key := layout.AlertTrack(rule, trackName(subject))
	same := s.written != nil && sameTrack(s.written[key], tr)
	s.mu.Unlock()
	if same {
		return
	}
	if err := store.PutJSON(ctx, s.Store, key, storedTrack{Subject: subject, Track: tr}); err != nil {
		s.Log.Warn("store an alert track; it is kept in memory", "rule", rule, "subject", subject, "err", err)
		return
	}
	s.mu.Lock()
	if s.written == nil {
		s.written = map[string]alert.Track{}
	}
	s.written[key] = tr
	s.mu.Unlock()
}

func sameTrack(a, b alert.Track) bool {
	return a.State == b.State && a.Since.Equal(b.Since) && a.AlertID == b.AlertID && a.Flapping == b.Flapping
}

type storedTrack struct {
	Subject string      `json:"subject"`
	Track   alert.Track `json:"track"`
}

// trackName is a key-safe name for a subject.
func trackName(subject string) string {
	if layout.ValidID(subject) {
		return subject
	}
	sum := sha256.Sum256([]byte(subject))
	return hex.EncodeToString(sum[:12])
}

// loadTracks reads a rule's stored tracks once per process.
func (s *Service) loadTracks(ctx context.Context, rule string) error {
	s.mu.Lock()
	if s.tracks == nil {
		s.tracks, s.loaded = map[string]map[string]*alert.Track{}, map[string]bool{}
	}
	done := s.loaded[rule]
	s.mu.Unlock()
	if done {
		return nil
	}
	found := map[string]*alert.Track{}
	written := map[string]alert.Track{}
	err := store.Walk(ctx, s.Store, layout.AlertTracksOf(rule), "", 0, func(o store.ObjectInfo) error {
		var st storedTrack
		if _, err := store.ReadJSON(ctx, s.Store, o.Key, &st); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil // planted, or gone
			}
			return err
		}
		found[st.Subject], written[o.Key] = &st.Track, st.Track
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the tracks of alert rule %s: %w", rule, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracks[rule] == nil {
		s.tracks[rule] = map[string]*alert.Track{}
	}
	for k, v := range found {
		if _, ok := s.tracks[rule][k]; !ok {
			s.tracks[rule][k] = v
		}
	}
	if s.written == nil {
		s.written = map[string]alert.Track{}
	}
	for k, v := range written {
		s.written[k] = v
	}
	s.loaded[rule] = true
	return nil
}

// List returns the alerts, newest first: firing ones (state firing) or all. One listing of the
// alerts and a read of each event this process has not read (they are write-once).
func (s *Service) List(ctx context.Context, state string) ([]Alert, error) {
	byID := map[string]*Alert{}
	acks := map[string]*Ack{}
	err := store.Walk(ctx, s.Store, layout.Alerts, "", 0, func(o store.ObjectInfo) error {
		if strings.HasSuffix(o.Key, "/ack.json") {
			a, err := s.acks.Get(ctx, s.Store, o.Key)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			acks[a.Alert] = a
			return nil
		}
		e, err := s.events.Get(ctx, s.Store, o.Key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		a := byID[e.Alert]
		if a == nil {
			a = &Alert{ID: e.Alert, Rule: e.Rule, Severity: e.Severity, Agent: e.Agent, Name: e.Name, Since: e.Since, Subject: e.Subject}
			byID[e.Alert] = a
		}
		switch e.Kind {
		case alert.Fired:
			a.FiredAt, a.Detail, a.Value, a.Silenced = e.At, e.Detail, e.Value, e.Silenced
		case alert.Resolved:
			a.ResolvedAt = e.At
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out := []Alert{}
	for _, a := range byID {
		if a.FiredAt.IsZero() {
			continue // a resolution whose firing is not readable (planted, or being written)
		}
		a.Ack = acks[a.ID]
		a.State = alert.StateFiring
		if !a.ResolvedAt.IsZero() {
			a.State = alert.StateResolved
		}
		if state == "" || state == a.State {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b Alert) int { return b.FiredAt.Compare(a.FiredAt) })
	return out, nil
}
