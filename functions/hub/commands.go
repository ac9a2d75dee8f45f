package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/policy"
)

// CommandRecord is what was asked, of whom and by whom; written once when the command is accepted.
type CommandRecord struct {
	ID             string            `json:"id"`
	Command        string            `json:"command"`
	Params         map[string]string `json:"params,omitempty"`
	TargetExprs    []string          `json:"targetExprs"`
	Targets        []string          `json:"targets" doc:"Agent ids, in the order waves release them."`
	TimeoutSeconds int               `json:"timeoutSeconds"`
	MaxConcurrency int               `json:"maxConcurrency,omitempty" doc:"At most this many agents run it at once (0: all)."`
	MaxErrors      int               `json:"maxErrors,omitempty" doc:"Stop releasing after this many failures (0: never stop)."`
	Issuer         string            `json:"issuer"`
	CreatedAt      time.Time         `json:"createdAt"`
	NotAfter       time.Time         `json:"notAfter" doc:"Agents that have not received it by then never run it (expired)."`
	// Approval is set when the policy requires approvals before anything is released.
	Approval *ApprovalRequirement `json:"approval,omitempty"`
	// Decision is what the policy said, for the record.
	Rules []string `json:"rules,omitempty"`
	// Execution, Step and Attempt link a command issued by a workflow back to it.
	Execution string `json:"execution,omitempty"`
	Step      string `json:"step,omitempty"`
	Attempt   int    `json:"attempt,omitempty"`
}

// ApprovalRequirement says how many distinct approvers from which groups must agree; the requester
// never counts.
type ApprovalRequirement struct {
	Count     int      `json:"count"`
	Groups    []string `json:"groups"`
	Reason    string   `json:"reason,omitempty"`
	Requester string   `json:"requester"`
}

// CreateCommandInput runs a whitelisted command on targets.
type CreateCommandInput struct {
	Body CreateCommandBody
}

// CreateCommandBody is what to run, where, and how carefully.
type CreateCommandBody struct {
	Command          string            `json:"command" minLength:"1" doc:"A command from the targets' catalogs."`
	Targets          []string          `json:"targets" minItems:"1" doc:"all, agent ids, agent names, or label selectors k=v,k2=v2 (union)."`
	Params           map[string]string `json:"params,omitempty"`
	TimeoutSeconds   int               `json:"timeoutSeconds,omitempty" minimum:"0" maximum:"86400" doc:"Run time limit on each agent (default: the command's own, else 300)."`
	MaxConcurrency   int               `json:"maxConcurrency,omitempty" minimum:"0"`
	MaxErrors        int               `json:"maxErrors,omitempty" minimum:"0"`
	ExpiresInSeconds int               `json:"expiresInSeconds,omitempty" minimum:"0" maximum:"604800" doc:"How long agents may take to pick it up (default 3600)."`
}

// AgentState is a command's state on one agent.
type AgentState struct {
	Agent       string       `json:"agent"`
	Name        string       `json:"name"`
	State       string       `json:"state" enum:"pending,queued,delivered,running,succeeded,failed,timed_out,cancelled,rejected,expired"`
	ExitCode    *int         `json:"exitCode,omitempty"`
	Reason      string       `json:"reason,omitempty"`
	StartedAt   time.Time    `json:"startedAt,omitzero"`
	FinishedAt  time.Time    `json:"finishedAt,omitzero"`
	DurationMs  int64        `json:"durationMs,omitempty"`
	OutputBytes int64        `json:"outputBytes"`
	Chunks      int          `json:"chunks" doc:"Output chunks stored so far."`
	Result      *wire.Result `json:"-"`
}

// CommandStatus is a command and where it stands on every target.
type CommandStatus struct {
	CommandRecord
	Cancelled bool           `json:"cancelled"`
	Denied    bool           `json:"denied" doc:"An approver denied it."`
	Approvers []string       `json:"approvers,omitempty"`
	Awaiting  bool           `json:"awaitingApproval"`
	Stopped   bool           `json:"stopped" doc:"Stopped spreading because maxErrors was reached."`
	Done      bool           `json:"done" doc:"Every target is in a final state."`
	Counts    map[string]int `json:"counts"`
	Agents    []AgentState   `json:"agents"`
}

// CommandOutput returns a command's status.
type CommandOutput struct {
	Body *CommandStatus
}

// CommandIDInput names a command.
type CommandIDInput struct {
	ID string `path:"id"`
}

// GetCommandInput names a command and how much to read.
type GetCommandInput struct {
	ID string `path:"id"`
	// Brief skips reading every result (exit codes, reasons, times): states and counts come from one
	// listing, which is what a client polling for completion needs.
	Brief bool `query:"brief" doc:"Only states and counts, without per-agent exit codes, reasons and times."`
}

const defaultTimeout = 300

func (h *Hub) createCommand(ctx context.Context, in *CreateCommandInput) (*CommandOutput, error) {
	st, err := h.newCommand(ctx, commandRequest{Body: in.Body})
	if err != nil {
		return nil, err
	}
	return &CommandOutput{Body: st}, nil
}

// commandRequest is a command to create: from the API, or issued by a workflow step with a
// deterministic id (so two hubs driving one execution create it once).
type commandRequest struct {
	Body      CreateCommandBody
	ID        string
	Execution string
	Step      string
	Attempt   int
}

// newCommand validates, decides and records a command, then releases its first wave. Errors are
// huma status errors: a 4xx says why the command was refused.
func (h *Hub) newCommand(ctx context.Context, req commandRequest) (*CommandStatus, error) {
	b := req.Body
	all, err := h.identitiesOnly(ctx)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	targets, err := selectTargets(all, b.Targets)
	if err != nil {
		return nil, huma.Error422UnprocessableEntity(err.Error())
	}
	if err := h.withHeartbeats(ctx, targets); err != nil {
		return nil, h.storeError(ctx, err)
	}
	// Every target must know the command and accept the parameters, or nothing is enqueued.
	var problems []string
	timeout := b.TimeoutSeconds
	for _, t := range targets {
		spec, ok := findSpec(catalogOf(t.ident, t.hb), b.Command)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s (%s): no command %q in its catalog", t.ident.Name, t.ident.ID, b.Command))
			continue
		}
		if err := spec.ValidateParams(b.Params); err != nil {
			problems = append(problems, fmt.Sprintf("%s (%s): %v", t.ident.Name, t.ident.ID, err))
		}
		if timeout == 0 && spec.DefaultTimeoutSeconds > 0 {
			timeout = spec.DefaultTimeoutSeconds
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("… and %d more", len(problems)-10))
		}
		return nil, huma.Error422UnprocessableEntity("refused, nothing was enqueued: " + strings.Join(problems, "; "))
	}
	if timeout == 0 {
		timeout = defaultTimeout
	}
	in2 := policy.Input{Action: "create-command", Command: b.Command, Params: b.Params}
	for _, t := range targets {
		in2.Targets = append(in2.Targets, policy.Target{ID: t.ident.ID, Name: t.ident.Name, Labels: t.ident.Labels})
		if spec, ok := findSpec(catalogOf(t.ident, t.hb), b.Command); ok && spec.Dangerous {
			in2.Dangerous = true
		}
	}
	decision, err := h.decide(ctx, in2)
	if err != nil {
		return nil, err
	}
	expires := b.ExpiresInSeconds
	if expires == 0 {
		expires = 3600
	}
	now := time.Now().UTC()
	rec := CommandRecord{
		ID: req.ID, Command: b.Command, Params: b.Params, TargetExprs: b.Targets,
		TimeoutSeconds: timeout, MaxConcurrency: b.MaxConcurrency, MaxErrors: b.MaxErrors,
		Issuer: PrincipalFrom(ctx).ID, CreatedAt: now, NotAfter: now.Add(time.Duration(expires) * time.Second),
		Execution: req.Execution, Step: req.Step, Attempt: req.Attempt,
	}
	if rec.ID == "" {
		rec.ID = uuid.Must(uuid.NewV7()).String()
	}
	for _, t := range targets {
		rec.Targets = append(rec.Targets, t.ident.ID)
	}
	rec.Rules = decision.Rules
	if a := decision.Approvals; a != nil && a.Count > 0 {
		rec.Approval = &ApprovalRequirement{Count: a.Count, Groups: a.Groups, Reason: a.Reason, Requester: rec.Issuer}
	}
	created, err := createJSON(ctx, h.Store, keyCommand(rec.ID), rec)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	if !created { // a deterministic id another hub already created: that record is the command
		st, err := h.status(ctx, rec.ID, false)
		if err != nil {
			return nil, h.storeError(ctx, err)
		}
		return st, nil
	}
	h.record(ctx, "create-command", rec.Targets, &decision, "ok", map[string]any{"command": rec.Command, "commandId": rec.ID, "params": rec.Params, "execution": rec.Execution})
	h.Log.Info("command accepted", "command", rec.ID, "name", rec.Command, "targets", len(rec.Targets), "issuer", rec.Issuer, "approvals_required", rec.Approval != nil)
	if err := h.advance(ctx, rec.ID); err != nil {
		// The command is recorded; the next result or a retry of advance releases it.
		h.Log.Error("release command", "command", rec.ID, "err", err)
	}
	st, err := h.status(ctx, rec.ID, false)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	return st, nil
}

func findSpec(cat []wire.CommandSpec, name string) (wire.CommandSpec, bool) {
	for _, c := range cat {
		if c.Name == name {
			return c, true
		}
	}
	return wire.CommandSpec{}, false
}

func (h *Hub) command(ctx context.Context, id string) (*CommandRecord, error) {
	return h.commands.get(ctx, h.Store, keyCommand(id))
}

// status folds everything stored about a command into its current state. States come from one listing
// (markers, including final-<status>, written beside each result); with details it also reads every
// result for exit codes, reasons and times, concurrently. Wave release needs no details, so a result
// upload costs a listing, not a read of every other agent's result.
func (h *Hub) status(ctx context.Context, id string, details bool) (*CommandStatus, error) {
	rec, err := h.command(ctx, id)
	if err != nil {
		return nil, err
	}
	st := &CommandStatus{CommandRecord: *rec, Counts: map[string]int{}}
	// One listing finds the cancel, a denial and every approval.
	side := prefixCommands + id + "/"
	err = store.Walk(ctx, h.Store, side, "", 0, func(o store.ObjectInfo) error {
		switch rest := strings.TrimPrefix(o.Key, side); {
		case rest == "cancelled.json":
			st.Cancelled = true
		case rest == "denied.json":
			st.Denied = true
		case strings.HasPrefix(rest, "approvals/"):
			st.Approvers = append(st.Approvers, lastSegment(rest))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.Awaiting = rec.Approval != nil && !st.Denied && !st.Cancelled && len(st.Approvers) < rec.Approval.Count
	type seen struct {
		markers map[string]bool
		chunks  int
		result  bool
		final   string // status from the final-<status> marker
	}
	byAgent := map[string]*seen{}
	get := func(a string) *seen {
		if byAgent[a] == nil {
			byAgent[a] = &seen{markers: map[string]bool{}}
		}
		return byAgent[a]
	}
	prefix := resultsOf(id)
	err = store.Walk(ctx, h.Store, prefix, "", 0, func(o store.ObjectInfo) error {
		rest := strings.TrimPrefix(o.Key, prefix)
		agent, tail, nested := strings.Cut(rest, "/")
		if !nested {
			get(strings.TrimSuffix(agent, ".json")).result = true
			return nil
		}
		if strings.HasPrefix(tail, "output/") {
			get(agent).chunks++
		} else if f, ok := strings.CutPrefix(strings.TrimSuffix(tail, ".json"), "final-"); ok {
			get(agent).final = f
		} else {
			get(agent).markers[strings.TrimSuffix(tail, ".json")] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	failures := 0
	results := make([]*wire.Result, len(rec.Targets))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i, agentID := range rec.Targets {
		s := get(agentID)
		if !s.result || (!details && s.final != "") {
			continue
		}
		// Details asked for, or a result stored without its marker (the hub died between the two).
		g.Go(func() error {
			var res wire.Result
			if _, err := readJSON(gctx, h.Store, keyResult(id, agentID), &res); err != nil {
				return err
			}
			results[i] = &res
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, agentID := range rec.Targets {
		s := get(agentID)
		as := AgentState{Agent: agentID, State: "pending", Chunks: s.chunks}
		if ident, err := h.identity(ctx, agentID); err == nil {
			as.Name = ident.Name
		}
		switch res := results[i]; {
		case res != nil:
			as.State, as.ExitCode, as.Reason = string(res.Status), res.ExitCode, res.Reason
			as.StartedAt, as.FinishedAt, as.OutputBytes = res.StartedAt, res.FinishedAt, res.OutputBytes
			if !res.StartedAt.IsZero() {
				as.DurationMs = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
			}
			as.Result = res
		case s.result:
			as.State = s.final
		case s.markers["running"]:
			as.State = "running"
		case s.markers["delivered"]:
			as.State = "delivered"
		case s.markers["queued"] && now.After(rec.NotAfter):
			as.State, as.Reason = "expired", "not delivered before "+rec.NotAfter.Format(time.RFC3339)
		case s.markers["queued"]:
			as.State = "queued"
		}
		if s.result && as.State != string(wire.StatusSucceeded) {
			failures++
		}
		st.Agents = append(st.Agents, as)
	}
	st.Stopped = rec.MaxErrors > 0 && failures >= rec.MaxErrors
	st.Done = true
	for i := range st.Agents {
		as := &st.Agents[i]
		if as.State == "pending" {
			switch {
			case st.Denied:
				as.State, as.Reason = "cancelled", "approval denied"
			case st.Awaiting && !now.After(rec.NotAfter):
				as.State, as.Reason = "awaiting_approval", fmt.Sprintf("%d of %d approvals", len(st.Approvers), rec.Approval.Count)
			case st.Cancelled:
				as.State, as.Reason = "cancelled", "cancelled before release"
			case st.Stopped:
				as.State, as.Reason = "cancelled", fmt.Sprintf("not released: %d failures reached maxErrors", failures)
			case now.After(rec.NotAfter):
				as.State, as.Reason = "expired", "not released before "+rec.NotAfter.Format(time.RFC3339)
			}
		}
		if !finalState(as.State) {
			st.Done = false
		}
		st.Counts[as.State]++
	}
	return st, nil
}

func finalState(s string) bool {
	return s == "expired" || wire.Status(s).Final()
}

// advance releases the next wave of a command: as many unreleased targets as maxConcurrency allows,
// unless it was cancelled or stopped by maxErrors. Every write is create-only under a key derived from
// the command and the agent, so two hubs advancing the same command at once release each agent once.
func (h *Hub) advance(ctx context.Context, id string) error {
	st, err := h.status(ctx, id, false)
	if err != nil {
		return err
	}
	if st.Cancelled || st.Stopped || st.Denied || st.Awaiting || time.Now().After(st.NotAfter) {
		return nil
	}
	inflight := 0
	var pending []string
	for _, a := range st.Agents {
		switch {
		case a.State == "pending":
			pending = append(pending, a.Agent)
		case !finalState(a.State):
			inflight++
		}
	}
	n := len(pending)
	if st.MaxConcurrency > 0 {
		n = min(n, st.MaxConcurrency-inflight)
	}
	if n <= 0 {
		return nil
	}
	body, _ := json.Marshal(wire.Command{CommandID: id, Name: st.Command, Params: st.Params, TimeoutSeconds: st.TimeoutSeconds})
	released := pending[:n]
	for _, agent := range released {
		if _, err := createJSON(ctx, h.Store, keyMarker(id, agent, "queued"), map[string]any{"at": time.Now().UTC()}); err != nil {
			return err
		}
		env := wire.Envelope{ID: id, Agent: agent, IssuedAt: time.Now().UTC(), NotAfter: st.NotAfter, Issuer: st.Issuer, Kind: wire.KindCommand, Body: body}
		if err := h.enqueue(ctx, agent, id, env); err != nil {
			return err
		}
	}
	h.ring(ctx, released)
	return nil
}

// enqueue signs env and writes it into the agent's inbox under name (create-only).
func (h *Hub) enqueue(ctx context.Context, agent, name string, env wire.Envelope) error {
	se, err := h.Keys.Sign(env)
	if err != nil {
		return err
	}
	_, err = createJSON(ctx, h.Store, inboxOf(agent)+name+".json", se)
	return err
}

func (h *Hub) getCommand(ctx context.Context, in *GetCommandInput) (*CommandOutput, error) {
	st, err := h.loadStatus(ctx, in.ID, !in.Brief)
	if err != nil {
		return nil, err
	}
	return &CommandOutput{Body: st}, nil
}

func (h *Hub) loadStatus(ctx context.Context, id string, details bool) (*CommandStatus, error) {
	if !validID(id) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no command %q", id))
	}
	st, err := h.status(ctx, id, details)
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no command %s", id))
	}
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	return st, nil
}

func (h *Hub) cancelCommand(ctx context.Context, in *CommandIDInput) (*CommandOutput, error) {
	st, err := h.loadStatus(ctx, in.ID, false)
	if err != nil {
		return nil, err
	}
	if _, err := createJSON(ctx, h.Store, keyCancelled(in.ID), map[string]any{"by": PrincipalFrom(ctx).ID, "at": time.Now().UTC()}); err != nil {
		return nil, h.storeError(ctx, err)
	}
	var notify []string
	body, _ := json.Marshal(wire.Cancel{CommandID: in.ID})
	for _, a := range st.Agents {
		if finalState(a.State) || a.State == "pending" {
			continue
		}
		env := wire.Envelope{ID: in.ID + "-cancel", Agent: a.Agent, IssuedAt: time.Now().UTC(), NotAfter: st.NotAfter.Add(time.Duration(st.TimeoutSeconds) * time.Second),
			Issuer: PrincipalFrom(ctx).ID, Kind: wire.KindCancel, Body: body}
		if err := h.enqueue(ctx, a.Agent, in.ID+"-cancel", env); err != nil {
			return nil, h.storeError(ctx, err)
		}
		notify = append(notify, a.Agent)
	}
	h.ring(ctx, notify)
	h.Log.Info("command cancelled", "command", in.ID, "by", PrincipalFrom(ctx).ID, "agents", len(notify))
	h.record(ctx, "cancel-command", st.Targets, nil, "ok", map[string]any{"commandId": in.ID})
	st, err = h.loadStatus(ctx, in.ID, true)
	if err != nil {
		return nil, err
	}
	return &CommandOutput{Body: st}, nil
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

func (h *Hub) getOutput(ctx context.Context, in *OutputInput) (*OutputOutput, error) {
	st, err := h.loadStatus(ctx, in.ID, false)
	if err != nil {
		return nil, err
	}
	var as *AgentState
	for i := range st.Agents {
		if st.Agents[i].Agent == in.Agent || st.Agents[i].Name == in.Agent {
			as = &st.Agents[i]
		}
	}
	if as == nil {
		return nil, huma.Error404NotFound(fmt.Sprintf("agent %q is not a target of command %s", in.Agent, in.ID))
	}
	max := in.Max
	if max == 0 {
		max = 16
	}
	out := &OutputOutput{ContentType: "application/octet-stream", NextChunk: in.From, State: as.State}
	for seq := in.From; seq < in.From+max; seq++ {
		b, _, err := store.ReadAll(ctx, h.Store, keyChunk(in.ID, as.Agent, seq))
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, h.storeError(ctx, err)
		}
		out.Body = append(out.Body, b...)
		out.NextChunk = seq + 1
	}
	var res wire.Result
	_, err = readJSON(ctx, h.Store, keyResult(in.ID, as.Agent), &res)
	switch {
	case err == nil && out.NextChunk >= res.OutputChunks:
		out.Complete = true
	case errors.Is(err, store.ErrNotFound) && finalState(as.State):
		out.Complete = true // expired or never released: no output will come
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, h.storeError(ctx, err)
	}
	return out, nil
}

var errNotTarget = errors.New("not a target")

// checkTarget refuses uploads about a command the agent was never asked to run.
func (h *Hub) checkTarget(ctx context.Context, cmdID, agent string) (*CommandRecord, error) {
	if !validID(cmdID) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no command %q", cmdID))
	}
	rec, err := h.command(ctx, cmdID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no command %s", cmdID))
	}
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	for _, t := range rec.Targets {
		if t == agent {
			return rec, nil
		}
	}
	return nil, huma.NewError(http.StatusForbidden, fmt.Sprintf("agent %s is not a target of command %s", agent, cmdID), errNotTarget)
}
