package kernel

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// reportSettle is how long the reporter lets changes gather after it was told of one, so units that
// converge within moments of each other cost the hub one report, while a unit that takes long to apply
// is seen applying.
const reportSettle = 300 * time.Millisecond

// status is the plan's status now: the version held with every unit's state, and the last refusal.
func (m *plans) status(name string) (wire.PlanStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[name]
	if !ok {
		return wire.PlanStatus{}, false
	}
	st := wire.PlanStatus{Plan: name}
	if r := e.run; r != nil {
		st.Version = r.plan.Version
		for _, u := range r.plan.Units {
			st.Units = append(st.Units, r.units[u.Name].status)
		}
	}
	if f := e.refusal; f != nil {
		st.RefusedVersion, st.Refused = f.version, f.reason
	}
	return st, true
}

// statusKey is a status without its timestamps: a report is sent only when this changed.
func statusKey(st wire.PlanStatus) string {
	st.At = time.Time{}
	units := make([]wire.UnitStatus, len(st.Units))
	for i, u := range st.Units {
		u.ChangedAt = time.Time{}
		units[i] = u
	}
	st.Units = units
	b, _ := json.Marshal(st)
	return string(b)
}

// reporter sends each plan's status when anything but its timestamps changed since the last report
// the hub accepted (and, as nothing was accepted yet, once after start). A status is a snapshot, so
// there is no queue: the newest replaces what could not be sent, and a failed report is tried again
// with backoff. A report the hub refuses for good (it does not know the plan, or the plan does not
// name this agent) is not repeated until the status changes again.
func (m *plans) reporter(ctx context.Context) {
	sent := map[string]string{}
	refusedLogged := map[string]bool{}
	b := backoff{min: m.a.cfg.RetryMin, max: m.a.cfg.RetryMax}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.reportNow:
			if !sleep(ctx, reportSettle) {
				return
			}
		case <-retry.C:
		}
		m.mu.Lock()
		names := make([]string, 0, len(m.entries))
		for name := range m.entries {
			names = append(names, name)
		}
		m.mu.Unlock()
		sort.Strings(names)
		failed := false
		for _, name := range names {
			st, ok := m.status(name)
			key := statusKey(st)
			if !ok || sent[name] == key {
				continue
			}
			st.At = time.Now().UTC()
			err := m.a.hub.postJSON(ctx, "plan status", m.a.hub.agentURL("plans/"+url.PathEscape(name)+"/status"), st, nil, 30*time.Second, true)
			switch {
			case err == nil:
				m.reportHealth.ok()
				sent[name] = key
				delete(refusedLogged, name)
				m.log.Debug("plan status reported", "plan", name, "version", st.Version)
			case ctx.Err() != nil:
				return
			case retryable(err) && !hasStatus(err, http.StatusNotFound):
				m.reportHealth.fail("plan status", err)
				failed = true
			default:
				sent[name] = key
				if !refusedLogged[name] {
					refusedLogged[name] = true
					m.log.Warn("the hub refused the plan's status; it is sent again when it changes", "plan", name, "err", err)
				}
			}
		}
		for name := range sent {
			if _, ok := m.status(name); !ok {
				delete(sent, name) // dropped
			}
		}
		retry.Stop()
		if failed {
			retry.Reset(b.next())
		} else {
			b.reset()
		}
	}
}
