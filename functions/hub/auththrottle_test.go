package hub_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// tokenReads counts the store reads of operator tokens, the cost a failed authentication has.
type tokenReads struct {
	store.Store
	n atomic.Int64
}

func (s *tokenReads) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	if strings.HasPrefix(k, layout.Tokens) {
		s.n.Add(1)
	}
	return s.Store.Get(ctx, k, o)
}

// authAs sends GET /v1/agents with token from the local address from (127.0.0.x), with an
// X-Forwarded-For header when xff is set, and returns the status, Retry-After and problem detail.
func authAs(t *testing.T, th *testHub, from, xff, token string) (int, string, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest("GET", th.url+"/v1/agents", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// TestFailedAuthenticationsAreThrottledPerSource: guessing tokens from one address is cut off with a
// 429 that says when to retry, before the hub reads the store for each guess; someone else, at
// another address (directly or behind a trusted proxy), still signs in; and an untrusted peer cannot
// escape its limit by inventing X-Forwarded-For addresses.
func TestFailedAuthenticationsAreThrottledPerSource(t *testing.T) {
	burst := access.FailedAuthRate.Burst()
	for _, tc := range []struct {
		name                 string
		trusted              string // trusted proxy prefix ("": none)
		attacker, attackerFF string
		user, userFF         string
	}{
		{name: "direct peers", attacker: "127.0.0.2", user: "127.0.0.3"},
		{name: "behind a trusted proxy", trusted: "127.0.0.0/8", attacker: "127.0.0.2", attackerFF: "203.0.113.7", user: "127.0.0.2", userFF: "203.0.113.8"},
		{name: "untrusted peer inventing X-Forwarded-For", trusted: "10.0.0.0/8", attacker: "127.0.0.2", attackerFF: "<n>", user: "127.0.0.3", userFF: "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reads *tokenReads
			th := newTestHubOn(t, func(s store.Store) store.Store { reads = &tokenReads{Store: s}; return reads })
			if tc.trusted != "" {
				th.h.Access.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(tc.trusted)}
			}
			limited, readsAtLimit, refilled := 0, int64(-1), 0
			var limitAt time.Time
			for i := range 3 * burst {
				ff := strings.ReplaceAll(tc.attackerFF, "<n>", "198.51.100."+strconv.Itoa(i%250))
				st, retry, body := authAs(t, th, tc.attacker, ff, access.NewSecret("pulse_"))
				switch st {
				case 401:
					// After the limit, a guess gets through only as the allowance refills (one every
					// 2 s), which a slow machine may take between two guesses.
					if limited > 0 {
						if refilled++; refilled > int(time.Since(limitAt).Seconds()/2)+1 {
							t.Fatalf("guess %d answered 401 after the limit was reached (%d through in %s)", i, refilled, time.Since(limitAt))
						}
					}
				case 429:
					if limited == 0 {
						readsAtLimit, limitAt = reads.n.Load(), time.Now()
					}
					limited++
					if n, err := strconv.Atoi(retry); err != nil || n < 1 {
						t.Fatalf("429 with Retry-After %q", retry)
					}
					if !strings.Contains(body, "retry in "+retry+"s") || !strings.Contains(body, `"status":429`) {
						t.Fatalf("429 problem does not say when to retry: %s", body)
					}
				default:
					t.Fatalf("guess %d: %d %s", i, st, body)
				}
			}
			if limited < burst {
				t.Fatalf("%d guesses: %d refused with 429, want at least %d", 3*burst, limited, burst)
			}
			if got := reads.n.Load(); got > readsAtLimit+int64(refilled) {
				t.Errorf("refused guesses still read the store: %d token reads at the limit, %d after", readsAtLimit, got)
			}
			if st, _, body := authAs(t, th, tc.user, tc.userFF, th.admin); st != 200 {
				t.Errorf("a valid token from another source: %d %s", st, body)
			}
		})
	}
}
