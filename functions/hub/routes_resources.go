package hub

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/resources"
)

// AgentResourcesReportInput is an agent's whole inventory.
type AgentResourcesReportInput struct {
	ID   string `path:"id"`
	Body wire.InventoryReport
}

// ListResourcesInput chooses resources across the fleet.
type ListResourcesInput struct {
	Type   string   `query:"type" doc:"Only resources of this type: disk, mount, interface, container, plan, unit, or an integration's own."`
	Agent  string   `query:"agent" doc:"Only the resources of this agent (id or name)."`
	Label  []string `query:"label" doc:"key=value the agent's labels must have (repeatable: every one must match)."`
	Status string   `query:"status" enum:"ok,degraded,failed,stopped,unknown" doc:"Only resources in this status."`
	Q      string   `query:"q" doc:"Text the resource's id, name, reason or a string attribute contains (case-insensitive)."`
	Cursor string   `query:"cursor" doc:"The next value of the previous page."`
	Limit  int      `query:"limit" minimum:"0" maximum:"1000" doc:"At most this many (default 50)."`
}

// ListResourcesOutput is a page of resources.
type ListResourcesOutput struct {
	Body resources.Page
}

// AgentResourcesInput names the agent.
type AgentResourcesInput struct {
	ID string `path:"id" doc:"The agent's id or name."`
}

// AgentResourcesOutput is one agent's inventory.
type AgentResourcesOutput struct {
	Body resources.AgentInventory
}

// registerAgentResources is the agent's side of the inventory: reporting its resources.
func registerAgentResources(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "agent-resources", Method: http.MethodPut, Path: "/v1/agents/{id}/resources",
		Summary: "Report the agent's inventory",
		Description: "The body is the agent's whole current InventoryReport (agent/wire): it replaces the stored one unless that one has a higher seq. " +
			"The same report again is answered 204 and stored once. 409: a newer report is stored (this one came late), or another report took this seq: drop it. " +
			"422 says why a report was refused (a duplicate id, an unknown status, a parent missing from the report, too many resources or attributes …): it will never be accepted.",
		DefaultStatus: http.StatusNoContent, MaxBodyBytes: wire.MaxInventoryBytes + 64<<10, Errors: []int{409, 413, 422}},
		func(ctx context.Context, in *AgentResourcesReportInput) (*struct{}, error) {
			return nil, h.Resources.Report(ctx, domain.AgentFrom(ctx), in.Body)
		})
}

// registerResources is the operator side of the inventory: the fleet's resources, and one agent's.
func registerResources(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "list-resources", Method: http.MethodGet, Path: "/v1/resources",
		Summary: "The fleet's resources",
		Description: "Every resource the agents' integrations report (disks, mounts, interfaces, containers, plans and their units), most recently changed first, " +
			"with the agent it is on and when the hub last heard of it; and the inventory sources of the chosen agents that could not report everything. " +
			"Answered from the hub instance's copy of every agent's report, at most 10 s old. Retired agents are left out.",
		Errors: []int{404, 422}},
		func(ctx context.Context, in *ListResourcesInput) (*ListResourcesOutput, error) {
			p, err := h.Resources.List(ctx, resources.Query{Type: in.Type, Agent: in.Agent, Labels: in.Label, Status: in.Status, Q: in.Q, Cursor: in.Cursor, Limit: in.Limit})
			if err != nil {
				return nil, err
			}
			return &ListResourcesOutput{Body: p}, nil
		})
	register(api, h, huma.Operation{OperationID: "get-agent-resources", Method: http.MethodGet, Path: "/v1/agents/{id}/resources",
		Summary:     "An agent's resources",
		Description: "The agent's newest inventory report as the hub stores it: its resources, the sources that failed, when it was collected and received.",
		Errors:      []int{404}},
		func(ctx context.Context, in *AgentResourcesInput) (*AgentResourcesOutput, error) {
			t, err := h.Fleet.Target(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			inv, err := h.Resources.OfAgent(ctx, t.Ident.ID, t.Ident.Name)
			if err != nil {
				return nil, err
			}
			return &AgentResourcesOutput{Body: inv}, nil
		})
}
