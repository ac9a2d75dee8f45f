package signed_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

// TestNewestPassesOverForgeries: the newest version of something is the newest the hub wrote; one
// planted above it (or between) neither wins nor hides it, and only forgeries read as none.
func TestNewestPassesOverForgeries(t *testing.T) {
	ctx := context.Background()
	inner, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := wrap(t, inner, &hubkey.Keys{Current: newKey(t)})
	type version struct{ N int }
	put := func(s store.Store, key string, n int) {
		t.Helper()
		if err := store.PutJSON(ctx, s, key, version{n}); err != nil {
			t.Fatal(err)
		}
	}
	put(w, "v1/things/a/000001.json", 1)
	put(w, "v1/things/a/000002.json", 2)
	put(inner, "v1/things/a/000003.json", 3) // planted
	put(inner, "v1/things/b/000001.json", 1) // planted, and nothing genuine beside it
	var once store.Once[version]
	if v, err := once.Latest(ctx, w, "v1/things/a/"); err != nil || v.N != 2 {
		t.Errorf("Latest a = %+v, %v; want version 2", v, err)
	}
	if v, err := once.Newest(ctx, w, []string{"v1/things/a/000001.json", "v1/things/a/000003.json"}); err != nil || v.N != 1 {
		t.Errorf("Newest over 1 and a planted 3 = %+v, %v; want version 1", v, err)
	}
	if v, err := once.Latest(ctx, w, "v1/things/b/"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Latest b = %+v, %v; want ErrNotFound", v, err)
	}
	if _, err := once.Latest(ctx, w, "v1/things/none/"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Latest of nothing: %v, want ErrNotFound", err)
	}
}
