package delivery

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/layout"
)

// index is one instance's view of the open deliveries: which envelopes wait for which agent. It is a
// cache of the store (rebuilt by Sync), never the only copy of anything.
type index struct {
	mu       sync.Mutex
	byKey    map[string]*posting
	byName   map[string]*posting
	byAgent  map[string]map[*posting]struct{}
	byRef    map[string][]*posting
	lastSync time.Time
}

// posting is one delivery in the index.
type posting struct {
	key, name, ref string
	notAfter       time.Time
	env            map[string]*wire.SignedEnvelope // by addressee: the envelope of its batch
}

func (x *index) init() {
	if x.byKey == nil {
		x.byKey, x.byName = map[string]*posting{}, map[string]*posting{}
		x.byAgent, x.byRef = map[string]map[*posting]struct{}{}, map[string][]*posting{}
	}
}

func (x *index) has(key string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, ok := x.byKey[key]
	return ok
}

// add indexes a stored delivery; one already known is left as it is (acknowledgements kept).
func (x *index) add(key string, d *Stored) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.init()
	if _, ok := x.byKey[key]; ok {
		return
	}
	p := &posting{key: key, name: layout.Name(key), ref: d.Ref, notAfter: d.NotAfter, env: map[string]*wire.SignedEnvelope{}}
	for i := range d.Batches {
		b := &d.Batches[i]
		for _, a := range b.Agents {
			p.env[a] = &b.Envelope
			if x.byAgent[a] == nil {
				x.byAgent[a] = map[*posting]struct{}{}
			}
			x.byAgent[a][p] = struct{}{}
		}
	}
	x.byKey[key], x.byName[p.name] = p, p
	x.byRef[p.ref] = append(x.byRef[p.ref], p)
}

// pending returns the envelopes still offered to agent, oldest delivery first, each carrying the name
// the agent acknowledges it by.
func (x *index) pending(agent string, now time.Time) []wire.SignedEnvelope {
	x.mu.Lock()
	defer x.mu.Unlock()
	var ps []*posting
	for p := range x.byAgent[agent] {
		if !now.After(p.notAfter) {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].key < ps[j].key })
	out := make([]wire.SignedEnvelope, 0, len(ps))
	for _, p := range ps {
		se := *p.env[agent]
		se.InboxKey = p.name
		out = append(out, se)
	}
	return out
}

// offer returns agent's envelopes of the deliveries under keys, in key order, whatever this instance
// remembers of acknowledgements: in function mode the agent's doorbell, not the instance, knows what
// is still open.
func (x *index) offer(agent string, keys []string) []wire.SignedEnvelope {
	x.mu.Lock()
	defer x.mu.Unlock()
	keys = slices.Clone(keys)
	slices.Sort(keys)
	out := make([]wire.SignedEnvelope, 0, len(keys))
	for _, k := range keys {
		p, ok := x.byKey[k]
		if !ok || p.env[agent] == nil {
			continue
		}
		se := *p.env[agent]
		se.InboxKey = p.name
		out = append(out, se)
	}
	return out
}

func (x *index) drop(agent string, p *posting) {
	set := x.byAgent[agent]
	delete(set, p)
	if len(set) == 0 {
		delete(x.byAgent, agent)
	}
}

// ack stops offering agent the deliveries it acknowledged.
func (x *index) ack(agent string, names []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, n := range names {
		if p, ok := x.byName[n]; ok {
			x.drop(agent, p)
		}
	}
}

// done stops offering agent every delivery of ref.
func (x *index) done(agent, ref string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range x.byRef[ref] {
		x.drop(agent, p)
	}
}

// expire forgets deliveries past their expiry: the agents would refuse them.
func (x *index) expire(now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for key, p := range x.byKey {
		if !now.After(p.notAfter) {
			continue
		}
		for a := range p.env {
			x.drop(a, p)
		}
		delete(x.byKey, key)
		delete(x.byName, p.name)
		rest := slices.DeleteFunc(x.byRef[p.ref], func(q *posting) bool { return q == p })
		if len(rest) == 0 {
			delete(x.byRef, p.ref)
		} else {
			x.byRef[p.ref] = rest
		}
	}
}

func (x *index) synced(at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if at.After(x.lastSync) {
		x.lastSync = at
	}
}

// syncedBefore reports whether the last sync started before t (or never happened).
func (x *index) syncedBefore(t time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lastSync.IsZero() || x.lastSync.Before(t)
}

// everSynced reports whether the open deliveries were listed at least once.
func (x *index) everSynced() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return !x.lastSync.IsZero()
}
