package access

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestLimits(t *testing.T) {
	var l Limits
	spec := Rate{perSecond: 1, burst: 3}
	for i := range 3 {
		if ok, _ := l.Allow("a", spec); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.Allow("a", spec)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allow("b", spec); !ok {
		t.Fatal("another caller was slowed down by the first")
	}
}

// TestLimitsStayBounded: a flood of new keys never grows the map past MaxKeys, whether the buckets
// in it have refilled (dropped as equal to new ones) or are all in use (arbitrary ones go).
func TestLimitsStayBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Rate
	}{
		{"refilled buckets", Rate{perSecond: 1e9, burst: 1}},
		{"buckets in use", FailedAuthRate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := Limits{MaxKeys: 100}
			for i := range 1000 {
				l.Allow(fmt.Sprint("k", i), tc.spec)
				if n := l.Len(); n > 100 {
					t.Fatalf("after %d keys: %d buckets, want at most 100", i+1, n)
				}
			}
		})
	}
}

// TestWaitDoesNotTake: Wait says how long until a token is back without taking one, and creates no
// bucket for a key it has not seen.
func TestWaitDoesNotTake(t *testing.T) {
	var l Limits
	spec := Rate{perSecond: 1, burst: 2}
	if w := l.Wait("a", spec); w != 0 || l.Len() != 0 {
		t.Fatalf("unseen key: wait %v, %d buckets", w, l.Len())
	}
	l.Allow("a", spec)
	if w := l.Wait("a", spec); w != 0 {
		t.Fatalf("one token left: wait %v", w)
	}
	l.Allow("a", spec)
	for range 3 {
		if w := l.Wait("a", spec); w <= 0 || w > time.Second {
			t.Fatalf("empty bucket: wait %v, want up to 1s", w)
		}
	}
}

// TestSource: the direct peer is the source unless it is a trusted proxy; then the right-most
// forwarded address no trusted proxy added. IPv6 clients are keyed by their /64.
func TestSource(t *testing.T) {
	s := &Service{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tc := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1:5000", nil, "192.0.2.1"},
		{"192.0.2.1:5000", []string{"203.0.113.9"}, "192.0.2.1"}, // an untrusted peer's header is ignored
		{"10.0.0.1:5000", nil, "10.0.0.1"},                       // a proxy that forwards nothing is the source
		{"10.0.0.1:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"10.0.0.1:5000", []string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9"},             // the client's own entry is left of it
		{"10.0.0.1:5000", []string{"198.51.100.1", "203.0.113.9, 10.0.0.2"}, "203.0.113.9"}, // through two proxies
		{"10.0.0.1:5000", []string{"junk, 203.0.113.9"}, "203.0.113.9"},
		{"10.0.0.1:5000", []string{"203.0.113.9, junk"}, "10.0.0.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", nil, "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.1]:443", nil, "192.0.2.1"},
	} {
		if got := s.Source(tc.peer, tc.xff); got != tc.want {
			t.Errorf("Source(%s, %q) = %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}
