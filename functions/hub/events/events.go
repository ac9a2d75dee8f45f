// Package events is how the hub's rooms tell each other what happened without calling each other: a
// room publishes "a result was stored" and whoever cares (the workflow runtime today; plans, alerts and
// metrics later) subscribes. The bus lives in one process; what must survive a crash is in the store
// before an event is published, and the tick makes up for work a dying process did not finish.
package events

import (
	"context"
	"sync"
)

// ResultStored is published once an agent's final result of a command is in the store.
type ResultStored struct {
	Command  string
	Agent    string
	Status   string
	ExitCode *int
	// Execution, Step and Attempt link a command issued by a workflow back to it ("" otherwise).
	Execution string
	Step      string
	Attempt   int
}

// CommandChanged is published when anything about a command was stored (a release, a delivery, a
// start, a result, an approval, a cancel), so live views can look again at once.
type CommandChanged struct {
	Command string
}

// PlanChanged is published when something about a plan was stored (a version, an agent's changed
// status, a rollout event), so live views look again at once.
type PlanChanged struct {
	Plan string
}

// Topic is one kind of event and its subscribers. Subscribers run in the publisher's goroutine and must
// be quick; slow follow-up work goes through Bus.Later.
type Topic[E any] struct {
	mu   sync.RWMutex
	next int
	subs map[int]func(context.Context, E)
}

// Subscribe adds fn; it is called for every event published from now on, until the returned function
// is called.
func (t *Topic[E]) Subscribe(fn func(context.Context, E)) (unsubscribe func()) {
	t.mu.Lock()
	if t.subs == nil {
		t.subs = map[int]func(context.Context, E){}
	}
	id := t.next
	t.next++
	t.subs[id] = fn
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.subs, id)
		t.mu.Unlock()
	}
}

// Publish calls every subscriber with e.
func (t *Topic[E]) Publish(ctx context.Context, e E) {
	t.mu.RLock()
	subs := make([]func(context.Context, E), 0, len(t.subs))
	for _, fn := range t.subs {
		subs = append(subs, fn)
	}
	t.mu.RUnlock()
	for _, fn := range subs {
		fn(ctx, e)
	}
}

// Bus carries the hub's events.
type Bus struct {
	Results  Topic[ResultStored]
	Commands Topic[CommandChanged]
	Plans    Topic[PlanChanged]

	wg sync.WaitGroup
}

// Later runs fn outside the request that triggered it, with a context that outlives the request but
// keeps its values (who acted, the request id). Wait waits for every such run.
func (b *Bus) Later(ctx context.Context, fn func(context.Context)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(context.WithoutCancel(ctx))
	}()
}

// Wait returns when every run started by Later has ended.
func (b *Bus) Wait() { b.wg.Wait() }
