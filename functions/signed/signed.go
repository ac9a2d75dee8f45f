// Package signed makes the bucket a place the hub keeps its state, not a place it takes orders from.
// Every object the hub writes is prefixed with a MAC made from a key derived from the hub's signing key
// (which never sits in the bucket), and every object the hub reads must carry a valid one. An object
// written or edited by anyone else (a leaked S3 credential, a compromised storage node) fails the check
// and reads as missing: it is ignored, logged once, counted, listed by Integrity, and never acted on.
//
// The MAC binds the object's key as well as its bytes, so a genuine record copied to another key is
// refused too. Key rotation keeps records valid while the key that wrote them is in the key set.
//
// The wrapping is a store.Store, so the rooms read and write as before and none of them can forget to
// check: Store wraps the hub's store once, in the composition root.
package signed

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// magic starts every object the hub writes: "pulse-mac1 <key id> <base64url HMAC-SHA256>\n".
const magic = "pulse-mac1"

// macInfo separates the record MAC key from every other use of the signing key.
const macInfo = "pulse record mac v1"

// ErrTampered marks an object that the hub did not write as it is: no MAC, a MAC by a key the hub does
// not hold, or a MAC that does not match the object's key and bytes. Errors carrying it also match
// store.ErrNotFound, so a room treats a forged object as absent.
var ErrTampered = errors.New("object failed the hub's integrity check")

// TamperedError names the object and why it was refused.
type TamperedError struct {
	Key    string
	Reason string
}

func (e *TamperedError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Key, ErrTampered, e.Reason)
}

// Is makes a tampered object read as ErrTampered and as store.ErrNotFound.
func (e *TamperedError) Is(target error) bool {
	return target == ErrTampered || target == store.ErrNotFound
}

// macKey is one key of the set: its id (the signing key's) and the derived MAC key.
type macKey struct {
	id  string
	key []byte
}

// Store is a store.Store that MACs what it writes and checks what it reads.
type Store struct {
	inner   store.Store
	current macKey
	all     map[string][]byte
	log     *slog.Logger
	ledger  ledger
}

var _ store.Store = (*Store)(nil)

// Wrap returns s seen through the hub's keys: writes are MACed with the current key, reads accepted
// when MACed with any key of the set. Deliveries are MACed too, though their envelopes also carry the
// hub's ed25519 signature that the agent checks: a planted delivery is never even offered to an agent.
func Wrap(s store.Store, keys *hubkey.Keys, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Store{inner: s, all: map[string][]byte{}, log: log}
	for i, priv := range keys.Private() {
		k, err := hkdf.Key(sha256.New, priv.Seed(), nil, macInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("derive record key: %w", err)
		}
		id := keys.IDOf(priv)
		w.all[id] = k
		if i == 0 {
			w.current = macKey{id: id, key: k}
		}
	}
	return w, nil
}

// Inner is the store underneath, for the readiness probe and for tests that play the bucket writer.
func (w *Store) Inner() store.Store { return w.inner }

func sum(k []byte, key string, body []byte) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(magic + "\n" + key + "\n"))
	m.Write(body)
	return m.Sum(nil)
}

// Seal returns the bytes the hub stores for body under key.
func (w *Store) Seal(key string, body []byte) []byte {
	mac := base64.RawURLEncoding.EncodeToString(sum(w.current.key, key, body))
	out := make([]byte, 0, len(magic)+len(w.current.id)+len(mac)+3+len(body))
	out = fmt.Appendf(out, "%s %s %s\n", magic, w.current.id, mac)
	return append(out, body...)
}

// Open checks the bytes stored under key and returns the body the hub wrote.
func (w *Store) Open(key string, obj []byte) ([]byte, error) {
	body, _, err := w.open(key, obj)
	return body, err
}

// open is Open that also says which key MACed the object.
func (w *Store) open(key string, obj []byte) (body []byte, keyID string, err error) {
	line, body, ok := bytes.Cut(obj, []byte("\n"))
	if !ok {
		return nil, "", &TamperedError{Key: key, Reason: "no MAC header"}
	}
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != magic {
		return nil, "", &TamperedError{Key: key, Reason: "no MAC header"}
	}
	k, held := w.all[f[1]]
	if !held {
		return nil, "", &TamperedError{Key: key, Reason: fmt.Sprintf("MAC by key %s, which this hub does not hold", f[1])}
	}
	got, err := base64.RawURLEncoding.DecodeString(f[2])
	if err != nil || !hmac.Equal(got, sum(k, key, body)) {
		return nil, "", &TamperedError{Key: key, Reason: "MAC does not match the object's key and bytes"}
	}
	return body, f[1], nil
}

// Get reads and checks an object; a forged one is an error matching ErrTampered and store.ErrNotFound.
func (w *Store) Get(ctx context.Context, key string, opts store.GetOptions) (*store.Object, error) {
	obj, err := w.inner.Get(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	defer obj.Body.Close()
	raw, err := io.ReadAll(obj.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	body, err := w.Open(key, raw)
	if err != nil {
		w.ledger.note(w.log, key, err)
		return nil, err
	}
	info := obj.ObjectInfo
	info.Size = int64(len(body))
	return &store.Object{ObjectInfo: info, Body: io.NopCloser(bytes.NewReader(body))}, nil
}

// Put MACs and writes an object.
func (w *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if size < 0 {
		return store.ObjectInfo{}, fmt.Errorf("put %s: size must be known (got %d)", key, size)
	}
	b, err := io.ReadAll(io.LimitReader(body, size+1))
	if err != nil {
		return store.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	if int64(len(b)) != size {
		return store.ObjectInfo{}, fmt.Errorf("put %s: body has %d bytes, size says %d", key, len(b), size)
	}
	sealed := w.Seal(key, b)
	if opts.CreateOnly && len(sealed) > store.MaxCreateOnlySize && size <= store.MaxCreateOnlySize {
		// The header must not push a payload the caller sized to the limit over it.
		return store.ObjectInfo{}, fmt.Errorf("put %s: %w (%d bytes with its MAC, limit %d)", key, store.ErrTooLarge, len(sealed), store.MaxCreateOnlySize)
	}
	info, err := store.PutBytes(ctx, w.inner, key, sealed, opts)
	if opts.CreateOnly && errors.Is(err, store.ErrExists) {
		return w.takeBack(ctx, key, sealed, err)
	}
	return info, err
}

// takeBack decides a create-only write that found its key taken. Taken by the hub, it is the same
// decision already recorded (ErrExists, as the caller expects). Taken by an object that fails the
// check, a bucket writer planted it to block the write (a revocation, a cancel, a denial, a result):
// it is replaced, on the condition that it is still the planted one, and the refusal is noted.
func (w *Store) takeBack(ctx context.Context, key string, sealed []byte, exists error) (store.ObjectInfo, error) {
	raw, held, err := store.ReadAll(ctx, w.inner, key)
	if errors.Is(err, store.ErrNotFound) {
		return store.PutBytes(ctx, w.inner, key, sealed, store.PutOptions{CreateOnly: true})
	}
	if err != nil {
		return store.ObjectInfo{}, fmt.Errorf("put %s: check the object in the way: %w", key, err)
	}
	if _, oerr := w.Open(key, raw); oerr == nil {
		return store.ObjectInfo{}, exists
	} else {
		w.ledger.note(w.log, key, oerr)
	}
	info, err := store.PutBytes(ctx, w.inner, key, sealed, store.PutOptions{IfMatch: held.ETag})
	if errors.Is(err, store.ErrPreconditionFailed) {
		return store.ObjectInfo{}, exists // someone wrote it meanwhile; a genuine one is the decision
	}
	return info, err
}

// List lists keys as they are; reading an object is what checks it.
func (w *Store) List(ctx context.Context, prefix, startAfter string, limit int) (store.Page, error) {
	return w.inner.List(ctx, prefix, startAfter, limit)
}

// Delete removes an object.
func (w *Store) Delete(ctx context.Context, key string) error { return w.inner.Delete(ctx, key) }

// Refused is one object that failed the check.
type Refused struct {
	Key    string    `json:"key"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at" doc:"When this hub process first refused it."`
}

// Report is what this hub process has refused since it started.
type Report struct {
	Refused int       `json:"refused" doc:"Reads refused since this process started."`
	Objects []Refused `json:"objects" doc:"The objects refused, newest first (at most 100)."`
}

// Integrity reports the objects this process refused.
func (w *Store) Integrity() Report { return w.ledger.report() }

// Scan checks every object under the prefixes (up to limit objects) and returns those that fail,
// for an integrity view that does not depend on which hub process happened to read what.
func (w *Store) Scan(ctx context.Context, prefixes []string, limit int) (checked int, bad []Refused, err error) {
	checked, err = w.eachRaw(ctx, prefixes, limit, func(key string, raw []byte, _ store.ObjectInfo) error {
		if _, err := w.Open(key, raw); err != nil {
			var te *TamperedError
			errors.As(err, &te)
			bad = append(bad, Refused{Key: key, Reason: te.Reason, At: time.Now().UTC()})
		}
		return nil
	})
	return checked, bad, err
}

// eachRaw calls fn with the stored bytes of every object under the prefixes, up to
// limit objects (0: all), and returns how many it read. An object deleted meanwhile is skipped.
func (w *Store) eachRaw(ctx context.Context, prefixes []string, limit int, fn func(key string, raw []byte, info store.ObjectInfo) error) (int, error) {
	errStop := errors.New("stop")
	n := 0
	for _, p := range prefixes {
		err := store.Walk(ctx, w.inner, p, "", 0, func(o store.ObjectInfo) error {
			if limit > 0 && n >= limit {
				return errStop
			}
			n++
			raw, info, err := store.ReadAll(ctx, w.inner, o.Key)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			return fn(o.Key, raw, info)
		})
		if errors.Is(err, errStop) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("read %s: %w", p, err)
		}
	}
	return n, nil
}

// ledger remembers refused objects so each is logged once, with a bound on memory.
type ledger struct {
	mu    sync.Mutex
	count int
	seen  map[string]Refused
}

const ledgerMax = 100

func (l *ledger) note(log *slog.Logger, key string, err error) {
	var te *TamperedError
	if !errors.As(err, &te) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	if _, dup := l.seen[key]; dup {
		return
	}
	if l.seen == nil {
		l.seen = map[string]Refused{}
	}
	if len(l.seen) >= ledgerMax {
		oldest := ""
		for k, r := range l.seen {
			if oldest == "" || r.At.Before(l.seen[oldest].At) {
				oldest = k
			}
		}
		delete(l.seen, oldest)
	}
	l.seen[key] = Refused{Key: key, Reason: te.Reason, At: time.Now().UTC()}
	log.Error("refused an object the hub did not write; it is ignored (someone with write access to the bucket may have forged or edited it)",
		"key", key, "reason", te.Reason)
}

func (l *ledger) report() Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := Report{Refused: l.count, Objects: []Refused{}}
	for _, x := range l.seen {
		r.Objects = append(r.Objects, x)
	}
	sort.Slice(r.Objects, func(i, j int) bool { return r.Objects[i].At.After(r.Objects[j].At) })
	return r
}

// Prefixes are the prefixes whose objects carry the hub's MAC: all the hub writes but the probe's
// throw-away objects.
func Prefixes() []string {
	var out []string
	for _, p := range layout.Prefixes() {
		if p.Path != layout.Probe {
			out = append(out, p.Path)
		}
	}
	return out
}

// Reseal rewrites, with keys.Current, every object MACed by another key of the set, so that the next
// rotation, which drops keys.Previous, leaves no object without a valid MAC. The bytes under the MAC do
// not change (the audit chain's hashes stay true). Hubs still running with the old key set accept the
// result, because keys.Current is in it. Objects that fail the check are left as they are and counted.
// progress, if not nil, is called every 1000 objects.
func Reseal(ctx context.Context, inner store.Store, keys *hubkey.Keys, progress func(checked int)) (resealed, refused int, err error) {
	w, err := Wrap(inner, keys, nil)
	if err != nil {
		return 0, 0, err
	}
	checked := 0
	_, err = w.eachRaw(ctx, Prefixes(), 0, func(key string, raw []byte, info store.ObjectInfo) error {
		if checked++; progress != nil && checked%1000 == 0 {
			progress(checked)
		}
		body, keyID, err := w.open(key, raw)
		switch {
		case err != nil:
			refused++
			return nil
		case keyID == w.current.id:
			return nil
		}
		_, err = store.PutBytes(ctx, inner, key, w.Seal(key, body), store.PutOptions{IfMatch: info.ETag})
		if errors.Is(err, store.ErrPreconditionFailed) {
			return nil // changed meanwhile: written by a hub, so with a held key
		}
		if err != nil {
			return fmt.Errorf("reseal %s: %w", key, err)
		}
		resealed++
		return nil
	})
	return resealed, refused, err
}
