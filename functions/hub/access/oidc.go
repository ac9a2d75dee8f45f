package access

import (
	"context"
	"fmt"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"sort"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// OIDCVerifier checks bearer tokens from one OIDC issuer. The issuer's discovery document and JWKS
// are fetched on first use (and the keys cached and refreshed by go-oidc), so the hub starts even when
// the identity provider is briefly down.
type OIDCVerifier struct {
	Issuer, Audience, GroupsClaim string

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	lastTry  time.Time
}

func (o *OIDCVerifier) get(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	if time.Since(o.lastTry) < 5*time.Second {
		return nil, fmt.Errorf("identity provider %s unavailable; retrying shortly", o.Issuer)
	}
	o.lastTry = time.Now()
	// The provider outlives this request: its key set refreshes in the background.
	p, err := oidc.NewProvider(context.WithoutCancel(ctx), o.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity provider %s: %w", o.Issuer, err)
	}
	o.verifier = p.Verifier(&oidc.Config{ClientID: o.Audience})
	return o.verifier, nil
}

// Verify checks signature, issuer, audience and expiry, and maps the claims to a principal.
func (o *OIDCVerifier) Verify(ctx context.Context, raw string) (Principal, error) {
	v, err := o.get(ctx)
	if err != nil {
		return Principal{}, err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return Principal{}, err
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, err
	}
	p := Principal{ID: tok.Subject, Via: "oidc", Person: domain.PersonOf("oidc", tok.Issuer+"#"+tok.Subject)}
	if s, ok := claims["preferred_username"].(string); ok && s != "" {
		p.ID = s
	}
	p.Name, _ = claims["name"].(string)
	p.Email, _ = claims["email"].(string)
	claim := o.GroupsClaim
	if claim == "" {
		claim = "groups"
	}
	switch g := claims[claim].(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok {
				p.Groups = append(p.Groups, s)
			}
		}
	case string:
		p.Groups = []string{g}
	}
	sort.Strings(p.Groups)
	return p, nil
}
