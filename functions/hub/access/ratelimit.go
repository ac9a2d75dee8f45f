package access

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are token buckets per caller: a runaway script or a misbehaving agent slows itself down
// without starving everyone else. They are per hub instance, which is what protects the instance.
type Limits struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// Per-caller rates: operators (per principal), agents (per agent id), enrollment (per client address).
var (
	OperatorRate = Rate{50, 200}
	AgentRate    = Rate{50, 200}  // output chunks are 1 MiB: 50 MiB/s per agent
	EnrollRate   = Rate{100, 500} // per address, and fleets enroll through one proxy address
)

// Rate is a sustained rate and a burst.
type Rate struct {
	perSecond float64
	burst     int
}

// Allow takes a token from key's bucket; false means the caller must slow down for the duration returned.
func (l *Limits) Allow(key string, spec Rate) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	now := time.Now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) > 50000 {
			for k, v := range l.buckets {
				if now.Sub(v.seen) > 10*time.Minute {
					delete(l.buckets, k)
				}
			}
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(spec.perSecond), spec.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
