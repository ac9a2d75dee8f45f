package workflow

import (
	"time"
)

// lookbacks are the windows NextFire searches, shortest first, for the latest slot before now. Searching
// near now first keeps a frequent schedule after a long outage from walking every missed slot.
var lookbacks = []time.Duration{time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 367 * 24 * time.Hour}

// NextFire decides a scheduled workflow's tick. last is the slot the schedule last fired for (the
// workflow's creation or the schedule's last change, before it ever fired). If one or more slots fell
// in (last, now], it returns fire = true and the latest of them: a hub that was down for a day runs a
// missed schedule once, not once per missed slot; the hub records that slot as the new last. Otherwise
// it returns fire = false and the next slot after now, for the tick to sleep until. Slots are computed
// in the schedule's time zone, daylight saving included. A zero last means "never fired and nothing
// to catch up": only the next slot is returned. at is zero when the expression has no future slot.
func NextFire(s *Schedule, last, now time.Time) (fire bool, at time.Time) {
	if s == nil || s.sched == nil {
		return false, time.Time{}
	}
	if last.IsZero() || last.After(now) {
		return false, s.next(now)
	}
	first := s.next(last)
	if first.IsZero() || first.After(now) {
		return false, first
	}
	// At least one slot was missed; find the latest one at or before now.
	for _, w := range lookbacks {
		from := now.Add(-w)
		if from.Before(last) {
			from = last
		}
		latest := time.Time{}
		for t := s.next(from); !t.IsZero() && !t.After(now); t = s.next(t) {
			latest = t
		}
		if !latest.IsZero() {
			return true, latest
		}
	}
	return true, first // a slot more than five years ago, and none since
}

// next is the first slot strictly after t, in UTC.
func (s *Schedule) next(t time.Time) time.Time {
	n := s.sched.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// Location is the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }
