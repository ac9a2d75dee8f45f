package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// Live watches: while someone watches an agent's metrics (a dashboard chart, `pulse metrics --watch`),
// the poll answers ask the agent to upload its samples every few seconds (wire.PollResponse's
// MetricsEverySeconds) instead of every 5 minutes. A watch reaches the instance that holds the agent's
// poll like a delivery does: at once on this instance, through the bell feed on the others.

// watchBell is a bell entry that says an agent is watched.
type watchBell struct {
	Agent string    `json:"agent"`
	Every int       `json:"every"`
	Until time.Time `json:"until"`
}

type watch struct {
	every int
	until time.Time
}

// watches are the agents being watched, as this instance knows them.
type watches struct {
	mu sync.Mutex
	m  map[string]watch
}

func (w *watches) set(agent string, every int, until time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]watch{}
	}
	if old, ok := w.m[agent]; ok && old.until.After(until) && old.every <= every {
		return
	}
	w.m[agent] = watch{every: every, until: until}
}

// get is the upload interval (seconds) an agent is asked for at now, 0 when it is not watched.
func (w *watches) get(agent string, now time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.m[agent]
	if !ok {
		return 0
	}
	if !now.Before(v.until) {
		delete(w.m, agent)
		return 0
	}
	return v.every
}

// renewDue says whether a watch for agent until until needs telling the other instances: not while
// the one they know lasts at least half as long again.
func (w *watches) renewDue(agent string, every int, until, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.m[agent]
	return !ok || v.every > every || v.until.Sub(now) < until.Sub(now)/2
}

// Watch asks agent to upload its metrics every `every` until `until`: its poll, here or on another
// instance, answers at once with the request, and every answer carries it until the watch ends. A
// watch renewed while the one known lasts more than half as long again costs nothing; otherwise one
// bell write, so a chart refreshing every few seconds costs a write every minute or so.
func (s *Service) Watch(ctx context.Context, agent string, every time.Duration, until time.Time) {
	secs := max(1, int(every/time.Second))
	now := time.Now()
	if s.Doorbells {
		if err := s.watchDoorbell(ctx, agent, secs, until); err != nil {
			s.Log.Warn("doorbell write failed; the agent is not asked to upload sooner", "agent", agent, "err", err)
		}
		return
	}
	due := s.watching.renewDue(agent, secs, until, now)
	s.watching.set(agent, secs, until)
	if !due {
		return
	}
	s.notify.wake([]string{agent})
	b := bell{Watch: &watchBell{Agent: agent, Every: secs, Until: until}}
	if _, err := store.CreateJSON(context.WithoutCancel(ctx), s.Store, layout.Bell(uuid.Must(uuid.NewV7()).String()), b); err != nil {
		s.Log.Warn("bell feed write failed; an agent polling another hub instance is not asked to upload sooner", "agent", agent, "err", err)
	}
}
