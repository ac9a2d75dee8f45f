package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// ReadJSON reads and decodes one object.
func ReadJSON(ctx context.Context, s Store, key string, v any) (ObjectInfo, error) {
	b, info, err := ReadAll(ctx, s, key)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return info, fmt.Errorf("decode %s: %w", key, err)
	}
	return info, nil
}

// CreateJSON writes v under key only if the key is free. An existing object is not an error: callers
// derive such keys deterministically, so it means the same decision was already recorded.
func CreateJSON(ctx context.Context, s Store, key string, v any) (created bool, err error) {
	b, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = PutBytes(ctx, s, key, b, PutOptions{CreateOnly: true, ContentType: "application/json"})
	if errors.Is(err, ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// PutJSON overwrites key with v.
func PutJSON(ctx context.Context, s Store, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = PutBytes(ctx, s, key, b, PutOptions{ContentType: "application/json"})
	return err
}

// UpdateJSON reads the object under key into a T (the zero T when there is none), lets change edit
// it and writes it back only if the object is still the version read: If-Match on its ETag, or
// create-only when there was none. When another writer got in between, it reads the newer version and
// calls change again, up to tries times, then gives up with ErrPreconditionFailed. change reports
// whether it changed anything; nothing is written when it did not. On a store without conditional
// writes (unconditional+, Garage) the last writer wins, as everywhere else.
func UpdateJSON[T any](ctx context.Context, s Store, key string, tries int, change func(v *T, exists bool) (bool, error)) (T, error) {
	for range max(tries, 1) {
		var v T
		info, err := ReadJSON(ctx, s, key, &v)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return v, err
		}
		changed, err := change(&v, exists)
		if err != nil || !changed {
			return v, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return v, fmt.Errorf("encode %s: %w", key, err)
		}
		opts := PutOptions{ContentType: "application/json", IfMatch: info.ETag, CreateOnly: !exists}
		_, err = PutBytes(ctx, s, key, b, opts)
		if errors.Is(err, ErrPreconditionFailed) || errors.Is(err, ErrExists) {
			continue
		}
		return v, err
	}
	var zero T
	return zero, fmt.Errorf("update %s: other writers kept changing it: %w", key, ErrPreconditionFailed)
}

// Once keeps decoded objects that are written once and never change (identities, command records), so
// hot paths such as signature checks read each from the store once per process. Concurrent first
// reads of one key share one read: a thousand agents reporting on a new command at once read its
// record once, not a thousand times.
type Once[T any] struct {
	mu       sync.RWMutex
	m        map[string]*T
	inflight map[string]*onceRead[T]
}

type onceRead[T any] struct {
	done chan struct{}
	v    *T
	err  error
}

// Get returns the object under key, reading it from s the first time.
func (c *Once[T]) Get(ctx context.Context, s Store, key string) (*T, error) {
	c.mu.RLock()
	v := c.m[key]
	c.mu.RUnlock()
	if v != nil {
		return v, nil
	}
	c.mu.Lock()
	if v := c.m[key]; v != nil {
		c.mu.Unlock()
		return v, nil
	}
	if r, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		select {
		case <-r.done:
			return r.v, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.inflight == nil {
		c.inflight = map[string]*onceRead[T]{}
	}
	r := &onceRead[T]{done: make(chan struct{})}
	c.inflight[key] = r
	c.mu.Unlock()

	v = new(T)
	_, err := ReadJSON(context.WithoutCancel(ctx), s, key, v)
	c.mu.Lock()
	delete(c.inflight, key)
	if err == nil {
		c.put(key, v)
	}
	c.mu.Unlock()
	if err != nil {
		v = nil
	}
	r.v, r.err = v, err
	close(r.done)
	return v, err
}

// Newest returns the object under the last of keys (ascending, as a listing gives them) that reads,
// passing over keys whose object reads as missing: through the hub's integrity check a planted or
// edited object does, so a forged newer version of something (a workflow, a plan, an agent's labels)
// can neither act nor hide the genuine one. ErrNotFound when none reads.
func (c *Once[T]) Newest(ctx context.Context, s Store, keys []string) (*T, error) {
	for i := len(keys) - 1; i >= 0; i-- {
		v, err := c.Get(ctx, s, keys[i])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return v, err
	}
	return nil, ErrNotFound
}

// Latest is Newest among every key under prefix: the newest genuine version of something whose
// versions are numbered keys under it.
func (c *Once[T]) Latest(ctx context.Context, s Store, prefix string) (*T, error) {
	var keys []string
	err := Walk(ctx, s, prefix, "", 0, func(o ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c.Newest(ctx, s, keys)
}

// Put keeps v as the object under key, for a writer that just stored it: its next Get reads nothing.
func (c *Once[T]) Put(key string, v *T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.put(key, v)
}

func (c *Once[T]) put(key string, v *T) {
	if c.m == nil {
		c.m = map[string]*T{}
	}
	c.m[key] = v
}
