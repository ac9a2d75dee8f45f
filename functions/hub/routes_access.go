package hub

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/signed"
)

// TokenInput creates an operator token.
type TokenInput struct {
	Body struct {
		Name       string   `json:"name" minLength:"1" maxLength:"64"`
		Groups     []string `json:"groups" minItems:"1"`
		TTLSeconds int      `json:"ttlSeconds,omitempty" minimum:"0" doc:"Lifetime in seconds, at most 31536000 (365 days, access.MaxTokenTTL); 0 or absent: the token does not expire."`
		For        string   `json:"for,omitempty" maxLength:"64" doc:"The person the token is for (an admin onboarding someone); default: the caller. The token never approves the caller's own commands either way."`
	}
}

// TokenOutput returns a new token, its secret shown once.
type TokenOutput struct {
	Body struct {
		access.TokenView
		Token string `json:"token"`
	}
}

// TokensOutput lists tokens.
type TokensOutput struct {
	Body struct {
		Tokens []access.TokenView `json:"tokens"`
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

// IntegrityInput asks for a scan of the bucket besides what this process refused.
type IntegrityInput struct {
	Scan  bool `query:"scan" doc:"Also check every object the hub keeps (up to limit); reads each once."`
	Limit int  `query:"limit" minimum:"0" maximum:"1000000" doc:"Most objects a scan reads (default 100000)."`
}

// IntegrityOutput is the integrity view: objects in the bucket that the hub did not write as they are.
type IntegrityOutput struct {
	Body struct {
		OK bool `json:"ok" doc:"No refused object in this process nor in the scan."`
		signed.Report
		Scanned     int              `json:"scanned,omitempty" doc:"Objects the scan checked."`
		ScanRefused []signed.Refused `json:"scanRefused,omitempty" doc:"Objects the scan found that fail the check."`
	}
}

// VerifyOutput is the audit chain check.
type VerifyOutput struct {
	Body audit.Report
}

// ttlOf is a lifetime given in seconds as a duration. A count of seconds too large for a duration
// (about 292 years) saturates instead of wrapping around to a past or negative one, so the room
// refuses it as above its maximum rather than storing a token that expired in 1734 or never does.
func ttlOf(seconds int) time.Duration {
	if seconds > int(math.MaxInt64/time.Second) {
		return math.MaxInt64
	}
	return time.Duration(seconds) * time.Second
}

// registerAccess is the access room's operator side: API tokens.
func registerAccess(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "create-token", Method: http.MethodPost, Path: "/v1/tokens",
		Summary: "Create an operator API token", Description: "The secret is returned once; only its hash is stored.",
		DefaultStatus: http.StatusCreated, Errors: []int{422}}, func(ctx context.Context, in *TokenInput) (*TokenOutput, error) {
		v, secret, err := h.Access.CreateToken(ctx, in.Body.Name, in.Body.Groups, ttlOf(in.Body.TTLSeconds), in.Body.For)
		if err != nil {
			return nil, err
		}
		out := &TokenOutput{}
		out.Body.TokenView, out.Body.Token = v, secret
		return out, nil
	})
	register(api, h, huma.Operation{OperationID: "list-tokens", Method: http.MethodGet, Path: "/v1/tokens",
		Summary: "List operator tokens (without secrets)"}, func(ctx context.Context, _ *struct{}) (*TokensOutput, error) {
		views, _, err := h.Access.Tokens(ctx)
		if err != nil {
			return nil, err
		}
		out := &TokensOutput{}
		out.Body.Tokens = views
		return out, nil
	})
	register(api, h, huma.Operation{OperationID: "revoke-token", Method: http.MethodDelete, Path: "/v1/tokens/{id}",
		Summary: "Revoke an operator token", Description: "Takes effect on every hub within seconds.",
		DefaultStatus: http.StatusNoContent, Errors: []int{404}}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		return nil, h.Access.RevokeToken(ctx, in.ID)
	})
}

// registerAudit reads and checks the audit trail.
func registerAudit(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "get-audit", Method: http.MethodGet, Path: "/v1/audit",
		Summary: "Audit records"}, func(ctx context.Context, in *AuditInput) (*AuditOutput, error) {
		recs, err := h.Trail.List(ctx, audit.Query{Since: in.Since, Until: in.Until, Principal: in.Principal, Limit: in.Limit})
		if err != nil {
			return nil, err
		}
		out := &AuditOutput{}
		out.Body.Records = recs
		return out, nil
	})
	register(api, h, huma.Operation{OperationID: "get-integrity", Method: http.MethodGet, Path: "/v1/integrity",
		Summary:     "Objects in the bucket that the hub did not write",
		Description: "Every object the hub keeps carries a MAC made with a key derived from its signing key; one that fails the check (forged or edited by someone with write access to the bucket) is ignored and listed here, never acted on. Lists what this hub process refused; with scan=true also checks the bucket."},
		func(ctx context.Context, in *IntegrityInput) (*IntegrityOutput, error) {
			out := &IntegrityOutput{}
			out.Body.Report = h.Signed.Integrity()
			if in.Scan {
				limit := in.Limit
				if limit == 0 {
					limit = 100000
				}
				n, bad, err := h.Signed.Scan(ctx, signed.Prefixes(), limit)
				if err != nil {
					return nil, err
				}
				out.Body.Scanned, out.Body.ScanRefused = n, bad
			}
			out.Body.OK = out.Body.Refused == 0 && len(out.Body.ScanRefused) == 0
			return out, nil
		})
	register(api, h, huma.Operation{OperationID: "verify-audit", Method: http.MethodPost, Path: "/v1/audit/verify",
		Summary: "Verify the audit chain", Description: "Checks the chain as stored, without sealing first: names the first record that was changed, removed, forged or inserted, a seal not made by this hub, and a gap in the seals that no hub start explains."},
		func(ctx context.Context, _ *struct{}) (*VerifyOutput, error) {
			rep, err := h.Trail.Verify(ctx)
			if err != nil {
				return nil, err
			}
			return &VerifyOutput{Body: rep}, nil
		})
}
