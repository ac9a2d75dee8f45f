package commands

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// Decide records one approver's decision on a command awaiting approval (approve or deny). The
// requester cannot approve their own command, a person counts once, and only members of the required
// groups count; these are checked here, whatever the policy says, because they are what makes four
// eyes four.
func (s *Service) Decide(ctx context.Context, id string, approve bool, comment string) (*Status, error) {
	st, err := s.Status(ctx, id, false)
	if err != nil {
		return nil, err
	}
	me := domain.PrincipalFrom(ctx)
	req := st.Approval
	switch {
	case req == nil:
		return nil, domain.Conflict("command %s needs no approval", id)
	case st.Denied || st.Cancelled:
		return nil, domain.Conflict("command %s was already denied or cancelled", id)
	case !st.Awaiting:
		return nil, domain.Conflict("command %s is no longer awaiting approval", id)
	case req.requestedBy(me):
		why := "you requested this command; someone else must approve it"
		if me.Person != req.RequesterPerson {
			why = fmt.Sprintf("your credential was made by %s, who requested this command; an approval must come from someone else's credential", req.RequesterPerson)
		}
		s.Trail.Record(ctx, action(approve), st.Targets, nil, "denied", map[string]any{"commandId": id, "why": "self-approval"})
		return nil, domain.Denied("%s", why)
	case approve && me.Person != "" && slices.Contains(st.Approvers, me.Person):
		return nil, domain.Conflict("you already approved command %s", id)
	case !me.InGroup(req.Groups...):
		return nil, domain.Denied("approvers must be in %s; you are in %v", strings.Join(req.Groups, " or "), me.Groups)
	}
	var intent string // an approval may release the command: written down first, for the tick
	if approve {
		if intent, err = s.intend(ctx, id); err != nil {
			return nil, err
		}
	}
	if !approve {
		if _, err := store.CreateJSON(ctx, s.Store, layout.Denied(id), map[string]any{"by": me.ID, "at": time.Now().UTC(), "comment": comment}); err != nil {
			return nil, err
		}
	} else {
		created, err := store.CreateJSON(ctx, s.Store, layout.Approval(id, approverKey(cmp.Or(me.Person, me.ID))),
			approvalRecord{By: me.ID, Person: me.Person, Lineage: me.Lineage, Via: me.Via, At: time.Now().UTC(), Comment: comment})
		if err != nil {
			return nil, err
		}
		if !created {
			s.settle(ctx, intent)
			return nil, domain.Conflict("you already approved command %s", id)
		}
	}
	s.Trail.Record(ctx, action(approve), st.Targets, nil, "ok", map[string]any{"commandId": id, "comment": comment})
	s.changed(ctx, id)
	if approve {
		if err := s.advance(ctx, id, intent); err != nil {
			// The approval is stored and the release written down: the tick finishes it.
			s.Log.Error("release command after approval; the tick retries it", "command", id, "err", err)
		}
	}
	return s.Status(ctx, id, true)
}

func action(approve bool) string {
	if approve {
		return "approve-command"
	}
	return "deny-command"
}

// approvalRecord is one approval. Status counts it only when the hub wrote it (the integrity check)
// and its person is not the requester nor descends from the requester's credentials.
type approvalRecord struct {
	By      string    `json:"by"`
	Person  string    `json:"person"`
	Lineage []string  `json:"lineage,omitempty"`
	Via     string    `json:"via"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

// approverKey names an approval object after its approver, so the same person cannot approve twice.
func approverKey(id string) string {
	if layout.ValidID(id) {
		return id
	}
	return "h-" + access.HashSecret(id)[:32]
}

// Awaiting lists the commands awaiting an approval that the caller could give: not their own, not
// approved by them yet, and they are in one of the required groups. Newest first.
func (s *Service) Awaiting(ctx context.Context, limit int) ([]Summary, error) {
	me := domain.PrincipalFrom(ctx)
	page, err := s.List(ctx, Filter{State: "awaiting_approval", Limit: 10000})
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, c := range page.Commands {
		a := c.Approval
		if a == nil || a.requestedBy(me) || !me.InGroup(a.Groups...) {
			continue
		}
		if slices.Contains(c.Approvers, cmp.Or(me.Person, me.ID)) {
			continue
		}
		out = append(out, c)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// awaitingLine is how a command waiting for approvals describes itself to a person.
func awaitingLine(st *Status) string {
	if st.Approval == nil {
		return ""
	}
	return fmt.Sprintf("awaiting approval: %d of %d", len(st.Approvers), st.Approval.Count)
}
