// Package plans is the room of plans: the desired state of the agents a plan's targets select, kept as
// write-once versions (functions/plan reads the source, the agents' integrations own the unit types),
// delivered as signed KindPlan envelopes, and the status each agent reports of it. A newcomer reads
// Apply (parse, decide, store, deliver), ForAgent (what an agent fetching its plans gets, from memory)
// and Report and Status (what agents say, and the view of it operators get), in that order.
package plans

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/events"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/plan"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/yamlsrc"
	"github.com/pulsehq/pulse/policy"
)

// Fleet is what plans need of the fleet room: the agents with their labels, to select targets, and
// their heartbeats, to say which are online.
type Fleet interface {
	Identities(ctx context.Context, withRetired bool) ([]fleet.Target, error)
	WithCatalogs(ctx context.Context, ts []fleet.Target) error
	View(t fleet.Target) fleet.AgentView
}

// Decider asks the policy; a denial is a domain error naming the rules (the access room).
type Decider interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
}

// Deliverer stores one signed envelope for many agents and wakes their polls (the delivery room);
// Done stops offering an agent a delivery it has acted on.
type Deliverer interface {
	Post(ctx context.Context, id, ref string, agents []string, env wire.Envelope) (string, error)
	Done(agent, ref string)
}

// Service keeps plans.
type Service struct {
	Store    store.Store
	Log      *slog.Logger
	Trail    *trail.Recorder
	Bus      *events.Bus
	Fleet    Fleet
	Policy   Decider
	Delivery Deliverer
	// Keys sign every envelope an agent gets, delivered or fetched.
	Keys *hubkey.Keys
	// RefreshEvery is how often, while agents ask, this instance lists the plans and the fleet again
	// to see what other hubs did (0: DefaultRefresh).
	RefreshEvery time.Duration
	// RolloutEvery is how often this instance's tick looks at a rolling rollout (0:
	// DefaultRolloutEvery).
	RolloutEvery time.Duration

	// versions are write-once: each is read once per process.
	versions store.Once[Version]
	events   store.Once[RolloutEvent]
	mem      memory
	statuses statusCache
}

// Version is one stored version of a plan, written once.
type Version struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Source  string `json:"source" doc:"The YAML or JSON as applied."`
	// Targets are the target expressions as applied; which agents they select is decided again
	// whenever an agent asks, so an agent enrolled or labelled later gets the plan.
	Targets   []string  `json:"targets" doc:"Agent ids, agent names or label selectors k=v (union), as commands take them."`
	Plan      wire.Plan `json:"plan" doc:"The plan as agents receive it (the body of its KindPlan envelopes)."`
	AppliedBy string    `json:"appliedBy"`
	AppliedAt time.Time `json:"appliedAt"`
	// Rules are the policy rules that allowed the apply, for the record.
	Rules []string `json:"rules,omitempty"`
	// Deleted marks the version that deletes the plan: it has no units and no targets, agents stop
	// getting the plan (and release its units), and applying the plan again starts at the next version.
	Deleted bool `json:"deleted,omitempty" doc:"This version deleted the plan."`
	// Rollout, when the source has a rollout section, stages how this version reaches its targets.
	Rollout *VersionRollout `json:"rollout,omitempty" doc:"How this version reaches its targets in waves (rollout.go); absent: all at once."`
	// RollbackOf and RolledBackTo mark a version written by a rollback: it replaced version RollbackOf
	// with the content of version RolledBackTo.
	RollbackOf   int `json:"rollbackOf,omitempty" doc:"This version rolled back that version."`
	RolledBackTo int `json:"rolledBackTo,omitempty" doc:"This version has the content of that version."`
	// Proposal and ProposedBy mark a version written when the approvals of a proposal were complete:
	// AppliedBy is the approver whose approval completed it.
	Proposal   string `json:"proposal,omitempty" doc:"The proposal whose approvals wrote this version."`
	ProposedBy string `json:"proposedBy,omitempty" doc:"Who proposed it, when it was approved by others."`
}

// stamp marks a version written by an approved proposal with the proposal and its proposer.
func (v *Version) stamp(ctx context.Context) {
	if p := approvedFrom(ctx); p != nil {
		v.Proposal, v.ProposedBy = p.ID, p.RequestedBy
	}
}

// Applied is the answer to an apply: the newest version, and what the apply did.
type Applied struct {
	Version
	Unchanged bool `json:"unchanged,omitempty" doc:"The source is the newest version's: no version was written and nothing was sent."`
	// Agents are the agents a new version was sent to: every agent the targets select now, or with a
	// rollout the first wave.
	Agents []string `json:"agents" doc:"The agents a new version was sent to now: every agent the plan's targets select, or with a rollout its first wave."`
	// Proposal is set when the policy allows the operation only after approvals: nothing was done
	// yet, and Version is the plan's newest version as it stands.
	Proposal *ProposalView `json:"proposal,omitempty" doc:"The operation awaits approvals: nothing was done yet (see pulse plan proposals)."`
}

// Summary is a line of the plan list.
type Summary struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Mode      string    `json:"mode"`
	Units     int       `json:"units"`
	Targets   []string  `json:"targets"`
	AppliedBy string    `json:"appliedBy"`
	AppliedAt time.Time `json:"appliedAt"`
}

// CheckName refuses what cannot be a plan's name as invalid input at field: a plan's name is the name
// the agent keeps it under (wire.ValidName) and a segment of its store keys.
func CheckName(field, name string) error {
	if wire.ValidName(name) {
		return nil
	}
	q := fmt.Sprintf("%q", name)
	if len(name) > 64 {
		q = fmt.Sprintf("%q… (%d bytes)", name[:40], len(name))
	}
	return &domain.Error{Kind: domain.KindInvalid, Field: field, Msg: "plan name " + q +
		": lower-case letters, digits and _, starting with a letter, at most 63 characters"}
}

const (
	// envelopeLife is how long a plan envelope is valid for: an agent that was offline longer
	// fetches its plans again (ForAgent signs them anew).
	envelopeLife = 7 * 24 * time.Hour
	// applyTries bounds how many version numbers an apply tries when other hubs take them first.
	applyTries = 5
)

// deliveryID names version v of a plan's envelope and delivery (and the delivery's ref, for Done).
func deliveryID(name string, v int) string { return fmt.Sprintf("plan-%s-v%d", name, v) }

// Apply parses a plan's source, selects its targets, asks the policy (action apply-plan, with the
// targets), writes the next version create-only, audits it and sends it to the targets it selects
// now. A source identical to the newest version's writes nothing and says so (Unchanged). A
// refusal is a domain error saying why, and nothing is stored then.
func (s *Service) Apply(ctx context.Context, name, source string) (*Applied, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	spec, err := plan.Parse([]byte(source))
	if err != nil {
		return nil, domain.Refused("plan "+name, err)
	}
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	targets, err := selectTargets(name, spec, all)
	if err != nil {
		return nil, err
	}
	if err := s.Fleet.WithCatalogs(ctx, targets); err != nil {
		return nil, err
	}
	if err := checkUnitTypes(name, spec, targets); err != nil {
		return nil, err
	}
	prev, err := s.latest(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	decision, ids, err := s.decide(ctx, "apply-plan", "apply", name, targets)
	var na *needsApproval
	unchanged := prev != nil && prev.Source == source
	switch {
	case errors.As(err, &na) && !unchanged: // an unchanged source needs no approval: it does nothing
		pv, err := s.propose(ctx, name, OpApply, na, func(p *Proposal) { p.Source = source })
		if err != nil {
			return nil, err
		}
		out := &Applied{Proposal: pv, Agents: []string{}}
		if prev != nil {
			out.Version = *prev
		}
		return out, nil
	case err != nil && na == nil:
		return nil, err
	case unchanged:
		s.remember(prev)
		return &Applied{Version: *prev, Unchanged: true, Agents: ids}, nil
	}
	next := 1
	if prev != nil {
		next = prev.Version + 1
	}
	p := domain.PrincipalFrom(ctx)
	v, other, err := s.writeNext(ctx, name, next, func(n int) (*Version, error) {
		v := &Version{Name: name, Version: n, Source: source, Targets: spec.Targets, Plan: spec.Plan,
			AppliedBy: p.ID, AppliedAt: time.Now().UTC(), Rules: decision.Rules}
		v.stamp(ctx)
		if spec.Rollout != nil {
			v.Rollout = &VersionRollout{Rollout: *spec.Rollout, Waves: spec.Rollout.Split(slices.Sorted(slices.Values(ids)))}
		}
		v.Plan.Name, v.Plan.Version = name, n
		if err := v.Plan.Validate(); err != nil { // Parse checked it; this guards the agent's contract
			return nil, domain.Refused("plan "+name, err)
		}
		return v, nil
	}, func(o *Version) bool { return o.Source == source && !o.Deleted })
	if err != nil {
		return nil, err
	}
	if other {
		return &Applied{Version: *v, Unchanged: true, Agents: ids}, nil
	}
	sent, detail := ids, map[string]any{"name": name, "version": v.Version, "mode": v.Plan.Mode, "units": len(v.Plan.Units), "targets": v.Targets}
	if v.Rollout != nil {
		sent = []string{}
		if len(v.Rollout.Waves) > 0 {
			sent = v.Rollout.Waves[0]
		}
		detail["waves"] = len(v.Rollout.Waves)
	}
	s.Log.Info("plan applied", "plan", name, "version", v.Version, "units", len(v.Plan.Units), "agents", len(ids), "sent", len(sent), "by", p.ID)
	s.Trail.Record(ctx, "apply-plan", ids, &decision, "ok", detail)
	s.deliver(ctx, v, 1, sent)
	return &Applied{Version: *v, Agents: sent}, nil
}

// writeNext stores version next of a plan, made by mk, create-only: when another hub wrote that number
// first it takes the next one, unless the other's version is what this one would say (same), which is
// then the answer (other true). Whatever it answers is remembered in the view.
func (s *Service) writeNext(ctx context.Context, name string, next int, mk func(n int) (*Version, error), same func(*Version) bool) (v *Version, other bool, err error) {
	for range applyTries {
		v, err := mk(next)
		if err != nil {
			return nil, false, err
		}
		key := layout.PlanVersion(name, next)
		created, err := store.CreateJSON(ctx, s.Store, key, v)
		if err != nil {
			return nil, false, fmt.Errorf("store plan %s version %d: %w", name, next, err)
		}
		if !created { // another hub wrote this number first
			o, err := s.versions.Get(ctx, s.Store, key)
			if err == nil && same(o) {
				s.remember(o)
				return o, true, nil
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, false, err
			}
			next++
			continue
		}
		s.versions.Put(key, v)
		s.remember(v)
		s.Bus.Plans.Publish(ctx, events.PlanChanged{Plan: name})
		return v, false, nil
	}
	return nil, false, domain.Conflict("plan %s: other hubs kept writing versions of it at the same time; try again", name)
}

// Delete deletes a plan: it stores a version that deletes it (Version.Deleted), after the policy
// allowed action delete-plan on the agents the plan selects now, and audits it. The agents stop getting
// the plan and release its units once their fetches have not listed it for a plan period (a file is
// left where it is; a process is stopped). Applying the plan again starts at the next version.
func (s *Service) Delete(ctx context.Context, name string) (*Applied, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	prev, err := s.latest(ctx, name)
	if errors.Is(err, store.ErrNotFound) || err == nil && prev.Deleted {
		return nil, domain.NotFound("no plan %q (see pulse plans)", name)
	} else if err != nil {
		return nil, err
	}
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	decision, ids, err := s.decide(ctx, "delete-plan", "delete", name, selected(all, prev.Targets))
	if na := (*needsApproval)(nil); errors.As(err, &na) {
		pv, err := s.propose(ctx, name, OpDelete, na, nil)
		if err != nil {
			return nil, err
		}
		return &Applied{Version: *prev, Proposal: pv, Agents: []string{}}, nil
	} else if err != nil {
		return nil, err
	}
	p := domain.PrincipalFrom(ctx)
	v, _, err := s.writeNext(ctx, name, prev.Version+1, func(n int) (*Version, error) {
		v := &Version{Name: name, Version: n, Targets: []string{}, Plan: wire.Plan{Name: name, Version: n, Units: []wire.Unit{}},
			AppliedBy: p.ID, AppliedAt: time.Now().UTC(), Rules: decision.Rules, Deleted: true}
		v.stamp(ctx)
		return v, nil
	}, func(o *Version) bool { return o.Deleted })
	if err != nil {
		return nil, err
	}
	s.Log.Info("plan deleted", "plan", name, "version", v.Version, "agents", len(ids), "by", p.ID)
	s.Trail.Record(ctx, "delete-plan", ids, &decision, "ok", map[string]any{"name": name, "version": v.Version})
	return &Applied{Version: *v, Agents: ids}, nil
}

// found is a plan's newest version read for a person (Get, Status): remembered in the view, and a
// not-found that says so when there is none or the newest deleted the plan.
func (s *Service) found(name string, v *Version, err error) (*Version, error) {
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.NotFound("no plan %q (see pulse plans)", name)
	}
	if err != nil {
		return nil, err
	}
	s.remember(v)
	if v.Deleted {
		return nil, domain.NotFound("plan %q was deleted (version %d); apply it again to bring it back", v.Name, v.Version)
	}
	return v, nil
}

// selectTargets is the agents a plan's targets select now. A target expression that matches no agent
// is refused at its place in the source, as a command's is: a typo must not address nobody.
func selectTargets(name string, spec *plan.Spec, all []fleet.Target) ([]fleet.Target, error) {
	var ps yamlsrc.Problems
	for i, expr := range spec.Targets {
		if !slices.ContainsFunc(all, func(t fleet.Target) bool { return fleet.Matches(t, []string{expr}) }) {
			path := plan.TargetPath(i)
			line, col := spec.At(path)
			ps.Add(line, col, path, "target %q matches no agent (see pulse agents)", expr)
		}
	}
	if err := ps.Err("plan"); err != nil {
		return nil, domain.Refused("plan "+name, err)
	}
	return selected(all, spec.Targets), nil
}

// selected is the agents of all that target expressions select.
func selected(all []fleet.Target, exprs []string) []fleet.Target {
	var out []fleet.Target
	for _, t := range all {
		if fleet.Matches(t, exprs) {
			out = append(out, t)
		}
	}
	return out
}

// decide asks the policy whether the principal may do action (apply-plan, delete-plan, …; verb is
// what a person reads) to plan name on targets, and returns the decision and the targets' ids. A
// policy that allows it only after approvals answers a *needsApproval: the caller proposes the
// operation instead (proposals.go). In the context of an approval that completed a proposal for
// this action, the proposal's decision stands and the policy is not asked again.
func (s *Service) decide(ctx context.Context, action, verb, name string, targets []fleet.Target) (policy.Decision, []string, error) {
	pin := policy.Input{Action: action}
	ids := make([]string, 0, len(targets))
	for _, t := range targets {
		pin.Targets = append(pin.Targets, policy.Target{ID: t.Ident.ID, Name: t.Ident.Name, Labels: t.Labels})
		ids = append(ids, t.Ident.ID)
	}
	if p := approvedFrom(ctx); p != nil && p.Action == action && p.Plan == name {
		return policy.Decision{Allow: true, Rules: p.Rules}, ids, nil
	}
	decision, err := s.Policy.Decide(ctx, pin)
	if err != nil {
		return decision, nil, err
	}
	if a := decision.Approvals; a != nil && a.Count > 0 {
		return decision, ids, &needsApproval{action: action, decision: decision, ids: ids}
	}
	return decision, ids, nil
}

// checkUnitTypes refuses, at the unit's type, a unit that a selected agent would refuse for its type:
// its heartbeat says which unit types it applies. An agent whose types are unknown (no heartbeat yet,
// or a version that predates plans) is given the plan and decides itself, as every agent does anyway.
func checkUnitTypes(name string, spec *plan.Spec, targets []fleet.Target) error {
	var ps yamlsrc.Problems
	for i, u := range spec.Plan.Units {
		var refusing []string
		allowed := map[string]bool{}
		for _, t := range targets {
			if t.HB == nil || t.HB.UnitTypes == nil {
				continue
			}
			if !slices.Contains(t.HB.UnitTypes, u.Type) {
				refusing = append(refusing, t.Ident.Name)
				for _, ty := range t.HB.UnitTypes {
					allowed[ty] = true
				}
			}
		}
		if len(refusing) == 0 {
			continue
		}
		path := yamlsrc.Index("units", i) + ".type"
		line, col := spec.At(path)
		kinds := "none"
		if len(allowed) > 0 {
			kinds = strings.Join(slices.Sorted(maps.Keys(allowed)), ", ")
		}
		who := strings.Join(refusing[:min(len(refusing), 5)], ", ")
		if len(refusing) > 5 {
			who += fmt.Sprintf(" and %d more", len(refusing)-5)
		}
		ps.Add(line, col, path, "unit %s: type %q is not applied by agents %s (they apply: %s); enable the integration that owns it in their config, or narrow the targets", u.Name, u.Type, who, kinds)
	}
	if err := ps.Err("plan"); err != nil {
		return domain.Refused("plan "+name, err)
	}
	return nil
}

// deliver sends a version to agents (those its targets select now, or a wave of its rollout: wave 1
// is the apply's), as one delivery. The version is stored already, so a delivery that fails is
// logged, not the apply's failure: this instance offers it to the polls it holds, and every target
// gets it when it next fetches its plans (ForAgent).
func (s *Service) deliver(ctx context.Context, v *Version, wave int, agents []string) {
	if len(agents) == 0 {
		return
	}
	body, err := json.Marshal(v.Plan)
	if err != nil {
		s.Log.Error("encode plan", "plan", v.Name, "version", v.Version, "err", err)
		return
	}
	now := time.Now().UTC()
	ref, id := deliveryID(v.Name, v.Version), deliveryID(v.Name, v.Version)
	if wave > 1 { // each wave is its own delivery; an agent is done with the version whichever brought it
		id = fmt.Sprintf("%s-w%d", ref, wave)
	}
	env := wire.Envelope{ID: id, IssuedAt: now, NotAfter: now.Add(envelopeLife), Issuer: v.AppliedBy, Kind: wire.KindPlan, Body: body}
	if _, err := s.Delivery.Post(ctx, id, ref, agents, env); err != nil {
		s.Log.Warn("deliver plan; its targets get it when they next fetch their plans", "plan", v.Name, "version", v.Version, "err", err)
	}
}

// Get returns a plan's newest version.
func (s *Service) Get(ctx context.Context, name string) (*Version, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	v, err := s.latest(ctx, name)
	return s.found(name, v, err)
}

// List returns the newest version of every plan, by name, from one listing of the plans.
func (s *Service) List(ctx context.Context) ([]Summary, error) {
	if err := s.refreshPlans(ctx); err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, v := range s.mem.heads() {
		if v.Deleted {
			continue
		}
		out = append(out, Summary{Name: v.Name, Version: v.Version, Mode: v.Plan.Mode, Units: len(v.Plan.Units),
			Targets: v.Targets, AppliedBy: v.AppliedBy, AppliedAt: v.AppliedAt})
	}
	return out, nil
}

// latest is the newest version the hub wrote: a version planted in the bucket fails the integrity
// check and is passed over, so it can neither reach an agent nor hide the genuine one. The caller
// gets its own copy.
func (s *Service) latest(ctx context.Context, name string) (*Version, error) {
	v, err := s.versions.Latest(ctx, s.Store, layout.PlanVersionsOf(name))
	if err != nil {
		return nil, err
	}
	c := *v
	return &c, nil
}

// newest is the newest genuine version among a plan's version keys (ascending), as latest.
func (s *Service) newest(ctx context.Context, keys []string) (*Version, error) {
	v, err := s.versions.Newest(ctx, s.Store, keys)
	if err != nil {
		return nil, err
	}
	c := *v
	return &c, nil
}
