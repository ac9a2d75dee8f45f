// Package commands is the room of commands: the record of what was asked (written once), the fold that
// derives where it stands on every target from write-once markers, the waves that release it, approvals,
// cancel, and the agents' reports (started, output chunks, final results). A newcomer looking for where
// a command is created, how its state is derived and how it reaches an agent reads Create, Status and
// Advance, in that order; delivery (the stored deliveries, their index and the long-poll) is the delivery room's.
package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/events"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/policy"
)

// Fleet is what commands need of the fleet room: the agents, their catalogs and names.
type Fleet interface {
	Identities(ctx context.Context, withRetired bool) ([]fleet.Target, error)
	WithCatalogs(ctx context.Context, ts []fleet.Target) error
	Name(ctx context.Context, id string) string
}

// Decider asks the policy; a denial is a domain error naming the rules (the access room).
type Decider interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
}

// Deliverer stores one signed envelope for many agents and wakes their polls (the delivery room).
// Offer wakes the polls first and returns land, which stores it.
type Deliverer interface {
	Post(ctx context.Context, id, ref string, agents []string, env wire.Envelope) (string, error)
	Offer(ctx context.Context, id, ref string, agents []string, env wire.Envelope) (string, func(context.Context) error, error)
	Done(agent, ref string)
}

// Service keeps commands.
type Service struct {
	Store    store.Store
	Log      *slog.Logger
	Trail    *trail.Recorder
	Bus      *events.Bus
	Fleet    Fleet
	Policy   Decider
	Delivery Deliverer
	// Keys are the hub's signing keys: a delivery is recorded only for an envelope they signed.
	Keys *hubkey.Keys

	// LateGrace is how long after a command's deadline a target released to an agent still counts as
	// queued (default 2 min): the agent may have accepted the envelope just before the deadline, and
	// its first report (a result, or the running notice a second in) takes a moment to arrive. Only
	// then is a silent target expired, and a report arriving later refused.
	LateGrace time.Duration

	records  store.Once[Record]
	waves    store.Once[waveRecord]
	released pairs[struct{}]
	// Approvals, cancels and denials are write-once: a fold reads each once per process (a forged one
	// is refused and not kept).
	approvals store.Once[approvalRecord]
	stops     store.Once[json.RawMessage]
	finals    pairs[wire.Status]
	kept      pairs[*wire.Result]
}

// Record is what was asked, of whom and by whom; written once when the command is accepted.
type Record struct {
	ID             string            `json:"id"`
	Command        string            `json:"command"`
	Params         map[string]string `json:"params,omitempty"`
	TargetExprs    []string          `json:"targetExprs"`
	Targets        []string          `json:"targets" doc:"Agent ids, in the order waves release them."`
	TimeoutSeconds int               `json:"timeoutSeconds"`
	MaxConcurrency int               `json:"maxConcurrency,omitempty" doc:"At most this many agents run it at once (0: all)."`
	MaxErrors      int               `json:"maxErrors,omitempty" doc:"Stop releasing after this many failures (0: never stop)."`
	Issuer         string            `json:"issuer"`
	CreatedAt      time.Time         `json:"createdAt"`
	NotAfter       time.Time         `json:"notAfter" doc:"Agents that have not received it by then never run it (expired)."`
	// Approval is set when the policy requires approvals before anything is released.
	Approval *ApprovalRequirement `json:"approval,omitempty"`
	// Decision is what the policy said, for the record.
	Rules []string `json:"rules,omitempty"`
	// Execution, Step and Attempt link a command issued by a workflow back to it.
	Execution string `json:"execution,omitempty"`
	Step      string `json:"step,omitempty"`
	Attempt   int    `json:"attempt,omitempty"`
}

// ApprovalRequirement says how many distinct approvers from which groups must agree; the requester
// never counts.
type ApprovalRequirement struct {
	Count     int      `json:"count"`
	Groups    []string `json:"groups"`
	Reason    string   `json:"reason,omitempty"`
	Requester string   `json:"requester"`
	// RequesterPerson is the requester as a person (domain.Principal.Person): neither they nor a
	// credential they made counts as an approver.
	RequesterPerson string `json:"requesterPerson,omitempty"`
}

// requestedBy reports whether p is the requester, or holds a credential the requester made.
func (a *ApprovalRequirement) requestedBy(p domain.Principal) bool {
	if a.RequesterPerson == "" {
		return p.ID == a.Requester
	}
	return p.ActsFor(a.RequesterPerson)
}

// Spec is what to run, where, and how carefully.
type Spec struct {
	Command          string            `json:"command" minLength:"1" doc:"A command from the targets' catalogs."`
	Targets          []string          `json:"targets" minItems:"1" doc:"all, agent ids, agent names, or label selectors k=v,k2=v2 (union)."`
	Params           map[string]string `json:"params,omitempty"`
	TimeoutSeconds   int               `json:"timeoutSeconds,omitempty" minimum:"0" maximum:"86400" doc:"Run time limit on each agent (default: the command's own, else 300)."`
	MaxConcurrency   int               `json:"maxConcurrency,omitempty" minimum:"0"`
	MaxErrors        int               `json:"maxErrors,omitempty" minimum:"0"`
	ExpiresInSeconds int               `json:"expiresInSeconds,omitempty" minimum:"0" maximum:"604800" doc:"How long agents may take to pick it up (default 3600)."`
}

// Request is a command to create: from the API, or issued by a workflow step with a deterministic id
// (so two hubs driving one execution create it once).
type Request struct {
	Spec      Spec
	ID        string
	Execution string
	Step      string
	Attempt   int
}

const defaultTimeout = 300

// Create validates, decides and records a command, then releases its first wave. A refusal is a domain
// error saying why; nothing is enqueued then.
func (s *Service) Create(ctx context.Context, req Request) (*Status, error) {
	b := req.Spec
	all, err := s.Fleet.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	targets, err := fleet.Select(all, b.Targets)
	if err != nil {
		return nil, err
	}
	if err := s.Fleet.WithCatalogs(ctx, targets); err != nil {
		return nil, err
	}
	// Every target must know the command and accept the parameters, or nothing is enqueued.
	var problems []string
	timeout := b.TimeoutSeconds
	for _, t := range targets {
		spec, ok := fleet.FindSpec(fleet.CatalogOf(t.Ident, t.HB), b.Command)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s (%s): no command %q in its catalog", t.Ident.Name, t.Ident.ID, b.Command))
			continue
		}
		if err := spec.ValidateParams(b.Params); err != nil {
			problems = append(problems, fmt.Sprintf("%s (%s): %v", t.Ident.Name, t.Ident.ID, err))
		}
		if timeout == 0 && spec.DefaultTimeoutSeconds > 0 {
			timeout = spec.DefaultTimeoutSeconds
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("… and %d more", len(problems)-10))
		}
		return nil, domain.Invalid("refused, nothing was enqueued: %s", strings.Join(problems, "; "))
	}
	if timeout == 0 {
		timeout = defaultTimeout
	}
	pin := policy.Input{Action: "create-command", Command: b.Command, Params: b.Params}
	for _, t := range targets {
		pin.Targets = append(pin.Targets, policy.Target{ID: t.Ident.ID, Name: t.Ident.Name, Labels: t.Labels})
		if spec, ok := fleet.FindSpec(fleet.CatalogOf(t.Ident, t.HB), b.Command); ok && spec.Dangerous {
			pin.Dangerous = true
		}
	}
	decision, err := s.Policy.Decide(ctx, pin)
	if err != nil {
		return nil, err
	}
	expires := b.ExpiresInSeconds
	if expires == 0 {
		expires = 3600
	}
	now := time.Now().UTC()
	rec := Record{
		ID: req.ID, Command: b.Command, Params: b.Params, TargetExprs: b.Targets,
		TimeoutSeconds: timeout, MaxConcurrency: b.MaxConcurrency, MaxErrors: b.MaxErrors,
		Issuer: domain.PrincipalFrom(ctx).ID, CreatedAt: now, NotAfter: now.Add(time.Duration(expires) * time.Second),
		Execution: req.Execution, Step: req.Step, Attempt: req.Attempt,
	}
	if rec.ID == "" {
		rec.ID = uuid.Must(uuid.NewV7()).String()
	}
	for _, t := range targets {
		rec.Targets = append(rec.Targets, t.Ident.ID)
	}
	rec.Rules = decision.Rules
	if a := decision.Approvals; a != nil && a.Count > 0 {
		rec.Approval = &ApprovalRequirement{Count: a.Count, Groups: a.Groups, Reason: a.Reason, Requester: rec.Issuer,
			RequesterPerson: domain.PrincipalFrom(ctx).Person}
	}
	// The audit record is written beside the command's record, not after it: no command stands without
	// its audit record, and the agents get their envelope one store write sooner (before the results
	// they send queue the audit write behind them). A create that then fails, or finds the command
	// created by another hub, says so in a second record. The answer waits for the audit record; the
	// release's delivery lands in the store after the answer (advanceFrom).
	detail := map[string]any{"command": rec.Command, "commandId": rec.ID, "params": rec.Params, "execution": rec.Execution}
	audited := make(chan struct{})
	go func() {
		defer close(audited)
		s.Trail.Record(ctx, "create-command", rec.Targets, &decision, "ok", detail)
	}()
	created, intent, err := s.record(ctx, &rec)
	if err != nil || !created {
		<-audited
		outcome := "not created: another hub created this command first"
		if err != nil {
			outcome = "failed: " + err.Error()
		}
		s.Trail.Record(ctx, "create-command", rec.Targets, &decision, outcome, detail)
	}
	if err != nil {
		return nil, err
	}
	if !created { // a deterministic id another hub already created: that record is the command
		s.settle(ctx, intent)
		return s.Status(ctx, rec.ID, false)
	}
	stored := rec
	s.records.Put(layout.Command(rec.ID), &stored)
	s.Log.Info("command accepted", "command", rec.ID, "name", rec.Command, "targets", len(rec.Targets), "issuer", rec.Issuer, "approvals_required", rec.Approval != nil)
	w, err := s.advanceFrom(ctx, fresh(&rec), intent, true)
	if err != nil {
		// The command is recorded and its release written down: the tick finishes it.
		s.Log.Error("release command; the tick retries it", "command", rec.ID, "err", err)
	}
	<-audited
	if err != nil || w != nil && !w.first {
		return s.fold(ctx, rec.ID, false, false) // another hub released some of it, or the store failed
	}
	// The answer is what the create wrote: folding now would list the command behind the results of
	// the agents it just woke.
	f := newFacts(len(rec.Targets))
	if w != nil {
		f.wave(w.key, &w.rec)
	}
	return s.derive(ctx, &rec, f), nil
}

// record writes a command's record and, beside it, the release written down for the tick (release.go),
// at the same time: a create costs one store round trip before its release, not two. A record must
// never stand without its release, or a create interrupted after it would never be released: if the
// release's write fails it is tried once more, and if that fails too the record is deleted again (no
// one has seen its id yet) and the create refused. A release without its record is harmless: the tick
// finds no command and drops it.
func (s *Service) record(ctx context.Context, rec *Record) (created bool, intent string, err error) {
	var ierr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		intent, ierr = s.intend(ctx, rec.ID)
	}()
	created, err = store.CreateJSON(ctx, s.Store, layout.Command(rec.ID), rec)
	<-done
	switch {
	case err != nil:
		if ierr == nil {
			s.settle(ctx, intent)
		}
		return false, "", fmt.Errorf("record command %s: %w", rec.ID, err)
	case ierr == nil:
		return created, intent, nil
	case !created: // another hub's record, with its own release
		return false, "", ierr
	}
	if intent, ierr = s.intend(ctx, rec.ID); ierr == nil {
		return true, intent, nil
	}
	if derr := s.Store.Delete(context.WithoutCancel(ctx), layout.Command(rec.ID)); derr != nil {
		s.Log.Error("a command recorded without its release could not be deleted; it stays pending until it expires", "command", rec.ID, "err", derr)
	}
	return false, "", ierr
}

// Get returns a command's record, read once per process (it never changes).
func (s *Service) Get(ctx context.Context, id string) (*Record, error) {
	if !layout.ValidID(id) {
		return nil, domain.NotFound("no command %q", id)
	}
	rec, err := s.records.Get(ctx, s.Store, layout.Command(id))
	if err != nil {
		if isNotFound(err) {
			return nil, domain.NotFound("no command %s", id)
		}
		return nil, err
	}
	return rec, nil
}

// Advance releases the next wave of a command: as many unreleased targets as maxConcurrency allows,
// unless it was cancelled, denied, is awaiting approval or stopped by maxErrors. A wave is written
// create-only under its number, so two hubs advancing the same command at once collide and the loser
// folds again (release). The release is written down before its wave and deleted after its delivery,
// so one interrupted in between is finished by the tick (release.go).
func (s *Service) Advance(ctx context.Context, id string) error { return s.advance(ctx, id, "") }

// advance is Advance under a release already written down by the caller (intent, "" for none), which
// it deletes once nothing of the release is left to do.
func (s *Service) advance(ctx context.Context, id, intent string) error {
	st, err := s.Status(ctx, id, false)
	if err != nil {
		return err
	}
	_, err = s.advanceFrom(ctx, st, intent, false)
	return err
}

// fresh is the state of a command just recorded: nothing released, nothing reported, no approval
// given. A create releases from it without folding what it knows is not there.
func fresh(rec *Record) *Status {
	st := &Status{Record: *rec, Counts: map[string]int{}}
	st.Awaiting = rec.Approval != nil && rec.Approval.Count > 0
	for _, a := range rec.Targets {
		st.Agents = append(st.Agents, AgentState{Agent: a, State: "pending"})
	}
	return st
}

// advanceFrom is advance from a fold already made. With landLater it returns once the wave is
// written and its agents' polls here have the envelope, and stores the delivery (then deletes the
// release record) outside the request: a create answers in milliseconds, not after the store has
// taken the results of the agents it just woke. A delivery that fails to land keeps its release
// record, so the tick posts it again; until then this instance offers it. It returns the wave it
// wrote (nil if none).
func (s *Service) advanceFrom(ctx context.Context, st *Status, intent string, landLater bool) (*wave, error) {
	id := st.ID
	var err error
	if st.Cancelled || st.Stopped || st.Denied || st.Awaiting || time.Now().After(st.NotAfter) {
		s.settle(ctx, intent)
		return nil, nil
	}
	// A target counts as finished, freeing its slot of maxConcurrency or counting towards maxErrors,
	// only on a result the hub stored: a planted result object frees nothing.
	inflight, failures := 0, 0
	var pending []string
	for _, a := range st.Agents {
		switch {
		case a.State == "pending":
			pending = append(pending, a.Agent)
		case a.State == "expired":
		case FinalState(a.State) && (st.MaxConcurrency > 0 || st.MaxErrors > 0):
			status, ok, err := s.genuineFinal(ctx, id, a.Agent)
			if err != nil {
				return nil, err
			}
			if !ok {
				inflight++
			} else if status != wire.StatusSucceeded {
				failures++
			}
		case !FinalState(a.State):
			inflight++
		}
	}
	if st.MaxErrors > 0 && failures >= st.MaxErrors {
		s.settle(ctx, intent)
		return nil, nil
	}
	n := len(pending)
	if st.MaxConcurrency > 0 {
		n = min(n, st.MaxConcurrency-inflight)
	}
	if n <= 0 {
		s.settle(ctx, intent)
		return nil, nil
	}
	if intent == "" {
		if intent, err = s.intend(ctx, id); err != nil {
			return nil, err
		}
	}
	w, err := s.release(ctx, st, pending[:n])
	if err != nil {
		return nil, err
	}
	finish := func(ctx context.Context) error {
		if w != nil {
			if err := w.land(ctx); err != nil {
				return fmt.Errorf("deliver command %s: %w", id, err)
			}
		}
		s.settle(ctx, intent)
		return nil
	}
	if !landLater {
		return w, finish(ctx)
	}
	s.Bus.Later(ctx, func(ctx context.Context) {
		if err := finish(ctx); err != nil {
			s.Log.Error("store a released command's delivery; the tick posts it again", "command", id, "err", err)
		}
	})
	return w, nil
}

// wave is one release as it was written.
type wave struct {
	key  string
	rec  waveRecord
	land func(context.Context) error // stores the wave's delivery
	// first: written at the first try, so the fold it was released from holds every other wave.
	first bool
}

// waveRecord says which agents one release of a command reached, and which delivery carries their
// envelope.
type waveRecord struct {
	Agents []string `json:"agents"`
	// Delivery is the id of the delivery carrying the wave's envelope (its key: layout.Delivery with
	// the command's deadline).
	Delivery string    `json:"delivery"`
	At       time.Time `json:"at"`
}

// release writes the next wave of a command and offers its one envelope to all the wave's agents; the
// returned wave's land stores it (no wave when another hub released them all): two store writes
// however many agents the wave holds. The wave's number makes its key: a second hub
// releasing the same command at the same moment finds the key taken, folds again and releases what
// is still due (nothing, most of the time).
func (s *Service) release(ctx context.Context, st *Status, agents []string) (*wave, error) {
	var err error
	for try := range 3 {
		seq := len(st.waveKeys) + 1
		w := waveRecord{Agents: agents, Delivery: waveDelivery(st.ID, seq), At: time.Now().UTC()}
		created := true
		if seq == 1 && st.releasesAtOnce() {
			w = *st.firstWave() // the record says it already
		} else if created, err = store.CreateJSON(ctx, s.Store, layout.Wave(st.ID, seq), w); err != nil {
			return nil, fmt.Errorf("release wave %d of command %s: %w", seq, st.ID, err)
		}
		if !created { // another hub released this wave: see what is left
			next, err := s.Status(ctx, st.ID, false)
			if err != nil {
				return nil, err
			}
			agents = slices.DeleteFunc(agents, func(a string) bool { return next.state(a) != "pending" })
			if len(agents) == 0 {
				return nil, nil
			}
			st = next
			continue
		}
		for _, a := range agents {
			s.released.add(st.ID, a, struct{}{})
		}
		_, land, err := s.Delivery.Offer(ctx, w.Delivery, st.ID, agents, envelope(st))
		if err != nil {
			return nil, fmt.Errorf("deliver wave %d of command %s: %w", seq, st.ID, err)
		}
		s.changed(ctx, st.ID)
		return &wave{key: layout.Wave(st.ID, seq), rec: w, land: land, first: try == 0}, nil
	}
	return nil, fmt.Errorf("release command %s: other hubs kept releasing it at the same time", st.ID)
}

// releasesAtOnce reports whether a command releases every target the moment it is recorded: no
// approval to wait for and no maxConcurrency below its targets. Such a record implies its only wave
// (firstWave), so none is written: one store write fewer on the way to the agents, for most commands.
func (r *Record) releasesAtOnce() bool {
	return r.Approval == nil && (r.MaxConcurrency <= 0 || r.MaxConcurrency >= len(r.Targets))
}

// firstWave is the wave a command that releases at once implies, stored under no key of its own
// (layout.Wave(id, 1) names it in folds).
func (r *Record) firstWave() *waveRecord {
	return &waveRecord{Agents: r.Targets, Delivery: waveDelivery(r.ID, 1), At: r.CreatedAt}
}

// waveDelivery is the delivery id of a command's wave.
func waveDelivery(cmd string, seq int) string { return fmt.Sprintf("%s-w%d", cmd, seq) }

// changed tells live views that something about a command was stored.
func (s *Service) changed(ctx context.Context, id string) {
	s.Bus.Commands.Publish(ctx, events.CommandChanged{Command: id})
}

// Cancel stops what has not finished: unreleased targets are never released, running ones get a
// signed cancel envelope.
func (s *Service) Cancel(ctx context.Context, id string) (*Status, error) {
	st, err := s.Status(ctx, id, false)
	if err != nil {
		return nil, err
	}
	if _, err := store.CreateJSON(ctx, s.Store, layout.Cancelled(id), map[string]any{"by": domain.PrincipalFrom(ctx).ID, "at": time.Now().UTC()}); err != nil {
		return nil, err
	}
	var notify []string
	for _, a := range st.Agents {
		if !FinalState(a.State) && a.State != "pending" {
			notify = append(notify, a.Agent)
		}
	}
	body, _ := json.Marshal(wire.Cancel{CommandID: id})
	env := wire.Envelope{ID: id + "-cancel", IssuedAt: time.Now().UTC(), NotAfter: st.NotAfter.Add(time.Duration(st.TimeoutSeconds) * time.Second),
		Issuer: domain.PrincipalFrom(ctx).ID, Kind: wire.KindCancel, Body: body}
	if _, err := s.Delivery.Post(ctx, id+"-cancel", id, notify, env); err != nil {
		return nil, err
	}
	s.Log.Info("command cancelled", "command", id, "by", domain.PrincipalFrom(ctx).ID, "agents", len(notify))
	s.Trail.Record(ctx, "cancel-command", st.Targets, nil, "ok", map[string]any{"commandId": id})
	s.changed(ctx, id)
	return s.Status(ctx, id, true)
}
