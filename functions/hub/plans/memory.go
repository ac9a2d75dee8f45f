package plans

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// head is the newest version of one plan, with what agents are sent of it.
type head struct {
	v    *Version
	body json.RawMessage
	// signed keeps the envelope signed for each agent that asked (all of one version: a newer version
	// is a new head), so a fetch signs nothing either.
	signed map[string]signedEnvelope
}

type signedEnvelope struct {
	env wire.SignedEnvelope
	at  time.Time
}

// put keeps v if it is newer than the version kept of its plan.
func (m *memory) put(v *Version) error {
	body, err := json.Marshal(v.Plan)
	if err != nil {
		return fmt.Errorf("encode plan %s version %d: %w", v.Name, v.Version, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byName == nil {
		m.byName = map[string]*head{}
	}
	if h := m.byName[v.Name]; h != nil && h.v.Version >= v.Version {
		return nil
	}
	c := *v
	m.byName[v.Name] = &head{v: &c, body: body, signed: map[string]signedEnvelope{}}
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

// refreshPlans lists the plans and keeps the newest genuine version of each: one listing (a page per
// thousand keys; statuses are listed too), and a read of each version this process has not read.
func (s *Service) refreshPlans(ctx context.Context) error {
	started := time.Now()
	var names []string
	keys := map[string][]string{}
	err := store.Walk(ctx, s.Store, layout.Plans, "", 0, func(o store.ObjectInfo) error {
		name, _, _ := strings.Cut(strings.TrimPrefix(o.Key, layout.Plans), "/")
		if !strings.HasPrefix(o.Key, layout.PlanVersionsOf(name)) {
			return nil // an agent's status
		}
		if _, ok := keys[name]; !ok {
			names = append(names, name)
		}
		keys[name] = append(keys[name], o.Key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list plans: %w", err)
	}
	for _, name := range names {
		v, err := s.newest(ctx, keys[name])
		if errors.Is(err, store.ErrNotFound) {
			continue // no genuine version
		}
		if err != nil {
			return fmt.Errorf("read plan %s: %w", name, err)
		}
		if err := s.mem.put(v); err != nil {
			return err
		}
	}
	s.mem.mu.Lock()
	if started.After(s.mem.plansAt) {
		s.mem.plansAt = started
	}
	s.mem.mu.Unlock()
	return nil
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
	start := loaded && !m.refreshing && time.Since(m.oldest()) > s.refreshEvery()
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

// ForAgent returns the newest version of every plan whose targets select the agent, each signed for
// it alone, so an agent that was offline or enrolled after a plan was applied gets it. It is answered
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
		if h.v.Deleted || !fleet.Matches(t, h.v.Targets) {
			continue
		}
		se, ok := h.signed[agent]
		if !ok || now.Sub(se.at) > resignAfter {
			env := wire.Envelope{ID: deliveryID(name, h.v.Version), Agent: agent, IssuedAt: now, NotAfter: now.Add(envelopeLife),
				Issuer: h.v.AppliedBy, Kind: wire.KindPlan, Body: h.body}
			signed, err := s.Keys.Sign(env)
			if err != nil {
				return out, fmt.Errorf("sign plan %s version %d for %s: %w", name, h.v.Version, agent, err)
			}
			se = signedEnvelope{env: signed, at: now}
			h.signed[agent] = se
		}
		out.Plans = append(out.Plans, se.env)
	}
	return out, nil
}
