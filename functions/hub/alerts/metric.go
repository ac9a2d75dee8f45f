package alerts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/alert"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// agentTracks is where every rule of one kind that an agent's reports drive (metric rules over its
// batches, unit rules over its plan statuses) stands on each of its subjects, stored in one object
// per agent and kind (layout.AlertSeriesTrack, layout.AlertUnitTrack), so a report costs one read and,
// only when a track moved, one write, however many rules and subjects. One object per kind, because
// a batch and a plan status of one agent may be taken by two hubs at once.
type agentTracks struct {
	Agent string `json:"agent"`
	// Tracks are by rule and subject ("disk_full node_filesystem_avail_ratio{mountpoint=\"/\"}").
	Tracks map[string]*seriesTrack `json:"tracks"`
}

type seriesTrack struct {
	Track alert.Track `json:"track"`
	// Through is the time (ms) of the last sample or report evaluated, so a batch uploaded again
	// (after its answer was lost), or a report that arrives late, moves nothing twice.
	Through int64 `json:"through"`
	// Failures are a commands rule's final failures within its window.
	Failures []failure `json:"failures,omitempty"`
}

// loadAgentTracks reads an agent's tracks of one kind (none yet: empty), with the version read (""
// when there was none), for a write conditional on it.
func (s *Service) loadAgentTracks(ctx context.Context, key, agent string) (*agentTracks, string, error) {
	var st agentTracks
	info, err := store.ReadJSON(ctx, s.Store, key, &st)
	switch {
	case errors.Is(err, store.ErrNotFound):
		info = store.ObjectInfo{}
	case err != nil:
		return nil, "", fmt.Errorf("read the alert tracks of %s: %w", agent, err)
	}
	if st.Tracks == nil {
		st.Tracks = map[string]*seriesTrack{}
	}
	st.Agent = agent
	return &st, info.ETag, nil
}

// track is the subject's track under rule; new ones start ok, not baseline: a subject first seen
// already past its trigger (a full disk, a failed unit when the rule is applied) is a problem to
// report.
func (st *agentTracks) track(rule, subject string) *seriesTrack {
	k := rule + " " + subject
	tr := st.Tracks[k]
	if tr == nil {
		tr = &seriesTrack{Track: alert.Track{State: alert.StateOK}}
		st.Tracks[k] = tr
	}
	return tr
}

// prune drops the tracks of rules of kind no longer in force; it says whether it dropped any.
func (st *agentTracks) prune(v *Version, kind string) bool {
	dropped := false
	for k := range st.Tracks {
		rule, _, _ := strings.Cut(k, " ")
		if !slices.ContainsFunc(v.Rules.Rules, func(r alert.Rule) bool { return r.Kind == kind && r.Name == rule }) {
			delete(st.Tracks, k)
			dropped = true
		}
	}
	return dropped
}

// rulesFor are the rules of kind in force whose targets select agent, and the agent (ok false: the
// agent is not in the fleet, or no rule applies).
func (s *Service) rulesFor(ctx context.Context, agent, kind string) (*Version, []*alert.Rule, fleet.Target, bool, error) {
	v, err := s.inForce(ctx, s.now())
	if err != nil || v == nil {
		return nil, nil, fleet.Target{}, false, err
	}
	var rules []*alert.Rule
	for i := range v.Rules.Rules {
		if v.Rules.Rules[i].Kind == kind {
			rules = append(rules, &v.Rules.Rules[i])
		}
	}
	if len(rules) == 0 {
		return nil, nil, fleet.Target{}, false, nil
	}
	t, ok, err := s.target(ctx, agent)
	if err != nil || !ok {
		return nil, nil, fleet.Target{}, false, err
	}
	rules = slices.DeleteFunc(rules, func(r *alert.Rule) bool { return !fleet.Matches(t, r.Targets) })
	return v, rules, t, len(rules) > 0, nil
}

// ObserveBatch evaluates the metric rules over one agent's batch as the hub takes it: for each rule
// whose targets select the agent and each of the batch's series the rule names (with every label it
// gives), it steps the series' track through the samples in time order, by the samples' own times. So
// `for: 5m` means five minutes of samples past the trigger, the alert fires at the sample that makes
// five minutes, and every hub that took the batch would decide the same, with the same alert id.
//
// A metric alert is decided when the batch that shows it arrives: up to the agent's upload interval
// (5 minutes by default) after the sample. An error (the store could not record an alert or queue its
// notifications) is returned so the agent keeps the batch and uploads it again; the batch is stored
// once and the tracks go on from the last sample they evaluated.
func (s *Service) ObserveBatch(ctx context.Context, agent string, b *wire.MetricBatch) error {
	v, rules, t, ok, err := s.rulesFor(ctx, agent, alert.KindMetric)
	if err != nil || !ok {
		return err
	}
	key := layout.AlertSeriesTrack(agent)
	st, _, err := s.loadAgentTracks(ctx, key, agent)
	if err != nil {
		return err
	}
	moved := false
	for _, r := range rules {
		for _, se := range b.Series {
			if se.Name != r.Metric || !hasLabels(se.Labels, r.Labels) {
				continue
			}
			subject := se.Key()
			tr := st.track(r.Name, subject)
			before := tr.Track
			if err := s.stepSeries(ctx, v, r, t, subject, tr, se.Points); err != nil {
				return err
			}
			moved = moved || !sameTrack(before, tr.Track)
		}
	}
	// Tracks of rules no longer in force are dropped the next time the object is written.
	if st.prune(v, alert.KindMetric) {
		moved = true
	}
	if !moved {
		return nil
	}
	if err := store.PutJSON(ctx, s.Store, key, st); err != nil {
		return fmt.Errorf("store the metric alert tracks of %s: %w", agent, err)
	}
	return nil
}

// stepSeries steps one track through a series' samples, recording each transition.
func (s *Service) stepSeries(ctx context.Context, v *Version, r *alert.Rule, t fleet.Target, subject string, tr *seriesTrack, points []wire.Point) error {
	for _, p := range points {
		if p.T <= tr.Through {
			continue
		}
		at := time.UnixMilli(p.T).UTC()
		engaged := tr.Track.State == alert.StatePending || tr.Track.State == alert.StateFiring
		o := alert.Observation{Active: r.Holds(engaged, p.V), Since: at, Value: p.V, Detail: metricDetail(r, subject, p.V)}
		if o.Active && engaged {
			o.Since = tr.Track.Since // the run goes on from its first sample past the trigger
		}
		next, change := alert.Step(r, t.Ident.ID+" "+subject, &tr.Track, o, at)
		if change != nil {
			if err := s.record(ctx, v, r, t.Ident.ID, t.Ident.Name, subject, next, change, o); err != nil {
				return err
			}
		}
		tr.Track, tr.Through = next, p.T
	}
	return nil
}

// target is one agent as its targets select it (its labels), from the fleet's cached identities; ok is
// false for an agent that is not in the fleet (retired).
func (s *Service) target(ctx context.Context, agent string) (fleet.Target, bool, error) {
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return fleet.Target{}, false, err
	}
	i := slices.IndexFunc(all, func(t fleet.Target) bool { return t.Ident.ID == agent })
	if i < 0 {
		return fleet.Target{}, false, nil
	}
	return all[i], true, nil
}

// hasLabels says whether a series has every label a rule gives, with its value.
func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// metricDetail says what a sample shows against the rule, in a person's words.
func metricDetail(r *alert.Rule, subject string, v float64) string {
	op, trigger := ">", 0.0
	if r.Above != nil {
		trigger = *r.Above
	} else if r.Below != nil {
		op, trigger = "<", *r.Below
	}
	return fmt.Sprintf("%s = %s (fires at %s %s for %s)", subject, num(v), op, num(trigger), r.For())
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
