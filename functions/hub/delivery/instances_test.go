package delivery

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

// downStore fails every listing, as an unreachable store does.
type downStore struct{ store.Store }

func (downStore) List(context.Context, string, string, int) (store.Page, error) {
	return store.Page{}, errors.New("connection refused")
}

func instances(t *testing.T, n int, hold time.Duration) []*Service {
	t.Helper()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := &hubkey.Keys{Current: priv}
	var out []*Service
	for range n {
		out = append(out, &Service{Store: st, Log: slog.New(slog.DiscardHandler), Keys: keys, PollHold: hold})
	}
	return out
}

func command(id string, notAfter time.Time) wire.Envelope {
	return wire.Envelope{ID: id, IssuedAt: notAfter.Add(-time.Hour), NotAfter: notAfter, Issuer: "alice", Kind: wire.KindCommand, Body: []byte(`{"commandId":"` + id + `"}`)}
}

// TestAnotherInstanceDelivers: a delivery posted by one hub instance reaches an agent polling another:
// through the listing of open deliveries on its first poll, and through the bell feed once it has
// listed. An acknowledged envelope is not offered again by the instance that got the acknowledgement;
// an expired delivery is offered by none.
func TestAnotherInstanceDelivers(t *testing.T) {
	ctx := context.Background()
	hubs := instances(t, 2, 300*time.Millisecond)
	a, b := hubs[0], hubs[1]
	if _, err := a.Post(ctx, "c1-w1", "c1", []string{"ag-1", "ag-2"}, command("c1", time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Post(ctx, "c0-w1", "c0", []string{"ag-1"}, command("c0", time.Now().Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Poll(ctx, "ag-1", wire.PollRequest{})
	if err != nil || len(resp.Envelopes) != 1 {
		t.Fatalf("first poll on the other instance: %v, %d envelopes, want the open one", err, len(resp.Envelopes))
	}
	env, err := resp.Envelopes[0].Verify(a.Keys.Public())
	if err != nil || env.ID != "c1" || !env.AddressedTo("ag-1") || !env.AddressedTo("ag-2") {
		t.Fatalf("the envelope: %+v %v", env, err)
	}
	if resp, _ = b.Poll(ctx, "ag-1", wire.PollRequest{Ack: []string{resp.Envelopes[0].InboxKey}}); len(resp.Envelopes) != 0 {
		t.Fatalf("after the acknowledgement: %d envelopes", len(resp.Envelopes))
	}

	// b has listed: what a posts next reaches b's waiting poll through the bell feed.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go b.WatchBells(wctx)
	got := make(chan wire.PollResponse, 1)
	go func() {
		b.PollHold = 5 * time.Second
		r, _ := b.Poll(ctx, "ag-3", wire.PollRequest{})
		got <- r
	}()
	time.Sleep(100 * time.Millisecond) // the poll waits
	if _, err := a.Post(ctx, "c2-w1", "c2", []string{"ag-3"}, command("c2", time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if r := <-got; len(r.Envelopes) != 1 {
		t.Fatalf("a poll waiting on the other instance got %d envelopes, want the one just posted", len(r.Envelopes))
	}
}

// TestFirstPollWithTheStoreDown: an instance that could not list the open deliveries says so (an
// error, a 503 at the edge) instead of answering an empty poll it cannot vouch for; a bad
// acknowledgement is refused before anything else.
func TestFirstPollWithTheStoreDown(t *testing.T) {
	s := instances(t, 1, time.Second)[0]
	s.Store = downStore{s.Store}
	if _, err := s.Poll(context.Background(), "ag-1", wire.PollRequest{}); err == nil {
		t.Fatal("a first poll with the store down answered as if nothing waited")
	}
	if _, err := s.Poll(context.Background(), "ag-1", wire.PollRequest{Ack: []string{"../x"}}); err == nil {
		t.Fatal("a malformed acknowledgement was taken")
	}
}
