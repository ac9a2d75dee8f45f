package delivery

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

// counted counts a store's requests by kind.
type counted struct {
	store.Store
	gets, puts, lists atomic.Int64
}

func (c *counted) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, k, o)
}

func (c *counted) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	c.puts.Add(1)
	return c.Store.Put(ctx, k, r, n, o)
}

func (c *counted) List(ctx context.Context, p, after string, n int) (store.Page, error) {
	c.lists.Add(1)
	return c.Store.List(ctx, p, after, n)
}

func (c *counted) reset() { c.gets.Store(0); c.puts.Store(0); c.lists.Store(0) }

// fresh is a new function instance on st: an empty index, as every cold start has.
func fresh(st store.Store, keys *hubkey.Keys) *Service {
	return &Service{Store: st, Log: slog.New(slog.DiscardHandler), Keys: keys, Doorbells: true, PollEvery: 2 * time.Second}
}

// TestDoorbellPolls: in function mode every poll may land on a fresh instance. An idle agent's poll
// costs one GET and no LIST and is answered at once, saying when to come back; a delivery posted
// by one instance rings its addressees' doorbells and reaches each agent through another; an
// acknowledgement takes it off the doorbell, so a third instance does not offer it again; an expired
// delivery is offered by none; a live watch reaches the agent through its doorbell.
func TestDoorbellPolls(t *testing.T) {
	ctx := context.Background()
	base, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &counted{Store: base}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := &hubkey.Keys{Current: priv}

	start := time.Now()
	resp, err := fresh(st, keys).Poll(ctx, "ag-1", wire.PollRequest{})
	if err != nil || len(resp.Envelopes) != 0 || resp.NextPollMillis != 2000 {
		t.Fatalf("idle poll: %v, %+v; want nothing and come back in 2000 ms", err, resp)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("an idle poll in function mode was held %s; it must answer at once", time.Since(start))
	}
	if g, p, l := st.gets.Load(), st.puts.Load(), st.lists.Load(); g != 1 || p != 0 || l != 0 {
		t.Fatalf("an idle poll cost %d GET, %d PUT, %d LIST; want 1 GET", g, p, l)
	}

	if _, err := fresh(st, keys).Post(ctx, "c1-w1", "c1", []string{"ag-1", "ag-2"}, command("c1", time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh(st, keys).Post(ctx, "c0-w1", "c0", []string{"ag-1"}, command("c0", time.Now().Add(1500*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"ag-1", "ag-2"} {
		var d doorbell
		if _, err := store.ReadJSON(ctx, st, layout.Doorbell(a), &d); err != nil || len(d.Deliveries) == 0 {
			t.Fatalf("doorbell of %s after the post: %v, %+v", a, err, d)
		}
	}
	time.Sleep(1600 * time.Millisecond) // c0 expires
	st.reset()
	resp, err = fresh(st, keys).Poll(ctx, "ag-1", wire.PollRequest{})
	if err != nil || len(resp.Envelopes) != 1 || !strings.HasSuffix(resp.Envelopes[0].InboxKey, "-c1-w1") || resp.NextPollMillis != 0 {
		t.Fatalf("ag-1 polling a fresh instance: %v, %+v; want c1's envelope only, and come back at once", err, resp)
	}
	if l := st.lists.Load(); l != 0 {
		t.Fatalf("a poll with work cost %d LIST; want none", l)
	}
	if env, err := resp.Envelopes[0].Verify(keys.Public()); err != nil || env.Agent != "ag-1" && !slices.Contains(env.Agents, "ag-1") {
		t.Fatalf("the envelope offered does not verify for ag-1: %v, %+v", err, env)
	}

	// The acknowledgement, on yet another instance, takes it off the doorbell.
	c1 := resp.Envelopes[0].InboxKey
	if _, err := fresh(st, keys).Poll(ctx, "ag-1", wire.PollRequest{Ack: []string{c1}}); err != nil {
		t.Fatal(err)
	}
	st.reset()
	resp, err = fresh(st, keys).Poll(ctx, "ag-1", wire.PollRequest{})
	if err != nil || len(resp.Envelopes) != 0 {
		t.Fatalf("after the acknowledgement: %v, %d envelopes, want none", err, len(resp.Envelopes))
	}
	if g, p := st.gets.Load(), st.puts.Load(); g != 1 || p != 0 {
		t.Fatalf("the idle poll after the acknowledgement cost %d GET, %d PUT; want 1 GET", g, p)
	}
	if resp, err := fresh(st, keys).Poll(ctx, "ag-2", wire.PollRequest{}); err != nil || len(resp.Envelopes) != 1 {
		t.Fatalf("ag-2, which has not acknowledged: %v, %d envelopes, want 1", err, len(resp.Envelopes))
	}

	fresh(st, keys).Watch(ctx, "ag-2", 10*time.Second, time.Now().Add(time.Minute))
	if resp, err := fresh(st, keys).Poll(ctx, "ag-2", wire.PollRequest{Ack: []string{c1}}); err != nil || resp.MetricsEverySeconds != 10 {
		t.Fatalf("watched agent's poll: %v, metricsEverySeconds %d, want 10", err, resp.MetricsEverySeconds)
	}
}

// TestDoorbellRingsAreIdempotentAndConcurrent: posting the same delivery again (the release tick
// does) leaves one entry, and many deliveries posted at once for one agent by different instances
// all land on its doorbell.
func TestDoorbellRingsAreIdempotentAndConcurrent(t *testing.T) {
	ctx := context.Background()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := &hubkey.Keys{Current: priv}
	env := command("c1", time.Now().Add(time.Hour))
	for range 2 {
		if _, err := fresh(st, keys).Post(ctx, "c1-w1", "c1", []string{"ag-1"}, env); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			id := string(rune('a' + i))
			_, err := fresh(st, keys).Post(ctx, "c"+id+"-w1", "c"+id, []string{"ag-1"}, command("c"+id, time.Now().Add(time.Hour)))
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	resp, err := fresh(st, keys).Poll(ctx, "ag-1", wire.PollRequest{})
	if err != nil || len(resp.Envelopes) != 9 {
		t.Fatalf("after 1 delivery posted twice and 8 at once: %v, %d envelopes, want 9", err, len(resp.Envelopes))
	}
}
