// Package artifacts is the agent's one fetcher of artifacts (integration.Artifacts): content a plan
// names by SHA-256 and size, downloaded through the hub one chunk at a time into a cache under the
// agent's state directory.
//
// What makes it safe is the order of checks. The digest comes from a plan the hub signed; the
// manifest and the chunks come from the hub (and through it from the bucket), which the agent does not
// trust on their own. Every chunk is checked against the manifest before it is appended, and the
// whole file against the plan's digest before it is used: a manifest or chunk planted in the bucket,
// or altered on the way, is refused, and the partial file with it. What makes it cheap on a small or
// flaky host: free space is checked before downloading; the partial file (<hex>.part) is fsynced chunk
// by chunk and, after a crash or a lost connection, re-verified and continued from its first missing
// chunk; concurrent fetches of one digest share one download; and memory holds one chunk at a time.
package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/atomicfile"
	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// Source is where artifacts come from: the hub's agent routes (HubSource), signed as every agent
// request is.
type Source interface {
	// Manifest returns the manifest of a complete artifact.
	Manifest(ctx context.Context, digest string) (wire.ArtifactManifest, error)
	// Chunk returns the raw bytes of chunk n.
	Chunk(ctx context.Context, digest string, n int) ([]byte, error)
}

// FreeSpaceFunc says how many bytes the file system holding dir can still take for the agent.
type FreeSpaceFunc func(dir string) (uint64, error)

// DefaultMargin is what must stay free beyond an artifact, so a download never fills the disk the
// agent's own records (and the host) live on.
const DefaultMargin = 64 << 20

// Cache is the fetcher: a directory of verified artifacts named by their hex digest.
type Cache struct {
	// Dir holds <hex> (verified, read-only) and <hex>.part (being downloaded).
	Dir    string
	Source Source
	Log    *slog.Logger
	// FreeSpace is statfs by default; tests inject a full disk.
	FreeSpace FreeSpaceFunc
	// Margin is what must stay free besides the artifact (0: DefaultMargin).
	Margin uint64

	mu       sync.Mutex
	inflight map[string]*call
	verified map[string]bool // finished files hashed again by this process, once each
}

var _ integration.Artifacts = (*Cache)(nil)

type call struct {
	done chan struct{}
	path string
	err  error
}

// Fetch returns the path of a verified local copy of ref, downloading what is missing. Concurrent
// calls for one digest share one download; each caller waits under its own context.
func (c *Cache) Fetch(ctx context.Context, ref wire.ArtifactRef) (string, error) {
	if err := ref.Validate(); err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.inflight == nil {
		c.inflight = map[string]*call{}
	}
	cl, ok := c.inflight[ref.Digest]
	if !ok {
		cl = &call{done: make(chan struct{})}
		c.inflight[ref.Digest] = cl
		go func() {
			// The download belongs to no single caller: one that gives up must not cancel it for the
			// others. It ends with the last chunk, or fails.
			cl.path, cl.err = c.fetch(context.WithoutCancel(ctx), ref)
			c.mu.Lock()
			delete(c.inflight, ref.Digest)
			c.mu.Unlock()
			close(cl.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-cl.done:
		return cl.path, cl.err
	case <-ctx.Done():
		return "", fmt.Errorf("fetch artifact %s: %w", ref.Digest, context.Cause(ctx))
	}
}

func (c *Cache) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// fetch is one download of ref, resumed from what the part file holds.
func (c *Cache) fetch(ctx context.Context, ref wire.ArtifactRef) (string, error) {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return "", fmt.Errorf("artifact cache %s: %w", c.Dir, err)
	}
	final := filepath.Join(c.Dir, ref.Hex())
	if ok, err := c.finished(final, ref); err != nil || ok {
		return final, err
	}
	m, err := c.Source.Manifest(ctx, ref.Digest)
	if err != nil {
		return "", fmt.Errorf("fetch artifact %s: manifest: %w", ref.Digest, err)
	}
	if err := m.Check(ref); err != nil {
		return "", fmt.Errorf("fetch artifact %s: refused the hub's manifest: %w", ref.Digest, err)
	}
	part := final + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("fetch artifact %s: %w", ref.Digest, err)
	}
	defer f.Close()
	whole := sha256.New()
	have, err := resume(f, m, whole)
	if err != nil {
		return "", fmt.Errorf("fetch artifact %s: resume %s: %w", ref.Digest, part, err)
	}
	haveBytes := int64(have) * m.ChunkSize
	if have == len(m.Chunks) {
		haveBytes = m.Size
	}
	if err := c.checkSpace(ref, uint64(m.Size-haveBytes)); err != nil {
		return "", err
	}
	if have > 0 {
		c.log().Info("resuming an artifact download", "digest", ref.Digest, "have", haveBytes, "size", m.Size)
	}
	for n := have; n < len(m.Chunks); n++ {
		b, err := c.chunk(ctx, m, n)
		if err != nil {
			return "", fmt.Errorf("fetch artifact %s: %w", ref.Digest, err)
		}
		if _, err := f.WriteAt(b, int64(n)*m.ChunkSize); err != nil {
			return "", fmt.Errorf("fetch artifact %s: write %s: %w", ref.Digest, part, err)
		}
		if err := f.Sync(); err != nil {
			return "", fmt.Errorf("fetch artifact %s: sync %s: %w", ref.Digest, part, err)
		}
		whole.Write(b)
	}
	if got := "sha256:" + hex.EncodeToString(whole.Sum(nil)); got != ref.Digest {
		f.Close()
		os.Remove(part)
		return "", fmt.Errorf("fetch artifact %s: the content downloaded has %s: refused and removed (the hub's manifest and chunks are not the content the plan names)", ref.Digest, got)
	}
	if err := f.Chmod(0o400); err != nil {
		return "", fmt.Errorf("fetch artifact %s: %w", ref.Digest, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("fetch artifact %s: %w", ref.Digest, err)
	}
	if err := os.Rename(part, final); err != nil {
		return "", fmt.Errorf("fetch artifact %s: %w", ref.Digest, err)
	}
	if err := atomicfile.SyncDir(c.Dir); err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.verified == nil {
		c.verified = map[string]bool{}
	}
	c.verified[ref.Digest] = true
	c.mu.Unlock()
	c.log().Info("artifact downloaded and verified", "digest", ref.Digest, "size", ref.Size, "path", final)
	return final, nil
}

// finished reports whether the cache holds ref complete. A file this process did not write or check
// yet is hashed once (the cache is the agent's, but a file changed behind its back must not be used);
// one that is not ref is removed and fetched again.
func (c *Cache) finished(final string, ref wire.ArtifactRef) (bool, error) {
	fi, err := os.Stat(final)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("artifact cache: %w", err)
	}
	c.mu.Lock()
	ok := c.verified[ref.Digest]
	c.mu.Unlock()
	if ok && fi.Size() == ref.Size {
		return true, nil
	}
	got, err := FileDigest(final)
	if err != nil {
		return false, err
	}
	if got == ref.Digest && fi.Size() == ref.Size {
		c.mu.Lock()
		if c.verified == nil {
			c.verified = map[string]bool{}
		}
		c.verified[ref.Digest] = true
		c.mu.Unlock()
		return true, nil
	}
	c.log().Warn("a cached artifact is not its digest any more; fetching it again", "digest", ref.Digest, "has", got)
	if err := os.Remove(final); err != nil {
		return false, fmt.Errorf("artifact cache: remove %s: %w", final, err)
	}
	return false, nil
}

// resume checks the part file's complete chunks against the manifest, in order, feeding them to
// whole, and cuts the file after the last good one: a torn last write or a chunk that does not match
// is downloaded again. It returns how many chunks are good.
func resume(f *os.File, m wire.ArtifactManifest, whole hash.Hash) (int, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 0, m.ChunkSize)
	good := 0
	for n := range m.Chunks {
		l := m.ChunkLen(n)
		if int64(n)*m.ChunkSize+l > fi.Size() {
			break
		}
		b := buf[:l]
		if _, err := f.ReadAt(b, int64(n)*m.ChunkSize); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m.Chunks[n] {
			break
		}
		whole.Write(b)
		good++
	}
	if err := f.Truncate(int64(good) * m.ChunkSize); err != nil {
		return 0, err
	}
	return good, nil
}

// chunkAttempts is how often one chunk is asked for before the fetch fails (and is retried by its
// caller later, from where it stopped).
const chunkAttempts = 3

// chunk downloads chunk n and checks it against the manifest.
func (c *Cache) chunk(ctx context.Context, m wire.ArtifactManifest, n int) ([]byte, error) {
	var last error
	for attempt := range chunkAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		b, err := c.Source.Chunk(ctx, m.Digest, n)
		if err != nil {
			last = fmt.Errorf("chunk %d: %w", n, err)
			continue
		}
		if int64(len(b)) != m.ChunkLen(n) {
			last = fmt.Errorf("chunk %d: the hub sent %d bytes, the manifest says %d: refused", n, len(b), m.ChunkLen(n))
			continue
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m.Chunks[n] {
			last = fmt.Errorf("chunk %d: the hub sent content with sha256 %x, the manifest says %s: refused", n, sum, m.Chunks[n])
			continue
		}
		return b, nil
	}
	return nil, last
}

// checkSpace refuses a download the disk cannot take with the margin left free.
func (c *Cache) checkSpace(ref wire.ArtifactRef, need uint64) error {
	free := c.FreeSpace
	if free == nil {
		free = statfsFree
	}
	have, err := free(c.Dir)
	if err != nil {
		return fmt.Errorf("fetch artifact %s: free space on %s: %w", ref.Digest, c.Dir, err)
	}
	margin := c.Margin
	if margin == 0 {
		margin = DefaultMargin
	}
	if have < need+margin {
		return fmt.Errorf("fetch artifact %s: free space: need %s (%s to download and %s to keep free), have %s on %s",
			ref.Digest, Bytes(need+margin), Bytes(need), Bytes(margin), Bytes(have), c.Dir)
	}
	return nil
}

// FileDigest is "sha256:" and the hex SHA-256 of a file's content, read as a stream.
func FileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d, err := wire.ContentDigest(f)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return d, nil
}

// Bytes is a size for a person: 512 B, 4.0 MiB, 1.5 GiB.
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
