package commands

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/pulsehq/pulse/functions/hub/events"
)

// Update is one item of a command's live stream: an agent's new state, or the command's state as a
// whole.
type Update struct {
	// ID orders agent updates (the store time of what caused them, then the agent id) so a client that
	// reconnects with it as Last-Event-ID gets only what changed after. Empty for command updates.
	ID      string
	Agent   *AgentState
	Command *CommandUpdate
}

// CommandUpdate is the command's state as a whole, sent when it changes.
type CommandUpdate struct {
	ID               string         `json:"id"`
	State            string         `json:"state"`
	Done             bool           `json:"done"`
	AwaitingApproval bool           `json:"awaitingApproval"`
	Approvals        int            `json:"approvals"`
	ApprovalsNeeded  int            `json:"approvalsNeeded,omitempty"`
	Message          string         `json:"message,omitempty" doc:"For a person: e.g. awaiting approval: 1 of 2."`
	Counts           map[string]int `json:"counts"`
}

// watchPoll is how often a watch looks at the store when nothing in this process said the command
// changed: results stored through another hub instance arrive within it.
const watchPoll = time.Second

// Watch sends a command's updates as they are stored until every target is final (then it returns
// nil) or ctx ends. lastEventID resumes a stream: agent states that changed at or before it are not
// sent again.
func (s *Service) Watch(ctx context.Context, id, lastEventID string, send func(Update) error) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	wake := make(chan struct{}, 1)
	defer s.Bus.Commands.Subscribe(func(_ context.Context, e events.CommandChanged) {
		if e.Command == id {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	})()
	resume := events.ResumeFrom(lastEventID)
	sent := map[string]string{}
	lastCommand := ""
	for {
		st, err := s.Status(ctx, id, false)
		if err != nil {
			return err
		}
		var changed []AgentState
		for _, a := range st.Agents {
			if sent[a.Agent] == a.State {
				continue
			}
			sent[a.Agent] = a.State
			if !a.ChangedAt.IsZero() && !resume.After(a.ChangedAt, a.Agent) {
				continue // the client had it before it reconnected
			}
			changed = append(changed, a)
		}
		sort.SliceStable(changed, func(i, j int) bool {
			ti, tj := changed[i].ChangedAt.UnixMilli(), changed[j].ChangedAt.UnixMilli()
			if ti != tj {
				return ti < tj
			}
			return changed[i].Agent < changed[j].Agent
		})
		for i := range changed {
			a := &changed[i]
			if FinalState(a.State) {
				s.fillResult(ctx, id, a)
			}
			u := Update{Agent: a}
			if !a.ChangedAt.IsZero() {
				u.ID = events.UpdateID(a.ChangedAt, a.Agent)
			}
			if err := send(u); err != nil {
				return err
			}
		}
		cu := &CommandUpdate{ID: id, State: st.State(), Done: st.Done, AwaitingApproval: st.Awaiting, Approvals: len(st.Approvers), Counts: st.Counts}
		if st.Approval != nil {
			cu.ApprovalsNeeded = st.Approval.Count
		}
		if st.Awaiting {
			cu.Message = awaitingLine(st)
		}
		if key := fmt.Sprint(cu.State, cu.Done, cu.Approvals, cu.Counts); key != lastCommand {
			lastCommand = key
			if err := send(Update{Command: cu}); err != nil {
				return err
			}
		}
		if st.Done {
			return nil
		}
		t := time.NewTimer(watchPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// fillResult adds exit code, reason and times from the stored result to a final agent state.
func (s *Service) fillResult(ctx context.Context, id string, a *AgentState) {
	res, err := s.result(ctx, id, a.Agent)
	if err != nil {
		return // expired or never released: no result
	}
	a.setResult(res)
}
