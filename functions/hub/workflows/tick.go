package workflows

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/workflow"
)

// Tick drives every active execution once (timers due fire, half-done work is finished) and starts
// the scheduled runs that are due. It returns how many executions were active.
func (s *Service) Tick(ctx context.Context) int {
	var ids []string
	store.Walk(ctx, s.Store, layout.ActiveExecutions, "", 0, func(o store.ObjectInfo) error {
		ids = append(ids, layout.Name(o.Key))
		return nil
	})
	for _, id := range ids {
		if _, err := s.drive(ctx, id); err != nil && ctx.Err() == nil {
			s.Log.Warn("tick: drive execution", "execution", id, "err", err)
		}
	}
	s.tickSchedules(ctx)
	return len(ids)
}

// tickSchedules starts the executions that cron schedules call for. A slot missed while every hub was
// down fires once when one returns (workflow.NextFire), not once per missed slot. Slots are claimed
// with create-only writes, so among hubs ticking at once exactly one starts a slot's execution.
func (s *Service) tickSchedules(ctx context.Context) {
	list, err := s.List(ctx)
	if err != nil {
		return
	}
	now := time.Now()
	for _, w := range list {
		if w.Schedule == "" {
			continue
		}
		v, err := s.latest(ctx, w.Name)
		if err != nil {
			continue
		}
		def, err := workflow.Parse([]byte(v.Source))
		if err != nil || def.Schedule == nil {
			continue
		}
		// Fires are keyed by time: only those after this version was applied can move last on.
		last := v.AppliedAt
		store.Walk(ctx, s.Store, layout.ScheduleFiresOf(w.Name), layout.ScheduleFire(w.Name, last), 0, func(o store.ObjectInfo) error {
			var sec int64
			if _, err := fmt.Sscanf(layout.Name(o.Key), "%d", &sec); err == nil && time.Unix(sec, 0).After(last) {
				last = time.Unix(sec, 0)
			}
			return nil
		})
		fire, at := workflow.NextFire(def.Schedule, last, now)
		if !fire {
			continue
		}
		busy := s.hasActive(ctx, w.Name)
		if busy && def.Schedule.Overlap == workflow.OverlapQueue {
			continue // the slot stays due and fires once the running execution ends
		}
		created, err := store.CreateJSON(ctx, s.Store, layout.ScheduleFire(w.Name, at), map[string]any{"slot": at, "skipped": busy})
		if err != nil || !created {
			continue
		}
		if busy {
			s.Log.Info("scheduled run skipped: the previous one is still running", "workflow", w.Name, "slot", at)
			continue
		}
		// The run acts for whoever applied this version, under the policy.
		sctx := domain.WithPrincipal(ctx, v.AppliedByPrincipal)
		id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("pulse:schedule:%s:%d", w.Name, at.Unix()))).String()
		if _, err := s.start(sctx, w.Name, nil, id); err != nil {
			s.Log.Warn("scheduled run failed to start", "workflow", w.Name, "slot", at, "err", err)
			continue
		}
		s.Log.Info("scheduled run started", "workflow", w.Name, "slot", at, "execution", id)
	}
}

func (s *Service) hasActive(ctx context.Context, name string) bool {
	found := false
	store.Walk(ctx, s.Store, layout.ActiveExecutions, "", 0, func(o store.ObjectInfo) error {
		if rec, err := s.executions.Get(ctx, s.Store, layout.Execution(layout.Name(o.Key))); err == nil && rec.Workflow == name {
			found = true
		}
		return nil
	})
	return found
}
