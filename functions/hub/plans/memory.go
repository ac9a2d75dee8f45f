package plans

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

const (
	// DefaultRefresh is how old this instance's view of the plans and the fleet may grow (unless
	// Service.RefreshEvery says otherwise) before the next agent that asks starts a refresh in the
	// background: another hub's apply, or a label change, reaches the agents fetching here within it.
	DefaultRefresh = 30 * time.Second
	// resignAfter is how long an envelope signed for an agent is handed out again: it stays valid for
	// envelopeLife, so an agent always gets one with six days or more to run.
	resignAfter = 24 * time.Hour
)

// memory is this instance's view of the plans: the newest version of each with the envelopes signed
// for each agent, and the fleet as last listed. It is a cache of the store, refreshed by one listing
// of the plans (and the fleet's listing) every Service.RefreshEvery while agents ask, and at once by this
// instance's applies, so an agent fetching its plans costs no store request.
type memory struct {
	mu         sync.Mutex
	byName     map[string]*head
	agents     map[string]fleet.Target
	plansAt    time.Time // when the last listing of the plans started
	fleetAt    time.Time // when the last listing of the fleet started
	refreshing bool
	// written is the digest of the status this instance last wrote per plan and agent (status.go).
	written map[string]string
	// loading serialises the first load, so a burst of first requests lists once.
	loading sync.Mutex
}

// head is one plan as agents are given it: its newest version, and the versions before it that an
// agent a rollout has not reached yet still gets.
type head struct {
	v *Version
	// links are the versions an agent may be given, newest first, down to the first that reaches
	// every target (no rollout, or a completed one); an agent gets the first that reaches it.
	links []*link
	// signed keeps the envelope signed for each agent that asked, with the version it carries, so a
	// fetch signs nothing either.
	signed map[string]signedEnvelope
	// checked is when this instance's tick last looked at the newest version's rollout.
	checked time.Time
}

// link is one version of a head, encoded once, with its rollout's state when it has one.
type link struct {
	v     *Version
	body  json.RawMessage
	state *RolloutState
}

type signedEnvelope struct {
	env     wire.SignedEnvelope
	at      time.Time
	version int
}

// maxLinks bounds how many versions back a plan's view reaches (rollouts superseded before they
// completed): an agent reached by none of them gets the oldest kept.
const maxLinks = 20

// newLink encodes a version for agents; a version with a rollout starts with the state its events
// give (none known: wave 1 released, rolling).
func newLink(v *Version, st *RolloutState) (*link, error) {
	body, err := json.Marshal(v.Plan)
	if err != nil {
		return nil, fmt.Errorf("encode plan %s version %d: %w", v.Name, v.Version, err)
	}
	c := *v
	if c.Rollout != nil && st == nil {
		st = foldRollout(&c, nil)
	}
	return &link{v: &c, body: body, state: st}, nil
}

// put keeps v if it is newer than the version kept of its plan. A version with a rollout keeps the
// versions before it (agents it has not reached get them); one without replaces them.
func (m *memory) put(v *Version) error {
	l, err := newLink(v, nil)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byName == nil {
		m.byName = map[string]*head{}
	}
	old := m.byName[v.Name]
	if old != nil && old.v.Version >= v.Version {
		return nil
	}
	h := &head{v: l.v, links: []*link{l}, signed: map[string]signedEnvelope{}}
	if old != nil {
		h.signed = old.signed
		if l.state != nil && l.state.State != RolloutCompleted {
			h.links = append(h.links, old.links[:min(len(old.links), maxLinks-1)]...)
		}
	}
	m.byName[v.Name] = h
	return nil
}

// putLinks keeps the versions a listing found of a plan, newest first, unless this instance already
// keeps a newer version (written after the listing started).
func (m *memory) putLinks(links []*link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byName == nil {
		m.byName = map[string]*head{}
	}
	v := links[0].v
	old := m.byName[v.Name]
	if old != nil && old.v.Version > v.Version {
		return
	}
	h := &head{v: v, links: links, signed: map[string]signedEnvelope{}}
	if old != nil {
		h.signed, h.checked = old.signed, old.checked
	}
	m.byName[v.Name] = h
}

// setRollout keeps the state of a version's rollout, as events read or written say.
func (m *memory) setRollout(name string, version int, st *RolloutState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.byName[name]
	if h == nil {
		return
	}
	for _, l := range h.links {
		if l.v.Version == version {
			l.state = st
		}
	}
}

// given is the version of a head an agent gets: the newest that reaches it (nil: none does, or the
// plan was deleted). The caller holds mu.
func (h *head) given(agent string) *link {
	for _, l := range h.links {
		if l.v.Deleted {
			return nil
		}
		if reaches(l.v, l.state, agent) {
			return l
		}
	}
	return nil
}

// heads returns the newest version of every plan, by name.
func (m *memory) heads() []*Version {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Version, 0, len(m.byName))
	for _, h := range m.byName {
		out = append(out, h.v)
	}
	slices.SortFunc(out, func(a, b *Version) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// rolling says whether the newest version of some plan is rolling out (the caller holds mu).
func (m *memory) rolling() bool {
	for _, h := range m.byName {
		if st := h.links[0].state; st != nil && st.State == RolloutRolling {
			return true
		}
	}
	return false
}

// oldest is when the older of the two listings the view rests on started (the caller holds mu).
func (m *memory) oldest() time.Time {
	if m.plansAt.Before(m.fleetAt) {
		return m.plansAt
	}
	return m.fleetAt
}

// head returns the newest version kept of a plan, nil when none.
func (m *memory) head(name string) *Version {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h := m.byName[name]; h != nil {
		return h.v
	}
	return nil
}

// remember keeps a version this instance read or wrote in its view.
func (s *Service) remember(v *Version) {
	if err := s.mem.put(v); err != nil {
		s.Log.Error("keep plan version", "err", err)
	}
}

// refreshPlans lists the plans and keeps, of each, the newest genuine version and the versions before
// it that agents a rollout has not reached still get, with their rollouts' states: one listing (a page
// per thousand keys; statuses are listed too), and a read of each version and rollout event this
// process has not read (both are write-once).
func (s *Service) refreshPlans(ctx context.Context) error {
	started := time.Now()
	var names []string
	keys := map[string][]string{}
	events := map[string]map[int][]string{} // plan → version → its rollout's event keys
	err := store.Walk(ctx, s.Store, layout.Plans, "", 0, func(o store.ObjectInfo) error {
		name, _, _ := strings.Cut(strings.TrimPrefix(o.Key, layout.Plans), "/")
		switch {
		case strings.HasPrefix(o.Key, layout.PlanVersionsOf(name)):
			if _, ok := keys[name]; !ok {
				names = append(names, name)
			}
			keys[name] = append(keys[name], o.Key)
		case strings.HasPrefix(o.Key, layout.PlanRolloutsOf(name)):
			dir, _, _ := strings.Cut(strings.TrimPrefix(o.Key, layout.PlanRolloutsOf(name)), "/")
			if n, err := strconv.Atoi(dir); err == nil {
				if events[name] == nil {
					events[name] = map[int][]string{}
				}
				events[name][n] = append(events[name][n], o.Key)
			}
		}
		return nil // an agent's status otherwise
	})
	if err != nil {
		return fmt.Errorf("list plans: %w", err)
	}
	for _, name := range names {
		links, err := s.links(ctx, keys[name], events[name])
		if err != nil {
			return fmt.Errorf("read plan %s: %w", name, err)
		}
		if len(links) > 0 {
			s.mem.putLinks(links)
		}
	}
	s.mem.mu.Lock()
	if started.After(s.mem.plansAt) {
		s.mem.plansAt = started
	}
	s.mem.mu.Unlock()
	return nil
}

// links reads a plan's versions from the newest down to the first that reaches every target (see
// head.links), given its version keys (ascending) and its rollouts' event keys by version. A version
// planted in the bucket fails the integrity check and is passed over.
func (s *Service) links(ctx context.Context, keys []string, events map[int][]string) ([]*link, error) {
	var out []*link
	for i := len(keys) - 1; i >= 0 && len(out) < maxLinks; i-- {
		v, err := s.versions.Get(ctx, s.Store, keys[i])
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && v.Version >= out[len(out)-1].v.Version {
			continue // a genuine version stored under another number's key
		}
		var st *RolloutState
		if v.Rollout != nil {
			evs, err := s.readEvents(ctx, events[v.Version])
			if err != nil {
				return nil, err
			}
			st = foldRollout(v, evs)
		}
		l, err := newLink(v, st)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
		if v.Deleted || v.Rollout == nil || st.State == RolloutCompleted {
			break
		}
	}
	return out, nil
}

// refreshFleet keeps the fleet as the fleet room lists it now (identities, labels; retired agents
// left out).
func (s *Service) refreshFleet(ctx context.Context) error {
	started := time.Now()
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return fmt.Errorf("list the fleet: %w", err)
	}
	agents := make(map[string]fleet.Target, len(all))
	for _, t := range all {
		agents[t.Ident.ID] = t
	}
	s.mem.mu.Lock()
	if started.After(s.mem.fleetAt) {
		s.mem.agents, s.mem.fleetAt = agents, started
	}
	s.mem.mu.Unlock()
	return nil
}

func (s *Service) refresh(ctx context.Context) error {
	if err := s.refreshPlans(ctx); err != nil {
		return err
	}
	return s.refreshFleet(ctx)
}

// current makes sure this instance's view is loaded: the first request loads it (and waits for it);
// after RefreshEvery, the next request starts a refresh outside itself and is answered from the view
// it has.
func (s *Service) current(ctx context.Context) error {
	m := &s.mem
	m.mu.Lock()
	loaded := !m.plansAt.IsZero() && !m.fleetAt.IsZero()
	every := s.refreshEvery()
	if m.rolling() { // another hub's tick releases waves: agents of a released wave get it soon
		every = min(every, s.rolloutEvery())
	}
	start := loaded && !m.refreshing && time.Since(m.oldest()) > every
	if start {
		m.refreshing = true
	}
	m.mu.Unlock()
	if start {
		s.Bus.Later(ctx, func(ctx context.Context) {
			if err := s.refresh(ctx); err != nil {
				s.Log.Warn("refresh plans; agents are answered from what this hub knew", "err", err)
			}
			m.mu.Lock()
			m.refreshing = false
			m.mu.Unlock()
		})
	}
	if loaded {
		return nil
	}
	m.loading.Lock()
	defer m.loading.Unlock()
	m.mu.Lock()
	loaded = !m.plansAt.IsZero() && !m.fleetAt.IsZero()
	m.mu.Unlock()
	if loaded {
		return nil
	}
	return s.refresh(ctx)
}

func (s *Service) refreshEvery() time.Duration {
	if s.RefreshEvery > 0 {
		return s.RefreshEvery
	}
	return DefaultRefresh
}

// target returns an agent as the view knows it. One it does not know (enrolled since, perhaps on
// another hub) makes it list the fleet again: a signed request comes from an enrolled agent, so
// this happens once per new agent, and the fleet room's own listing cache bounds a burst of them.
func (s *Service) target(ctx context.Context, agent string) (fleet.Target, bool, error) {
	s.mem.mu.Lock()
	t, ok := s.mem.agents[agent]
	s.mem.mu.Unlock()
	if ok {
		return t, true, nil
	}
	if err := s.refreshFleet(ctx); err != nil {
		return fleet.Target{}, false, err
	}
	s.mem.mu.Lock()
	t, ok = s.mem.agents[agent]
	s.mem.mu.Unlock()
	return t, ok, nil
}

// ForAgent returns, of every plan, the version the agent gets (the newest, unless a rollout of it has
// not reached the agent yet: then the version before) when that version's targets select it, each
// signed for it alone, so an agent that was offline or enrolled after a plan was applied gets it. It is answered
// from this instance's view (see memory): after the first request, no store request.
func (s *Service) ForAgent(ctx context.Context, agent string) (wire.AgentPlans, error) {
	out := wire.AgentPlans{Plans: []wire.SignedEnvelope{}}
	if err := s.current(ctx); err != nil {
		return out, err
	}
	t, ok, err := s.target(ctx, agent)
	if err != nil || !ok {
		return out, err
	}
	now := time.Now().UTC()
	s.mem.mu.Lock()
	defer s.mem.mu.Unlock()
	names := make([]string, 0, len(s.mem.byName))
	for name := range s.mem.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		h := s.mem.byName[name]
		l := h.given(agent)
		if l == nil || !fleet.Matches(t, l.v.Targets) {
			continue
		}
		se, ok := h.signed[agent]
		if !ok || se.version != l.v.Version || now.Sub(se.at) > resignAfter {
			env := wire.Envelope{ID: deliveryID(name, l.v.Version), Agent: agent, IssuedAt: now, NotAfter: now.Add(envelopeLife),
				Issuer: l.v.AppliedBy, Kind: wire.KindPlan, Body: l.body}
			signed, err := s.Keys.Sign(env)
			if err != nil {
				return out, fmt.Errorf("sign plan %s version %d for %s: %w", name, l.v.Version, agent, err)
			}
			se = signedEnvelope{env: signed, at: now, version: l.v.Version}
			h.signed[agent] = se
		}
		out.Plans = append(out.Plans, se.env)
	}
	return out, nil
}
