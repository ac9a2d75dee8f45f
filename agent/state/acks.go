package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

const acksFile = "acks.json"

// Acks returns the delivery names (inbox keys) of envelopes the agent has durably handled but the hub has not yet been
// told about. They are kept on disk so a restart between handling and the next poll still acknowledges
// them, instead of the hub delivering them again.
func (s *State) Acks() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readAcks()
}

func (s *State) readAcks() ([]string, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, acksFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: read acks: %w", err)
	}
	var keys []string
	if err := json.Unmarshal(data, &keys); err != nil {
		// Losing acks only means the hub redelivers; the replay record refuses those.
		return nil, nil
	}
	return keys, nil
}

func (s *State) writeAcks(keys []string) error {
	data, err := json.Marshal(keys)
	if err != nil {
		return fmt.Errorf("state: encode acks: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, acksFile), data, true); err != nil {
		return fmt.Errorf("state: save acks: %w", err)
	}
	return nil
}

// AddAcks appends inbox keys to the pending acknowledgements.
func (s *State) AddAcks(keys ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.readAcks()
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k != "" && !slices.Contains(cur, k) {
			cur = append(cur, k)
		}
	}
	return s.writeAcks(cur)
}

// RemoveAcks drops keys the hub has confirmed (a poll carrying them succeeded).
func (s *State) RemoveAcks(keys ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.readAcks()
	if err != nil {
		return err
	}
	kept := cur[:0]
	for _, k := range cur {
		if !slices.Contains(keys, k) {
			kept = append(kept, k)
		}
	}
	return s.writeAcks(kept)
}
