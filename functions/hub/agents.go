package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/store"
)

// AgentIdentity is written once at enrollment and never changes, so hubs cache it forever.
type AgentIdentity struct {
	ID           string                   `json:"id"`
	Name         string                   `json:"name" doc:"The agent's hostname at enrollment."`
	PublicKey    []byte                   `json:"publicKey"`
	Labels       map[string]string        `json:"labels,omitempty"`
	Facts        map[string]string        `json:"facts,omitempty"`
	Version      string                   `json:"version"`
	Catalog      []wire.CommandSpec       `json:"catalog"`
	Integrations []wire.IntegrationStatus `json:"integrations,omitempty"`
	EnrolledAt   time.Time                `json:"enrolledAt"`
	TokenHash    string                   `json:"tokenHash"`
}

// HeartbeatRecord is the latest heartbeat of an agent, as received.
type HeartbeatRecord struct {
	wire.Heartbeat
	ReceivedAt time.Time `json:"receivedAt"`
}

// EnrollToken is what the bucket keeps of an enrollment token (the key is its hash).
type EnrollToken struct {
	Labels    map[string]string `json:"labels,omitempty"`
	Uses      int               `json:"uses"`
	ExpiresAt time.Time         `json:"expiresAt"`
	CreatedAt time.Time         `json:"createdAt"`
	CreatedBy string            `json:"createdBy"`
}

// AgentIDFor derives the agent id from its public key: an agent retrying enrollment after a lost answer
// gets the same id (and uses no second token use), and no two keys share an id.
func AgentIDFor(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ag-" + hex.EncodeToString(sum[:10])
}

// identity returns an agent's identity, from memory when it was read before.
func (h *Hub) identity(ctx context.Context, id string) (*AgentIdentity, error) {
	a, err := h.identities.get(ctx, h.Store, keyAgent(id))
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", id, err)
	}
	return a, nil
}

// allIdentities lists every enrolled agent.
func (h *Hub) allIdentities(ctx context.Context) ([]*AgentIdentity, error) {
	var ids []string
	err := store.Walk(ctx, h.Store, prefixAgents, "", 0, func(o store.ObjectInfo) error {
		ids = append(ids, lastSegment(o.Key))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*AgentIdentity, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, id := range ids {
		g.Go(func() error {
			a, err := h.identity(gctx, id)
			out[i] = a
			return err
		})
	}
	return out, g.Wait()
}

func (h *Hub) heartbeat(ctx context.Context, id string) (*HeartbeatRecord, error) {
	var hb HeartbeatRecord
	_, err := readJSON(ctx, h.Store, keyHeartbeat(id), &hb)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &hb, nil
}

// catalogOf is what the agent last said it can run: the latest heartbeat's catalog, else enrollment's.
func catalogOf(a *AgentIdentity, hb *HeartbeatRecord) []wire.CommandSpec {
	if hb != nil && hb.Catalog != nil {
		return hb.Catalog
	}
	return a.Catalog
}

// --- enrollment tokens ---------------------------------------------------------------------------

// EnrollTokenInput asks for an enrollment token.
type EnrollTokenInput struct {
	Body struct {
		Labels     map[string]string `json:"labels,omitempty" doc:"Labels every agent enrolled with this token gets."`
		Uses       int               `json:"uses,omitempty" minimum:"0" maximum:"100000" doc:"How many agents may enroll with it (default 1)."`
		TTLSeconds int               `json:"ttlSeconds,omitempty" minimum:"0" doc:"Lifetime in seconds (default 86400)."`
	}
}

// EnrollTokenOutput returns the token, shown once.
type EnrollTokenOutput struct {
	Body struct {
		Token     string            `json:"token" doc:"The secret; only its hash is stored. Shown once."`
		Uses      int               `json:"uses"`
		ExpiresAt time.Time         `json:"expiresAt"`
		Labels    map[string]string `json:"labels,omitempty"`
	}
}

var labelKeyOK = func(k string) bool {
	if k == "" || len(k) > 63 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./", c)) {
			return false
		}
	}
	return true
}

func validLabels(labels map[string]string) error {
	for k, v := range labels {
		if !labelKeyOK(k) {
			return fmt.Errorf("label key %q: use letters, digits, - _ . / (at most 63)", k)
		}
		if len(v) > 255 || strings.ContainsAny(v, ",=") {
			return fmt.Errorf("label %s: value %q must be at most 255 bytes without ',' or '='", k, v)
		}
	}
	return nil
}

func (h *Hub) createEnrollToken(ctx context.Context, in *EnrollTokenInput) (*EnrollTokenOutput, error) {
	if err := validLabels(in.Body.Labels); err != nil {
		return nil, huma.Error422UnprocessableEntity(err.Error())
	}
	uses := in.Body.Uses
	if uses == 0 {
		uses = 1
	}
	ttl := time.Duration(in.Body.TTLSeconds) * time.Second
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	secret := NewSecret("pet_")
	now := time.Now().UTC()
	tok := EnrollToken{Labels: in.Body.Labels, Uses: uses, ExpiresAt: now.Add(ttl), CreatedAt: now, CreatedBy: PrincipalFrom(ctx).ID}
	if _, err := createJSON(ctx, h.Store, prefixEnrollTokens+HashSecret(secret)+".json", tok); err != nil {
		return nil, h.storeError(ctx, err)
	}
	out := &EnrollTokenOutput{}
	out.Body.Token, out.Body.Uses, out.Body.ExpiresAt, out.Body.Labels = secret, uses, tok.ExpiresAt, tok.Labels
	h.record(ctx, "create-enroll-token", nil, nil, "ok", map[string]any{"tokenId": HashSecret(secret)[:16], "uses": uses, "labels": tok.Labels, "expiresAt": tok.ExpiresAt})
	return out, nil
}

// --- enrollment ------------------------------------------------------------------------------------

// EnrollInput is an agent's enrollment.
type EnrollInput struct {
	Body wire.EnrollRequest
}

// EnrollOutput answers an enrollment.
type EnrollOutput struct {
	Body wire.EnrollResponse
}

func (h *Hub) enroll(ctx context.Context, in *EnrollInput) (*EnrollOutput, error) {
	req := in.Body
	if len(req.PublicKey) != ed25519.PublicKeySize {
		return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("publicKey must be a %d-byte ed25519 key, got %d bytes", ed25519.PublicKeySize, len(req.PublicKey)))
	}
	for _, c := range req.Catalog {
		if err := c.Check(); err != nil {
			return nil, huma.Error422UnprocessableEntity("catalog: " + err.Error())
		}
	}
	if req.Hostname == "" || len(req.Hostname) > 253 {
		return nil, huma.Error422UnprocessableEntity("hostname must be 1-253 characters")
	}
	hash := HashSecret(req.Token)
	var tok EnrollToken
	if _, err := readJSON(ctx, h.Store, prefixEnrollTokens+hash+".json", &tok); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, huma.Error403Forbidden("unknown enrollment token")
		}
		return nil, h.storeError(ctx, err)
	}
	if time.Now().After(tok.ExpiresAt) {
		return nil, huma.Error403Forbidden(fmt.Sprintf("enrollment token expired at %s; create a new one with `pulse enroll-token create`", tok.ExpiresAt.Format(time.RFC3339)))
	}
	id := AgentIDFor(req.PublicKey)
	resp := func(ident *AgentIdentity) *EnrollOutput {
		return &EnrollOutput{Body: wire.EnrollResponse{AgentID: ident.ID, Labels: ident.Labels, HubKeys: h.Keys.Public()}}
	}
	// A retry of an enrollment that already happened: same key, same token.
	if existing, err := h.identity(ctx, id); err == nil {
		if existing.TokenHash != hash {
			return nil, huma.Error409Conflict("this agent key is already enrolled (with another token); reuse its state dir or delete it to enroll anew")
		}
		return resp(existing), nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, h.storeError(ctx, err)
	}
	// Claim one use: slots use-1..use-N are create-only, so concurrent enrollments cannot share one.
	// Counting the slots taken first keeps a token of many uses from costing a write per used slot.
	taken := 0
	if err := store.Walk(ctx, h.Store, prefixEnrollTokens+hash+"/", "", 0, func(store.ObjectInfo) error { taken++; return nil }); err != nil {
		return nil, h.storeError(ctx, err)
	}
	claimed := false
	for n := taken + 1; n <= tok.Uses && !claimed; n++ {
		created, err := createJSON(ctx, h.Store, fmt.Sprintf("%s%s/use-%06d.json", prefixEnrollTokens, hash, n), map[string]any{"agent": id, "at": time.Now().UTC()})
		if err != nil {
			return nil, h.storeError(ctx, err)
		}
		claimed = created
	}
	if !claimed {
		return nil, huma.Error403Forbidden(fmt.Sprintf("enrollment token used up (%d of %d uses); create a new one with `pulse enroll-token create`", tok.Uses, tok.Uses))
	}
	ident := &AgentIdentity{
		ID: id, Name: req.Hostname, PublicKey: req.PublicKey, Labels: tok.Labels, Facts: req.Facts, Version: req.Version,
		Catalog: req.Catalog, Integrations: req.Integrations, EnrolledAt: time.Now().UTC(), TokenHash: hash,
	}
	if _, err := createJSON(ctx, h.Store, keyAgent(id), ident); err != nil {
		return nil, h.storeError(ctx, err)
	}
	h.Log.Info("agent enrolled", "agent", id, "name", ident.Name, "labels", ident.Labels)
	h.record(context.WithValue(ctx, agentKey, id), "enroll", []string{id}, nil, "ok", map[string]any{"name": ident.Name, "labels": ident.Labels, "tokenId": hash[:16]})
	return resp(ident), nil
}

// --- heartbeats ------------------------------------------------------------------------------------

// HeartbeatInput is an agent's heartbeat.
type HeartbeatInput struct {
	ID   string `path:"id"`
	Body wire.Heartbeat
}

func (h *Hub) recordHeartbeat(ctx context.Context, in *HeartbeatInput) (*struct{}, error) {
	for _, c := range in.Body.Catalog {
		if err := c.Check(); err != nil {
			return nil, huma.Error422UnprocessableEntity("catalog: " + err.Error())
		}
	}
	rec := HeartbeatRecord{Heartbeat: in.Body, ReceivedAt: time.Now().UTC()}
	if err := putJSON(ctx, h.Store, keyHeartbeat(in.ID), rec); err != nil {
		return nil, h.storeError(ctx, err)
	}
	h.noteHatch(ctx, in.ID, in.Body.Hatch)
	return nil, nil
}

// noteHatch audits the shell hatch opening and closing on an agent, as its heartbeats report it.
func (h *Hub) noteHatch(ctx context.Context, agent string, hs *wire.HatchStatus) {
	open := hs != nil && hs.Open
	h.hatchMu.Lock()
	was, known := h.hatch[agent]
	if h.hatch == nil {
		h.hatch = map[string]bool{}
	}
	h.hatch[agent] = open
	h.hatchMu.Unlock()
	if open == was && (known || !open) {
		return
	}
	actx := context.WithValue(ctx, agentKey, agent)
	if open {
		h.Log.Warn("shell hatch OPEN on agent", "agent", agent, "by", hs.By, "until", hs.ExpiresAt)
		h.record(actx, "report-unseal", []string{agent}, nil, "ok", map[string]any{"by": hs.By, "openedAt": hs.OpenedAt, "expiresAt": hs.ExpiresAt})
	} else {
		h.Log.Info("shell hatch sealed on agent", "agent", agent)
		h.record(actx, "report-seal", []string{agent}, nil, "ok", nil)
	}
}

// --- listing ---------------------------------------------------------------------------------------

// AgentView is an agent as operators see it.
type AgentView struct {
	ID           string                   `json:"id"`
	Name         string                   `json:"name"`
	Labels       map[string]string        `json:"labels,omitempty"`
	Online       bool                     `json:"online"`
	LastSeen     time.Time                `json:"lastSeen,omitzero"`
	Version      string                   `json:"version"`
	EnrolledAt   time.Time                `json:"enrolledAt"`
	Disabled     []wire.IntegrationStatus `json:"disabled,omitempty" doc:"Soft-disabled integrations and why."`
	Hatch        *wire.HatchStatus        `json:"hatch,omitempty" doc:"The shell hatch, when it is open."`
	Integrations []wire.IntegrationStatus `json:"integrations,omitempty"`
	Commands     []string                 `json:"commands,omitempty"`
}

// ListAgentsInput filters the agent list.
type ListAgentsInput struct {
	Selector string `query:"selector" doc:"Target expression: all, an agent id, a name, or labels k=v,k2=v2."`
}

// ListAgentsOutput lists agents.
type ListAgentsOutput struct {
	Body struct {
		Agents []AgentView `json:"agents"`
	}
}

func (h *Hub) view(a *AgentIdentity, hb *HeartbeatRecord) AgentView {
	v := AgentView{ID: a.ID, Name: a.Name, Labels: a.Labels, Version: a.Version, EnrolledAt: a.EnrolledAt, Integrations: a.Integrations}
	if hb != nil {
		v.LastSeen = hb.ReceivedAt
		v.Online = time.Since(hb.ReceivedAt) < h.offlineAfter()
		v.Version = hb.Version
		if hb.Integrations != nil {
			v.Integrations = hb.Integrations
		}
		if hb.Hatch != nil && hb.Hatch.Open && time.Now().Before(hb.Hatch.ExpiresAt) {
			v.Hatch = hb.Hatch
		}
	}
	for _, s := range v.Integrations {
		if !s.Enabled {
			v.Disabled = append(v.Disabled, s)
		}
	}
	for _, c := range catalogOf(a, hb) {
		v.Commands = append(v.Commands, c.Name)
	}
	return v
}

func (h *Hub) offlineAfter() time.Duration {
	if h.HeartbeatInterval > 0 {
		return 3 * h.HeartbeatInterval
	}
	return 90 * time.Second
}

func (h *Hub) listAgents(ctx context.Context, in *ListAgentsInput) (*ListAgentsOutput, error) {
	agents, err := h.resolveAll(ctx)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	if in.Selector != "" {
		agents, err = selectTargets(agents, strings.Split(in.Selector, ";"))
		if err != nil {
			return nil, huma.Error422UnprocessableEntity(err.Error())
		}
	}
	out := &ListAgentsOutput{}
	out.Body.Agents = []AgentView{}
	for _, t := range agents {
		out.Body.Agents = append(out.Body.Agents, h.view(t.ident, t.hb))
	}
	return out, nil
}

// target is an agent with its latest heartbeat.
type target struct {
	ident *AgentIdentity
	hb    *HeartbeatRecord
}

// resolveAll reads every agent and its heartbeat, sorted by id.
func (h *Hub) resolveAll(ctx context.Context) ([]target, error) {
	all, err := h.identitiesOnly(ctx)
	if err != nil {
		return nil, err
	}
	return all, h.withHeartbeats(ctx, all)
}

// identitiesOnly lists every agent without reading heartbeats (identities are cached, heartbeats are
// not), so a command can choose its targets before paying for their heartbeats.
func (h *Hub) identitiesOnly(ctx context.Context) ([]target, error) {
	idents, err := h.allIdentities(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]target, len(idents))
	for i, a := range idents {
		out[i] = target{ident: a}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ident.ID < out[j].ident.ID })
	return out, nil
}

// withHeartbeats fills in the latest heartbeat of each target.
func (h *Hub) withHeartbeats(ctx context.Context, ts []target) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range ts {
		g.Go(func() error {
			hb, err := h.heartbeat(gctx, ts[i].ident.ID)
			ts[i].hb = hb
			return err
		})
	}
	return g.Wait()
}

// selectTargets applies target expressions (union): "all", an agent id, an agent name, or a label
// selector "k=v,k2=v2" (every pair must match). An expression that matches nothing is an error, so a
// typo does not silently address zero machines.
func selectTargets(all []target, exprs []string) ([]target, error) {
	chosen := map[string]bool{}
	for _, raw := range exprs {
		expr := strings.TrimSpace(raw)
		if expr == "" {
			continue
		}
		matched := 0
		for _, t := range all {
			if matchTarget(t.ident, expr) {
				chosen[t.ident.ID] = true
				matched++
			}
		}
		if matched == 0 {
			return nil, fmt.Errorf("target %q matches no agent", expr)
		}
	}
	var out []target
	for _, t := range all {
		if chosen[t.ident.ID] {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no targets given; use all, an agent id or name, or labels k=v")
	}
	return out, nil
}

func matchTarget(a *AgentIdentity, expr string) bool {
	if expr == "all" || expr == a.ID || expr == a.Name {
		return true
	}
	if !strings.Contains(expr, "=") {
		return false
	}
	for _, pair := range strings.Split(expr, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || a.Labels[k] != v {
			return false
		}
	}
	return true
}

// storeError turns a store failure into a 503 that says the store is the problem.
// Only a request whose own context ended gets 499; a store call that failed for any other reason,
// cancellation inside a library included, is the store's problem and is logged with its cause.
func (h *Hub) storeError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return huma.NewError(499, "request cancelled")
	}
	h.Log.Error("store operation failed", "err", err)
	return huma.NewError(http.StatusServiceUnavailable, "store unavailable, try again: "+err.Error())
}
