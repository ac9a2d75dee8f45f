package trail_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

// downStore refuses writes while down is set, as an unreachable S3 endpoint does.
type downStore struct {
	store.Store
	down atomic.Bool
}

func (d *downStore) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	if d.down.Load() {
		return store.ObjectInfo{}, errors.New("dial tcp: connection refused")
	}
	return d.Store.Put(ctx, k, r, n, o)
}

// TestNoRecordIsLostToAFailingStore: a record the store refuses waits (in the outbox on disk, or in
// memory without one) and reaches the store, once, when it answers again.
func TestNoRecordIsLostToAFailingStore(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	for _, withOutbox := range []bool{true, false} {
		t.Run(map[bool]string{true: "outbox", false: "memory"}[withOutbox], func(t *testing.T) {
			ctx := domain.WithPrincipal(context.Background(), domain.Principal{ID: "alice", Via: "token"})
			inner, _ := local.New(t.TempDir())
			st := &downStore{Store: inner}
			r := &trail.Recorder{Store: st, Log: slog.New(slog.DiscardHandler), Keys: &hubkey.Keys{Current: priv}}
			if withOutbox {
				r.Outbox, _ = local.New(t.TempDir())
			}
			st.down.Store(true)
			r.Record(ctx, "create-command", []string{"a"}, nil, "ok", map[string]any{"n": 1})
			r.Record(ctx, "cancel-command", []string{"a"}, nil, "ok", nil)
			if n := r.Pending(ctx); n != 2 {
				t.Fatalf("pending while the store is down: %d, want 2", n)
			}
			r.Flush(ctx) // still down: nothing moves, nothing is dropped
			if n := r.Pending(ctx); n != 2 {
				t.Fatalf("pending after a failed flush: %d, want 2", n)
			}
			st.down.Store(false)
			r.Flush(ctx)
			r.Flush(ctx)
			if n := r.Pending(ctx); n != 0 {
				t.Fatalf("pending after the store came back: %d", n)
			}
			recs, err := audit.List(ctx, inner, audit.Query{Since: time.Now().Add(-time.Hour)})
			if err != nil || len(recs) != 2 || recs[0].Action != "create-command" || recs[0].Principal.ID != "alice" {
				t.Fatalf("stored records: %+v %v; want the two, once each, as alice", recs, err)
			}
		})
	}
}

// TestLateRecordsAreSealed: a record that waited in the outbox while other hubs sealed past its time is
// sealed when it arrives, so verify does not call it inserted.
func TestLateRecordsAreSealed(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := &hubkey.Keys{Current: priv}
	ctx := domain.WithPrincipal(context.Background(), domain.Principal{ID: "alice", Via: "token"})
	inner, _ := local.New(t.TempDir())
	st := &downStore{Store: inner}
	r := &trail.Recorder{Store: st, Log: slog.New(slog.DiscardHandler), Keys: keys}
	r.Outbox, _ = local.New(t.TempDir())
	st.down.Store(true)
	r.Record(ctx, "create-command", nil, nil, "ok", nil) // waits in the outbox
	st.down.Store(false)
	// Meanwhile another hub writes a record ten minutes on and seals it: the sealed past is past ours.
	later := uuid.Must(uuid.NewV7())
	ms := time.Now().Add(10 * time.Minute).UnixMilli()
	for i := range 6 {
		later[i] = byte(ms >> (40 - 8*i))
	}
	if _, err := audit.Write(ctx, inner, audit.Record{ID: later.String(), Time: time.Now().UTC(), Action: "x", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.SealNow(ctx, inner, keys); err != nil {
		t.Fatal(err)
	}
	r.Seal(ctx) // delivers ours, late, and seals it
	rep, err := audit.Verify(ctx, inner, keys)
	if err != nil || !rep.OK || rep.Records != 2 {
		t.Fatalf("verify after a late delivery: %+v %v", rep, err)
	}
}
