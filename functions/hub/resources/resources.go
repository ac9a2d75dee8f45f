// Package resources is the room of the fleet's inventory (DESIGN.md §1.6): what each agent's
// integrations find on its host (disks, mounts, interfaces, containers, plan units), reported by the
// agent as one whole wire.InventoryReport when it changed. The room keeps one object per agent, the
// newest report by seq (a report arriving late never overwrites a newer one), and answers fleet-wide
// queries by type, agent, label, status and text from an in-memory copy of every agent's report that
// each hub instance refreshes at most every Fresh by one listing, reading again only the objects whose
// ETag changed: a query over a thousand agents costs no store request most of the time, and one
// LIST page otherwise (docs/inventory.md has the costs).
package resources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/hub/paging"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// DefaultFresh is how long an instance answers from its copy of the inventory before it lists the
// store again: another instance's report shows at most this late.
const DefaultFresh = 10 * time.Second

// maxFuture is how far ahead of the hub's clock a report may have been collected (agents' clocks are
// within two minutes of the hub's, or their signatures are refused): a report dated far ahead would
// make every later one look older.
const maxFuture = 5 * time.Minute

// Fleet is what the room needs of the fleet: every agent with its name, labels and retirement.
type Fleet interface {
	Identities(ctx context.Context, withRetired bool) ([]fleet.Target, error)
}

// Stored is an agent's newest report as the hub keeps it.
type Stored struct {
	Agent string `json:"agent"`
	wire.InventoryReport
	// ReceivedAt is when the hub took the report: every resource of it was seen then.
	ReceivedAt time.Time `json:"receivedAt"`
}

// Service keeps the inventory.
type Service struct {
	Store store.Store
	Log   *slog.Logger
	Fleet Fleet
	// Fresh is how long the in-memory copy is used before the store is listed again (DefaultFresh if
	// zero).
	Fresh time.Duration

	refreshMu sync.Mutex // one refresh at a time; the others wait for its answer
	mu        sync.Mutex
	byAgent   map[string]entry
	listedAt  time.Time
}

// entry is one agent's report in memory, with the ETag of the object it was read from or written as.
type entry struct {
	etag string
	rep  *Stored
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Service) fresh() time.Duration {
	if s.Fresh > 0 {
		return s.Fresh
	}
	return DefaultFresh
}

// Report stores an agent's inventory report, replacing the one stored unless that one is newer (a
// higher seq): a late report is a conflict that says so, and stores nothing; the same report again
// (the agent did not hear the answer) is taken as stored. A report Validate refuses is invalid input
// with the reason. Cost: one GET and one PUT.
func (s *Service) Report(ctx context.Context, agent string, rep wire.InventoryReport) error {
	if err := rep.Validate(); err != nil {
		return &domain.Error{Kind: domain.KindInvalid, Field: "body", Msg: err.Error(), Err: err}
	}
	now := time.Now().UTC()
	if rep.At.After(now.Add(maxFuture)) {
		return &domain.Error{Kind: domain.KindInvalid, Field: "body.at", Msg: fmt.Sprintf("the inventory was collected at %s, after the hub's clock (%s): check the agent's clock",
			rep.At.UTC().Format(time.RFC3339), now.Format(time.RFC3339))}
	}
	key := layout.AgentResources(agent)
	for range 3 {
		var cur Stored
		info, err := store.ReadJSON(ctx, s.Store, key, &cur)
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if exists {
			switch {
			case cur.Seq > rep.Seq:
				return domain.Conflict("a newer inventory report of agent %s is stored (seq %d, collected %s); this one (seq %d, collected %s) came late and was not stored",
					agent, cur.Seq, cur.At.UTC().Format(time.RFC3339), rep.Seq, rep.At.UTC().Format(time.RFC3339))
			case cur.Seq == rep.Seq && sameReport(cur.InventoryReport, rep):
				return nil // uploaded again
			case cur.Seq == rep.Seq:
				return domain.Conflict("another inventory report of agent %s is stored under seq %d: every report needs a seq of its own", agent, rep.Seq)
			}
		}
		st := &Stored{Agent: agent, InventoryReport: rep, ReceivedAt: now}
		b, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		// The condition guards two hubs taking two reports of one agent at once; on a store without
		// conditional writes the later write wins, and the agent's next report (a change, or the
		// hourly refresh) sets it right.
		opts := store.PutOptions{CreateOnly: !exists, ContentType: "application/json"}
		if exists {
			opts.IfMatch = info.ETag
		}
		put, err := store.PutBytes(ctx, s.Store, key, b, opts)
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrPreconditionFailed) {
			continue // another hub stored a report meanwhile: compare with that one
		}
		if err != nil {
			return err
		}
		s.remember(agent, entry{etag: put.ETag, rep: st})
		return nil
	}
	return domain.Conflict("the inventory of agent %s kept changing while this report was stored; send it again", agent)
}

// sameReport says whether a report is the one stored (decoded from JSON, so compared as JSON).
func sameReport(stored, rep wire.InventoryReport) bool {
	a, _ := json.Marshal(stored)
	b, _ := json.Marshal(rep)
	var x, y any
	json.Unmarshal(a, &x)
	json.Unmarshal(b, &y)
	return reflect.DeepEqual(x, y)
}

// remember keeps a report in the instance's copy unless the copy holds a newer one.
func (s *Service) remember(agent string, e entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byAgent == nil {
		s.byAgent = map[string]entry{}
	}
	if cur, ok := s.byAgent[agent]; ok && cur.rep.Seq > e.rep.Seq {
		return
	}
	s.byAgent[agent] = e
}

// snapshot is every agent's newest report, from memory when it was listed less than Fresh ago. A
// refresh is one listing of the prefix (a page per 1,000 agents) and a GET of each object whose ETag
// differs from the one in memory: with nothing changed, no GET at all.
func (s *Service) snapshot(ctx context.Context) (map[string]*Stored, error) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	s.mu.Lock()
	if !s.listedAt.IsZero() && time.Since(s.listedAt) < s.fresh() {
		out := s.copyLocked()
		s.mu.Unlock()
		return out, nil
	}
	have := maps.Clone(s.byAgent)
	s.mu.Unlock()

	started := time.Now()
	listed := map[string]string{} // agent -> etag
	err := store.Walk(ctx, s.Store, layout.Resources, "", 0, func(o store.ObjectInfo) error {
		if strings.HasSuffix(o.Key, ".json") {
			listed[layout.Name(o.Key)] = o.ETag
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	next := make(map[string]entry, len(listed))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for agent, etag := range listed {
		if e, ok := have[agent]; ok && e.etag == etag {
			next[agent] = e
			continue
		}
		g.Go(func() error {
			var st Stored
			info, err := store.ReadJSON(gctx, s.Store, layout.AgentResources(agent), &st)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return nil // deleted since the listing, or refused by the integrity check
			case err != nil:
				return err
			}
			mu.Lock()
			next[agent] = entry{etag: info.ETag, rep: &st}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for agent, e := range s.byAgent {
		// A report this instance stored while the listing ran is newer than what the listing saw.
		if n, ok := next[agent]; ok && n.rep.Seq < e.rep.Seq {
			next[agent] = e
		}
	}
	s.byAgent, s.listedAt = next, started
	return s.copyLocked(), nil
}

func (s *Service) copyLocked() map[string]*Stored {
	out := make(map[string]*Stored, len(s.byAgent))
	for k, e := range s.byAgent {
		out[k] = e.rep
	}
	return out
}

// forget drops an agent's report from the store and the instance's copy (a retired agent).
func (s *Service) forget(ctx context.Context, agent string) {
	if err := s.Store.Delete(ctx, layout.AgentResources(agent)); err != nil {
		s.log().Warn("dropping a retired agent's inventory failed; tried again at the next query", "agent", agent, "err", err)
		return
	}
	s.mu.Lock()
	delete(s.byAgent, agent)
	s.mu.Unlock()
	s.log().Info("dropped a retired agent's inventory", "agent", agent)
}

// Item is one resource as operators see it: the agent's resource with the agent it is on and when the
// hub last heard of it.
type Item struct {
	Agent      string         `json:"agent"`
	AgentName  string         `json:"agentName"`
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Name       string         `json:"name,omitempty"`
	Parent     string         `json:"parent,omitempty"`
	Status     string         `json:"status" enum:"ok,degraded,failed,stopped,unknown"`
	Reason     string         `json:"reason,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
	ChangedAt  time.Time      `json:"changedAt,omitzero" doc:"When the agent saw the resource's status or attributes last change."`
	LastSeen   time.Time      `json:"lastSeen" doc:"When the hub received the agent's newest report, which listed the resource."`
}

// PageTime orders resources most recently changed first.
func (i Item) PageTime() time.Time { return i.ChangedAt }

// PageID is the resource's place in the fleet: agent, type and id.
func (i Item) PageID() string { return i.Agent + "/" + i.Type + "/" + i.ID }

// SourceError is an inventory source of an agent that could not report everything.
type SourceError struct {
	Agent     string `json:"agent"`
	AgentName string `json:"agentName"`
	wire.InventoryError
	LastSeen time.Time `json:"lastSeen"`
}

// Query chooses resources; empty fields choose all.
type Query struct {
	Type   string
	Agent  string   // id or name
	Labels []string // k=v, every one must match the agent's labels
	Status string
	// Q is text the resource's id, name, reason or a string attribute contains (case-insensitive).
	Q      string
	Cursor string
	Limit  int
}

// Page is one page of resources, and the errors of the sources of the agents chosen.
type Page struct {
	Resources []Item        `json:"resources"`
	Errors    []SourceError `json:"errors,omitempty" doc:"Inventory sources of the chosen agents that could not report everything, and why."`
	Next      string        `json:"next,omitempty" doc:"The cursor of the next page; absent on the last."`
}

// List answers a query over the whole fleet from the instance's copy: resources most recently
// changed first, paged. Agents retired since they reported are left out, and their reports dropped.
func (s *Service) List(ctx context.Context, q Query) (Page, error) {
	if q.Status != "" && !slices.Contains(wire.ResourceStatuses, q.Status) {
		return Page{}, &domain.Error{Kind: domain.KindInvalid, Field: "query.status", Msg: fmt.Sprintf("status %q: one of %s", q.Status, strings.Join(wire.ResourceStatuses, ", "))}
	}
	var selector string
	for _, l := range q.Labels {
		if k, _, ok := strings.Cut(l, "="); !ok || k == "" || strings.Contains(l, ",") {
			return Page{}, &domain.Error{Kind: domain.KindInvalid, Field: "query.label", Msg: fmt.Sprintf("label %q: want key=value (repeat label for more)", l)}
		}
	}
	selector = strings.Join(q.Labels, ",")
	targets, err := s.Fleet.Identities(ctx, true)
	if err != nil {
		return Page{}, err
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		return Page{}, err
	}
	byID := make(map[string]fleet.Target, len(targets))
	for _, t := range targets {
		byID[t.Ident.ID] = t
	}
	if q.Agent != "" && !slices.ContainsFunc(targets, func(t fleet.Target) bool { return t.Ident.ID == q.Agent || t.Ident.Name == q.Agent }) {
		return Page{}, domain.NotFound("no agent %q (see pulse agents)", q.Agent)
	}
	var items []Item
	var errs []SourceError
	for agent, st := range snap {
		t, known := byID[agent]
		if known && t.Retired != nil {
			s.forget(ctx, agent)
			continue
		}
		if !known {
			continue // its identity does not read (refused by the integrity check): not an agent
		}
		if q.Agent != "" && t.Ident.ID != q.Agent && t.Ident.Name != q.Agent {
			continue
		}
		if selector != "" && !fleet.Matches(t, []string{selector}) {
			continue
		}
		for _, e := range st.Errors {
			errs = append(errs, SourceError{Agent: agent, AgentName: t.Ident.Name, InventoryError: e, LastSeen: st.ReceivedAt})
		}
		for _, r := range st.Resources {
			it := itemOf(agent, t.Ident.Name, st.ReceivedAt, r)
			if q.matches(it) {
				items = append(items, it)
			}
		}
	}
	slices.SortFunc(errs, func(a, b SourceError) int { return strings.Compare(a.Agent+a.Source, b.Agent+b.Source) })
	out, next, err := paging.Page(items, q.Cursor, q.Limit, func(it Item) (Item, bool, error) { return it, true, nil })
	if err != nil {
		return Page{}, err
	}
	return Page{Resources: out, Errors: errs, Next: next}, nil
}

func itemOf(agent, name string, seen time.Time, r wire.Resource) Item {
	return Item{Agent: agent, AgentName: name, Type: r.Type, ID: r.ID, Name: r.Name, Parent: r.Parent, Status: r.Status,
		Reason: r.Reason, Attributes: r.Attributes, ChangedAt: r.ChangedAt, LastSeen: seen}
}

func (q Query) matches(it Item) bool {
	if (q.Type != "" && it.Type != q.Type) || (q.Status != "" && it.Status != q.Status) {
		return false
	}
	if q.Q == "" {
		return true
	}
	needle := strings.ToLower(q.Q)
	has := func(s string) bool { return strings.Contains(strings.ToLower(s), needle) }
	if has(it.ID) || has(it.Name) || has(it.Reason) {
		return true
	}
	for _, v := range it.Attributes {
		if s, ok := v.(string); ok && has(s) {
			return true
		}
	}
	return false
}

// AgentInventory is one agent's newest report as operators see it.
type AgentInventory struct {
	Agent     string                `json:"agent"`
	AgentName string                `json:"agentName"`
	Seq       uint64                `json:"seq,omitempty"`
	At        time.Time             `json:"at,omitzero" doc:"When the agent collected it."`
	LastSeen  time.Time             `json:"lastSeen,omitzero" doc:"When the hub received it."`
	Resources []Item                `json:"resources"`
	Errors    []wire.InventoryError `json:"errors,omitempty"`
}

// OfAgent is one agent's newest report, read from the store (one GET), so it shows a report another
// instance took a moment ago. An agent that never reported has an empty inventory.
func (s *Service) OfAgent(ctx context.Context, agent, name string) (AgentInventory, error) {
	out := AgentInventory{Agent: agent, AgentName: name, Resources: []Item{}}
	var st Stored
	info, err := store.ReadJSON(ctx, s.Store, layout.AgentResources(agent), &st)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return out, nil
	case err != nil:
		return AgentInventory{}, err
	}
	s.remember(agent, entry{etag: info.ETag, rep: &st})
	out.Seq, out.At, out.LastSeen, out.Errors = st.Seq, st.At, st.ReceivedAt, st.Errors
	for _, r := range st.Resources {
		out.Resources = append(out.Resources, itemOf(agent, name, st.ReceivedAt, r))
	}
	return out, nil
}
