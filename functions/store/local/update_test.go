package local_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

// countPuts counts writes.
type countPuts struct {
	store.Store
	puts atomic.Int64
}

func (s *countPuts) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	s.puts.Add(1)
	return s.Store.Put(ctx, k, r, n, o)
}

// TestUpdateJSON: concurrent read-modify-writes of one object each land (none is lost to another
// writer), a change that changes nothing writes nothing, and change's error comes back unwritten.
func TestUpdateJSON(t *testing.T) {
	ctx := context.Background()
	base, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &countPuts{Store: base}
	const key = "v1/test/update.json"
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := store.UpdateJSON(ctx, st, key, 50, func(v *[]int, _ bool) (bool, error) {
				*v = append(*v, i)
				return true, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var got []int
	if _, err := store.ReadJSON(ctx, st, key, &got); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("after 8 concurrent updates: %v, want every one of 0..7", got)
	}

	before := st.puts.Load()
	v, err := store.UpdateJSON(ctx, st, key, 3, func(v *[]int, exists bool) (bool, error) {
		if !exists {
			t.Error("exists = false for a stored object")
		}
		return false, nil
	})
	if err != nil || len(v) != 8 || st.puts.Load() != before {
		t.Fatalf("an update that changes nothing: %v, %v, %d writes", v, err, st.puts.Load()-before)
	}
	boom := errors.New("boom")
	if _, err := store.UpdateJSON(ctx, st, key, 3, func(v *[]int, _ bool) (bool, error) {
		*v = nil
		return true, boom
	}); !errors.Is(err, boom) || st.puts.Load() != before {
		t.Fatalf("change failing: %v, %d writes", err, st.puts.Load()-before)
	}
	if _, err := store.UpdateJSON(ctx, st, "v1/test/new.json", 1, func(v *[]int, exists bool) (bool, error) {
		if exists {
			t.Error("exists = true for a missing object")
		}
		*v = []int{1}
		return true, nil
	}); err != nil {
		t.Fatalf("creating: %v", err)
	}
}
