package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/policy"
)

// --- policy ---------------------------------------------------------------------------------------

func (p Principal) policy() policy.Principal {
	return policy.Principal{ID: p.ID, Name: p.Name, Groups: p.Groups, Via: p.Via}
}

func (p Principal) audit() audit.Actor {
	return audit.Actor{ID: p.ID, Groups: p.Groups, Via: p.Via}
}

// decide asks the policy; a denial becomes a 403 whose detail names the rule, and is audited.
func (h *Hub) decide(ctx context.Context, in policy.Input) (policy.Decision, error) {
	if h.Policy == nil {
		return policy.Decision{}, huma.Error500InternalServerError("no policy loaded")
	}
	in.Principal = PrincipalFrom(ctx).policy()
	if in.Time.IsZero() {
		in.Time = time.Now().UTC()
	}
	d, err := h.Policy.Decide(ctx, in)
	if err != nil {
		return d, huma.Error500InternalServerError("policy evaluation failed: " + err.Error())
	}
	if !d.Allow {
		var targets []string
		for _, t := range in.Targets {
			targets = append(targets, t.ID)
		}
		h.record(ctx, in.Action, targets, &d, "denied", map[string]any{"command": in.Command})
		return d, huma.Error403Forbidden("denied by policy: " + strings.Join(d.Reasons, "; "))
	}
	return d, nil
}

// policyGate decides operations whose input is just "who does what" before the handler runs. Operations
// that need more (the command, its targets) decide in their handler.
func (h *Hub) policyGate(api huma.API, action string) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if _, err := h.decide(ctx.Context(), policy.Input{Action: action}); err != nil {
			var se huma.StatusError
			if errors.As(err, &se) {
				huma.WriteErr(api, ctx, se.GetStatus(), strings.TrimPrefix(err.Error(), ""))
				return
			}
			huma.WriteErr(api, ctx, http.StatusInternalServerError, err.Error())
			return
		}
		next(ctx)
	}
}

// --- audit ----------------------------------------------------------------------------------------

type requestIDKey struct{}

// record writes an audit record for a mutation. A failure to audit is logged loudly; the mutation it
// describes has already happened, so the record is retried once in the background rather than lost
// silently.
func (h *Hub) record(ctx context.Context, action string, targets []string, d *policy.Decision, outcome string, detail map[string]any) {
	r := audit.Record{Principal: PrincipalFrom(ctx).audit(), Action: action, Targets: targets, Outcome: outcome, Detail: detail}
	if agent := AgentFrom(ctx); agent != "" && r.Principal.ID == "" {
		r.Principal = audit.Actor{ID: agent, Via: "agent-signature"}
	}
	r.RequestID, _ = ctx.Value(requestIDKey{}).(string)
	if d != nil {
		r.Decision = &audit.Decision{Allow: d.Allow, Rules: d.Rules, Reasons: d.Reasons}
		if d.Approvals != nil {
			r.Decision.Approvals = d.Approvals.Count
		}
	}
	if _, err := audit.Write(context.WithoutCancel(ctx), h.Store, r); err != nil {
		h.Log.Error("audit record not written; retrying", "action", action, "err", err)
		go func() {
			time.Sleep(2 * time.Second)
			if _, err := audit.Write(context.Background(), h.Store, r); err != nil {
				h.Log.Error("AUDIT RECORD LOST", "action", action, "principal", r.Principal.ID, "err", err)
			}
		}()
	}
}

// SealAudit seals new audit records every interval until ctx ends.
func (h *Hub) SealAudit(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := audit.SealNow(ctx, h.Store); err != nil {
			h.Log.Warn("audit seal failed; will retry", "err", err)
		} else if n > 0 {
			h.Log.Debug("audit sealed", "records", n)
		}
	}
}

// AuditInput filters the audit log.
type AuditInput struct {
	Since     time.Time `query:"since" doc:"RFC 3339; default 24 hours ago"`
	Until     time.Time `query:"until"`
	Principal string    `query:"principal"`
	Limit     int       `query:"limit" minimum:"0" maximum:"10000"`
}

// AuditOutput lists records.
type AuditOutput struct {
	Body struct {
		Records []audit.Record `json:"records"`
	}
}

func (h *Hub) listAudit(ctx context.Context, in *AuditInput) (*AuditOutput, error) {
	q := audit.Query{Since: in.Since, Until: in.Until, Principal: in.Principal, Limit: in.Limit}
	if q.Since.IsZero() {
		q.Since = time.Now().Add(-24 * time.Hour)
	}
	if q.Limit == 0 {
		q.Limit = 1000
	}
	recs, err := audit.List(ctx, h.Store, q)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	out := &AuditOutput{}
	out.Body.Records = append([]audit.Record{}, recs...)
	return out, nil
}

// VerifyOutput is the audit chain check.
type VerifyOutput struct {
	Body audit.Report
}

func (h *Hub) verifyAudit(ctx context.Context, _ *struct{}) (*VerifyOutput, error) {
	// Seal first, so records written up to now are covered by what is checked.
	if _, err := audit.SealNow(ctx, h.Store); err != nil {
		return nil, h.storeError(ctx, err)
	}
	rep, err := audit.Verify(ctx, h.Store)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	return &VerifyOutput{Body: rep}, nil
}

// --- operator tokens ------------------------------------------------------------------------------

// TokenInput creates an operator token.
type TokenInput struct {
	Body struct {
		Name       string   `json:"name" minLength:"1" maxLength:"64"`
		Groups     []string `json:"groups" minItems:"1"`
		TTLSeconds int      `json:"ttlSeconds,omitempty" minimum:"0"`
	}
}

// TokenView describes a token without its secret.
type TokenView struct {
	ID        string    `json:"id" doc:"Public id: the first 16 hex digits of the token's hash."`
	Name      string    `json:"name"`
	Groups    []string  `json:"groups"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	Revoked   bool      `json:"revoked"`
}

// TokenOutput returns a new token, its secret shown once.
type TokenOutput struct {
	Body struct {
		TokenView
		Token string `json:"token"`
	}
}

// TokensOutput lists tokens.
type TokensOutput struct {
	Body struct {
		Tokens []TokenView `json:"tokens"`
	}
}

// TokenIDInput names a token by its public id.
type TokenIDInput struct {
	ID string `path:"id"`
}

func (h *Hub) createToken(ctx context.Context, in *TokenInput) (*TokenOutput, error) {
	if !validID(in.Body.Name) {
		return nil, huma.Error422UnprocessableEntity("token name: letters, digits, - and _ only")
	}
	secret, err := CreateAPIToken(ctx, h.Store, in.Body.Name, in.Body.Groups, time.Duration(in.Body.TTLSeconds)*time.Second, PrincipalFrom(ctx).ID)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	out := &TokenOutput{}
	out.Body.Token = secret
	out.Body.TokenView = TokenView{ID: HashSecret(secret)[:16], Name: in.Body.Name, Groups: in.Body.Groups, CreatedAt: time.Now().UTC(), CreatedBy: PrincipalFrom(ctx).ID}
	if in.Body.TTLSeconds > 0 {
		out.Body.ExpiresAt = out.Body.CreatedAt.Add(time.Duration(in.Body.TTLSeconds) * time.Second)
	}
	h.record(ctx, "create-token", nil, nil, "ok", map[string]any{"tokenId": out.Body.ID, "name": in.Body.Name, "groups": in.Body.Groups})
	return out, nil
}

func (h *Hub) tokens(ctx context.Context) ([]TokenView, map[string]string, error) {
	var views []TokenView
	hashes := map[string]string{}
	err := store.Walk(ctx, h.Store, prefixTokens, "", 0, func(o store.ObjectInfo) error {
		hash := lastSegment(o.Key)
		t, err := h.lookupTokenHash(ctx, hash)
		if err != nil || t == nil {
			return err
		}
		id := hash[:16]
		hashes[id] = hash
		views = append(views, TokenView{ID: id, Name: t.Name, Groups: t.Groups, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked})
		return nil
	})
	sort.Slice(views, func(i, j int) bool { return views[i].CreatedAt.Before(views[j].CreatedAt) })
	return views, hashes, err
}

func (h *Hub) listTokens(ctx context.Context, _ *struct{}) (*TokensOutput, error) {
	views, _, err := h.tokens(ctx)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	out := &TokensOutput{}
	out.Body.Tokens = append([]TokenView{}, views...)
	return out, nil
}

func (h *Hub) revokeToken(ctx context.Context, in *TokenIDInput) (*struct{}, error) {
	_, hashes, err := h.tokens(ctx)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	hash, ok := hashes[in.ID]
	if !ok {
		return nil, huma.Error404NotFound(fmt.Sprintf("no token with id %q (see pulse token list)", in.ID))
	}
	if _, err := createJSON(ctx, h.Store, keyRevoked(hash), map[string]any{"by": PrincipalFrom(ctx).ID, "at": time.Now().UTC()}); err != nil {
		return nil, h.storeError(ctx, err)
	}
	h.tokensCache.forget(hash)
	h.record(ctx, "revoke-token", nil, nil, "ok", map[string]any{"tokenId": in.ID})
	return nil, nil
}

func registerGovernanceAPI(api huma.API, h *Hub) {
	sec := []map[string][]string{{"bearer": {}}}
	gate := func(action string) huma.Middlewares {
		return huma.Middlewares{h.operatorAuth(api), h.policyGate(api, action)}
	}
	register(api, huma.Operation{OperationID: "create-token", Method: http.MethodPost, Path: "/v1/tokens", Tags: []string{"Access"},
		Summary: "Create an operator API token", Description: "The secret is returned once; only its hash is stored.",
		DefaultStatus: http.StatusCreated, Security: sec, Middlewares: gate("create-token"), Errors: []int{401, 403, 422}}, h.createToken)
	register(api, huma.Operation{OperationID: "list-tokens", Method: http.MethodGet, Path: "/v1/tokens", Tags: []string{"Access"},
		Summary: "List operator tokens (without secrets)", Security: sec, Middlewares: gate("list-tokens"), Errors: []int{401, 403}}, h.listTokens)
	register(api, huma.Operation{OperationID: "revoke-token", Method: http.MethodDelete, Path: "/v1/tokens/{id}", Tags: []string{"Access"},
		Summary: "Revoke an operator token", Description: "Takes effect on every hub within seconds.",
		DefaultStatus: http.StatusNoContent, Security: sec, Middlewares: gate("revoke-token"), Errors: []int{401, 403, 404}}, h.revokeToken)
	register(api, huma.Operation{OperationID: "get-audit", Method: http.MethodGet, Path: "/v1/audit", Tags: []string{"Audit"},
		Summary: "Audit records", Security: sec, Middlewares: gate("get-audit"), Errors: []int{401, 403}}, h.listAudit)
	register(api, huma.Operation{OperationID: "verify-audit", Method: http.MethodPost, Path: "/v1/audit/verify", Tags: []string{"Audit"},
		Summary: "Seal and verify the audit chain", Description: "Names the first record that was changed or removed.",
		Security: sec, Middlewares: gate("verify-audit"), Errors: []int{401, 403}}, h.verifyAudit)
}

// --- approvals ------------------------------------------------------------------------------------

// DecideInput approves or denies a command awaiting approval.
type DecideInput struct {
	ID   string `path:"id"`
	Body struct {
		Comment string `json:"comment,omitempty" maxLength:"1000"`
	}
}

func (h *Hub) approveCommand(ctx context.Context, in *DecideInput) (*CommandOutput, error) {
	return h.approval(ctx, in, true)
}

func (h *Hub) denyCommand(ctx context.Context, in *DecideInput) (*CommandOutput, error) {
	return h.approval(ctx, in, false)
}

// approval records one approver's decision. The requester cannot approve their own command, a person
// counts once, and only members of the required groups count; these are checked here, whatever the
// policy says, because they are what makes four eyes four.
func (h *Hub) approval(ctx context.Context, in *DecideInput, approve bool) (*CommandOutput, error) {
	st, err := h.loadStatus(ctx, in.ID, false)
	if err != nil {
		return nil, err
	}
	me := PrincipalFrom(ctx)
	req := st.Approval
	switch {
	case req == nil:
		return nil, huma.Error409Conflict("command " + in.ID + " needs no approval")
	case st.Denied || st.Cancelled:
		return nil, huma.Error409Conflict("command " + in.ID + " was already denied or cancelled")
	case !st.Awaiting:
		return nil, huma.Error409Conflict("command " + in.ID + " is no longer awaiting approval")
	case me.ID == req.Requester:
		h.record(ctx, "approve-command", st.Targets, nil, "denied", map[string]any{"commandId": in.ID, "why": "self-approval"})
		return nil, huma.Error403Forbidden("you requested this command; someone else must approve it")
	case !memberOfAny(me.Groups, req.Groups):
		return nil, huma.Error403Forbidden(fmt.Sprintf("approvers must be in %s; you are in %v", strings.Join(req.Groups, " or "), me.Groups))
	}
	action := "approve-command"
	if !approve {
		action = "deny-command"
		if _, err := createJSON(ctx, h.Store, prefixCommands+in.ID+"/denied.json", map[string]any{"by": me.ID, "at": time.Now().UTC(), "comment": in.Body.Comment}); err != nil {
			return nil, h.storeError(ctx, err)
		}
	} else {
		created, err := createJSON(ctx, h.Store, prefixCommands+in.ID+"/approvals/"+approverKey(me.ID)+".json", map[string]any{"by": me.ID, "via": me.Via, "at": time.Now().UTC(), "comment": in.Body.Comment})
		if err != nil {
			return nil, h.storeError(ctx, err)
		}
		if !created {
			return nil, huma.Error409Conflict("you already approved command " + in.ID)
		}
	}
	h.record(ctx, action, st.Targets, nil, "ok", map[string]any{"commandId": in.ID, "comment": in.Body.Comment})
	if approve {
		if err := h.advance(ctx, in.ID); err != nil {
			return nil, h.storeError(ctx, err)
		}
	}
	st, err = h.loadStatus(ctx, in.ID, true)
	if err != nil {
		return nil, err
	}
	return &CommandOutput{Body: st}, nil
}

// approverKey names an approval object after its approver, so the same person cannot approve twice.
func approverKey(id string) string {
	if validID(id) {
		return id
	}
	return "h-" + HashSecret(id)[:32]
}

func memberOfAny(have, want []string) bool {
	for _, w := range want {
		for _, g := range have {
			if g == w {
				return true
			}
		}
	}
	return false
}

// PolicyLoaded audits which policy this hub runs with (a digest of every source file), so a policy
// change shows in the audit log as the first start with a new digest.
func (h *Hub) PolicyLoaded(ctx context.Context, dir string) {
	names := []string{}
	srcs := h.Policy.Sources()
	for n := range srcs {
		names = append(names, n)
	}
	sort.Strings(names)
	var all strings.Builder
	for _, n := range names {
		all.WriteString(n + "\x00" + srcs[n] + "\x00")
	}
	digest := HashSecret(all.String())[:16]
	h.Log.Info("policy loaded", "files", len(names), "digest", digest, "dir", dir)
	h.record(context.WithValue(ctx, principalKey, Principal{ID: "hub", Via: "startup"}), "policy-loaded", nil, nil, "ok",
		map[string]any{"files": names, "digest": digest, "dir": dir})
}
