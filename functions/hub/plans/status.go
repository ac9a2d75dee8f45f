package plans

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/events"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// Reported is an agent's last reported status of a plan, as stored (overwritten when it changes).
type Reported struct {
	Agent      string          `json:"agent"`
	ReceivedAt time.Time       `json:"receivedAt"`
	Status     wire.PlanStatus `json:"status"`
}

// unitStates are the states an agent may report a unit in.
var unitStates = []string{wire.UnitPending, wire.UnitApplying, wire.UnitConverged, wire.UnitFailed, wire.UnitDrifted}

// Report stores what an agent says of a plan: the version it holds, every unit's state, or why it
// refused a version. It is refused (a conflict naming both, nothing stored) when the plan's targets
// do not select the agent, or the agent reports a version the plan does not have. Every text is cut
// to wire.MaxReasonBytes. A status the same as the last one this instance wrote (the time of the
// report aside) is not written again: an agent reporting a converged plan every minute costs nothing.
func (s *Service) Report(ctx context.Context, agent, name string, st wire.PlanStatus) error {
	if err := CheckName("path.name", name); err != nil {
		return err
	}
	if err := checkStatus(name, &st); err != nil {
		return err
	}
	v, err := s.targets(ctx, agent, name, st)
	if err != nil {
		return err
	}
	digest, err := statusDigest(st)
	if err != nil {
		return err
	}
	mk := name + "\x00" + agent
	s.mem.mu.Lock()
	same := s.mem.written[mk] == digest
	s.mem.mu.Unlock()
	if !same {
		rec := Reported{Agent: agent, ReceivedAt: time.Now().UTC(), Status: st}
		if err := store.PutJSON(ctx, s.Store, layout.PlanStatus(name, agent), rec); err != nil {
			return fmt.Errorf("store the status of plan %s on %s: %w", name, agent, err)
		}
		s.mem.mu.Lock()
		if s.mem.written == nil {
			s.mem.written = map[string]string{}
		}
		s.mem.written[mk] = digest
		s.mem.mu.Unlock()
		s.Log.Debug("plan status", "plan", name, "agent", agent, "version", st.Version, "refused_version", st.RefusedVersion)
		s.Bus.Plans.Publish(ctx, events.PlanChanged{Plan: name})
	}
	if st.Version >= v.Version || st.RefusedVersion >= v.Version {
		// The agent has the newest version: this instance stops offering its delivery.
		s.Delivery.Done(agent, deliveryID(name, v.Version))
	}
	return nil
}

// checkStatus refuses a status that cannot be one, and caps every text in it.
func checkStatus(name string, st *wire.PlanStatus) error {
	invalid := func(field, format string, a ...any) error {
		return &domain.Error{Kind: domain.KindInvalid, Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case st.Plan != "" && st.Plan != name:
		return invalid("body.plan", "the status is of plan %s, posted for plan %s", wire.CapReason(st.Plan), name)
	case st.Version < 0 || st.RefusedVersion < 0:
		return invalid("body.version", "versions count from 1 (0: none held)")
	case len(st.Units) > wire.MaxUnits:
		return invalid("body.units", "%d units; a plan has at most %d", len(st.Units), wire.MaxUnits)
	}
	st.Plan = name
	st.Refused = wire.CapReason(st.Refused)
	for i := range st.Units {
		u := &st.Units[i]
		if !slices.Contains(unitStates, u.State) {
			return invalid(fmt.Sprintf("body.units[%d].state", i), "unit state %q: want one of %s", wire.CapReason(u.State), strings.Join(unitStates, ", "))
		}
		for _, f := range []*string{&u.Unit, &u.Type, &u.Desired, &u.Observed, &u.Reason, &u.WaitingOn} {
			*f = wire.CapReason(*f)
		}
	}
	return nil
}

// statusDigest names what a status says, the time of the report aside.
func statusDigest(st wire.PlanStatus) (string, error) {
	st.At = time.Time{}
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("encode plan status: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// targets returns the newest version of a plan whose targets select the agent and that has the
// versions the status names. It asks this instance's view first; when the view does not say so (it
// lags another hub's apply, or a label change, by up to RefreshEvery) it asks the store: one listing
// of the plan's versions and the fleet's listing, for a report the view would refuse.
func (s *Service) targets(ctx context.Context, agent, name string, st wire.PlanStatus) (*Version, error) {
	if err := s.current(ctx); err != nil {
		return nil, err
	}
	check := func(v *Version) error {
		s.mem.mu.Lock()
		t, ok := s.mem.agents[agent]
		s.mem.mu.Unlock()
		if !ok || !fleet.Matches(t, v.Targets) {
			return domain.Conflict("plan %s does not target agent %s (its targets: %s); the status was not stored",
				name, agent, strings.Join(v.Targets, ", "))
		}
		if n := max(st.Version, st.RefusedVersion); n > v.Version {
			return domain.Conflict("agent %s reports version %d of plan %s, whose newest version is %d; the status was not stored",
				agent, n, name, v.Version)
		}
		return nil
	}
	if v := s.mem.head(name); v != nil && !v.Deleted && check(v) == nil {
		return v, nil
	}
	v, err := s.latest(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.NotFound("no plan %q; the status was not stored", name)
	}
	if err != nil {
		return nil, err
	}
	s.remember(v)
	if v.Deleted { // the agent drops it once its fetches no longer list it
		return nil, domain.NotFound("plan %q was deleted (version %d); the status was not stored", name, v.Version)
	}
	if err := s.refreshFleet(ctx); err != nil {
		return nil, err
	}
	return v, check(v)
}

// View is where a plan stands: its newest version, and every agent its targets select now.
type View struct {
	Name      string        `json:"name"`
	Version   int           `json:"version" doc:"The plan's newest version."`
	Mode      string        `json:"mode"`
	Targets   []string      `json:"targets"`
	AppliedBy string        `json:"appliedBy"`
	AppliedAt time.Time     `json:"appliedAt"`
	Agents    []AgentStatus `json:"agents"`
	// Converged counts the agents that hold the newest version with every unit converged.
	Converged int `json:"converged" doc:"Agents that hold the newest version with every unit converged."`
	// Rollout is where the newest version's rollout stands, when it has one (GET …/rollout says more).
	Rollout *RolloutState `json:"rollout,omitempty" doc:"Where the newest version's rollout stands, when it has one."`
}

// AgentStatus is one target's state of a plan, as it last reported it.
type AgentStatus struct {
	Agent  string `json:"agent"`
	Name   string `json:"name"`
	Online bool   `json:"online"`
	// Version is the version the agent holds (0: none yet, or it never reported).
	Version        int    `json:"version" doc:"The version the agent holds and reconciles (0: none yet, or no report)."`
	RefusedVersion int    `json:"refusedVersion,omitempty" doc:"A version the agent refused, with the reason in refused."`
	Refused        string `json:"refused,omitempty"`
	// Wave is the agent's wave in the newest version's rollout (0: no rollout, or in none).
	Wave       int       `json:"wave,omitempty" doc:"The agent's wave in the newest version's rollout (absent: no rollout, or the agent is in no wave)."`
	ReportedAt time.Time `json:"reportedAt,omitzero" doc:"When the agent last reported a change."`
	// Units are the units of the version the agent holds, as it reported them; before any report, the
	// units of the newest version, in state unknown.
	Units []UnitState `json:"units"`
}

// UnitState is one unit's state on one agent.
type UnitState struct {
	Unit        string    `json:"unit"`
	Type        string    `json:"type"`
	State       string    `json:"state" enum:"pending,applying,converged,failed,drifted,unknown" doc:"As the agent reported it; unknown before its first report."`
	Reason      string    `json:"reason,omitempty"`
	WaitingOn   string    `json:"waitingOn,omitempty"`
	Desired     string    `json:"desired"`
	Observed    string    `json:"observed,omitempty"`
	Corrections int       `json:"corrections,omitempty"`
	ChangedAt   time.Time `json:"changedAt,omitzero"`
}

// UnitUnknown is the state shown for a unit of an agent that has not reported the plan.
const UnitUnknown = "unknown"

// Status returns a plan's newest version and, for every agent its targets select now, whether it is
// online, the version it holds, a refusal, and every unit's state. It costs one listing of the plan
// (versions and statuses), the fleet's listing, and a read of each status that changed since this
// instance last read it.
func (s *Service) Status(ctx context.Context, name string) (*View, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	var versions []string
	reports := map[string]string{}  // agent → the ETag of its status
	events := map[string][]string{} // a version's rollout directory → its event keys
	err := store.Walk(ctx, s.Store, layout.PlanOf(name), "", 0, func(o store.ObjectInfo) error {
		switch {
		case strings.HasPrefix(o.Key, layout.PlanVersionsOf(name)):
			versions = append(versions, o.Key)
		case strings.HasPrefix(o.Key, layout.PlanRolloutsOf(name)):
			dir := o.Key[:strings.LastIndex(o.Key, "/")+1]
			events[dir] = append(events[dir], o.Key)
		case strings.HasPrefix(o.Key, layout.PlanStatusesOf(name)):
			reports[layout.Name(o.Key)] = o.ETag
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	v, err := s.newest(ctx, versions)
	if v, err = s.found(name, v, err); err != nil {
		return nil, err
	}
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	targets := selected(all, v.Targets)
	// A heartbeat this instance received or read a moment ago says well enough who is online.
	if err := s.Fleet.WithCatalogs(ctx, targets); err != nil {
		return nil, err
	}
	view := &View{Name: v.Name, Version: v.Version, Mode: v.Plan.Mode, Targets: v.Targets, AppliedBy: v.AppliedBy, AppliedAt: v.AppliedAt,
		Agents: []AgentStatus{}}
	if v.Rollout != nil {
		evs, err := s.readEvents(ctx, events[layout.PlanRolloutOf(name, v.Version)])
		if err != nil {
			return nil, err
		}
		view.Rollout = foldRollout(v, evs)
		s.mem.setRollout(name, v.Version, view.Rollout)
	}
	for _, t := range targets {
		av := s.Fleet.View(t)
		as := AgentStatus{Agent: av.ID, Name: av.Name, Online: av.Online, Wave: waveOf(v, av.ID)}
		var rec *Reported
		if etag, ok := reports[av.ID]; ok {
			if rec, err = s.statuses.read(ctx, s.Store, layout.PlanStatus(name, av.ID), etag); err != nil {
				return nil, err
			}
		}
		if rec == nil {
			as.Units = make([]UnitState, 0, len(v.Plan.Units))
			for _, u := range v.Plan.Units {
				as.Units = append(as.Units, UnitState{Unit: u.Name, Type: u.Type, State: UnitUnknown, Reason: "no report yet", Desired: u.Digest()})
			}
			view.Agents = append(view.Agents, as)
			continue
		}
		st := rec.Status
		as.Version, as.RefusedVersion, as.Refused, as.ReportedAt = st.Version, st.RefusedVersion, st.Refused, rec.ReceivedAt
		as.Units = make([]UnitState, 0, len(st.Units))
		converged := st.Version == v.Version && len(st.Units) > 0
		for _, u := range st.Units {
			as.Units = append(as.Units, UnitState{Unit: u.Unit, Type: u.Type, State: u.State, Reason: u.Reason, WaitingOn: u.WaitingOn,
				Desired: u.Desired, Observed: u.Observed, Corrections: u.Corrections, ChangedAt: u.ChangedAt})
			converged = converged && u.State == wire.UnitConverged
		}
		if converged {
			view.Converged++
		}
		view.Agents = append(view.Agents, as)
	}
	return view, nil
}

// statusCache keeps the statuses this instance read, by key, with the ETag they had: a status that
// did not change since is not read again (statuses are overwritten, so they cannot be kept as
// write-once objects are).
type statusCache struct {
	mu sync.Mutex
	m  map[string]cachedStatus
}

type cachedStatus struct {
	etag string
	rec  *Reported
}

// read returns the status under key, nil when there is none the hub wrote (a planted one fails the
// integrity check and reads as none). etag is the one the listing gave: a status still under the
// ETag it had when this instance read it is not read again.
func (c *statusCache) read(ctx context.Context, s store.Store, key, etag string) (*Reported, error) {
	c.mu.Lock()
	had, ok := c.m[key]
	c.mu.Unlock()
	if ok && etag != "" && had.etag == etag {
		return had.rec, nil
	}
	var rec Reported
	info, err := store.ReadJSON(ctx, s, key, &rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedStatus{}
	}
	c.m[key] = cachedStatus{etag: info.ETag, rec: &rec}
	c.mu.Unlock()
	return &rec, nil
}
