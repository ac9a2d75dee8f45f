package local_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
	"github.com/pulsehq/pulse/functions/store/storetest"
	"github.com/pulsehq/pulse/functions/store/unconditional"
)

func newLocal(t *testing.T) store.Store {
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Full, newLocal)
}

func TestConformanceUnconditional(t *testing.T) {
	storetest.Run(t, storetest.Caps{}, func(t *testing.T) store.Store { return unconditional.Wrap(newLocal(t)) })
}

func TestProbe(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	if mode, err := store.Probe(ctx, s); err != nil || mode != store.ModeConditional {
		t.Fatalf("probe local: %v %v, want conditional", mode, err)
	}
	if mode, err := store.Probe(ctx, unconditional.Wrap(s)); err != nil || mode != store.ModeLastWriterWins {
		t.Fatalf("probe unconditional: %v %v, want last-writer-wins", mode, err)
	}
	page, err := s.List(ctx, "", "", 0)
	if err != nil || len(page.Objects) != 0 {
		t.Fatalf("probe left objects behind: %+v %v", page.Objects, err)
	}
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		url     string
		wantErr bool
	}{
		{"file://" + dir, false},
		{"unconditional+file://" + dir, false},
		{"file://otherhost/x", true},
		{"file://" + dir + "?x=1", true},
		{"file://", true},
	}
	for _, c := range cases {
		_, err := store.Open(context.Background(), c.url)
		if (err != nil) != c.wantErr {
			t.Errorf("Open(%q): %v, wantErr %v", c.url, err, c.wantErr)
		}
		if err != nil && !errors.Is(err, store.ErrInvalidURL) {
			t.Errorf("Open(%q): %v does not wrap ErrInvalidURL", c.url, err)
		}
	}
}

// TestKeyConflict: the local backend refuses the key layouts that MinIO and versitygw mishandle.
func TestKeyConflict(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	if _, err := store.PutBytes(ctx, s, "a/b", []byte("x"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "a/b/c"} {
		if _, err := store.PutBytes(ctx, s, key, []byte("x"), store.PutOptions{}); !errors.Is(err, store.ErrKeyConflict) {
			t.Errorf("put %q beside a/b: %v, want ErrKeyConflict", key, err)
		}
	}
	// Once a/b is gone, "a" is free again.
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutBytes(ctx, s, "a", []byte("x"), store.PutOptions{}); err != nil {
		t.Fatalf("put a after deleting a/b: %v", err)
	}
}

func BenchmarkLocal(b *testing.B) {
	s, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	storetest.Bench(b, s)
}
