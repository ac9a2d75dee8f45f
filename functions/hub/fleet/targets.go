package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// Target is an agent as selection sees it: its identity, its labels now, its latest heartbeat (when
// read) and whether it was retired.
type Target struct {
	Ident  *AgentIdentity
	Labels map[string]string
	// LabelsVersion is the version of Labels (0: the labels of its enrollment).
	LabelsVersion int
	HB            *HeartbeatRecord
	Retired       *Retirement
}

// AgentView is an agent as operators see it.
type AgentView struct {
	ID           string                   `json:"id"`
	Name         string                   `json:"name"`
	Labels       map[string]string        `json:"labels,omitempty"`
	Online       bool                     `json:"online"`
	LastSeen     time.Time                `json:"lastSeen,omitzero"`
	Version      string                   `json:"version"`
	EnrolledAt   time.Time                `json:"enrolledAt"`
	Disabled     []wire.IntegrationStatus `json:"disabled,omitempty" doc:"Soft-disabled integrations and why."`
	Hatch        *wire.HatchStatus        `json:"hatch,omitempty" doc:"The shell hatch, when it is open."`
	Integrations []wire.IntegrationStatus `json:"integrations,omitempty"`
	Commands     []string                 `json:"commands,omitempty"`
	Catalog      []wire.CommandSpec       `json:"catalog,omitempty" doc:"The commands with their parameters, patterns and caps (GET /v1/agents/{id} only; the list names the commands)."`
	Facts        map[string]string        `json:"facts,omitempty"`
	Retired      *Retirement              `json:"retired,omitempty" doc:"Set when the agent was retired: its requests are refused."`
}

// View is what operators see of a target.
func (s *Service) View(t Target) AgentView {
	a, hb := t.Ident, t.HB
	v := AgentView{ID: a.ID, Name: a.Name, Labels: t.Labels, Version: a.Version, EnrolledAt: a.EnrolledAt, Integrations: a.Integrations,
		Facts: a.Facts, Retired: t.Retired}
	if hb != nil {
		v.LastSeen = hb.ReceivedAt
		v.Online = t.Retired == nil && time.Since(hb.ReceivedAt) < s.OfflineAfter()
		v.Version = hb.Version
		if hb.Integrations != nil {
			v.Integrations = hb.Integrations
		}
		if hb.Hatch != nil && hb.Hatch.Open && time.Now().Before(hb.Hatch.ExpiresAt) {
			v.Hatch = hb.Hatch
		}
	}
	for _, st := range v.Integrations {
		if !st.Enabled {
			v.Disabled = append(v.Disabled, st)
		}
	}
	for _, c := range CatalogOf(a, hb) {
		v.Commands = append(v.Commands, c.Name)
	}
	return v
}

// OfflineAfter is how long after its last heartbeat an agent counts as offline: two missed liveness
// heartbeats and a minute (an idle agent sends one every 2 minutes, kernel.DefaultLiveness).
func (s *Service) OfflineAfter() time.Duration {
	if s.HeartbeatInterval > 0 {
		return 3 * s.HeartbeatInterval
	}
	return 5 * time.Minute
}

// List returns the agents a selector matches ("" for all), with their heartbeats. Retired agents are
// left out unless asked for.
func (s *Service) List(ctx context.Context, selector string, withRetired bool) ([]AgentView, error) {
	all, err := s.Identities(ctx, withRetired)
	if err != nil {
		return nil, err
	}
	if selector != "" {
		if all, err = Select(all, strings.Split(selector, ";")); err != nil {
			return nil, err
		}
	}
	if err := s.WithHeartbeats(ctx, all); err != nil {
		return nil, err
	}
	out := make([]AgentView, 0, len(all))
	for _, t := range all {
		out = append(out, s.View(t))
	}
	return out, nil
}

// Target returns one agent, by id or name, with its heartbeat (retired agents included). An id costs
// the agent's own objects; only a name needs the whole fleet.
func (s *Service) Target(ctx context.Context, idOrName string) (Target, error) {
	t, err := s.byID(ctx, idOrName)
	if errors.Is(err, store.ErrNotFound) {
		var all []Target
		if all, err = s.Identities(ctx, true); err != nil {
			return Target{}, err
		}
		i := slices.IndexFunc(all, func(t Target) bool { return t.Ident.Name == idOrName })
		if i < 0 {
			return Target{}, domain.NotFound("no agent %q (see pulse agents)", idOrName)
		}
		t, err = all[i], nil
	}
	if err != nil {
		return Target{}, err
	}
	if t.HB, err = s.Heartbeat(ctx, t.Ident.ID); err != nil {
		return Target{}, err
	}
	return t, nil
}

// byID reads one agent by id without listing the fleet; store.ErrNotFound when there is none.
func (s *Service) byID(ctx context.Context, id string) (Target, error) {
	if !layout.ValidID(id) {
		return Target{}, store.ErrNotFound
	}
	a, err := s.Identity(ctx, id)
	if err != nil {
		return Target{}, err
	}
	var versions []string
	if err := store.Walk(ctx, s.Store, layout.AgentLabelsOf(id), "", 0, func(o store.ObjectInfo) error {
		versions = append(versions, o.Key) // keys sort by version
		return nil
	}); err != nil {
		return Target{}, err
	}
	t := Target{Ident: a}
	if t.Labels, t.LabelsVersion, err = s.agentLabels(ctx, a, versions); err != nil {
		return Target{}, err
	}
	retired, err := s.retiredSet(ctx)
	if err != nil {
		return Target{}, err
	}
	if r, ok := retired[id]; ok {
		t.Retired = &r
	}
	return t, nil
}

// Get returns one agent as operators see it.
func (s *Service) Get(ctx context.Context, idOrName string) (AgentView, error) {
	t, err := s.Target(ctx, idOrName)
	if err != nil {
		return AgentView{}, err
	}
	v := s.View(t)
	v.Catalog = CatalogOf(t.Ident, t.HB)
	return v, nil
}

// Identities lists every agent with its current labels, sorted by id, without reading heartbeats
// (identities are cached, heartbeats are not), so a command can choose its targets before paying for
// their heartbeats.
func (s *Service) Identities(ctx context.Context, withRetired bool) ([]Target, error) {
	ids, labelKeys, err := s.listAgents(ctx)
	if err != nil {
		return nil, err
	}
	retired, err := s.retiredSet(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Target, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, id := range ids {
		g.Go(func() error {
			a, err := s.Identity(gctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return nil // refused by the integrity check: not an agent
			}
			if err != nil {
				return err
			}
			out[i] = Target{Ident: a}
			if out[i].Labels, out[i].LabelsVersion, err = s.agentLabels(gctx, a, labelKeys[id]); err != nil {
				return err
			}
			if r, ok := retired[id]; ok {
				out[i].Retired = &r
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	kept := out[:0]
	for _, t := range out {
		if t.Ident != nil && (withRetired || t.Retired == nil) {
			kept = append(kept, t)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Ident.ID < kept[j].Ident.ID })
	return kept, nil
}

// listingCache keeps the listing of the agents and their label versions for listingFresh, so a burst
// of commands lists the fleet once, not once per command (ten pages with 10,000 agents). This
// instance's own enrollments, label changes and retirements drop it at once; another instance's show
// within listingFresh.
type listingCache struct {
	mu        sync.Mutex
	ids       []string
	labelKeys map[string][]string
	at        time.Time
	gen       int // bumped by forget, so a listing that started before a change is not kept
}

// listingFresh is how long a listing of the fleet is reused.
const listingFresh = 2 * time.Second

func (c *listingCache) forget() {
	c.mu.Lock()
	c.at = time.Time{}
	c.gen++
	c.mu.Unlock()
}

// listAgents returns every enrolled agent's id and its label versions' keys.
func (s *Service) listAgents(ctx context.Context) ([]string, map[string][]string, error) {
	c := &s.listing
	c.mu.Lock()
	if !c.at.IsZero() && time.Since(c.at) < listingFresh {
		ids, keys := c.ids, c.labelKeys
		c.mu.Unlock()
		return ids, keys, nil
	}
	gen := c.gen
	c.mu.Unlock()
	started := time.Now()
	var ids []string
	err := store.Walk(ctx, s.Store, layout.Agents, "", 0, func(o store.ObjectInfo) error {
		ids = append(ids, layout.Name(o.Key))
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	labelKeys, err := s.labelVersions(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.ids, c.labelKeys, c.at = ids, labelKeys, started
	}
	c.mu.Unlock()
	return ids, labelKeys, nil
}

// WithHeartbeats fills in the latest heartbeat of each target, read from the store: the views that
// show heartbeats (online, the hatch) show the newest.
func (s *Service) WithHeartbeats(ctx context.Context, ts []Target) error {
	return s.withBeats(ctx, ts, false)
}

// WithCatalogs fills in each target's heartbeat for its catalog, from what this instance received or
// read in the last beatFresh where it can: checking a command against a thousand catalogs then costs
// no store request.
func (s *Service) WithCatalogs(ctx context.Context, ts []Target) error {
	return s.withBeats(ctx, ts, true)
}

func (s *Service) withBeats(ctx context.Context, ts []Target, cached bool) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range ts {
		if hb, ok := s.beats.get(ts[i].Ident.ID); ok && cached {
			ts[i].HB = hb
			continue
		}
		g.Go(func() error {
			hb, err := s.Heartbeat(gctx, ts[i].Ident.ID)
			if err == nil {
				s.beats.put(ts[i].Ident.ID, hb, beatFresh)
			}
			ts[i].HB = hb
			return err
		})
	}
	return g.Wait()
}

// Catalog is every command any enrolled agent offers: a workflow may name a command that only some
// agents have; which ones it reaches is decided when it runs.
type Catalog map[string]wire.CommandSpec

// Lookup finds a command in the fleet's catalog.
func (c Catalog) Lookup(name string) (wire.CommandSpec, bool) {
	spec, ok := c[name]
	return spec, ok
}

// Catalog reads the fleet's catalog.
func (s *Service) Catalog(ctx context.Context) (Catalog, error) {
	all, err := s.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := s.WithCatalogs(ctx, all); err != nil {
		return nil, err
	}
	cat := Catalog{}
	for _, t := range all {
		for _, spec := range CatalogOf(t.Ident, t.HB) {
			cat[spec.Name] = spec
		}
	}
	return cat, nil
}

// Select applies target expressions (union): "all", an agent id, an agent name, or a label selector
// "k=v,k2=v2" (every pair must match). An expression that matches nothing is an error, so a typo does
// not silently address zero machines.
func Select(all []Target, exprs []string) ([]Target, error) {
	chosen := map[string]bool{}
	for _, raw := range exprs {
		expr := strings.TrimSpace(raw)
		if expr == "" {
			continue
		}
		matched := 0
		for _, t := range all {
			if matchTarget(t, expr) {
				chosen[t.Ident.ID] = true
				matched++
			}
		}
		if matched == 0 {
			return nil, &domain.Error{Kind: domain.KindInvalid, Field: "targets", Msg: fmt.Sprintf("target %q matches no agent", expr)}
		}
	}
	var out []Target
	for _, t := range all {
		if chosen[t.Ident.ID] {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "targets", Msg: "no targets given; use all, an agent id or name, or labels k=v",
			Err: errors.New("no targets")}
	}
	return out, nil
}

// Matches reports whether any of the target expressions selects t, as Select would (a union), without
// Select's refusal of an expression that matches no agent: what was applied to a selector (a plan)
// keeps it while the fleet changes, and is checked one agent at a time.
func Matches(t Target, exprs []string) bool {
	for _, raw := range exprs {
		if expr := strings.TrimSpace(raw); expr != "" && matchTarget(t, expr) {
			return true
		}
	}
	return false
}

func matchTarget(t Target, expr string) bool {
	a := t.Ident
	if expr == "all" || expr == a.ID || expr == a.Name {
		return true
	}
	if !strings.Contains(expr, "=") {
		return false
	}
	for _, pair := range strings.Split(expr, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || t.Labels[k] != v {
			return false
		}
	}
	return true
}
