package hub

import (
	"context"
	"github.com/pulsehq/pulse/functions/hub/access"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/functions/hub/delivery"
	"github.com/pulsehq/pulse/functions/hub/fleet"
)

// EnrollTokenInput asks for an enrollment token.
type EnrollTokenInput struct {
	Body struct {
		Labels     map[string]string `json:"labels,omitempty" doc:"Labels every agent enrolled with this token gets."`
		Uses       int               `json:"uses,omitempty" minimum:"0" maximum:"100000" doc:"How many agents may enroll with it (default 1)."`
		TTLSeconds int               `json:"ttlSeconds,omitempty" minimum:"0" doc:"Lifetime in seconds: 0 or absent for the default (86400, a day), at most 2592000 (30 days, fleet.MaxEnrollTokenTTL)."`
	}
}

// EnrollTokenOutput returns the token, shown once.
type EnrollTokenOutput struct {
	Body struct {
		Token     string            `json:"token" doc:"The secret; only its hash is stored. Shown once."`
		ID        string            `json:"id" doc:"Public id, for pulse enroll-token list and revoke."`
		Uses      int               `json:"uses"`
		ExpiresAt time.Time         `json:"expiresAt"`
		Labels    map[string]string `json:"labels,omitempty"`
	}
}

// EnrollTokensOutput lists enrollment tokens.
type EnrollTokensOutput struct {
	Body struct {
		Tokens []fleet.EnrollTokenView `json:"tokens"`
	}
}

// IDInput names a thing by id.
type IDInput struct {
	ID string `path:"id"`
}

// ListAgentsInput filters the agent list.
type ListAgentsInput struct {
	Selector string `query:"selector" doc:"Target expression: all, an agent id, a name, or labels k=v,k2=v2."`
	Retired  bool   `query:"retired" doc:"Include retired agents."`
}

// ListAgentsOutput lists agents.
type ListAgentsOutput struct {
	Body struct {
		Agents []fleet.AgentView `json:"agents"`
	}
}

// AgentOutput is one agent.
type AgentOutput struct {
	Body fleet.AgentView
}

// SetLabelsInput replaces an agent's labels.
type SetLabelsInput struct {
	ID   string `path:"id"`
	Body struct {
		Labels map[string]string `json:"labels" doc:"The agent's labels from now on (replacing all of them)."`
	}
}

// RetireInput retires an agent.
type RetireInput struct {
	ID   string `path:"id"`
	Body *struct {
		Reason string `json:"reason,omitempty" maxLength:"1000"`
	}
}

// RejectionsOutput lists an agent's rejection reports.
type RejectionsOutput struct {
	Body struct {
		Rejections []delivery.RejectionRecord `json:"rejections"`
	}
}

func agentOut(v fleet.AgentView, err error) (*AgentOutput, error) {
	if err != nil {
		return nil, err
	}
	return &AgentOutput{Body: v}, nil
}

// registerFleet is the fleet room's operator side: enrollment tokens and agents.
func registerFleet(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "create-enroll-token", Method: http.MethodPost, Path: "/v1/enroll-tokens",
		Summary: "Create an enrollment token", DefaultStatus: http.StatusCreated, Errors: []int{422}}, func(ctx context.Context, in *EnrollTokenInput) (*EnrollTokenOutput, error) {
		secret, tok, err := h.Fleet.CreateEnrollToken(ctx, in.Body.Labels, in.Body.Uses, ttlOf(in.Body.TTLSeconds))
		if err != nil {
			return nil, err
		}
		out := &EnrollTokenOutput{}
		out.Body.Token, out.Body.ID, out.Body.Uses, out.Body.ExpiresAt, out.Body.Labels = secret, access.TokenID(secret), tok.Uses, tok.ExpiresAt, tok.Labels
		return out, nil
	})
	register(api, h, huma.Operation{OperationID: "list-enroll-tokens", Method: http.MethodGet, Path: "/v1/enroll-tokens",
		Summary: "List enrollment tokens (without secrets)", Description: "Newest first, with uses left, expiry and revocation."},
		func(ctx context.Context, _ *struct{}) (*EnrollTokensOutput, error) {
			views, _, err := h.Fleet.EnrollTokens(ctx)
			if err != nil {
				return nil, err
			}
			out := &EnrollTokensOutput{}
			out.Body.Tokens = views
			return out, nil
		})
	register(api, h, huma.Operation{OperationID: "revoke-enroll-token", Method: http.MethodDelete, Path: "/v1/enroll-tokens/{id}",
		Summary: "Revoke an enrollment token", Description: "No more agents enroll with it; the agents it enrolled stay.",
		DefaultStatus: http.StatusNoContent, Errors: []int{404, 409}}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		return nil, h.Fleet.RevokeEnrollToken(ctx, in.ID)
	})
	register(api, h, huma.Operation{OperationID: "list-agents", Method: http.MethodGet, Path: "/v1/agents",
		Summary: "List agents", Description: "Agents with labels, online state, last heartbeat, version, soft-disabled integrations and the shell hatch.",
		Errors: []int{422}}, func(ctx context.Context, in *ListAgentsInput) (*ListAgentsOutput, error) {
		views, err := h.Fleet.List(ctx, in.Selector, in.Retired)
		if err != nil {
			return nil, err
		}
		out := &ListAgentsOutput{}
		out.Body.Agents = views
		return out, nil
	})
	register(api, h, huma.Operation{OperationID: "get-agent", Method: http.MethodGet, Path: "/v1/agents/{id}",
		Summary: "One agent", Description: "By id or name: labels, facts, online state, catalog, integrations, the shell hatch, retirement.",
		Errors: []int{404}}, func(ctx context.Context, in *IDInput) (*AgentOutput, error) {
		return agentOut(h.Fleet.Get(ctx, in.ID))
	})
	register(api, h, huma.Operation{OperationID: "set-agent-labels", Method: http.MethodPut, Path: "/v1/agents/{id}/labels",
		Summary: "Replace an agent's labels", Description: "Stored as a new version; selectors use the new labels at once.",
		Errors: []int{404, 409, 422}}, func(ctx context.Context, in *SetLabelsInput) (*AgentOutput, error) {
		return agentOut(h.Fleet.SetLabels(ctx, in.ID, in.Body.Labels))
	})
	register(api, h, huma.Operation{OperationID: "retire-agent", Method: http.MethodPost, Path: "/v1/agents/{id}/retire",
		Summary: "Retire an agent", Description: "Its identity is refused from then on (within seconds on every hub); its commands and results are kept.",
		Errors: []int{404, 409}}, func(ctx context.Context, in *RetireInput) (*AgentOutput, error) {
		reason := ""
		if in.Body != nil {
			reason = in.Body.Reason
		}
		return agentOut(h.Fleet.Retire(ctx, in.ID, reason))
	})
	register(api, h, huma.Operation{OperationID: "list-agent-rejections", Method: http.MethodGet, Path: "/v1/agents/{id}/rejections",
		Summary: "Envelopes an agent refused", Errors: []int{404}}, func(ctx context.Context, in *IDInput) (*RejectionsOutput, error) {
		rs, err := h.Delivery.Rejections(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		out := &RejectionsOutput{}
		out.Body.Rejections = rs
		return out, nil
	})
}
