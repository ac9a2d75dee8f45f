// Package store defines the one narrow interface through which the hub keeps all of its state in object
// storage, and the rules every backend must follow so that the hub behaves the same on MinIO, AWS S3,
// Garage or a local directory.
//
// The hub's portability rests on one rule (DESIGN.md §3): objects are written once under keys that no
// other writer would choose for different content, and changing state is derived by folding them.
// Conditional writes (create-only, If-Match) are a guard and an optimisation where the store has them,
// never the only thing standing between the hub and corruption, because some stores (Garage) ignore them.
// Probe tells which kind of store the hub is running on.
//
// Backends live in sub-packages named after the backend (store/s3, store/local) and register a URL
// scheme with Register from their init function; Open picks the backend by the scheme of a store URL.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Store is the whole surface the hub needs from object storage. Every method takes a context because
// every call is network or disk I/O that an operator may need to cancel; a cancelled context must make the
// call return promptly with an error wrapping ctx.Err().
type Store interface {
	// Get returns the object stored under key. ErrNotFound if there is none. If opts.IfNoneMatch is set and
	// the stored ETag equals it, Get returns ErrNotModified and no body, so watchers (doorbells) can poll
	// cheaply. The caller must close Object.Body.
	Get(ctx context.Context, key string, opts GetOptions) (*Object, error)

	// Put stores size bytes read from body under key and returns the new object's info. size must be
	// exact: backends rely on it to choose a single-part upload. With opts.CreateOnly the write succeeds only
	// if no object exists under key, otherwise ErrExists (on stores that honour it; see Probe). With
	// opts.IfMatch the write succeeds only if the stored ETag equals it, otherwise ErrPreconditionFailed.
	Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error)

	// List returns up to limit objects whose keys start with prefix and sort strictly after startAfter,
	// in ascending byte order of their keys. Page.Truncated reports whether more follow; the next page is
	// asked for with startAfter set to the last key returned. limit <= 0 means DefaultListLimit.
	List(ctx context.Context, prefix, startAfter string, limit int) (Page, error)

	// Delete removes the object under key. Deleting a missing key is not an error, as in S3.
	Delete(ctx context.Context, key string) error
}

// GetOptions carries the conditions of a Get.
type GetOptions struct {
	// IfNoneMatch, when not empty, is an ETag the caller already has: Get answers ErrNotModified if the
	// object still has it.
	IfNoneMatch string
}

// PutOptions carries the conditions of a Put. CreateOnly and IfMatch are mutually exclusive.
type PutOptions struct {
	// CreateOnly refuses the write with ErrExists when the key already holds an object
	// (If-None-Match: *). Only objects of at most MaxCreateOnlySize bytes may be written this way.
	CreateOnly bool
	// IfMatch, when not empty, refuses the write with ErrPreconditionFailed unless the stored object has
	// this ETag.
	IfMatch string
	// ContentType is stored with the object where the backend keeps it; informational only.
	ContentType string
}

// Object is an object's metadata and a stream of its content.
type Object struct {
	ObjectInfo
	// Body streams the content; the caller must close it.
	Body io.ReadCloser
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ETag identifies this version of the object's content, without quotes. It changes whenever the
	// content changes.
	ETag         string
	LastModified time.Time
}

// Page is one page of a listing.
type Page struct {
	Objects []ObjectInfo
	// Truncated is true when more keys match after the last one in Objects.
	Truncated bool
}

// DefaultListLimit is the page size used when List is given no limit; it matches S3's own maximum so a
// page is one request on S3 backends.
const DefaultListLimit = 1000

// MaxCreateOnlySize is the largest object that may be written with CreateOnly. MinIO and versitygw
// honour If-None-Match atomically only for single-part uploads (measured: eight concurrent create-only
// multipart uploads of one key all "won"), so create-only writes must stay single-part. 5 MiB is S3's
// minimum multipart part size, below every client's multipart threshold on every S3 implementation.
// Larger payloads (command output) are split into chunk objects by the caller.
const MaxCreateOnlySize = 5 << 20

// MaxKeyLength is S3's limit on key length in bytes.
const MaxKeyLength = 1024

// Sentinel errors. Backends wrap them with the key and operation; callers test with errors.Is.
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("object not found")
	// ErrNotModified: a conditional Get found the object unchanged.
	ErrNotModified = errors.New("object not modified")
	// ErrExists: a create-only Put found the key already taken.
	ErrExists = errors.New("object already exists")
	// ErrPreconditionFailed: an If-Match Put found another version.
	ErrPreconditionFailed = errors.New("object changed (precondition failed)")
	// ErrInvalidKey: the key breaks the rules of ValidateKey.
	ErrInvalidKey = errors.New("invalid object key")
	// ErrTooLarge: a create-only Put larger than MaxCreateOnlySize.
	ErrTooLarge = errors.New("object too large for a create-only write")
	// ErrKeyConflict: the key is the "directory" of an existing key, or has an existing key as one.
	ErrKeyConflict = errors.New("key conflicts with an existing key's path")
	// ErrInvalidURL: a store URL that cannot be used; fixing it needs a restart.
	ErrInvalidURL = errors.New("invalid store URL")
)

// ValidateKey enforces the key rules shared by all backends, so that a key accepted by one backend is
// accepted by every other one and maps to one file on a local disk: not empty, at most MaxKeyLength
// bytes, valid UTF-8 without control characters, no leading or trailing "/", no empty, "." or ".."
// segment.
//
// One more rule cannot be checked key by key and binds the key layout instead: a key must never be the
// "directory" of another key ("a" and "a/b" must not both exist). Real servers disagree about it: MinIO
// accepts both writes and then leaves "a/b" out of listings, versitygw refuses the second write, AWS S3
// allows it. The local backend refuses it with ErrKeyConflict, so a layout that breaks the rule fails in
// tests rather than silently on MinIO. Give objects a suffix (".json") that directory segments never have.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > MaxKeyLength {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidKey, len(key), MaxKeyLength)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidKey, key)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q contains a control character", ErrInvalidKey, key)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: %q has an empty path segment (leading, trailing or doubled \"/\")", ErrInvalidKey, key)
		case ".", "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

// ValidatePut checks the arguments of a Put that every backend must refuse the same way.
func ValidatePut(key string, size int64, opts PutOptions) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("put %s: size must be known (got %d)", key, size)
	}
	if opts.CreateOnly && opts.IfMatch != "" {
		return fmt.Errorf("put %s: CreateOnly and IfMatch cannot be combined", key)
	}
	if opts.CreateOnly && size > MaxCreateOnlySize {
		return fmt.Errorf("put %s: %w (%d bytes, limit %d)", key, ErrTooLarge, size, MaxCreateOnlySize)
	}
	return nil
}

// ReadAll reads a whole object into memory; a convenience for the small JSON objects that make up most
// of the hub's state.
func ReadAll(ctx context.Context, s Store, key string) ([]byte, ObjectInfo, error) {
	obj, err := s.Get(ctx, key, GetOptions{})
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	defer obj.Body.Close()
	b, err := io.ReadAll(obj.Body)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("read %s: %w", key, err)
	}
	return b, obj.ObjectInfo, nil
}

// Exists reports whether key holds an object (one the store lets the caller read: through the hub's
// integrity check, a forged one does not exist). It closes what it opened.
func Exists(ctx context.Context, s Store, key string) (bool, error) {
	obj, err := s.Get(ctx, key, GetOptions{})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	obj.Body.Close()
	return true, nil
}

// PutBytes writes b under key; a convenience over Put for in-memory payloads.
func PutBytes(ctx context.Context, s Store, key string, b []byte, opts PutOptions) (ObjectInfo, error) {
	return s.Put(ctx, key, bytes.NewReader(b), int64(len(b)), opts)
}

// Walk calls fn for every object under prefix after startAfter, in key order, fetching pages of
// pageSize as it goes. It stops at the first error, including one returned by fn.
func Walk(ctx context.Context, s Store, prefix, startAfter string, pageSize int, fn func(ObjectInfo) error) error {
	for {
		page, err := s.List(ctx, prefix, startAfter, pageSize)
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			if err := fn(o); err != nil {
				return err
			}
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return nil
		}
		startAfter = page.Objects[len(page.Objects)-1].Key
	}
}
