package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/functions/store"
)

// Principal is who an operator request acts for.
type Principal struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Email  string   `json:"email,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Via    string   `json:"via" doc:"How the principal authenticated: token, oidc or forward-auth."`
}

// APIToken is what the bucket keeps of an operator token: its hash is the key, the secret is never stored.
type APIToken struct {
	Name      string    `json:"name"`
	Groups    []string  `json:"groups"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// Revoked is derived from a revocation object, never stored in the token's own (write-once) object.
	Revoked bool `json:"-"`
}

// NewSecret makes a random token with a recognisable prefix, so a leaked one is easy to spot in logs.
func NewSecret(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// HashSecret is how tokens are stored and found: hex SHA-256 of the secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateAPIToken stores a new operator token and returns its secret, shown once.
func CreateAPIToken(ctx context.Context, s store.Store, name string, groups []string, ttl time.Duration, by string) (string, error) {
	secret := NewSecret("pulse_")
	t := APIToken{Name: name, Groups: groups, CreatedAt: time.Now().UTC(), CreatedBy: by}
	if ttl > 0 {
		t.ExpiresAt = t.CreatedAt.Add(ttl)
	}
	if _, err := createJSON(ctx, s, prefixTokens+HashSecret(secret)+".json", t); err != nil {
		return "", fmt.Errorf("create token %s: %w", name, err)
	}
	return secret, nil
}

// HasAPITokens reports whether any operator token was ever created in the store.
func HasAPITokens(ctx context.Context, s store.Store) (bool, error) {
	page, err := s.List(ctx, prefixTokens, "", 1)
	if err != nil {
		return false, err
	}
	return len(page.Objects) > 0, nil
}

type ctxKey int

const (
	principalKey ctxKey = iota
	agentKey
)

// PrincipalFrom returns the authenticated operator of a request.
func PrincipalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey).(Principal)
	return p
}

// AgentFrom returns the id of the agent whose signature a request carried.
func AgentFrom(ctx context.Context) string {
	a, _ := ctx.Value(agentKey).(string)
	return a
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

func (h *Hub) lookupToken(ctx context.Context, secret string) (*APIToken, error) {
	return h.lookupTokenHash(ctx, HashSecret(secret))
}

func (h *Hub) lookupTokenHash(ctx context.Context, hash string) (*APIToken, error) {
	if t, ok := h.tokensCache.fresh(hash); ok {
		return t, nil
	}
	var t APIToken
	_, err := readJSON(ctx, h.Store, prefixTokens+hash+".json", &t)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := h.Store.Get(ctx, keyRevoked(hash), store.GetOptions{}); err == nil {
		t.Revoked = true
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	h.tokensCache.put(hash, &t)
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

// operatorAuth establishes who an operator request acts for, in this order: identity headers from a
// trusted forward-auth proxy; an API token (pulse_…); an OIDC bearer token. Identity headers from any
// other peer are ignored and logged, so a client cannot claim to be someone by setting a header.
func (h *Hub) operatorAuth(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		p, status, msg := h.authenticate(ctx)
		if status != 0 {
			huma.WriteErr(api, ctx, status, msg)
			return
		}
		if h.throttle(api, ctx, "principal "+p.ID, operatorRate) {
			return
		}
		next(huma.WithValue(ctx, principalKey, p))
	}
}

func (h *Hub) authenticate(ctx huma.Context) (Principal, int, string) {
	if user := ctx.Header("Remote-User"); user != "" {
		r, _ := humago.Unwrap(ctx)
		if h.fromTrustedProxy(r.RemoteAddr) {
			p := Principal{ID: user, Name: ctx.Header("Remote-Name"), Email: ctx.Header("Remote-Email"), Via: "forward-auth"}
			for _, g := range strings.Split(ctx.Header("Remote-Groups"), ",") {
				if g = strings.TrimSpace(g); g != "" {
					p.Groups = append(p.Groups, g)
				}
			}
			return p, 0, ""
		}
		h.Log.Warn("ignored forward-auth headers from an untrusted peer", "peer", r.RemoteAddr, "remote_user", user)
	}
	authz := ctx.Header("Authorization")
	secret, ok := strings.CutPrefix(authz, "Bearer ")
	secret = strings.TrimSpace(secret)
	if !ok || secret == "" {
		return Principal{}, http.StatusUnauthorized, "missing credentials: send Authorization: Bearer <token> (pulse --token or PULSE_TOKEN)"
	}
	if strings.HasPrefix(secret, "pulse_") || h.OIDC == nil {
		tok, err := h.lookupToken(ctx.Context(), secret)
		if err != nil {
			return Principal{}, http.StatusServiceUnavailable, "cannot check the token: store unavailable: " + err.Error()
		}
		switch {
		case tok == nil:
			return Principal{}, http.StatusUnauthorized, "unknown operator token"
		case tok.Revoked:
			return Principal{}, http.StatusUnauthorized, fmt.Sprintf("operator token %q was revoked", tok.Name)
		case !tok.ExpiresAt.IsZero() && time.Now().After(tok.ExpiresAt):
			return Principal{}, http.StatusUnauthorized, fmt.Sprintf("operator token %q expired at %s", tok.Name, tok.ExpiresAt.Format(time.RFC3339))
		}
		return Principal{ID: tok.Name, Groups: tok.Groups, Via: "token"}, 0, ""
	}
	p, err := h.OIDC.Verify(ctx.Context(), secret)
	if err != nil {
		return Principal{}, http.StatusUnauthorized, "OIDC token refused: " + err.Error()
	}
	return p, 0, ""
}

func (h *Hub) fromTrustedProxy(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	for _, pfx := range h.TrustedProxies {
		if pfx.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// maxAgentSkew is how far an agent's clock may be from the hub's before its requests are refused.
const maxAgentSkew = 2 * time.Minute

func (h *Hub) newVerifier() *httpsig.Verifier {
	v, err := httpsig.NewVerifier(func(ctx context.Context, keyID string) (ed25519.PublicKey, error) {
		if !validID(keyID) {
			return nil, fmt.Errorf("key id %q is not an agent id", keyID)
		}
		id, err := h.identity(ctx, keyID)
		if err != nil {
			return nil, err
		}
		return ed25519.PublicKey(id.PublicKey), nil
	}, httpsig.DefaultComponents(), maxAgentSkew)
	if err != nil {
		panic(err) // constant arguments: a failure is a programming error
	}
	v.Scheme = h.PublicScheme
	return v
}

// agentAuth requires an RFC 9421 signature by the agent named in the path.
func (h *Hub) agentAuth(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		r, _ := humago.Unwrap(ctx)
		ver, err := h.verifier.Verify(r)
		if err != nil {
			status := http.StatusUnauthorized
			if errors.Is(err, store.ErrNotFound) {
				err = fmt.Errorf("unknown agent: %w", err)
			}
			huma.WriteErr(api, ctx, status, "agent signature refused: "+err.Error())
			return
		}
		if id := ctx.Param("id"); ver.KeyID != id {
			huma.WriteErr(api, ctx, http.StatusForbidden, fmt.Sprintf("request signed by agent %s cannot act for agent %s", ver.KeyID, id))
			return
		}
		if h.throttle(api, ctx, "agent "+ver.KeyID, agentRate) {
			return
		}
		next(huma.WithValue(ctx, agentKey, ver.KeyID))
	}
}

// enrollLimit slows down enrollment attempts per client address: tokens are long random secrets, but
// an endpoint without authentication should not be a free store-write amplifier either.
func (h *Hub) enrollLimit(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		r, _ := humago.Unwrap(ctx)
		host := r.RemoteAddr
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			host = ap.Addr().String()
		}
		if h.throttle(api, ctx, "address "+host, enrollRate) {
			return
		}
		next(ctx)
	}
}
