// Package storetest is the conformance suite every store backend must pass, in the style of Litestream's
// replica-client tests: one suite, run against each backend (local directory, real MinIO, versitygw,
// SeaweedFS, and the Garage-like unconditional wrapper), so the hub above can rely on identical semantics
// everywhere.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pulsehq/pulse/functions/store"
)

// Caps says which guarantees the backend under test claims; the suite checks exactly those.
type Caps struct {
	// CreateOnly: a second create-only write of a key fails with store.ErrExists, atomically under
	// concurrent writers.
	CreateOnly bool
	// IfMatch: a write with a stale ETag fails with store.ErrPreconditionFailed.
	IfMatch bool
	// ConditionalGet: a Get with the current ETag in IfNoneMatch fails with store.ErrNotModified.
	ConditionalGet bool
}

// Full is what a store with conditional writes offers (MinIO, versitygw, SeaweedFS, AWS S3, the local
// backend).
var Full = Caps{CreateOnly: true, IfMatch: true, ConditionalGet: true}

// Factory returns a fresh, empty store for one test. It is called once per sub-test, so backends can
// hand out a unique key prefix or bucket each time.
type Factory func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, caps Caps, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Caps, store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Missing", testMissing},
		{"InvalidKeys", testInvalidKeys},
		{"OverwriteChangesETag", testOverwrite},
		{"ConditionalGet", testConditionalGet},
		{"CreateOnly", testCreateOnly},
		{"CreateOnlyConcurrent", testCreateOnlyConcurrent},
		{"CreateOnlyTooLarge", testCreateOnlyTooLarge},
		{"PutBesideDelete", testPutBesideDelete},
		{"IfMatch", testIfMatch},
		{"ShortBody", testShortBody},
		{"FileAndDirectoryKeys", testFileAndDirectoryKeys},
		{"ListOrderAndPaging", testListOrderAndPaging},
		{"ListStartAfter", testListStartAfter},
		{"LargeObject", testLargeObject},
		{"Cancellation", testCancellation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, caps, newStore(t))
		})
	}
}

func put(t *testing.T, s store.Store, key string, b []byte, opts store.PutOptions) store.ObjectInfo {
	t.Helper()
	info, err := store.PutBytes(context.Background(), s, key, b, opts)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return info
}

func get(t *testing.T, s store.Store, key string) ([]byte, store.ObjectInfo) {
	t.Helper()
	b, info, err := store.ReadAll(context.Background(), s, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b, info
}

func listAll(t *testing.T, s store.Store, prefix, startAfter string, pageSize int) []string {
	t.Helper()
	var keys []string
	err := store.Walk(context.Background(), s, prefix, startAfter, pageSize, func(o store.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q after %q: %v", prefix, startAfter, err)
	}
	return keys
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func testRoundTrip(t *testing.T, _ Caps, s store.Store) {
	for _, size := range []int{0, 1, 1 << 10, 300 << 10} {
		key := fmt.Sprintf("rt/obj-%d.json", size)
		want := randomBytes(t, size)
		info := put(t, s, key, want, store.PutOptions{ContentType: "application/octet-stream"})
		if info.Key != key || info.Size != int64(size) || info.ETag == "" {
			t.Fatalf("put %s returned %+v; want key, size %d and an ETag", key, info, size)
		}
		got, ginfo := get(t, s, key)
		if !bytes.Equal(got, want) {
			t.Fatalf("get %s: %d bytes differ from the %d written", key, len(got), size)
		}
		if ginfo.ETag != info.ETag || ginfo.Size != int64(size) || ginfo.Key != key {
			t.Fatalf("get %s info %+v; put said %+v", key, ginfo, info)
		}
		if ginfo.LastModified.IsZero() {
			t.Fatalf("get %s: no LastModified", key)
		}
	}
	page, err := s.List(context.Background(), "rt/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Objects) != 4 || page.Truncated {
		t.Fatalf("list rt/: %d objects (truncated %v), want 4", len(page.Objects), page.Truncated)
	}
	for _, o := range page.Objects {
		_, info := get(t, s, o.Key)
		if o.ETag != info.ETag || o.Size != info.Size {
			t.Fatalf("list says %+v, get says %+v", o, info)
		}
	}
}

func testMissing(t *testing.T, _ Caps, s store.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "missing/key", store.GetOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "missing/key", store.GetOptions{IfNoneMatch: "abc"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("conditional get missing: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "missing/key"); err != nil {
		t.Fatalf("delete missing: %v, want nil", err)
	}
	page, err := s.List(ctx, "missing/", "", 10)
	if err != nil || len(page.Objects) != 0 || page.Truncated {
		t.Fatalf("list missing prefix: %+v, %v", page, err)
	}
	put(t, s, "present/x", []byte("x"), store.PutOptions{})
	if err := s.Delete(ctx, "present/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "present/x", store.GetOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get deleted: %v, want ErrNotFound", err)
	}
	// A key under a deleted object's "directory" must still be writable.
	put(t, s, "present/x/y", []byte("y"), store.PutOptions{CreateOnly: true})
}

func testInvalidKeys(t *testing.T, _ Caps, s store.Store) {
	ctx := context.Background()
	for _, key := range []string{"", "/abs", "trailing/", "a//b", "a/./b", "a/../b", "ctl\x01", string(bytes.Repeat([]byte("k"), store.MaxKeyLength+1))} {
		if _, err := store.PutBytes(ctx, s, key, []byte("x"), store.PutOptions{}); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("put %q: %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Get(ctx, key, store.GetOptions{}); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("get %q: %v, want ErrInvalidKey", key, err)
		}
	}
}

func testOverwrite(t *testing.T, _ Caps, s store.Store) {
	first := put(t, s, "ow/k", []byte("first"), store.PutOptions{})
	second := put(t, s, "ow/k", []byte("second, longer"), store.PutOptions{})
	if first.ETag == second.ETag {
		t.Fatalf("ETag %q did not change when the content did", first.ETag)
	}
	got, info := get(t, s, "ow/k")
	if string(got) != "second, longer" || info.ETag != second.ETag {
		t.Fatalf("after rewrite got %q etag %q; want second version etag %q", got, info.ETag, second.ETag)
	}
}

func testConditionalGet(t *testing.T, caps Caps, s store.Store) {
	ctx := context.Background()
	v1 := put(t, s, "cg/doorbell", []byte("1"), store.PutOptions{})
	obj, err := s.Get(ctx, "cg/doorbell", store.GetOptions{IfNoneMatch: v1.ETag})
	if caps.ConditionalGet {
		if !errors.Is(err, store.ErrNotModified) {
			t.Fatalf("conditional get with current ETag: %v, want ErrNotModified", err)
		}
	} else {
		if err != nil {
			t.Fatalf("conditional get on a store without it must return the object: %v", err)
		}
		obj.Body.Close()
	}
	v2 := put(t, s, "cg/doorbell", []byte("2"), store.PutOptions{})
	obj, err = s.Get(ctx, "cg/doorbell", store.GetOptions{IfNoneMatch: v1.ETag})
	if err != nil {
		t.Fatalf("conditional get with old ETag: %v, want the new object", err)
	}
	b, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(b) != "2" || obj.ETag != v2.ETag {
		t.Fatalf("conditional get returned %q etag %q, want \"2\" etag %q", b, obj.ETag, v2.ETag)
	}
}

func testCreateOnly(t *testing.T, caps Caps, s store.Store) {
	// A refused create-only write with a body large enough that the server answers before reading it
	// all must still come back as ErrExists, not as a broken connection.
	big := randomBytes(t, 1<<20)
	put(t, s, "co/big", big, store.PutOptions{CreateOnly: true})
	_, err := store.PutBytes(context.Background(), s, "co/big", randomBytes(t, 1<<20), store.PutOptions{CreateOnly: true})
	if caps.CreateOnly && !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create-only put of 1 MiB: %v, want ErrExists", err)
	}

	put(t, s, "co/k", []byte("winner"), store.PutOptions{CreateOnly: true})
	_, err = store.PutBytes(context.Background(), s, "co/k", []byte("loser"), store.PutOptions{CreateOnly: true})
	got, _ := get(t, s, "co/k")
	if caps.CreateOnly {
		if !errors.Is(err, store.ErrExists) {
			t.Fatalf("second create-only put: %v, want ErrExists", err)
		}
		if string(got) != "winner" {
			t.Fatalf("refused write changed the object to %q", got)
		}
		return
	}
	// Without conditional writes the last writer wins, silently: that is the hazard the hub's design
	// (deterministic keys, immutable content) is built to survive.
	if err != nil || string(got) != "loser" {
		t.Fatalf("last-writer-wins store: err %v, content %q; want nil and \"loser\"", err, got)
	}
}

// testPutBesideDelete: a write never fails because another key under the same prefix is deleted at the
// same moment (a backend with directories must not lose the race with pruning an empty parent).
func testPutBesideDelete(t *testing.T, caps Caps, s store.Store) {
	ctx := context.Background()
	const rounds = 50
	for i := range rounds {
		gone := fmt.Sprintf("beside/%d/deep/gone", i)
		put(t, s, gone, []byte("x"), store.PutOptions{})
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		wg.Go(func() {
			if err := s.Delete(ctx, gone); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			opts := store.PutOptions{CreateOnly: caps.CreateOnly && i%2 == 0}
			if _, err := store.PutBytes(ctx, s, fmt.Sprintf("beside/%d/deep/new", i), []byte("y"), opts); err != nil {
				errs <- err
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", i, err)
		}
		if got, _ := get(t, s, fmt.Sprintf("beside/%d/deep/new", i)); string(got) != "y" {
			t.Fatalf("round %d: read back %q", i, got)
		}
	}
}

func testCreateOnlyConcurrent(t *testing.T, caps Caps, s store.Store) {
	if !caps.CreateOnly {
		t.Skip("store does not claim create-only writes")
	}
	const writers = 16
	for _, size := range []int{0, 1 << 10, 1 << 20, store.MaxCreateOnlySize} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			key := fmt.Sprintf("race/%d", size)
			bodies := make([][]byte, writers)
			for i := range bodies {
				bodies[i] = randomBytes(t, size)
				if size > 0 {
					bodies[i][0] = byte(i) // distinct even if rand repeats
				}
			}
			var (
				wins   atomic.Int32
				winner atomic.Int32
				wg     sync.WaitGroup
				start  = make(chan struct{})
				errs   = make(chan error, writers)
			)
			for i := range writers {
				wg.Go(func() {
					<-start
					_, err := store.PutBytes(context.Background(), s, key, bodies[i], store.PutOptions{CreateOnly: true})
					switch {
					case err == nil:
						wins.Add(1)
						winner.Store(int32(i))
					case errors.Is(err, store.ErrExists):
					default:
						errs <- err
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("unexpected error: %v", err)
			}
			if n := wins.Load(); n != 1 {
				t.Fatalf("%d of %d concurrent create-only writers won; want exactly 1", n, writers)
			}
			got, _ := get(t, s, key)
			if size > 0 && !bytes.Equal(got, bodies[winner.Load()]) {
				t.Fatalf("stored content is not the winner's")
			}
		})
	}
}

func testCreateOnlyTooLarge(t *testing.T, _ Caps, s store.Store) {
	_, err := store.PutBytes(context.Background(), s, "big/co", make([]byte, store.MaxCreateOnlySize+1), store.PutOptions{CreateOnly: true})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("create-only put of %d bytes: %v, want ErrTooLarge", store.MaxCreateOnlySize+1, err)
	}
	if _, err := s.Get(context.Background(), "big/co", store.GetOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused put left an object: %v", err)
	}
}

func testIfMatch(t *testing.T, caps Caps, s store.Store) {
	if !caps.IfMatch {
		t.Skip("store does not claim If-Match writes")
	}
	ctx := context.Background()
	v1 := put(t, s, "im/k", []byte("v1"), store.PutOptions{})
	v2 := put(t, s, "im/k", []byte("v2"), store.PutOptions{IfMatch: v1.ETag})
	if _, err := store.PutBytes(ctx, s, "im/k", []byte("v3"), store.PutOptions{IfMatch: v1.ETag}); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("put with stale ETag: %v, want ErrPreconditionFailed", err)
	}
	if got, info := get(t, s, "im/k"); string(got) != "v2" || info.ETag != v2.ETag {
		t.Fatalf("after refused write: %q, want v2", got)
	}
	if _, err := store.PutBytes(ctx, s, "im/absent", []byte("x"), store.PutOptions{IfMatch: v1.ETag}); !errors.Is(err, store.ErrPreconditionFailed) && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("If-Match put of a missing key: %v, want ErrPreconditionFailed", err)
	}
}

func testShortBody(t *testing.T, _ Caps, s store.Store) {
	_, err := s.Put(context.Background(), "short/k", bytes.NewReader([]byte("abc")), 10, store.PutOptions{})
	if err == nil {
		t.Fatal("put of a body shorter than its size succeeded")
	}
	if _, err := s.Get(context.Background(), "short/k", store.GetOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed put left an object: %v", err)
	}
}

func testFileAndDirectoryKeys(t *testing.T, _ Caps, s store.Store) {
	// No key is the "directory" of another (see store.ValidateKey): "a.json" beside "a/b/c".
	keys := []string{"fd/a.json", "fd/a/b/c", "fd/a/bc", "fd/.hidden", "fd/%41", "fd/A", "fd/sp ace", "fd/ünï", "fd/x#y", "fd/.tmp", "fd/a~", "fd/a-"}
	for _, k := range keys {
		put(t, s, k, []byte(k), store.PutOptions{CreateOnly: true})
	}
	for _, k := range keys {
		if got, _ := get(t, s, k); string(got) != k {
			t.Fatalf("get %q = %q", k, got)
		}
	}
	want := slices.Clone(keys)
	sort.Strings(want)
	if got := listAll(t, s, "fd/", "", 3); !slices.Equal(got, want) {
		t.Fatalf("list = %q\nwant   %q", got, want)
	}
}

// testListOrderAndPaging writes more than one S3 page of keys with awkward characters and checks that
// listing returns all of them in byte order, in pages of any size, with Truncated set correctly.
// "0000-x" < "0000.json" < "0000/child" in byte order, which a naive directory walk gets wrong.
func testListOrderAndPaging(t *testing.T, _ Caps, s store.Store) {
	const n = 1050
	var want []string
	for i := range n {
		var k string
		switch i % 5 {
		case 0:
			k = fmt.Sprintf("lp/%04d/child", i)
		case 1:
			k = fmt.Sprintf("lp/%04d/child2", i-1)
		case 2:
			k = fmt.Sprintf("lp/%04d.json", i-2)
		case 3:
			k = fmt.Sprintf("lp/%04d-x", i-3)
		case 4:
			k = fmt.Sprintf("lp/z/%04d", i)
		}
		want = append(want, k)
	}
	sort.Strings(want)
	putMany(t, s, want)
	put(t, s, "lq/outside", []byte("x"), store.PutOptions{}) // must not leak into lp/

	for _, pageSize := range []int{0, 1000, 100, 7} {
		if got := listAll(t, s, "lp/", "", pageSize); !slices.Equal(got, want) {
			t.Fatalf("page size %d: listed %d keys, want %d in order (first diff at %d)", pageSize, len(got), len(want), firstDiff(got, want))
		}
	}
	page, err := s.List(context.Background(), "lp/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Objects) != store.DefaultListLimit || !page.Truncated {
		t.Fatalf("default page: %d objects, truncated %v; want %d, true", len(page.Objects), page.Truncated, store.DefaultListLimit)
	}
	page, err = s.List(context.Background(), "lp/", want[n-11], 10)
	if err != nil || len(page.Objects) != 10 || page.Truncated {
		t.Fatalf("last page: %d objects, truncated %v, err %v; want 10, false", len(page.Objects), page.Truncated, err)
	}
}

func putMany(t *testing.T, s store.Store, keys []string) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan string)
	errs := make(chan error, len(keys))
	for range 8 {
		wg.Go(func() {
			for k := range work {
				if _, err := store.PutBytes(context.Background(), s, k, []byte(k), store.PutOptions{CreateOnly: true}); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func testListStartAfter(t *testing.T, _ Caps, s store.Store) {
	keys := []string{"sa/a", "sa/b/1", "sa/b/2", "sa/c", "sa/d/e/f", "sa/da", "sb/x"}
	putMany(t, s, keys)
	cases := []struct {
		prefix, after string
		want          []string
	}{
		{"sa/", "", []string{"sa/a", "sa/b/1", "sa/b/2", "sa/c", "sa/d/e/f", "sa/da"}},
		{"sa/", "sa/a", []string{"sa/b/1", "sa/b/2", "sa/c", "sa/d/e/f", "sa/da"}},
		{"sa/", "sa/b", []string{"sa/b/1", "sa/b/2", "sa/c", "sa/d/e/f", "sa/da"}}, // between keys
		{"sa/", "sa/b/1", []string{"sa/b/2", "sa/c", "sa/d/e/f", "sa/da"}},         // inside a "directory"
		{"sa/", "sa/b/9", []string{"sa/c", "sa/d/e/f", "sa/da"}},                   // past a "directory"
		{"sa/", "sa/da", nil}, // after the last
		{"sa/", "a", []string{"sa/a", "sa/b/1", "sa/b/2", "sa/c", "sa/d/e/f", "sa/da"}}, // before the prefix
		{"sa/", "zzz", nil},                         // after the prefix
		{"sa/d", "", []string{"sa/d/e/f", "sa/da"}}, // partial segment
		{"sa/b/", "", []string{"sa/b/1", "sa/b/2"}},
		{"s", "sa/d/e/f", []string{"sa/da", "sb/x"}},
	}
	for _, c := range cases {
		if got := listAll(t, s, c.prefix, c.after, 2); !slices.Equal(got, c.want) {
			t.Errorf("list %q after %q = %q, want %q", c.prefix, c.after, got, c.want)
		}
	}
}

// patternReader produces n deterministic bytes without holding them, and hides io.Seeker so backends
// must stream.
type patternReader struct{ n, off int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	m := min(int64(len(p)), r.n-r.off)
	for i := range m {
		p[i] = byte((r.off + i) * 31 % 251)
	}
	r.off += m
	return int(m), nil
}

func testLargeObject(t *testing.T, _ Caps, s store.Store) {
	const size = 21 << 20
	want := sha256.New()
	io.Copy(want, &patternReader{n: size})
	info, err := s.Put(context.Background(), "large/blob", &patternReader{n: size}, size, store.PutOptions{})
	if err != nil {
		t.Fatalf("put %d bytes: %v", size, err)
	}
	if info.Size != size {
		t.Fatalf("put size %d, want %d", info.Size, size)
	}
	obj, err := s.Get(context.Background(), "large/blob", store.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	got := sha256.New()
	n, err := io.Copy(got, obj.Body)
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("read back %d bytes (err %v), content matches: %v", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
	}
}

// cancelAfter cancels a context once n bytes have been read through it, to cancel an upload midway.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func testCancellation(t *testing.T, _ Caps, s store.Store) {
	put(t, s, "cx/k", []byte("x"), store.PutOptions{})
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	checks := map[string]error{}
	_, checks["get"] = s.Get(dead, "cx/k", store.GetOptions{})
	_, checks["put"] = store.PutBytes(dead, s, "cx/new", []byte("x"), store.PutOptions{})
	_, checks["list"] = s.List(dead, "cx/", "", 0)
	checks["delete"] = s.Delete(dead, "cx/k")
	for op, err := range checks {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", op, err)
		}
	}
	if _, err := s.Get(context.Background(), "cx/new", store.GetOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancelled put left an object: %v", err)
	}

	// Cancel a large upload midway: it must fail and leave nothing behind.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const size = 21 << 20
	_, err := s.Put(ctx, "cx/large", &cancelAfter{r: &patternReader{n: size}, n: 4 << 20, cancel: cancel}, size, store.PutOptions{})
	if err == nil {
		t.Fatal("put whose context was cancelled midway succeeded")
	}
	if _, err := s.Get(context.Background(), "cx/large", store.GetOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancelled large put left an object: %v", err)
	}
}
