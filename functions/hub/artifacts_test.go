package hub_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pulsehq/pulse/agent/artifacts"
	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// testChunk is the chunk size the artifact tests push with, so an artifact of a few KiB has several
// chunks; the hub tells clients its size, so nothing else changes.
const testChunk = 1024

// blob is content to push: its digest and chunks at testChunk bytes.
type blob struct {
	data   []byte
	digest string
}

func newBlob(size int, seed uint64) blob {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	sum := sha256.Sum256(b)
	return blob{data: b, digest: "sha256:" + hex.EncodeToString(sum[:])}
}

func (b blob) chunk(n int) []byte { return b.data[n*testChunk : min(len(b.data), (n+1)*testChunk)] }
func (b blob) chunks() int        { return wire.ArtifactChunks(int64(len(b.data)), testChunk) }
func (b blob) ref() wire.ArtifactRef {
	return wire.ArtifactRef{Digest: b.digest, Size: int64(len(b.data))}
}

// newArtifactHub is a test hub pushing in chunks of testChunk bytes.
func newArtifactHub(t *testing.T) *testHub {
	th := newTestHub(t)
	th.h.Artifacts.ChunkSize = testChunk
	return th
}

// putChunk uploads chunk n of b's content (or body, when given) under digest, with its SHA-256.
func (th *testHub) putChunk(token, digest string, n int, body []byte) (int, string) {
	th.t.Helper()
	req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v1/artifacts/%s/chunks/%d", th.url, digest, n), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	sum := sha256.Sum256(body)
	req.Header.Set("X-Pulse-Chunk-Sha256", hex.EncodeToString(sum[:]))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		th.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type artifactState struct {
	Complete  bool
	ChunkSize int64
	Present   []int
	Manifest  *wire.ArtifactManifest
}

type pushed struct {
	Ref       wire.ArtifactRef
	Unchanged bool
	Manifest  wire.ArtifactManifest
	Detail    string
}

func (th *testHub) finish(token string, b blob) (int, pushed) {
	th.t.Helper()
	var p pushed
	st := th.call(token, "POST", "/v1/artifacts/"+b.digest, map[string]any{"size": len(b.data), "name": "test.bin"}, &p)
	return st, p
}

// TestArtifactPush: a push in chunks resumes (the hub says which chunks it has), is refused while a
// chunk is missing, naming it, and completes with a manifest whose chunk hashes are the content's;
// the push is audited, listed, and finishing again changes nothing.
func TestArtifactPush(t *testing.T) {
	th := newArtifactHub(t)
	b := newBlob(2*testChunk+500, 1)
	for _, n := range []int{0, 2} {
		if st, body := th.putChunk(th.admin, b.digest, n, b.chunk(n)); st != 204 {
			t.Fatalf("chunk %d: %d %s", n, st, body)
		}
	}
	var s artifactState
	if st := th.call(th.admin, "GET", "/v1/artifacts/"+b.digest, nil, &s); st != 200 || s.Complete || fmt.Sprint(s.Present) != "[0 2]" || s.ChunkSize != testChunk {
		t.Fatalf("state of a half push: %d %+v, want chunks 0 and 2 present, chunk size %d", st, s, testChunk)
	}
	if st, p := th.finish(th.admin, b); st != 409 || !strings.Contains(p.Detail, "missing chunk 1 of its 3 chunks") {
		t.Fatalf("finish with chunk 1 missing: %d %q, want 409 naming chunk 1", st, p.Detail)
	}
	if st, body := th.putChunk(th.admin, b.digest, 1, b.chunk(1)); st != 204 {
		t.Fatalf("chunk 1: %d %s", st, body)
	}
	st, p := th.finish(th.admin, b)
	if st != 200 || p.Unchanged || p.Ref != b.ref() || len(p.Manifest.Chunks) != 3 || p.Manifest.PushedBy == "" || p.Manifest.Name != "test.bin" {
		t.Fatalf("finish: %d %+v", st, p)
	}
	for n, c := range p.Manifest.Chunks {
		if sum := sha256.Sum256(b.chunk(n)); c != hex.EncodeToString(sum[:]) {
			t.Errorf("manifest chunk %d hash %s, want the chunk's", n, c)
		}
	}
	if st, p := th.finish(th.admin, b); st != 200 || !p.Unchanged {
		t.Errorf("finish again: %d %+v, want unchanged", st, p)
	}
	if st := th.call(th.admin, "GET", "/v1/artifacts/"+b.digest, nil, &s); st != 200 || !s.Complete || s.Manifest == nil {
		t.Errorf("state after finish: %d %+v, want complete with its manifest", st, s)
	}
	var list struct {
		Artifacts []struct{ Digest, Name string }
	}
	if st := th.call(th.token("ann", "viewer"), "GET", "/v1/artifacts", nil, &list); st != 200 || len(list.Artifacts) != 1 || list.Artifacts[0].Digest != b.digest {
		t.Errorf("a viewer lists: %d %+v, want the one artifact", st, list)
	}
	recs, err := th.h.Trail.List(context.Background(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	pushes := 0
	for _, r := range recs {
		if r.Action == "push-artifact" && r.Outcome == "ok" {
			pushes++
		}
	}
	if pushes != 1 {
		t.Errorf("%d push-artifact audit records, want 1 (finishing again writes none)", pushes)
	}
}

// TestArtifactPushRefusals: every way a push can be wrong is refused with a problem naming what to do,
// and nothing becomes an artifact.
func TestArtifactPushRefusals(t *testing.T) {
	th := newArtifactHub(t)
	b, other := newBlob(testChunk+10, 2), newBlob(testChunk+10, 3)
	viewer := th.token("vic", "viewer")
	tests := []struct {
		name   string
		do     func() (int, string)
		status int
		says   string
	}{
		{"a viewer may not push", func() (int, string) { return th.putChunk(viewer, b.digest, 0, b.chunk(0)) }, 403, "push-artifact is reserved to admins"},
		{"a viewer may not finish", func() (int, string) { st, p := th.finish(viewer, b); return st, p.Detail }, 403, "push-artifact is reserved to admins"},
		{"a damaged chunk", func() (int, string) {
			req, _ := http.NewRequest("PUT", th.url+"/v1/artifacts/"+b.digest+"/chunks/0", bytes.NewReader(b.chunk(0)))
			req.Header.Set("Authorization", "Bearer "+th.admin)
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("X-Pulse-Chunk-Sha256", strings.Repeat("0", 64))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}, 422, "damaged on the way"},
		{"a chunk too large", func() (int, string) { return th.putChunk(th.admin, b.digest, 0, make([]byte, testChunk+1)) }, 413, "chunks are 1024 bytes"},
		{"a digest that is not sha256", func() (int, string) { return th.putChunk(th.admin, "md5:abc", 0, b.chunk(0)) }, 422, "want sha256: and 64 lower-case hex digits"},
		{"a chunk number past the largest artifact", func() (int, string) { return th.putChunk(th.admin, b.digest, 1<<23, b.chunk(0)) }, 422, `"location":"path.n"`},
		{"other content under the digest", func() (int, string) {
			for n := range other.chunks() {
				th.putChunk(th.admin, b.digest, n, other.chunk(n))
			}
			st, p := th.finish(th.admin, b)
			return st, p.Detail
		}, 422, "hash to " + other.digest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, body := tc.do()
			if st != tc.status || !strings.Contains(body, tc.says) {
				t.Errorf("%d %s, want %d saying %q", st, body, tc.status, tc.says)
			}
		})
	}
	if keys := th.stored(layout.ArtifactChunksOf(strings.TrimPrefix(b.digest, "sha256:"))); len(keys) != 0 {
		t.Errorf("chunks of the refused push left: %v; want them removed so the next push starts clean", keys)
	}
	if keys := th.stored(layout.Artifacts); len(keys) != 0 {
		t.Errorf("manifests after refusals only: %v", keys)
	}
}

// TestArtifactPlantedInTheBucket: a manifest or a chunk written to the bucket by anyone but the hub
// reads as missing: a planted manifest makes no artifact complete (and the genuine push replaces it),
// a planted chunk is one the push must upload.
func TestArtifactPlantedInTheBucket(t *testing.T) {
	th := newArtifactHub(t)
	ctx := context.Background()
	b := newBlob(3*testChunk, 4)
	hexd := strings.TrimPrefix(b.digest, "sha256:")
	fake := fmt.Sprintf(`{"digest":%q,"size":%d,"chunkSize":%d,"chunks":[]}`, b.digest, len(b.data), testChunk)
	if _, err := store.PutBytes(ctx, th.bucket(), layout.ArtifactManifest(hexd), []byte(fake), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var s artifactState
	if st := th.call(th.admin, "GET", "/v1/artifacts/"+b.digest, nil, &s); st != 200 || s.Complete {
		t.Errorf("a planted manifest: %d %+v, want an incomplete artifact", st, s)
	}
	a := th.agent("web-1", nil, nil)
	if err := a.Signed(ctx, "GET", "/v1/agents/"+a.ID+"/artifacts/"+b.digest, nil, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("an agent asks for a planted artifact: %v, want 404", err)
	}
	th.putChunk(th.admin, b.digest, 0, b.chunk(0))
	th.putChunk(th.admin, b.digest, 2, b.chunk(2))
	if _, err := store.PutBytes(ctx, th.bucket(), layout.ArtifactChunk(hexd, 1), b.chunk(1), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, p := th.finish(th.admin, b); st != 409 || !strings.Contains(p.Detail, "chunk 1 is missing or failed the hub's integrity check") {
		t.Errorf("finish over a planted chunk: %d %q, want 409 naming chunk 1", st, p.Detail)
	}
	th.putChunk(th.admin, b.digest, 1, b.chunk(1))
	if st, p := th.finish(th.admin, b); st != 200 || p.Unchanged {
		t.Fatalf("finish after the genuine chunk: %d %+v", st, p)
	}
	var m wire.ArtifactManifest
	if err := a.Signed(ctx, "GET", "/v1/agents/"+a.ID+"/artifacts/"+b.digest, nil, &m); err != nil || len(m.Chunks) != 3 {
		t.Errorf("the agent reads the genuine manifest: %+v, %v", m, err)
	}
	var raw []byte
	if err := a.Signed(ctx, "GET", "/v1/agents/"+a.ID+"/artifacts/"+b.digest+"/chunks/1", nil, &raw); err != nil || !bytes.Equal(raw, b.chunk(1)) {
		t.Errorf("the agent reads chunk 1: %d bytes, %v; want the chunk", len(raw), err)
	}
}

// push stores b as a complete artifact.
func (th *testHub) push(b blob) {
	th.t.Helper()
	for n := range b.chunks() {
		if st, body := th.putChunk(th.admin, b.digest, n, b.chunk(n)); st != 204 {
			th.t.Fatalf("chunk %d: %d %s", n, st, body)
		}
	}
	if st, p := th.finish(th.admin, b); st != 200 {
		th.t.Fatalf("finish: %d %+v", st, p)
	}
}

// counting is the real hub source with what a test needs to see and do around it: it counts chunk
// requests, can change the bytes of one chunk on the way (a tampering proxy) and can fail after some
// chunks (a lost connection).
type counting struct {
	artifacts.Source
	mu         sync.Mutex
	chunks     []int
	corrupt    int // chunk whose first byte is flipped, -1 for none
	failAfter  int // chunk requests answered before every later one fails, -1 for never
	fakeDigest string
	manifest   func(wire.ArtifactManifest) wire.ArtifactManifest
	fakeChunk  func(n int) []byte
}

func (c *counting) Manifest(ctx context.Context, digest string) (wire.ArtifactManifest, error) {
	m, err := c.Source.Manifest(ctx, digest)
	if err == nil && c.manifest != nil {
		m = c.manifest(m)
	}
	return m, err
}

func (c *counting) Chunk(ctx context.Context, digest string, n int) ([]byte, error) {
	c.mu.Lock()
	if c.failAfter >= 0 && len(c.chunks) >= c.failAfter {
		c.mu.Unlock()
		return nil, fmt.Errorf("connection reset (test)")
	}
	c.chunks = append(c.chunks, n)
	c.mu.Unlock()
	if c.fakeChunk != nil {
		return c.fakeChunk(n), nil
	}
	b, err := c.Source.Chunk(ctx, digest, n)
	if err == nil && n == c.corrupt {
		b = bytes.Clone(b)
		b[0] ^= 0xff
	}
	return b, err
}

func (c *counting) asked() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.chunks...)
}

// fetcher is the agent's fetcher (agent/artifacts) speaking to this hub as an enrolled agent.
func (th *testHub) fetcher(t *testing.T) (*artifacts.Cache, *counting) {
	a := th.agent(fmt.Sprintf("fetcher-%d", rand.Int()), nil, nil)
	signer, err := httpsig.NewSigner(a.Key, a.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &counting{Source: &artifacts.HubSource{Base: th.url, AgentID: a.ID, Signer: signer}, corrupt: -1, failAfter: -1}
	c := &artifacts.Cache{Dir: filepath.Join(t.TempDir(), "artifacts"), Source: src,
		FreeSpace: func(string) (uint64, error) { return 1 << 40, nil }}
	return c, src
}

// TestFetchArtifact: the agent's fetcher against a real hub. It downloads and verifies; after an
// interruption it re-verifies what it has and asks only for the rest; a chunk altered on the way is
// refused (and not kept); a disk without room is refused before anything is downloaded, saying how
// much is needed and free; a manifest and chunks that agree with each other but not with the plan's
// digest are refused and removed; concurrent fetches share one download.
func TestFetchArtifact(t *testing.T) {
	th := newArtifactHub(t)
	ctx := context.Background()
	b := newBlob(5*testChunk+100, 5) // six chunks
	th.push(b)

	t.Run("download and verify", func(t *testing.T) {
		c, src := th.fetcher(t)
		path, err := c.Fetch(ctx, b.ref())
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, b.data) {
			t.Fatalf("fetched %d bytes, not the artifact", len(got))
		}
		if _, err := c.Fetch(ctx, b.ref()); err != nil || len(src.asked()) != 6 {
			t.Errorf("a second fetch: %v, %d chunk requests in all; want the cache used (6)", err, len(src.asked()))
		}
	})

	t.Run("resume after an interruption", func(t *testing.T) {
		c, src := th.fetcher(t)
		src.failAfter = 4
		if _, err := c.Fetch(ctx, b.ref()); err == nil || !strings.Contains(err.Error(), "chunk 4") {
			t.Fatalf("interrupted fetch: %v, want it to fail at chunk 4", err)
		}
		part := filepath.Join(c.Dir, strings.TrimPrefix(b.digest, "sha256:")+".part")
		if fi, err := os.Stat(part); err != nil || fi.Size() != 4*testChunk {
			t.Fatalf("part file after the interruption: %v, %v; want 4 chunks kept", fi, err)
		}
		// A torn write past the good chunks is cut off, not trusted.
		f, _ := os.OpenFile(part, os.O_WRONLY|os.O_APPEND, 0)
		f.Write([]byte("torn"))
		f.Close()
		src.failAfter = -1
		before := len(src.asked())
		path, err := c.Fetch(ctx, b.ref())
		if err != nil {
			t.Fatal(err)
		}
		if asked := src.asked()[before:]; fmt.Sprint(asked) != "[4 5]" {
			t.Errorf("the resumed fetch asked for chunks %v, want only [4 5]", asked)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, b.data) {
			t.Errorf("resumed file is not the artifact")
		}
	})

	t.Run("a chunk altered on the way", func(t *testing.T) {
		c, src := th.fetcher(t)
		src.corrupt = 2
		_, err := c.Fetch(ctx, b.ref())
		if err == nil || !strings.Contains(err.Error(), "chunk 2: the hub sent content with sha256") {
			t.Fatalf("fetch with chunk 2 altered: %v, want chunk 2 refused", err)
		}
		part := filepath.Join(c.Dir, strings.TrimPrefix(b.digest, "sha256:")+".part")
		if fi, err := os.Stat(part); err != nil || fi.Size() != 2*testChunk {
			t.Errorf("part file: %v, %v; want only the 2 good chunks", fi, err)
		}
		src.corrupt = -1
		if _, err := c.Fetch(ctx, b.ref()); err != nil {
			t.Errorf("fetch once the chunk arrives whole: %v", err)
		}
	})

	t.Run("no room on the disk", func(t *testing.T) {
		c, src := th.fetcher(t)
		c.FreeSpace = func(string) (uint64, error) { return 1000, nil }
		c.Margin = 100
		_, err := c.Fetch(ctx, b.ref())
		want := fmt.Sprintf("free space: need %s (%s to download and 100 B to keep free), have 1000 B on %s",
			artifacts.Bytes(uint64(len(b.data))+100), artifacts.Bytes(uint64(len(b.data))), c.Dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("fetch on a full disk: %v\nwant it to say %q", err, want)
		}
		if n := len(src.asked()); n != 0 {
			t.Errorf("%d chunks asked for on a full disk, want none", n)
		}
	})

	t.Run("content that is not the plan's digest", func(t *testing.T) {
		c, src := th.fetcher(t)
		other := newBlob(len(b.data), 6)
		src.fakeChunk = other.chunk
		src.manifest = func(m wire.ArtifactManifest) wire.ArtifactManifest {
			for n := range m.Chunks {
				sum := sha256.Sum256(other.chunk(n))
				m.Chunks[n] = hex.EncodeToString(sum[:])
			}
			return m
		}
		_, err := c.Fetch(ctx, b.ref())
		if err == nil || !strings.Contains(err.Error(), "the content downloaded has "+other.digest+": refused and removed") || !strings.Contains(err.Error(), b.digest) {
			t.Fatalf("fetch of other content: %v, want both digests named", err)
		}
		if left, _ := os.ReadDir(c.Dir); len(left) != 0 {
			t.Errorf("left in the cache: %v, want nothing", left)
		}
	})

	t.Run("a size other than the plan's", func(t *testing.T) {
		c, _ := th.fetcher(t)
		ref := b.ref()
		ref.Size++
		if _, err := c.Fetch(ctx, ref); err == nil || !strings.Contains(err.Error(), "manifest says") {
			t.Errorf("fetch with another size: %v, want the manifest refused", err)
		}
	})

	t.Run("concurrent fetches share one download", func(t *testing.T) {
		c, src := th.fetcher(t)
		var wg sync.WaitGroup
		var fails atomic.Int32
		for range 8 {
			wg.Go(func() {
				if _, err := c.Fetch(ctx, b.ref()); err != nil {
					fails.Add(1)
				}
			})
		}
		wg.Wait()
		if fails.Load() != 0 || len(src.asked()) != 6 {
			t.Errorf("8 concurrent fetches: %d failed, %d chunk requests; want none failed and 6 requests", fails.Load(), len(src.asked()))
		}
	})
}
