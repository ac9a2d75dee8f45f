package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// plansSource names the kernel's own resources (plans and their units) in an inventory error.
const plansSource = "plans"

// inventory collects the resources every integration.Inventory source finds, and the plans the agent
// holds with their units, every [agent] inventory interval, and uploads the whole set
// (PUT /v1/agents/{id}/resources) only when it changed since the report the hub last took, or an hour
// (wire.InventoryRefresh) after it, so the hub's "last seen" stays meaningful. It is a state, not a
// history: nothing goes to disk; while the hub cannot take it, the newest collection replaces the one
// waiting, and after a restart the agent simply collects again.
type inventory struct {
	a       *Agent
	log     *slog.Logger
	every   time.Duration
	refresh time.Duration
	health  *health
	now     func() time.Time

	seq     uint64               // the last seq handed out (Unix ms of a collection, strictly increasing)
	changed map[string]seenState // by resource key: its content and when that last changed
	errs    map[string]string    // by source: the last error logged, so a lasting failure logs once
}

// seenState is what the agent remembers of one resource between collections, to stamp ChangedAt.
type seenState struct {
	content string
	at      time.Time
}

func newInventory(a *Agent) *inventory {
	return &inventory{a: a, log: a.log.With("component", "inventory"), every: a.cfg.Inventory, refresh: wire.InventoryRefresh,
		health: &health{log: a.log}, now: time.Now, changed: map[string]seenState{}, errs: map[string]string{}}
}

// run collects at once and then every interval until ctx ends; an interval of 0 or less turns the
// inventory off. A report that could not be sent is tried again with backoff, unless a newer
// collection replaced it first.
func (v *inventory) run(ctx context.Context) {
	if v.every <= 0 {
		v.log.Info("inventory off ([agent] inventory = \"0\")")
		return
	}
	b := backoff{min: v.a.cfg.RetryMin, max: v.a.cfg.RetryMax}
	tick := time.NewTicker(v.every)
	defer tick.Stop()
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	var (
		pending    *wire.InventoryReport // collected, not taken by the hub yet
		pendingKey string                // its content
		sentKey    string                // the content of the last report the hub took (or refused for good)
		sentAt     time.Time
		notOn      bool // the hub answered 404: logged once
	)
	collect := func() {
		rep, key := v.collect(ctx)
		if key != sentKey || v.now().Sub(sentAt) >= v.refresh {
			pending, pendingKey = &rep, key
		} else {
			pending = nil // what waits is older than what the hub already has
		}
	}
	settled := func() { sentKey, sentAt, pending = pendingKey, v.now(), nil }
	collect()
	for {
		if pending != nil {
			err := v.upload(ctx, *pending)
			switch {
			case err == nil:
				v.health.ok()
				settled()
				notOn = false
				b.reset()
				v.log.Debug("inventory reported", "seq", v.seq)
			case ctx.Err() != nil:
				return
			case hasStatus(err, http.StatusNotFound):
				if !notOn {
					notOn = true
					v.log.Warn("the hub does not take inventory reports (a hub older than the route); tried again when the inventory changes or in an hour", "err", err)
				}
				settled()
			case retryable(err):
				v.health.fail("inventory", err)
				retry.Reset(b.next())
			default:
				v.log.Error("the hub refused the inventory report; it is sent again when the inventory changes", "seq", pending.Seq, "err", err)
				settled()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			retry.Stop()
			collect()
		case <-retry.C:
		}
	}
}

// upload sends one report, signed.
func (v *inventory) upload(ctx context.Context, rep wire.InventoryReport) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("inventory: encode: %w", err)
	}
	_, _, err = v.a.hub.do(ctx, "inventory", http.MethodPut, v.a.hub.agentURL("resources"), "application/json", body, 30*time.Second, true, false)
	return err
}

// collect asks every source and the plans, and returns the report with the key of its content (the
// resources and errors without the times, which change with every collection).
func (v *inventory) collect(ctx context.Context) (wire.InventoryReport, string) {
	now := v.now().UTC()
	v.seq = max(v.seq+1, uint64(now.UnixMilli()))
	rep := wire.InventoryReport{Seq: v.seq, At: now, Resources: []wire.Resource{}}
	seen := map[string]bool{}
	add := func(source string, rs []wire.Resource, err error) {
		var bad []string
		for _, r := range rs {
			if verr := r.Validate(); verr != nil {
				bad = append(bad, verr.Error())
				continue
			}
			if seen[r.Key()] {
				bad = append(bad, r.Key()+" reported twice")
				continue
			}
			if len(rep.Resources) == wire.MaxResources {
				bad = append(bad, fmt.Sprintf("more than %d resources in all", wire.MaxResources))
				break
			}
			seen[r.Key()] = true
			rep.Resources = append(rep.Resources, r)
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if len(bad) > 0 {
			if msg != "" {
				msg += "; "
			}
			msg += fmt.Sprintf("%d resources left out: %s", len(bad), bad[0])
		}
		v.noteError(source, msg)
		if msg != "" && len(rep.Errors) < wire.MaxInventoryErrors {
			rep.Errors = append(rep.Errors, wire.InventoryError{Source: source, Error: wire.CapReason(msg)})
		}
	}
	for _, f := range v.a.set.Inventory(ctx) {
		add(f.ID, f.Resources, f.Err)
	}
	add(plansSource, v.planResources(), nil)
	// A parent left out (an integration's resource refused above) would make the hub refuse all.
	kept := rep.Resources[:0]
	for _, r := range rep.Resources {
		if r.Parent != "" && !seen[r.Parent] {
			v.noteError(plansSource+"-parent", r.Key()+": parent "+r.Parent+" missing")
			continue
		}
		kept = append(kept, r)
	}
	rep.Resources = kept
	sort.Slice(rep.Resources, func(i, j int) bool { return rep.Resources[i].Key() < rep.Resources[j].Key() })
	key := v.stamp(rep.Resources, now)
	errs, _ := json.Marshal(rep.Errors)
	sum := sha256.Sum256([]byte(key + "\n" + string(errs)))
	return rep, hex.EncodeToString(sum[:])
}

// stamp sets each resource's ChangedAt from the agent's memory: the time its content was first seen
// as it is now. It returns the resources' content without those times.
func (v *inventory) stamp(rs []wire.Resource, now time.Time) string {
	next := make(map[string]seenState, len(rs))
	var all []byte
	for i := range rs {
		rs[i].ChangedAt = time.Time{}
		b, _ := json.Marshal(rs[i])
		st, ok := v.changed[rs[i].Key()]
		if !ok || st.content != string(b) {
			st = seenState{content: string(b), at: now}
		}
		next[rs[i].Key()] = st
		rs[i].ChangedAt = st.at
		all = append(append(all, b...), '\n')
	}
	v.changed = next
	return string(all)
}

// noteError logs a source's error when it starts or changes, and once when it ends, so a source
// that fails for a day writes two lines, not one per collection.
func (v *inventory) noteError(source, msg string) {
	prev := v.errs[source]
	switch {
	case msg == prev:
	case msg == "":
		v.log.Info("inventory source reads again", "source", source)
		delete(v.errs, source)
	default:
		v.log.Warn("inventory source incomplete; reported to the hub with the inventory", "source", source, "err", msg)
		v.errs[source] = msg
	}
}

// planResources is a resource per plan the agent holds and per unit of it: a unit's status from its
// state (converged ok, pending, applying and drifted degraded, failed failed), a plan's the worst of
// its units', degraded when the agent refused its newest version.
func (v *inventory) planResources() []wire.Resource {
	m := v.a.plans
	m.mu.Lock()
	names := make([]string, 0, len(m.entries))
	for name := range m.entries {
		names = append(names, name)
	}
	m.mu.Unlock()
	sort.Strings(names)
	var out []wire.Resource
	for _, name := range names {
		st, ok := m.status(name)
		if !ok {
			continue
		}
		plan := wire.Resource{Type: wire.ResourcePlan, ID: name, Status: wire.ResourceOK,
			Attributes: map[string]any{"version": st.Version, "units": len(st.Units)}}
		worst := 0
		for _, u := range st.Units {
			status, reason := unitResourceStatus(u)
			attrs := map[string]any{"unitType": u.Type, "state": u.State}
			if u.Corrections > 0 {
				attrs["corrections"] = u.Corrections
			}
			out = append(out, wire.Resource{Type: wire.ResourceUnit, ID: name + "/" + u.Unit, Name: u.Unit, Parent: plan.Key(),
				Status: status, Reason: wire.CapReason(reason), Attributes: attrs})
			if r := severity(status); r > worst {
				worst, plan.Status = r, status
				plan.Reason = "unit " + u.Unit + ": " + u.State
			}
		}
		if st.Refused != "" && worst < severity(wire.ResourceDegraded) {
			plan.Status = wire.ResourceDegraded
			plan.Reason = wire.CapReason(fmt.Sprintf("refused version %d: %s", st.RefusedVersion, st.Refused))
		}
		out = append(out, plan)
	}
	return out
}

func unitResourceStatus(u wire.UnitStatus) (status, reason string) {
	why := u.Reason
	if why == "" && u.WaitingOn != "" {
		why = "waiting on " + u.WaitingOn
	}
	switch u.State {
	case wire.UnitConverged:
		return wire.ResourceOK, ""
	case wire.UnitFailed:
		return wire.ResourceFailed, why
	case wire.UnitPending, wire.UnitApplying, wire.UnitDrifted:
		if why == "" {
			why = u.State
		}
		return wire.ResourceDegraded, why
	}
	return wire.ResourceUnknown, "state " + u.State
}

// severity orders statuses for a plan's summary of its units.
func severity(status string) int {
	switch status {
	case wire.ResourceOK:
		return 0
	case wire.ResourceStopped, wire.ResourceUnknown:
		return 1
	case wire.ResourceDegraded:
		return 2
	}
	return 3
}
