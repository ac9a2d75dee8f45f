// Package audit keeps the hub's audit trail in the store: one write-once record per mutation, and
// periodic seals that chain the records' hashes, so that editing or deleting a record in the bucket is
// detected by Verify and named.
//
// Records live under v1/audit/<day>/<uuidv7>.json; seals under v1/audit-seals/<seq>.json. Seal n holds the
// SHA-256 of every record it covers and of seal n-1's bytes, and is signed with the hub's ed25519 key, so
// anyone holding the hub's public key can check the chain and nobody without the private key can extend
// it. Any hub instance may seal; the sequence number is claimed with a create-only write. A hub seals on
// a known period even when nothing happened (an empty seal), so deleting the newest seals leaves a gap
// the verifier reports.
package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
)

const (
	prefixRecords = layout.Audit
	prefixSeals   = layout.AuditSeals
	// lookback covers records written by an instance whose clock runs behind the one that sealed.
	lookback = 2 * time.Minute
)

// Actor is who acted (a person, an agent, or the hub itself).
type Actor struct {
	ID     string   `json:"id"`
	Groups []string `json:"groups,omitempty"`
	Via    string   `json:"via"`
	// Person is who this is across credentials (domain.Principal.Person).
	Person string `json:"person,omitempty"`
}

// Decision is what the policy said.
type Decision struct {
	Allow     bool     `json:"allow"`
	Rules     []string `json:"rules,omitempty"`
	Reasons   []string `json:"reasons,omitempty"`
	Approvals int      `json:"approvals,omitempty" doc:"Approvals required."`
}

// Record is one mutation: who, how authenticated, what, on which targets, the decision, when.
// It never holds a secret: callers pass token ids, not tokens.
type Record struct {
	ID        string         `json:"id"`
	Time      time.Time      `json:"time"`
	Principal Actor          `json:"principal"`
	Action    string         `json:"action"`
	Targets   []string       `json:"targets,omitempty"`
	Decision  *Decision      `json:"decision,omitempty"`
	RequestID string         `json:"requestId,omitempty"`
	Outcome   string         `json:"outcome" doc:"ok, denied, or failed"`
	Detail    map[string]any `json:"detail,omitempty"`
	Key       string         `json:"-"`
}

// Stamp gives r its time-ordered id, its time and its key, so that writing it again (from an outbox,
// after a failure) lands on the same key and cannot make a second copy.
func Stamp(r Record) Record {
	if r.ID == "" {
		r.ID = uuid.Must(uuid.NewV7()).String()
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	r.Key = layout.AuditRecord(r.Time, r.ID)
	return r
}

// Write stores r (stamped if it is not yet) and returns it. Writing a record that is already stored
// is not an error: it is the same record.
func Write(ctx context.Context, s store.Store, r Record) (Record, error) {
	r = Stamp(r)
	b, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	_, err = store.PutBytes(ctx, s, r.Key, b, store.PutOptions{CreateOnly: true, ContentType: "application/json"})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return r, fmt.Errorf("audit record %s: %w", r.Action, err)
	}
	return r, nil
}

// Query selects records.
type Query struct {
	Since, Until time.Time
	Principal    string
	Limit        int
}

// List returns records matching q, oldest first.
func List(ctx context.Context, s store.Store, q Query) ([]Record, error) {
	start := ""
	if !q.Since.IsZero() {
		start = layout.AuditDay(q.Since.AddDate(0, 0, -1)) + "~" // after the day before
	}
	var out []Record
	errStop := errors.New("stop")
	err := store.Walk(ctx, s, prefixRecords, start, 0, func(o store.ObjectInfo) error {
		b, _, err := store.ReadAll(ctx, s, o.Key)
		if errors.Is(err, store.ErrNotFound) { // forged (refused by the integrity check) or just deleted
			return nil
		}
		if err != nil {
			return err
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("audit record %s: %w", o.Key, err)
		}
		r.Key = o.Key
		if (!q.Since.IsZero() && r.Time.Before(q.Since)) || (q.Principal != "" && r.Principal.ID != q.Principal) {
			return nil
		}
		if !q.Until.IsZero() && r.Time.After(q.Until) {
			return errStop
		}
		out = append(out, r)
		if q.Limit > 0 && len(out) >= q.Limit {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return out, nil
}

// ErrRaced: another hub claimed the seal's sequence number first; the records wait for the next round.
var ErrRaced = errors.New("another hub sealed first")

// Period is how often a hub seals at the latest, even with nothing new, and MaxGap the longest time
// between two seals that the verifier accepts without a hub start in between to explain it.
const (
	Period = 5 * time.Minute
	MaxGap = 3 * Period
)

// ActionHubStarted is the record a hub writes when it starts, which explains a gap in the seals.
const ActionHubStarted = "start-hub"

// Seal is one link of the chain.
type Seal struct {
	Seq     int          `json:"seq"`
	Prev    string       `json:"prev" doc:"SHA-256 of the previous seal's bytes; empty for the first."`
	At      time.Time    `json:"at"`
	Records []SealedItem `json:"records"`
	// Through is the newest record key sealed by this seal or any before it, carried by empty seals too,
	// so the next sealer and the verifier know where the sealed past ends.
	Through string `json:"through,omitempty"`
	// KeyID names the hub key that signed the seal, and Sig is its ed25519 signature over the seal's
	// JSON without Sig.
	KeyID string `json:"keyId"`
	Sig   []byte `json:"sig,omitempty"`
}

// SealedItem is a record's key and the SHA-256 of its bytes.
type SealedItem struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	// Started marks a start-hub record, so the verifier needs no extra read to explain a gap.
	Started bool `json:"started,omitempty"`
}

func (sl Seal) signedBytes() []byte {
	sl.Sig = nil
	b, _ := json.Marshal(sl)
	return b
}

func sealKey(seq int) string { return layout.AuditSeal(seq) }

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// allSeals lists the keys of every seal, oldest first.
func allSeals(ctx context.Context, s store.Store) ([]string, error) {
	var keys []string
	err := store.Walk(ctx, s, prefixSeals, "", 0, func(o store.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	return keys, err
}

// tailSeals is how many of the newest seals a sealer reads to know what is already sealed: records
// sealed before them are older than the lookback and never listed again.
const tailSeals = 10

// chainTail reads the newest n seals (0: all): the newest one and its bytes, and every record key they
// cover.
func chainTail(ctx context.Context, s store.Store, n int) (last *Seal, lastBytes []byte, covered map[string]bool, err error) {
	keys, err := allSeals(ctx, s)
	if err != nil {
		return nil, nil, nil, err
	}
	from := 0
	if n > 0 {
		from = max(0, len(keys)-n)
	}
	covered = map[string]bool{}
	for i := from; i < len(keys); i++ {
		b, _, err := store.ReadAll(ctx, s, keys[i])
		if err != nil {
			return nil, nil, nil, fmt.Errorf("seal %s: %w", keys[i], err)
		}
		var sl Seal
		if err := json.Unmarshal(b, &sl); err != nil {
			return nil, nil, nil, fmt.Errorf("seal %s: %w", keys[i], err)
		}
		for _, it := range sl.Records {
			covered[it.Key] = true
		}
		last, lastBytes = &sl, b
	}
	return last, lastBytes, covered, nil
}

// SealNow seals every record not yet covered, signed with the hub's current key, and returns how many it
// sealed. With nothing new it writes an empty seal once the newest is older than Period, so that the
// chain shows the hub was alive. Records that fail the hub's integrity check (forged into the bucket)
// are never sealed; Verify names them. Concurrent sealers race for the next sequence number with a
// create-only write; the loser gets ErrRaced and leaves its records to the next round.
//
// late names records written outside the usual window (delivered from an outbox after the store
// failed): they are sealed too, wherever their time falls.
func SealNow(ctx context.Context, s store.Store, keys *hubkey.Keys, late ...string) (int, error) {
	return sealAt(ctx, s, keys, time.Now().UTC(), late...)
}

// NewestSeal is when the newest seal was made; ok is false when there is none.
func NewestSeal(ctx context.Context, s store.Store) (at time.Time, ok bool, err error) {
	last, _, _, err := chainTail(ctx, s, 1)
	if err != nil || last == nil {
		return time.Time{}, false, err
	}
	return last.At, true, nil
}

func sealAt(ctx context.Context, s store.Store, keys *hubkey.Keys, now time.Time, late ...string) (int, error) {
	last, lastBytes, covered, err := chainTail(ctx, s, tailSeals)
	if err != nil {
		return 0, err
	}
	start := ""
	seq, prev := 1, ""
	if last != nil {
		seq, prev = last.Seq+1, sum(lastBytes)
		start = rewind(last.Through)
	}
	var items []SealedItem
	seen := map[string]bool{}
	add := func(o store.ObjectInfo) error {
		if covered[o.Key] || seen[o.Key] {
			return nil
		}
		seen[o.Key] = true
		b, _, err := store.ReadAll(ctx, s, o.Key)
		if errors.Is(err, store.ErrNotFound) { // forged (refused by the integrity check) or just deleted
			return nil
		}
		if err != nil {
			return err
		}
		var r Record
		json.Unmarshal(b, &r)
		items = append(items, SealedItem{Key: o.Key, SHA256: sum(b), Started: r.Action == ActionHubStarted})
		return nil
	}
	if err = store.Walk(ctx, s, prefixRecords, start, 0, add); err != nil {
		return 0, err
	}
	if len(late) > 0 {
		// Rare (after an outage), so the whole chain is read: a late record may be older than the
		// seals the tail covers, and must not be sealed twice.
		if _, _, covered, err = chainTail(ctx, s, 0); err != nil {
			return 0, err
		}
		for _, k := range late {
			if strings.HasPrefix(k, prefixRecords) {
				if err := add(store.ObjectInfo{Key: k}); err != nil {
					return 0, err
				}
			}
		}
	}
	if len(items) == 0 && last != nil && now.Sub(last.At) < Period {
		return 0, nil
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Key < items[j].Key })
	sl := Seal{Seq: seq, Prev: prev, At: now, Records: items, KeyID: keys.CurrentID()}
	if last != nil {
		sl.Through = last.Through
	}
	if len(items) > 0 {
		sl.Through = max(sl.Through, items[len(items)-1].Key)
	}
	if last != nil && sl.At.Before(last.At) {
		sl.At = last.At // a hub with a slow clock never makes the chain run backwards
	}
	sl.Sig = ed25519.Sign(keys.Current, sl.signedBytes())
	b, _ := json.Marshal(sl)
	_, err = store.PutBytes(ctx, s, sealKey(seq), b, store.PutOptions{CreateOnly: true, ContentType: "application/json"})
	if errors.Is(err, store.ErrExists) {
		return 0, ErrRaced
	}
	if err != nil {
		return 0, fmt.Errorf("write seal %d: %w", seq, err)
	}
	return len(items), nil
}

// rewind turns a record key into a listing start a little before it (lookback), so records written late
// by a hub with a slow clock are still found.
func rewind(key string) string {
	t, ok := keyTime(key)
	if !ok {
		return ""
	}
	return layout.AuditAt(t.Add(-lookback))
}

// keyTime is when a record was written, from its time-ordered id.
func keyTime(key string) (time.Time, bool) {
	name := strings.TrimSuffix(key[strings.LastIndex(key, "/")+1:], ".json")
	u, err := uuid.Parse(name)
	if err != nil || u.Version() != 7 {
		return time.Time{}, false
	}
	sec, nsec := u.Time().UnixTime()
	return time.Unix(sec, nsec).UTC(), true
}

// Gap is a stretch longer than MaxGap without a seal.
type Gap struct {
	AfterSeq int       `json:"afterSeq"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to" doc:"The next seal, or the time of the check when no seal followed."`
}

// Report is the outcome of Verify.
type Report struct {
	OK       bool   `json:"ok"`
	Seals    int    `json:"seals"`
	Records  int    `json:"records" doc:"Sealed records checked."`
	Unsealed int    `json:"unsealed" doc:"Genuine records written since the last seal (not yet protected)."`
	Problem  string `json:"problem,omitempty" doc:"The first break found, naming the record or seal."`
	// Explained are gaps with a hub start after them (the hub was not running); an unexplained gap is a
	// Problem.
	Explained []Gap `json:"gaps,omitempty" doc:"Gaps in the seals explained by a hub start (no hub was running)."`
}

// Verify checks the chain as it is, without sealing anything first: every seal must follow its
// predecessor, the newest must be signed by a key of the hub's set (older ones are vouched for through
// the hash chain, and are checked too when their key is still held), every sealed record must still
// exist with the same bytes, no record older than the sealed ones may be missing from the seals, and no
// gap between seals may exceed MaxGap unless a hub start explains it. It names the first break.
func Verify(ctx context.Context, s store.Store, keys *hubkey.Keys) (Report, error) {
	return verifyAt(ctx, s, keys, time.Now())
}

func verifyAt(ctx context.Context, s store.Store, keys *hubkey.Keys, now time.Time) (Report, error) {
	var rep Report
	held := map[string]ed25519.PublicKey{}
	for _, k := range keys.Public() {
		held[k.KeyID] = k.PublicKey
	}
	sealKeys, err := allSeals(ctx, s)
	if err != nil {
		return rep, err
	}
	fail := func(format string, args ...any) (Report, error) {
		rep.Problem = fmt.Sprintf(format, args...)
		return rep, nil
	}
	prev := ""
	sealed := map[string]bool{}
	var last *Seal
	for i, k := range sealKeys {
		b, _, err := store.ReadAll(ctx, s, k)
		if errors.Is(err, store.ErrNotFound) {
			return fail("seal %s failed the hub's integrity check: %v", k, err)
		}
		if err != nil {
			return rep, err
		}
		var sl Seal
		if err := json.Unmarshal(b, &sl); err != nil {
			return fail("seal %s is corrupt: %v", k, err)
		}
		if sl.Seq != i+1 {
			return fail("seal %d is missing (found %d next)", i+1, sl.Seq)
		}
		if sl.Prev != prev {
			return fail("seal %d does not follow seal %d: the chain was altered", sl.Seq, sl.Seq-1)
		}
		pub, known := held[sl.KeyID]
		if known && !ed25519.Verify(pub, sl.signedBytes(), sl.Sig) {
			return fail("seal %d has a bad signature for key %s: it was not made by this hub", sl.Seq, sl.KeyID)
		}
		if !known && i == len(sealKeys)-1 {
			return fail("the newest seal (%d) is signed by key %q, which is not one of this hub's keys: it was not made by this hub", sl.Seq, sl.KeyID)
		}
		if last != nil && sl.At.Sub(last.At) > MaxGap {
			g := Gap{AfterSeq: last.Seq, From: last.At, To: sl.At}
			if !startedIn(sl) {
				return fail("no seal between seal %d (%s) and seal %d (%s), longer than the %s sealing period allows, and no hub start explains it: seals were deleted and the chain rebuilt", last.Seq, last.At.Format(time.RFC3339), sl.Seq, sl.At.Format(time.RFC3339), MaxGap)
			}
			rep.Explained = append(rep.Explained, g)
		}
		for _, it := range sl.Records {
			rb, _, err := store.ReadAll(ctx, s, it.Key)
			if errors.Is(err, signed.ErrTampered) {
				return fail("record %s was changed after it was sealed in seal %d (%v)", it.Key, sl.Seq, err)
			}
			if errors.Is(err, store.ErrNotFound) {
				return fail("record %s was removed (sealed in seal %d)", it.Key, sl.Seq)
			}
			if err != nil {
				return rep, err
			}
			if sum(rb) != it.SHA256 {
				return fail("record %s was changed after it was sealed in seal %d", it.Key, sl.Seq)
			}
			sealed[it.Key] = true
			rep.Records++
		}
		prev = sum(b)
		rep.Seals++
		last = &sl
	}
	// The records no seal covers: forged, inserted behind the seals, or simply recent.
	horizon := time.Time{}
	if last != nil {
		if t, ok := keyTime(last.Through); ok {
			horizon = t.Add(-lookback)
		}
	}
	err = store.Walk(ctx, s, prefixRecords, "", 0, func(o store.ObjectInfo) error {
		if sealed[o.Key] {
			return nil
		}
		_, _, err := store.ReadAll(ctx, s, o.Key)
		if errors.Is(err, signed.ErrTampered) {
			rep.Problem = fmt.Sprintf("record %s was not written by this hub (%v)", o.Key, err)
			return errStopWalk
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if t, ok := keyTime(o.Key); !ok || t.Before(horizon) {
			rep.Problem = fmt.Sprintf("record %s was inserted: it is older than the records of seal %d but in no seal", o.Key, last.Seq)
			return errStopWalk
		}
		rep.Unsealed++
		return nil
	})
	if errors.Is(err, errStopWalk) {
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	if last != nil && now.Sub(last.At) > MaxGap {
		return fail("the newest seal (%d, %s) is older than the %s sealing period allows: newer seals were deleted, or no hub has run since", last.Seq, last.At.Format(time.RFC3339), MaxGap)
	}
	rep.OK = true
	return rep, nil
}

var errStopWalk = errors.New("stop")

func startedIn(sl Seal) bool {
	for _, it := range sl.Records {
		if it.Started {
			return true
		}
	}
	return false
}
