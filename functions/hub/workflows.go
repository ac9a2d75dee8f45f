package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/workflow"
)

// Workflows are stored versioned: v1/workflows/<name>/<version>.json, each version written once. The
// newest version is the workflow; a deletion is a version that says so, so history stays readable.
const prefixWorkflows = "v1/workflows/"

var workflowName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// WorkflowVersion is one stored version of a workflow.
type WorkflowVersion struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Source    string    `json:"source,omitempty" doc:"The YAML or JSON as applied."`
	Deleted   bool      `json:"deleted,omitempty"`
	AppliedBy string    `json:"appliedBy"`
	AppliedAt time.Time `json:"appliedAt"`
	// AppliedByPrincipal is whom scheduled runs of this version act for, under the policy.
	AppliedByPrincipal Principal `json:"appliedByPrincipal"`
	Parsed             any       `json:"definition,omitempty" doc:"The parsed definition, as the engine sees it."`
}

// ApplyWorkflowInput creates or replaces a workflow.
type ApplyWorkflowInput struct {
	Name string `path:"name"`
	Body struct {
		Source string `json:"source" minLength:"1" maxLength:"1048576" doc:"The workflow in YAML or JSON."`
	}
}

// WorkflowOutput is a workflow version.
type WorkflowOutput struct {
	Body *WorkflowVersion
}

// WorkflowNameInput names a workflow.
type WorkflowNameInput struct {
	Name string `path:"name"`
}

// WorkflowsOutput lists the current version of every workflow.
type WorkflowsOutput struct {
	Body struct {
		Workflows []WorkflowSummary `json:"workflows"`
	}
}

// WorkflowSummary is a line of the workflow list.
type WorkflowSummary struct {
	Name        string    `json:"name"`
	Version     int       `json:"version"`
	Description string    `json:"description,omitempty"`
	Steps       int       `json:"steps"`
	Schedule    string    `json:"schedule,omitempty"`
	AppliedBy   string    `json:"appliedBy"`
	AppliedAt   time.Time `json:"appliedAt"`
}

// fleetCatalog is every command any enrolled agent offers: a workflow may name a command that only some
// agents have; which ones it reaches is decided when it runs.
type fleetCatalog map[string]wire.CommandSpec

func (c fleetCatalog) Lookup(name string) (wire.CommandSpec, bool) {
	s, ok := c[name]
	return s, ok
}

func (h *Hub) fleetCatalog(ctx context.Context) (fleetCatalog, error) {
	all, err := h.resolveAll(ctx)
	if err != nil {
		return nil, err
	}
	cat := fleetCatalog{}
	for _, t := range all {
		for _, spec := range catalogOf(t.ident, t.hb) {
			cat[spec.Name] = spec
		}
	}
	return cat, nil
}

// refusal is the one-line detail of a refused workflow: every problem, "line:column: path: message".
func refusal(name string, err error) string {
	var ve *workflow.ValidationError
	if !errors.As(err, &ve) {
		return "workflow " + name + " refused: " + err.Error()
	}
	parts := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		parts[i] = p.String()
	}
	return "workflow " + name + " refused: " + strings.Join(parts, "; ")
}

// problemDetails turns validation problems into RFC 9457 error details that point into the source.
func problemDetails(err error) []error {
	var ve *workflow.ValidationError
	if !errors.As(err, &ve) {
		return []error{&huma.ErrorDetail{Location: "body.source", Message: err.Error()}}
	}
	var out []error
	for _, p := range ve.Problems {
		loc := "body.source"
		if p.Line > 0 {
			loc = fmt.Sprintf("body.source:%d:%d", p.Line, p.Column)
		}
		if p.Path != "" {
			loc += " " + p.Path
		}
		out = append(out, &huma.ErrorDetail{Location: loc, Message: p.Message})
	}
	return out
}

func (h *Hub) latestWorkflow(ctx context.Context, name string) (*WorkflowVersion, error) {
	var last string
	err := store.Walk(ctx, h.Store, prefixWorkflows+name+"/", "", 0, func(o store.ObjectInfo) error {
		last = o.Key
		return nil
	})
	if err != nil {
		return nil, err
	}
	if last == "" {
		return nil, store.ErrNotFound
	}
	var v WorkflowVersion
	if _, err := readJSON(ctx, h.Store, last, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (h *Hub) applyWorkflow(ctx context.Context, in *ApplyWorkflowInput) (*WorkflowOutput, error) {
	if !workflowName.MatchString(in.Name) {
		return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("workflow name %q: lower-case letters, digits, - and _ (at most 63)", in.Name))
	}
	def, err := workflow.Parse([]byte(in.Body.Source))
	if err != nil {
		return nil, huma.Error422UnprocessableEntity(refusal(in.Name, err), problemDetails(err)...)
	}
	cat, err := h.fleetCatalog(ctx)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	if err := def.Validate(cat); err != nil {
		return nil, huma.Error422UnprocessableEntity(refusal(in.Name, err), problemDetails(err)...)
	}
	next := 1
	if prev, err := h.latestWorkflow(ctx, in.Name); err == nil {
		next = prev.Version + 1
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, h.storeError(ctx, err)
	}
	v := &WorkflowVersion{Name: in.Name, Version: next, Source: in.Body.Source, AppliedBy: PrincipalFrom(ctx).ID, AppliedAt: time.Now().UTC(), AppliedByPrincipal: PrincipalFrom(ctx)}
	created, err := createJSON(ctx, h.Store, fmt.Sprintf("%s%s/%06d.json", prefixWorkflows, in.Name, next), v)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	if !created {
		return nil, huma.Error409Conflict(fmt.Sprintf("workflow %s was changed concurrently (version %d exists); apply again", in.Name, next))
	}
	h.record(ctx, "apply-workflow", nil, nil, "ok", map[string]any{"name": in.Name, "version": next})
	v.Parsed = def
	return &WorkflowOutput{Body: v}, nil
}

// CreateWorkflowInput creates or replaces a workflow named in the body.
type CreateWorkflowInput struct {
	Body struct {
		Name   string `json:"name" minLength:"1" maxLength:"63"`
		Source string `json:"source" minLength:"1" maxLength:"1048576" doc:"The workflow in YAML or JSON."`
	}
}

func (h *Hub) createWorkflow(ctx context.Context, in *CreateWorkflowInput) (*WorkflowOutput, error) {
	a := &ApplyWorkflowInput{Name: in.Body.Name}
	a.Body.Source = in.Body.Source
	return h.applyWorkflow(ctx, a)
}

func (h *Hub) getWorkflow(ctx context.Context, in *WorkflowNameInput) (*WorkflowOutput, error) {
	v, err := h.latestWorkflow(ctx, in.Name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.Deleted) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no workflow %q (see pulse workflow list)", in.Name))
	}
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	if def, err := workflow.Parse([]byte(v.Source)); err == nil {
		v.Parsed = def
	}
	return &WorkflowOutput{Body: v}, nil
}

func (h *Hub) listWorkflows(ctx context.Context, _ *struct{}) (*WorkflowsOutput, error) {
	latest := map[string]string{}
	var names []string
	err := store.Walk(ctx, h.Store, prefixWorkflows, "", 0, func(o store.ObjectInfo) error {
		rest := strings.TrimPrefix(o.Key, prefixWorkflows)
		name, _, _ := strings.Cut(rest, "/")
		if _, ok := latest[name]; !ok {
			names = append(names, name)
		}
		latest[name] = o.Key
		return nil
	})
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	out := &WorkflowsOutput{}
	out.Body.Workflows = []WorkflowSummary{}
	for _, name := range names {
		var v WorkflowVersion
		if _, err := readJSON(ctx, h.Store, latest[name], &v); err != nil {
			return nil, h.storeError(ctx, err)
		}
		if v.Deleted {
			continue
		}
		s := WorkflowSummary{Name: v.Name, Version: v.Version, AppliedBy: v.AppliedBy, AppliedAt: v.AppliedAt}
		if def, err := workflow.Parse([]byte(v.Source)); err == nil {
			s.Description, s.Steps = def.Description, len(def.Steps)
			if def.Schedule != nil {
				s.Schedule = def.Schedule.Cron
			}
		}
		out.Body.Workflows = append(out.Body.Workflows, s)
	}
	return out, nil
}

func (h *Hub) deleteWorkflow(ctx context.Context, in *WorkflowNameInput) (*struct{}, error) {
	prev, err := h.latestWorkflow(ctx, in.Name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && prev.Deleted) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no workflow %q", in.Name))
	}
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	v := WorkflowVersion{Name: in.Name, Version: prev.Version + 1, Deleted: true, AppliedBy: PrincipalFrom(ctx).ID, AppliedAt: time.Now().UTC()}
	if _, err := createJSON(ctx, h.Store, fmt.Sprintf("%s%s/%06d.json", prefixWorkflows, in.Name, v.Version), v); err != nil {
		return nil, h.storeError(ctx, err)
	}
	h.record(ctx, "delete-workflow", nil, nil, "ok", map[string]any{"name": in.Name, "version": v.Version})
	return nil, nil
}

func registerWorkflowAPI(api huma.API, h *Hub) {
	sec := []map[string][]string{{"bearer": {}}}
	gate := func(action string) huma.Middlewares {
		return huma.Middlewares{h.operatorAuth(api), h.policyGate(api, action)}
	}
	register(api, huma.Operation{OperationID: "apply-workflow", Method: http.MethodPut, Path: "/v1/workflows/{name}", Tags: []string{"Workflows"},
		Summary: "Create or replace a workflow", Description: "Parses the YAML or JSON, type-checks and cost-bounds every CEL condition, checks commands and parameters against the fleet's catalogs, and stores a new version. Problems are reported with line:column in the source.",
		Security: sec, Middlewares: gate("apply-workflow"), Errors: []int{401, 403, 409, 422}}, h.applyWorkflow)
	register(api, huma.Operation{OperationID: "create-workflow", Method: http.MethodPost, Path: "/v1/workflows", Tags: []string{"Workflows"},
		Summary: "Create or replace a workflow (name in the body)", Description: "As PUT /v1/workflows/{name}.",
		DefaultStatus: http.StatusCreated, Security: sec, Middlewares: gate("apply-workflow"), Errors: []int{401, 403, 409, 422}}, h.createWorkflow)
	register(api, huma.Operation{OperationID: "list-workflows", Method: http.MethodGet, Path: "/v1/workflows", Tags: []string{"Workflows"},
		Summary: "List workflows", Security: sec, Middlewares: gate("list-workflows"), Errors: []int{401, 403}}, h.listWorkflows)
	register(api, huma.Operation{OperationID: "get-workflow", Method: http.MethodGet, Path: "/v1/workflows/{name}", Tags: []string{"Workflows"},
		Summary: "A workflow's current version", Security: sec, Middlewares: gate("get-workflow"), Errors: []int{401, 403, 404}}, h.getWorkflow)
	register(api, huma.Operation{OperationID: "delete-workflow", Method: http.MethodDelete, Path: "/v1/workflows/{name}", Tags: []string{"Workflows"},
		Summary: "Delete a workflow", Description: "Writes a deletion as a new version; earlier versions stay readable in the bucket.",
		DefaultStatus: http.StatusNoContent, Security: sec, Middlewares: gate("delete-workflow"), Errors: []int{401, 403, 404}}, h.deleteWorkflow)
}
