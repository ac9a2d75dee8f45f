// Package audit keeps the hub's audit trail in the store: one write-once record per mutation, and
// periodic seals that chain the records' hashes, so that editing or deleting a record in the bucket is
// detected by Verify and named.
//
// Records live under v1/audit/<day>/<uuidv7>.json; seals under v1/audit-seals/<seq>.json. Seal n holds the
// SHA-256 of every record it covers and of seal n-1's bytes; any hub instance may seal, and the seal
// sequence number is claimed with a create-only write.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/layout"
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

// Write stores r under a fresh time-ordered key and returns it.
func Write(ctx context.Context, s store.Store, r Record) (Record, error) {
	id := uuid.Must(uuid.NewV7())
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	r.ID = id.String()
	r.Key = layout.AuditRecord(r.Time, r.ID)
	b, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	if _, err := store.PutBytes(ctx, s, r.Key, b, store.PutOptions{CreateOnly: true, ContentType: "application/json"}); err != nil {
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

// Seal is one link of the chain.
type Seal struct {
	Seq     int          `json:"seq"`
	Prev    string       `json:"prev" doc:"SHA-256 of the previous seal's bytes; empty for the first."`
	At      time.Time    `json:"at"`
	Records []SealedItem `json:"records"`
}

// SealedItem is a record's key and the SHA-256 of its bytes.
type SealedItem struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
}

func sealKey(seq int) string { return layout.AuditSeal(seq) }

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// chainTail reads the last seals: the newest one's bytes and every key the last few cover.
func chainTail(ctx context.Context, s store.Store) (last *Seal, lastBytes []byte, covered map[string]bool, err error) {
	var keys []string
	if err := store.Walk(ctx, s, prefixSeals, "", 0, func(o store.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		return nil, nil, nil, err
	}
	covered = map[string]bool{}
	for i := max(0, len(keys)-10); i < len(keys); i++ {
		b, _, err := store.ReadAll(ctx, s, keys[i])
		if err != nil {
			return nil, nil, nil, err
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

// SealNow seals every record not yet covered, returning how many it sealed. Concurrent sealers race
// for the next sequence number with a create-only write; the loser seals nothing and leaves its records
// to the next round.
func SealNow(ctx context.Context, s store.Store) (int, error) {
	last, lastBytes, covered, err := chainTail(ctx, s)
	if err != nil {
		return 0, err
	}
	start := ""
	seq, prev := 1, ""
	if last != nil {
		seq, prev = last.Seq+1, sum(lastBytes)
		newest := ""
		for _, it := range last.Records {
			newest = max(newest, it.Key)
		}
		start = rewind(newest)
	}
	var items []SealedItem
	err = store.Walk(ctx, s, prefixRecords, start, 0, func(o store.ObjectInfo) error {
		if covered[o.Key] {
			return nil
		}
		b, _, err := store.ReadAll(ctx, s, o.Key)
		if err != nil {
			return err
		}
		items = append(items, SealedItem{Key: o.Key, SHA256: sum(b)})
		return nil
	})
	if err != nil || len(items) == 0 {
		return 0, err
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Key < items[j].Key })
	b, _ := json.Marshal(Seal{Seq: seq, Prev: prev, At: time.Now().UTC(), Records: items})
	_, err = store.PutBytes(ctx, s, sealKey(seq), b, store.PutOptions{CreateOnly: true, ContentType: "application/json"})
	if errors.Is(err, store.ErrExists) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("write seal %d: %w", seq, err)
	}
	return len(items), nil
}

// rewind turns a record key into a listing start a little before it (lookback), so records written late
// by a hub with a slow clock are still found.
func rewind(key string) string {
	name := strings.TrimSuffix(key[strings.LastIndex(key, "/")+1:], ".json")
	u, err := uuid.Parse(name)
	if err != nil || u.Version() != 7 {
		return ""
	}
	sec, nsec := u.Time().UnixTime()
	return layout.AuditAt(time.Unix(sec, nsec).Add(-lookback).UTC())
}

// Report is the outcome of Verify.
type Report struct {
	OK       bool   `json:"ok"`
	Seals    int    `json:"seals"`
	Records  int    `json:"records" doc:"Sealed records checked."`
	Unsealed int    `json:"unsealed" doc:"Records written since the last seal (not yet protected)."`
	Problem  string `json:"problem,omitempty" doc:"The first break found, naming the record or seal."`
}

// Verify recomputes the chain: every seal must follow its predecessor, and every sealed record must
// still exist with the same bytes. It names the first record that was changed or removed.
func Verify(ctx context.Context, s store.Store) (Report, error) {
	var rep Report
	var keys []string
	if err := store.Walk(ctx, s, prefixSeals, "", 0, func(o store.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		return rep, err
	}
	prev := ""
	sealed := map[string]bool{}
	for i, k := range keys {
		b, _, err := store.ReadAll(ctx, s, k)
		if err != nil {
			return rep, err
		}
		var sl Seal
		if err := json.Unmarshal(b, &sl); err != nil {
			rep.Problem = fmt.Sprintf("seal %s is corrupt: %v", k, err)
			return rep, nil
		}
		if sl.Seq != i+1 {
			rep.Problem = fmt.Sprintf("seal %d is missing (found %d next)", i+1, sl.Seq)
			return rep, nil
		}
		if sl.Prev != prev {
			rep.Problem = fmt.Sprintf("seal %d does not follow seal %d: the chain was altered", sl.Seq, sl.Seq-1)
			return rep, nil
		}
		for _, it := range sl.Records {
			rb, _, err := store.ReadAll(ctx, s, it.Key)
			if errors.Is(err, store.ErrNotFound) {
				rep.Problem = fmt.Sprintf("record %s was removed (sealed in seal %d)", it.Key, sl.Seq)
				return rep, nil
			}
			if err != nil {
				return rep, err
			}
			if sum(rb) != it.SHA256 {
				rep.Problem = fmt.Sprintf("record %s was changed after it was sealed in seal %d", it.Key, sl.Seq)
				return rep, nil
			}
			sealed[it.Key] = true
			rep.Records++
		}
		prev = sum(b)
		rep.Seals++
	}
	if err := store.Walk(ctx, s, prefixRecords, "", 0, func(o store.ObjectInfo) error {
		if !sealed[o.Key] {
			rep.Unsealed++
		}
		return nil
	}); err != nil {
		return rep, err
	}
	rep.OK = true
	return rep, nil
}
