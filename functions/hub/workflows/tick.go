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
//
// The active executions are listed once per tick: driving them also tells which workflows still have
// one running, which is what the schedules need to know.
func (s *Service) Tick(ctx context.Context) int {
	var ids []string
	store.Walk(ctx, s.Store, layout.ActiveExecutions, "", 0, func(o store.ObjectInfo) error {
		ids = append(ids, layout.Name(o.Key))
		return nil
	})
	running := map[string]bool{} // workflows with an execution still active after the drive
	for _, id := range ids {
		ex, err := s.drive(ctx, id)
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("tick: drive execution", "execution", id, "err", err)
		}
		switch {
		case ex != nil && ex.State.Status.Final():
			// finished: its listing is removed (or will be, by the next drive)
		case ex != nil:
			running[ex.Rec.Workflow] = true
		default:
			// not driven (a store error, a record that fails the integrity check): running if its
			// record says which workflow it belongs to, as before
			if rec, err := s.executions.Get(ctx, s.Store, layout.Execution(id)); err == nil {
				running[rec.Workflow] = true
			}
		}
	}
	s.tickSchedules(ctx, running)
	return len(ids)
}

// tickSchedules starts the executions that cron schedules call for; running names the workflows that
// have an execution active. A slot missed while every hub was down fires once when one returns
// (workflow.NextFire), not once per missed slot. Slots are claimed with create-only writes, so among
// hubs ticking at once exactly one starts a slot's execution. Each workflow's newest version is read
// and parsed once per process (heads, parsed).
func (s *Service) tickSchedules(ctx context.Context, running map[string]bool) {
	heads, err := s.heads(ctx)
	if err != nil {
		return
	}
	now := time.Now()
	for _, v := range heads {
		if v.Deleted {
			continue
		}
		def, err := s.parsed(v)
		if err != nil || def.Schedule == nil {
			continue
		}
		last := s.lastFire(ctx, v)
		fire, at := workflow.NextFire(def.Schedule, last, now)
		if !fire {
			continue
		}
		busy := running[v.Name]
		if busy && def.Schedule.Overlap == workflow.OverlapQueue {
			continue // the slot stays due and fires once the running execution ends
		}
		created, err := store.CreateJSON(ctx, s.Store, layout.ScheduleFire(v.Name, at), map[string]any{"slot": at, "skipped": busy})
		if err != nil || !created {
			continue
		}
		if busy {
			s.Log.Info("scheduled run skipped: the previous one is still running", "workflow", v.Name, "slot", at)
			continue
		}
		// The run acts for whoever applied this version, under the policy.
		sctx := domain.WithPrincipal(ctx, v.AppliedByPrincipal)
		id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("pulse:schedule:%s:%d", v.Name, at.Unix()))).String()
		if _, err := s.start(sctx, v.Name, nil, id); err != nil {
			s.Log.Warn("scheduled run failed to start", "workflow", v.Name, "slot", at, "err", err)
			continue
		}
		running[v.Name] = true
		s.Log.Info("scheduled run started", "workflow", v.Name, "slot", at, "execution", id)
	}
}

// lastFire is the latest slot of v's schedule that fired since v was applied (or when v was applied).
// Fires are keyed by slot time, so only those after this version was applied can move last on, and
// only those after the latest this process saw: the latest is kept per version, and a tick lists only
// the fires since, not every fire the schedule ever had.
func (s *Service) lastFire(ctx context.Context, v *Version) time.Time {
	fires := s.mem.get().fires
	key := fmt.Sprintf("%s@%d", v.Name, v.Version)
	last := v.AppliedAt
	if seen, ok := fires.get(key); ok && seen.After(last) {
		last = seen
	}
	err := store.Walk(ctx, s.Store, layout.ScheduleFiresOf(v.Name), layout.ScheduleFire(v.Name, last), 0, func(o store.ObjectInfo) error {
		var sec int64
		if _, err := fmt.Sscanf(layout.Name(o.Key), "%d", &sec); err == nil && time.Unix(sec, 0).After(last) {
			last = time.Unix(sec, 0)
		}
		return nil
	})
	if err == nil {
		fires.put(key, last, 1)
	}
	return last
}
