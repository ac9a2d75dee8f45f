package commands

import (
	"context"
	"fmt"
	"sync"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// releasedTo returns a command's record if the hub released it to agent: the agent is a target, a
// wave the hub wrote names it (read through the store, so a wave planted in the bucket fails the
// integrity check and does not count), and the command is neither awaiting approval nor denied. Only
// then may the agent say it started, or report output or a result: a target still waiting for its
// wave or for approvers never received the work, and whatever it says about it is a lie the state must
// not show. Any other report is a conflict naming the command and the agent, and nothing is stored.
//
// A release never goes back (waves are write-once, and a released command is past its approvals), so
// a positive answer is remembered for the process, and the hub that released a wave knows it at once:
// on that hub reports cost nothing; elsewhere the first report of a command costs a listing of its
// waves (learnWaves), which teaches the hub every target they name.
func (s *Service) releasedTo(ctx context.Context, cmdID, agent string) (*Record, error) {
	rec, err := s.target(ctx, cmdID, agent)
	if err != nil {
		return nil, err
	}
	if s.released.has(cmdID, agent) || rec.releasesAtOnce() { // the record is its own first wave
		return rec, nil
	}
	why := ""
	if found, err := s.learnWaves(ctx, cmdID, agent); err != nil {
		return nil, fmt.Errorf("read the waves of command %s: %w", cmdID, err)
	} else if !found {
		why = "its wave has not reached this agent"
	}
	if rec.Approval != nil { // the approval's state is the better reason when both apply
		st, err := s.Status(ctx, cmdID, false)
		if err != nil {
			return nil, err
		}
		switch {
		case st.Denied:
			why = "an approver denied it"
		case st.Awaiting:
			why = fmt.Sprintf("it is awaiting approval, %d of %d", len(st.Approvers), rec.Approval.Count)
		}
	}
	if why != "" {
		s.Log.Warn("report refused: the command was not released to this agent", "command", cmdID, "agent", agent, "why", why)
		return nil, domain.Conflict("command %s was not released to agent %s (%s); the report is refused and nothing was stored", cmdID, agent, why)
	}
	s.released.add(cmdID, agent, struct{}{})
	return rec, nil
}

// learnWaves reads the genuine waves of cmd (each once per process: they are write-once), remembers
// every agent they released, and reports whether agent is among them. One listing serves every
// target of the waves, so a hub that did not release a wave learns all of it from the first report.
func (s *Service) learnWaves(ctx context.Context, cmd, agent string) (bool, error) {
	found := false
	err := store.Walk(ctx, s.Store, layout.CommandSide(cmd)+"waves/", "", 0, func(o store.ObjectInfo) error {
		w, err := s.waves.Get(ctx, s.Store, o.Key)
		if isNotFound(err) {
			return nil // planted (fails the integrity check) or gone: releases nobody
		} else if err != nil {
			return err
		}
		for _, a := range w.Agents {
			s.released.add(cmd, a, struct{}{})
			found = found || a == agent
		}
		return nil
	})
	return found, err
}

// pairs remembers facts about (command, agent) pairs that never change once true: a release, a
// genuine final result. It is bounded: when full it starts over, which costs one read per pair the
// next time, never a wrong answer.
type pairs[V any] struct {
	mu sync.Mutex
	m  map[string]V
}

const pairsMax = 1 << 17

func (r *pairs[V]) get(cmd, agent string) (V, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[cmd+"/"+agent]
	return v, ok
}

func (r *pairs[V]) has(cmd, agent string) bool {
	_, ok := r.get(cmd, agent)
	return ok
}

func (r *pairs[V]) add(cmd, agent string, v V) { r.addUpTo(cmd, agent, v, pairsMax) }

// addUpTo is add for a cache bounded to max pairs.
func (r *pairs[V]) addUpTo(cmd, agent string, v V, max int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) >= max {
		r.m = map[string]V{}
	}
	r.m[cmd+"/"+agent] = v
}

// The results this process stored or read, kept whole when small, so a watcher's final states cost no
// read per agent. The views that must show an edit in the bucket as tampered (GET /v1/commands/{id},
// an agent's output) read the stored result itself (readResult).
const (
	maxKeptResults    = 16384
	maxKeptResultSize = 8 << 10
)

// keepResult remembers a genuine result if it is small.
func (s *Service) keepResult(cmd, agent string, res *wire.Result) {
	s.finals.add(cmd, agent, res.Status)
	if len(res.Output)+len(res.Reason) <= maxKeptResultSize {
		s.kept.addUpTo(cmd, agent, res, maxKeptResults)
	}
}

// result is agent's result of cmd, from memory when it is kept, else read through the integrity check.
func (s *Service) result(ctx context.Context, cmd, agent string) (*wire.Result, error) {
	if r, ok := s.kept.get(cmd, agent); ok {
		return r, nil
	}
	return s.readResult(ctx, cmd, agent)
}

// readResult reads agent's result of cmd from the store, through the integrity check, and keeps it.
func (s *Service) readResult(ctx context.Context, cmd, agent string) (*wire.Result, error) {
	var res wire.Result
	if _, err := store.ReadJSON(ctx, s.Store, layout.Result(cmd, agent), &res); err != nil {
		return nil, err
	}
	s.keepResult(cmd, agent, &res)
	return &res, nil
}

// genuineFinal is the status of agent's result of cmd if the hub stored it (read through the
// integrity check and remembered), ok=false if there is none or it fails the check. Release decisions
// (a free concurrency slot, maxErrors) rest on it, not on marker names a bucket writer could plant.
func (s *Service) genuineFinal(ctx context.Context, cmd, agent string) (wire.Status, bool, error) {
	if st, ok := s.finals.get(cmd, agent); ok {
		return st, true, nil
	}
	res, err := s.result(ctx, cmd, agent)
	if isNotFound(err) {
		return "", false, nil
	} else if err != nil {
		return "", false, fmt.Errorf("read result of command %s on %s: %w", cmd, agent, err)
	}
	return res.Status, true, nil
}
