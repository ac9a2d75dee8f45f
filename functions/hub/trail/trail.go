// Package trail writes the hub's audit trail from inside the rooms: who acted (taken from the request
// context), what, on which agents, what the policy decided. The records and their seals are the audit
// package's; this is the hub's way of filling them in.
package trail

import (
	"context"
	"log/slog"
	"time"

	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/policy"
)

// Recorder writes audit records to the store.
type Recorder struct {
	Store store.Store
	Log   *slog.Logger
}

// Actor is the audit actor of a request: its principal, else the agent that signed it.
func Actor(ctx context.Context) audit.Actor {
	p := domain.PrincipalFrom(ctx)
	if agent := domain.AgentFrom(ctx); agent != "" && p.ID == "" {
		return audit.Actor{ID: agent, Via: "agent-signature"}
	}
	return audit.Actor{ID: p.ID, Groups: p.Groups, Via: p.Via}
}

// Record writes an audit record for a mutation. A failure to audit is logged loudly; the mutation it
// describes has already happened, so the record is retried once in the background rather than lost
// silently.
func (r *Recorder) Record(ctx context.Context, action string, targets []string, d *policy.Decision, outcome string, detail map[string]any) {
	rec := audit.Record{Principal: Actor(ctx), Action: action, Targets: targets, Outcome: outcome, Detail: detail,
		RequestID: domain.RequestIDFrom(ctx)}
	if d != nil {
		rec.Decision = &audit.Decision{Allow: d.Allow, Rules: d.Rules, Reasons: d.Reasons}
		if d.Approvals != nil {
			rec.Decision.Approvals = d.Approvals.Count
		}
	}
	if _, err := audit.Write(context.WithoutCancel(ctx), r.Store, rec); err != nil {
		r.Log.Error("audit record not written; retrying", "action", action, "err", err)
		go func() {
			time.Sleep(2 * time.Second)
			if _, err := audit.Write(context.Background(), r.Store, rec); err != nil {
				r.Log.Error("AUDIT RECORD LOST", "action", action, "principal", rec.Principal.ID, "err", err)
			}
		}()
	}
}

// Seal seals the audit records written since the last seal; a failure is logged and the next call
// retries it.
func (r *Recorder) Seal(ctx context.Context) {
	if n, err := audit.SealNow(ctx, r.Store); err != nil {
		r.Log.Warn("audit seal failed; will retry", "err", err)
	} else if n > 0 {
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

// Verify seals what was written up to now, then checks the whole chain.
func (r *Recorder) Verify(ctx context.Context) (audit.Report, error) {
	if _, err := audit.SealNow(ctx, r.Store); err != nil {
		return audit.Report{}, err
	}
	return audit.Verify(ctx, r.Store)
}
