package state

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// IdentityFile is the name of the enrolled identity inside the state directory.
const IdentityFile = "identity.json"

// ErrNoIdentity means the agent has not enrolled yet (or its identity was removed to re-enroll).
var ErrNoIdentity = errors.New("not enrolled yet")

// Identity is what enrollment produced. It is all an agent needs to talk to its hub again after a
// restart, so no enrollment token has to stay on the machine.
type Identity struct {
	AgentID string `json:"agentId"`
	// Hub is the base URL the agent enrolled with; flags or config may point elsewhere later.
	Hub string `json:"hub"`
	// HubKeys are the keys whose envelope signatures the agent accepts. Polls keep them current.
	HubKeys    []wire.HubKey     `json:"hubKeys"`
	Labels     map[string]string `json:"labels,omitempty"`
	EnrolledAt time.Time         `json:"enrolledAt"`
}

// Identity reads identity.json; ErrNoIdentity if the agent has not enrolled.
func (s *State) Identity() (Identity, error) {
	path := filepath.Join(s.dir, IdentityFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, ErrNoIdentity
	}
	if err != nil {
		return Identity{}, fmt.Errorf("state: read identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(data, &id); err != nil {
		return Identity{}, fmt.Errorf("state: %s is corrupt (%v); remove it and enroll again", path, err)
	}
	if id.AgentID == "" {
		return Identity{}, fmt.Errorf("state: %s has no agent id; remove it and enroll again", path)
	}
	return id, nil
}

// SaveIdentity writes identity.json atomically and durably.
func (s *State) SaveIdentity(id Identity) error {
	if id.AgentID == "" {
		return errors.New("state: refusing to save an identity without an agent id")
	}
	data, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return fmt.Errorf("state: encode identity: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := writeFileAtomic(filepath.Join(s.dir, IdentityFile), append(data, '\n'), true); err != nil {
		return fmt.Errorf("state: save identity: %w", err)
	}
	return nil
}

// SameKeys reports whether two hub key sets hold the same keys, in any order, so a poll only rewrites
// identity.json when a rotation really happened.
func SameKeys(a, b []wire.HubKey) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(k wire.HubKey) string { return k.KeyID + "\x00" + string(k.PublicKey) }
	as := make([]string, len(a))
	bs := make([]string, len(b))
	for i := range a {
		as[i], bs[i] = key(a[i]), key(b[i])
	}
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(as, bs)
}

// Peek reads the key and the identity of the state directory dir without creating or locking
// anything, for a process that must not disturb the agent running on it: the self-test of a new agent
// binary (pulse-agent selftest) signs one request as the agent while the agent holds the lock.
func Peek(dir string) (ed25519.PrivateKey, Identity, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, Identity{}, fmt.Errorf("state: %s: %w", dir, err)
	}
	s := &State{dir: abs}
	id, err := s.Identity()
	if err != nil {
		return nil, Identity{}, err
	}
	key, err := readKey(filepath.Join(abs, KeyFile))
	if err != nil {
		return nil, Identity{}, err
	}
	return key, id, nil
}
