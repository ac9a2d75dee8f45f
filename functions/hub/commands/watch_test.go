package commands

import (
	"fmt"
	"testing"
)

// TestPairsStartOverWhenFull: a bounded cache of pairs never holds more than its bound; a pair it
// dropped reads as unknown (the caller reads the store), never as a wrong answer.
func TestPairsStartOverWhenFull(t *testing.T) {
	var p pairs[int]
	for i := range 10 {
		p.addUpTo("c", fmt.Sprint(i), i, 4)
		if len(p.m) > 4 {
			t.Fatalf("%d pairs kept, bound 4", len(p.m))
		}
	}
	if v, ok := p.get("c", "9"); !ok || v != 9 {
		t.Fatalf("the newest pair: %v %v", v, ok)
	}
	if _, ok := p.get("c", "0"); ok {
		t.Fatal("a pair from before the cache started over is still answered")
	}
}
