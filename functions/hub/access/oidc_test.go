package access

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestOIDC runs a real OIDC discovery document and JWKS, served by the test with keys it generates, and
// checks that the hub accepts what the issuer signed for its audience and nothing else.
func TestOIDC(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	var issuer string
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "jwks_uri": issuer + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	issuer = srv.URL

	sign := func(k *rsa.PrivateKey, claims map[string]any) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jwt.Signed(sig).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	now := time.Now()
	base := func() map[string]any {
		return map[string]any{"iss": issuer, "aud": "pulse", "sub": "u-1", "preferred_username": "ada", "email": "ada@example.com",
			"groups": []string{"operator", "admin"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	v := &OIDCVerifier{Issuer: issuer, Audience: "pulse"}
	p, err := v.Verify(context.Background(), sign(key, base()))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "ada" || p.Via != "oidc" || strings.Join(p.Groups, ",") != "admin,operator" || p.Email != "ada@example.com" {
		t.Fatalf("principal %+v", p)
	}
	bad := map[string]func(map[string]any){
		"wrong audience": func(c map[string]any) { c["aud"] = "someone-else" },
		"expired":        func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() },
		"wrong issuer":   func(c map[string]any) { c["iss"] = "https://evil.example" },
	}
	for name, mutate := range bad {
		c := base()
		mutate(c)
		if _, err := v.Verify(context.Background(), sign(key, c)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := v.Verify(context.Background(), sign(other, base())); err == nil {
		t.Error("token signed by a key outside the JWKS accepted")
	}
}
