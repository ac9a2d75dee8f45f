package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

func TestChain(t *testing.T) {
	ctx := context.Background()
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for i := range 5 {
		r, err := Write(ctx, s, Record{Principal: Actor{ID: "alice", Via: "token"}, Action: "create-command", Outcome: "ok", Detail: map[string]any{"n": i}})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		if i == 2 {
			if n, err := SealNow(ctx, s); err != nil || n != 3 {
				t.Fatalf("first seal: %d %v", n, err)
			}
		}
	}
	if n, err := SealNow(ctx, s); err != nil || n != 2 {
		t.Fatalf("second seal: %d %v", n, err)
	}
	if n, _ := SealNow(ctx, s); n != 0 {
		t.Fatalf("nothing new, sealed %d", n)
	}
	rep, err := Verify(ctx, s)
	if err != nil || !rep.OK || rep.Seals != 2 || rep.Records != 5 || rep.Unsealed != 0 {
		t.Fatalf("untouched: %+v %v", rep, err)
	}
	got, err := List(ctx, s, Query{Principal: "alice", Since: time.Now().Add(-time.Hour)})
	if err != nil || len(got) != 5 {
		t.Fatalf("list: %d %v", len(got), err)
	}

	// Edit one record by hand: Verify names it.
	b, _, _ := store.ReadAll(ctx, s, recs[3].Key)
	store.PutBytes(ctx, s, recs[3].Key, []byte(strings.Replace(string(b), "alice", "mallory", 1)), store.PutOptions{})
	rep, _ = Verify(ctx, s)
	if rep.OK || !strings.Contains(rep.Problem, recs[3].Key) || !strings.Contains(rep.Problem, "changed") {
		t.Fatalf("edited record: %+v", rep)
	}
	store.PutBytes(ctx, s, recs[3].Key, b, store.PutOptions{})
	// Remove one: named too.
	s.Delete(ctx, recs[1].Key)
	rep, _ = Verify(ctx, s)
	if rep.OK || !strings.Contains(rep.Problem, recs[1].Key) || !strings.Contains(rep.Problem, "removed") {
		t.Fatalf("removed record: %+v", rep)
	}
}
