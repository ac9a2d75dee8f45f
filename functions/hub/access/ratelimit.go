package access

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are token buckets per caller: a runaway script or a misbehaving agent slows itself down
// without starving everyone else. They are per hub instance, which is what protects the instance.
// Memory is bounded: at most MaxKeys buckets (DefaultMaxKeys when zero); a bucket that has refilled is
// the same as a new one and is dropped when room is needed, and when every bucket is still in use an
// arbitrary one goes, so a flood of new callers can reset others' limits but never grow the map.
type Limits struct {
	MaxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

// DefaultMaxKeys bounds a Limits' memory (a bucket is ~200 bytes: 10 MB at most).
const DefaultMaxKeys = 50000

type bucket struct {
	lim *rate.Limiter
}

// Per-caller rates: operators (per principal), agents (per agent id), enrollment (per client address).
var (
	OperatorRate = Rate{50, 200}
	AgentRate    = Rate{50, 200}  // output chunks are 1 MiB: 50 MiB/s per agent
	EnrollRate   = Rate{100, 500} // per address, and fleets enroll through one proxy address
	// FailedAuthRate bounds failed operator authentications per source address: a burst of 20 (a
	// person mistyping, a script with a revoked token retrying), then one every 2 seconds. Guessing a
	// 256-bit token is hopeless anyway; the limit keeps each guess from costing a store read.
	FailedAuthRate = Rate{0.5, 20}
)

// Rate is a sustained rate and a burst.
type Rate struct {
	perSecond float64
	burst     int
}

// Burst is how many requests the rate lets through at once.
func (r Rate) Burst() int { return r.burst }

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
		l.makeRoom(now)
		b = &bucket{lim: rate.NewLimiter(rate.Limit(spec.perSecond), spec.burst)}
		l.buckets[key] = b
	}
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Wait is how long key must wait before its bucket has a token again, without taking one: zero when
// it may go on. It lets a caller refuse a request before doing the work whose failure would be
// counted (a failed authentication's store read).
func (l *Limits) Wait(key string, spec Rate) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return 0
	}
	tokens := b.lim.TokensAt(time.Now())
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / spec.perSecond * float64(time.Second))
}

// Len is how many buckets are kept.
func (l *Limits) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// makeRoom keeps the map under MaxKeys before a bucket is added: first it drops every bucket that has
// refilled (at most once a second, since it walks them all), then, if every bucket is still in use,
// arbitrary ones.
func (l *Limits) makeRoom(now time.Time) {
	max := l.MaxKeys
	if max <= 0 {
		max = DefaultMaxKeys
	}
	if len(l.buckets) < max {
		return
	}
	if now.Sub(l.swept) >= time.Second {
		l.swept = now
		for k, b := range l.buckets {
			if b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
				delete(l.buckets, k)
			}
		}
	}
	for k := range l.buckets { // Go's map order is random: an arbitrary bucket, in constant time
		if len(l.buckets) < max {
			break
		}
		delete(l.buckets, k)
	}
}

// sourceKey is the limit key of a client address. An IPv6 client is keyed by its /64, the block a
// single site is given, so cycling through the addresses of one network is one source.
func sourceKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Source is the address a request comes from, as a limit key: the direct peer, unless the peer is a
// trusted proxy (TrustedProxies, the same that may set forward-auth headers), in which case it is the
// right-most X-Forwarded-For entry the trusted proxies did not add themselves. Entries a client wrote
// are left of what its proxy appended and are never believed, so a client cannot pick its own key.
func (s *Service) Source(remoteAddr string, forwardedFor []string) string {
	peer, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	src := peer.Addr().Unmap()
	if !s.trusted(src) {
		return sourceKey(src)
	}
	var hops []string
	for _, h := range forwardedFor {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed entry: what is left of it cannot be attributed; keep the last good hop
		}
		src = a.Unmap()
		if !s.trusted(src) {
			break
		}
	}
	return sourceKey(src)
}

// AuthWait is how long a source must wait before its next operator authentication is attempted: zero
// unless its failed authentications are over FailedAuthRate. It is checked before any credential is
// looked up, so a refused guess costs no store read.
func (s *Service) AuthWait(source string) time.Duration {
	return s.AuthFailures.Wait(source, FailedAuthRate)
}
