package local_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

// slowGets counts reads and holds each until released, so concurrent first reads overlap.
type slowGets struct {
	store.Store
	gets    atomic.Int64
	release chan struct{}
}

func (s *slowGets) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	s.gets.Add(1)
	<-s.release
	return s.Store.Get(ctx, k, o)
}

// TestOnceSharesConcurrentFirstReads: fifty first reads of one key at once cost one store read, a
// written-through object costs none, and a missing object is an error for every reader, not cached.
func TestOnceSharesConcurrentFirstReads(t *testing.T) {
	ctx := context.Background()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateJSON(ctx, st, "v1/x.json", map[string]int{"n": 7}); err != nil {
		t.Fatal(err)
	}
	slow := &slowGets{Store: st, release: make(chan struct{})}
	var once store.Once[map[string]int]
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 50 {
		wg.Go(func() {
			v, err := once.Get(ctx, slow, "v1/x.json")
			if err != nil || (*v)["n"] != 7 {
				bad.Add(1)
			}
		})
	}
	for slow.gets.Load() == 0 { // the first read is under way: then let it finish
		time.Sleep(time.Millisecond)
	}
	close(slow.release)
	wg.Wait()
	if n := slow.gets.Load(); n != 1 || bad.Load() != 0 {
		t.Fatalf("%d store reads for 50 concurrent first reads (%d bad answers), want 1", n, bad.Load())
	}
	once.Put("v1/y.json", &map[string]int{"n": 1})
	if v, err := once.Get(ctx, slow, "v1/y.json"); err != nil || (*v)["n"] != 1 || slow.gets.Load() != 1 {
		t.Fatalf("a written-through object: %v %v, %d reads", v, err, slow.gets.Load())
	}
	for range 2 {
		if _, err := once.Get(ctx, slow, "v1/missing.json"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing object: %v", err)
		}
	}
	if n := slow.gets.Load(); n != 3 {
		t.Fatalf("a missing object was cached: %d reads, want 3", n)
	}
}
