package hub

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/plans"
)

// ApplyPlanInput creates a plan or a new version of it.
type ApplyPlanInput struct {
	Name string `path:"name" doc:"Lower-case letters, digits and _, starting with a letter; at most 63 characters (the name the agent keeps the plan under)."`
	Body struct {
		Source string `json:"source" minLength:"1" maxLength:"1048576" doc:"The plan in YAML or JSON: targets, mode, units."`
	}
}

// PlanAppliedOutput is the version an apply wrote, or the newest one when nothing changed.
type PlanAppliedOutput struct {
	Body *plans.Applied
}

// PlanNameInput names a plan.
type PlanNameInput struct {
	Name string `path:"name" doc:"Lower-case letters, digits and _, starting with a letter; at most 63 characters (the name the agent keeps the plan under)."`
}

// PlanOutput is a plan's newest version.
type PlanOutput struct {
	Body *plans.Version
}

// PlansOutput lists the newest version of every plan.
type PlansOutput struct {
	Body struct {
		Plans []plans.Summary `json:"plans"`
	}
}

// PlanStatusOutput is where a plan stands on every agent it targets.
type PlanStatusOutput struct {
	Body *plans.View
}

// AgentPlansInput is an agent fetching its plans.
type AgentPlansInput struct {
	ID string `path:"id"`
}

// AgentPlansOutput carries the newest version of every plan that targets the agent, signed for it.
type AgentPlansOutput struct {
	Body wire.AgentPlans
}

// AgentPlanStatusInput is an agent's status of one plan.
type AgentPlanStatusInput struct {
	ID   string `path:"id"`
	Name string `path:"name" doc:"Lower-case letters, digits and _, starting with a letter; at most 63 characters (the name the agent keeps the plan under)."`
	Body wire.PlanStatus
}

// registerPlans is the plans room's operator side.
func registerPlans(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "apply-plan", Method: http.MethodPut, Path: "/v1/plans/{name}",
		Summary: "Apply a plan",
		Description: "Parses the YAML or JSON (problems are reported with line:column in the source), selects the targets (each expression must match an agent), " +
			"asks the policy (action apply-plan, with the targets), stores the next version and sends it, signed, to the agents its targets select now. " +
			"A source identical to the newest version's stores nothing and answers that version with unchanged: true.",
		Metadata: map[string]any{"decide": "service"}, Errors: []int{409, 422}},
		func(ctx context.Context, in *ApplyPlanInput) (*PlanAppliedOutput, error) {
			a, err := h.Plans.Apply(ctx, in.Name, in.Body.Source)
			if err != nil {
				return nil, err
			}
			return &PlanAppliedOutput{Body: a}, nil
		})
	register(api, h, huma.Operation{OperationID: "delete-plan", Method: http.MethodDelete, Path: "/v1/plans/{name}",
		Summary: "Delete a plan",
		Description: "Asks the policy (action delete-plan, with the agents the plan selects now) and stores a version that deletes the plan: " +
			"agents stop getting it and, once their fetches have not listed it for a plan period, release its units (a process is stopped, a file is left). " +
			"Applying the plan again starts at the next version.",
		Metadata: map[string]any{"decide": "service"}, Errors: []int{404, 409, 422}},
		func(ctx context.Context, in *PlanNameInput) (*PlanAppliedOutput, error) {
			a, err := h.Plans.Delete(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			return &PlanAppliedOutput{Body: a}, nil
		})
	register(api, h, huma.Operation{OperationID: "list-plans", Method: http.MethodGet, Path: "/v1/plans",
		Summary: "List plans", Description: "The newest version of every plan, by name."},
		func(ctx context.Context, _ *struct{}) (*PlansOutput, error) {
			list, err := h.Plans.List(ctx)
			if err != nil {
				return nil, err
			}
			out := &PlansOutput{}
			out.Body.Plans = list
			return out, nil
		})
	register(api, h, huma.Operation{OperationID: "get-plan", Method: http.MethodGet, Path: "/v1/plans/{name}",
		Summary: "A plan's newest version", Errors: []int{404, 422}},
		func(ctx context.Context, in *PlanNameInput) (*PlanOutput, error) {
			v, err := h.Plans.Get(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			return &PlanOutput{Body: v}, nil
		})
	register(api, h, huma.Operation{OperationID: "get-plan-status", Method: http.MethodGet, Path: "/v1/plans/{name}/status",
		Summary:     "Where a plan stands on each agent",
		Description: "For every agent the plan's targets select now: online or not, the version it holds, a version it refused and why, and every unit's state as it last reported it (unknown, \"no report yet\", before its first report).",
		Errors:      []int{404, 422}},
		func(ctx context.Context, in *PlanNameInput) (*PlanStatusOutput, error) {
			v, err := h.Plans.Status(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			return &PlanStatusOutput{Body: v}, nil
		})
}

// RolloutOpInput is an operation on the rollout of a plan's newest version.
type RolloutOpInput struct {
	Name string `path:"name" doc:"Lower-case letters, digits and _, starting with a letter; at most 63 characters (the name the agent keeps the plan under)."`
	Body *struct {
		Reason string `json:"reason,omitempty" maxLength:"1024" doc:"Why, for the record."`
	} `required:"false"`
}

func (in *RolloutOpInput) reason() string {
	if in.Body == nil {
		return ""
	}
	return in.Body.Reason
}

// RolloutOutput is where a rollout stands.
type RolloutOutput struct {
	Body *plans.RolloutView
}

// PlanStreamInput names the plan to watch and where a dropped stream resumes.
type PlanStreamInput struct {
	Name        string `path:"name" doc:"Lower-case letters, digits and _, starting with a letter; at most 63 characters (the name the agent keeps the plan under)."`
	LastEventID string `header:"Last-Event-ID" doc:"The id of the last agent event received: a reconnecting client is not sent again the agents that reported at or before it."`
}

// registerRollouts is the plans room's staged rollouts: their view and the operations on them.
func registerRollouts(api huma.API, h *Hub) {
	registerStream(api, h, huma.Operation{OperationID: "stream-plan", Method: http.MethodGet, Path: "/v1/plans/{name}/events",
		Summary: "Watch a plan", Metadata: map[string]any{"action": "get-plan-status"},
		Description: "Server-sent events: `plan` (a PlanUpdate: newest version, agents, converged, the rollout's state) first and whenever it changes, and `agent` (an AgentStatus, as in the status view; its id resumes the stream as Last-Event-ID) whenever an agent's state of the plan changes. " +
			"Changes stored through this hub instance are sent at once, others within 2 s. The stream does not end by itself: plans are continuous.",
		Errors: []int{404, 422}}, func(ctx context.Context, in *PlanStreamInput) error {
		_, err := h.Plans.Get(ctx, in.Name)
		return err
	}, func(ctx context.Context, in *PlanStreamInput, send sender) error {
		return h.Plans.Watch(ctx, in.Name, in.LastEventID, func(u plans.WatchUpdate) error {
			if u.Agent != nil {
				return send(u.ID, "agent", u.Agent)
			}
			return send("", "plan", u.Plan)
		})
	})
	register(api, h, huma.Operation{OperationID: "get-rollout", Method: http.MethodGet, Path: "/v1/plans/{name}/rollout",
		Summary:     "Where the rollout of a plan's newest version stands",
		Description: "Its state (rolling, paused, halted, aborted, completed, rolled_back) and why, its events, and each wave's agents with how many converged and failed. 404 when the newest version has no rollout.",
		Errors:      []int{404, 422}},
		func(ctx context.Context, in *PlanNameInput) (*RolloutOutput, error) {
			v, err := h.Plans.Rollout(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			return &RolloutOutput{Body: v}, nil
		})
	for _, op := range []struct{ op, summary, desc string }{
		{plans.OpPause, "Pause a rollout", "No further wave starts until it is resumed; released agents keep the version."},
		{plans.OpResume, "Resume a paused or halted rollout", "The tick looks at it again: a halted rollout whose failures still stand halts again, with the reason."},
		{plans.OpPromote, "Release the next wave now", "Without waiting for the bake or the health condition (the current wave need not have converged). Refused while halted: resume first."},
		{plans.OpAbort, "Abort a rollout", "For good: released agents keep the version, the others the version before. Apply a new version, or roll back, to go on."},
	} {
		register(api, h, huma.Operation{OperationID: op.op + "-rollout", Method: http.MethodPost, Path: "/v1/plans/{name}/rollout/" + op.op,
			Summary: op.summary, Description: op.desc + " Asks the policy (action " + op.op + "-rollout, with the agents the plan selects) and is audited. 409 when the rollout is in a state that does not allow it.",
			Metadata: map[string]any{"decide": "service"}, Errors: []int{404, 409, 422}},
			func(ctx context.Context, in *RolloutOpInput) (*RolloutOutput, error) {
				v, err := h.Plans.RolloutOp(ctx, in.Name, op.op, in.reason())
				if err != nil {
					return nil, err
				}
				return &RolloutOutput{Body: v}, nil
			})
	}
	register(api, h, huma.Operation{OperationID: "rollback-plan", Method: http.MethodPost, Path: "/v1/plans/{name}/rollback",
		Summary: "Roll a plan back to the version before",
		Description: "Stores a new version with the source and targets of the newest earlier version that reached every target (no rollout, or a completed one), without a rollout, and sends it to every target at once; " +
			"a rollout of the newest version ends rolled_back. Asks the policy (action rollback-plan) and is audited. 409 when no earlier version reached every target.",
		Metadata: map[string]any{"decide": "service"}, Errors: []int{404, 409, 422}},
		func(ctx context.Context, in *RolloutOpInput) (*PlanAppliedOutput, error) {
			a, err := h.Plans.Rollback(ctx, in.Name, in.reason())
			if err != nil {
				return nil, err
			}
			return &PlanAppliedOutput{Body: a}, nil
		})
}

// ProposalInput names a proposal of a plan.
type ProposalInput struct {
	Name string `path:"name" doc:"Lower-case letters, digits and _, starting with a letter; at most 63 characters (the name the agent keeps the plan under)."`
	ID   string `path:"id" doc:"The proposal's id (pp-…)."`
	Body *struct {
		Comment string `json:"comment,omitempty" maxLength:"1024" doc:"Why, for the record."`
	} `required:"false"`
}

// ProposalOutput is a proposal and where it stands.
type ProposalOutput struct {
	Body *plans.ProposalView
}

// ProposalsOutput lists a plan's proposals.
type ProposalsOutput struct {
	Body struct {
		Proposals []plans.ProposalView `json:"proposals"`
	}
}

// registerProposals is the plans room's operations awaiting approvals.
func registerProposals(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "list-plan-proposals", Method: http.MethodGet, Path: "/v1/plans/{name}/proposals",
		Summary:     "List a plan's proposals",
		Description: "Operations on the plan (apply, delete, rollback, rollout operations) that the policy allows only after approvals, newest first, with who approved them so far and what became of them.",
		Errors:      []int{422}},
		func(ctx context.Context, in *PlanNameInput) (*ProposalsOutput, error) {
			list, err := h.Plans.Proposals(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			out := &ProposalsOutput{}
			out.Body.Proposals = list
			return out, nil
		})
	for _, d := range []struct {
		verb    string
		approve bool
	}{{"approve", true}, {"deny", false}} {
		register(api, h, huma.Operation{OperationID: d.verb + "-plan", Method: http.MethodPost, Path: "/v1/plans/{name}/proposals/{id}/" + d.verb,
			Summary: d.verb + " a proposal",
			Description: "The proposer (or a credential the proposer made) cannot approve it, a person counts once, and only members of the groups the policy named count. " +
				"The approval that makes the count does the operation as it was proposed, unless the plan changed since (the proposal is then stale). A denial ends it.",
			Errors: []int{404, 409, 422}},
			func(ctx context.Context, in *ProposalInput) (*ProposalOutput, error) {
				comment := ""
				if in.Body != nil {
					comment = in.Body.Comment
				}
				pv, err := h.Plans.DecideProposal(ctx, in.Name, in.ID, d.approve, comment)
				if err != nil {
					return nil, err
				}
				return &ProposalOutput{Body: pv}, nil
			})
	}
}

// registerAgentPlans is what an agent asks of the plans room: its plans, and where it stands on one.
func registerAgentPlans(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "agent-plans", Method: http.MethodGet, Path: "/v1/agents/{id}/plans",
		Summary:     "Fetch the agent's plans",
		Description: "The newest version of every plan whose targets select the agent, each in an envelope signed for it alone: an agent that was offline, or enrolled after a plan was applied, gets its plans. Answered from the hub's memory, without a store request.",
	}, func(ctx context.Context, _ *AgentPlansInput) (*AgentPlansOutput, error) {
		p, err := h.Plans.ForAgent(ctx, domain.AgentFrom(ctx))
		if err != nil {
			return nil, err
		}
		return &AgentPlansOutput{Body: p}, nil
	})
	register(api, h, huma.Operation{OperationID: "agent-plan-status", Method: http.MethodPost, Path: "/v1/agents/{id}/plans/{name}/status",
		Summary: "Report where the agent stands on a plan",
		Description: "The version the agent holds and every unit's state, or a version it refused and why. Stored only when it changed; every text is cut to 1 KiB. " +
			"404 for a plan the hub does not have, 409 when the plan's targets do not select the agent or the version is one the plan does not have: nothing is stored then.",
		DefaultStatus: http.StatusNoContent, Errors: []int{404, 409, 422}},
		func(ctx context.Context, in *AgentPlanStatusInput) (*struct{}, error) {
			agent := domain.AgentFrom(ctx)
			if err := h.Plans.Report(ctx, agent, in.Name, in.Body); err != nil {
				return nil, err
			}
			// Stored; its unit alerts are decided before it is answered, so a failure to record one
			// makes the agent report again, and nothing is lost.
			return nil, h.Alerts.ObservePlanStatus(ctx, agent, in.Name, in.Body)
		})
}
