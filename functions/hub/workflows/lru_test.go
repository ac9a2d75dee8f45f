package workflows

import (
	"slices"
	"testing"
)

// TestLRUBounds: the cache keeps at most max entries and maxWeight in total, dropping the least
// recently used first, and keeps the entry just used even when it alone is over the weight.
func TestLRUBounds(t *testing.T) {
	cases := []struct {
		name string
		ops  func(c *lru[int])
		want []string // keys kept
	}{
		{"fewer than max", func(c *lru[int]) { c.put("a", 1, 1); c.put("b", 2, 1) }, []string{"a", "b"}},
		{"over max drops the oldest", func(c *lru[int]) { c.put("a", 1, 1); c.put("b", 2, 1); c.put("c", 3, 1); c.put("d", 4, 1) }, []string{"b", "c", "d"}},
		{"a get makes it recent", func(c *lru[int]) {
			c.put("a", 1, 1)
			c.put("b", 2, 1)
			c.put("c", 3, 1)
			c.get("a")
			c.put("d", 4, 1)
		}, []string{"a", "c", "d"}},
		{"over the weight drops the oldest", func(c *lru[int]) { c.put("a", 1, 6); c.put("b", 2, 5) }, []string{"b"}},
		{"weigh re-weighs and evicts", func(c *lru[int]) {
			c.getOrAdd("a", func() int { return 1 })
			c.getOrAdd("b", func() int { return 2 })
			c.weigh("b", func(v int) bool { return v == 2 }, 11)
		}, []string{"b"}},
		{"weigh and remove leave a replaced entry alone", func(c *lru[int]) {
			c.put("a", 1, 1)
			c.weigh("a", func(v int) bool { return v == 9 }, 100)
			c.remove("a", func(v int) bool { return v == 9 })
		}, []string{"a"}},
		{"remove", func(c *lru[int]) { c.put("a", 1, 1); c.remove("a", func(int) bool { return true }) }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newLRU[int](3, 10)
			tc.ops(c)
			var got []string
			for _, k := range []string{"a", "b", "c", "d"} {
				if _, ok := c.items[k]; ok {
					got = append(got, k)
				}
			}
			if !slices.Equal(got, tc.want) || c.len() != len(tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
		})
	}
}
