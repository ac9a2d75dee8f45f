// Package local is the embedded store backend: objects in a directory tree on the local disk, with the
// same semantics as the S3 backend, so `pulse serve` works with nothing else installed.
//
// Layout under the root directory: each key segment is percent-encoded (bytes outside [A-Za-z0-9._-],
// and a leading "."),
// directories carry the encoded segment as is, and object files carry it followed by "#" (which the
// encoding never produces), so that keys "a" and "a/b" can exist side by side as in S3. Each object file
// starts with a fixed-size header holding its ETag (MD5 of the content, as S3 single-part uploads), so a
// conditional Get needs no hashing. Writes go to a temporary file under .tmp and are published with
// link(2) for create-only writes (atomic: exactly one concurrent writer wins) and rename(2) otherwise.
// Writes that replace an object take an exclusive flock on .lock, so If-Match is atomic across
// processes sharing the directory.
package local

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/pulsehq/pulse/functions/store"
)

func init() {
	store.Register("file", func(ctx context.Context, u *url.URL) (store.Store, error) {
		dir, err := dirOf(u)
		if err != nil {
			return nil, err
		}
		return New(dir)
	})
}

// dirOf checks a file URL completely and returns the directory it names, touching nothing on disk, so
// that every mistake in the URL is reported before a directory is created. Errors quote the URL
// redacted, because store URLs end up in logs.
func dirOf(u *url.URL) (string, error) {
	bad := func(msg string) (string, error) {
		return "", fmt.Errorf("%w %q: %s", store.ErrInvalidURL, u.Redacted(), msg)
	}
	if u.Host != "" && u.Host != "localhost" {
		return bad("a file URL names a local directory; write file:///abs/path or file:relative/path")
	}
	if u.User != nil {
		return bad("a file URL takes no user or password")
	}
	dir := u.Path
	if u.Opaque != "" {
		dir = u.Opaque // file:relative/dir
	}
	if dir == "" {
		return bad("no directory given")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return bad("the file backend takes no parameters")
	}
	return dir, nil
}

const (
	objSuffix  = "#"
	tmpDir     = ".tmp"
	lockFile   = ".lock"
	headerLen  = 40 // "PULSE1 " + 32 hex digits of MD5 + "\n"
	headerMark = "PULSE1 "
)

// Store is a store.Store on a local directory.
type Store struct {
	root string
	mu   sync.Mutex // serialises replacing writes within this process; flock does it across processes
}

var _ store.Store = (*Store)(nil)

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local store %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o700); err != nil {
		return nil, fmt.Errorf("local store %s: %w", abs, err)
	}
	return &Store{root: abs}, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

// encodeSegment percent-encodes everything but [A-Za-z0-9._-] so that any key segment is a safe,
// portable file name, and "#" can mark object files.
func encodeSegment(seg string) string {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		// A leading "." is escaped so no key can collide with the store's own .tmp and .lock.
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' && i > 0 || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func decodeSegment(name string) (string, bool) {
	s, err := url.PathUnescape(name)
	return s, err == nil
}

// dirPath maps key directory segments to a path.
func (s *Store) dirPath(segs []string) string {
	parts := make([]string, 0, len(segs)+1)
	parts = append(parts, s.root)
	for _, seg := range segs {
		parts = append(parts, encodeSegment(seg))
	}
	return filepath.Join(parts...)
}

func (s *Store) objPath(key string) string {
	segs := strings.Split(key, "/")
	return filepath.Join(s.dirPath(segs[:len(segs)-1]), encodeSegment(segs[len(segs)-1])+objSuffix)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string, opts store.GetOptions) (*store.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if err := store.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	f, err := os.Open(s.objPath(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
			return nil, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	info, err := readInfo(f, key)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if opts.IfNoneMatch != "" && opts.IfNoneMatch == info.ETag {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, store.ErrNotModified)
	}
	return &store.Object{ObjectInfo: info, Body: &ctxReader{ctx: ctx, r: io.NewSectionReader(f, headerLen, info.Size), c: f}}, nil
}

// readInfo reads an object file's header and size.
func readInfo(f *os.File, key string) (store.ObjectInfo, error) {
	st, err := f.Stat()
	if err != nil {
		return store.ObjectInfo{}, err
	}
	var hdr [headerLen]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || !strings.HasPrefix(string(hdr[:]), headerMark) || hdr[headerLen-1] != '\n' {
		return store.ObjectInfo{}, fmt.Errorf("corrupt object file %s: bad header", f.Name())
	}
	return store.ObjectInfo{
		Key:          key,
		Size:         st.Size() - headerLen,
		ETag:         string(hdr[len(headerMark) : headerLen-1]),
		LastModified: st.ModTime().UTC(),
	}, nil
}

// ctxReader makes a long read of a large object stop when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	c   io.Closer
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func (r *ctxReader) Close() error { return r.c.Close() }

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := store.ValidatePut(key, size, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	tmp, etag, err := s.writeTemp(ctx, body, size)
	if err != nil {
		return store.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer os.Remove(tmp)
	final := s.objPath(key)
	if err := s.checkConflict(key); err != nil {
		return store.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	if opts.CreateOnly {
		// link(2) fails with EEXIST if the name is taken: the atomic create-only primitive.
		err = retryMissingDir(final, func() error { return os.Link(tmp, final) })
		if errors.Is(err, fs.ErrExist) {
			return store.ObjectInfo{}, fmt.Errorf("put %s: %w", key, store.ErrExists)
		}
	} else {
		err = s.locked(func() error {
			if opts.IfMatch != "" {
				cur, err := s.currentETag(key)
				if err != nil {
					return err
				}
				if cur != opts.IfMatch {
					return store.ErrPreconditionFailed
				}
			}
			return retryMissingDir(final, func() error { return os.Rename(tmp, final) })
		})
		if errors.Is(err, store.ErrPreconditionFailed) || errors.Is(err, store.ErrNotFound) {
			return store.ObjectInfo{}, fmt.Errorf("put %s: %w", key, store.ErrPreconditionFailed)
		}
	}
	if err != nil {
		return store.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	st, err := os.Stat(final)
	if err != nil {
		return store.ObjectInfo{Key: key, Size: size, ETag: etag}, nil
	}
	return store.ObjectInfo{Key: key, Size: size, ETag: etag, LastModified: st.ModTime().UTC()}, nil
}

// checkConflict refuses a key that is the "directory" of an existing key or lies under an existing key,
// which S3 servers handle inconsistently (see store.ValidateKey).
func (s *Store) checkConflict(key string) error {
	segs := strings.Split(key, "/")
	for i := 1; i < len(segs); i++ {
		parent := strings.Join(segs[:i], "/")
		if _, err := os.Stat(s.objPath(parent)); err == nil {
			return fmt.Errorf("%w: %q is already an object", store.ErrKeyConflict, parent)
		}
	}
	if des, err := os.ReadDir(s.dirPath(segs)); err == nil && len(des) > 0 {
		return fmt.Errorf("%w: other keys start with %q", store.ErrKeyConflict, key+"/")
	}
	return nil
}

func (s *Store) currentETag(key string) (string, error) {
	f, err := os.Open(s.objPath(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
			return "", store.ErrNotFound
		}
		return "", err
	}
	defer f.Close()
	info, err := readInfo(f, key)
	return info.ETag, err
}

// writeTemp streams body into a new temporary file with a placeholder header, hashing as it goes, then
// fills in the header. It returns the file's path and the ETag.
func (s *Store) writeTemp(ctx context.Context, body io.Reader, size int64) (string, string, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "put-*")
	if err != nil {
		return "", "", err
	}
	name := f.Name()
	fail := func(err error) (string, string, error) {
		f.Close()
		os.Remove(name)
		return "", "", err
	}
	if _, err := f.Write(make([]byte, headerLen)); err != nil {
		return fail(err)
	}
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: io.LimitReader(body, size+1)})
	if err != nil {
		return fail(err)
	}
	if n != size {
		return fail(fmt.Errorf("body has %d bytes, size said %d", n, size))
	}
	etag := hex.EncodeToString(h.Sum(nil))
	if _, err := f.WriteAt([]byte(headerMark+etag+"\n"), 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", "", err
	}
	return name, etag, nil
}

// retryMissingDir runs op, creating the parent directory when it is missing. A concurrent Delete may
// remove an empty parent between MkdirAll and op, or an ancestor while MkdirAll is creating its
// children (MkdirAll then fails with ENOENT), so it tries a few times.
func retryMissingDir(path string, op func() error) error {
	var err error
	for range 8 {
		if err = op(); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if mkErr := os.MkdirAll(filepath.Dir(path), 0o700); mkErr != nil && !errors.Is(mkErr, fs.ErrNotExist) {
			return mkErr
		}
	}
	return err
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := store.ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	path := s.objPath(key)
	err := s.locked(func() error {
		err := os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	// Remove now-empty parents so deleted inboxes do not leave directories behind. rmdir fails on a
	// non-empty directory, which is exactly the check we want; writers recreate parents if they race.
	for dir := filepath.Dir(path); dir != s.root && strings.HasPrefix(dir, s.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List implements store.Store. It walks the directory tree in key order, skipping subtrees that lie
// wholly at or before startAfter, and stops after limit+1 keys, so paging through a large prefix costs
// one page of work per page.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) (store.Page, error) {
	if limit <= 0 {
		limit = store.DefaultListLimit
	}
	// Start at the deepest directory the prefix names completely; the rest filters names.
	var dirSegs []string
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dirSegs = strings.Split(prefix[:i], "/")
	}
	keyBase := ""
	if len(dirSegs) > 0 {
		keyBase = strings.Join(dirSegs, "/") + "/"
	}
	w := &walker{ctx: ctx, prefix: prefix, startAfter: startAfter, limit: limit}
	err := w.walk(s.dirPath(dirSegs), keyBase, len(dirSegs) == 0)
	if err != nil && !errors.Is(err, errStop) {
		return store.Page{}, fmt.Errorf("list %s: %w", prefix, err)
	}
	page := store.Page{Objects: w.out}
	if len(page.Objects) > limit {
		page.Objects = page.Objects[:limit]
		page.Truncated = true
	}
	return page, nil
}

var errStop = errors.New("stop")

type walker struct {
	ctx        context.Context
	prefix     string
	startAfter string
	limit      int
	out        []store.ObjectInfo
}

type entry struct {
	sortKey string // the key (object) or key prefix ending in "/" (directory)
	name    string
	dir     bool
}

func (w *walker) walk(dir, keyBase string, atRoot bool) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
			return nil // nothing under this prefix, or a directory removed while we listed
		}
		return err
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if atRoot && (name == tmpDir || name == lockFile) {
			continue
		}
		e := entry{name: name, dir: de.IsDir()}
		enc := name
		if !e.dir {
			if !strings.HasSuffix(name, objSuffix) {
				continue // not ours
			}
			enc = strings.TrimSuffix(name, objSuffix)
		}
		seg, ok := decodeSegment(enc)
		if !ok {
			continue
		}
		e.sortKey = keyBase + seg
		if e.dir {
			e.sortKey += "/"
		}
		entries = append(entries, e)
	}
	// Sorting by key (objects) and key prefix + "/" (directories) yields every key of the subtree in
	// byte order, because no object key can fall between a directory's "p/" and its contents.
	sort.Slice(entries, func(i, j int) bool { return entries[i].sortKey < entries[j].sortKey })
	for _, e := range entries {
		if e.dir {
			// Skip subtrees that cannot hold a key matching the prefix.
			if !strings.HasPrefix(e.sortKey, w.prefix) && !strings.HasPrefix(w.prefix, e.sortKey) {
				continue
			}
			// Skip subtrees that lie wholly before startAfter.
			if e.sortKey <= w.startAfter && !strings.HasPrefix(w.startAfter, e.sortKey) {
				continue
			}
			if err := w.walk(filepath.Join(dir, e.name), e.sortKey, false); err != nil {
				return err
			}
			continue
		}
		if !strings.HasPrefix(e.sortKey, w.prefix) || e.sortKey <= w.startAfter {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while we listed
			}
			return err
		}
		info, err := readInfo(f, e.sortKey)
		f.Close()
		if err != nil {
			return err
		}
		w.out = append(w.out, info)
		if len(w.out) > w.limit {
			return errStop
		}
	}
	return nil
}
