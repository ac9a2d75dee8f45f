package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// compactEvery is how often Tick compacts and expires: windows are hours at the finest, so once a
// minute is prompt and costs a few listings.
const compactEvery = time.Minute

// Tick compacts and expires at most once a minute per process; the hub's one-second tick calls it.
func (s *Service) Tick(ctx context.Context) {
	s.tickMu.Lock()
	now := s.now()
	if now.Before(s.nextRun) {
		s.tickMu.Unlock()
		return
	}
	s.nextRun = now.Add(compactEvery)
	s.tickMu.Unlock()
	if _, err := s.Compact(ctx); err != nil {
		s.log().Warn("metrics compaction stopped; the next tick tries again", "err", err)
	}
}

// Compacted is what one Compact did.
type Compacted struct {
	// Written counts the rollups this call wrote, by tier; Existing those another hub (or an earlier
	// call) had written.
	Written  map[string]int
	Existing map[string]int
	// Deleted counts objects deleted by retention, by tier.
	Deleted map[string]int
}

// Compact compacts every window that is due and not yet compacted, finest tier first, and deletes
// what is past its tier's retention. A window of a tier is due once it ended Retention.Grace ago
// and, for 1 h and 1 d, its finer windows are compacted; it is compacted while its finer tier still
// keeps it. Each agent's rollup of a window is built from the finer tier in key order and written
// create-only, so hubs compacting at once write the same bytes once; a done marker then spares
// later ticks (and other hubs) the window. Deterministic: the same store gives the same objects.
//
// A batch that arrives for a window already compacted (later than the grace) stays in the raw tier,
// and in every query of the last Retention.Raw, but not in the compacted tiers.
func (s *Service) Compact(ctx context.Context) (Compacted, error) {
	c := Compacted{Written: map[string]int{}, Existing: map[string]int{}, Deleted: map[string]int{}}
	now, ret := s.now(), s.retention()
	for _, t := range tiers[1:] {
		oldest := t.windowStart(now.Add(-t.finer.keep(ret)))
		pending := false
		for w := oldest; !t.windowEnd(w).Add(ret.Grace).After(now); w = t.windowEnd(w) {
			pending = pending || !s.isDone(t, w)
		}
		if !pending {
			continue // every due window known compacted: no request
		}
		if err := s.loadDone(ctx, t, oldest); err != nil {
			return c, err
		}
		for w := oldest; !t.windowEnd(w).Add(ret.Grace).After(now); w = t.windowEnd(w) {
			if s.isDone(t, w) || !s.finerSettled(t, w, now, ret) {
				continue
			}
			if err := s.compactWindow(ctx, t, w, &c); err != nil {
				return c, fmt.Errorf("compact %s window %s: %w", t.name, layout.MetricsWindow(t.name, w), err)
			}
		}
	}
	if s.expireDue(now) {
		for _, t := range tiers {
			if err := s.expire(ctx, t, now.Add(-t.keep(ret)), &c); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

// expireEvery is how often retention is applied: windows are hours at the finest, so a few minutes
// late is nothing, and an idle hub lists each tier a few times an hour instead of every minute.
const expireEvery = 10 * time.Minute

// expireDue says whether Compact should apply retention now (the first time, and every expireEvery
// after, by the room's clock, which may also go back in tests).
func (s *Service) expireDue(now time.Time) bool {
	s.doneMu.Lock()
	defer s.doneMu.Unlock()
	if !s.lastExpire.IsZero() && now.Sub(s.lastExpire) < expireEvery && !now.Before(s.lastExpire) {
		return false
	}
	s.lastExpire = now
	return true
}

// finerSettled says whether every finer window within w is compacted (raw needs nothing), or is
// older than the finer tier's own compaction reaches (it never will be).
func (s *Service) finerSettled(t *tier, w time.Time, now time.Time, ret Retention) bool {
	f := t.finer
	if f == tierRaw {
		return true
	}
	reach := f.windowStart(now.Add(-f.finer.keep(ret)))
	for _, fw := range f.windows(w, t.windowEnd(w)) {
		if !fw.Before(reach) && !s.isDone(f, fw) {
			return false
		}
	}
	return true
}

func (s *Service) isDone(t *tier, w time.Time) bool {
	s.doneMu.Lock()
	defer s.doneMu.Unlock()
	return s.done[layout.MetricsDone(t.name, w)]
}

func (s *Service) markDone(key string) {
	s.doneMu.Lock()
	defer s.doneMu.Unlock()
	if s.done == nil {
		s.done = map[string]bool{}
	}
	s.done[key] = true
}

// loadDone learns the windows of t from oldest on that any hub marked compacted: one listing.
func (s *Service) loadDone(ctx context.Context, t *tier, oldest time.Time) error {
	start := layout.MetricsDone(t.name, oldest)
	return store.Walk(ctx, s.Store, layout.MetricsDoneOf(t.name), start[:len(start)-len(".json")], 0, func(o store.ObjectInfo) error {
		s.markDone(o.Key)
		return nil
	})
}

// doneMarker is the content of a done marker.
type doneMarker struct {
	Tier   string `json:"tier"`
	Window string `json:"window"`
	Agents int    `json:"agents"`
}

// compactWindow writes every agent's rollup of one window, then the window's done marker.
func (s *Service) compactWindow(ctx context.Context, t *tier, w time.Time, c *Compacted) error {
	agents, err := s.agentsIn(ctx, t.finer, w, t.windowEnd(w))
	if err != nil {
		return err
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(compactParallel)
	for _, agent := range agents {
		g.Go(func() error {
			o, err := s.compactAgent(gctx, t, w, agent)
			mu.Lock()
			defer mu.Unlock()
			switch o {
			case wrote:
				c.Written[t.name]++
			case existed:
				c.Existing[t.name]++
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	done := layout.MetricsDone(t.name, w)
	if _, err := store.CreateJSON(ctx, s.Store, done, doneMarker{Tier: t.name, Window: layout.MetricsWindow(t.name, w), Agents: len(agents)}); err != nil {
		return fmt.Errorf("mark %s: %w", done, err)
	}
	s.markDone(done)
	return nil
}

// compactParallel is how many agents' rollups of a window are built at once.
const compactParallel = 8

// outcome is what compacting one agent's window did.
type outcome int

const (
	failed  outcome = iota
	wrote           // this call wrote the rollup
	existed         // another hub (or an earlier call) had
	empty           // the finer objects hold no series (all planted, say): no rollup
)

// compactAgent writes one agent's rollup of a window, unless it is written already.
func (s *Service) compactAgent(ctx context.Context, t *tier, w time.Time, agent string) (outcome, error) {
	key := layout.MetricsRollup(t.name, w, agent)
	if r, err := s.rollup(ctx, key); err != nil {
		return failed, err
	} else if r != nil {
		return existed, nil
	}
	a := newAcc(t.res)
	reads := 0
	if err := s.collect(ctx, agent, t.finer, w, t.windowEnd(w), matcher{}, a, &reads); err != nil {
		return failed, err
	}
	if len(a.series) == 0 {
		return empty, nil
	}
	r := rollupOf(agent, t, w, a)
	js, err := json.Marshal(r)
	if err != nil {
		return failed, fmt.Errorf("encode %s: %w", key, err)
	}
	gz, err := gzipBytes(js)
	if err != nil {
		return failed, fmt.Errorf("compress %s: %w", key, err)
	}
	_, err = store.PutBytes(ctx, s.Store, key, gz, store.PutOptions{CreateOnly: true, ContentType: "application/gzip"})
	switch {
	case errors.Is(err, store.ErrExists):
		return existed, nil
	case err != nil:
		return failed, fmt.Errorf("store %s: %w", key, err)
	}
	s.cache.put(key, r)
	return wrote, nil
}

// agentsIn lists the agents that have objects of tier t in [from, to): one listing per window.
func (s *Service) agentsIn(ctx context.Context, t *tier, from, to time.Time) ([]string, error) {
	seen := map[string]bool{}
	for _, w := range t.windows(from, to) {
		if err := store.Walk(ctx, s.Store, layout.MetricsWindowOf(t.name, w), "", 0, func(o store.ObjectInfo) error {
			if a := layout.MetricsAgentOf(o.Key); a != "" {
				seen[a] = true
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("list %s: %w", layout.MetricsWindowOf(t.name, w), err)
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}

// expire deletes the objects of t (and t's done markers) whose window ended before cutoff, oldest
// first, stopping at the first window still kept.
func (s *Service) expire(ctx context.Context, t *tier, cutoff time.Time, c *Compacted) error {
	for _, prefix := range []string{layout.MetricsTier(t.name), layout.MetricsDoneOf(t.name)} {
		errKept := errors.New("kept")
		err := store.Walk(ctx, s.Store, prefix, "", 0, func(o store.ObjectInfo) error {
			rest := o.Key[len(prefix):]
			name := rest
			if i := indexAny(rest, "/."); i >= 0 {
				name = rest[:i]
			}
			start, ok := layout.MetricsWindowStart(t.name, name)
			if !ok {
				return nil // not a window's: leave it
			}
			if t.windowEnd(start).After(cutoff) {
				return errKept
			}
			if err := s.Store.Delete(ctx, o.Key); err != nil {
				return fmt.Errorf("delete %s: %w", o.Key, err)
			}
			if prefix == layout.MetricsTier(t.name) {
				c.Deleted[t.name]++
			}
			return nil
		})
		if err != nil && !errors.Is(err, errKept) {
			return fmt.Errorf("expire %s: %w", prefix, err)
		}
	}
	return nil
}

func indexAny(s, chars string) int {
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(chars); j++ {
			if s[i] == chars[j] {
				return i
			}
		}
	}
	return -1
}
