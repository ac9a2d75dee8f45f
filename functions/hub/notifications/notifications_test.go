package notifications

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/notify/notifytest"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

// clocked is a service on a local store whose clock the test moves.
func clocked(t *testing.T) (*Service, func(time.Duration)) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := &hubkey.Keys{Current: priv}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var mu sync.Mutex
	now := time.Now()
	s := &Service{Store: st, Log: log, Keys: keys, Trail: &trail.Recorder{Store: st, Log: log, Keys: keys},
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	return s, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
}

// TestBackoffAndGiveUp: a receiver that always fails is tried at the backoff's times (10 s, 30 s, 1 m,
// …), not sooner, and given up after MaxAttempts with the last failure final; the queue is empty then
// and the log keeps every attempt. A permanent refusal (404) is given up at once. An idle tick lists
// the queue only every QueueEvery.
func TestBackoffAndGiveUp(t *testing.T) {
	s, advance := clocked(t)
	ctx := context.Background()
	rcv := notifytest.NewReceiver(t)
	if _, err := s.Put(ctx, "down", "kind: webhook\nurl: "+rcv.URL+"/down\n"); err != nil {
		t.Fatal(err)
	}
	rcv.Fail("/down", 100, 502, "bad gateway")
	m := notify.Sample()
	if err := s.Notify(ctx, m, []string{"down"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	attempts := func() []Attempt {
		a, err := s.attempts(ctx, DeliveryID(m.Alert, m.Kind, "down"))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	s.Tick(ctx)
	if n := len(attempts()); n != 1 {
		t.Fatalf("after the first tick: %d attempts", n)
	}
	for i := 1; i < MaxAttempts; i++ {
		wait := DefaultBackoff[min(i, len(DefaultBackoff))-1]
		advance(wait - time.Second)
		s.Tick(ctx)
		if n := len(attempts()); n != i {
			t.Fatalf("attempt %d made before its backoff of %s", i+1, wait)
		}
		advance(time.Second)
		s.Tick(ctx)
		if n := len(attempts()); n != i+1 {
			t.Fatalf("attempt %d not made after its backoff of %s: %d attempts", i+1, wait, n)
		}
	}
	all := attempts()
	last := all[len(all)-1]
	if !last.Final || last.State != StateFailed || !last.NextAt.IsZero() || all[0].Final || all[0].Status != 502 {
		t.Fatalf("attempts: %+v", all)
	}
	advance(time.Hour)
	s.Tick(ctx)
	if n := len(attempts()); n != MaxAttempts {
		t.Fatalf("%d attempts after giving up", n)
	}
	var queued []string
	store.Walk(ctx, s.Store, layout.NotificationQueue, "", 0, func(o store.ObjectInfo) error { queued = append(queued, o.Key); return nil })
	if len(queued) != 0 {
		t.Fatalf("queue after giving up: %v", queued)
	}
	log, err := s.Deliveries(ctx, Filter{State: StateFailed})
	if err != nil || len(log) != 1 || len(log[0].Attempts) != MaxAttempts {
		t.Fatalf("the log: %+v %v", log, err)
	}

	// A 404 is a refusal of the request as such: given up at once.
	if _, err := s.Put(ctx, "gone", "kind: slack\nurl: "+rcv.URL+"/services/gone-token-1\n"); err != nil {
		t.Fatal(err)
	}
	rcv.Fail("/services/gone-token-1", 1, 404, "no_service")
	m.Alert = "other"
	if err := s.Notify(ctx, m, []string{"gone"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	s.Tick(ctx)
	log, _ = s.Deliveries(ctx, Filter{Channel: "gone"})
	if len(log) != 1 || log[0].State != StateFailed || !strings.Contains(log[0].Attempts[0].Error, "404") {
		t.Fatalf("a 404: %+v", log)
	}

	// Idle: a tick within QueueEvery of the last listing lists nothing.
	counted := &countingStore{Store: s.Store}
	s.Store = counted
	advance(DefaultQueueEvery)
	s.Tick(ctx)
	s.Tick(ctx)
	advance(DefaultQueueEvery / 2)
	s.Tick(ctx)
	if counted.lists != 1 {
		t.Fatalf("an idle hub listed %d times in %s, want 1", counted.lists, DefaultQueueEvery*3/2)
	}
}

// TestExpire: deliveries queued longer than Retention ago are deleted with their attempts; younger
// ones stay.
func TestExpire(t *testing.T) {
	s, advance := clocked(t)
	ctx := context.Background()
	rcv := notifytest.NewReceiver(t)
	if _, err := s.Put(ctx, "ok", "kind: webhook\nurl: "+rcv.URL+"/ok\n"); err != nil {
		t.Fatal(err)
	}
	m := notify.Sample()
	s.Notify(ctx, m, []string{"ok"}, time.Time{})
	s.Tick(ctx)
	advance(Retention - time.Hour)
	m.Alert = "younger"
	s.Notify(ctx, m, []string{"ok"}, time.Time{})
	s.Tick(ctx)
	advance(2 * time.Hour)
	if err := s.expire(ctx, s.now()); err != nil {
		t.Fatal(err)
	}
	var keys []string
	store.Walk(ctx, s.Store, layout.Notifications, "", 0, func(o store.ObjectInfo) error { keys = append(keys, o.Key); return nil })
	id := DeliveryID("younger", m.Kind, "ok")
	if len(keys) != 2 || keys[0] != layout.Notification(id) || keys[1] != layout.NotificationAttempt(id, 1) {
		t.Fatalf("after expiry: %v, want the younger delivery and its attempt", keys)
	}
}

type countingStore struct {
	store.Store
	mu    sync.Mutex
	lists int
}

func (c *countingStore) List(ctx context.Context, prefix, startAfter string, limit int) (store.Page, error) {
	c.mu.Lock()
	c.lists++
	c.mu.Unlock()
	return c.Store.List(ctx, prefix, startAfter, limit)
}

// TestSecretsOfADroppedKey: a channel whose secrets were sealed by a key the hub no longer holds is
// still listed and deleted (reading never opens secrets); its delivery fails at once with the reason.
func TestSecretsOfADroppedKey(t *testing.T) {
	s, _ := clocked(t)
	ctx := context.Background()
	rcv := notifytest.NewReceiver(t)
	if _, err := s.Put(ctx, "ops", "kind: slack\nurl: "+rcv.URL+"/services/dropped-key-1\n"); err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	s.Keys = &hubkey.Keys{Current: other}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || !strings.HasPrefix(list[0].URL, notify.Mask+" (127.0.0.1:") {
		t.Fatalf("list: %+v %v", list, err)
	}
	m := notify.Sample()
	s.Notify(ctx, m, []string{"ops"}, time.Time{})
	s.Tick(ctx)
	log, _ := s.Deliveries(ctx, Filter{})
	if len(log) != 1 || log[0].State != StateFailed || !strings.Contains(log[0].Attempts[0].Error, "no longer holds") || len(rcv.Got("/services/dropped-key-1")) != 0 {
		t.Fatalf("the delivery: %+v", log)
	}
	if err := s.Delete(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
}
