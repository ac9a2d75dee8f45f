package alerts

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/alert"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// ObservePlanStatus evaluates the unit rules over a plan status as the hub takes it from the agent:
// for each rule whose targets select the agent (and whose plan, when it names one, is this plan), each
// unit of the status is a subject (plan/unit) whose condition holds while its state is one of the
// rule's states (failed and drifted by default). The condition began at the unit's own change time,
// so every hub that took the status names the alert the same. A unit the status no longer lists (the
// plan dropped it) counts as clear. A status older than one already evaluated changes nothing.
//
// Unit rules fire when the status that shows the state arrives; the agent reports a plan's status as
// soon as a unit changes. An error is returned so the agent reports again (it retries a failed report
// with backoff), and nothing is recorded twice.
func (s *Service) ObservePlanStatus(ctx context.Context, agent, plan string, st wire.PlanStatus) error {
	v, rules, t, ok, err := s.rulesFor(ctx, agent, alert.KindUnit)
	if err != nil || !ok {
		return err
	}
	rules = slices.DeleteFunc(rules, func(r *alert.Rule) bool { return r.Plan != "" && r.Plan != plan })
	if len(rules) == 0 {
		return nil
	}
	key := layout.AlertUnitTrack(agent)
	at, _, err := s.loadAgentTracks(ctx, key, agent)
	if err != nil {
		return err
	}
	when := st.At.UTC()
	if when.IsZero() {
		when = s.now().UTC()
	}
	moved := false
	for _, r := range rules {
		seen := map[string]bool{}
		for _, u := range st.Units {
			subject := plan + "/" + u.Unit
			seen[subject] = true
			since := u.ChangedAt.UTC()
			if since.IsZero() || since.After(when) {
				since = when
			}
			o := alert.Observation{Active: slices.Contains(r.States, u.State), Since: since, Detail: unitDetail(plan, u)}
			m, err := s.stepUnit(ctx, v, r, t.Ident.ID, t.Ident.Name, subject, at.track(r.Name, subject), o, when)
			if err != nil {
				return err
			}
			moved = moved || m
		}
		if st.Version == 0 {
			continue // holding no version, the agent says nothing of the units it had
		}
		prefix := r.Name + " " + plan + "/"
		for k, tr := range at.Tracks {
			subject, isPlans := strings.CutPrefix(k, prefix)
			if !isPlans || seen[plan+"/"+subject] {
				continue
			}
			o := alert.Observation{Since: when, Detail: fmt.Sprintf("unit %s is no longer in plan %s", subject, plan)}
			m, err := s.stepUnit(ctx, v, r, t.Ident.ID, t.Ident.Name, plan+"/"+subject, tr, o, when)
			if err != nil {
				return err
			}
			if tr.Track.State == alert.StateOK || tr.Track.State == alert.StateResolved {
				delete(at.Tracks, k)
				m = true
			}
			moved = moved || m
		}
	}
	if at.prune(v, alert.KindUnit) {
		moved = true
	}
	if !moved {
		return nil
	}
	if err := store.PutJSON(ctx, s.Store, key, at); err != nil {
		return fmt.Errorf("store the unit alert tracks of %s: %w", agent, err)
	}
	return nil
}

// stepUnit steps one unit's track with the status taken at when, recording a transition; it says
// whether the track moved.
func (s *Service) stepUnit(ctx context.Context, v *Version, r *alert.Rule, agent, name, subject string, tr *seriesTrack, o alert.Observation, when time.Time) (bool, error) {
	if when.UnixMilli() <= tr.Through {
		return false, nil // a status older than one evaluated already
	}
	before := tr.Track
	next, change := alert.Step(r, agent+" "+subject, &tr.Track, o, when)
	if change != nil {
		if err := s.record(ctx, v, r, agent, name, subject, next, change, o); err != nil {
			return false, err
		}
	}
	tr.Track, tr.Through = next, when.UnixMilli()
	return !sameTrack(before, next), nil
}

// unitDetail says a unit's state in a person's words.
func unitDetail(plan string, u wire.UnitStatus) string {
	d := fmt.Sprintf("unit %s (%s) of plan %s is %s", u.Unit, u.Type, plan, u.State)
	if u.Reason != "" {
		d += ": " + u.Reason
	}
	return d
}
