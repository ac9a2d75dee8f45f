package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/alert"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// failure is one final failure of a command on an agent, counted by a commands rule.
type failure struct {
	Command string `json:"command"`
	At      int64  `json:"at"` // ms
}

// commandsSubject is what a commands rule watches on an agent: its commands as a whole.
const commandsSubject = "commands"

// failed says whether a final status counts against a commands rule: the command failed or ran out
// of time (a cancel or a refusal by the agent's config is not the machine failing).
func failed(s wire.Status) bool { return s == wire.StatusFailed || s == wire.StatusTimedOut }

// ObserveResult evaluates the commands rules over a final result as the hub takes it: a rule's
// condition holds while at least `failures` final failures of commands on the agent fall within
// `within` of the newest result, began at the oldest of those, and fires at once. A result reported
// again is counted once (by its command). The agent's failures are kept in one object per agent
// (layout.AlertCommandTrack), written with a condition on its version, because several commands of
// one agent may report to several hubs at once.
//
// A commands alert resolves at a result that finds fewer failures within the window than the rule
// asks: an agent that runs no more commands keeps its alert until it does.
func (s *Service) ObserveResult(ctx context.Context, agent string, res wire.Result) error {
	v, rules, t, ok, err := s.rulesFor(ctx, agent, alert.KindCommands)
	if err != nil || !ok {
		return err
	}
	when := res.FinishedAt.UTC()
	if when.IsZero() {
		when = s.now().UTC()
	}
	key := layout.AlertCommandTrack(agent)
	for range 8 {
		at, etag, err := s.loadAgentTracks(ctx, key, agent)
		if err != nil {
			return err
		}
		moved := at.prune(v, alert.KindCommands)
		for _, r := range rules {
			tr := at.track(r.Name, commandsSubject)
			m, err := s.stepCommands(ctx, v, r, t.Ident.ID, t.Ident.Name, tr, res, when)
			if err != nil {
				return err
			}
			moved = moved || m
		}
		if !moved {
			return nil
		}
		b, err := json.Marshal(at)
		if err != nil {
			return fmt.Errorf("encode the commands alert tracks of %s: %w", agent, err)
		}
		opts := store.PutOptions{ContentType: "application/json", IfMatch: etag, CreateOnly: etag == ""}
		_, err = store.PutBytes(ctx, s.Store, key, b, opts)
		if errors.Is(err, store.ErrPreconditionFailed) || errors.Is(err, store.ErrExists) {
			continue // another hub took a result of this agent meanwhile: count again from its version
		}
		if err != nil {
			return fmt.Errorf("store the commands alert tracks of %s: %w", agent, err)
		}
		return nil
	}
	return fmt.Errorf("store the commands alert tracks of %s: other hubs kept changing them; the agent reports again", agent)
}

// stepCommands counts one result against one rule and steps its track; it says whether the track
// moved.
func (s *Service) stepCommands(ctx context.Context, v *Version, r *alert.Rule, agent, name string, tr *seriesTrack, res wire.Result, when time.Time) (bool, error) {
	before := len(tr.Failures)
	if failed(res.Status) && !slices.ContainsFunc(tr.Failures, func(f failure) bool { return f.Command == res.CommandID }) {
		tr.Failures = append(tr.Failures, failure{Command: res.CommandID, At: when.UnixMilli()})
		slices.SortFunc(tr.Failures, func(a, b failure) int { return int(a.At - b.At) })
	}
	newest := max(when.UnixMilli(), tr.Through)
	tr.Failures = slices.DeleteFunc(tr.Failures, func(f failure) bool { return f.At <= newest-r.Within().Milliseconds() })
	counted := len(tr.Failures) != before
	o := alert.Observation{Active: len(tr.Failures) >= r.Failures, Since: when,
		Detail: fmt.Sprintf("%d command(s) failed on %s within %s (fires at %d)", len(tr.Failures), name, r.Within(), r.Failures)}
	if o.Active {
		o.Since = time.UnixMilli(tr.Failures[len(tr.Failures)-r.Failures].At).UTC()
		if tr.Track.State == alert.StatePending || tr.Track.State == alert.StateFiring {
			o.Since = tr.Track.Since
		}
	}
	prev := tr.Track
	next, change := alert.Step(r, agent+" "+commandsSubject, &tr.Track, o, time.UnixMilli(newest).UTC())
	if change != nil {
		if err := s.record(ctx, v, r, agent, name, commandsSubject, next, change, o); err != nil {
			return false, err
		}
	}
	tr.Track, tr.Through = next, newest
	return counted || !sameTrack(prev, next), nil
}
