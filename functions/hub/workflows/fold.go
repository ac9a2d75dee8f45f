package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/workflow"
)

// The driver keeps each execution's fold in memory and reads only the events recorded since, so a
// round on an execution costs a listing and the new events, not every event it ever had.
//
// Event keys are UUIDv7 ids, so they sort by the time the writing hub gave them; but an event written by
// another hub can land with an id a little older than the newest one folded here (its clock runs
// behind, its write was slow). So a round does not list from the newest key folded: it lists from
// eventLookback before it (layout.EventsSince), and every wideEvery from wideLookback before it, and
// passes over the keys it has already handled, which it remembers for the wide window (fold.seen). A
// key that turns up sorting before the newest folded one is put in its place and the state is folded
// again from the events in memory, so the state is always Fold of the events read, in key order:
// exactly what a full read of them would give.
//
// Two windows, because one costs what it lists on every round: a round lists every key of the window,
// and in a busy execution two minutes hold hundreds of events, which made each round's listing grow
// with the execution (measured: BenchmarkWorkflowEventCost, 77 ms an event at 1,000 events against 31 at
// 100 with a two-minute window on every round). Ten seconds, the allowance the bell feed makes for the
// same skew, covers hubs kept in time by NTP and ordinary writes on every round; the wide window, the
// audit seals' allowance, catches a slower straggler within wideEvery.
//
// The cache is never the only thing standing between the driver and a correct state: a miss (another
// process, a restart, an entry dropped by the bound) reads and folds every event, and so does a round
// on an entry older than foldTrust, which bounds how long an event landing later than the wide window
// (a hub paused mid-write, a clock far behind) can go unseen by this process. Objects that fail the
// hub's integrity check read as store.ErrNotFound through the signed store and are passed over, as in a
// full read, and remembered so they are not read again within the window.
const (
	// eventLookback is how far before the newest folded event every round lists.
	eventLookback = 10 * time.Second
	// wideLookback is how far before it a round lists once every wideEvery.
	wideLookback = 2 * time.Minute
	wideEvery    = 30 * time.Second
	// foldTrust is how long a kept fold is caught up incrementally before a full read checks it.
	foldTrust = 10 * time.Minute
	// maxFolds and maxFoldedEvents bound the executions kept and the events they hold in total.
	maxFolds        = 1024
	maxFoldedEvents = 200_000
	// maxDefinitions bounds the parsed definitions kept, and the schedules' latest fires.
	maxDefinitions = 256
)

// folded is one execution's fold as this process knows it. Its mutex is held for a whole round, so
// concurrent rounds on one execution in this process read each new event once.
type folded struct {
	mu sync.Mutex
	fold

	// own holds events this process stored and no round has listed yet, as the bytes it stored: a
	// round folds them from here instead of reading them back (a drive after a result would otherwise
	// read the result's event it just wrote). Its own mutex, so recording an event never waits for a
	// round; taken after mu when both are held.
	ownMu sync.Mutex
	own   map[string][]byte
}

// wrote gives the kept fold of exec (if there is one) an event this process has just stored.
func (s *Service) wrote(exec, key string, b []byte) {
	f, ok := s.mem.get().folds.get(exec)
	if !ok {
		return // no fold kept: the next round reads everything anyway
	}
	f.ownMu.Lock()
	defer f.ownMu.Unlock()
	if f.own == nil {
		f.own = map[string][]byte{}
	}
	f.own[key] = b
}

// take returns and forgets the stored bytes of an event this process wrote under key.
func (f *folded) take(key string) ([]byte, bool) {
	f.ownMu.Lock()
	defer f.ownMu.Unlock()
	b, ok := f.own[key]
	delete(f.own, key)
	return b, ok
}

// forgetOwnBelow drops events of own that no round will list again (a round listed and read them
// itself, racing with wrote).
func (f *folded) forgetOwnBelow(floor string) {
	f.ownMu.Lock()
	defer f.ownMu.Unlock()
	for k := range f.own {
		if k <= floor {
			delete(f.own, k)
		}
	}
}

// event is one listed event: from own when this process wrote it, else read from the store.
func (s *Service) event(ctx context.Context, f *folded, key string) (workflow.Event, bool, error) {
	if b, ok := f.take(key); ok {
		var e workflow.Event
		if err := json.Unmarshal(b, &e); err != nil {
			return e, false, fmt.Errorf("decode event %s: %w", key, err)
		}
		return e, true, nil
	}
	return s.readEvent(ctx, key)
}

// fold is what folded keeps; the zero value trusts nothing.
type fold struct {
	def    *workflow.Definition // what folder was built with; nil until the first full read
	folder *workflow.Folder
	keys   []string         // every event key folded, ascending
	events []workflow.Event // the event of each key
	seen   map[string]bool  // keys listed after wide and already handled (folded or refused)
	floor  string           // where rounds list from; it never moves back
	wide   string           // where a round lists from every wideEvery; it never moves back
	wideAt time.Time        // when a round last listed from wide
	fullAt time.Time        // when every event was last read
	state  *workflow.State  // the fold of events, a copy the folder no longer changes
}

// caches holds the driver's in-memory caches, made on first use so a Service needs no constructor.
type caches struct {
	once  sync.Once
	folds *lru[*folded]
	defs  *lru[*workflow.Definition]
	fires *lru[time.Time] // the latest fired slot of a scheduled version (tick.go)
}

func (c *caches) get() *caches {
	c.once.Do(func() {
		c.folds = newLRU[*folded](maxFolds, maxFoldedEvents)
		c.defs = newLRU[*workflow.Definition](maxDefinitions, maxDefinitions)
		c.fires = newLRU[time.Time](maxDefinitions, maxDefinitions)
	})
	return c
}

// definition is the parsed definition of a workflow version. Versions are written once, so each is
// read and parsed (its conditions compiled) once per process, not on every round.
func (s *Service) definition(ctx context.Context, name string, version int) (*workflow.Definition, error) {
	v, err := s.versions.Get(ctx, s.Store, layout.WorkflowVersion(name, version))
	if err != nil {
		return nil, fmt.Errorf("workflow %s version %d: %w", name, version, err)
	}
	def, err := s.parsed(v)
	if err != nil {
		return nil, fmt.Errorf("workflow %s version %d no longer parses: %w", name, version, err)
	}
	return def, nil
}

// parsed is v's definition, parsed once per process per (name, version).
func (s *Service) parsed(v *Version) (*workflow.Definition, error) {
	defs := s.mem.get().defs
	key := fmt.Sprintf("%s@%d", v.Name, v.Version)
	if def, ok := defs.get(key); ok {
		return def, nil
	}
	def, err := workflow.Parse([]byte(v.Source))
	if err != nil {
		return nil, err
	}
	defs.put(key, def, 1)
	return def, nil
}

// foldEvents returns execution id's state and events, catching up the kept fold with what was recorded
// since, or reading everything when there is no fold to trust.
func (s *Service) foldEvents(ctx context.Context, id string, def *workflow.Definition) (*workflow.State, []workflow.Event, error) {
	folds := s.mem.get().folds
	f := folds.getOrAdd(id, func() *folded { return &folded{} })
	same := func(g *folded) bool { return g == f } // not dropped and replaced meanwhile
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	if f.def != def || time.Since(f.fullAt) > foldTrust {
		err = s.foldAll(ctx, f, id, def)
	} else {
		err = s.catchUp(ctx, f, id)
	}
	if err != nil {
		f.fold = fold{} // half caught up: trust none of it
		folds.remove(id, same)
		return nil, nil, err
	}
	folds.weigh(id, same, len(f.keys))
	return f.state, slices.Clip(f.events), nil
}

// readEvent reads one event; ok is false for an object that is gone or failed the integrity check.
func (s *Service) readEvent(ctx context.Context, key string) (e workflow.Event, ok bool, err error) {
	if _, err := store.ReadJSON(ctx, s.Store, key, &e); errors.Is(err, store.ErrNotFound) {
		return e, false, nil // refused by the integrity check: not an event of this execution
	} else if err != nil {
		return e, false, err
	}
	return e, true, nil
}

// foldAll reads and folds every event of the execution.
func (s *Service) foldAll(ctx context.Context, f *folded, id string, def *workflow.Definition) error {
	folder, err := workflow.NewFolder(def, id)
	if err != nil {
		return err
	}
	var keys []string
	var events []workflow.Event
	seen := map[string]bool{}
	err = store.Walk(ctx, s.Store, layout.EventsOf(id), "", 0, func(o store.ObjectInfo) error {
		e, ok, err := s.event(ctx, f, o.Key)
		if err != nil {
			return err
		}
		seen[o.Key] = true
		if ok {
			keys, events = append(keys, o.Key), append(events, e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	folder.Add(events...)
	now := time.Now()
	f.fold = fold{def: def, folder: folder, keys: keys, events: events, seen: seen, fullAt: now, wideAt: now, state: folder.State()}
	f.raiseFloor(id)
	return nil
}

// catchUp folds what was recorded since the last round: the keys from the floor (or the wide floor,
// when it is time) on that it has not handled yet.
func (s *Service) catchUp(ctx context.Context, f *folded, id string) error {
	from := f.floor
	if now := time.Now(); now.Sub(f.wideAt) >= wideEvery {
		from, f.wideAt = f.wide, now
	}
	late, changed := false, false
	err := store.Walk(ctx, s.Store, layout.EventsOf(id), from, 0, func(o store.ObjectInfo) error {
		if f.seen[o.Key] {
			return nil
		}
		e, ok, err := s.event(ctx, f, o.Key)
		if err != nil {
			return err
		}
		f.seen[o.Key] = true
		if !ok {
			return nil
		}
		changed = true
		if n := len(f.keys); n > 0 && o.Key < f.keys[n-1] {
			// Older than an event already folded: into its place, in new slices (callers hold the old).
			i, _ := slices.BinarySearch(f.keys, o.Key)
			f.keys = slices.Concat(f.keys[:i], []string{o.Key}, f.keys[i:])
			f.events = slices.Concat(f.events[:i], []workflow.Event{e}, f.events[i:])
			late = true
			return nil
		}
		f.keys, f.events = append(f.keys, o.Key), append(f.events, e)
		if !late {
			f.folder.Add(e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if late {
		folder, err := workflow.NewFolder(f.def, id)
		if err != nil {
			return err
		}
		folder.Add(f.events...)
		f.folder = folder
	}
	if changed {
		f.state = f.folder.State()
	}
	f.raiseFloor(id)
	return nil
}

// raiseFloor moves the listing starts to eventLookback and wideLookback before the newest event
// folded, or before now when that event's id is ahead of this hub's clock (so a hub whose clock runs
// ahead cannot push the windows past the events of the others), and forgets the keys they leave behind.
func (f *folded) raiseFloor(id string) {
	if len(f.keys) == 0 {
		return
	}
	t, ok := layout.EventTime(f.keys[len(f.keys)-1])
	if !ok {
		return // not a UUIDv7: keep listing from where it was
	}
	if now := time.Now(); now.Before(t) {
		t = now
	}
	f.floor = max(f.floor, layout.EventsSince(id, t.Add(-eventLookback)))
	f.forgetOwnBelow(f.floor)
	wide := layout.EventsSince(id, t.Add(-wideLookback))
	if wide <= f.wide {
		return
	}
	f.wide = wide
	for k := range f.seen {
		if k <= wide {
			delete(f.seen, k)
		}
	}
}
