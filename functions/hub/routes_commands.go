package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/pulsehq/pulse/functions/hub/commands"
)

// CreateCommandInput runs a whitelisted command on targets.
type CreateCommandInput struct {
	Body commands.Spec
}

// CommandOutput returns a command's status.
type CommandOutput struct {
	Body *commands.Status
}

// GetCommandInput names a command and how much to read.
type GetCommandInput struct {
	ID string `path:"id"`
	// Brief skips reading every result (exit codes, reasons, times): states and counts come from one
	// listing, which is what a client polling for completion needs.
	Brief bool `query:"brief" doc:"Only states and counts, without per-agent exit codes, reasons and times."`
}

// ListCommandsInput filters the command list.
type ListCommandsInput struct {
	State   string    `query:"state" enum:"running,awaiting_approval,done,cancelled,denied" doc:"The command's state as a whole."`
	Issuer  string    `query:"issuer" doc:"Who issued it (a principal id)."`
	Agent   string    `query:"agent" doc:"An agent id among its targets."`
	Command string    `query:"command" doc:"The command's name."`
	Since   time.Time `query:"since" doc:"RFC 3339: only commands created at or after it."`
	Cursor  string    `query:"cursor" doc:"The next value of the previous page."`
	Limit   int       `query:"limit" minimum:"0" maximum:"1000" doc:"At most this many (default 50)."`
}

// ListCommandsOutput is a page of commands, newest first.
type ListCommandsOutput struct {
	Body *commands.Page
}

// ApprovalsInput asks for the approvals inbox.
type ApprovalsInput struct {
	Limit int `query:"limit" minimum:"0" maximum:"1000" doc:"At most this many (default all)."`
}

// ApprovalsOutput lists commands waiting for the caller's approval.
type ApprovalsOutput struct {
	Body struct {
		Commands []commands.Summary `json:"commands"`
	}
}

// DecideInput approves or denies a command awaiting approval.
type DecideInput struct {
	ID   string `path:"id"`
	Body struct {
		Comment string `json:"comment,omitempty" maxLength:"1000"`
	}
}

// CommandStreamInput names the command to watch and where a dropped stream resumes.
type CommandStreamInput struct {
	ID          string `path:"id"`
	LastEventID string `header:"Last-Event-ID" doc:"Resume after this event: agent states that changed at or before it are not sent again."`
}

// OutputInput asks for an agent's output of a command from a chunk on.
type OutputInput struct {
	ID    string `path:"id"`
	Agent string `path:"agent"`
	From  int    `query:"from" minimum:"0" doc:"First chunk to return."`
	Max   int    `query:"max" minimum:"0" maximum:"64" doc:"At most this many chunks (default 16)."`
}

// OutputOutput is raw output bytes; headers say where to continue and whether more will come.
type OutputOutput struct {
	ContentType string `header:"Content-Type"`
	NextChunk   int    `header:"X-Pulse-Next-Chunk" doc:"Ask from this chunk next."`
	Complete    bool   `header:"X-Pulse-Complete" doc:"True when the result is stored and every chunk has been returned."`
	State       string `header:"X-Pulse-State"`
	Body        []byte
}

func statusOut(st *commands.Status, err error) (*CommandOutput, error) {
	if err != nil {
		return nil, err
	}
	return &CommandOutput{Body: st}, nil
}

// registerCommands is the commands room's operator side.
func registerCommands(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "create-command", Method: http.MethodPost, Path: "/v1/commands",
		Summary:     "Run a command on agents",
		Description: "Checks the command and parameters against every target's catalog (nothing is enqueued if one fails), asks the policy (which may require approvals), records it and releases it in waves of maxConcurrency.",
		Metadata:    map[string]any{"decide": "service"}, DefaultStatus: http.StatusAccepted, Errors: []int{422}},
		func(ctx context.Context, in *CreateCommandInput) (*CommandOutput, error) {
			return statusOut(h.Commands.Create(ctx, commands.Request{Spec: in.Body}))
		})
	register(api, h, huma.Operation{OperationID: "list-commands", Method: http.MethodGet, Path: "/v1/commands",
		Summary: "List commands", Description: "Newest first, filtered by state, issuer, agent, command and time, a page at a time.",
		Errors: []int{422}}, func(ctx context.Context, in *ListCommandsInput) (*ListCommandsOutput, error) {
		p, err := h.Commands.List(ctx, commands.Filter{State: in.State, Issuer: in.Issuer, Agent: in.Agent, Command: in.Command, Since: in.Since, Cursor: in.Cursor, Limit: in.Limit})
		if err != nil {
			return nil, err
		}
		return &ListCommandsOutput{Body: p}, nil
	})
	register(api, h, huma.Operation{OperationID: "list-approvals", Method: http.MethodGet, Path: "/v1/approvals",
		Summary: "Commands waiting for your approval", Description: "Commands awaiting approval that the caller may approve: not their own, not approved by them yet, and they are in a required group."},
		func(ctx context.Context, in *ApprovalsInput) (*ApprovalsOutput, error) {
			cs, err := h.Commands.Awaiting(ctx, in.Limit)
			if err != nil {
				return nil, err
			}
			out := &ApprovalsOutput{}
			out.Body.Commands = cs
			return out, nil
		})
	register(api, h, huma.Operation{OperationID: "get-command", Method: http.MethodGet, Path: "/v1/commands/{id}",
		Summary: "A command and its state on every target", Errors: []int{404}}, func(ctx context.Context, in *GetCommandInput) (*CommandOutput, error) {
		return statusOut(h.Commands.Status(ctx, in.ID, !in.Brief))
	})
	register(api, h, huma.Operation{OperationID: "cancel-command", Method: http.MethodPost, Path: "/v1/commands/{id}/cancel",
		Summary: "Cancel what has not finished", Errors: []int{404}}, func(ctx context.Context, in *IDInput) (*CommandOutput, error) {
		return statusOut(h.Commands.Cancel(ctx, in.ID))
	})
	register(api, h, huma.Operation{OperationID: "approve-command", Method: http.MethodPost, Path: "/v1/commands/{id}/approve",
		Summary: "Approve a command awaiting approval", Description: "The requester cannot approve their own command; each approver counts once.",
		Errors: []int{404, 409}}, func(ctx context.Context, in *DecideInput) (*CommandOutput, error) {
		return statusOut(h.Commands.Decide(ctx, in.ID, true, in.Body.Comment))
	})
	register(api, h, huma.Operation{OperationID: "deny-command", Method: http.MethodPost, Path: "/v1/commands/{id}/deny",
		Summary: "Deny a command awaiting approval", Description: "Policy action `deny-command`; the default policy gives it to whoever may approve.",
		Errors: []int{404, 409}}, func(ctx context.Context, in *DecideInput) (*CommandOutput, error) {
		return statusOut(h.Commands.Decide(ctx, in.ID, false, in.Body.Comment))
	})
	register(api, h, huma.Operation{OperationID: "get-command-output", Method: http.MethodGet, Path: "/v1/commands/{id}/output/{agent}",
		Summary: "An agent's output", Description: "Raw bytes from chunk `from` on; X-Pulse-Next-Chunk says where to continue and X-Pulse-Complete whether more will come. A chunk that fails the hub's integrity check (edited in the bucket) is a 409.",
		Errors: []int{404, 409}}, func(ctx context.Context, in *OutputInput) (*OutputOutput, error) {
		o, err := h.Commands.Output(ctx, in.ID, in.Agent, in.From, in.Max)
		if err != nil {
			return nil, err
		}
		return &OutputOutput{ContentType: "application/octet-stream", NextChunk: o.NextChunk, Complete: o.Complete, State: o.State, Body: o.Bytes}, nil
	})
	registerStream(api, h, huma.Operation{OperationID: "stream-command", Method: http.MethodGet, Path: "/v1/commands/{id}/events",
		Summary: "Watch a command", Metadata: map[string]any{"action": "get-command"},
		Description: "Server-sent events: `agent` (an AgentState, with exit code and reason once final; its id resumes the stream as Last-Event-ID) whenever an agent's state changes, and `command` (a CommandUpdate: the state as a whole, counts, approvals) when that changes; the stream ends when every target is final.",
		Errors:      []int{404}}, func(ctx context.Context, in *CommandStreamInput) error {
		_, err := h.Commands.Get(ctx, in.ID)
		return err
	}, func(ctx context.Context, in *CommandStreamInput, send sender) error {
		return h.Commands.Watch(ctx, in.ID, in.LastEventID, func(u commands.Update) error {
			if u.Agent != nil {
				return send(u.ID, "agent", u.Agent)
			}
			return send("", "command", u.Command)
		})
	})
}

// sender writes one server-sent event.
type sender func(id, event string, data any) error

// registerStream registers a server-sent event stream: check runs before the stream starts (so a
// missing command is a 404 problem, not an empty stream), then stream sends events until it returns.
func registerStream[I any](api huma.API, h *Hub, op huma.Operation, check func(context.Context, *I) error, stream func(context.Context, *I, sender) error) {
	huma.Register(api, op, func(ctx context.Context, in *I) (*huma.StreamResponse, error) {
		clearReadDeadline(ctx)
		if err := check(ctx, in); err != nil {
			return nil, h.problem(ctx, err)
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", "text/event-stream")
			hctx.SetHeader("Cache-Control", "no-cache")
			hctx.SetHeader("X-Accel-Buffering", "no")
			w := hctx.BodyWriter()
			_, rw := humago.Unwrap(hctx)
			rc := http.NewResponseController(rw) // reaches through wrappers (the access log's) to flush
			flush := func() { _ = rc.Flush() }
			// A comment first, so clients and proxies see the stream open at once.
			fmt.Fprint(w, ": stream open\n\n")
			flush()
			err := stream(hctx.Context(), in, func(id, event string, data any) error {
				b, err := json.Marshal(data)
				if err != nil {
					return err
				}
				var sb strings.Builder
				if id != "" {
					sb.WriteString("id: " + id + "\n")
				}
				sb.WriteString("event: " + event + "\ndata: " + string(b) + "\n\n")
				_, err = fmt.Fprint(w, sb.String())
				flush()
				return err
			})
			if err != nil && hctx.Context().Err() == nil {
				h.Log.Warn("event stream ended with an error", "operation", op.OperationID, "err", err)
				fmt.Fprintf(w, "event: error\ndata: %q\n\n", err.Error())
				flush()
			}
		}}, nil
	})
}
