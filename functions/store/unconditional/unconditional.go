// Package unconditional wraps a store so that it behaves like Garage: conditional headers are ignored
// and the last writer wins. It exists so the hub can be tested, on any backend, in the mode it must run
// in on stores without If-None-Match and If-Match, where correctness rests on deterministic keys and
// immutable objects alone (DESIGN.md §3).
//
// It can also be selected with a store URL: "unconditional+file:///dir" or "unconditional+s3://...".
package unconditional

import (
	"context"
	"io"
	"net/url"
	"strings"

	"github.com/pulsehq/pulse/functions/store"
)

func init() {
	// One registration per inner scheme would couple this package to every backend; instead the prefix
	// is peeled off and the rest opened through the registry.
	for _, inner := range []string{"file", "s3"} {
		store.Register("unconditional+"+inner, func(ctx context.Context, u *url.URL) (store.Store, error) {
			innerURL := strings.TrimPrefix(u.String(), "unconditional+")
			s, err := store.Open(ctx, innerURL)
			if err != nil {
				return nil, err
			}
			return Wrap(s), nil
		})
	}
}

// Store drops the conditions of every request before passing it on.
type Store struct {
	inner store.Store
}

var _ store.Store = (*Store)(nil)

// Wrap returns s without conditional writes or conditional reads.
func Wrap(s store.Store) *Store { return &Store{inner: s} }

// Get ignores IfNoneMatch: the object is always returned, as by a store that does not honour it.
func (s *Store) Get(ctx context.Context, key string, _ store.GetOptions) (*store.Object, error) {
	return s.inner.Get(ctx, key, store.GetOptions{})
}

// Put ignores CreateOnly and IfMatch: the write always happens. The size limit on create-only writes
// still applies, so code tested here obeys it on every store.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := store.ValidatePut(key, size, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	return s.inner.Put(ctx, key, body, size, store.PutOptions{ContentType: opts.ContentType})
}

// List passes through.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) (store.Page, error) {
	return s.inner.List(ctx, prefix, startAfter, limit)
}

// Delete passes through.
func (s *Store) Delete(ctx context.Context, key string) error { return s.inner.Delete(ctx, key) }
