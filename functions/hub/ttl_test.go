package hub_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/hub/fleet"
)

type problemBody struct {
	Status int
	Detail string
	Errors []struct{ Location, Message string }
}

// names reports whether a problem points at field and says the limit.
func (p problemBody) names(field, limit string) bool {
	for _, e := range p.Errors {
		if e.Location == field && strings.Contains(e.Message, limit) {
			return true
		}
	}
	return false
}

// TestTokenLifetimesAreBounded: a lifetime past the maximum (including values whose nanoseconds
// overflow an int64, which used to store tokens that never expire, "expiring" in 1734 or now) is
// refused with a problem naming the field and the limit; within the limit it is honoured.
func TestTokenLifetimesAreBounded(t *testing.T) {
	th := newTestHub(t)
	const year, month = 365 * 24 * 3600, 30 * 24 * 3600
	if access.MaxTokenTTL != year*time.Second || fleet.MaxEnrollTokenTTL != month*time.Second {
		t.Fatalf("the limits changed (%s, %s): change this test, docs/hub.md and the ttlSeconds docs with them", access.MaxTokenTTL, fleet.MaxEnrollTokenTTL)
	}
	for _, tc := range []struct {
		name, path string
		body       map[string]any
		ttl        int64 // seconds asked for
		want       int
		expires    time.Duration // expected lifetime when accepted (0: no expiry)
	}{
		{"api token, overflowing", "/v1/tokens", map[string]any{"name": "t1", "groups": []string{"viewer"}}, 9223372037, 422, 0},
		{"api token, 2^62", "/v1/tokens", map[string]any{"name": "t2", "groups": []string{"viewer"}}, 1 << 62, 422, 0},
		{"api token, a second past a year", "/v1/tokens", map[string]any{"name": "t3", "groups": []string{"viewer"}}, year + 1, 422, 0},
		{"api token, negative", "/v1/tokens", map[string]any{"name": "t4", "groups": []string{"viewer"}}, -1, 422, 0},
		{"api token, a year", "/v1/tokens", map[string]any{"name": "t5", "groups": []string{"viewer"}}, year, 201, year * time.Second},
		{"api token, no lifetime", "/v1/tokens", map[string]any{"name": "t6", "groups": []string{"viewer"}}, 0, 201, 0},
		{"enroll token, overflowing", "/v1/enroll-tokens", map[string]any{}, 9223372037, 422, 0},
		{"enroll token, 2^62", "/v1/enroll-tokens", map[string]any{}, 1 << 62, 422, 0},
		{"enroll token, a second past 30 days", "/v1/enroll-tokens", map[string]any{}, month + 1, 422, 0},
		{"enroll token, negative", "/v1/enroll-tokens", map[string]any{}, -5, 422, 0},
		{"enroll token, 30 days", "/v1/enroll-tokens", map[string]any{}, month, 201, month * time.Second},
		{"enroll token, default", "/v1/enroll-tokens", map[string]any{}, 0, 201, 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ttl != 0 {
				tc.body["ttlSeconds"] = tc.ttl
			}
			var out struct {
				problemBody
				ExpiresAt time.Time
			}
			before := time.Now()
			st := th.call(th.admin, "POST", tc.path, tc.body, &out)
			if st != tc.want {
				t.Fatalf("ttlSeconds %d: %d %s, want %d", tc.ttl, st, out.Detail, tc.want)
			}
			if st != 201 {
				limit := strconv.Itoa(year)
				if strings.Contains(tc.path, "enroll") {
					limit = strconv.Itoa(month)
				}
				if tc.ttl < 0 {
					limit = "0"
				}
				if !out.names("body.ttlSeconds", limit) {
					t.Errorf("the problem does not name body.ttlSeconds and %s: %+v", limit, out.problemBody)
				}
				return
			}
			switch {
			case tc.expires == 0 && !out.ExpiresAt.IsZero():
				t.Errorf("expiresAt %s, want none", out.ExpiresAt)
			case tc.expires != 0 && (out.ExpiresAt.Before(before.Add(tc.expires-time.Second)) || out.ExpiresAt.After(time.Now().Add(tc.expires+time.Second))):
				t.Errorf("expiresAt %s, want about %s from now", out.ExpiresAt, tc.expires)
			}
		})
	}
}
