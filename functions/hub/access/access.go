// Package access is the room that decides who a request acts for and whether it may: operator API
// tokens (hashed at rest), OIDC bearer tokens, forward-auth identity headers from trusted proxies, the
// per-caller rate limits, and the OPA policy. It speaks domain errors; the HTTP edge reads the
// credentials off the request and writes the problems.
package access

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/policy"
)

// Principal is who an operator request acts for.
type Principal = domain.Principal

// Service authenticates operators, limits callers and asks the policy.
type Service struct {
	Store store.Store
	Log   *slog.Logger
	// Policy decides every operator action.
	Policy *policy.Engine
	// OIDC verifies bearer tokens from an identity provider; nil when not configured.
	OIDC *OIDCVerifier
	// TrustedProxies may set forward-auth identity headers (Remote-User, Remote-Groups, …).
	TrustedProxies []netip.Prefix
	Trail          *trail.Recorder
	// Limits are the per-caller rate limits of this instance.
	Limits Limits
	// AuthFailures are the failed operator authentications per source address (FailedAuthRate), in a
	// map of their own so that a flood of guesses cannot evict the buckets of callers who signed in.
	AuthFailures Limits

	tokens tokenCache
}

// APIToken is what the bucket keeps of an operator token: its hash is the key, the secret is never stored.
type APIToken struct {
	Name      string    `json:"name"`
	Groups    []string  `json:"groups"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// Owner is the person the token belongs to (domain.PersonOf): its creator's, or the person an admin
	// named when creating it for someone else.
	Owner string `json:"owner"`
	// Lineage is the creator's lineage and the creator: the people this credential descends from.
	Lineage []string `json:"lineage,omitempty"`
	// Revoked is derived from a revocation object, never stored in the token's own (write-once) object.
	Revoked bool `json:"-"`
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
	Owner     string    `json:"owner" doc:"The person the token belongs to, e.g. person:alice."`
}

// NewSecret makes a random token with a recognisable prefix, so a leaked one is easy to spot in logs.
func NewSecret(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// TokenID is the public id of a token (operator or enrollment): the first 16 hex digits of its hash,
// the id audit records, `pulse token list` and `pulse enroll-token list` name it by.
func TokenID(secret string) string { return HashSecret(secret)[:16] }

// HashSecret is how tokens are stored and found: hex SHA-256 of the secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// MaxTokenTTL is the longest lifetime an operator token can be given: a year. A lifetime is a promise
// that a leaked token stops working; a larger one (or one whose nanoseconds overflow, which used to
// store tokens "expiring" in 1734 that never expired) promises nothing. Zero means no expiry, which
// is asked for by leaving the lifetime out, never by accident.
const MaxTokenTTL = 365 * 24 * time.Hour

// CheckTokenTTL refuses an operator token lifetime that is negative or above MaxTokenTTL.
func CheckTokenTTL(ttl time.Duration) error {
	if ttl < 0 || ttl > MaxTokenTTL {
		return &domain.Error{Kind: domain.KindInvalid, Field: "body.ttlSeconds",
			Msg: fmt.Sprintf("ttlSeconds must be at most %d (365 days); leave it out for a token that does not expire", int64(MaxTokenTTL/time.Second))}
	}
	return nil
}

// CreateAPIToken stores a new operator token belonging to the person called name, with no lineage, and
// returns its secret, shown once. It is a function of the store alone, so `pulse init` can make the
// first admin token before any hub runs.
func CreateAPIToken(ctx context.Context, s store.Store, name string, groups []string, ttl time.Duration, by string) (string, error) {
	return createToken(ctx, s, APIToken{Name: name, Groups: groups, CreatedBy: by, Owner: domain.PersonOf("person", name)}, ttl)
}

func createToken(ctx context.Context, s store.Store, t APIToken, ttl time.Duration) (string, error) {
	if err := CheckTokenTTL(ttl); err != nil {
		return "", err
	}
	name := t.Name
	secret := NewSecret("pulse_")
	t.CreatedAt = time.Now().UTC()
	if ttl > 0 {
		t.ExpiresAt = t.CreatedAt.Add(ttl)
	}
	if _, err := store.CreateJSON(ctx, s, layout.Token(HashSecret(secret)), t); err != nil {
		return "", fmt.Errorf("create token %s: %w", name, err)
	}
	return secret, nil
}

// HasAPITokens reports whether any operator token was ever created in the store.
func HasAPITokens(ctx context.Context, s store.Store) (bool, error) {
	page, err := s.List(ctx, layout.Tokens, "", 1)
	if err != nil {
		return false, err
	}
	return len(page.Objects) > 0, nil
}

// CreateToken makes an operator token for the caller's request and returns its view and secret. The
// token belongs to the caller, or to the person forPerson names (an admin onboarding someone); either
// way it descends from the caller, so it never approves the caller's own commands.
func (s *Service) CreateToken(ctx context.Context, name string, groups []string, ttl time.Duration, forPerson string) (TokenView, string, error) {
	if !layout.ValidID(name) {
		return TokenView{}, "", &domain.Error{Kind: domain.KindInvalid, Field: "body.name", Msg: "token name: letters, digits, - and _ only"}
	}
	if forPerson != "" && !layout.ValidID(forPerson) {
		return TokenView{}, "", &domain.Error{Kind: domain.KindInvalid, Field: "body.for", Msg: "person: letters, digits, - and _ only"}
	}
	me := domain.PrincipalFrom(ctx)
	t := APIToken{Name: name, Groups: groups, CreatedBy: me.ID, Owner: me.Person}
	if forPerson != "" || t.Owner == "" {
		t.Owner = domain.PersonOf("person", cmp.Or(forPerson, name))
	}
	for _, p := range append(slices.Clone(me.Lineage), me.Person) {
		if p != "" && !slices.Contains(t.Lineage, p) && p != t.Owner {
			t.Lineage = append(t.Lineage, p)
		}
	}
	secret, err := createToken(ctx, s.Store, t, ttl)
	if err != nil {
		return TokenView{}, "", err
	}
	v := TokenView{ID: TokenID(secret), Name: name, Groups: groups, CreatedAt: time.Now().UTC(), CreatedBy: me.ID, Owner: t.Owner}
	if ttl > 0 {
		v.ExpiresAt = v.CreatedAt.Add(ttl)
	}
	s.Trail.Record(ctx, "create-token", nil, nil, "ok", map[string]any{"tokenId": v.ID, "name": name, "groups": groups, "owner": t.Owner})
	return v, secret, nil
}

// Tokens lists every operator token, oldest first, with a map from public id to hash.
func (s *Service) Tokens(ctx context.Context) ([]TokenView, map[string]string, error) {
	views := []TokenView{}
	hashes := map[string]string{}
	err := store.Walk(ctx, s.Store, layout.Tokens, "", 0, func(o store.ObjectInfo) error {
		hash := layout.Name(o.Key)
		t, err := s.lookupHash(ctx, hash)
		if err != nil || t == nil {
			return err
		}
		id := hash[:16]
		hashes[id] = hash
		views = append(views, TokenView{ID: id, Name: t.Name, Groups: t.Groups, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked, Owner: t.Owner})
		return nil
	})
	sort.Slice(views, func(i, j int) bool { return views[i].CreatedAt.Before(views[j].CreatedAt) })
	return views, hashes, err
}

// RevokeToken revokes an operator token by its public id; every hub stops accepting it within tokenTTL.
func (s *Service) RevokeToken(ctx context.Context, id string) error {
	_, hashes, err := s.Tokens(ctx)
	if err != nil {
		return err
	}
	hash, ok := hashes[id]
	if !ok {
		return domain.NotFound("no token with id %q (see pulse token list)", id)
	}
	if _, err := store.CreateJSON(ctx, s.Store, layout.RevokedToken(hash), map[string]any{"by": domain.PrincipalFrom(ctx).ID, "at": time.Now().UTC()}); err != nil {
		return err
	}
	s.tokens.forget(hash)
	s.Trail.Record(ctx, "revoke-token", nil, nil, "ok", map[string]any{"tokenId": id})
	return nil
}

// tokenCache keeps token lookups for a short while: a revoked token stops working within tokenTTL.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]tokenEntry
}

type tokenEntry struct {
	tok     *APIToken
	fetched time.Time
}

// tokenTTL bounds how long a revocation takes to reach a running hub.
const tokenTTL = 5 * time.Second

func (s *Service) lookupHash(ctx context.Context, hash string) (*APIToken, error) {
	if t, ok := s.tokens.fresh(hash); ok {
		return t, nil
	}
	var t APIToken
	_, err := store.ReadJSON(ctx, s.Store, layout.Token(hash), &t)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if t.Revoked, err = store.Exists(ctx, s.Store, layout.RevokedToken(hash)); err != nil {
		return nil, err
	}
	s.tokens.put(hash, &t)
	return &t, nil
}

func (c *tokenCache) fresh(hash string) (*APIToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[hash]
	if !ok || time.Since(e.fetched) >= tokenTTL {
		return nil, false
	}
	return e.tok, true
}

func (c *tokenCache) put(hash string, t *APIToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]tokenEntry{}
	}
	c.m[hash] = tokenEntry{tok: t, fetched: time.Now()}
}

func (c *tokenCache) forget(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, hash)
}

// Credentials are what an operator request presents, as the edge read them off the request.
type Credentials struct {
	Authorization string
	// Forward-auth identity headers, believed only from a trusted proxy.
	RemoteUser, RemoteName, RemoteEmail, RemoteGroups string
	// RemoteAddr is the peer's address (host:port).
	RemoteAddr string
	// Source is the client's address as a limit key (Service.Source); a failed authentication is
	// counted against it. Empty: not counted.
	Source string
}

// Authenticate establishes who an operator request acts for, in this order: identity headers from a
// trusted forward-auth proxy; an API token (pulse_…); an OIDC bearer token. Identity headers from any
// other peer are ignored and logged, so a client cannot claim to be someone by setting a header.
// A refusal is KindUnauthenticated and counts against c.Source (see AuthWait); any other error is the
// store's and counts against nobody.
func (s *Service) Authenticate(ctx context.Context, c Credentials) (Principal, error) {
	p, err := s.authenticate(ctx, c)
	if de := (*domain.Error)(nil); c.Source != "" && errors.As(err, &de) && de.Kind == domain.KindUnauthenticated {
		if ok, _ := s.AuthFailures.Allow(c.Source, FailedAuthRate); !ok {
			s.Log.Warn("failed authentications over the limit", "source", c.Source)
		}
	}
	return p, err
}

func (s *Service) authenticate(ctx context.Context, c Credentials) (Principal, error) {
	if c.RemoteUser != "" {
		if s.fromTrustedProxy(c.RemoteAddr) {
			p := Principal{ID: c.RemoteUser, Name: c.RemoteName, Email: c.RemoteEmail, Via: "forward-auth",
				Person: domain.PersonOf("forward", c.RemoteUser)}
			for _, g := range strings.Split(c.RemoteGroups, ",") {
				if g = strings.TrimSpace(g); g != "" {
					p.Groups = append(p.Groups, g)
				}
			}
			return p, nil
		}
		s.Log.Warn("ignored forward-auth headers from an untrusted peer", "peer", c.RemoteAddr, "remote_user", c.RemoteUser)
	}
	secret, ok := bearer(c.Authorization)
	if !ok {
		return Principal{}, domain.Unauthenticated("missing credentials: send Authorization: Bearer <token> (pulse --token or PULSE_TOKEN)")
	}
	if strings.HasPrefix(secret, "pulse_") || s.OIDC == nil {
		tok, err := s.lookupHash(ctx, HashSecret(secret))
		if err != nil {
			return Principal{}, fmt.Errorf("cannot check the token: %w", err)
		}
		switch {
		case tok == nil:
			return Principal{}, domain.Unauthenticated("unknown operator token")
		case tok.Revoked:
			return Principal{}, domain.Unauthenticated("operator token %q was revoked", tok.Name)
		case !tok.ExpiresAt.IsZero() && time.Now().After(tok.ExpiresAt):
			return Principal{}, domain.Unauthenticated("operator token %q expired at %s", tok.Name, tok.ExpiresAt.Format(time.RFC3339))
		}
		return Principal{ID: tok.Name, Groups: tok.Groups, Via: "token", Person: tok.Owner, Lineage: tok.Lineage}, nil
	}
	p, err := s.OIDC.Verify(ctx, secret)
	if err != nil {
		return Principal{}, domain.Unauthenticated("OIDC token refused: %v", err)
	}
	return p, nil
}

// bearer returns the token of an Authorization header with the Bearer scheme. RFC 9110 §11.1 makes
// the scheme case-insensitive, so clients that send "bearer" (several HTTP libraries do) are served.
func bearer(authorization string) (string, bool) {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func (s *Service) fromTrustedProxy(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	return err == nil && s.trusted(ap.Addr())
}

// trusted reports whether a is one of the TrustedProxies.
func (s *Service) trusted(a netip.Addr) bool {
	for _, pfx := range s.TrustedProxies {
		if pfx.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// Decide asks the policy about an action of the principal in ctx. A denial is audited and returned as
// a KindDenied error naming the rules.
func (s *Service) Decide(ctx context.Context, in policy.Input) (policy.Decision, error) {
	if s.Policy == nil {
		return policy.Decision{}, domain.Internal("no policy loaded")
	}
	p := domain.PrincipalFrom(ctx)
	in.Principal = policy.Principal{ID: p.ID, Name: p.Name, Groups: p.Groups, Via: p.Via}
	if in.Time.IsZero() {
		in.Time = time.Now().UTC()
	}
	d, err := s.Policy.Decide(ctx, in)
	if err != nil {
		return d, domain.Internal("policy evaluation failed: %v", err)
	}
	if !d.Allow {
		var targets []string
		for _, t := range in.Targets {
			targets = append(targets, t.ID)
		}
		s.Trail.Record(ctx, in.Action, targets, &d, "denied", map[string]any{"command": in.Command})
		return d, &domain.Error{Kind: domain.KindDenied, Msg: "denied by policy: " + strings.Join(d.Reasons, "; "), Rules: d.Rules}
	}
	return d, nil
}

// PolicyLoaded audits which policy this hub runs with (a digest of every source file), so a policy
// change shows in the audit log as the first start with a new digest.
func (s *Service) PolicyLoaded(ctx context.Context, dir string) {
	names := []string{}
	srcs := s.Policy.Sources()
	for n := range srcs {
		names = append(names, n)
	}
	sort.Strings(names)
	var all strings.Builder
	for _, n := range names {
		all.WriteString(n + "\x00" + srcs[n] + "\x00")
	}
	digest := HashSecret(all.String())[:16]
	s.Log.Info("policy loaded", "files", len(names), "digest", digest, "dir", dir)
	s.Trail.Record(domain.WithPrincipal(ctx, Principal{ID: "hub", Via: "startup"}), "policy-loaded", nil, nil, "ok",
		map[string]any{"files": names, "digest": digest, "dir": dir})
}
