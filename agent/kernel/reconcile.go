package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

const (
	// retryMin and retryMax bound the backoff of a failed unit: 1 s, doubling, at most 5 min.
	retryMin = time.Second
	retryMax = 5 * time.Minute
	// stableFor is how long a unit must stay converged before a drift of it is repaired at once again:
	// a process that exits right after every start is restarted with the failed units' backoff, not in
	// a tight loop.
	stableFor = time.Minute
)

// planRun reconciles one version of one plan until a newer version supersedes it, the plan is dropped
// or the agent stops: on start, every plan period, and at once when a Watcher says a unit changed.
type planRun struct {
	m      *plans
	log    *slog.Logger
	plan   wire.Plan
	digest string
	order  []wire.Unit
	recs   map[string]integration.Reconciler // by unit name

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}

	after   <-chan struct{} // the previous run for this plan name has stopped
	release []wire.Unit     // units of the previous version this one does not have

	// units are read by the reporter and written by this run, under m.mu; their keys never change.
	units map[string]*unitRun
}

// unitRun is one unit's state under this version: its status, and what the retries need.
type unitRun struct {
	status wire.UnitStatus
	// converged says the unit was converged under this version before, so repairing it is a
	// correction; stableSince is when it last became converged.
	converged   bool
	stableSince time.Time
	// streak counts the failures (and quick relapses) in a row; notBefore is when the next attempt
	// may be made.
	streak    int
	notBefore time.Time
	// restartDue is set when a unit that notifies this one changed, until the restart succeeded.
	restartDue bool
}

func newPlanRun(m *plans, p wire.Plan, digest string, recs map[string]integration.Reconciler) *planRun {
	ctx, cancel := context.WithCancel(m.ctx)
	order, _ := p.Order() // Validate passed, so there is no cycle
	r := &planRun{
		m: m, log: m.log.With("plan", p.Name, "version", p.Version), plan: p, digest: digest, order: order, recs: recs,
		ctx: ctx, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1),
		units: map[string]*unitRun{},
	}
	now := time.Now().UTC()
	for _, u := range p.Units {
		r.units[u.Name] = &unitRun{status: wire.UnitStatus{Unit: u.Name, Type: u.Type, State: wire.UnitPending, Desired: u.Digest(), ChangedAt: now}}
	}
	return r
}

// poke asks the run to reconcile at once.
func (r *planRun) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *planRun) loop() {
	defer close(r.done)
	defer r.cancel()
	waited := time.Now()
	select {
	case <-r.after:
	case <-time.After(10 * time.Second):
		r.log.Warn("the previous version of the plan is still stopping; waiting for it before applying this one")
		<-r.after
	}
	if d := time.Since(waited); d > time.Second {
		r.log.Info("the previous version stopped", "after", d.Round(time.Millisecond))
	}
	if len(r.release) > 0 && r.ctx.Err() == nil {
		releaseUnits(r.log, r.release, r.prevRecs())
	}
	t := time.NewTicker(r.m.a.cfg.PlanPeriod)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		next := r.round()
		retry.Stop()
		var due <-chan time.Time
		if !next.IsZero() {
			retry.Reset(time.Until(next))
			due = retry.C
		}
		select {
		case <-r.ctx.Done():
			return
		case <-r.kick:
		case <-t.C:
		case <-due:
		}
	}
}

// prevRecs finds the owners of the units to release: the integrations are the same for the whole life
// of the agent, so the type decides.
func (r *planRun) prevRecs() map[string]integration.Reconciler {
	recs := map[string]integration.Reconciler{}
	for _, u := range r.release {
		if rec, err := r.m.a.set.Reconciler(u.Type); err == nil {
			recs[u.Name] = rec
		}
	}
	return recs
}

// round reconciles every unit once, in the plan's order, then restarts what a change notified and was
// passed already. It returns when the earliest retry is due (zero: none).
func (r *planRun) round() time.Time {
	for _, u := range r.order {
		if r.ctx.Err() != nil {
			return time.Time{}
		}
		r.unit(u)
	}
	for _, u := range r.order {
		if r.ctx.Err() != nil {
			return time.Time{}
		}
		if ur := r.units[u.Name]; ur.restartDue && r.state(u.Name) == wire.UnitConverged && time.Now().After(ur.notBefore) {
			r.unit(u)
		}
	}
	var next time.Time
	for _, ur := range r.units {
		if !ur.notBefore.IsZero() && ur.notBefore.After(time.Now()) && (next.IsZero() || ur.notBefore.Before(next)) {
			if ur.status.State != wire.UnitConverged || ur.restartDue {
				next = ur.notBefore
			}
		}
	}
	return next
}

func (r *planRun) state(unit string) string {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	return r.units[unit].status.State
}

// set changes a unit's status; ChangedAt moves only when something but time changed, and the reporter
// is told.
func (r *planRun) set(unit string, change func(*wire.UnitStatus)) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	ur := r.units[unit]
	next := ur.status
	change(&next)
	// What an integration says is stored by the hub: bounded like every reason an agent reports.
	next.Reason, next.WaitingOn, next.Observed = wire.CapReason(next.Reason), wire.CapReason(next.WaitingOn), wire.CapReason(next.Observed)
	next.ChangedAt = ur.status.ChangedAt
	if next == ur.status {
		return
	}
	next.ChangedAt = time.Now().UTC()
	ur.status = next
	r.m.kickReport()
}

// unit reconciles one unit: wait for what it requires, observe it, and under enforce apply it when it
// is not in its state (with backoff after a failure), then restart what it notifies.
func (r *planRun) unit(u wire.Unit) {
	ur := r.units[u.Name]
	log := r.log.With("unit", u.Name, "type", u.Type)
	for _, dep := range u.Requires {
		if r.state(dep) != wire.UnitConverged {
			r.set(u.Name, func(s *wire.UnitStatus) {
				s.State, s.Reason, s.WaitingOn = wire.UnitPending, "", "unit "+dep
			})
			return
		}
	}
	rec := r.recs[u.Name]
	obs, err := r.observe(rec, u)
	if r.ctx.Err() != nil {
		return
	}
	if err != nil {
		r.failed(u, ur, "observe: "+err.Error(), log)
		return
	}
	if obs.InState {
		if ur.restartDue {
			r.restart(u, ur, rec, log)
			return
		}
		r.convergedNow(u, ur, obs, false, "", log)
		return
	}
	if planMode(r.plan) == wire.ModeReport {
		if r.state(u.Name) != wire.UnitDrifted {
			log.Warn("unit drifted; the plan reports and does not repair", "detail", obs.Detail)
		}
		r.set(u.Name, func(s *wire.UnitStatus) {
			s.State, s.Observed, s.Reason, s.WaitingOn = wire.UnitDrifted, obs.Digest, detailOr(obs.Detail, "not in its desired state"), ""
		})
		return
	}

	now := time.Now()
	if ur.converged && ur.status.State == wire.UnitConverged {
		// It was in its state and left it: drift. Repaired at once, unless it keeps relapsing: the
		// second quick relapse waits a second, the next two, and so on.
		if now.Sub(ur.stableSince) < stableFor {
			ur.streak++
			ur.notBefore = ur.stableSince.Add(backoffAfter(ur.streak - 1))
		} else {
			ur.streak, ur.notBefore = 0, time.Time{}
		}
		log.Warn("unit drifted; repairing it", "detail", obs.Detail)
	}
	if now.Before(ur.notBefore) {
		r.set(u.Name, func(s *wire.UnitStatus) {
			if s.State != wire.UnitFailed {
				s.State, s.Reason = wire.UnitFailed, detailOr(obs.Detail, "not in its desired state")+" (it keeps leaving its state; retrying with backoff)"
			}
			s.Observed, s.WaitingOn = obs.Digest, ""
		})
		return
	}
	r.set(u.Name, func(s *wire.UnitStatus) {
		s.State, s.Observed, s.Reason, s.WaitingOn = wire.UnitApplying, obs.Digest, obs.Detail, obs.WaitingOn
	})
	ctx, cancel := context.WithTimeout(r.ctx, u.Deadline())
	err = safely("Apply", func() error { return rec.Apply(ctx, u) })
	deadlineHit := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	if r.ctx.Err() != nil {
		return // superseded or shutting down: the next run observes afresh
	}
	if err == nil {
		if obs, err = r.observe(rec, u); err == nil && !obs.InState {
			err = errors.New(detailOr(obs.Detail, "still not in its desired state after it was applied"))
		}
	}
	if err != nil {
		reason := err.Error()
		if deadlineHit {
			reason = fmt.Sprintf("did not reach its state within %s: %s", fmtDuration(u.Deadline()), reason)
		}
		r.failed(u, ur, reason, log)
		return
	}
	ur.restartDue = false // applied just now: it runs what it must already
	r.convergedNow(u, ur, obs, true, "", log)
	for _, target := range u.Notify {
		if _, ok := r.recs[target].(integration.Restarter); ok {
			r.units[target].restartDue = true
		}
	}
}

// restart restarts a unit that a changed unit notifies, then observes it.
func (r *planRun) restart(u wire.Unit, ur *unitRun, rec integration.Reconciler, log *slog.Logger) {
	rs, ok := rec.(integration.Restarter)
	if !ok {
		ur.restartDue = false
		return
	}
	if time.Now().Before(ur.notBefore) {
		return
	}
	r.set(u.Name, func(s *wire.UnitStatus) {
		s.State, s.Reason, s.WaitingOn = wire.UnitApplying, "restarting: a unit it depends on changed", ""
	})
	ctx, cancel := context.WithTimeout(r.ctx, u.Deadline())
	err := safely("Restart", func() error { return rs.Restart(ctx, u) })
	deadlineHit := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	if r.ctx.Err() != nil {
		return
	}
	var obs integration.Observation
	if err == nil {
		if obs, err = r.observe(rec, u); err == nil && !obs.InState {
			err = errors.New(detailOr(obs.Detail, "not in its desired state after the restart"))
		}
	}
	if err != nil {
		reason := "restart after a unit it depends on changed: " + err.Error()
		if deadlineHit {
			reason = fmt.Sprintf("did not restart within %s: %s", fmtDuration(u.Deadline()), err)
		}
		r.failed(u, ur, reason, log)
		return
	}
	ur.restartDue = false
	r.convergedNow(u, ur, obs, false, "unit restarted: a unit it depends on changed", log)
}

func (r *planRun) observe(rec integration.Reconciler, u wire.Unit) (integration.Observation, error) {
	ctx, cancel := context.WithTimeout(r.ctx, u.Deadline())
	defer cancel()
	var obs integration.Observation
	err := safely("Observe", func() error {
		var err error
		obs, err = rec.Observe(ctx, u)
		return err
	})
	return obs, err
}

// convergedNow records a unit in its state; applied says the agent just brought it there, which is a
// correction if it had been converged under this version before. note, if set, is what the log says.
func (r *planRun) convergedNow(u wire.Unit, ur *unitRun, obs integration.Observation, applied bool, note string, log *slog.Logger) {
	correction := applied && ur.converged
	if r.state(u.Name) != wire.UnitConverged {
		ur.stableSince = time.Now()
		switch {
		case note != "":
			log.Info(note)
		case correction:
			log.Info("unit repaired", "corrections", ur.status.Corrections+1)
		case applied:
			log.Info("unit applied and converged")
		default:
			log.Info("unit converged")
		}
	}
	if !applied || ur.streak == 0 {
		ur.notBefore = time.Time{}
	}
	ur.converged = true
	r.set(u.Name, func(s *wire.UnitStatus) {
		s.State, s.Observed, s.Reason, s.WaitingOn = wire.UnitConverged, obs.Digest, "", ""
		if correction {
			s.Corrections++
		}
	})
}

// failed records a failed attempt and schedules the next one with backoff.
func (r *planRun) failed(u wire.Unit, ur *unitRun, reason string, log *slog.Logger) {
	ur.streak++
	wait := backoffAfter(ur.streak)
	ur.notBefore = time.Now().Add(wait)
	log.Warn("unit failed; retrying with backoff", "reason", reason, "retryIn", wait, "attempts", ur.streak)
	r.set(u.Name, func(s *wire.UnitStatus) {
		s.State, s.Reason, s.WaitingOn = wire.UnitFailed, reason, ""
	})
}

// backoffAfter is the wait after n failures in a row: 1 s, doubling, at most 5 min.
func backoffAfter(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := retryMin
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

func detailOr(detail, fallback string) string {
	if strings.TrimSpace(detail) == "" {
		return fallback
	}
	return detail
}
