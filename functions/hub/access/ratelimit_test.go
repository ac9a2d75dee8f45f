package access

import (
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
