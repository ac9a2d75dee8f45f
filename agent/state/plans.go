package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pulsehq/pulse/agent/wire"
)

const plansDir = "plans"

// CachedPlan is a plan envelope as the agent accepted it, read back from disk. It is the signed bytes,
// not a decoded plan: whoever reads it verifies the signature again with the hub keys trusted then, so
// a file planted in the state directory carries no authority.
type CachedPlan struct {
	// Name is the plan name the file is stored under.
	Name     string
	Envelope wire.SignedEnvelope
}

func (s *State) planPath(name string) (string, error) {
	if !wire.ValidName(name) {
		return "", fmt.Errorf("state: plan name %q is not a valid name", name)
	}
	return filepath.Join(s.dir, plansDir, name+".json"), nil
}

// SavePlan keeps the signed envelope of the plan version the agent accepted, durably, replacing the
// previous version's: an agent that restarts without its hub keeps enforcing it.
func (s *State) SavePlan(name string, se wire.SignedEnvelope) error {
	path, err := s.planPath(name)
	if err != nil {
		return err
	}
	se.InboxKey = "" // transport, not part of what was accepted
	data, err := json.Marshal(se)
	if err != nil {
		return fmt.Errorf("state: encode plan %s: %w", name, err)
	}
	if err := writeFileAtomic(path, data, true); err != nil {
		return fmt.Errorf("state: save plan %s: %w", name, err)
	}
	return nil
}

// DropPlan forgets a plan the hub no longer assigns to the agent.
func (s *State) DropPlan(name string) error {
	path, err := s.planPath(name)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: drop plan %s: %w", name, err)
	}
	return syncDir(filepath.Dir(path))
}

// Plans lists the cached plan envelopes, by name. A file that cannot be read or decoded is skipped
// and named in the error (the rest are still returned): the hub sends the plan again.
func (s *State) Plans() ([]CachedPlan, error) {
	dir := filepath.Join(s.dir, plansDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("state: list plans: %w", err)
	}
	var out []CachedPlan
	var bad []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if isTemp(e.Name()) || !ok || !wire.ValidName(name) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			bad = append(bad, fmt.Errorf("state: read plan %s: %w", name, err))
			continue
		}
		var se wire.SignedEnvelope
		if err := json.Unmarshal(data, &se); err != nil {
			bad = append(bad, fmt.Errorf("state: plan %s is corrupt: %w", name, err))
			continue
		}
		out = append(out, CachedPlan{Name: name, Envelope: se})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errors.Join(bad...)
}
