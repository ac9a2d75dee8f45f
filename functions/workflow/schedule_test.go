package workflow

import (
	"testing"
	"time"
)

func schedule(t *testing.T, cron, tz string) *Schedule {
	t.Helper()
	d := mustLoad(t, "schedule: {cron: \""+cron+"\", timezone: \""+tz+"\"}\nsteps:\n  - {name: a, type: wait, duration: 1s}\n")
	return d.Schedule
}

func TestNextFire(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	ny, _ := time.LoadLocation("America/New_York")
	at := func(loc *time.Location, y int, mo time.Month, d, h, mi int) time.Time {
		return time.Date(y, mo, d, h, mi, 0, 0, loc)
	}
	cases := []struct {
		name      string
		cron, tz  string
		last, now time.Time
		fire      bool
		want      time.Time
	}{
		{"not yet", "0 3 * * *", "Europe/Paris", at(paris, 2025, 3, 10, 3, 0), at(paris, 2025, 3, 11, 2, 59), false, at(paris, 2025, 3, 11, 3, 0)},
		{"due", "0 3 * * *", "Europe/Paris", at(paris, 2025, 3, 10, 3, 0), at(paris, 2025, 3, 11, 3, 0), true, at(paris, 2025, 3, 11, 3, 0)},
		// The hub was down for four days: one run, for the latest missed slot, not four.
		{"missed window fires once", "0 3 * * *", "Europe/Paris", at(paris, 2025, 3, 10, 3, 0), at(paris, 2025, 3, 14, 9, 30), true, at(paris, 2025, 3, 14, 3, 0)},
		// 03:00 in Paris is 02:00 UTC in winter and 01:00 UTC in summer: the zone decides, not the hub.
		{"across daylight saving", "0 3 * * *", "Europe/Paris", at(paris, 2025, 3, 28, 3, 0), at(paris, 2025, 3, 31, 12, 0), true, time.Date(2025, 3, 31, 1, 0, 0, 0, time.UTC)},
		{"other zone", "30 6 * * 1-5", "America/New_York", at(ny, 2025, 6, 6, 6, 30), at(ny, 2025, 6, 9, 6, 0), false, time.Date(2025, 6, 9, 10, 30, 0, 0, time.UTC)},
		{"every minute after a long outage", "* * * * *", "UTC", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 9, 10, 30, 30, 0, time.UTC), true, time.Date(2025, 6, 9, 10, 30, 0, 0, time.UTC)},
		{"yearly", "@yearly", "UTC", time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), true, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"never fired: no catch-up", "0 3 * * *", "UTC", time.Time{}, time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), false, time.Date(2025, 6, 2, 3, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fire, got := NextFire(schedule(t, c.cron, c.tz), c.last, c.now)
			if fire != c.fire || !got.Equal(c.want) {
				t.Fatalf("NextFire = %v %s, want %v %s", fire, got, c.fire, c.want.UTC())
			}
			if fire {
				// The hub records the slot it fired for; asking again at the same time fires nothing.
				if again, next := NextFire(schedule(t, c.cron, c.tz), got, c.now); again || !next.After(c.now) {
					t.Fatalf("fired twice for one slot: %v %s", again, next)
				}
			}
		})
	}
}
