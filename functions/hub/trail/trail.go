// Package trail writes the hub's audit trail from inside the rooms: who acted (taken from the request
// context), what, on which agents, what the policy decided. The records and their seals are the audit
// package's; this is the hub's way of filling them in, sealing them with the hub's key, and keeping
// them while the store fails.
package trail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/policy"
)

// Recorder writes audit records to the store.
type Recorder struct {
	Store store.Store
	Log   *slog.Logger
	Keys  *hubkey.Keys
	// Outbox, on the hub's own disk, keeps records the store refused until Flush delivers them. Without
	// one, such records wait in memory (and are lost only if the process dies before the store answers).
	Outbox store.Store

	mu      sync.Mutex
	pending []audit.Record
	late    []string // delivered from the outbox or memory, not yet sealed
}

// Actor is the audit actor of a request: its principal, else the agent that signed it.
func Actor(ctx context.Context) audit.Actor {
	p := domain.PrincipalFrom(ctx)
	if agent := domain.AgentFrom(ctx); agent != "" && p.ID == "" {
		return audit.Actor{ID: agent, Via: "agent-signature"}
	}
	return audit.Actor{ID: p.ID, Groups: p.Groups, Via: p.Via, Person: p.Person}
}

// Record writes an audit record for a mutation. The mutation has already happened, so a record the
// store refuses is kept in the outbox and delivered by Flush, never dropped.
func (r *Recorder) Record(ctx context.Context, action string, targets []string, d *policy.Decision, outcome string, detail map[string]any) {
	rec := audit.Record{Principal: Actor(ctx), Action: action, Targets: targets, Outcome: outcome, Detail: detail,
		RequestID: domain.RequestIDFrom(ctx)}
	if d != nil {
		rec.Decision = &audit.Decision{Allow: d.Allow, Rules: d.Rules, Reasons: d.Reasons}
		if d.Approvals != nil {
			rec.Decision.Approvals = d.Approvals.Count
		}
	}
	r.Write(ctx, rec)
}

// Write stores one prepared record, or keeps it for Flush when the store fails.
func (r *Recorder) Write(ctx context.Context, rec audit.Record) {
	rec = audit.Stamp(rec)
	_, err := audit.Write(context.WithoutCancel(ctx), r.Store, rec)
	if err == nil {
		return
	}
	if r.Outbox != nil {
		if _, oerr := audit.Write(context.WithoutCancel(ctx), r.Outbox, rec); oerr == nil {
			r.Log.Warn("audit record kept in the outbox until the store answers", "action", rec.Action, "key", rec.Key, "err", err)
			return
		} else {
			err = fmt.Errorf("%w; outbox: %w", err, oerr)
		}
	}
	r.mu.Lock()
	r.pending = append(r.pending, rec)
	r.mu.Unlock()
	r.Log.Error("audit record held in memory until the store answers", "action", rec.Action, "key", rec.Key, "err", err)
}

// Pending is how many records wait for the store (in the outbox and in memory).
func (r *Recorder) Pending(ctx context.Context) int {
	r.mu.Lock()
	n := len(r.pending)
	r.mu.Unlock()
	if r.Outbox != nil {
		store.Walk(ctx, r.Outbox, layout.Audit, "", 0, func(store.ObjectInfo) error { n++; return nil })
	}
	return n
}

// Flush delivers the records that wait, oldest first; what the store still refuses waits for the
// next call (after three refusals in a row it stops trying for this round). Delivered records are
// remembered until a seal covers them: they may be older than what the seals already cover.
func (r *Recorder) Flush(ctx context.Context) {
	r.mu.Lock()
	held := r.pending
	r.pending = nil
	r.mu.Unlock()
	failed := 0
	var kept []audit.Record
	for _, rec := range held {
		if failed >= 3 {
			kept = append(kept, rec)
			continue
		}
		if _, err := audit.Write(ctx, r.Store, rec); err != nil {
			failed++
			kept = append(kept, rec)
			continue
		}
		failed = 0
		r.noteLate(audit.Stamp(rec).Key)
	}
	r.mu.Lock()
	r.pending = append(kept, r.pending...)
	r.mu.Unlock()
	if r.Outbox == nil {
		return
	}
	errStop := errors.New("stop")
	err := store.Walk(ctx, r.Outbox, layout.Audit, "", 0, func(o store.ObjectInfo) error {
		if failed >= 3 {
			return errStop
		}
		b, _, err := store.ReadAll(ctx, r.Outbox, o.Key)
		if err != nil {
			return err
		}
		var rec audit.Record
		if err := json.Unmarshal(b, &rec); err != nil {
			r.Log.Error("audit outbox holds an unreadable record; left in place", "key", o.Key, "err", err)
			return nil
		}
		if _, err := audit.Write(ctx, r.Store, rec); err != nil {
			failed++
			return nil
		}
		failed = 0
		r.noteLate(audit.Stamp(rec).Key)
		r.Log.Info("audit record delivered from the outbox", "action", rec.Action, "key", o.Key)
		return r.Outbox.Delete(ctx, o.Key)
	})
	if err != nil && !errors.Is(err, errStop) {
		r.Log.Warn("audit outbox: will retry", "err", err)
	}
}

func (r *Recorder) noteLate(key string) {
	r.mu.Lock()
	r.late = append(r.late, key)
	r.mu.Unlock()
}

// Seal delivers waiting records, then seals the records written since the last seal, and those just
// delivered late, with the hub's key; a failure is logged and the next call retries it.
func (r *Recorder) Seal(ctx context.Context) {
	r.Flush(ctx)
	r.mu.Lock()
	late := r.late
	r.mu.Unlock()
	n, err := audit.SealNow(ctx, r.Store, r.Keys, late...)
	if errors.Is(err, audit.ErrRaced) {
		return // another hub sealed this round; ours wait for the next
	}
	if err != nil {
		r.Log.Warn("audit seal failed; will retry", "err", err)
		return
	}
	r.mu.Lock()
	r.late = r.late[len(late):]
	r.mu.Unlock()
	if n > 0 {
		r.Log.Debug("audit sealed", "records", n)
	}
}

// List reads audit records.
func (r *Recorder) List(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	if q.Since.IsZero() {
		q.Since = time.Now().Add(-24 * time.Hour)
	}
	if q.Limit == 0 {
		q.Limit = 1000
	}
	recs, err := audit.List(ctx, r.Store, q)
	return append([]audit.Record{}, recs...), err
}

// Verify checks the chain as the store holds it. It does not seal first: sealing would vouch for
// whatever the bucket holds now, forgeries included.
func (r *Recorder) Verify(ctx context.Context) (audit.Report, error) {
	return audit.Verify(ctx, r.Store, r.Keys)
}
