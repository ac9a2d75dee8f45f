package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/workflow"
)

// Executions live under v1/executions/<id>.json (what was started, write-once) and
// v1/executions/<id>/events/<uuidv7>.json (every input). The state is the fold of the events
// (workflow.Fold); what to do next is workflow.Next, performed with create-only writes keyed by the
// action, so any hub instance may drive any execution at any time. v1/executions-active/<id>.json
// lists the executions the tick must look at.
const (
	prefixExecutions = "v1/executions/"
	prefixActive     = "v1/executions-active/"
)

// ExecutionRecord is what was started.
type ExecutionRecord struct {
	ID        string         `json:"id"`
	Workflow  string         `json:"workflow"`
	Version   int            `json:"version"`
	Inputs    map[string]any `json:"inputs,omitempty"`
	StartedBy Principal      `json:"startedBy"`
	StartedAt time.Time      `json:"startedAt"`
}

func keyExecution(id string) string { return prefixExecutions + id + ".json" }
func eventsOf(id string) string     { return prefixExecutions + id + "/events/" }

// execution is a loaded execution: record, definition version, events and their fold.
type execution struct {
	rec    *ExecutionRecord
	def    *workflow.Definition
	events []workflow.Event
	state  *workflow.State
}

func (h *Hub) loadExecution(ctx context.Context, id string) (*execution, error) {
	rec, err := h.executions.get(ctx, h.Store, keyExecution(id))
	if err != nil {
		return nil, err
	}
	var v WorkflowVersion
	if _, err := readJSON(ctx, h.Store, fmt.Sprintf("%s%s/%06d.json", prefixWorkflows, rec.Workflow, rec.Version), &v); err != nil {
		return nil, fmt.Errorf("workflow %s version %d: %w", rec.Workflow, rec.Version, err)
	}
	def, err := workflow.Parse([]byte(v.Source))
	if err != nil {
		return nil, fmt.Errorf("workflow %s version %d no longer parses: %w", rec.Workflow, rec.Version, err)
	}
	ex := &execution{rec: rec, def: def}
	err = store.Walk(ctx, h.Store, eventsOf(id), "", 0, func(o store.ObjectInfo) error {
		var e workflow.Event
		if _, err := readJSON(ctx, h.Store, o.Key, &e); err != nil {
			return err
		}
		ex.events = append(ex.events, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	ex.state, err = workflow.Fold(def, id, ex.events)
	return ex, err
}

// addEvent records one input of an execution.
func (h *Hub) addEvent(ctx context.Context, exec string, e workflow.Event) error {
	e.ID = uuid.Must(uuid.NewV7()).String()
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	_, err := createJSON(context.WithoutCancel(ctx), h.Store, eventsOf(exec)+e.ID+".json", e)
	return err
}

// drive performs what the execution's state calls for until nothing more can be done now. It is safe to
// call from any hub, any number of times: every action is keyed, and its effect is an event.
func (h *Hub) drive(ctx context.Context, id string) (*execution, error) {
	for range 50 {
		ex, err := h.loadExecution(ctx, id)
		if err != nil {
			return nil, err
		}
		progressed := false
		for _, act := range workflow.Next(ex.def, ex.state, time.Now()) {
			did, err := h.perform(ctx, ex, act)
			if err != nil {
				return ex, err
			}
			progressed = progressed || did
		}
		if !progressed {
			return ex, nil
		}
	}
	return nil, fmt.Errorf("execution %s: still changing after 50 rounds", id)
}

// perform does one action and records the event that proves it done. It reports whether it wrote an
// event (so the state changed).
func (h *Hub) perform(ctx context.Context, ex *execution, act workflow.Action) (bool, error) {
	id := ex.rec.ID
	// Commands of a workflow act for the person who started it, under the policy.
	actx := context.WithValue(ctx, principalKey, ex.rec.StartedBy)
	switch act.Kind {
	case workflow.ActIssueCommand:
		st, err := h.newCommand(actx, commandRequest{
			ID: act.CommandID, Execution: id, Step: act.Step, Attempt: act.Attempt,
			Body: CreateCommandBody{Command: act.Command, Targets: act.Targets, Params: act.Params,
				TimeoutSeconds: act.TimeoutSeconds, MaxConcurrency: act.MaxConcurrency, MaxErrors: act.MaxErrors},
		})
		if err != nil {
			var se huma.StatusError
			if errors.As(err, &se) && se.GetStatus() < 500 {
				return true, h.addEvent(ctx, id, workflow.Event{Kind: workflow.EventCommandRefused, CommandID: act.CommandID, Step: act.Step, Attempt: act.Attempt, Reason: err.Error()})
			}
			return false, err
		}
		return true, h.addEvent(ctx, id, workflow.Event{Kind: workflow.EventCommandAccepted, CommandID: act.CommandID, Step: act.Step, Attempt: act.Attempt, Agents: st.Targets})
	case workflow.ActCancelCommand:
		if _, err := h.cancelCommand(actx, &CommandIDInput{ID: act.CommandID}); err != nil {
			var se huma.StatusError
			if !errors.As(err, &se) || se.GetStatus() >= 500 {
				return false, err
			}
		}
		return true, h.addEvent(ctx, id, workflow.Event{Kind: workflow.EventCommandCancelled, CommandID: act.CommandID})
	case workflow.ActFireTimer:
		return true, h.addEvent(ctx, id, workflow.Event{Kind: workflow.EventTimerFired, Timer: act.TimerID})
	case workflow.ActFinish:
		if err := h.Store.Delete(ctx, prefixActive+id+".json"); err != nil {
			return false, err
		}
	}
	return false, nil
}

// resultToExecution routes a workflow command's result into its execution and drives it on.
func (h *Hub) resultToExecution(ctx context.Context, rec *CommandRecord, agent string, res wire.Result) {
	if rec.Execution == "" {
		return
	}
	e := workflow.Event{Kind: workflow.EventCommandResult, CommandID: rec.ID, Step: rec.Step, Attempt: rec.Attempt, Agent: agent, Status: string(res.Status), ExitCode: res.ExitCode}
	if err := h.addEvent(ctx, rec.Execution, e); err != nil {
		h.Log.Error("execution event not recorded; the tick retries", "execution", rec.Execution, "err", err)
		return
	}
	if _, err := h.drive(ctx, rec.Execution); err != nil {
		h.Log.Warn("drive execution", "execution", rec.Execution, "err", err)
	}
}

// TickExecutions drives every active execution every interval: timers fire, and anything a crashed
// hub left half done is finished. In the cloud the same work runs from a scheduled function.
func (h *Hub) TickExecutions(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.Tick(ctx)
	}
}

// Tick drives every active execution once (timers due fire, half-done work is finished) and starts
// the scheduled runs that are due. `pulse serve` calls it every second; a cloud deployment runs it from
// a scheduled function (`pulse tick`).
func (h *Hub) Tick(ctx context.Context) int {
	var ids []string
	store.Walk(ctx, h.Store, prefixActive, "", 0, func(o store.ObjectInfo) error {
		ids = append(ids, lastSegment(o.Key))
		return nil
	})
	for _, id := range ids {
		if _, err := h.drive(ctx, id); err != nil && ctx.Err() == nil {
			h.Log.Warn("tick: drive execution", "execution", id, "err", err)
		}
	}
	h.tickSchedules(ctx)
	return len(ids)
}

// StartExecutionInput starts a workflow.
type StartExecutionInput struct {
	Body struct {
		Workflow string         `json:"workflow" minLength:"1"`
		Inputs   map[string]any `json:"inputs,omitempty"`
	}
}

// ExecutionView is an execution as clients see it.
type ExecutionView struct {
	ID        string          `json:"id"`
	Workflow  string          `json:"workflow"`
	Version   int             `json:"version"`
	StartedBy string          `json:"startedBy"`
	State     *workflow.State `json:"state"`
}

// ExecutionOutput returns an execution.
type ExecutionOutput struct {
	Body ExecutionView
}

// ExecutionIDInput names an execution.
type ExecutionIDInput struct {
	ID string `path:"id"`
}

// RespondInput answers a prompt.
type RespondInput struct {
	ID   string `path:"id"`
	Body struct {
		Step   string `json:"step" minLength:"1"`
		Answer string `json:"answer" minLength:"1"`
	}
}

func view(ex *execution) *ExecutionOutput {
	return &ExecutionOutput{Body: ExecutionView{ID: ex.rec.ID, Workflow: ex.rec.Workflow, Version: ex.rec.Version, StartedBy: ex.rec.StartedBy.ID, State: ex.state}}
}

func (h *Hub) startExecution(ctx context.Context, in *StartExecutionInput) (*ExecutionOutput, error) {
	ex, err := h.start(ctx, in.Body.Workflow, in.Body.Inputs, "")
	if err != nil {
		return nil, err
	}
	return view(ex), nil
}

// start begins an execution of a workflow's current version for the principal in ctx. id may be given
// (a schedule slot's deterministic id); an execution that already exists under it is returned as is.
func (h *Hub) start(ctx context.Context, name string, given map[string]any, id string) (*execution, error) {
	v, err := h.latestWorkflow(ctx, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.Deleted) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no workflow %q (see pulse workflow list)", name))
	}
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	def, err := workflow.Parse([]byte(v.Source))
	if err != nil {
		return nil, huma.Error422UnprocessableEntity(refusal(v.Name, err))
	}
	inputs, err := def.ResolveInputs(given)
	if err != nil {
		return nil, huma.Error422UnprocessableEntity("inputs: " + err.Error())
	}
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	rec := ExecutionRecord{ID: id, Workflow: v.Name, Version: v.Version, Inputs: inputs, StartedBy: PrincipalFrom(ctx), StartedAt: time.Now().UTC()}
	created, err := createJSON(ctx, h.Store, keyExecution(rec.ID), rec)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	if created {
		if _, err := createJSON(ctx, h.Store, prefixActive+rec.ID+".json", map[string]any{"at": rec.StartedAt, "workflow": rec.Workflow}); err != nil {
			return nil, h.storeError(ctx, err)
		}
		if err := h.addEvent(ctx, rec.ID, workflow.Event{Kind: workflow.EventStarted, Inputs: inputs, Version: fmt.Sprint(v.Version), By: rec.StartedBy.ID}); err != nil {
			return nil, h.storeError(ctx, err)
		}
		h.record(ctx, "start-execution", nil, nil, "ok", map[string]any{"workflow": v.Name, "version": v.Version, "execution": rec.ID})
	}
	ex, err := h.drive(ctx, rec.ID)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	return ex, nil
}

// prefixFires records the schedule slots that fired: v1/schedule-fires/<workflow>/<unix>.json, written
// create-only, so among hubs ticking at once exactly one starts the slot's execution.
const prefixFires = "v1/schedule-fires/"

// tickSchedules starts the executions that cron schedules call for. A slot missed while every hub was
// down fires once when one returns (workflow.NextFire), not once per missed slot.
func (h *Hub) tickSchedules(ctx context.Context) {
	list, err := h.listWorkflows(ctx, nil)
	if err != nil {
		return
	}
	now := time.Now()
	for _, w := range list.Body.Workflows {
		if w.Schedule == "" {
			continue
		}
		v, err := h.latestWorkflow(ctx, w.Name)
		if err != nil {
			continue
		}
		def, err := workflow.Parse([]byte(v.Source))
		if err != nil || def.Schedule == nil {
			continue
		}
		last := v.AppliedAt
		store.Walk(ctx, h.Store, prefixFires+w.Name+"/", "", 0, func(o store.ObjectInfo) error {
			var sec int64
			if _, err := fmt.Sscanf(lastSegment(o.Key), "%d", &sec); err == nil && time.Unix(sec, 0).After(last) {
				last = time.Unix(sec, 0)
			}
			return nil
		})
		fire, at := workflow.NextFire(def.Schedule, last, now)
		if !fire {
			continue
		}
		busy := h.hasActive(ctx, w.Name)
		if busy && def.Schedule.Overlap == workflow.OverlapQueue {
			continue // the slot stays due and fires once the running execution ends
		}
		created, err := createJSON(ctx, h.Store, fmt.Sprintf("%s%s/%012d.json", prefixFires, w.Name, at.Unix()), map[string]any{"slot": at, "skipped": busy})
		if err != nil || !created {
			continue
		}
		if busy {
			h.Log.Info("scheduled run skipped: the previous one is still running", "workflow", w.Name, "slot", at)
			continue
		}
		// The run acts for whoever applied this version, under the policy.
		sctx := context.WithValue(ctx, principalKey, v.AppliedByPrincipal)
		id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("pulse:schedule:%s:%d", w.Name, at.Unix()))).String()
		if _, err := h.start(sctx, w.Name, nil, id); err != nil {
			h.Log.Warn("scheduled run failed to start", "workflow", w.Name, "slot", at, "err", err)
			continue
		}
		h.Log.Info("scheduled run started", "workflow", w.Name, "slot", at, "execution", id)
	}
}

func (h *Hub) hasActive(ctx context.Context, name string) bool {
	found := false
	store.Walk(ctx, h.Store, prefixActive, "", 0, func(o store.ObjectInfo) error {
		if rec, err := h.executions.get(ctx, h.Store, keyExecution(lastSegment(o.Key))); err == nil && rec.Workflow == name {
			found = true
		}
		return nil
	})
	return found
}

func (h *Hub) getExecution(ctx context.Context, in *ExecutionIDInput) (*ExecutionOutput, error) {
	if !validID(in.ID) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no execution %q", in.ID))
	}
	ex, err := h.loadExecution(ctx, in.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no execution %s", in.ID))
	}
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	return view(ex), nil
}

func (h *Hub) respond(ctx context.Context, in *RespondInput) (*ExecutionOutput, error) {
	if !validID(in.ID) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no execution %q", in.ID))
	}
	ex, err := h.loadExecution(ctx, in.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("no execution %s", in.ID))
	}
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	if err := ex.state.CheckAnswer(ex.def, in.Body.Step, in.Body.Answer); err != nil {
		return nil, huma.Error409Conflict(err.Error())
	}
	if err := h.addEvent(ctx, in.ID, workflow.Event{Kind: workflow.EventPromptAnswered, Step: in.Body.Step, Answer: in.Body.Answer, AnsweredBy: PrincipalFrom(ctx).ID}); err != nil {
		return nil, h.storeError(ctx, err)
	}
	h.record(ctx, "respond-prompt", nil, nil, "ok", map[string]any{"execution": in.ID, "step": in.Body.Step, "answer": in.Body.Answer})
	ex, err = h.drive(ctx, in.ID)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	return view(ex), nil
}

func (h *Hub) cancelExecution(ctx context.Context, in *ExecutionIDInput) (*ExecutionOutput, error) {
	if _, err := h.getExecution(ctx, in); err != nil {
		return nil, err
	}
	if err := h.addEvent(ctx, in.ID, workflow.Event{Kind: workflow.EventCancelled, By: PrincipalFrom(ctx).ID, Reason: "cancelled by " + PrincipalFrom(ctx).ID}); err != nil {
		return nil, h.storeError(ctx, err)
	}
	h.record(ctx, "cancel-execution", nil, nil, "ok", map[string]any{"execution": in.ID})
	ex, err := h.drive(ctx, in.ID)
	if err != nil {
		return nil, h.storeError(ctx, err)
	}
	return view(ex), nil
}

// streamEvents sends an execution's events as server-sent events as they are recorded, until the
// execution ends or the client goes away.
func (h *Hub) streamEvents(ctx context.Context, in *ExecutionIDInput, send func(id string, e workflow.Event) error) error {
	last := ""
	for {
		page, err := h.Store.List(ctx, eventsOf(in.ID), last, 1000)
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			var e workflow.Event
			if _, err := readJSON(ctx, h.Store, o.Key, &e); err != nil {
				return err
			}
			if err := send(e.ID, e); err != nil {
				return err
			}
			last = o.Key
		}
		if len(page.Objects) == 0 {
			if ex, err := h.loadExecution(ctx, in.ID); err == nil && ex.state.Status.Final() {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

func registerExecutionAPI(api huma.API, h *Hub) {
	sec := []map[string][]string{{"bearer": {}}}
	gate := func(action string) huma.Middlewares {
		return huma.Middlewares{h.operatorAuth(api), h.policyGate(api, action)}
	}
	register(api, huma.Operation{OperationID: "start-execution", Method: http.MethodPost, Path: "/v1/executions", Tags: []string{"Workflows"},
		Summary: "Run a workflow", DefaultStatus: http.StatusCreated, Security: sec, Middlewares: gate("start-execution"), Errors: []int{401, 403, 404, 422}}, h.startExecution)
	register(api, huma.Operation{OperationID: "get-execution", Method: http.MethodGet, Path: "/v1/executions/{id}", Tags: []string{"Workflows"},
		Summary: "An execution: every step's state and per-agent results", Security: sec, Middlewares: gate("get-execution"), Errors: []int{401, 403, 404}}, h.getExecution)
	register(api, huma.Operation{OperationID: "respond-prompt", Method: http.MethodPost, Path: "/v1/executions/{id}/respond", Tags: []string{"Workflows"},
		Summary: "Answer a prompt step", Description: "Who may answer is the policy's decision; the answer must be one of the step's options.",
		Security: sec, Middlewares: gate("respond-prompt"), Errors: []int{401, 403, 404, 409}}, h.respond)
	register(api, huma.Operation{OperationID: "cancel-execution", Method: http.MethodPost, Path: "/v1/executions/{id}/cancel", Tags: []string{"Workflows"},
		Summary: "Cancel an execution", Security: sec, Middlewares: gate("cancel-execution"), Errors: []int{401, 403, 404}}, h.cancelExecution)
	huma.Register(api, huma.Operation{OperationID: "stream-execution-events", Method: http.MethodGet, Path: "/v1/executions/{id}/events", Tags: []string{"Workflows"},
		Summary: "Watch an execution", Description: "Server-sent events: every recorded event of the execution as it happens, until it ends.",
		Security: sec, Middlewares: gate("get-execution"), Errors: []int{401, 403, 404}}, func(ctx context.Context, in *ExecutionIDInput) (*huma.StreamResponse, error) {
		if _, err := h.getExecution(ctx, in); err != nil {
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", "text/event-stream")
			hctx.SetHeader("Cache-Control", "no-cache")
			if rc, ok := ctx.Value(respCtlKey{}).(*http.ResponseController); ok {
				_ = rc.SetReadDeadline(time.Time{})
			}
			w := hctx.BodyWriter()
			flush := func() {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
			_ = h.streamEvents(hctx.Context(), in, func(id string, e workflow.Event) error {
				b, _ := json.Marshal(e)
				_, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", id, e.Kind, strings.TrimSpace(string(b)))
				flush()
				return err
			})
		}}, nil
	})
}
