package signed_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func wrap(t *testing.T, inner store.Store, keys *hubkey.Keys) *signed.Store {
	t.Helper()
	w, err := signed.Wrap(inner, keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestRoundTripAndRefusals(t *testing.T) {
	ctx := context.Background()
	inner, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := &hubkey.Keys{Current: newKey(t)}
	w := wrap(t, inner, keys)
	body := []byte(`{"id":"c1","targets":["a"]}`)
	if _, err := store.PutBytes(ctx, w, "v1/commands/c1.json", body, store.PutOptions{CreateOnly: true}); err != nil {
		t.Fatal(err)
	}
	got, info, err := store.ReadAll(ctx, w, "v1/commands/c1.json")
	if err != nil || !bytes.Equal(got, body) || info.Size != int64(len(body)) {
		t.Fatalf("read back %q (size %d, err %v), want %q", got, info.Size, err, body)
	}
	raw, _, _ := store.ReadAll(ctx, inner, "v1/commands/c1.json")
	header, _, _ := bytes.Cut(raw, []byte("\n"))

	other := wrap(t, inner, &hubkey.Keys{Current: newKey(t)})
	forged := other.Seal("v1/commands/c2.json", body)
	cases := []struct {
		name, key string
		raw       []byte
		reason    string
	}{
		{"plain JSON written by a bucket writer", "v1/commands/c2.json", body, "no MAC header"},
		{"edited body under a genuine MAC", "v1/commands/c1.json", append(append(header, '\n'), []byte(`{"id":"c1","targets":["a","b"]}`)...), "does not match"},
		{"genuine record copied to another key", "v1/commands/c3.json", raw, "does not match"},
		{"MAC made by another hub's key", "v1/commands/c2.json", forged, "does not hold"},
		{"garbled MAC", "v1/commands/c4.json", []byte("pulse-mac1 " + keys.CurrentID() + " !!!\n{}"), "does not match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := store.PutBytes(ctx, inner, tc.key, tc.raw, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			_, _, err := store.ReadAll(ctx, w, tc.key)
			if !errors.Is(err, signed.ErrTampered) || !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("read of %s: %v; want a tampered error (reading as not found) saying %q", tc.key, err, tc.reason)
			}
		})
	}
	rep := w.Integrity()
	if rep.Refused != len(cases) || len(rep.Objects) != len(cases)-1 { // c2 was refused twice, logged once
		t.Fatalf("integrity report %+v; want %d refusals", rep, len(cases))
	}
	checked, bad, err := w.Scan(ctx, []string{"v1/commands/"}, 0)
	if err != nil || checked != 4 || len(bad) != 4 {
		t.Fatalf("scan checked %d, found %d bad (%v); want 4 and 4 (c1 was edited)", checked, len(bad), err)
	}
}

func TestRotationKeepsOldRecords(t *testing.T) {
	ctx := context.Background()
	inner, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	oldKey, newer := newKey(t), newKey(t)
	before := wrap(t, inner, &hubkey.Keys{Current: oldKey})
	if _, err := store.PutBytes(ctx, before, "v1/tokens/x.json", []byte(`{}`), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	during := wrap(t, inner, &hubkey.Keys{Current: newer, Previous: oldKey})
	if _, _, err := store.ReadAll(ctx, during, "v1/tokens/x.json"); err != nil {
		t.Fatalf("a record of the previous key during a rotation: %v", err)
	}
	after := wrap(t, inner, &hubkey.Keys{Current: newer})
	if _, _, err := store.ReadAll(ctx, after, "v1/tokens/x.json"); !errors.Is(err, signed.ErrTampered) {
		t.Fatalf("a record of a key dropped from the set: %v, want refused", err)
	}
}

// TestResealBeforeTheOldKeyIsDropped: two rotations in a row lose no record, because the rotation that
// drops a key first MACs its records again with the key that stays.
func TestResealBeforeTheOldKeyIsDropped(t *testing.T) {
	ctx := context.Background()
	inner, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := newKey(t), newKey(t), newKey(t)
	put := func(keys *hubkey.Keys, key string) {
		t.Helper()
		if _, err := store.PutBytes(ctx, wrap(t, inner, keys), key, []byte(`{"k":"`+key+`"}`), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(&hubkey.Keys{Current: a}, "v1/tokens/by-a.json")
	put(&hubkey.Keys{Current: a}, "v1/agents/by-a.json")
	second := &hubkey.Keys{Current: b, Previous: a} // after the first rotation
	put(second, "v1/tokens/by-b.json")
	store.PutBytes(ctx, inner, "v1/tokens/planted.json", []byte(`{}`), store.PutOptions{})
	var progress []int
	n, bad, err := signed.Reseal(ctx, inner, second, func(c int) { progress = append(progress, c) })
	if err != nil || n != 2 || bad != 1 {
		t.Fatalf("reseal: %d resealed, %d refused, %v; want 2 and 1", n, bad, err)
	}
	third := wrap(t, inner, &hubkey.Keys{Current: c, Previous: b}) // the second rotation dropped a
	for _, k := range []string{"v1/tokens/by-a.json", "v1/agents/by-a.json", "v1/tokens/by-b.json"} {
		if got, _, err := store.ReadAll(ctx, third, k); err != nil || string(got) != `{"k":"`+k+`"}` {
			t.Errorf("%s after two rotations: %q %v", k, got, err)
		}
	}
	if _, _, err := store.ReadAll(ctx, third, "v1/tokens/planted.json"); !errors.Is(err, signed.ErrTampered) {
		t.Errorf("the planted object was blessed by the reseal: %v", err)
	}
}

// TestPlantedObjectDoesNotBlockACreate: a bucket writer who plants an object under a key the hub
// will create (a revocation, a cancel) does not block the hub's write; a genuine object still does.
func TestPlantedObjectDoesNotBlockACreate(t *testing.T) {
	ctx := context.Background()
	inner, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := wrap(t, inner, &hubkey.Keys{Current: newKey(t)})
	key := "v1/revoked-tokens/abc.json"
	store.PutBytes(ctx, inner, key, []byte(`{"planted":true}`), store.PutOptions{})
	if _, err := store.PutBytes(ctx, w, key, []byte(`{"by":"admin"}`), store.PutOptions{CreateOnly: true}); err != nil {
		t.Fatalf("create over a planted object: %v", err)
	}
	if got, _, err := store.ReadAll(ctx, w, key); err != nil || string(got) != `{"by":"admin"}` {
		t.Fatalf("after the create: %q %v", got, err)
	}
	if _, err := store.PutBytes(ctx, w, key, []byte(`{"by":"other"}`), store.PutOptions{CreateOnly: true}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create over a genuine object: %v, want ErrExists", err)
	}
	if w.Integrity().Refused != 1 {
		t.Fatalf("the planted object was not noted: %+v", w.Integrity())
	}
}
