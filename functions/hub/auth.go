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
	Groups []string `json:"groups,omitempty"`
	Via    string   `json:"via" doc:"How the principal authenticated: token."`
}

// APIToken is what the bucket keeps of an operator token: its hash is the key, the secret is never stored.
type APIToken struct {
	Name      string    `json:"name"`
	Groups    []string  `json:"groups"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
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
func CreateAPIToken(ctx context.Context, s store.Store, name string, groups []string, ttl time.Duration) (string, error) {
	secret := NewSecret("pulse_")
	t := APIToken{Name: name, Groups: groups, CreatedAt: time.Now().UTC()}
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

const tokenTTL = 30 * time.Second

func (h *Hub) lookupToken(ctx context.Context, secret string) (*APIToken, error) {
	hash := HashSecret(secret)
	h.tokens.mu.Lock()
	if e, ok := h.tokens.m[hash]; ok && time.Since(e.fetched) < tokenTTL {
		h.tokens.mu.Unlock()
		return e.tok, nil
	}
	h.tokens.mu.Unlock()
	var t APIToken
	_, err := readJSON(ctx, h.Store, prefixTokens+hash+".json", &t)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	h.tokens.mu.Lock()
	if h.tokens.m == nil {
		h.tokens.m = map[string]tokenEntry{}
	}
	h.tokens.m[hash] = tokenEntry{tok: &t, fetched: time.Now()}
	h.tokens.mu.Unlock()
	return &t, nil
}

// operatorAuth requires a valid bearer token.
func (h *Hub) operatorAuth(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		authz := ctx.Header("Authorization")
		secret, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok || secret == "" {
			huma.WriteErr(api, ctx, http.StatusUnauthorized, "missing operator token: send Authorization: Bearer <token> (pulse --token or PULSE_TOKEN)")
			return
		}
		tok, err := h.lookupToken(ctx.Context(), strings.TrimSpace(secret))
		if err != nil {
			huma.WriteErr(api, ctx, http.StatusServiceUnavailable, "cannot check the token: store unavailable: "+err.Error())
			return
		}
		if tok == nil {
			huma.WriteErr(api, ctx, http.StatusUnauthorized, "unknown operator token")
			return
		}
		if !tok.ExpiresAt.IsZero() && time.Now().After(tok.ExpiresAt) {
			huma.WriteErr(api, ctx, http.StatusUnauthorized, fmt.Sprintf("operator token %q expired at %s", tok.Name, tok.ExpiresAt.Format(time.RFC3339)))
			return
		}
		next(huma.WithValue(ctx, principalKey, Principal{ID: tok.Name, Groups: tok.Groups, Via: "token"}))
	}
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
		next(huma.WithValue(ctx, agentKey, ver.KeyID))
	}
}
