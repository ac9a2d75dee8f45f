package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// OpenFunc builds a Store from a parsed store URL. It must check the URL completely and return an error
// wrapping ErrInvalidURL for anything an operator has to fix in the URL; it must not fail because the
// store is unreachable, since the hub starts anyway and reports readiness (the store may come back).
type OpenFunc func(ctx context.Context, u *url.URL) (Store, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// Register makes a backend available under a URL scheme. Backends call it from init; registering a
// scheme twice is a programming error and panics at start-up rather than silently picking one.
func Register(scheme string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if scheme == "" || open == nil {
		panic("store: Register needs a scheme and an OpenFunc")
	}
	if _, dup := registry[scheme]; dup {
		panic(fmt.Sprintf("store: scheme %q registered twice", scheme))
	}
	registry[scheme] = open
}

// Schemes lists the registered URL schemes, sorted, for help texts and error messages.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open parses a store URL such as "file:///var/lib/pulse" or
// "s3://bucket?endpoint=http://127.0.0.1:9000&region=us-east-1" and opens it with the backend registered
// for its scheme.
func Open(ctx context.Context, rawURL string) (Store, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// The URL is not repeated: one that does not parse cannot be redacted, and it may hold a
		// password (store URLs end up in logs).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w %q: no scheme; use one of %s (for example file:///var/lib/pulse)", ErrInvalidURL, u.Redacted(), strings.Join(Schemes(), ", "))
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q: unknown scheme %q; supported: %s", ErrInvalidURL, Redact(rawURL), u.Scheme, strings.Join(Schemes(), ", "))
	}
	return open(ctx, u)
}

// Redact hides a password embedded in a URL so store URLs can be logged.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}
