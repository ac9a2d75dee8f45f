package commands

import (
	"context"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/paging"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// Filter selects commands for a list; zero fields match everything.
type Filter struct {
	// State is the command's state as a whole (Status.State): running, awaiting_approval, done,
	// cancelled, denied.
	State   string
	Issuer  string
	Agent   string // an agent id among the targets
	Command string
	Since   time.Time
	// Cursor is the id of the last command of the previous page.
	Cursor string
	Limit  int
}

// PageTime orders commands in lists: newest first.
func (r *Record) PageTime() time.Time { return r.CreatedAt }

// PageID is a command's cursor in lists.
func (r *Record) PageID() string { return r.ID }

// Summary is a line of the command list: the record, its state as a whole and its counts.
type Summary struct {
	Record
	State     string         `json:"state" enum:"running,awaiting_approval,done,cancelled,denied"`
	Approvers []string       `json:"approvers,omitempty"`
	Counts    map[string]int `json:"counts"`
}

// Page is one page of the command list.
type Page struct {
	Commands []Summary `json:"commands"`
	// Next is the cursor of the next page; empty on the last one.
	Next string `json:"next,omitempty"`
}

// States a command as a whole can be in.
var States = []string{"running", "awaiting_approval", "done", "cancelled", "denied"}

// List returns commands matching f, newest first, a page at a time. The records are write-once and
// cached, so a list costs one listing of the commands plus, for the records that pass the filters on
// the record, the listings that fold each one's state.
func (s *Service) List(ctx context.Context, f Filter) (*Page, error) {
	if f.State != "" && !slices.Contains(States, f.State) {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "state", Msg: "state must be one of " + strings.Join(States, ", ")}
	}
	var ids []string
	err := store.Walk(ctx, s.Store, layout.Commands, "", 0, func(o store.ObjectInfo) error {
		if o.Key == layout.Command(layout.Name(o.Key)) { // a record, not a cancel or an approval beside one
			ids = append(ids, layout.Name(o.Key))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	recs := make([]*Record, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i, id := range ids {
		g.Go(func() error {
			r, err := s.records.Get(gctx, s.Store, layout.Command(id))
			if isNotFound(err) { // deleted since the listing, or refused by the integrity check
				return nil
			}
			recs[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	recs = slices.DeleteFunc(recs, func(r *Record) bool { return r == nil })
	// Only a command that required approvals can await them or be denied: the others are not folded.
	needsApproval := f.State == "awaiting_approval" || f.State == "denied"
	page := &Page{}
	page.Commands, page.Next, err = paging.Page(recs, f.Cursor, f.Limit, func(r *Record) (Summary, bool, error) {
		if (!f.Since.IsZero() && r.CreatedAt.Before(f.Since)) || (needsApproval && r.Approval == nil) ||
			(f.Issuer != "" && r.Issuer != f.Issuer) || (f.Command != "" && r.Command != f.Command) ||
			(f.Agent != "" && !slices.Contains(r.Targets, f.Agent)) {
			return Summary{}, false, nil
		}
		st, err := s.Status(ctx, r.ID, false)
		if err != nil || (f.State != "" && st.State() != f.State) {
			return Summary{}, false, err
		}
		return Summary{Record: *r, State: st.State(), Approvers: st.Approvers, Counts: st.Counts}, true, nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}
