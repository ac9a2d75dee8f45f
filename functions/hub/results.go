package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/store"
)

// ResultInput is an agent's final result for a command.
type ResultInput struct {
	ID   string `path:"id"`
	Body wire.Result
}

func (h *Hub) postResult(ctx context.Context, in *ResultInput) (*struct{}, error) {
	res := in.Body
	if !res.Status.Final() {
		return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("status %q is not a final state", res.Status))
	}
	rec, err := h.checkTarget(ctx, res.CommandID, in.ID)
	if err != nil {
		return nil, err
	}
	if res.OutputChunks < 0 || res.OutputBytes < 0 {
		return nil, huma.Error422UnprocessableEntity("output counts must not be negative")
	}
	created, err := createJSON(ctx, h.Store, keyResult(res.CommandID, in.ID), res)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	if created {
		h.Log.Info("result", "command", res.CommandID, "agent", in.ID, "status", res.Status, "exit", res.ExitCode)
	}
	// The marker lets a listing tell the state without reading the result. Written (and the wave
	// advanced) on every upload, repeats included: the first attempt may have died in between.
	stored := res
	if !created { // a repeat: the marker must name the status that was stored first
		if _, err := readJSON(ctx, h.Store, keyResult(res.CommandID, in.ID), &stored); err != nil {
			return nil, h.storeError(ctx, err)
		}
	}
	if _, err := createJSON(ctx, h.Store, keyMarker(res.CommandID, in.ID, "final-"+string(stored.Status)), map[string]any{"at": time.Now().UTC()}); err != nil {
		return nil, h.storeError(ctx, err)
	}
	h.resultToExecution(ctx, rec, in.ID, stored)
	if rec.MaxConcurrency > 0 && len(rec.Targets) > rec.MaxConcurrency {
		if err := h.advance(ctx, res.CommandID); err != nil {
			return nil, h.storeError(ctx, err)
		}
	}
	return nil, nil
}

// RunningInput says a command started.
type RunningInput struct {
	ID      string `path:"id"`
	Command string `path:"cmd"`
	Body    wire.Running
}

func (h *Hub) postRunning(ctx context.Context, in *RunningInput) (*struct{}, error) {
	if _, err := h.checkTarget(ctx, in.Command, in.ID); err != nil {
		return nil, err
	}
	if _, err := createJSON(ctx, h.Store, keyMarker(in.Command, in.ID, "running"), in.Body); err != nil {
		return nil, h.storeError(ctx, err)
	}
	return nil, nil
}

// ChunkInput is one chunk of output.
type ChunkInput struct {
	ID      string `path:"id"`
	Command string `path:"cmd"`
	Seq     int    `path:"seq" minimum:"0" maximum:"999999999"`
	RawBody []byte `contentType:"application/octet-stream"`
}

func (h *Hub) putChunk(ctx context.Context, in *ChunkInput) (*struct{}, error) {
	if len(in.RawBody) > wire.MaxChunkBytes {
		return nil, huma.Error413RequestEntityTooLarge(fmt.Sprintf("chunk of %d bytes; at most %d", len(in.RawBody), wire.MaxChunkBytes))
	}
	if _, err := h.checkTarget(ctx, in.Command, in.ID); err != nil {
		return nil, err
	}
	_, err := store.PutBytes(ctx, h.Store, keyChunk(in.Command, in.ID, in.Seq), in.RawBody, store.PutOptions{CreateOnly: true, ContentType: "application/octet-stream"})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return nil, h.storeError(ctx, err)
	}
	return nil, nil
}

// RejectionInput reports an envelope the agent refused.
type RejectionInput struct {
	ID   string `path:"id"`
	Body wire.Rejection
}

// RejectionRecord is a stored rejection report.
type RejectionRecord struct {
	wire.Rejection
	Agent      string    `json:"agent"`
	ReceivedAt time.Time `json:"receivedAt"`
}

func (h *Hub) postRejection(ctx context.Context, in *RejectionInput) (*struct{}, error) {
	if in.Body.Reason == "" {
		return nil, huma.Error422UnprocessableEntity("a rejection needs a reason")
	}
	rec := RejectionRecord{Rejection: in.Body, Agent: in.ID, ReceivedAt: time.Now().UTC()}
	key := prefixRejections + in.ID + "/" + uuid.Must(uuid.NewV7()).String() + ".json"
	if _, err := createJSON(ctx, h.Store, key, rec); err != nil {
		return nil, h.storeError(ctx, err)
	}
	h.Log.Warn("agent rejected an envelope", "agent", in.ID, "inbox_key", in.Body.EnvelopeKey, "reason", in.Body.Reason)
	return nil, nil
}

// AgentIDInput names an agent.
type AgentIDInput struct {
	ID string `path:"id"`
}

// RejectionsOutput lists an agent's rejection reports.
type RejectionsOutput struct {
	Body struct {
		Rejections []RejectionRecord `json:"rejections"`
	}
}

func (h *Hub) listRejections(ctx context.Context, in *AgentIDInput) (*RejectionsOutput, error) {
	if !validID(in.ID) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no agent %q", in.ID))
	}
	out := &RejectionsOutput{}
	out.Body.Rejections = []RejectionRecord{}
	err := store.Walk(ctx, h.Store, prefixRejections+in.ID+"/", "", 0, func(o store.ObjectInfo) error {
		var r RejectionRecord
		if _, err := readJSON(ctx, h.Store, o.Key, &r); err != nil {
			return err
		}
		out.Body.Rejections = append(out.Body.Rejections, r)
		return nil
	})
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	return out, nil
}

func registerAgentAPI(api huma.API, h *Hub) {
	agentSec := []map[string][]string{{"agentSignature": {}}}
	auth := huma.Middlewares{h.agentAuth(api)}
	register(api, huma.Operation{OperationID: "enroll", Method: http.MethodPost, Path: "/v1/enroll", Tags: []string{"Agent protocol"},
		Summary: "Enroll an agent", Description: "An agent without an identity presents an enrollment token and its public key. Retrying with the same key is harmless.",
		Middlewares: huma.Middlewares{h.enrollLimit(api)}, Errors: []int{403, 409, 422, 429}}, h.enroll)
	register(api, huma.Operation{OperationID: "agent-poll", Method: http.MethodPost, Path: "/v1/agents/{id}/poll", Tags: []string{"Agent protocol"},
		Summary: "Long-poll for work", Description: "Returns waiting envelopes at once, else holds until work arrives or holdSeconds pass. Acknowledged inbox keys are removed.",
		Security: agentSec, Middlewares: auth, Errors: []int{401, 403}}, h.poll)
	register(api, huma.Operation{OperationID: "agent-heartbeat", Method: http.MethodPost, Path: "/v1/agents/{id}/heartbeat", Tags: []string{"Agent protocol"},
		Summary: "Heartbeat", DefaultStatus: http.StatusNoContent, Security: agentSec, Middlewares: auth, Errors: []int{401, 403}}, h.recordHeartbeat)
	register(api, huma.Operation{OperationID: "agent-running", Method: http.MethodPost, Path: "/v1/agents/{id}/commands/{cmd}/running", Tags: []string{"Agent protocol"},
		Summary: "Report a command started", DefaultStatus: http.StatusNoContent, Security: agentSec, Middlewares: auth, Errors: []int{401, 403, 404}}, h.postRunning)
	register(api, huma.Operation{OperationID: "agent-output", Method: http.MethodPut, Path: "/v1/agents/{id}/commands/{cmd}/output/{seq}", Tags: []string{"Agent protocol"},
		Summary: "Upload an output chunk", Description: "Chunks are numbered from 0 and written once; uploading one again is harmless.",
		DefaultStatus: http.StatusNoContent, MaxBodyBytes: wire.MaxChunkBytes + 1, Security: agentSec, Middlewares: auth, Errors: []int{401, 403, 404, 413}}, h.putChunk)
	register(api, huma.Operation{OperationID: "agent-result", Method: http.MethodPost, Path: "/v1/agents/{id}/results", Tags: []string{"Agent protocol"},
		Summary: "Upload a final result", Description: "Stored once per command and agent; uploading it again is harmless.",
		DefaultStatus: http.StatusNoContent, Security: agentSec, Middlewares: auth, Errors: []int{401, 403, 404, 422}}, h.postResult)
	register(api, huma.Operation{OperationID: "agent-rejection", Method: http.MethodPost, Path: "/v1/agents/{id}/rejections", Tags: []string{"Agent protocol"},
		Summary: "Report a refused envelope", DefaultStatus: http.StatusNoContent, Security: agentSec, Middlewares: auth, Errors: []int{401, 403, 422}}, h.postRejection)
}

func registerOperatorAPI(api huma.API, h *Hub) {
	sec := []map[string][]string{{"bearer": {}}}
	gate := func(action string) huma.Middlewares {
		return huma.Middlewares{h.operatorAuth(api), h.policyGate(api, action)}
	}
	authOnly := huma.Middlewares{h.operatorAuth(api)} // the handler asks the policy itself, with more input
	register(api, huma.Operation{OperationID: "create-enroll-token", Method: http.MethodPost, Path: "/v1/enroll-tokens", Tags: []string{"Agents"},
		Summary: "Create an enrollment token", DefaultStatus: http.StatusCreated, Security: sec, Middlewares: gate("create-enroll-token"), Errors: []int{401, 403, 422}}, h.createEnrollToken)
	register(api, huma.Operation{OperationID: "list-agents", Method: http.MethodGet, Path: "/v1/agents", Tags: []string{"Agents"},
		Summary: "List agents", Description: "Agents with labels, online state, last heartbeat, version, soft-disabled integrations and the shell hatch.",
		Security: sec, Middlewares: gate("list-agents"), Errors: []int{401, 403, 422}}, h.listAgents)
	register(api, huma.Operation{OperationID: "list-agent-rejections", Method: http.MethodGet, Path: "/v1/agents/{id}/rejections", Tags: []string{"Agents"},
		Summary: "Envelopes an agent refused", Security: sec, Middlewares: gate("list-agent-rejections"), Errors: []int{401, 403, 404}}, h.listRejections)
	register(api, huma.Operation{OperationID: "create-command", Method: http.MethodPost, Path: "/v1/commands", Tags: []string{"Commands"},
		Summary: "Run a command on agents", Description: "Checks the command and parameters against every target's catalog (nothing is enqueued if one fails), asks the policy (which may require approvals), records it and releases it in waves of maxConcurrency.",
		DefaultStatus: http.StatusAccepted, Security: sec, Middlewares: authOnly, Errors: []int{401, 403, 422}}, h.createCommand)
	register(api, huma.Operation{OperationID: "get-command", Method: http.MethodGet, Path: "/v1/commands/{id}", Tags: []string{"Commands"},
		Summary: "A command and its state on every target", Security: sec, Middlewares: gate("get-command"), Errors: []int{401, 403, 404}}, h.getCommand)
	register(api, huma.Operation{OperationID: "cancel-command", Method: http.MethodPost, Path: "/v1/commands/{id}/cancel", Tags: []string{"Commands"},
		Summary: "Cancel what has not finished", Security: sec, Middlewares: gate("cancel-command"), Errors: []int{401, 403, 404}}, h.cancelCommand)
	register(api, huma.Operation{OperationID: "approve-command", Method: http.MethodPost, Path: "/v1/commands/{id}/approve", Tags: []string{"Commands"},
		Summary: "Approve a command awaiting approval", Description: "The requester cannot approve their own command; each approver counts once.",
		Security: sec, Middlewares: gate("approve-command"), Errors: []int{401, 403, 404, 409}}, h.approveCommand)
	register(api, huma.Operation{OperationID: "deny-command", Method: http.MethodPost, Path: "/v1/commands/{id}/deny", Tags: []string{"Commands"},
		Summary: "Deny a command awaiting approval", Security: sec, Middlewares: gate("approve-command"), Errors: []int{401, 403, 404, 409}}, h.denyCommand)
	register(api, huma.Operation{OperationID: "get-command-output", Method: http.MethodGet, Path: "/v1/commands/{id}/output/{agent}", Tags: []string{"Commands"},
		Summary: "An agent's output", Description: "Raw bytes from chunk `from` on; X-Pulse-Next-Chunk says where to continue and X-Pulse-Complete whether more will come.",
		Security: sec, Middlewares: gate("get-command-output"), Errors: []int{401, 403, 404}}, h.getOutput)
}
