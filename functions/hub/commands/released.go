package commands

import (
	"context"
	"fmt"
	"sync"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// releasedTo returns a command's record if the hub released it to agent: the agent is a target, the
// hub wrote its queued marker (read through the store, so a marker planted in the bucket fails the
// integrity check and does not count), and the command is neither awaiting approval nor denied. Only
// then may the agent say it was delivered, started, or report output or a result: a target still
// waiting for its wave or for approvers never received the work, and whatever it says about it is a
// lie the state must not show. Any other report is a conflict naming the command and the agent, and
// nothing is stored.
//
// A release never goes back (markers are write-once, and a released command is past its approvals),
// so a positive answer is remembered for the process: the first report of a target costs one read of
// its marker (and, for a command that needed approvals, one fold of its state); the rest cost nothing.
func (s *Service) releasedTo(ctx context.Context, cmdID, agent string) (*Record, error) {
	rec, err := s.target(ctx, cmdID, agent)
	if err != nil {
		return nil, err
	}
	if s.released.has(cmdID, agent) {
		return rec, nil
	}
	why := ""
	if _, err := store.ReadJSON(ctx, s.Store, layout.Marker(cmdID, agent, "queued"), &struct{}{}); isNotFound(err) {
		why = "its wave has not reached this agent"
	} else if err != nil {
		return nil, fmt.Errorf("read queued marker of command %s on %s: %w", cmdID, agent, err)
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
	s.released.add(cmdID, agent)
	return rec, nil
}

// releasedSet remembers (command, agent) pairs known to be released. It is bounded: when full it
// starts over, which costs one marker read per target the next time, never a wrong answer.
type releasedSet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const releasedSetMax = 8192

func (r *releasedSet) has(cmd, agent string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.m[cmd+"/"+agent]
	return ok
}

func (r *releasedSet) add(cmd, agent string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) >= releasedSetMax {
		r.m = map[string]struct{}{}
	}
	r.m[cmd+"/"+agent] = struct{}{}
}
