package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// plans keeps the plan versions this agent accepted and reconciles each of them in a goroutine of its
// own, so the poll loop, commands and heartbeats never wait for a unit being applied.
//
// A version reaches it two ways: as a KindPlan envelope in a poll answer, and in the hub's answer to
// GET /v1/agents/{id}/plans (at start, after a plan envelope arrived, and every plan period). Both are
// verified like any envelope (signature, addressee, time); a plan is protected against replay by its
// version, not by the replay record: an agent never goes back to an older version. A version is
// accepted only as a whole: every unit's type must be owned by an enabled integration and pass that
// integration's CheckUnit, or nothing of it is applied and the refusal is reported. An accepted
// version's signed envelope is cached in the state directory and verified again at the next start, so
// the agent keeps enforcing it without its hub and after a reboot.
type plans struct {
	a   *Agent
	log *slog.Logger

	// offerMu serialises deciding about versions (from the poll loop and from the fetch loop), so the
	// version checks, the cache file and the installed run never disagree.
	offerMu sync.Mutex

	mu        sync.Mutex
	entries   map[string]*planEntry
	releasing map[string]chan struct{} // plans dropped whose units are being released, closed when done
	rejected  map[string]bool          // payload digests of listed envelopes already rejected, reported once each

	ctx       context.Context
	wg        sync.WaitGroup
	fetchNow  chan struct{}
	reportNow chan struct{}
	// One outage tracker per activity, as for polls, heartbeats and uploads.
	fetchHealth, reportHealth *health
	notServed                 bool // the hub answered 404 to GET plans: an older hub
	// missingSince is when the hub's list first omitted a plan held (fetch loop only): a plan is
	// dropped only once lists have omitted it for a whole plan period, since a hub instance that has
	// not yet seen a plan applied on another one lists it late.
	missingSince map[string]time.Time
}

// planEntry is what the agent knows of one plan name: the version it holds (run, nil when none) and the
// last version it refused, which its status carries until a newer version is accepted.
type planEntry struct {
	run     *planRun
	refusal *planRefusal
	// idle is closed when nothing runs for this name any more (the last run ended, the units of a
	// dropped plan are released); a new run starts only then, so two never touch a unit at once.
	idle <-chan struct{}
}

// closedChan is an idle that is already over.
var closedChan = func() <-chan struct{} { c := make(chan struct{}); close(c); return c }()

type planRefusal struct {
	version int
	reason  string
}

func newPlans(a *Agent) *plans {
	return &plans{
		a:            a,
		log:          a.log.With("component", "plans"),
		entries:      map[string]*planEntry{},
		releasing:    map[string]chan struct{}{},
		rejected:     map[string]bool{},
		fetchNow:     make(chan struct{}, 1),
		reportNow:    make(chan struct{}, 1),
		fetchHealth:  &health{log: a.log.With("component", "plans")},
		reportHealth: &health{log: a.log.With("component", "plans")},

		missingSince: map[string]time.Time{},
	}
}

// start loads the cached plans, starts reconciling them, and starts the fetch and report loops. Plan
// envelopes in polls are handled only after it returned.
func (m *plans) start(ctx context.Context) {
	m.ctx = ctx
	for _, r := range m.a.set.Reconcilers() {
		if w, ok := r.(integration.Watcher); ok {
			safely("Watch", func() error { w.Watch(m.unitChanged); return nil })
		}
	}
	m.loadCache()
	m.wg.Go(func() { m.fetchLoop(ctx) })
	m.wg.Go(func() { m.reporter(ctx) })
}

// wait returns once every plan goroutine ended (ctx of start is done).
func (m *plans) wait() { m.wg.Wait() }

// loadCache verifies again every cached plan envelope with the hub keys trusted now and installs those
// that still pass, in time or not: a cached version stays enforced while the hub is away, however
// long. One that no longer passes (a key dropped since, a unit this config no longer allows) is
// removed from the cache; the hub sends the plan again.
func (m *plans) loadCache() {
	cached, err := m.a.st.Plans()
	if err != nil {
		m.log.Warn("some cached plans could not be read; the hub sends them again", "err", err)
	}
	id := m.a.identity()
	for _, c := range cached {
		env, err := c.Envelope.Verify(id.HubKeys)
		switch {
		case err != nil:
		case env.Kind != wire.KindPlan:
			err = fmt.Errorf("a %s envelope, not a plan", env.Kind)
		case !env.AddressedTo(id.AgentID):
			err = fmt.Errorf("%w (%s)", wire.ErrWrongAgent, env.Addressees())
		}
		if err == nil {
			var accepted bool
			if accepted, err = m.offer(c.Envelope, env, fromCache); err == nil && !accepted {
				err = errors.New("this agent refuses it now (see the plan's status)")
			}
		}
		if err != nil {
			m.log.Warn("cached plan refused; it is dropped from the cache and the hub sends it again", "plan", c.Name, "err", err)
			if derr := m.a.st.DropPlan(c.Name); derr != nil {
				m.log.Warn("dropping a cached plan", "plan", c.Name, "err", derr)
			}
		}
	}
}

// offerSource says where a version came from.
type offerSource int

const (
	fromPoll  offerSource = iota // a KindPlan envelope in a poll answer
	fromList                     // the hub's answer to GET plans
	fromCache                    // the state directory, at start
)

// receive handles a KindPlan envelope from a poll answer whose signature and addressee were verified.
// Its error means the version was accepted but could not be cached: the envelope is then not
// acknowledged, so the hub delivers it again.
func (m *plans) receive(se wire.SignedEnvelope, env wire.Envelope, log *slog.Logger) error {
	id := m.a.identity()
	if err := env.Check(id.AgentID, time.Now(), m.a.cfg.ClockSkew); err != nil {
		log.Warn("plan envelope refused", "envelope", env.ID, "err", err)
		return m.a.reject(wire.Rejection{EnvelopeKey: se.InboxKey, EnvelopeID: env.ID, Reason: err.Error()})
	}
	_, err := m.offer(se, env, fromPoll)
	var bad *badPlanBody
	if errors.As(err, &bad) {
		log.Warn("plan envelope refused", "envelope", env.ID, "err", err)
		return m.a.reject(wire.Rejection{EnvelopeKey: se.InboxKey, EnvelopeID: env.ID, Reason: err.Error()})
	}
	if err != nil {
		return err
	}
	select { // the hub's list may hold more (another plan, a newer version)
	case m.fetchNow <- struct{}{}:
	default:
	}
	return nil
}

// badPlanBody is a plan envelope whose body names no plan this agent could report about: it is
// rejected like a malformed envelope.
type badPlanBody struct{ err error }

func (b *badPlanBody) Error() string { return "malformed plan body: " + b.err.Error() }

// offer decides about one verified plan version and reports whether the agent holds it now. A refused
// version is recorded and reported under its plan's name and is not an error; the errors are a body
// that names no plan (badPlanBody) and a version accepted but not cached. A version from the cache is
// not written there again, and an older version in the hub's list is no refusal: a hub instance that
// has not yet seen a newer version applied on another one lists the version before it for a while.
func (m *plans) offer(se wire.SignedEnvelope, env wire.Envelope, src offerSource) (held bool, _ error) {
	var p wire.Plan
	if err := json.Unmarshal(env.Body, &p); err != nil {
		return false, &badPlanBody{err}
	}
	if !wire.ValidName(p.Name) {
		return false, &badPlanBody{fmt.Errorf("plan name %q is not a valid name", p.Name)}
	}
	m.offerMu.Lock()
	defer m.offerMu.Unlock()
	if err := p.Validate(); err != nil {
		m.refuse(p.Name, p.Version, err.Error())
		return false, nil
	}
	digest := planDigest(p)

	var cur *planRun
	m.mu.Lock()
	if e, ok := m.entries[p.Name]; ok {
		cur = e.run
	}
	m.mu.Unlock()
	if cur != nil {
		switch v := cur.plan.Version; {
		case p.Version < v && src == fromList:
			m.log.Debug("the hub's list offers an older version than the one held; it is behind", "plan", p.Name, "listed", p.Version, "held", v)
			return false, nil
		case p.Version < v:
			m.refuse(p.Name, p.Version, fmt.Sprintf("version %d is older than version %d, which this agent holds: an agent never goes back to an older version (to roll back, apply the old content as a new version)", p.Version, v))
			return false, nil
		case p.Version == v && digest != cur.digest:
			m.refuse(p.Name, p.Version, fmt.Sprintf("version %d differs from the version %d this agent holds, and a version never changes: apply the change as a new version", p.Version, v))
			return false, nil
		case p.Version == v:
			return true, nil // the version held, offered again: nothing to do
		}
	}
	recs, err := m.check(p)
	if err != nil {
		m.refuse(p.Name, p.Version, err.Error())
		return false, nil
	}
	if src != fromCache {
		if err := m.a.st.SavePlan(p.Name, se); err != nil {
			return false, fmt.Errorf("accept plan %s version %d: %w", p.Name, p.Version, err)
		}
	}
	m.install(p, digest, recs)
	m.log.Info("plan version accepted", "plan", p.Name, "version", p.Version, "mode", planMode(p), "units", len(p.Units), "envelope", env.ID)
	return true, nil
}

// check is the agent's whitelist applied to a version: every unit's type has an enabled owner, and
// that owner accepts the unit. The first refusal refuses the version.
func (m *plans) check(p wire.Plan) (map[string]integration.Reconciler, error) {
	recs := map[string]integration.Reconciler{}
	for _, u := range p.Units {
		r, err := m.a.set.Reconciler(u.Type)
		if err != nil {
			return nil, fmt.Errorf("unit %s: %w", u.Name, err)
		}
		if err := safely("CheckUnit", func() error { return r.CheckUnit(u) }); err != nil {
			return nil, fmt.Errorf("unit %s (%s): %w", u.Name, u.Type, err)
		}
		recs[u.Name] = r
	}
	return recs, nil
}

// refuse records that version of plan name was refused, and why; the version held is untouched.
func (m *plans) refuse(name string, version int, reason string) {
	reason = wire.CapReason(reason)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(name)
	if r := e.refusal; r != nil && r.version == version && r.reason == reason {
		return // offered again (every period by the hub's list): said already
	}
	e.refusal = &planRefusal{version: version, reason: reason}
	m.log.Warn("plan version refused; nothing of it is applied", "plan", name, "version", version, "reason", reason)
	m.kickReport()
}

// entry returns the entry of a plan name, creating it. m.mu is held.
func (m *plans) entry(name string) *planEntry {
	e, ok := m.entries[name]
	if !ok {
		e = &planEntry{idle: closedChan}
		if r, ok := m.releasing[name]; ok {
			e.idle = r
		}
		m.entries[name] = e
	}
	return e
}

// install makes p the version held for its name: the run of the version it replaces is cancelled at
// once (a failing version is superseded without waiting for its retries), and the new run starts
// applying once the old one has stopped.
func (m *plans) install(p wire.Plan, digest string, recs map[string]integration.Reconciler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(p.Name)
	var gone []wire.Unit // units of the previous version this one no longer has
	if prev := e.run; prev != nil {
		prev.cancel()
		for _, u := range prev.plan.Units {
			if !hasUnit(p, u) {
				gone = append(gone, u)
			}
		}
	}
	r := newPlanRun(m, p, digest, recs)
	r.after, r.release = e.idle, gone
	e.run, e.idle = r, r.done
	if e.refusal != nil && e.refusal.version <= p.Version {
		e.refusal = nil
	}
	m.kickReport()
	m.wg.Go(r.loop)
}

// hasUnit reports whether p still manages u: a unit of that name and type.
func hasUnit(p wire.Plan, u wire.Unit) bool {
	for _, v := range p.Units {
		if v.Name == u.Name && v.Type == u.Type {
			return true
		}
	}
	return false
}

// drop lets go of a plan the hub no longer assigns to this agent: its run is cancelled, its units are
// released (a supervised process is stopped; files are left as they are) and its cache file removed.
func (m *plans) drop(name string) {
	m.offerMu.Lock()
	defer m.offerMu.Unlock()
	m.mu.Lock()
	e, ok := m.entries[name]
	if !ok {
		m.mu.Unlock()
		return
	}
	delete(m.entries, name)
	run := e.run
	m.mu.Unlock()
	if err := m.a.st.DropPlan(name); err != nil {
		m.log.Warn("removing a dropped plan from the cache", "plan", name, "err", err)
	}
	if run == nil {
		m.log.Info("plan no longer assigned to this agent", "plan", name)
		return
	}
	run.cancel()
	released := make(chan struct{})
	m.mu.Lock()
	m.releasing[name] = released // a version of the same name offered meanwhile waits for the release
	m.mu.Unlock()
	m.log.Info("plan no longer assigned to this agent; releasing its units", "plan", name, "version", run.plan.Version)
	m.wg.Go(func() {
		<-run.done
		order, _ := run.plan.Order()
		releaseUnits(m.log, order, run.recs)
		m.mu.Lock()
		if m.releasing[name] == released {
			delete(m.releasing, name)
		}
		m.mu.Unlock()
		close(released)
	})
}

// releaseUnits releases units in reverse order (what requires another goes first), each within its
// deadline. A release is not bound to the agent's shutdown: a process left running by a plan nobody
// holds would be supervised by no one.
func releaseUnits(log *slog.Logger, order []wire.Unit, recs map[string]integration.Reconciler) {
	for i := len(order) - 1; i >= 0; i-- {
		u := order[i]
		rel, ok := recs[u.Name].(integration.Releaser)
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), u.Deadline())
		err := safely("Release", func() error { return rel.Release(ctx, u) })
		cancel()
		if err != nil {
			log.Warn("releasing a unit no plan manages any more failed", "unit", u.Name, "type", u.Type, "err", err)
			continue
		}
		log.Info("unit released", "unit", u.Name, "type", u.Type)
	}
}

// unitChanged is the Watchers' callback: every plan with a unit of that name reconciles at once.
func (m *plans) unitChanged(unit string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if r := e.run; r != nil && r.units[unit] != nil {
			r.poke()
		}
	}
}

func (m *plans) kickReport() {
	select {
	case m.reportNow <- struct{}{}:
	default:
	}
}

// fetchLoop asks the hub for this agent's plans at start, after a plan envelope arrived and every plan
// period.
func (m *plans) fetchLoop(ctx context.Context) {
	t := time.NewTicker(m.a.cfg.PlanPeriod)
	defer t.Stop()
	for {
		m.fetch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.fetchNow:
		}
	}
}

// fetch reads the hub's list of the newest version of every plan that names this agent and offers each
// entry. A plan the lists have omitted for a whole plan period is dropped, but only lists whose every
// entry verified count: an entry signed with a key this agent does not trust yet (a rotation under
// way) names no plan, and must not make the agent let go of one. A 404 is an older hub without plans:
// it is said once, and the plans held are kept.
func (m *plans) fetch(ctx context.Context) {
	data, _, err := m.a.hub.do(ctx, "plans", http.MethodGet, m.a.hub.agentURL("plans"), "", nil, 30*time.Second, true, false)
	if hasStatus(err, http.StatusNotFound) {
		m.fetchHealth.ok()
		if !m.notServed {
			m.notServed = true
			m.log.Info("the hub does not serve plans (an older hub); the agent keeps the plans it has and asks again every period", "period", m.a.cfg.PlanPeriod)
		}
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			m.fetchHealth.fail("plans", err)
		}
		return
	}
	m.fetchHealth.ok()
	m.notServed = false
	var resp wire.AgentPlans
	if err := json.Unmarshal(data, &resp); err != nil {
		m.log.Warn("the hub's list of plans is malformed; keeping the plans held", "err", err)
		return
	}
	listed, complete := map[string]bool{}, true
	for _, se := range resp.Plans {
		name, ok := m.fromList(se)
		if name != "" {
			listed[name] = true
		}
		complete = complete && ok
	}
	if !complete {
		return
	}
	now := time.Now()
	m.mu.Lock()
	var gone []string
	for name := range m.entries {
		if listed[name] {
			delete(m.missingSince, name)
			continue
		}
		since, ok := m.missingSince[name]
		if !ok {
			m.missingSince[name] = now
			continue
		}
		if now.Sub(since) >= m.a.cfg.PlanPeriod {
			gone = append(gone, name)
			delete(m.missingSince, name)
		}
	}
	for name := range m.missingSince {
		if _, ok := m.entries[name]; !ok {
			delete(m.missingSince, name)
		}
	}
	m.mu.Unlock()
	sort.Strings(gone)
	for _, name := range gone {
		m.drop(name)
	}
}

// fromList verifies and offers one entry of the hub's list, exactly as a polled plan envelope is
// verified. It returns the plan's name (if the entry names one) and whether the entry verified. An
// entry refused is reported as a rejection once, not every period.
func (m *plans) fromList(se wire.SignedEnvelope) (name string, ok bool) {
	id := m.a.identity()
	env, err := se.Verify(id.HubKeys)
	switch {
	case err != nil:
	case env.Kind != wire.KindPlan:
		err = fmt.Errorf("%w: a %s envelope in the list of plans", wire.ErrMalformed, env.Kind)
	default:
		err = env.Check(id.AgentID, time.Now(), m.a.cfg.ClockSkew)
	}
	if err == nil {
		_, err = m.offer(se, env, fromList)
		if err == nil || !errors.As(err, new(*badPlanBody)) {
			var p struct {
				Name string `json:"name"`
			}
			json.Unmarshal(env.Body, &p)
			if err != nil {
				m.log.Error("plan version not cached; the hub's list offers it again", "plan", p.Name, "err", err)
			}
			return p.Name, true
		}
	}
	digest := payloadDigest(se.Payload)
	m.mu.Lock()
	seen := m.rejected[digest]
	if !seen {
		if len(m.rejected) >= 256 {
			clear(m.rejected)
		}
		m.rejected[digest] = true
	}
	m.mu.Unlock()
	if !seen {
		m.log.Warn("plan envelope in the hub's list refused", "envelope", env.ID, "keyId", se.KeyID, "err", err)
		if rerr := m.a.reject(wire.Rejection{EnvelopeID: env.ID, Reason: err.Error()}); rerr != nil {
			m.log.Warn("queueing the rejection", "err", rerr)
		}
	}
	return "", false
}

// planDigest names a version's content, to tell the version held offered again from another content
// under the same number.
func planDigest(p wire.Plan) string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func planMode(p wire.Plan) string {
	if p.Mode == "" {
		return wire.ModeEnforce
	}
	return p.Mode
}

// safely runs integration code, turning a panic into an error naming the call: a broken integration
// fails its unit, never the agent.
func safely(call string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in %s: %v", call, r)
			slog.Debug("integration panic", "call", call, "stack", string(debug.Stack()))
		}
	}()
	return fn()
}
