package plans

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/events"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/plan"
	"github.com/pulsehq/pulse/functions/store"
)

// A version whose source has a rollout section reaches its targets in waves. The waves are fixed
// when it is applied (the agents its targets select then, by id) and stored in the version; wave 1 is
// released at once. What happens next is a list of events stored write-once beside the version
// (layout.PlanRolloutEvent), numbered, so two hubs that decide the same step at once collide and one
// of them takes it: the tick releases the next wave, completes or halts the rollout, and operators
// pause, resume, promote, abort or roll back. The state is the fold of those events.
//
// An agent gets the newest version whose rollout released it, or that has no rollout or completed
// one; an agent a rollout has not reached keeps the version it had (the next older one that
// qualifies). Versions are immutable and agents never go back to an older one, so a rollback is a new
// version with the content of the version before.

// VersionRollout is a version's rollout as applied: the source's section and the waves it made.
type VersionRollout struct {
	plan.Rollout
	// Waves are the agent ids of each wave, fixed when the version was applied. An agent the targets
	// select later is in none: it gets the version when the rollout completes.
	Waves [][]string `json:"waves" doc:"The agent ids of each wave, fixed when the version was applied."`
}

// Rollout states.
const (
	// RolloutRolling: waves are being released as each converges, stays healthy and bakes.
	RolloutRolling = "rolling"
	// RolloutPaused: an operator paused it; released agents keep the version, no wave starts.
	RolloutPaused = "paused"
	// RolloutHalted: a wave failed (its health condition was false, or more agents failed than it
	// tolerates); nothing more is released until someone resumes it, rolls it back or applies anew.
	RolloutHalted = "halted"
	// RolloutAborted: stopped for good; released agents keep the version, the others the one before.
	RolloutAborted = "aborted"
	// RolloutCompleted: every wave released and healthy; every target gets the version.
	RolloutCompleted = "completed"
	// RolloutRolledBack: a newer version with the previous content replaced it.
	RolloutRolledBack = "rolled_back"
)

// Rollout event kinds.
const (
	evReleased   = "released"
	evHalted     = "halted"
	evPaused     = "paused"
	evResumed    = "resumed"
	evAborted    = "aborted"
	evCompleted  = "completed"
	evRolledBack = "rolled_back"
)

// RolloutEvent is one step of a rollout, stored once.
type RolloutEvent struct {
	Seq  int    `json:"seq"`
	Kind string `json:"kind" enum:"released,halted,paused,resumed,aborted,completed,rolled_back"`
	// Wave is the wave a released event starts (2 and on: wave 1 is released by the apply).
	Wave   int       `json:"wave,omitempty"`
	Reason string    `json:"reason,omitempty" doc:"Why: what failed for halted, who asked and why for the operations."`
	By     string    `json:"by" doc:"Who: a principal, or hub for what the tick decided."`
	At     time.Time `json:"at"`
	// Version is the version a rollback wrote.
	Version int `json:"version,omitempty"`
}

// RolloutState is where a rollout stands: the fold of its events.
type RolloutState struct {
	State string `json:"state" enum:"rolling,paused,halted,aborted,completed,rolled_back"`
	// Released counts the waves released so far (1 at the apply).
	Released int    `json:"released"`
	Reason   string `json:"reason,omitempty"`
	// Changed is when the state or the released waves last changed.
	Changed time.Time      `json:"changed"`
	Events  []RolloutEvent `json:"events"`
}

// foldRollout is the state of a version's rollout after its events (in order).
func foldRollout(v *Version, events []RolloutEvent) *RolloutState {
	st := &RolloutState{State: RolloutRolling, Released: 1, Changed: v.AppliedAt, Events: events}
	for _, e := range events {
		st.Changed = e.At
		switch e.Kind {
		case evReleased:
			st.Released = max(st.Released, e.Wave)
		case evHalted:
			st.State, st.Reason = RolloutHalted, e.Reason
		case evPaused:
			st.State, st.Reason = RolloutPaused, e.Reason
		case evResumed:
			st.State, st.Reason = RolloutRolling, ""
		case evAborted:
			st.State, st.Reason = RolloutAborted, e.Reason
		case evCompleted:
			st.State, st.Reason = RolloutCompleted, ""
		case evRolledBack:
			st.State, st.Reason = RolloutRolledBack, e.Reason
		}
	}
	if st.State == RolloutCompleted && v.Rollout != nil {
		st.Released = len(v.Rollout.Waves)
	}
	return st
}

// final says the rollout changes no more.
func (st *RolloutState) final() bool {
	return st.State == RolloutCompleted || st.State == RolloutAborted || st.State == RolloutRolledBack
}

// reaches says whether the version goes to agent: it has no rollout, its rollout completed, or the
// rollout released the agent's wave.
func reaches(v *Version, st *RolloutState, agent string) bool {
	if v.Rollout == nil || st == nil || st.State == RolloutCompleted {
		return true
	}
	for _, w := range v.Rollout.Waves[:min(st.Released, len(v.Rollout.Waves))] {
		if slices.Contains(w, agent) {
			return true
		}
	}
	return false
}

// waveOf is the wave (from 1) an agent is in, 0 for none.
func waveOf(v *Version, agent string) int {
	if v.Rollout == nil {
		return 0
	}
	for i, w := range v.Rollout.Waves {
		if slices.Contains(w, agent) {
			return i + 1
		}
	}
	return 0
}

// rolloutEvents reads the events of a version's rollout: one listing, and a read of each event this
// process has not read (they are write-once). A planted event fails the integrity check and is passed
// over.
func (s *Service) rolloutEvents(ctx context.Context, name string, version int) ([]RolloutEvent, error) {
	var keys []string
	err := store.Walk(ctx, s.Store, layout.PlanRolloutOf(name, version), "", 0, func(o store.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the rollout of plan %s version %d: %w", name, version, err)
	}
	return s.readEvents(ctx, keys)
}

// readEvents reads rollout events by key (ascending), passing over what does not read.
func (s *Service) readEvents(ctx context.Context, keys []string) ([]RolloutEvent, error) {
	var out []RolloutEvent
	for _, k := range keys {
		e, err := s.events.Get(ctx, s.Store, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read rollout event %s: %w", k, err)
		}
		out = append(out, *e)
	}
	return out, nil
}

// appendEvent stores the next event of a version's rollout after those read (create-only). It
// answers false when another hub stored that number first: the caller reads the events again and
// decides anew.
func (s *Service) appendEvent(ctx context.Context, v *Version, read []RolloutEvent, e RolloutEvent) (bool, error) {
	e.Seq = 1
	if len(read) > 0 {
		e.Seq = read[len(read)-1].Seq + 1
	}
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	key := layout.PlanRolloutEvent(v.Name, v.Version, e.Seq)
	created, err := store.CreateJSON(ctx, s.Store, key, e)
	if err != nil {
		return false, fmt.Errorf("store rollout event %s of plan %s version %d: %w", e.Kind, v.Name, v.Version, err)
	}
	if !created {
		return false, nil
	}
	s.events.Put(key, &e)
	s.mem.setRollout(v.Name, v.Version, foldRollout(v, append(slices.Clone(read), e)))
	s.Bus.Plans.Publish(ctx, events.PlanChanged{Plan: v.Name})
	return true, nil
}

// DefaultRolloutEvery is how often the tick looks at a rolling rollout on each instance: a wave starts
// within it of the one before settling, and each look costs a listing of the rollout's events and of
// the plan's statuses.
const DefaultRolloutEvery = 5 * time.Second

func (s *Service) rolloutEvery() time.Duration {
	if s.RolloutEvery > 0 {
		return s.RolloutEvery
	}
	return DefaultRolloutEvery
}

// Tick moves the rollouts that are rolling: for the newest version of each plan, if its rollout is
// rolling and this instance has not looked for RolloutEvery, it reads the events and the
// released agents' statuses and releases the next wave, completes the rollout, or halts it.
func (s *Service) Tick(ctx context.Context) {
	if err := s.current(ctx); err != nil {
		s.Log.Warn("plans tick: load the plans", "err", err)
		return
	}
	now := time.Now()
	var due []*Version
	s.mem.mu.Lock()
	for name, h := range s.mem.byName {
		l := h.links[0]
		if l.v.Rollout == nil || l.state == nil || l.state.State != RolloutRolling || now.Sub(h.checked) < s.rolloutEvery() {
			continue
		}
		h.checked = now
		due = append(due, s.mem.byName[name].links[0].v)
	}
	s.mem.mu.Unlock()
	for _, v := range due {
		if err := s.advance(ctx, v); err != nil {
			s.Log.Warn("plans tick: advance a rollout", "plan", v.Name, "version", v.Version, "err", err)
		}
	}
}

// waveReport is what a rollout check found of the released agents.
type waveReport struct {
	vars plan.HealthVars
	// pending are the current wave's agents not yet converged (nor failed), by id, with why.
	pending []string
	// failed are released agents with a failed unit or a refusal of the version, with the reason.
	failed []string
	// settled is when the current wave's last agent converged.
	settled time.Time
}

// look reads the statuses of the agents the rollout released and sums them up.
func (s *Service) look(ctx context.Context, v *Version, st *RolloutState) (*waveReport, error) {
	reports := map[string]string{}
	err := store.Walk(ctx, s.Store, layout.PlanStatusesOf(v.Name), "", 0, func(o store.ObjectInfo) error {
		reports[layout.Name(o.Key)] = o.ETag
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the statuses of plan %s: %w", v.Name, err)
	}
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	byID := map[string]fleet.Target{}
	for _, t := range all {
		byID[t.Ident.ID] = t
	}
	released := slices.Concat(v.Rollout.Waves[:min(st.Released, len(v.Rollout.Waves))]...)
	var targets []fleet.Target
	for _, id := range released {
		if t, ok := byID[id]; ok {
			targets = append(targets, t)
		}
	}
	if err := s.Fleet.WithCatalogs(ctx, targets); err != nil {
		return nil, err
	}
	current := map[string]bool{}
	if st.Released >= 1 && st.Released <= len(v.Rollout.Waves) {
		for _, id := range v.Rollout.Waves[st.Released-1] {
			current[id] = true
		}
	}
	r := &waveReport{vars: plan.HealthVars{Wave: int64(st.Released), Units: []plan.UnitVars{}, Agents: []plan.AgentVars{}}, settled: st.Changed}
	for _, id := range released {
		t, known := byID[id]
		if !known { // retired since the apply: it holds nothing back
			continue
		}
		av := s.Fleet.View(t)
		var rec *Reported
		if etag, ok := reports[id]; ok {
			if rec, err = s.statuses.read(ctx, s.Store, layout.PlanStatus(v.Name, id), etag); err != nil {
				return nil, err
			}
		}
		agent := plan.AgentVars{Agent: id, Name: av.Name, Labels: t.Labels, Online: av.Online}
		holds := rec != nil && rec.Status.Version == v.Version
		if rec != nil {
			agent.Version = int64(rec.Status.Version)
		}
		var failures []string
		converged := holds && len(rec.Status.Units) > 0
		var last time.Time
		if holds {
			for _, u := range rec.Status.Units {
				r.vars.Units = append(r.vars.Units, plan.UnitVars{Agent: id, Name: av.Name, Unit: u.Unit, Type: u.Type, State: u.State,
					Reason: u.Reason, Corrections: int64(u.Corrections)})
				if u.State == wire.UnitFailed {
					failures = append(failures, fmt.Sprintf("unit %s failed: %s", u.Unit, u.Reason))
				}
				converged = converged && u.State == wire.UnitConverged
				if u.ChangedAt.After(last) {
					last = u.ChangedAt
				}
			}
		} else {
			for _, u := range v.Plan.Units {
				r.vars.Units = append(r.vars.Units, plan.UnitVars{Agent: id, Name: av.Name, Unit: u.Name, Type: u.Type, State: UnitUnknown})
			}
		}
		if rec != nil && rec.Status.RefusedVersion == v.Version {
			failures = append(failures, "refused the version: "+rec.Status.Refused)
		}
		agent.Converged = converged
		r.vars.Agents = append(r.vars.Agents, agent)
		if len(failures) > 0 {
			r.failed = append(r.failed, fmt.Sprintf("%s %s (%s)", id, av.Name, strings.Join(failures, "; ")))
			continue
		}
		if !current[id] {
			continue
		}
		switch {
		case converged:
			if last.After(r.settled) {
				r.settled = last
			}
		case !holds && !av.Online:
			r.pending = append(r.pending, id+" (offline, has not reported the version)")
		case !holds:
			r.pending = append(r.pending, id+" (has not reported the version yet)")
		default:
			r.pending = append(r.pending, id+" (not converged yet)")
		}
	}
	return r, nil
}

// advance looks at a rolling rollout once and takes the step it calls for, if any.
func (s *Service) advance(ctx context.Context, v *Version) error {
	events, err := s.rolloutEvents(ctx, v.Name, v.Version)
	if err != nil {
		return err
	}
	st := foldRollout(v, events)
	s.mem.setRollout(v.Name, v.Version, st)
	if st.State != RolloutRolling {
		return nil
	}
	r, err := s.look(ctx, v, st)
	if err != nil {
		return err
	}
	halt := func(reason string) error {
		ok, err := s.appendEvent(ctx, v, events, RolloutEvent{Kind: evHalted, Reason: reason, By: "hub"})
		if ok {
			s.Log.Warn("rollout halted", "plan", v.Name, "version", v.Version, "wave", st.Released, "reason", reason)
		}
		return err
	}
	if len(r.failed) > v.Rollout.MaxFailed {
		return halt(fmt.Sprintf("%d released agent(s) failed, more than the %d the rollout tolerates: %s",
			len(r.failed), v.Rollout.MaxFailed, strings.Join(capList(r.failed, 5), "; ")))
	}
	if len(r.pending) > 0 {
		return nil // the wave is on its way
	}
	if v.Rollout.Health != "" {
		h, err := plan.CompileHealth(v.Rollout.Health)
		if err != nil {
			return halt(fmt.Sprintf("health condition %q does not compile: %v", v.Rollout.Health, err))
		}
		ok, err := h.Eval(r.vars)
		if err != nil {
			return halt(fmt.Sprintf("health condition %q could not be evaluated on wave %d: %v", v.Rollout.Health, st.Released, err))
		}
		if !ok {
			return halt(fmt.Sprintf("health condition %q is false on wave %d%s", v.Rollout.Health, st.Released, unhealthy(r.vars)))
		}
	}
	if time.Since(r.settled) < v.Rollout.Bake() {
		return nil // baking
	}
	if st.Released >= len(v.Rollout.Waves) {
		ok, err := s.appendEvent(ctx, v, events, RolloutEvent{Kind: evCompleted, By: "hub"})
		if ok {
			s.Log.Info("rollout completed", "plan", v.Name, "version", v.Version, "waves", len(v.Rollout.Waves))
		}
		return err
	}
	_, err = s.release(ctx, v, events, st.Released+1, "hub", "")
	return err
}

// release stores the event that releases wave (from 2) and sends the version to its agents. It says
// false when another hub stored an event first (the caller decides again on what it says).
func (s *Service) release(ctx context.Context, v *Version, events []RolloutEvent, wave int, by, reason string) (bool, error) {
	ok, err := s.appendEvent(ctx, v, events, RolloutEvent{Kind: evReleased, Wave: wave, By: by, Reason: reason})
	if err != nil || !ok {
		return ok, err
	}
	agents := v.Rollout.Waves[wave-1]
	s.Log.Info("rollout wave released", "plan", v.Name, "version", v.Version, "wave", wave, "agents", len(agents), "by", by)
	s.deliver(ctx, v, wave, agents)
	return true, nil
}

// unhealthy names, for a halt's reason, the units that are not converged.
func unhealthy(vars plan.HealthVars) string {
	var bad []string
	for _, u := range vars.Units {
		if u.State != wire.UnitConverged {
			s := fmt.Sprintf("%s/%s %s", u.Agent, u.Unit, u.State)
			if u.Reason != "" {
				s += ": " + u.Reason
			}
			bad = append(bad, s)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return " (not converged: " + strings.Join(capList(bad, 5), "; ") + ")"
}

// capList keeps the first n entries and says how many more there were.
func capList(list []string, n int) []string {
	if len(list) <= n {
		return list
	}
	return append(slices.Clone(list[:n]), fmt.Sprintf("and %d more", len(list)-n))
}

// Rollout operations an operator may ask for.
const (
	OpPause   = "pause"
	OpResume  = "resume"
	OpPromote = "promote"
	OpAbort   = "abort"
)

// RolloutView is a plan's newest version's rollout, for a person.
type RolloutView struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	RolloutState
	Rollout VersionRollout `json:"rollout"`
	// Waves says, per wave, how many of its agents hold the version converged.
	Waves []WaveView `json:"waves"`
	// Proposal is set when the operation asked for awaits approvals: nothing was done yet.
	Proposal *ProposalView `json:"proposal,omitempty" doc:"The operation awaits approvals: nothing was done yet."`
}

// WaveView is one wave of a rollout.
type WaveView struct {
	Wave      int      `json:"wave"`
	Agents    []string `json:"agents"`
	Released  bool     `json:"released"`
	Converged int      `json:"converged" doc:"Agents of the wave that hold the version with every unit converged."`
	Failed    int      `json:"failed" doc:"Agents of the wave with a failed unit, or that refused the version."`
}

// newestWithRollout is a plan's newest version, which must have a rollout.
func (s *Service) newestWithRollout(ctx context.Context, name string) (*Version, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	v, err := s.latest(ctx, name)
	if v, err = s.found(name, v, err); err != nil {
		return nil, err
	}
	if v.Rollout == nil {
		return nil, domain.NotFound("plan %s version %d has no rollout: it went to every target at once (add a rollout section to stage a version)", name, v.Version)
	}
	return v, nil
}

// Rollout returns where the rollout of a plan's newest version stands, wave by wave.
func (s *Service) Rollout(ctx context.Context, name string) (*RolloutView, error) {
	v, err := s.newestWithRollout(ctx, name)
	if err != nil {
		return nil, err
	}
	events, err := s.rolloutEvents(ctx, name, v.Version)
	if err != nil {
		return nil, err
	}
	st := foldRollout(v, events)
	s.mem.setRollout(name, v.Version, st)
	r, err := s.look(ctx, v, &RolloutState{Released: len(v.Rollout.Waves), Changed: st.Changed})
	if err != nil {
		return nil, err
	}
	return s.rolloutView(v, st, r), nil
}

func (s *Service) rolloutView(v *Version, st *RolloutState, r *waveReport) *RolloutView {
	converged, failed := map[string]bool{}, map[string]bool{}
	for _, a := range r.vars.Agents {
		converged[a.Agent] = a.Converged
	}
	for _, u := range r.vars.Units {
		if u.State == wire.UnitFailed {
			failed[u.Agent] = true
		}
	}
	view := &RolloutView{Name: v.Name, Version: v.Version, RolloutState: *st, Rollout: *v.Rollout, Waves: []WaveView{}}
	if view.Events == nil {
		view.Events = []RolloutEvent{}
	}
	for i, w := range v.Rollout.Waves {
		wv := WaveView{Wave: i + 1, Agents: w, Released: i < st.Released}
		for _, id := range w {
			if converged[id] {
				wv.Converged++
			}
			if failed[id] {
				wv.Failed++
			}
		}
		view.Waves = append(view.Waves, wv)
	}
	return view
}

// RolloutOp pauses, resumes, promotes (releases the next wave now, without waiting for the bake or
// the health condition) or aborts the rollout of a plan's newest version, after the policy allowed
// action <op>-rollout on the agents its targets select, and audits it.
func (s *Service) RolloutOp(ctx context.Context, name, op, reason string) (*RolloutView, error) {
	v, err := s.newestWithRollout(ctx, name)
	if err != nil {
		return nil, err
	}
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	action := op + "-rollout"
	decision, ids, err := s.decide(ctx, action, op+" the rollout of", name, selected(all, v.Targets))
	if na := (*needsApproval)(nil); errors.As(err, &na) {
		events, err := s.rolloutEvents(ctx, name, v.Version)
		if err != nil {
			return nil, err
		}
		st := foldRollout(v, events)
		pv, err := s.propose(ctx, name, op, na, func(p *Proposal) { p.Reason, p.Released = reason, st.Released })
		if err != nil {
			return nil, err
		}
		view, err := s.Rollout(ctx, name)
		if err != nil {
			return nil, err
		}
		view.Proposal = pv
		return view, nil
	} else if err != nil {
		return nil, err
	}
	approved := approvedFrom(ctx)
	by := domain.PrincipalFrom(ctx).ID
	for range applyTries {
		events, err := s.rolloutEvents(ctx, name, v.Version)
		if err != nil {
			return nil, err
		}
		st := foldRollout(v, events)
		refuse := func(format string, a ...any) error {
			return domain.Conflict("rollout of plan %s version %d is %s: %s", name, v.Version, st.State, fmt.Sprintf(format, a...))
		}
		var ok bool
		switch {
		case st.final():
			return nil, refuse("nothing more can be done to it (apply a new version, or roll back)")
		case op == OpPause && st.State == RolloutPaused:
			return nil, refuse("it is paused already")
		case op == OpPause:
			ok, err = s.appendEvent(ctx, v, events, RolloutEvent{Kind: evPaused, By: by, Reason: reason})
		case op == OpResume && st.State == RolloutRolling:
			return nil, refuse("it is rolling already")
		case op == OpResume:
			ok, err = s.appendEvent(ctx, v, events, RolloutEvent{Kind: evResumed, By: by, Reason: reason})
		case op == OpPromote && st.State == RolloutHalted:
			return nil, refuse("resume it first (it halted: %s)", st.Reason)
		case op == OpPromote && st.Released >= len(v.Rollout.Waves):
			return nil, refuse("every wave is released; it completes once the last wave converged and stayed healthy")
		case op == OpPromote && approved != nil && st.Released != approved.Released:
			// The promotion approved is of the wave after the ones released when it was proposed.
			return nil, domain.Conflict("rollout of plan %s version %d has released %d wave(s) since the promotion was proposed (%d then)", name, v.Version, st.Released, approved.Released)
		case op == OpPromote:
			ok, err = s.release(ctx, v, events, st.Released+1, by, reason)
		case op == OpAbort:
			ok, err = s.appendEvent(ctx, v, events, RolloutEvent{Kind: evAborted, By: by, Reason: reason})
		default:
			return nil, &domain.Error{Kind: domain.KindInvalid, Field: "path.op", Msg: fmt.Sprintf("unknown rollout operation %q: pause, resume, promote or abort", op)}
		}
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // another hub stored an event first: decide on what it says
		}
		s.Log.Info("rollout "+op, "plan", name, "version", v.Version, "by", by)
		s.Trail.Record(ctx, action, ids, &decision, "ok", map[string]any{"name": name, "version": v.Version, "reason": reason})
		return s.Rollout(ctx, name)
	}
	return nil, domain.Conflict("rollout of plan %s: other hubs kept changing it at the same time; try again", name)
}

// Rollback returns a plan's agents to the version before the newest: the newest version that went to
// every target (it had no rollout, or its rollout completed). Versions are immutable and agents never
// go back, so it stores a new version with that version's source and targets and no rollout, sends it
// to every target at once, and marks the rolled-back rollout so. It is decided as action rollback-plan
// on the agents the newest version's targets select, and audited.
func (s *Service) Rollback(ctx context.Context, name, reason string) (*Applied, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	var keys []string
	if err := store.Walk(ctx, s.Store, layout.PlanVersionsOf(name), "", 0, func(o store.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list the versions of plan %s: %w", name, err)
	}
	cur, err := s.newest(ctx, keys)
	if cur, err = s.found(name, cur, err); err != nil {
		return nil, err
	}
	var curState *RolloutState
	if cur.Rollout != nil {
		events, err := s.rolloutEvents(ctx, name, cur.Version)
		if err != nil {
			return nil, err
		}
		curState = foldRollout(cur, events)
	}
	var base *Version
	for i := len(keys) - 1; i >= 0 && base == nil; i-- {
		v, err := s.versions.Get(ctx, s.Store, keys[i])
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if v.Version >= cur.Version || v.Deleted {
			continue
		}
		if v.Rollout != nil {
			events, err := s.rolloutEvents(ctx, name, v.Version)
			if err != nil {
				return nil, err
			}
			if foldRollout(v, events).State != RolloutCompleted {
				continue // it never reached every target
			}
		}
		base = v
	}
	if base == nil {
		return nil, domain.Conflict("plan %s has no version before version %d that reached every target, so there is nothing to roll back to (delete the plan, or apply the content you want)", name, cur.Version)
	}
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	decision, ids, err := s.decide(ctx, "rollback-plan", "roll back", name, selected(all, slices.Concat(cur.Targets, base.Targets)))
	if na := (*needsApproval)(nil); errors.As(err, &na) {
		pv, err := s.propose(ctx, name, OpRollback, na, func(p *Proposal) { p.Reason = reason })
		if err != nil {
			return nil, err
		}
		return &Applied{Version: *cur, Proposal: pv, Agents: []string{}}, nil
	} else if err != nil {
		return nil, err
	}
	p := domain.PrincipalFrom(ctx)
	v, _, err := s.writeNext(ctx, name, cur.Version+1, func(n int) (*Version, error) {
		nv := &Version{Name: name, Version: n, Source: base.Source, Targets: base.Targets, Plan: base.Plan,
			AppliedBy: p.ID, AppliedAt: time.Now().UTC(), Rules: decision.Rules, RollbackOf: cur.Version, RolledBackTo: base.Version}
		nv.stamp(ctx)
		nv.Plan.Name, nv.Plan.Version = name, n
		return nv, nil
	}, func(o *Version) bool { return o.RollbackOf == cur.Version })
	if err != nil {
		return nil, err
	}
	if curState != nil && !curState.final() {
		events, err := s.rolloutEvents(ctx, name, cur.Version)
		if err == nil {
			_, err = s.appendEvent(ctx, cur, events, RolloutEvent{Kind: evRolledBack, By: p.ID, Version: v.Version,
				Reason: strings.TrimSpace(fmt.Sprintf("rolled back to the content of version %d as version %d. %s", base.Version, v.Version, reason))})
		}
		if err != nil { // the new version stands: it replaced the rollout whatever its record says
			s.Log.Warn("mark a rolled-back rollout", "plan", name, "version", cur.Version, "err", err)
		}
	}
	targets := selected(all, v.Targets)
	agents := make([]string, 0, len(targets))
	for _, t := range targets {
		agents = append(agents, t.Ident.ID)
	}
	s.Log.Info("plan rolled back", "plan", name, "from", cur.Version, "to", base.Version, "version", v.Version, "by", p.ID)
	s.Trail.Record(ctx, "rollback-plan", ids, &decision, "ok", map[string]any{"name": name, "version": v.Version, "rollbackOf": cur.Version, "contentOf": base.Version, "reason": reason})
	s.deliver(ctx, v, 1, agents)
	return &Applied{Version: *v, Agents: agents}, nil
}
