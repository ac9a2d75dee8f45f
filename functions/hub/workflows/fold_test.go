package workflows

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
	"github.com/pulsehq/pulse/functions/workflow"
)

// counting counts the requests that reach the store, by kind.
type counting struct {
	store.Store
	gets, lists, puts, deletes atomic.Int64
}

func (c *counting) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, k, o)
}

func (c *counting) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	c.puts.Add(1)
	return c.Store.Put(ctx, k, r, n, o)
}

func (c *counting) List(ctx context.Context, p, after string, limit int) (store.Page, error) {
	c.lists.Add(1)
	return c.Store.List(ctx, p, after, limit)
}

func (c *counting) Delete(ctx context.Context, k string) error {
	c.deletes.Add(1)
	return c.Store.Delete(ctx, k)
}

func (c *counting) reset() {
	c.gets.Store(0)
	c.lists.Store(0)
	c.puts.Store(0)
	c.deletes.Store(0)
}

// bench is one execution of a workflow of steps execute steps and a final long wait, in a signed
// local store seen through a counting wrapper; raw is the store under the integrity check, where
// anyone with the bucket's credentials could write.
type bench struct {
	t     *testing.T
	ctx   context.Context
	raw   store.Store
	store *counting
	id    string
	steps int
	n     int // events written
}

func newBench(t *testing.T, steps int) *bench {
	t.Helper()
	raw, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	sig, err := signed.Wrap(raw, &hubkey.Keys{Current: priv}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{t: t, ctx: context.Background(), raw: raw, store: &counting{Store: sig}, id: uuid.Must(uuid.NewV7()).String(), steps: steps}
	var src strings.Builder
	src.WriteString("steps:\n")
	for i := range steps {
		fmt.Fprintf(&src, "  - {name: s%d, type: execute, command: noop, targets: [all]}\n", i)
	}
	src.WriteString("  - {name: hold, type: wait, duration: 24h}\n")
	b.create(layout.WorkflowVersion("w", 1), Version{Name: "w", Version: 1, Source: src.String()})
	b.create(layout.Execution(b.id), ExecutionRecord{ID: b.id, Workflow: "w", Version: 1})
	return b
}

func (b *bench) create(key string, v any) {
	b.t.Helper()
	if _, err := store.CreateJSON(b.ctx, b.store, key, v); err != nil {
		b.t.Fatal(err)
	}
}

// eventID is a UUIDv7 made at t.
func eventID(t time.Time) string {
	u := uuid.Must(uuid.NewV7())
	ms := t.UnixMilli()
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	return u.String()
}

// add records an event with an id made at "at".
func (b *bench) add(at time.Time, e workflow.Event) {
	b.t.Helper()
	e.ID, e.At = eventID(at), at
	b.create(layout.Event(b.id, e.ID), e)
	b.n++
}

// run records a whole execution up to its wait: started, then each step's command accepted and its
// result, one event a second from start.
func (b *bench) run(start time.Time) time.Time {
	at := start
	b.add(at, workflow.Event{Kind: workflow.EventStarted, By: "alice"})
	for i := range b.steps {
		cmd := workflow.CommandID(b.id, fmt.Sprintf("s%d", i), 1)
		at = at.Add(time.Second)
		b.add(at, workflow.Event{Kind: workflow.EventCommandAccepted, CommandID: cmd, Agents: []string{"a1"}})
		at = at.Add(time.Second)
		code := 0
		b.add(at, workflow.Event{Kind: workflow.EventCommandResult, CommandID: cmd, Agent: "a1", Status: "succeeded", ExitCode: &code})
	}
	return at
}

// want is the fold of every event in the store, read without any cache.
func (b *bench) want() *workflow.State {
	b.t.Helper()
	v, err := (&Service{Store: b.store}).definition(b.ctx, "w", 1)
	if err != nil {
		b.t.Fatal(err)
	}
	var events []workflow.Event
	err = store.Walk(b.ctx, b.store, layout.EventsOf(b.id), "", 0, func(o store.ObjectInfo) error {
		var e workflow.Event
		if _, err := store.ReadJSON(b.ctx, b.store, o.Key, &e); err == nil {
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		b.t.Fatal(err)
	}
	st, err := workflow.Fold(v, b.id, events)
	if err != nil {
		b.t.Fatal(err)
	}
	return st
}

func (b *bench) load(s *Service) *Execution {
	b.t.Helper()
	ex, err := s.Load(b.ctx, b.id)
	if err != nil {
		b.t.Fatal(err)
	}
	return ex
}

// TestIncrementalFoldIsTheFullFold: whatever happened between two rounds, the state a round gives
// from the kept fold is exactly the fold of every event in the store.
func TestIncrementalFoldIsTheFullFold(t *testing.T) {
	result := func(b *bench, step int, status string) workflow.Event {
		code := 0
		return workflow.Event{Kind: workflow.EventCommandResult, CommandID: workflow.CommandID(b.id, fmt.Sprintf("s%d", step), 1), Agent: "a1", Status: status, ExitCode: &code}
	}
	cases := []struct {
		name string
		// before records events before the first round; between does what the round after it must see,
		// and may return another Service (a restarted hub).
		before  func(b *bench, s *Service, now time.Time)
		between func(b *bench, s *Service, now time.Time) *Service
	}{
		{"cold cache", func(b *bench, s *Service, now time.Time) { b.run(now.Add(-time.Hour)) }, nil},
		{"new events since the last round", func(b *bench, s *Service, now time.Time) {
			b.add(now.Add(-time.Hour), workflow.Event{Kind: workflow.EventStarted, By: "alice"})
		}, func(b *bench, s *Service, now time.Time) *Service {
			cmd := workflow.CommandID(b.id, "s0", 1)
			b.add(now.Add(-time.Second), workflow.Event{Kind: workflow.EventCommandAccepted, CommandID: cmd, Agents: []string{"a1"}})
			b.add(now, result(b, 0, "succeeded"))
			return nil
		}},
		{"an event older than the last folded", func(b *bench, s *Service, now time.Time) {
			b.add(now.Add(-time.Minute), workflow.Event{Kind: workflow.EventStarted, By: "alice"})
			b.add(now.Add(-50*time.Second), workflow.Event{Kind: workflow.EventCommandAccepted, CommandID: workflow.CommandID(b.id, "s0", 1), Agents: []string{"a1"}})
			b.add(now, result(b, 0, "succeeded"))
		}, func(b *bench, s *Service, now time.Time) *Service {
			// Another hub's result for the same agent, with an id 5s older: in key order it came first,
			// so it is the one that counts and the step failed.
			b.add(now.Add(-5*time.Second), result(b, 0, "failed"))
			return nil
		}},
		{"an event older than the last folded, beyond the short lookback", func(b *bench, s *Service, now time.Time) {
			b.add(now.Add(-time.Minute), workflow.Event{Kind: workflow.EventStarted, By: "alice"})
			b.add(now.Add(-50*time.Second), workflow.Event{Kind: workflow.EventCommandAccepted, CommandID: workflow.CommandID(b.id, "s0", 1), Agents: []string{"a1"}})
			b.add(now, result(b, 0, "succeeded"))
		}, func(b *bench, s *Service, now time.Time) *Service {
			// 30s older: found by the round that lists the wide window, wideEvery after the last one.
			b.add(now.Add(-30*time.Second), result(b, 0, "failed"))
			f, _ := s.mem.get().folds.get(b.id)
			f.wideAt = f.wideAt.Add(-wideEvery)
			return nil
		}},
		{"an object that fails the integrity check", func(b *bench, s *Service, now time.Time) {
			b.run(now.Add(-time.Minute))
		}, func(b *bench, s *Service, now time.Time) *Service {
			forged := layout.Event(b.id, eventID(now))
			if _, err := store.PutBytes(b.ctx, b.raw, forged, []byte(`{"kind":"cancelled","by":"mallory"}`), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"the hub restarted", func(b *bench, s *Service, now time.Time) { b.run(now.Add(-time.Hour)) }, func(b *bench, s *Service, now time.Time) *Service {
			b.add(now, result(b, 1, "failed"))
			return &Service{Store: b.store}
		}},
		{"the kept fold is older than foldTrust", func(b *bench, s *Service, now time.Time) { b.run(now.Add(-time.Hour)) }, func(b *bench, s *Service, now time.Time) *Service {
			// An event landing far later than the lookback is missed by the incremental read, and found by
			// the full read that a fold kept longer than foldTrust gets.
			b.add(now.Add(-time.Hour-5*time.Minute), workflow.Event{Kind: workflow.EventCancelled, By: "carol"})
			f, _ := s.mem.get().folds.get(b.id)
			f.fullAt = f.fullAt.Add(-foldTrust - time.Second)
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBench(t, 3)
			s := &Service{Store: b.store}
			now := time.Now()
			c.before(b, s, now)
			if ex := b.load(s); !reflect.DeepEqual(ex.State, b.want()) {
				t.Fatalf("first round:\n%+v\nwant\n%+v", ex.State, b.want())
			}
			if c.between != nil {
				if restarted := c.between(b, s, now); restarted != nil {
					s = restarted
				}
			}
			ex := b.load(s)
			if want := b.want(); !reflect.DeepEqual(ex.State, want) {
				t.Fatalf("second round:\n%+v\nwant\n%+v", ex.State, want)
			}
			if len(ex.Events) != ex.State.Events {
				t.Errorf("%d events kept, %d folded", len(ex.Events), ex.State.Events)
			}
			if again := b.load(s); !reflect.DeepEqual(again.State, ex.State) {
				t.Errorf("a round with nothing new changed the state")
			}
		})
	}
}

// TestRoundReadsOnlyNewEvents: once an execution's fold is kept, a round of the driver costs one
// listing and one read per new event, however many events the execution has; the first round (a cold
// cache) reads them all.
func TestRoundReadsOnlyNewEvents(t *testing.T) {
	const fresh = 3
	for _, steps := range []int{5, 50, 499} {
		t.Run(fmt.Sprint(steps*2+1, " events"), func(t *testing.T) {
			b := newBench(t, steps)
			s := &Service{Store: b.store}
			now := time.Now()
			b.run(now.Add(-3 * time.Hour))
			b.store.reset()
			if _, err := s.drive(b.ctx, b.id); err != nil {
				t.Fatal(err)
			}
			if got, want := b.store.gets.Load(), int64(b.n+2); got != want { // every event, the record, the version
				t.Errorf("cold round: %d reads, want %d", got, want)
			}
			for round := range 3 {
				for i := range fresh {
					b.add(now.Add(time.Duration(round*fresh+i)*time.Millisecond), workflow.Event{Kind: workflow.EventTimerFired, Timer: fmt.Sprint("nothing-", round, i)})
				}
				b.store.reset()
				ex, err := s.drive(b.ctx, b.id)
				if err != nil {
					t.Fatal(err)
				}
				if g, l, p, d := b.store.gets.Load(), b.store.lists.Load(), b.store.puts.Load(), b.store.deletes.Load(); g != fresh || l != 1 || p != 0 || d != 0 {
					t.Errorf("round %d: %d reads, %d listings, %d writes, %d deletes; want %d, 1, 0, 0", round, g, l, p, d, fresh)
				}
				if ex.State.Events != b.n || ex.State.Steps["hold"].Status != workflow.StepRunning {
					t.Fatalf("round %d: %d events folded of %d, hold %s", round, ex.State.Events, b.n, ex.State.Steps["hold"].Status)
				}
			}
		})
	}
}

// TestOwnEventsAreNotReadBack: events this process recorded are folded from the bytes it stored, so
// the round after them costs one listing and no read, and gives exactly the full fold; an event
// another hub recorded beside them is still read.
func TestOwnEventsAreNotReadBack(t *testing.T) {
	b := newBench(t, 5)
	s := &Service{Store: b.store}
	now := time.Now()
	b.run(now.Add(-time.Hour))
	b.load(s) // the fold is kept from here on
	code := 0
	own := []workflow.Event{
		{Kind: workflow.EventTimerFired, Timer: "own-1"},
		{Kind: workflow.EventCommandAccepted, CommandID: workflow.CommandID(b.id, "s9", 1), Agents: []string{"a1"}},
		{Kind: workflow.EventCommandResult, CommandID: workflow.CommandID(b.id, "s9", 1), Agent: "a1", Status: "failed", ExitCode: &code},
	}
	for _, e := range own {
		if err := s.addEvent(b.ctx, b.id, e); err != nil {
			t.Fatal(err)
		}
	}
	b.store.reset()
	ex := b.load(s)
	if g, l := b.store.gets.Load(), b.store.lists.Load(); g != 0 || l != 1 {
		t.Errorf("round after %d events of its own: %d reads, %d listings; want 0, 1", len(own), g, l)
	}
	if want := b.want(); !reflect.DeepEqual(ex.State, want) {
		t.Fatalf("state from own events:\n%+v\nwant\n%+v", ex.State, want)
	}
	b.add(time.Now(), workflow.Event{Kind: workflow.EventTimerFired, Timer: "another hub's"})
	s.addEvent(b.ctx, b.id, workflow.Event{Kind: workflow.EventTimerFired, Timer: "own-2"})
	b.store.reset()
	ex = b.load(s)
	if g := b.store.gets.Load(); g != 1 {
		t.Errorf("round after one event of another hub and one of its own: %d reads, want 1", g)
	}
	if want := b.want(); !reflect.DeepEqual(ex.State, want) {
		t.Fatalf("state:\n%+v\nwant\n%+v", ex.State, want)
	}
}

// TestConcurrentRounds: rounds on one execution from many goroutines while events are recorded share
// the kept fold safely (run with -race), and end on the full fold.
func TestConcurrentRounds(t *testing.T) {
	b := newBench(t, 20)
	s := &Service{Store: b.store}
	now := time.Now()
	b.add(now.Add(-time.Minute), workflow.Event{Kind: workflow.EventStarted, By: "alice"})
	done := make(chan struct{})
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				ex, err := s.Load(b.ctx, b.id)
				if err != nil {
					errs <- err
					return
				}
				_ = ex.View().State.Steps["s0"].Status // read what a client would
				_ = workflow.Next(ex.Def, ex.State, time.Now())
			}
		}()
	}
	for i := range 20 {
		cmd := workflow.CommandID(b.id, fmt.Sprintf("s%d", i), 1)
		code := 0
		b.add(now.Add(time.Duration(2*i)*time.Millisecond), workflow.Event{Kind: workflow.EventCommandAccepted, CommandID: cmd, Agents: []string{"a1"}})
		b.add(now.Add(time.Duration(2*i+1)*time.Millisecond), workflow.Event{Kind: workflow.EventCommandResult, CommandID: cmd, Agent: "a1", Status: "succeeded", ExitCode: &code})
	}
	close(done)
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if ex := b.load(s); !reflect.DeepEqual(ex.State, b.want()) {
		t.Fatalf("after concurrent rounds:\n%+v\nwant\n%+v", ex.State, b.want())
	}
}
