package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

const jobsDir = "jobs"

// Job marks a command that has started and has no result in the outbox yet. If the agent dies while
// a command runs, the marker survives, and the next start reports the command as failed instead of
// leaving it without a final state forever.
type Job struct {
	CommandID  string    `json:"commandId"`
	EnvelopeID string    `json:"envelopeId"`
	StartedAt  time.Time `json:"startedAt"`
	// OutputBytes and OutputChunks count the output already handed to the outbox, so a result written
	// after a crash still tells the hub how many chunks to expect.
	OutputBytes  int64 `json:"outputBytes"`
	OutputChunks int   `json:"outputChunks"`
	// ProcessGroup is the process group the command's subprocess runs in (0 for a job that runs inside
	// the agent, or before the subprocess started). Processes keep running when the agent is killed;
	// the next start kills what is left of this group, so nothing runs unsupervised.
	ProcessGroup int `json:"processGroup,omitempty"`
	// Leader identifies the group's leader beyond its number (boot and start time, where the system
	// tells them), so a later start never kills a group that merely reuses the number.
	Leader string `json:"leader,omitempty"`
}

func (s *State) jobPath(commandID string) string {
	return filepath.Join(s.dir, jobsDir, hashName(commandID)+".json")
}

// SaveJob creates or updates the marker of a running command, durably.
func (s *State) SaveJob(j Job) error {
	data, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("state: encode job %s: %w", j.CommandID, err)
	}
	if err := writeFileAtomic(s.jobPath(j.CommandID), data, true); err != nil {
		return fmt.Errorf("state: save job %s: %w", j.CommandID, err)
	}
	return nil
}

// EndJob removes the marker once the command's result is safely in the outbox.
func (s *State) EndJob(commandID string) error {
	if err := os.Remove(s.jobPath(commandID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: end job %s: %w", commandID, err)
	}
	return nil
}

// Jobs lists the markers left behind, oldest first: at start-up these are commands a previous run
// never finished.
func (s *State) Jobs() ([]Job, error) {
	dir := filepath.Join(s.dir, jobsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("state: list jobs: %w", err)
	}
	var jobs []Job
	for _, e := range ents {
		if isTemp(e.Name()) {
			os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("state: read job: %w", err)
		}
		var j Job
		if err := json.Unmarshal(data, &j); err != nil || j.CommandID == "" {
			os.Remove(filepath.Join(dir, e.Name())) // torn beyond use; nothing to report it against
			continue
		}
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].StartedAt.Before(jobs[b].StartedAt) })
	return jobs, nil
}
