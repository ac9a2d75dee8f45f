package hub

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/time/rate"
)

// limits are token buckets per caller: a runaway script or a misbehaving agent slows itself down
// without starving everyone else. They are per hub instance, which is what protects the instance.
type limits struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// Per-caller rates: operators (per principal), agents (per agent id), enrollment (per client address).
var (
	operatorRate = rateSpec{50, 200}
	agentRate    = rateSpec{50, 200}  // output chunks are 1 MiB: 50 MiB/s per agent
	enrollRate   = rateSpec{100, 500} // per address, and fleets enroll through one proxy address
)

type rateSpec struct {
	perSecond float64
	burst     int
}

// allow takes a token from key's bucket; false means the caller must slow down.
func (l *limits) allow(key string, spec rateSpec) (bool, time.Duration) {
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

// throttle answers 429 with Retry-After when key is over its rate.
func (h *Hub) throttle(api huma.API, ctx huma.Context, key string, spec rateSpec) bool {
	ok, wait := h.limits.allow(key, spec)
	if ok {
		return false
	}
	secs := int(wait/time.Second) + 1
	ctx.SetHeader("Retry-After", strconv.Itoa(secs))
	huma.WriteErr(api, ctx, http.StatusTooManyRequests, fmt.Sprintf("too many requests from %s; retry in %ds", key, secs))
	return true
}
