package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

// chain is a trail as the hub keeps it: records and seals through the integrity check (s), and the
// same bucket as an attacker with write access sees it (raw).
type chain struct {
	s    *signed.Store
	raw  store.Store
	keys *hubkey.Keys
	recs []Record
}

func newKeys(t *testing.T) *hubkey.Keys {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &hubkey.Keys{Current: k}
}

// newChain writes five records and seals them in two seals, a minute and two minutes ago.
func newChain(t *testing.T) *chain {
	t.Helper()
	ctx := context.Background()
	raw, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &chain{raw: raw, keys: newKeys(t)}
	if c.s, err = signed.Wrap(raw, c.keys, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range 5 {
		r, err := Write(ctx, c.s, Record{Principal: Actor{ID: "alice", Via: "token"}, Action: "create-command", Outcome: "ok", Detail: map[string]any{"n": i}})
		if err != nil {
			t.Fatal(err)
		}
		c.recs = append(c.recs, r)
		if i == 2 {
			if n, err := sealAt(ctx, c.s, c.keys, now.Add(-2*time.Minute)); err != nil || n != 3 {
				t.Fatalf("first seal: %d %v", n, err)
			}
		}
	}
	if n, err := sealAt(ctx, c.s, c.keys, now.Add(-time.Minute)); err != nil || n != 2 {
		t.Fatalf("second seal: %d %v", n, err)
	}
	return c
}

func (c *chain) readRaw(t *testing.T, key string) []byte {
	t.Helper()
	b, _, err := store.ReadAll(context.Background(), c.raw, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *chain) putRaw(t *testing.T, key string, b []byte) {
	t.Helper()
	if _, err := store.PutBytes(context.Background(), c.raw, key, b, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// v7At makes a time-ordered id of a moment in the past, as a hub with a slow clock would.
func v7At(at time.Time) string {
	u := uuid.Must(uuid.NewV7())
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(at.UnixMilli()))
	copy(u[:6], ms[2:])
	return u.String()
}

func TestSealsAndVerify(t *testing.T) {
	ctx := context.Background()
	c := newChain(t)
	if n, _ := SealNow(ctx, c.s, c.keys); n != 0 {
		t.Fatalf("nothing new, sealed %d", n)
	}
	rep, err := Verify(ctx, c.s, c.keys)
	if err != nil || !rep.OK || rep.Seals != 2 || rep.Records != 5 || rep.Unsealed != 0 {
		t.Fatalf("untouched: %+v %v", rep, err)
	}
	got, err := List(ctx, c.s, Query{Principal: "alice", Since: time.Now().Add(-time.Hour)})
	if err != nil || len(got) != 5 {
		t.Fatalf("list: %d %v", len(got), err)
	}
	// Anyone holding only the public key can check the newest seal's signature.
	var sl Seal
	json.Unmarshal(c.readRaw(t, layout.AuditSeal(2))[strings.IndexByte(string(c.readRaw(t, layout.AuditSeal(2))), '\n')+1:], &sl)
	if !ed25519.Verify(c.keys.Public()[0].PublicKey, sl.signedBytes(), sl.Sig) || sl.KeyID != c.keys.CurrentID() {
		t.Fatalf("seal 2 is not verifiable with the hub's public key: %+v", sl)
	}
}

// TestAttacksOnTheChain plays someone with write access to the bucket but not the hub's key.
func TestAttacksOnTheChain(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		attack func(t *testing.T, c *chain)
		want   string
	}{
		{"edit a sealed record", func(t *testing.T, c *chain) {
			k := c.recs[3].Key
			c.putRaw(t, k, []byte(strings.Replace(string(c.readRaw(t, k)), "alice", "mallory", 1)))
		}, "was changed after it was sealed in seal 2"},
		{"remove a sealed record", func(t *testing.T, c *chain) {
			c.raw.Delete(ctx, c.recs[1].Key)
		}, "was removed (sealed in seal 1)"},
		{"edit a record and delete the seals after it", func(t *testing.T, c *chain) {
			k := c.recs[4].Key
			c.putRaw(t, k, []byte(strings.Replace(string(c.readRaw(t, k)), "alice", "mallory", 1)))
			c.raw.Delete(ctx, layout.AuditSeal(2))
		}, "was not written by this hub"},
		{"edit a record and recompute every later seal", func(t *testing.T, c *chain) {
			k := c.recs[3].Key
			edited := []byte(strings.Replace(string(c.readRaw(t, k)), "alice", "mallory", 1))
			c.putRaw(t, k, edited)
			b := c.readRaw(t, layout.AuditSeal(2))
			var sl Seal
			json.Unmarshal(b[strings.IndexByte(string(b), '\n')+1:], &sl)
			sl.Records[0].SHA256 = sum(edited)
			nb, _ := json.Marshal(sl)
			c.putRaw(t, layout.AuditSeal(2), nb)
		}, "seal v1/audit-seals/"},
		{"insert a back-dated record copied from a genuine one", func(t *testing.T, c *chain) {
			k := layout.AuditRecord(c.recs[0].Time.Add(-time.Hour), v7At(c.recs[0].Time.Add(-time.Hour)))
			c.putRaw(t, k, c.readRaw(t, c.recs[2].Key))
		}, "was not written by this hub"},
		{"insert a plain back-dated approval", func(t *testing.T, c *chain) {
			at := c.recs[0].Time.Add(-time.Hour)
			id := v7At(at)
			b, _ := json.Marshal(Record{ID: id, Time: at, Principal: Actor{ID: "bob", Via: "token"}, Action: "approve-command", Outcome: "ok"})
			c.putRaw(t, layout.AuditRecord(at, id), b)
		}, "was not written by this hub"},
		{"a genuine record behind the seals (a hub whose clock ran far behind)", func(t *testing.T, c *chain) {
			at := c.recs[0].Time.Add(-time.Hour)
			if _, err := Write(ctx, c.s, Record{ID: v7At(at), Time: at, Principal: Actor{ID: "bob"}, Action: "x", Outcome: "ok"}); err != nil {
				t.Fatal(err)
			}
		}, "was inserted"},
		{"remove a seal from the middle", func(t *testing.T, c *chain) {
			sealAt(ctx, c.s, c.keys, time.Now().Add(5*time.Minute))
			c.raw.Delete(ctx, layout.AuditSeal(2))
		}, "seal 2 is missing"},
		{"a seal made with another hub's key", func(t *testing.T, c *chain) {
			b := c.readRaw(t, layout.AuditSeal(2))
			var sl Seal
			json.Unmarshal(b[strings.IndexByte(string(b), '\n')+1:], &sl)
			mallory := newKeys(t)
			sl.KeyID, sl.Sig = mallory.CurrentID(), nil
			sl.Sig = ed25519.Sign(mallory.Current, sl.signedBytes())
			nb, _ := json.Marshal(sl)
			other, _ := signed.Wrap(c.raw, mallory, nil)
			store.PutBytes(ctx, other, layout.AuditSeal(2), nb, store.PutOptions{})
		}, "failed the hub's integrity check"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newChain(t)
			tc.attack(t, c)
			rep, err := Verify(ctx, c.s, c.keys)
			if err != nil || rep.OK || !strings.Contains(rep.Problem, tc.want) {
				t.Fatalf("verify after the attack: %+v (err %v); want a problem saying %q", rep, err, tc.want)
			}
			// Sealing afterwards does not bless the forgery either.
			SealNow(ctx, c.s, c.keys)
			if rep, _ := Verify(ctx, c.s, c.keys); rep.OK {
				t.Fatalf("after another seal the forgery passes: %+v", rep)
			}
		})
	}
}

func TestGaps(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	t.Run("deleted newest seals leave the newest one old", func(t *testing.T) {
		c := newChain(t)
		if rep, _ := verifyAt(ctx, c.s, c.keys, now.Add(MaxGap+time.Minute)); rep.OK || !strings.Contains(rep.Problem, "older than the") {
			t.Fatalf("a newest seal older than MaxGap: %+v", rep)
		}
	})
	t.Run("an idle hub seals on its period, so idle time is no gap", func(t *testing.T) {
		c := newChain(t)
		for m := Period; m <= 3*MaxGap; m += Period {
			sealAt(ctx, c.s, c.keys, now.Add(m))
		}
		if rep, _ := verifyAt(ctx, c.s, c.keys, now.Add(3*MaxGap+time.Minute)); !rep.OK || rep.Seals < 10 {
			t.Fatalf("idle but sealing: %+v", rep)
		}
	})
	t.Run("a gap without a hub start is a problem, with one it is explained", func(t *testing.T) {
		for _, started := range []bool{false, true} {
			c := newChain(t)
			action := "create-command"
			if started {
				action = ActionHubStarted
			}
			Write(ctx, c.s, Record{Principal: Actor{ID: "hub"}, Action: action, Outcome: "ok"})
			sealAt(ctx, c.s, c.keys, now.Add(time.Hour))
			rep, _ := verifyAt(ctx, c.s, c.keys, now.Add(time.Hour))
			if started != rep.OK || (started && len(rep.Explained) != 1) || (!started && !strings.Contains(rep.Problem, "no hub start explains it")) {
				t.Fatalf("started=%v: %+v", started, rep)
			}
		}
	})
}

func TestRotationKeepsTheChain(t *testing.T) {
	ctx := context.Background()
	c := newChain(t)
	rotated := &hubkey.Keys{Current: newKeys(t).Current, Previous: c.keys.Current}
	s2, _ := signed.Wrap(c.raw, rotated, nil)
	Write(ctx, s2, Record{Principal: Actor{ID: "alice"}, Action: "x", Outcome: "ok"})
	if _, err := SealNow(ctx, s2, rotated); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(ctx, s2, rotated); err != nil || !rep.OK || rep.Seals != 3 {
		t.Fatalf("during a rotation: %+v %v", rep, err)
	}
}
