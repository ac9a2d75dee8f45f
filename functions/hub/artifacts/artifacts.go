// Package artifacts is the room of artifacts: content-addressed blobs (a file's content, the agent's
// own binary) that plans name by SHA-256 and size (wire.ArtifactRef). An operator pushes one in
// chunks (PutChunk, then Finish), and may resume a push that stopped: Status says which chunks the
// hub already has. Finish reads the chunks back in order, hashes them, and only when the whole content
// is the digest it was pushed under writes the manifest, create-only and last, so a manifest means
// the artifact is complete. Agents read the manifest and the chunks one at a time (Manifest, Chunk).
//
// Nothing here is trusted by an agent on its own: the agent checks every chunk against the manifest
// and the whole content against the digest of the plan the hub signed. What the room guarantees is
// that a push never completes with content other than its digest, and (through the hub's integrity
// check of every object it reads) that a chunk or manifest planted in the bucket reads as missing.
package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// ActionPush is the policy action (and audit action) of pushing an artifact.
const ActionPush = "push-artifact"

// Service keeps artifacts.
type Service struct {
	Store store.Store
	Log   *slog.Logger
	Trail *trail.Recorder
	// ChunkSize is the size of the chunks pushes are cut into (0: wire.ArtifactChunkSize). Status
	// tells clients, so a hub configured otherwise (tests) is followed.
	ChunkSize int64

	// manifests are write-once: each is read once per process.
	manifests store.Once[wire.ArtifactManifest]
}

func (s *Service) chunkSize() int64 {
	if s.ChunkSize > 0 {
		return s.ChunkSize
	}
	return wire.ArtifactChunkSize
}

// State is what the hub holds of an artifact: its manifest when complete, else the chunks a push
// left so far, so a push resumes with the rest.
type State struct {
	Digest   string                 `json:"digest"`
	Complete bool                   `json:"complete" doc:"The manifest is written: the artifact can be named in plans."`
	Manifest *wire.ArtifactManifest `json:"manifest,omitempty" doc:"The manifest of a complete artifact."`
	// ChunkSize is the size pushes must cut chunks to.
	ChunkSize int64 `json:"chunkSize" doc:"The size every chunk but the last must have."`
	// Present are the chunks stored so far of an incomplete artifact (listed, not yet checked: Finish
	// checks them).
	Present []int `json:"present" doc:"Numbers of the chunks stored so far of an incomplete artifact; Finish checks them."`
}

// Summary is a line of the artifact list.
type Summary struct {
	Digest   string    `json:"digest"`
	Size     int64     `json:"size"`
	Name     string    `json:"name,omitempty"`
	PushedBy string    `json:"pushedBy"`
	PushedAt time.Time `json:"pushedAt"`
}

// Pushed is the answer to Finish: the artifact's reference, ready to paste into a plan, and its manifest.
type Pushed struct {
	Ref       wire.ArtifactRef      `json:"ref" doc:"What a plan names the artifact by: {digest, size}."`
	Unchanged bool                  `json:"unchanged,omitempty" doc:"The artifact was complete already: nothing was written."`
	Manifest  wire.ArtifactManifest `json:"manifest"`
}

// CheckDigest refuses what is not "sha256:" and 64 lower-case hex digits, as invalid input at field,
// and returns the hex part (the store keys' segment).
func CheckDigest(field, digest string) (string, error) {
	ref := wire.ArtifactRef{Digest: digest}
	if err := ref.Validate(); err != nil {
		return "", &domain.Error{Kind: domain.KindInvalid, Field: field, Msg: err.Error()}
	}
	return ref.Hex(), nil
}

// maxChunks is how many chunks the largest artifact has.
func (s *Service) maxChunks() int { return wire.ArtifactChunks(wire.MaxArtifactSize, s.chunkSize()) }

// PutChunk stores chunk n of the artifact digest. sum is the chunk's SHA-256 in hex as the client
// computed it: a body that does not hash to it was damaged on the way and is refused. Every chunk but
// the last must be ChunkSize bytes (Finish checks which is last). Storing a chunk again is harmless:
// the digest fixes its bytes. One PUT.
func (s *Service) PutChunk(ctx context.Context, digest string, n int, sum string, body []byte) error {
	hexDigest, err := CheckDigest("path.digest", digest)
	if err != nil {
		return err
	}
	switch {
	case n < 0 || n >= s.maxChunks():
		return &domain.Error{Kind: domain.KindInvalid, Field: "path.n", Msg: fmt.Sprintf("chunk %d: an artifact has chunks 0 to %d (at most %d bytes)", n, s.maxChunks()-1, wire.MaxArtifactSize)}
	case int64(len(body)) > s.chunkSize():
		return domain.TooLarge("chunk %d of %s is %d bytes; chunks are %d bytes (the last may be shorter)", n, digest, len(body), s.chunkSize())
	case len(body) == 0:
		return &domain.Error{Kind: domain.KindInvalid, Field: "body", Msg: fmt.Sprintf("chunk %d of %s is empty; an empty artifact has no chunks (finish it at once)", n, digest)}
	}
	got := sha256.Sum256(body)
	if hex.EncodeToString(got[:]) != strings.ToLower(sum) {
		return &domain.Error{Kind: domain.KindInvalid, Field: "header.X-Pulse-Chunk-Sha256",
			Msg: fmt.Sprintf("chunk %d of %s has sha256 %x, the request says %q: it was damaged on the way, upload it again", n, digest, got, sum)}
	}
	if _, err := store.PutBytes(ctx, s.Store, layout.ArtifactChunk(hexDigest, n), body, store.PutOptions{ContentType: "application/octet-stream"}); err != nil {
		return fmt.Errorf("store chunk %d of %s: %w", n, digest, err)
	}
	return nil
}

// Status says what the hub holds of an artifact: the manifest (one GET, once per process), else the
// chunks stored so far (one LIST per 1000 chunks). Never NotFound: an artifact nobody pushed yet is
// one with no chunks.
func (s *Service) Status(ctx context.Context, digest string) (*State, error) {
	hexDigest, err := CheckDigest("path.digest", digest)
	if err != nil {
		return nil, err
	}
	st := &State{Digest: digest, ChunkSize: s.chunkSize(), Present: []int{}}
	m, err := s.manifests.Get(ctx, s.Store, layout.ArtifactManifest(hexDigest))
	switch {
	case err == nil:
		st.Complete, st.Manifest = true, m
		return st, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("read the manifest of %s: %w", digest, err)
	}
	st.Present, err = s.present(ctx, hexDigest)
	return st, err
}

// present lists the numbers of the chunks stored under an artifact.
func (s *Service) present(ctx context.Context, hexDigest string) ([]int, error) {
	out := []int{}
	err := store.Walk(ctx, s.Store, layout.ArtifactChunksOf(hexDigest), "", 0, func(o store.ObjectInfo) error {
		if n, ok := layout.ArtifactChunkIndex(o.Key); ok {
			out = append(out, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the chunks of sha256:%s: %w", hexDigest, err)
	}
	return out, nil
}

// Finish completes a push: with every chunk of size bytes stored, it reads them back in order (one at
// a time), checks each one's length and the SHA-256 of the whole, and writes the manifest,
// create-only, and audits the push. A missing chunk (or one that fails the hub's integrity check) is a
// conflict naming the chunks to upload; content that is not digest is refused, and its chunks are
// removed, so the push starts again clean. An artifact already complete answers its manifest,
// Unchanged. Cost: one GET of the manifest, one LIST of the chunks, a GET per chunk, the manifest's
// PUT and the audit record's.
func (s *Service) Finish(ctx context.Context, digest string, size int64, name string) (*Pushed, error) {
	hexDigest, err := CheckDigest("path.digest", digest)
	if err != nil {
		return nil, err
	}
	ref := wire.ArtifactRef{Digest: digest, Size: size}
	if err := ref.Validate(); err != nil {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body.size", Msg: err.Error()}
	}
	if len(name) > 200 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body.name", Msg: "name: at most 200 characters, no control characters"}
	}
	key := layout.ArtifactManifest(hexDigest)
	if m, err := s.manifests.Get(ctx, s.Store, key); err == nil {
		if m.Size != size {
			return nil, domain.Conflict("artifact %s is complete with %d bytes, not %d", digest, m.Size, size)
		}
		return &Pushed{Ref: ref, Unchanged: true, Manifest: *m}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("read the manifest of %s: %w", digest, err)
	}

	cs := s.chunkSize()
	count := wire.ArtifactChunks(size, cs)
	have, err := s.present(ctx, hexDigest)
	if err != nil {
		return nil, err
	}
	if missing := missingOf(have, count); len(missing) > 0 {
		return nil, domain.Conflict("artifact %s (%d bytes) is missing %s of its %d chunks: upload them and finish again", digest, size, listChunks(missing), count)
	}
	m := wire.ArtifactManifest{Digest: digest, Size: size, ChunkSize: cs, Chunks: make([]string, count), Name: name,
		PushedBy: domain.PrincipalFrom(ctx).ID, PushedAt: time.Now().UTC()}
	whole := sha256.New()
	for n := range count {
		b, _, err := store.ReadAll(ctx, s.Store, layout.ArtifactChunk(hexDigest, n))
		if errors.Is(err, store.ErrNotFound) {
			return nil, domain.Conflict("artifact %s: chunk %d is missing or failed the hub's integrity check: upload it and finish again", digest, n)
		}
		if err != nil {
			return nil, fmt.Errorf("read chunk %d of %s: %w", n, digest, err)
		}
		if want := m.ChunkLen(n); int64(len(b)) != want {
			s.discard(ctx, hexDigest, have)
			return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body.size", Msg: fmt.Sprintf(
				"artifact %s: chunk %d has %d bytes, want %d for %d bytes in chunks of %d; its chunks were removed, push it again", digest, n, len(b), want, size, cs)}
		}
		sum := sha256.Sum256(b)
		m.Chunks[n] = hex.EncodeToString(sum[:])
		whole.Write(b)
	}
	if got := "sha256:" + hex.EncodeToString(whole.Sum(nil)); got != digest {
		s.discard(ctx, hexDigest, have)
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "path.digest", Msg: fmt.Sprintf(
			"the chunks pushed as %s hash to %s: they are not that content, so they were removed; push the file again", digest, got)}
	}
	if _, err := store.CreateJSON(ctx, s.Store, key, m); err != nil {
		return nil, fmt.Errorf("write the manifest of %s: %w", digest, err)
	}
	held, err := s.manifests.Get(ctx, s.Store, key) // the one stored: ours, or an identical push's
	if err != nil {
		return nil, fmt.Errorf("read the manifest of %s back: %w", digest, err)
	}
	s.Trail.Record(ctx, ActionPush, nil, nil, "ok", map[string]any{"digest": digest, "size": size, "name": name, "chunks": count})
	return &Pushed{Ref: ref, Manifest: *held}, nil
}

// discard removes the chunks of a push that can never complete, so the next push starts clean.
func (s *Service) discard(ctx context.Context, hexDigest string, have []int) {
	for _, n := range have {
		if err := s.Store.Delete(ctx, layout.ArtifactChunk(hexDigest, n)); err != nil {
			s.Log.Warn("removing a chunk of a refused push failed; the next push overwrites it", "digest", "sha256:"+hexDigest, "chunk", n, "err", err)
		}
	}
}

func missingOf(have []int, count int) []int {
	var missing []int
	for n := range count {
		if !slices.Contains(have, n) {
			missing = append(missing, n)
		}
	}
	return missing
}

// listChunks names chunks for a person: "chunks 3, 7" or "12 chunks (3, 7, 9, …)".
func listChunks(ns []int) string {
	var parts []string
	for i, n := range ns {
		if i == 8 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprint(n))
	}
	if len(ns) == 1 {
		return "chunk " + parts[0]
	}
	return fmt.Sprintf("%d chunks (%s)", len(ns), strings.Join(parts, ", "))
}

// List is every complete artifact: one LIST of the manifests per 1000 artifacts, and a GET of each
// manifest this process has not read before.
func (s *Service) List(ctx context.Context) ([]Summary, error) {
	out := []Summary{}
	err := store.Walk(ctx, s.Store, layout.Artifacts, "", 0, func(o store.ObjectInfo) error {
		m, err := s.manifests.Get(ctx, s.Store, o.Key)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile, or planted: not an artifact
		}
		if err != nil {
			return err
		}
		out = append(out, Summary{Digest: m.Digest, Size: m.Size, Name: m.Name, PushedBy: m.PushedBy, PushedAt: m.PushedAt})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	return out, nil
}

// Manifest is an agent asking for a complete artifact's manifest: one GET once per process.
func (s *Service) Manifest(ctx context.Context, digest string) (*wire.ArtifactManifest, error) {
	hexDigest, err := CheckDigest("path.digest", digest)
	if err != nil {
		return nil, err
	}
	m, err := s.manifests.Get(ctx, s.Store, layout.ArtifactManifest(hexDigest))
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.NotFound("no complete artifact %s on this hub: push it with `pulse artifact push FILE`", digest)
	}
	if err != nil {
		return nil, fmt.Errorf("read the manifest of %s: %w", digest, err)
	}
	return m, nil
}

// Chunk is an agent asking for chunk n of a complete artifact: the manifest (cached) and one GET of
// the chunk, held in memory alone.
func (s *Service) Chunk(ctx context.Context, digest string, n int) ([]byte, error) {
	m, err := s.Manifest(ctx, digest)
	if err != nil {
		return nil, err
	}
	if n < 0 || n >= len(m.Chunks) {
		return nil, domain.NotFound("artifact %s has chunks 0 to %d, not %d", digest, len(m.Chunks)-1, n)
	}
	b, _, err := store.ReadAll(ctx, s.Store, layout.ArtifactChunk(strings.TrimPrefix(digest, "sha256:"), n))
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.NotFound("chunk %d of artifact %s is missing or failed the hub's integrity check: push the artifact again", n, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("read chunk %d of %s: %w", n, digest, err)
	}
	return b, nil
}
