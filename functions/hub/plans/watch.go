package plans

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"time"

	"github.com/pulsehq/pulse/functions/hub/events"
)

// PlanUpdate is a plan's state as a whole on its live stream, sent first and whenever it changes.
type PlanUpdate struct {
	Name      string        `json:"name"`
	Version   int           `json:"version"`
	Mode      string        `json:"mode"`
	Agents    int           `json:"agents" doc:"Agents the plan's targets select now."`
	Converged int           `json:"converged" doc:"Agents that hold the newest version with every unit converged."`
	Rollout   *RolloutState `json:"rollout,omitempty" doc:"Where the newest version's rollout stands, when it has one."`
}

// WatchUpdate is one item of a plan's live stream: an agent's new state of the plan, or the plan as a
// whole.
type WatchUpdate struct {
	// ID orders agent updates (when the agent reported, then its id), so a client that reconnects with
	// it as Last-Event-ID is not sent again what it had. Empty for plan updates.
	ID    string
	Agent *AgentStatus
	Plan  *PlanUpdate
}

// watchPoll is how often a plan's stream looks at the store when nothing in this process said the
// plan changed: what agents reported through another hub instance, and rollouts moved there, arrive
// within it. A look costs what Status costs.
const watchPoll = 2 * time.Second

// Watch sends a plan's updates until ctx ends: the plan as a whole first and whenever it changes, then
// every agent whose state of the plan changed (first, every agent, except those that reported at or
// before lastEventID: the client had them before it reconnected).
func (s *Service) Watch(ctx context.Context, name, lastEventID string, send func(WatchUpdate) error) error {
	wake := make(chan struct{}, 1)
	defer s.Bus.Plans.Subscribe(func(_ context.Context, e events.PlanChanged) {
		if e.Plan == name {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	})()
	resume := events.ResumeFrom(lastEventID)
	sent := map[string][32]byte{}
	var lastPlan [32]byte
	t := time.NewTicker(watchPoll)
	defer t.Stop()
	for {
		v, err := s.Status(ctx, name)
		if err != nil {
			return err
		}
		pu := &PlanUpdate{Name: v.Name, Version: v.Version, Mode: v.Mode, Agents: len(v.Agents), Converged: v.Converged, Rollout: v.Rollout}
		if sum := digestOf(pu); sum != lastPlan {
			lastPlan = sum
			if err := send(WatchUpdate{Plan: pu}); err != nil {
				return err
			}
		}
		for i := range v.Agents {
			a := &v.Agents[i]
			sum := digestOf(a)
			if sent[a.Agent] == sum {
				continue
			}
			first := sent[a.Agent] == [32]byte{}
			sent[a.Agent] = sum
			if first && !a.ReportedAt.IsZero() && !resume.After(a.ReportedAt, a.Agent) {
				continue // the client had it before it reconnected
			}
			id := ""
			if !a.ReportedAt.IsZero() {
				id = events.UpdateID(a.ReportedAt, a.Agent)
			}
			if err := send(WatchUpdate{ID: id, Agent: a}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-t.C:
		}
	}
}

func digestOf(v any) [32]byte {
	b, _ := json.Marshal(v)
	return sha256.Sum256(b)
}
