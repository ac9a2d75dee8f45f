package workflows

import (
	"container/list"
	"sync"
)

// lru is a bounded in-memory cache, so that what the driver keeps per execution and per definition
// cannot grow with the history of the bucket: at most max entries, and at most maxWeight in total
// (the weight of a folded execution is its number of events), the least recently used dropped first.
// It is safe for concurrent use.
type lru[V any] struct {
	mu        sync.Mutex
	max       int
	maxWeight int
	order     *list.List // of *lruItem[V], most recently used first
	items     map[string]*list.Element
	weight    int
}

type lruItem[V any] struct {
	key    string
	val    V
	weight int
}

func newLRU[V any](max, maxWeight int) *lru[V] {
	return &lru[V]{max: max, maxWeight: maxWeight, order: list.New(), items: map[string]*list.Element{}}
}

// get returns the value under key and marks it used.
func (c *lru[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*lruItem[V]).val, true
	}
	var zero V
	return zero, false
}

// getOrAdd returns the value under key, adding mk() (of weight 0) when there is none.
func (c *lru[V]) getOrAdd(key string, mk func() V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*lruItem[V]).val
	}
	v := mk()
	c.items[key] = c.order.PushFront(&lruItem[V]{key: key, val: v})
	c.evict()
	return v
}

// put stores val under key with a weight, replacing what was there.
func (c *lru[V]) put(key string, val V, weight int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		it := el.Value.(*lruItem[V])
		c.weight += weight - it.weight
		it.val, it.weight = val, weight
		c.order.MoveToFront(el)
	} else {
		c.items[key] = c.order.PushFront(&lruItem[V]{key: key, val: val, weight: weight})
		c.weight += weight
	}
	c.evict()
}

// weigh sets the weight of the entry under key if it still holds val (it may have been dropped, or
// replaced, meanwhile).
func (c *lru[V]) weigh(key string, same func(V) bool, weight int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok || !same(el.Value.(*lruItem[V]).val) {
		return
	}
	it := el.Value.(*lruItem[V])
	c.weight += weight - it.weight
	it.weight = weight
	c.evict()
}

// remove drops the entry under key if it still holds val.
func (c *lru[V]) remove(key string, same func(V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok && same(el.Value.(*lruItem[V]).val) {
		c.drop(el)
	}
}

// len is how many entries are kept.
func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// evict drops the least recently used entries until the bounds hold. The newest entry is kept even
// when it alone is over maxWeight: it is the one in use.
func (c *lru[V]) evict() {
	for c.order.Len() > 1 && (c.order.Len() > c.max || c.weight > c.maxWeight) {
		c.drop(c.order.Back())
	}
}

func (c *lru[V]) drop(el *list.Element) {
	it := el.Value.(*lruItem[V])
	c.order.Remove(el)
	delete(c.items, it.key)
	c.weight -= it.weight
}
