package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pulsehq/pulse/agent/atomicfile"
)

// record is what the integration keeps of one unit's process, so an agent that restarts finds the
// very process it started (not one that reuses its pid) and never starts a second one.
type record struct {
	PID int `json:"pid"`
	// Identity is proc.Identity of the process: the boot it runs in and its start time.
	Identity string `json:"identity"`
	// Digest is the unit digest (wire.Unit.Digest) of the spec it was started with.
	Digest    string    `json:"digest"`
	StartedAt time.Time `json:"startedAt"`
	// ExitCode and Exited say how it ended, when an agent saw it end (it was the agent's child);
	// ExitCode is nil for an exit by signal or one nobody saw.
	ExitCode *int      `json:"exitCode,omitempty"`
	Exited   string    `json:"exited,omitempty"`
	ExitedAt time.Time `json:"exitedAt,omitzero"`
}

// same reports whether r and o name the same process.
func (r *record) same(o *record) bool {
	return r != nil && o != nil && r.PID == o.PID && r.Identity == o.Identity
}

func (p *Process) recordPath(unit string) string { return filepath.Join(p.dir, "units", unit+".json") }
func (p *Process) lockPath(unit string) string   { return filepath.Join(p.dir, "units", unit+".lock") }
func (p *Process) logPath(unit string) string    { return filepath.Join(p.dir, "logs", unit+".log") }

// load reads a unit's record; nil when there is none. A record that cannot be decoded counts as none:
// the processes of the unit are then found by their environment.
func (p *Process) load(unit string) (*record, error) {
	data, err := os.ReadFile(p.recordPath(unit))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the record of unit %s: %w", unit, err)
	}
	var r record
	if json.Unmarshal(data, &r) != nil || r.PID <= 0 {
		return nil, nil
	}
	return &r, nil
}

func (p *Process) save(unit string, r *record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode the record of unit %s: %w", unit, err)
	}
	if err := atomicfile.Write(p.recordPath(unit), data, atomicfile.Options{Perm: 0o600}); err != nil {
		return fmt.Errorf("record the process of unit %s: %w", unit, err)
	}
	return nil
}

func (p *Process) forget(unit string) error {
	if err := os.Remove(p.recordPath(unit)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the record of unit %s: %w", unit, err)
	}
	return atomicfile.SyncDir(filepath.Dir(p.recordPath(unit)))
}
