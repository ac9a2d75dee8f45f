package hub

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/functions/hub/workflows"
	"github.com/pulsehq/pulse/functions/workflow"
)

// ApplyWorkflowInput creates or replaces a workflow.
type ApplyWorkflowInput struct {
	Name string `path:"name" doc:"Lower-case letters, digits, - and _, starting with a letter or digit; at most 63 characters (workflows.NamePattern)."`
	Body struct {
		Source string `json:"source" minLength:"1" maxLength:"1048576" doc:"The workflow in YAML or JSON."`
	}
}

// CreateWorkflowInput creates or replaces a workflow named in the body.
type CreateWorkflowInput struct {
	Body struct {
		Name   string `json:"name" minLength:"1" maxLength:"63" doc:"Lower-case letters, digits, - and _, starting with a letter or digit; at most 63 characters (workflows.NamePattern)."`
		Source string `json:"source" minLength:"1" maxLength:"1048576" doc:"The workflow in YAML or JSON."`
	}
}

// WorkflowOutput is a workflow version.
type WorkflowOutput struct {
	Body *workflows.Version
}

// WorkflowNameInput names a workflow.
type WorkflowNameInput struct {
	Name string `path:"name" doc:"Lower-case letters, digits, - and _, starting with a letter or digit; at most 63 characters (workflows.NamePattern)."`
}

// WorkflowsOutput lists the current version of every workflow.
type WorkflowsOutput struct {
	Body struct {
		Workflows []workflows.Summary `json:"workflows"`
	}
}

// StartExecutionInput starts a workflow.
type StartExecutionInput struct {
	Body struct {
		Workflow string         `json:"workflow" minLength:"1" doc:"The workflow's name: lower-case letters, digits, - and _, starting with a letter or digit; at most 63 characters."`
		Inputs   map[string]any `json:"inputs,omitempty"`
	}
}

// ExecutionOutput returns an execution.
type ExecutionOutput struct {
	Body workflows.View
}

// ListExecutionsInput filters the execution list.
type ListExecutionsInput struct {
	Workflow string    `query:"workflow"`
	Status   string    `query:"status" enum:"pending,running,succeeded,failed,cancelled" doc:"The execution's status."`
	Since    time.Time `query:"since" doc:"RFC 3339: only executions started at or after it."`
	Cursor   string    `query:"cursor" doc:"The next value of the previous page."`
	Limit    int       `query:"limit" minimum:"0" maximum:"1000" doc:"At most this many (default 50)."`
}

// ListExecutionsOutput is a page of executions, newest first.
type ListExecutionsOutput struct {
	Body *workflows.ExecutionPage
}

// RespondInput answers a prompt.
type RespondInput struct {
	ID   string `path:"id"`
	Body struct {
		Step   string `json:"step" minLength:"1"`
		Answer string `json:"answer" minLength:"1"`
	}
}

// ExecutionIDInput names an execution.
type ExecutionIDInput struct {
	ID string `path:"id"`
}

func executionOut(ex *workflows.Execution, err error) (*ExecutionOutput, error) {
	if err != nil {
		return nil, err
	}
	return &ExecutionOutput{Body: ex.View()}, nil
}

// registerWorkflows is the workflows room: definitions and executions.
func registerWorkflows(api huma.API, h *Hub) {
	apply := func(ctx context.Context, name, source string) (*WorkflowOutput, error) {
		v, err := h.Workflows.Apply(ctx, name, source)
		if err != nil {
			return nil, err
		}
		return &WorkflowOutput{Body: v}, nil
	}
	register(api, h, huma.Operation{OperationID: "apply-workflow", Method: http.MethodPut, Path: "/v1/workflows/{name}",
		Summary:     "Create or replace a workflow",
		Description: "Parses the YAML or JSON, type-checks and cost-bounds every CEL condition, checks commands and parameters against the fleet's catalogs, and stores a new version. Problems are reported with line:column in the source.",
		Errors:      []int{409, 422}}, func(ctx context.Context, in *ApplyWorkflowInput) (*WorkflowOutput, error) {
		return apply(ctx, in.Name, in.Body.Source)
	})
	register(api, h, huma.Operation{OperationID: "create-workflow", Method: http.MethodPost, Path: "/v1/workflows",
		Summary: "Create or replace a workflow (name in the body)", Description: "As PUT /v1/workflows/{name}.",
		Metadata: map[string]any{"action": "apply-workflow"}, DefaultStatus: http.StatusCreated, Errors: []int{409, 422}},
		func(ctx context.Context, in *CreateWorkflowInput) (*WorkflowOutput, error) {
			if err := workflows.CheckName("body.name", in.Body.Name); err != nil {
				return nil, err
			}
			return apply(ctx, in.Body.Name, in.Body.Source)
		})
	register(api, h, huma.Operation{OperationID: "list-workflows", Method: http.MethodGet, Path: "/v1/workflows",
		Summary: "List workflows"}, func(ctx context.Context, _ *struct{}) (*WorkflowsOutput, error) {
		list, err := h.Workflows.List(ctx)
		if err != nil {
			return nil, err
		}
		out := &WorkflowsOutput{}
		out.Body.Workflows = list
		return out, nil
	})
	register(api, h, huma.Operation{OperationID: "get-workflow", Method: http.MethodGet, Path: "/v1/workflows/{name}",
		Summary: "A workflow's current version", Errors: []int{404}}, func(ctx context.Context, in *WorkflowNameInput) (*WorkflowOutput, error) {
		v, err := h.Workflows.Get(ctx, in.Name)
		if err != nil {
			return nil, err
		}
		return &WorkflowOutput{Body: v}, nil
	})
	register(api, h, huma.Operation{OperationID: "delete-workflow", Method: http.MethodDelete, Path: "/v1/workflows/{name}",
		Summary: "Delete a workflow", Description: "Writes a deletion as a new version; earlier versions stay readable in the bucket.",
		DefaultStatus: http.StatusNoContent, Errors: []int{404}}, func(ctx context.Context, in *WorkflowNameInput) (*struct{}, error) {
		return nil, h.Workflows.Delete(ctx, in.Name)
	})
	register(api, h, huma.Operation{OperationID: "start-execution", Method: http.MethodPost, Path: "/v1/executions",
		Summary: "Run a workflow", DefaultStatus: http.StatusCreated, Errors: []int{404, 422}}, func(ctx context.Context, in *StartExecutionInput) (*ExecutionOutput, error) {
		return executionOut(h.Workflows.Start(ctx, in.Body.Workflow, in.Body.Inputs))
	})
	register(api, h, huma.Operation{OperationID: "list-executions", Method: http.MethodGet, Path: "/v1/executions",
		Summary: "List executions", Description: "Newest first, filtered by workflow, status and time, a page at a time.",
		Errors: []int{422}}, func(ctx context.Context, in *ListExecutionsInput) (*ListExecutionsOutput, error) {
		p, err := h.Workflows.Executions(ctx, workflows.ExecutionFilter{Workflow: in.Workflow, Status: in.Status, Since: in.Since, Cursor: in.Cursor, Limit: in.Limit})
		if err != nil {
			return nil, err
		}
		return &ListExecutionsOutput{Body: p}, nil
	})
	register(api, h, huma.Operation{OperationID: "get-execution", Method: http.MethodGet, Path: "/v1/executions/{id}",
		Summary: "An execution: every step's state and per-agent results", Errors: []int{404}}, func(ctx context.Context, in *ExecutionIDInput) (*ExecutionOutput, error) {
		return executionOut(h.Workflows.Load(ctx, in.ID))
	})
	register(api, h, huma.Operation{OperationID: "respond-prompt", Method: http.MethodPost, Path: "/v1/executions/{id}/respond",
		Summary: "Answer a prompt step", Description: "Who may answer is the policy's decision; the answer must be one of the step's options.",
		Errors: []int{404, 409}}, func(ctx context.Context, in *RespondInput) (*ExecutionOutput, error) {
		return executionOut(h.Workflows.Respond(ctx, in.ID, in.Body.Step, in.Body.Answer))
	})
	register(api, h, huma.Operation{OperationID: "cancel-execution", Method: http.MethodPost, Path: "/v1/executions/{id}/cancel",
		Summary: "Cancel an execution", Errors: []int{404}}, func(ctx context.Context, in *ExecutionIDInput) (*ExecutionOutput, error) {
		return executionOut(h.Workflows.Cancel(ctx, in.ID))
	})
	registerStream(api, h, huma.Operation{OperationID: "stream-execution-events", Method: http.MethodGet, Path: "/v1/executions/{id}/events",
		Summary: "Watch an execution", Description: "Server-sent events: every recorded event of the execution as it happens, until it ends.",
		Metadata: map[string]any{"action": "get-execution"}, Errors: []int{404}}, func(ctx context.Context, in *ExecutionIDInput) error {
		_, err := h.Workflows.Record(ctx, in.ID)
		return err
	}, func(ctx context.Context, in *ExecutionIDInput, send sender) error {
		return h.Workflows.StreamEvents(ctx, in.ID, func(id string, e workflow.Event) error {
			return send(id, string(e.Kind), e)
		})
	})
}
