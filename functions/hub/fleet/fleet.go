// Package fleet is the room of the agents themselves: their identities (written once at enrollment),
// enrollment tokens, heartbeats, labels, retirement, and target selection, which turns "all",
// "env=prod,role=web" or a name into agent ids.
package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// Service keeps the fleet.
type Service struct {
	Store store.Store
	Log   *slog.Logger
	Trail *trail.Recorder
	// Keys are the hub's signing keys, handed to agents at enrollment so they can pin them.
	Keys *hubkey.Keys
	// HeartbeatInterval is how often agents send an unchanged heartbeat (their liveness interval);
	// three missed beats mean offline. Zero: agents' default, offline after 5 minutes.
	HeartbeatInterval time.Duration

	identities store.Once[AgentIdentity]
	labels     store.Once[LabelsVersion]
	retiredAt  store.Once[Retirement]
	retired    retiredCache
	listing    listingCache
	hatchMu    sync.Mutex
	hatch      map[string]bool // last hatch state seen per agent, to audit changes
	beats      beatCache
}

// beatCache keeps the heartbeats this instance received or read, so creating a command for a thousand
// agents does not read a thousand heartbeats for their catalogs. A catalog seen up to beatFresh ago is
// good enough to check a command against: the agent enforces its own whitelist anyway.
type beatCache struct {
	mu sync.Mutex
	m  map[string]beatEntry
}

type beatEntry struct {
	hb    *HeartbeatRecord
	until time.Time
}

const (
	// beatFresh is how long a heartbeat read from the store (maybe written by another instance) is
	// reused; beatReceived how long one this instance received is: the agent sends the next one when
	// its catalog changes, most likely to the same instance.
	beatFresh    = 30 * time.Second
	beatReceived = 5 * time.Minute
)

func (c *beatCache) get(id string) (*HeartbeatRecord, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || time.Now().After(e.until) {
		return nil, false
	}
	return e.hb, true
}

func (c *beatCache) put(id string, hb *HeartbeatRecord, fresh time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]beatEntry{}
	}
	c.m[id] = beatEntry{hb: hb, until: time.Now().Add(fresh)}
}

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

// LabelsVersion is one change of an agent's labels; the newest version replaces the enrollment labels.
type LabelsVersion struct {
	Version   int               `json:"version"`
	Labels    map[string]string `json:"labels"`
	ChangedBy string            `json:"changedBy"`
	ChangedAt time.Time         `json:"changedAt"`
}

// HeartbeatRecord is the latest heartbeat of an agent, as received.
type HeartbeatRecord struct {
	wire.Heartbeat
	ReceivedAt time.Time `json:"receivedAt"`
}

// AgentIDFor derives the agent id from its public key: an agent retrying enrollment after a lost answer
// gets the same id (and uses no second token use), and no two keys share an id.
func AgentIDFor(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ag-" + hex.EncodeToString(sum[:10])
}

// Identity returns an agent's identity, from memory when it was read before.
func (s *Service) Identity(ctx context.Context, id string) (*AgentIdentity, error) {
	a, err := s.identities.Get(ctx, s.Store, layout.Agent(id))
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", id, err)
	}
	return a, nil
}

// Name returns an agent's name, or "" when it cannot be read.
func (s *Service) Name(ctx context.Context, id string) string {
	if a, err := s.Identity(ctx, id); err == nil {
		return a.Name
	}
	return ""
}

// PublicKey is the key an agent's requests must be signed with. A retired agent has none.
func (s *Service) PublicKey(ctx context.Context, id string) (ed25519.PublicKey, error) {
	if !layout.ValidID(id) {
		return nil, fmt.Errorf("key id %q is not an agent id", id)
	}
	a, err := s.Identity(ctx, id)
	if err != nil {
		return nil, err
	}
	retired, err := s.retiredSet(ctx)
	if err != nil {
		return nil, err
	}
	if r, ok := retired[id]; ok {
		return nil, fmt.Errorf("agent %s was retired at %s by %s", id, r.At.Format(time.RFC3339), r.By)
	}
	return ed25519.PublicKey(a.PublicKey), nil
}

// Heartbeat returns an agent's latest heartbeat, nil when it never sent one.
func (s *Service) Heartbeat(ctx context.Context, id string) (*HeartbeatRecord, error) {
	var hb HeartbeatRecord
	_, err := store.ReadJSON(ctx, s.Store, layout.Heartbeat(id), &hb)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &hb, nil
}

// CatalogOf is what the agent last said it can run: the latest heartbeat's catalog, else enrollment's.
func CatalogOf(a *AgentIdentity, hb *HeartbeatRecord) []wire.CommandSpec {
	if hb != nil && hb.Catalog != nil {
		return hb.Catalog
	}
	return a.Catalog
}

// FindSpec looks a command up in a catalog.
func FindSpec(cat []wire.CommandSpec, name string) (wire.CommandSpec, bool) {
	for _, c := range cat {
		if c.Name == name {
			return c, true
		}
	}
	return wire.CommandSpec{}, false
}

// --- labels ---

func labelKeyOK(k string) bool {
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

// ValidLabels refuses label keys and values that would not survive a selector.
func ValidLabels(labels map[string]string) error {
	for k, v := range labels {
		if !labelKeyOK(k) {
			return &domain.Error{Kind: domain.KindInvalid, Field: "body.labels", Msg: fmt.Sprintf("label key %q: use letters, digits, - _ . / (at most 63)", k)}
		}
		// A selector trims white space around each pair, so a value that starts or ends with it could
		// never be selected (found by FuzzSelect).
		if len(v) > 255 || strings.ContainsAny(v, ",=") || strings.TrimSpace(v) != v {
			return &domain.Error{Kind: domain.KindInvalid, Field: "body.labels", Msg: fmt.Sprintf("label %s: value %q must be at most 255 bytes without ',' or '=' and not start or end with white space", k, v)}
		}
	}
	return nil
}

// labelVersions lists the label version keys of every agent whose labels were changed, oldest first.
func (s *Service) labelVersions(ctx context.Context) (map[string][]string, error) {
	versions := map[string][]string{}
	err := store.Walk(ctx, s.Store, layout.AgentLabels, "", 0, func(o store.ObjectInfo) error {
		agent, _, _ := strings.Cut(strings.TrimPrefix(o.Key, layout.AgentLabels), "/")
		versions[agent] = append(versions[agent], o.Key) // keys sort by version
		return nil
	})
	return versions, err
}

// agentLabels returns an agent's current labels and their version (0: those of its enrollment): the
// newest version the hub wrote. A planted version fails the integrity check and is passed over, so it
// can neither move the agent into a selector's targets nor hide its real labels.
func (s *Service) agentLabels(ctx context.Context, a *AgentIdentity, keys []string) (map[string]string, int, error) {
	v, err := s.labels.Newest(ctx, s.Store, keys)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return a.Labels, 0, nil
	case err != nil:
		return nil, 0, err
	}
	return v.Labels, v.Version, nil
}

// SetLabels replaces an agent's labels. The change is a new write-once version; the enrollment labels
// stay in the identity, so history is kept.
func (s *Service) SetLabels(ctx context.Context, id string, labels map[string]string) (AgentView, error) {
	if err := ValidLabels(labels); err != nil {
		return AgentView{}, err
	}
	t, err := s.Target(ctx, id)
	if err != nil {
		return AgentView{}, err
	}
	if labels == nil {
		labels = map[string]string{}
	}
	next := t.LabelsVersion + 1
	v := LabelsVersion{Version: next, Labels: labels, ChangedBy: domain.PrincipalFrom(ctx).ID, ChangedAt: time.Now().UTC()}
	created, err := store.CreateJSON(ctx, s.Store, layout.AgentLabelsVersion(t.Ident.ID, next), v)
	s.listing.forget() // this hub selects by the new labels at once
	if err != nil {
		return AgentView{}, err
	}
	if !created {
		return AgentView{}, domain.Conflict("the labels of agent %s were changed concurrently; try again", t.Ident.ID)
	}
	s.Trail.Record(ctx, "set-agent-labels", []string{t.Ident.ID}, nil, "ok", map[string]any{"labels": labels, "previous": t.Labels, "version": next})
	t.Labels = labels
	return s.View(t), nil
}

// --- retirement ---

// Retirement records that an agent was retired.
type Retirement struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// retiredCache keeps the set of retired agents for a short while, so checking every agent request costs
// one listing per retiredTTL, not a read per request. A retirement takes effect on other hubs within it.
type retiredCache struct {
	mu      sync.Mutex
	set     map[string]Retirement
	fetched time.Time
}

const retiredTTL = 5 * time.Second

func (s *Service) retiredSet(ctx context.Context) (map[string]Retirement, error) {
	s.retired.mu.Lock()
	if s.retired.set != nil && time.Since(s.retired.fetched) < retiredTTL {
		set := s.retired.set
		s.retired.mu.Unlock()
		return set, nil
	}
	s.retired.mu.Unlock()
	set := map[string]Retirement{}
	err := store.Walk(ctx, s.Store, layout.RetiredAgents, "", 0, func(o store.ObjectInfo) error {
		r, err := s.retiredAt.Get(ctx, s.Store, o.Key) // write-once: each is read once per process
		if errors.Is(err, store.ErrNotFound) {
			return nil // planted (refused by the integrity check): retires nobody
		}
		if err != nil {
			return err
		}
		set[layout.Name(o.Key)] = *r
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.retired.mu.Lock()
	s.retired.set, s.retired.fetched = set, time.Now()
	s.retired.mu.Unlock()
	return set, nil
}

// Retire refuses an agent's identity from now on: its requests are refused and it is no longer a
// target. Its identity, commands and results stay in the store.
func (s *Service) Retire(ctx context.Context, id, reason string) (AgentView, error) {
	t, err := s.Target(ctx, id)
	if err != nil {
		return AgentView{}, err
	}
	r := Retirement{By: domain.PrincipalFrom(ctx).ID, At: time.Now().UTC(), Reason: reason}
	created, err := store.CreateJSON(ctx, s.Store, layout.RetiredAgent(t.Ident.ID), r)
	if err != nil {
		return AgentView{}, err
	}
	if !created {
		return AgentView{}, domain.Conflict("agent %s is already retired", t.Ident.ID)
	}
	s.retired.mu.Lock()
	s.retired.set = nil // this hub refuses the agent at once; the next check lists again
	s.listing.forget()
	s.retired.mu.Unlock()
	s.Log.Info("agent retired", "agent", t.Ident.ID, "name", t.Ident.Name, "by", r.By)
	s.Trail.Record(ctx, "retire-agent", []string{t.Ident.ID}, nil, "ok", map[string]any{"name": t.Ident.Name, "reason": reason})
	t.Retired = &r
	return s.View(t), nil
}

// --- enrollment tokens ---

// EnrollToken is what the bucket keeps of an enrollment token (the key is its hash).
type EnrollToken struct {
	Labels    map[string]string `json:"labels,omitempty"`
	Uses      int               `json:"uses"`
	ExpiresAt time.Time         `json:"expiresAt"`
	CreatedAt time.Time         `json:"createdAt"`
	CreatedBy string            `json:"createdBy"`
}

// EnrollTokenView is an enrollment token as operators see it, without its secret.
type EnrollTokenView struct {
	ID        string            `json:"id" doc:"Public id: the first 16 hex digits of the token's hash."`
	Labels    map[string]string `json:"labels,omitempty"`
	Uses      int               `json:"uses"`
	Used      int               `json:"used" doc:"Agents enrolled with it so far."`
	ExpiresAt time.Time         `json:"expiresAt"`
	CreatedAt time.Time         `json:"createdAt"`
	CreatedBy string            `json:"createdBy"`
	Revoked   bool              `json:"revoked"`
	Expired   bool              `json:"expired"`
}

// Enrollment token lifetimes. An enrollment token is meant to be used soon after it is made (a
// provisioning run, an image build), so it lives a day unless asked otherwise and never more than
// MaxEnrollTokenTTL: a forgotten token in a script or an image stops admitting machines on its own.
const (
	DefaultEnrollTokenTTL = 24 * time.Hour
	MaxEnrollTokenTTL     = 30 * 24 * time.Hour
)

// CreateEnrollToken makes an enrollment token and returns its secret, shown once. A zero ttl is
// DefaultEnrollTokenTTL; a negative one or one above MaxEnrollTokenTTL is refused.
func (s *Service) CreateEnrollToken(ctx context.Context, labels map[string]string, uses int, ttl time.Duration) (string, EnrollToken, error) {
	if err := ValidLabels(labels); err != nil {
		return "", EnrollToken{}, err
	}
	if uses == 0 {
		uses = 1
	}
	if ttl < 0 || ttl > MaxEnrollTokenTTL {
		return "", EnrollToken{}, &domain.Error{Kind: domain.KindInvalid, Field: "body.ttlSeconds",
			Msg: fmt.Sprintf("ttlSeconds must be at most %d (30 days); leave it out for the default, a day", int64(MaxEnrollTokenTTL/time.Second))}
	}
	if ttl == 0 {
		ttl = DefaultEnrollTokenTTL
	}
	secret := access.NewSecret("pet_")
	now := time.Now().UTC()
	tok := EnrollToken{Labels: labels, Uses: uses, ExpiresAt: now.Add(ttl), CreatedAt: now, CreatedBy: domain.PrincipalFrom(ctx).ID}
	hash := access.HashSecret(secret)
	if _, err := store.CreateJSON(ctx, s.Store, layout.EnrollToken(hash), tok); err != nil {
		return "", EnrollToken{}, err
	}
	s.Trail.Record(ctx, "create-enroll-token", nil, nil, "ok", map[string]any{"tokenId": hash[:16], "uses": uses, "labels": tok.Labels, "expiresAt": tok.ExpiresAt})
	return secret, tok, nil
}

// EnrollTokens lists every enrollment token, newest first, with how many uses each has left.
func (s *Service) EnrollTokens(ctx context.Context) ([]EnrollTokenView, map[string]string, error) {
	used := map[string]int{}
	var hashes []string
	err := store.Walk(ctx, s.Store, layout.EnrollTokens, "", 0, func(o store.ObjectInfo) error {
		rest := strings.TrimPrefix(o.Key, layout.EnrollTokens)
		if hash, _, nested := strings.Cut(rest, "/"); nested {
			used[hash]++
		} else {
			hashes = append(hashes, layout.Name(o.Key))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	revoked := map[string]bool{}
	if err := store.Walk(ctx, s.Store, layout.RevokedEnrollTokens, "", 0, func(o store.ObjectInfo) error {
		revoked[layout.Name(o.Key)] = true
		return nil
	}); err != nil {
		return nil, nil, err
	}
	views := make([]EnrollTokenView, len(hashes))
	ids := map[string]string{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, hash := range hashes {
		ids[hash[:16]] = hash
		g.Go(func() error {
			var t EnrollToken
			if _, err := store.ReadJSON(gctx, s.Store, layout.EnrollToken(hash), &t); errors.Is(err, store.ErrNotFound) {
				return nil // refused by the integrity check
			} else if err != nil {
				return err
			}
			views[i] = EnrollTokenView{ID: hash[:16], Labels: t.Labels, Uses: t.Uses, Used: used[hash], ExpiresAt: t.ExpiresAt,
				CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, Revoked: revoked[hash], Expired: time.Now().After(t.ExpiresAt)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	views = slices.DeleteFunc(views, func(v EnrollTokenView) bool { return v.ID == "" })
	sort.Slice(views, func(i, j int) bool { return views[i].CreatedAt.After(views[j].CreatedAt) })
	return views, ids, nil
}

// RevokeEnrollToken stops an enrollment token from enrolling more agents; agents it enrolled stay.
func (s *Service) RevokeEnrollToken(ctx context.Context, id string) error {
	_, ids, err := s.EnrollTokens(ctx)
	if err != nil {
		return err
	}
	hash, ok := ids[id]
	if !ok {
		return domain.NotFound("no enrollment token with id %q (see pulse enroll-token list)", id)
	}
	created, err := store.CreateJSON(ctx, s.Store, layout.RevokedEnrollToken(hash), map[string]any{"by": domain.PrincipalFrom(ctx).ID, "at": time.Now().UTC()})
	if err != nil {
		return err
	}
	if !created {
		return domain.Conflict("enrollment token %s is already revoked", id)
	}
	s.Trail.Record(ctx, "revoke-enroll-token", nil, nil, "ok", map[string]any{"tokenId": id})
	return nil
}

// --- enrollment ---

// Enroll admits an agent that presents an enrollment token and its public key. Retrying with the same
// key and token returns the same identity and uses no second slot.
func (s *Service) Enroll(ctx context.Context, req wire.EnrollRequest) (wire.EnrollResponse, error) {
	if len(req.PublicKey) != ed25519.PublicKeySize {
		return wire.EnrollResponse{}, &domain.Error{Kind: domain.KindInvalid, Field: "body.publicKey", Msg: fmt.Sprintf("publicKey must be a %d-byte ed25519 key, got %d bytes", ed25519.PublicKeySize, len(req.PublicKey))}
	}
	for _, c := range req.Catalog {
		if err := c.Check(); err != nil {
			return wire.EnrollResponse{}, &domain.Error{Kind: domain.KindInvalid, Field: "body.catalog", Msg: "catalog: " + err.Error()}
		}
	}
	if req.Hostname == "" || len(req.Hostname) > 253 {
		return wire.EnrollResponse{}, &domain.Error{Kind: domain.KindInvalid, Field: "body.hostname", Msg: "hostname must be 1-253 characters"}
	}
	hash := access.HashSecret(req.Token)
	var tok EnrollToken
	if _, err := store.ReadJSON(ctx, s.Store, layout.EnrollToken(hash), &tok); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return wire.EnrollResponse{}, domain.Denied("unknown enrollment token")
		}
		return wire.EnrollResponse{}, err
	}
	if time.Now().After(tok.ExpiresAt) {
		return wire.EnrollResponse{}, domain.Denied("enrollment token expired at %s; create a new one with `pulse enroll-token create`", tok.ExpiresAt.Format(time.RFC3339))
	}
	if revoked, err := store.Exists(ctx, s.Store, layout.RevokedEnrollToken(hash)); err != nil {
		return wire.EnrollResponse{}, err
	} else if revoked {
		return wire.EnrollResponse{}, domain.Denied("enrollment token was revoked; create a new one with `pulse enroll-token create`")
	}
	id := AgentIDFor(req.PublicKey)
	resp := func(ident *AgentIdentity) wire.EnrollResponse {
		return wire.EnrollResponse{AgentID: ident.ID, Labels: ident.Labels, HubKeys: s.Keys.Public()}
	}
	// A retry of an enrollment that already happened: same key, same token.
	if existing, err := s.Identity(ctx, id); err == nil {
		if existing.TokenHash != hash {
			return wire.EnrollResponse{}, domain.Conflict("this agent key is already enrolled (with another token); reuse its state dir or delete it to enroll anew")
		}
		if _, err := s.PublicKey(ctx, id); err != nil {
			return wire.EnrollResponse{}, domain.Denied("%v; enroll it anew with a fresh state dir", err)
		}
		return resp(existing), nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return wire.EnrollResponse{}, err
	}
	// Claim one use: slots use-1..use-N are create-only, so concurrent enrollments cannot share one.
	// Counting the slots taken first keeps a token of many uses from costing a write per used slot.
	taken := 0
	if err := store.Walk(ctx, s.Store, layout.EnrollTokenUsesOf(hash), "", 0, func(store.ObjectInfo) error { taken++; return nil }); err != nil {
		return wire.EnrollResponse{}, err
	}
	claimed := false
	for n := taken + 1; n <= tok.Uses && !claimed; n++ {
		created, err := store.CreateJSON(ctx, s.Store, layout.EnrollTokenUse(hash, n), map[string]any{"agent": id, "at": time.Now().UTC()})
		if err != nil {
			return wire.EnrollResponse{}, err
		}
		claimed = created
	}
	if !claimed {
		return wire.EnrollResponse{}, domain.Denied("enrollment token used up (%d of %d uses); create a new one with `pulse enroll-token create`", tok.Uses, tok.Uses)
	}
	ident := &AgentIdentity{
		ID: id, Name: req.Hostname, PublicKey: req.PublicKey, Labels: tok.Labels, Facts: req.Facts, Version: req.Version,
		Catalog: req.Catalog, Integrations: capStatuses(req.Integrations), EnrolledAt: time.Now().UTC(), TokenHash: hash,
	}
	defer s.listing.forget() // this hub can target the new agent at once
	if _, err := store.CreateJSON(ctx, s.Store, layout.Agent(id), ident); err != nil {
		return wire.EnrollResponse{}, err
	}
	s.Log.Info("agent enrolled", "agent", id, "name", ident.Name, "labels", ident.Labels)
	s.Trail.Record(domain.WithAgent(ctx, id), "enroll", []string{id}, nil, "ok", map[string]any{"name": ident.Name, "labels": ident.Labels, "tokenId": hash[:16]})
	return resp(ident), nil
}

// --- heartbeats ---

// RecordHeartbeat stores an agent's heartbeat and audits the shell hatch opening or closing.
func (s *Service) RecordHeartbeat(ctx context.Context, agent string, hb wire.Heartbeat) error {
	for _, c := range hb.Catalog {
		if err := c.Check(); err != nil {
			return &domain.Error{Kind: domain.KindInvalid, Field: "body.catalog", Msg: "catalog: " + err.Error()}
		}
	}
	hb.Integrations = capStatuses(hb.Integrations)
	rec := HeartbeatRecord{Heartbeat: hb, ReceivedAt: time.Now().UTC()}
	if err := store.PutJSON(ctx, s.Store, layout.Heartbeat(agent), rec); err != nil {
		return err
	}
	s.beats.put(agent, &rec, beatReceived)
	s.noteHatch(ctx, agent, hb.Hatch)
	return nil
}

// capStatuses caps the reason of every integration status an agent reports (wire.CapReason): the hub
// shows them, and they must not become a way to store megabytes.
func capStatuses(st []wire.IntegrationStatus) []wire.IntegrationStatus {
	for i := range st {
		st[i].Reason = wire.CapReason(st[i].Reason)
	}
	return st
}

// noteHatch audits the shell hatch opening and closing on an agent, as its heartbeats report it.
func (s *Service) noteHatch(ctx context.Context, agent string, hs *wire.HatchStatus) {
	open := hs != nil && hs.Open
	s.hatchMu.Lock()
	was, known := s.hatch[agent]
	if s.hatch == nil {
		s.hatch = map[string]bool{}
	}
	s.hatch[agent] = open
	s.hatchMu.Unlock()
	if open == was && (known || !open) {
		return
	}
	actx := domain.WithAgent(ctx, agent)
	if open {
		s.Log.Warn("shell hatch OPEN on agent", "agent", agent, "by", hs.By, "until", hs.ExpiresAt)
		s.Trail.Record(actx, "report-unseal", []string{agent}, nil, "ok", map[string]any{"by": hs.By, "openedAt": hs.OpenedAt, "expiresAt": hs.ExpiresAt})
	} else {
		s.Log.Info("shell hatch sealed on agent", "agent", agent)
		s.Trail.Record(actx, "report-seal", []string{agent}, nil, "ok", nil)
	}
}
