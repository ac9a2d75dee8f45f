package hub

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
)

// EnrollInput is an agent's enrollment.
type EnrollInput struct {
	Body wire.EnrollRequest
}

// EnrollOutput answers an enrollment.
type EnrollOutput struct {
	Body wire.EnrollResponse
}

// PollInput is an agent's poll.
type PollInput struct {
	ID   string `path:"id"`
	Body wire.PollRequest
}

// PollOutput carries the waiting envelopes.
type PollOutput struct {
	Body wire.PollResponse
}

// HeartbeatInput is an agent's heartbeat.
type HeartbeatInput struct {
	ID   string `path:"id"`
	Body wire.Heartbeat
}

// RunningInput says a command started.
type RunningInput struct {
	ID      string `path:"id"`
	Command string `path:"cmd"`
	Body    wire.Running
}

// ChunkInput is one chunk of output.
type ChunkInput struct {
	ID      string `path:"id"`
	Command string `path:"cmd"`
	Seq     int    `path:"seq" minimum:"0" maximum:"999999999"`
	RawBody []byte `contentType:"application/octet-stream"`
}

// ResultInput is an agent's final result for a command.
type ResultInput struct {
	ID   string `path:"id"`
	Body wire.Result
}

// RejectionInput reports an envelope the agent refused.
type RejectionInput struct {
	ID   string `path:"id"`
	Body wire.Rejection
}

// registerEnrollment is how an agent without an identity gets one (the fleet room).
func registerEnrollment(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "enroll", Method: http.MethodPost, Path: "/v1/enroll",
		Summary: "Enroll an agent", Description: "An agent without an identity presents an enrollment token and its public key. Retrying with the same key is harmless.",
		Errors: []int{403, 409, 422, 429}}, func(ctx context.Context, in *EnrollInput) (*EnrollOutput, error) {
		resp, err := h.Fleet.Enroll(ctx, in.Body)
		if err != nil {
			return nil, err
		}
		return &EnrollOutput{Body: resp}, nil
	})
}

// registerAgentProtocol is what enrolled agents call, signed: polls, heartbeats and reports. The rooms
// behind it: fleet (heartbeats), delivery (poll, rejections), commands (running, output, results).
func registerAgentProtocol(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "agent-poll", Method: http.MethodPost, Path: "/v1/agents/{id}/poll",
		Summary: "Long-poll for work", Description: "Returns waiting envelopes at once, else holds until work arrives or holdSeconds pass. Acknowledged envelopes (by the inboxKey the hub gave them) are not offered again by this hub instance; one that offers an envelope again is answered by the agent's replay record."},
		func(ctx context.Context, in *PollInput) (*PollOutput, error) {
			resp, err := h.Delivery.Poll(ctx, domain.AgentFrom(ctx), in.Body)
			if err != nil {
				return nil, err
			}
			return &PollOutput{Body: resp}, nil
		})
	register(api, h, huma.Operation{OperationID: "agent-heartbeat", Method: http.MethodPost, Path: "/v1/agents/{id}/heartbeat",
		Summary: "Heartbeat", DefaultStatus: http.StatusNoContent, Errors: []int{422}}, func(ctx context.Context, in *HeartbeatInput) (*struct{}, error) {
		return nil, h.Fleet.RecordHeartbeat(ctx, domain.AgentFrom(ctx), in.Body)
	})
	register(api, h, huma.Operation{OperationID: "agent-running", Method: http.MethodPost, Path: "/v1/agents/{id}/commands/{cmd}/running",
		Summary: "Report a command started", Description: "409 when the command was not released to this agent (awaiting approval, denied, or its wave has not reached it), or the target expired before delivery: that state is final. Nothing is stored then.",
		DefaultStatus: http.StatusNoContent, Errors: []int{404, 409}}, func(ctx context.Context, in *RunningInput) (*struct{}, error) {
		return nil, h.Commands.Running(ctx, domain.AgentFrom(ctx), in.Command, in.Body)
	})
	register(api, h, huma.Operation{OperationID: "agent-output", Method: http.MethodPut, Path: "/v1/agents/{id}/commands/{cmd}/output/{seq}",
		Summary: "Upload an output chunk", Description: "Chunks are numbered from 0 and written once; uploading one again is harmless. 409 when the command was not released to this agent.",
		DefaultStatus: http.StatusNoContent, MaxBodyBytes: wire.MaxChunkBytes + 1, Errors: []int{404, 409, 413}}, func(ctx context.Context, in *ChunkInput) (*struct{}, error) {
		return nil, h.Commands.Chunk(ctx, domain.AgentFrom(ctx), in.Command, in.Seq, in.RawBody)
	})
	register(api, h, huma.Operation{OperationID: "agent-result", Method: http.MethodPost, Path: "/v1/agents/{id}/results",
		Summary: "Upload a final result", Description: "Stored once per command and agent; uploading it again is harmless. Answers as soon as the result is stored. 409 when the command was not released to this agent (awaiting approval, denied, or its wave has not reached it), or the target expired before delivery: that state is final. Nothing is stored then.",
		DefaultStatus: http.StatusNoContent, Errors: []int{404, 409, 422}}, func(ctx context.Context, in *ResultInput) (*struct{}, error) {
		agent := domain.AgentFrom(ctx)
		if err := h.Commands.Result(ctx, agent, in.Body); err != nil {
			return nil, err
		}
		// Stored; its commands alerts are decided before it is answered, so a failure to record one
		// makes the agent report again (the result is stored once, and counted once).
		return nil, h.Alerts.ObserveResult(ctx, agent, in.Body)
	})
	register(api, h, huma.Operation{OperationID: "agent-rejection", Method: http.MethodPost, Path: "/v1/agents/{id}/rejections",
		Summary: "Report a refused envelope", DefaultStatus: http.StatusNoContent, Errors: []int{422}}, func(ctx context.Context, in *RejectionInput) (*struct{}, error) {
		return nil, h.Delivery.Reject(ctx, domain.AgentFrom(ctx), in.Body)
	})
}
