package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/pulsehq/pulse/functions/store"
)

// The key layout, versioned under v1/. Every object is written once under a key that no other writer
// would choose for different content, except heartbeats (overwritten by their one agent). No key is the
// "directory" of another: objects end in .json or .bin.
const (
	prefixAgents       = "v1/agents/"
	prefixHeartbeats   = "v1/heartbeats/"
	prefixInbox        = "v1/inbox/"
	prefixCommands     = "v1/commands/"
	prefixResults      = "v1/results/"
	prefixRejections   = "v1/rejections/"
	prefixTokens       = "v1/tokens/"
	prefixRevoked      = "v1/revoked-tokens/"
	prefixEnrollTokens = "v1/enroll-tokens/"
	prefixBells        = "v1/bells/"
)

func keyAgent(id string) string     { return prefixAgents + id + ".json" }
func keyRevoked(hash string) string { return prefixRevoked + hash + ".json" }
func keyHeartbeat(id string) string { return prefixHeartbeats + id + ".json" }
func inboxOf(agent string) string   { return prefixInbox + agent + "/" }
func keyCommand(id string) string   { return prefixCommands + id + ".json" }
func keyCancelled(id string) string { return prefixCommands + id + "/cancelled.json" }
func resultsOf(cmd string) string   { return prefixResults + cmd + "/" }
func keyResult(cmd, agent string) string {
	return resultsOf(cmd) + agent + ".json"
}

// keyMarker records that a command reached a state on an agent: queued, delivered, running.
func keyMarker(cmd, agent, state string) string {
	return resultsOf(cmd) + agent + "/" + state + ".json"
}

func keyChunk(cmd, agent string, seq int) string {
	return fmt.Sprintf("%s%s/output/%010d.bin", resultsOf(cmd), agent, seq)
}

// validID guards ids that become key segments: they come from URLs and must not smuggle a "/".
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// readJSON reads and decodes one object.
func readJSON(ctx context.Context, s store.Store, key string, v any) (store.ObjectInfo, error) {
	b, info, err := store.ReadAll(ctx, s, key)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return info, fmt.Errorf("decode %s: %w", key, err)
	}
	return info, nil
}

// createJSON writes v under key only if the key is free. An existing object is not an error for callers
// that derive the key deterministically: the same decision was already recorded.
func createJSON(ctx context.Context, s store.Store, key string, v any) (created bool, err error) {
	b, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = store.PutBytes(ctx, s, key, b, store.PutOptions{CreateOnly: true, ContentType: "application/json"})
	if errors.Is(err, store.ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// putJSON overwrites key with v.
func putJSON(ctx context.Context, s store.Store, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = store.PutBytes(ctx, s, key, b, store.PutOptions{ContentType: "application/json"})
	return err
}

// lastSegment returns the file name of a key without its extension.
func lastSegment(key string) string {
	name := key[strings.LastIndex(key, "/")+1:]
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[:i]
	}
	return name
}

// onceCache keeps decoded objects that are written once and never change (identities, command
// records), so hot paths such as signature checks read each from the store once per process.
type onceCache[T any] struct {
	mu sync.RWMutex
	m  map[string]*T
}

func (c *onceCache[T]) get(ctx context.Context, s store.Store, key string) (*T, error) {
	c.mu.RLock()
	v := c.m[key]
	c.mu.RUnlock()
	if v != nil {
		return v, nil
	}
	v = new(T)
	if _, err := readJSON(ctx, s, key, v); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*T{}
	}
	c.m[key] = v
	c.mu.Unlock()
	return v, nil
}
