package plans

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/policy"
)

// When the policy allows an operation on a plan only after others approve it (an apply to env=prod
// agents, a promotion), the operation is not refused: it is stored as a proposal, written once
// (layout.PlanProposal), with what it would do and who asked. People in the groups the policy names,
// other than the requester, approve or deny it; the approval that makes the count does the operation
// as it was proposed, decided by the policy's answer at the time of the proposal, unless the plan has
// changed since (a newer version: the proposal is stale and must be made again).

// Operations a proposal may carry.
const (
	OpApply    = "apply"
	OpDelete   = "delete"
	OpRollback = "rollback"
)

// Proposal is an operation on a plan waiting for approvals.
type Proposal struct {
	ID   string `json:"id"`
	Plan string `json:"plan"`
	// Op is apply, delete, rollback, or a rollout operation (pause, resume, promote, abort).
	Op string `json:"op" enum:"apply,delete,rollback,pause,resume,promote,abort"`
	// Action is the policy action that asked for approvals.
	Action string `json:"action"`
	// Source is the plan source an apply would store.
	Source string `json:"source,omitempty"`
	Reason string `json:"reason,omitempty"`
	// BasedOn is the plan's newest version when proposed (0: none): the proposal is done only while
	// it still is. Released is the waves its rollout had released, for a promotion.
	BasedOn  int `json:"basedOn"`
	Released int `json:"released,omitempty"`
	// Agents are the agents the operation concerned when proposed.
	Agents          []string          `json:"agents"`
	RequestedBy     string            `json:"requestedBy"`
	RequesterPerson string            `json:"requesterPerson,omitempty"`
	Lineage         []string          `json:"lineage,omitempty"`
	Approvals       *policy.Approvals `json:"approvals"`
	Rules           []string          `json:"rules,omitempty"`
	At              time.Time         `json:"at"`
}

// ProposalView is a proposal and where it stands.
type ProposalView struct {
	Proposal
	// State is awaiting, done, denied, or stale (the plan changed since it was proposed).
	State     string   `json:"state" enum:"awaiting,done,denied,stale"`
	Approvers []string `json:"approvers" doc:"Who approved it so far."`
	// Outcome says what the operation did once done (the version it wrote), or who denied it and why.
	Outcome string `json:"outcome,omitempty"`
}

// Proposal states.
const (
	ProposalAwaiting = "awaiting"
	ProposalDone     = "done"
	ProposalDenied   = "denied"
	ProposalStale    = "stale"
)

type proposalApproval struct {
	By      string    `json:"by"`
	Person  string    `json:"person,omitempty"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

type proposalOutcome struct {
	State   string    `json:"state"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`
}

// needsApproval is what decide answers when the policy allows an action only after approvals.
type needsApproval struct {
	action   string
	decision policy.Decision
	ids      []string
}

func (n *needsApproval) Error() string {
	return fmt.Sprintf("%s needs %d approval(s)", n.action, n.decision.Approvals.Count)
}

// approvedKey carries, in the context of an approval that completed a proposal, the proposal: decide
// answers its action from it instead of asking the policy again.
type approvedKey struct{}

func approvedFrom(ctx context.Context) *Proposal {
	p, _ := ctx.Value(approvedKey{}).(*Proposal)
	return p
}

// propose stores an operation the policy allows only after approvals, and answers it.
func (s *Service) propose(ctx context.Context, name, op string, na *needsApproval, mk func(p *Proposal)) (*ProposalView, error) {
	me := domain.PrincipalFrom(ctx)
	based := 0
	if v, err := s.latest(ctx, name); err == nil {
		based = v.Version
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	p := &Proposal{ID: "pp-" + uuid.NewString()[:18], Plan: name, Op: op, Action: na.action, BasedOn: based, Agents: na.ids,
		RequestedBy: me.ID, RequesterPerson: me.Person, Lineage: me.Lineage, Approvals: na.decision.Approvals, Rules: na.decision.Rules,
		At: time.Now().UTC()}
	if mk != nil {
		mk(p)
	}
	if _, err := store.CreateJSON(ctx, s.Store, layout.PlanProposal(name, p.ID), p); err != nil {
		return nil, fmt.Errorf("store a proposal to %s plan %s: %w", op, name, err)
	}
	s.Log.Info("plan operation awaits approval", "plan", name, "op", op, "proposal", p.ID, "by", me.ID)
	s.Trail.Record(ctx, na.action, na.ids, &na.decision, "awaiting-approval", map[string]any{"name": name, "proposal": p.ID, "op": op})
	return &ProposalView{Proposal: *p, State: ProposalAwaiting, Approvers: []string{}}, nil
}

// Proposals lists a plan's proposals, newest first.
func (s *Service) Proposals(ctx context.Context, name string) ([]ProposalView, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	byID := map[string][]string{}
	var ids []string
	err := store.Walk(ctx, s.Store, layout.PlanProposalsOf(name), "", 0, func(o store.ObjectInfo) error {
		rest := strings.TrimPrefix(o.Key, layout.PlanProposalsOf(name))
		id, _, _ := strings.Cut(strings.TrimSuffix(rest, ".json"), "/")
		if _, ok := byID[id]; !ok {
			ids = append(ids, id)
		}
		byID[id] = append(byID[id], o.Key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the proposals of plan %s: %w", name, err)
	}
	out := []ProposalView{}
	for _, id := range ids {
		pv, err := s.proposal(ctx, name, id, byID[id])
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *pv)
	}
	slices.SortFunc(out, func(a, b ProposalView) int { return b.At.Compare(a.At) })
	return out, nil
}

// proposal reads one proposal with its approvals and outcome (keys: everything stored under it, or
// nil to list them).
func (s *Service) proposal(ctx context.Context, name, id string, keys []string) (*ProposalView, error) {
	if keys == nil {
		if err := store.Walk(ctx, s.Store, layout.PlanProposal(name, id), "", 0, func(o store.ObjectInfo) error {
			keys = append(keys, o.Key)
			return nil
		}); err != nil {
			return nil, err
		}
		if err := store.Walk(ctx, s.Store, layout.PlanProposalOf(name, id), "", 0, func(o store.ObjectInfo) error {
			keys = append(keys, o.Key)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	var p Proposal
	if _, err := store.ReadJSON(ctx, s.Store, layout.PlanProposal(name, id), &p); err != nil {
		return nil, err
	}
	pv := &ProposalView{Proposal: p, State: ProposalAwaiting, Approvers: []string{}}
	for _, k := range keys {
		switch {
		case k == layout.PlanProposalOutcome(name, id):
			var o proposalOutcome
			if _, err := store.ReadJSON(ctx, s.Store, k, &o); err == nil {
				pv.State, pv.Outcome = o.State, o.Outcome
			}
		case strings.HasPrefix(k, layout.PlanProposalOf(name, id)+"approvals/"):
			var a proposalApproval
			if _, err := store.ReadJSON(ctx, s.Store, k, &a); err == nil {
				pv.Approvers = append(pv.Approvers, a.By)
			}
		}
	}
	return pv, nil
}

// approverKey names an approver's record: one per person, whatever credential they use.
func approverKey(person string) string {
	sum := sha256.Sum256([]byte(person))
	return hex.EncodeToString(sum[:12])
}

// DecideProposal records one approver's approval or denial of a proposal. The requester (or a
// credential the requester made) cannot approve it, a person counts once, and only members of the
// groups the policy named count: those make four eyes four, whatever else the policy says. The
// approval that makes the count does the operation.
func (s *Service) DecideProposal(ctx context.Context, name, id string, approve bool, comment string) (*ProposalView, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	if !layout.ValidID(id) {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "path.id", Msg: fmt.Sprintf("proposal id %q: letters, digits, - and _ only", id)}
	}
	pv, err := s.proposal(ctx, name, id, nil)
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.NotFound("plan %s has no proposal %s (see pulse plan proposals %s)", name, id, name)
	}
	if err != nil {
		return nil, err
	}
	me := domain.PrincipalFrom(ctx)
	req := pv.Approvals
	action := "approve-plan"
	if !approve {
		action = "deny-plan"
	}
	switch {
	case pv.State != ProposalAwaiting:
		return nil, domain.Conflict("proposal %s to %s plan %s is %s already: %s", id, pv.Op, name, pv.State, pv.Outcome)
	case me.ID == pv.RequestedBy || me.ActsFor(pv.RequesterPerson):
		s.Trail.Record(ctx, action, pv.Agents, nil, "denied", map[string]any{"name": name, "proposal": id, "why": "self-approval"})
		return nil, domain.Denied("you proposed this (or hold a credential its proposer made); someone else must approve it")
	case approve && slices.Contains(pv.Approvers, me.ID):
		return nil, domain.Conflict("you already approved proposal %s", id)
	case req != nil && !me.InGroup(req.Groups...):
		return nil, domain.Denied("approvers of this proposal must be in %s; you are in %v", strings.Join(req.Groups, " or "), me.Groups)
	}
	if !approve {
		created, err := store.CreateJSON(ctx, s.Store, layout.PlanProposalOutcome(name, id),
			proposalOutcome{State: ProposalDenied, By: me.ID, At: time.Now().UTC(), Outcome: strings.TrimSpace("denied by " + me.ID + ". " + comment)})
		if err != nil {
			return nil, err
		}
		if !created {
			return nil, domain.Conflict("proposal %s was decided by someone else a moment ago", id)
		}
		s.Trail.Record(ctx, action, pv.Agents, nil, "ok", map[string]any{"name": name, "proposal": id, "comment": comment})
		return s.proposal(ctx, name, id, nil)
	}
	created, err := store.CreateJSON(ctx, s.Store, layout.PlanProposalApproval(name, id, approverKey(cmpOr(me.Person, me.ID))),
		proposalApproval{By: me.ID, Person: me.Person, At: time.Now().UTC(), Comment: comment})
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, domain.Conflict("you already approved proposal %s", id)
	}
	s.Trail.Record(ctx, action, pv.Agents, nil, "ok", map[string]any{"name": name, "proposal": id, "comment": comment})
	pv.Approvers = append(pv.Approvers, me.ID)
	if req != nil && len(pv.Approvers) < req.Count {
		return pv, nil
	}
	outcome, state := s.execute(ctx, &pv.Proposal)
	if _, err := store.CreateJSON(ctx, s.Store, layout.PlanProposalOutcome(name, id),
		proposalOutcome{State: state, By: me.ID, At: time.Now().UTC(), Outcome: outcome}); err != nil {
		s.Log.Warn("record the outcome of a proposal", "plan", name, "proposal", id, "err", err)
	}
	pv.State, pv.Outcome = state, outcome
	return pv, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// execute does a fully approved proposal's operation, as decided when it was proposed, and says
// what it did.
func (s *Service) execute(ctx context.Context, p *Proposal) (outcome, state string) {
	if v, err := s.latest(ctx, p.Plan); err == nil && v.Version != p.BasedOn || errors.Is(err, store.ErrNotFound) && p.BasedOn != 0 {
		now := 0
		if v != nil {
			now = v.Version
		}
		return fmt.Sprintf("plan %s changed since it was proposed (version %d then, %d now): propose it again", p.Plan, p.BasedOn, now), ProposalStale
	}
	ctx = context.WithValue(ctx, approvedKey{}, p)
	var err error
	var did string
	switch p.Op {
	case OpApply:
		var a *Applied
		if a, err = s.Apply(ctx, p.Plan, p.Source); err == nil {
			did = fmt.Sprintf("applied as version %d, sent to %d agent(s)", a.Version.Version, len(a.Agents))
		}
	case OpDelete:
		var a *Applied
		if a, err = s.Delete(ctx, p.Plan); err == nil {
			did = fmt.Sprintf("deleted (version %d)", a.Version.Version)
		}
	case OpRollback:
		var a *Applied
		if a, err = s.Rollback(ctx, p.Plan, p.Reason); err == nil {
			did = fmt.Sprintf("rolled back as version %d (the content of version %d)", a.Version.Version, a.RolledBackTo)
		}
	default:
		var r *RolloutView
		if r, err = s.RolloutOp(ctx, p.Plan, p.Op, p.Reason); err == nil {
			did = fmt.Sprintf("rollout %s, %d wave(s) released", r.State, r.Released)
		}
	}
	if err != nil {
		return fmt.Sprintf("approved, but the %s failed: %v", p.Op, err), ProposalStale
	}
	return did, ProposalDone
}
