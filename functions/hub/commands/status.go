package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
)

// AgentState is a command's state on one agent.
type AgentState struct {
	Agent       string    `json:"agent"`
	Name        string    `json:"name"`
	State       string    `json:"state" enum:"pending,awaiting_approval,queued,delivered,running,succeeded,failed,timed_out,cancelled,rejected,expired,tampered" doc:"tampered: the stored result fails the hub's integrity check (edited or forged in the bucket); what the agent reported is unknown."`
	ExitCode    *int      `json:"exitCode,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	FinishedAt  time.Time `json:"finishedAt,omitzero"`
	DurationMs  int64     `json:"durationMs,omitempty"`
	OutputBytes int64     `json:"outputBytes"`
	Chunks      int       `json:"chunks" doc:"Output chunks stored so far."`
	// Output is a short output in full, from a result that carries it inline, so a client shows it with
	// no request per agent.
	Output []byte `json:"output,omitempty" doc:"The agent's whole output when its result carries it inline and it is at most 4 KiB (in GET /v1/commands/{id}); longer output: GET …/output."`
	// ChangedAt is when the store received what put the agent in this state (zero for derived states:
	// pending, awaiting approval, expired, cancelled before release).
	ChangedAt time.Time    `json:"changedAt,omitzero"`
	Result    *wire.Result `json:"-"`
}

// Status is a command and where it stands on every target.
type Status struct {
	Record
	Cancelled bool           `json:"cancelled"`
	Denied    bool           `json:"denied" doc:"An approver denied it."`
	Approvers []string       `json:"approvers,omitempty" doc:"The people whose approvals count (person:alice, oidc:…, forward:…)."`
	Awaiting  bool           `json:"awaitingApproval"`
	Stopped   bool           `json:"stopped" doc:"Stopped spreading because maxErrors was reached."`
	Done      bool           `json:"done" doc:"Every target is in a final state."`
	Counts    map[string]int `json:"counts"`
	Agents    []AgentState   `json:"agents"`

	waveKeys []string // the genuine waves released so far; the next one is len(waveKeys)+1
}

// state is agent's state in the fold ("" if it is no target).
func (st *Status) state(agent string) string {
	for _, a := range st.Agents {
		if a.Agent == agent {
			return a.State
		}
	}
	return ""
}

// State is the command's state as a whole, for lists and filters: awaiting_approval, denied,
// cancelled, done or running.
func (st *Status) State() string {
	switch {
	case st.Done && st.Denied:
		return "denied"
	case st.Done && st.Cancelled:
		return "cancelled"
	case st.Done:
		return "done"
	case st.Awaiting:
		return "awaiting_approval"
	}
	return "running"
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// FinalState reports whether an agent in state s will never change again.
func FinalState(s string) bool {
	return s == "expired" || s == "tampered" || wire.Status(s).Final()
}

// Status folds everything stored about a command into its current state, from two listings: the
// command's side (cancel, denial, approvals, waves) and its results. Waves and results are write-once
// and read once per process (a result's status is remembered by the hub that stored it), so a fold on
// a busy command costs the two listings and a read of what is new. With details it also reads every
// result for exit codes, reasons and times, concurrently.
func (s *Service) Status(ctx context.Context, id string, details bool) (*Status, error) {
	return s.fold(ctx, id, details, true)
}

// fold is Status; without results it leaves the results unread (every released target queued), which
// is the state a release answers with: reading the results that a thousand agents upload meanwhile
// would make the answer wait for them.
func (s *Service) fold(ctx context.Context, id string, details, withResults bool) (*Status, error) {
	rec, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	f := newFacts(len(rec.Targets))
	side := layout.CommandSide(id)
	var approvals, stops, waves []string
	err = store.Walk(ctx, s.Store, side, "", 0, func(o store.ObjectInfo) error {
		switch rest := strings.TrimPrefix(o.Key, side); {
		case o.Key == layout.Cancelled(id), o.Key == layout.Denied(id):
			stops = append(stops, o.Key)
		case strings.HasPrefix(rest, "approvals/"):
			approvals = append(approvals, o.Key)
		case strings.HasPrefix(rest, "waves/"):
			waves = append(waves, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A cancel or a denial counts only if the hub wrote it: read it (they are rare, so this costs a
	// read only for commands that were stopped), or a planted one would stop the command.
	for _, k := range stops {
		if _, err := s.stops.Get(ctx, s.Store, k); isNotFound(err) {
			continue
		} else if err != nil {
			return nil, err
		}
		f.cancelled = f.cancelled || k == layout.Cancelled(id)
		f.denied = f.denied || k == layout.Denied(id)
	}
	if rec.Approval != nil {
		if f.approvers, err = s.approvers(ctx, rec.Approval, approvals); err != nil {
			return nil, err
		}
	}
	// Released: named by a wave the hub wrote (a planted wave fails the integrity check), or by the
	// record itself when it releases every target at once (a wave 1 stored by an older hub says the same).
	if rec.releasesAtOnce() {
		f.wave(layout.Wave(id, 1), rec.firstWave())
		waves = nil
	}
	for _, k := range waves {
		w, err := s.waves.Get(ctx, s.Store, k)
		if isNotFound(err) {
			continue
		} else if err != nil {
			return nil, err
		}
		f.wave(k, w)
	}
	prefix := layout.ResultsOf(id)
	walk := store.Walk
	if !withResults {
		walk = func(context.Context, store.Store, string, string, int, func(store.ObjectInfo) error) error {
			return nil
		}
	}
	err = walk(ctx, s.Store, prefix, "", 0, func(o store.ObjectInfo) error {
		rest := strings.TrimPrefix(o.Key, prefix)
		agent, tail, nested := strings.Cut(rest, "/")
		switch {
		case !nested:
			a := f.agent(strings.TrimSuffix(agent, ".json"))
			a.result, a.resultAt = true, o.LastModified
		case strings.HasPrefix(tail, "output/"):
			f.agent(agent).chunks++
		case o.Key == layout.Running(id, agent):
			f.agent(agent).running = o.LastModified
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i, agentID := range rec.Targets {
		a := f.agent(agentID)
		if !a.result {
			continue
		}
		if !details {
			if a.status, a.hasStatus = s.finals.get(id, agentID); a.hasStatus {
				continue
			}
		}
		// Details asked for, or a result this process has not read yet.
		g.Go(func() error {
			res, err := s.readResult(gctx, id, agentID)
			if errors.Is(err, signed.ErrTampered) {
				f.tampered[i] = err
				return nil
			} else if isNotFound(err) {
				return nil // deleted since the listing
			} else if err != nil {
				return err
			}
			f.results[i] = res
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return s.derive(ctx, rec, f), nil
}

// facts is what a fold reads from the store about one command, and all that derive needs.
type facts struct {
	cancelled, denied bool
	approvers         []string
	waveKeys          []string             // genuine waves, in key order
	releasedAt        map[string]time.Time // when each released agent's first wave was written
	byAgent           map[string]*agentFacts
	results           []*wire.Result // by target index: results read for details or not yet known
	tampered          []error        // by target index
}

// agentFacts is what the results listing says about one agent.
type agentFacts struct {
	running   time.Time
	chunks    int
	result    bool
	resultAt  time.Time
	status    wire.Status // from the process's memory of genuine results
	hasStatus bool
}

func newFacts(targets int) *facts {
	return &facts{releasedAt: map[string]time.Time{}, byAgent: map[string]*agentFacts{},
		results: make([]*wire.Result, targets), tampered: make([]error, targets)}
}

func (f *facts) agent(a string) *agentFacts {
	if f.byAgent[a] == nil {
		f.byAgent[a] = &agentFacts{}
	}
	return f.byAgent[a]
}

// wave adds a genuine wave, stored under key.
func (f *facts) wave(key string, w *waveRecord) {
	f.waveKeys = append(f.waveKeys, key)
	for _, a := range w.Agents {
		if _, ok := f.releasedAt[a]; !ok {
			f.releasedAt[a] = w.At
		}
	}
}

// derive is the state that facts imply: it reads nothing, so a create answers from what it wrote.
func (s *Service) derive(ctx context.Context, rec *Record, f *facts) *Status {
	st := &Status{Record: *rec, Counts: map[string]int{}, Cancelled: f.cancelled, Denied: f.denied,
		Approvers: f.approvers, waveKeys: f.waveKeys}
	st.Awaiting = rec.Approval != nil && !st.Denied && !st.Cancelled && len(st.Approvers) < rec.Approval.Count
	now := time.Now()
	failures := 0
	expiresAt := rec.NotAfter.Add(s.lateGrace())
	for i, agentID := range rec.Targets {
		a := f.agent(agentID)
		as := AgentState{Agent: agentID, State: "pending", Chunks: a.chunks, Name: s.Fleet.Name(ctx, agentID)}
		at, released := f.releasedAt[agentID]
		switch res := f.results[i]; {
		case f.tampered[i] != nil:
			as.State, as.Reason, as.ChangedAt = "tampered", "the stored result failed the hub's integrity check: it was edited or forged in the bucket", a.resultAt
		case res != nil:
			as.State = string(res.Status)
			as.setResult(res)
			as.Result, as.ChangedAt = res, a.resultAt
		case a.hasStatus:
			as.State, as.ChangedAt = string(a.status), a.resultAt
		case !a.running.IsZero():
			as.State, as.ChangedAt = "running", a.running
		case released && now.After(expiresAt):
			as.State, as.Reason = "expired", "not delivered before "+rec.NotAfter.Format(time.RFC3339)
		case released:
			as.State, as.ChangedAt = "queued", at
		}
		if FinalState(as.State) && as.State != "expired" && as.State != string(wire.StatusSucceeded) {
			failures++
		}
		st.Agents = append(st.Agents, as)
	}
	st.Stopped = rec.MaxErrors > 0 && failures >= rec.MaxErrors
	st.Done = true
	for i := range st.Agents {
		as := &st.Agents[i]
		if as.State == "pending" {
			switch {
			case st.Denied:
				as.State, as.Reason = "cancelled", "approval denied"
			case st.Awaiting && !now.After(rec.NotAfter):
				as.State, as.Reason = "awaiting_approval", fmt.Sprintf("%d of %d approvals", len(st.Approvers), rec.Approval.Count)
			case st.Cancelled:
				as.State, as.Reason = "cancelled", "cancelled before release"
			case st.Stopped:
				as.State, as.Reason = "cancelled", fmt.Sprintf("not released: %d failures reached maxErrors", failures)
			case now.After(rec.NotAfter):
				as.State, as.Reason = "expired", "not released before "+rec.NotAfter.Format(time.RFC3339)
			}
		}
		if !FinalState(as.State) {
			st.Done = false
		}
		st.Counts[as.State]++
	}
	return st
}

func (s *Service) lateGrace() time.Duration {
	if s.LateGrace > 0 {
		return s.LateGrace
	}
	return 2 * time.Minute
}

// target returns a command's record if agent is one of its targets; uploads about any other command
// are refused.
func (s *Service) target(ctx context.Context, cmdID, agent string) (*Record, error) {
	rec, err := s.Get(ctx, cmdID)
	if err != nil {
		return nil, err
	}
	for _, t := range rec.Targets {
		if t == agent {
			return rec, nil
		}
	}
	return nil, domain.Denied("agent %s is not a target of command %s", agent, cmdID)
}

// approvers reads the approvals of a command and returns the people they count for: only approvals
// the hub wrote (a planted one fails the integrity check and reads as missing), one per person, none by
// the requester or from a credential the requester made.
func (s *Service) approvers(ctx context.Context, req *ApprovalRequirement, keys []string) ([]string, error) {
	var people []string
	for _, k := range keys {
		a, err := s.approvals.Get(ctx, s.Store, k) // write-once: each is read once per process
		if isNotFound(err) {
			continue
		} else if err != nil {
			return nil, err
		}
		p := domain.Principal{ID: a.By, Person: a.Person, Lineage: a.Lineage}
		who := cmp.Or(a.Person, a.By)
		if who == "" || req.requestedBy(p) || slices.Contains(people, who) {
			continue
		}
		people = append(people, who)
	}
	return people, nil
}

// lateReport refuses a report from an agent whose target already expired: the command's deadline and
// the grace after it (LateGrace) passed with nothing heard from the agent, which the fold shows as the
// final state "expired". A final state never changes, so a running report or a result arriving after
// that (an agent that was away and refused the stale envelope, or one whose clock is behind) is a
// conflict; the agent takes a 409 as settled and stops retrying. A target that reported anything in
// time (its running notice, or a result already stored) may report as late as it likes.
func (s *Service) lateReport(ctx context.Context, rec *Record, agent string) error {
	if !time.Now().After(rec.NotAfter.Add(s.lateGrace())) {
		return nil
	}
	for _, k := range []string{layout.Running(rec.ID, agent), layout.Result(rec.ID, agent)} {
		if stored, err := store.Exists(ctx, s.Store, k); err != nil || stored {
			return err
		}
	}
	s.Log.Warn("late report refused: the target expired before the agent reported", "command", rec.ID, "agent", agent, "notAfter", rec.NotAfter)
	return domain.Conflict("command %s expired on agent %s at %s before the agent reported; that state is final, so this late report is refused",
		rec.ID, agent, rec.NotAfter.UTC().Format(time.RFC3339))
}

// maxShownInline is the most inline output a command's state carries per agent.
const maxShownInline = 4 << 10

// setResult copies what a result says about its run into the agent's state.
func (as *AgentState) setResult(res *wire.Result) {
	as.ExitCode, as.Reason, as.StartedAt, as.FinishedAt, as.OutputBytes = res.ExitCode, res.Reason, res.StartedAt, res.FinishedAt, res.OutputBytes
	if !res.StartedAt.IsZero() {
		as.DurationMs = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	}
	if len(res.Output) <= maxShownInline {
		as.Output = res.Output
	}
}
