package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/functions/hub/commands"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/paging"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/workflow"
)

// Executions live under v1/executions/<id>.json (what was started, write-once) and
// v1/executions/<id>/events/<uuidv7>.json (every input). The state is the fold of the events
// (workflow.Fold); what to do next is workflow.Next, performed with create-only writes keyed by the
// action, so any hub instance may drive any execution at any time. v1/executions-active/<id>.json
// lists the executions the tick must look at.

// ExecutionRecord is what was started.
type ExecutionRecord struct {
	ID        string           `json:"id"`
	Workflow  string           `json:"workflow"`
	Version   int              `json:"version"`
	Inputs    map[string]any   `json:"inputs,omitempty"`
	StartedBy domain.Principal `json:"startedBy"`
	StartedAt time.Time        `json:"startedAt"`
}

// Execution is a loaded execution: record, definition version, events and their fold.
type Execution struct {
	Rec    *ExecutionRecord
	Def    *workflow.Definition
	Events []workflow.Event
	State  *workflow.State
}

// View is an execution as clients see it.
type View struct {
	ID        string          `json:"id"`
	Workflow  string          `json:"workflow"`
	Version   int             `json:"version"`
	StartedBy string          `json:"startedBy"`
	State     *workflow.State `json:"state"`
}

// View is what clients see of an execution.
func (ex *Execution) View() View {
	return View{ID: ex.Rec.ID, Workflow: ex.Rec.Workflow, Version: ex.Rec.Version, StartedBy: ex.Rec.StartedBy.ID, State: ex.State}
}

// Record returns what was started, read once per process (it never changes).
func (s *Service) Record(ctx context.Context, id string) (*ExecutionRecord, error) {
	if !layout.ValidID(id) {
		return nil, domain.NotFound("no execution %q", id)
	}
	rec, err := s.executions.Get(ctx, s.Store, layout.Execution(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.NotFound("no execution %s", id)
	}
	return rec, err
}

// Load reads an execution and folds its events. The definition is parsed once per process and the
// fold is kept between calls, so a call reads only the events recorded since the last (fold.go).
func (s *Service) Load(ctx context.Context, id string) (*Execution, error) {
	rec, err := s.Record(ctx, id)
	if err != nil {
		return nil, err
	}
	def, err := s.definition(ctx, rec.Workflow, rec.Version)
	if err != nil {
		return nil, err
	}
	st, events, err := s.foldEvents(ctx, id, def)
	if err != nil {
		return nil, err
	}
	return &Execution{Rec: rec, Def: def, Events: events, State: st}, nil
}

// addEvent records one input of an execution, and hands it to the kept fold so the next round does
// not read back what this process just wrote.
func (s *Service) addEvent(ctx context.Context, exec string, e workflow.Event) error {
	e.ID = uuid.Must(uuid.NewV7()).String()
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode an event of execution %s: %w", exec, err)
	}
	key := layout.Event(exec, e.ID)
	if _, err := store.PutBytes(context.WithoutCancel(ctx), s.Store, key, b, store.PutOptions{CreateOnly: true, ContentType: "application/json"}); err != nil {
		return fmt.Errorf("record an event of execution %s: %w", exec, err)
	}
	s.wrote(exec, key, b)
	return nil
}

// drive performs what the execution's state calls for until nothing more can be done now, or for
// maxRounds rounds: an execution whose agents answer as fast as it issues commands could keep one
// drive going to its end, and holding its lock that long would keep everything else of it waiting; the
// next result or tick drives the rest. It is safe to call from any hub, any number of times: every
// action is keyed, and its effect is an event.
func (s *Service) drive(ctx context.Context, id string) (*Execution, error) {
	mu := &s.driving[stripe(id)]
	mu.Lock()
	defer mu.Unlock()
	var ex *Execution
	for range maxRounds {
		var err error
		if ex, err = s.Load(ctx, id); err != nil {
			return nil, err
		}
		progressed := false
		for _, act := range workflow.Next(ex.Def, ex.State, time.Now()) {
			did, err := s.perform(ctx, ex, act)
			if err != nil {
				return ex, err
			}
			progressed = progressed || did
		}
		if !progressed {
			return ex, nil
		}
	}
	s.Log.Debug("execution still changing; the next result or tick drives it on", "execution", id, "rounds", maxRounds)
	return s.Load(ctx, id)
}

// maxRounds bounds one drive.
const maxRounds = 50

// driveStripes is how many drive locks there are.
const driveStripes = 64

// stripe picks an execution's drive lock.
func stripe(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % driveStripes)
}

// perform does one action and records the event that proves it done. It reports whether it wrote an
// event (so the state changed).
func (s *Service) perform(ctx context.Context, ex *Execution, act workflow.Action) (bool, error) {
	id := ex.Rec.ID
	// Commands of a workflow act for the person who started it, under the policy.
	actx := domain.WithPrincipal(ctx, ex.Rec.StartedBy)
	switch act.Kind {
	case workflow.ActIssueCommand:
		st, err := s.Commands.Create(actx, commands.Request{
			ID: act.CommandID, Execution: id, Step: act.Step, Attempt: act.Attempt,
			Spec: commands.Spec{Command: act.Command, Targets: act.Targets, Params: act.Params,
				TimeoutSeconds: act.TimeoutSeconds, MaxConcurrency: act.MaxConcurrency, MaxErrors: act.MaxErrors},
		})
		if err != nil {
			if domain.Refusal(err) {
				return true, s.addEvent(ctx, id, workflow.Event{Kind: workflow.EventCommandRefused, CommandID: act.CommandID, Step: act.Step, Attempt: act.Attempt, Reason: err.Error()})
			}
			return false, err
		}
		return true, s.addEvent(ctx, id, workflow.Event{Kind: workflow.EventCommandAccepted, CommandID: act.CommandID, Step: act.Step, Attempt: act.Attempt, Agents: st.Targets})
	case workflow.ActCancelCommand:
		if _, err := s.Commands.Cancel(actx, act.CommandID); err != nil && !domain.Refusal(err) {
			return false, err
		}
		return true, s.addEvent(ctx, id, workflow.Event{Kind: workflow.EventCommandCancelled, CommandID: act.CommandID})
	case workflow.ActFireTimer:
		return true, s.addEvent(ctx, id, workflow.Event{Kind: workflow.EventTimerFired, Timer: act.TimerID})
	case workflow.ActFinish:
		if err := s.Store.Delete(ctx, layout.ActiveExecution(id)); err != nil {
			return false, err
		}
	}
	return false, nil
}

// Start begins an execution of a workflow's current version for the principal in ctx.
func (s *Service) Start(ctx context.Context, name string, inputs map[string]any) (*Execution, error) {
	if err := CheckName("body.workflow", name); err != nil {
		return nil, err
	}
	return s.start(ctx, name, inputs, "")
}

// start begins an execution; id may be given (a schedule slot's deterministic id), and an execution
// that already exists under it is returned as is.
func (s *Service) start(ctx context.Context, name string, given map[string]any, id string) (*Execution, error) {
	v, err := s.current(ctx, name)
	if err != nil {
		return nil, err
	}
	def, err := s.parsed(v)
	if err != nil {
		return nil, refused(v.Name, err)
	}
	inputs, err := def.ResolveInputs(given)
	if err != nil {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body.inputs", Msg: "inputs: " + err.Error()}
	}
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	rec := ExecutionRecord{ID: id, Workflow: v.Name, Version: v.Version, Inputs: inputs, StartedBy: domain.PrincipalFrom(ctx), StartedAt: time.Now().UTC()}
	created, err := store.CreateJSON(ctx, s.Store, layout.Execution(rec.ID), rec)
	if err != nil {
		return nil, err
	}
	if created {
		if _, err := store.CreateJSON(ctx, s.Store, layout.ActiveExecution(rec.ID), map[string]any{"at": rec.StartedAt, "workflow": rec.Workflow}); err != nil {
			return nil, err
		}
		if err := s.addEvent(ctx, rec.ID, workflow.Event{Kind: workflow.EventStarted, Inputs: inputs, Version: fmt.Sprint(v.Version), By: rec.StartedBy.ID}); err != nil {
			return nil, err
		}
		s.Trail.Record(ctx, "start-execution", nil, nil, "ok", map[string]any{"workflow": v.Name, "version": v.Version, "execution": rec.ID})
	}
	return s.drive(ctx, rec.ID)
}

// Respond answers a prompt step and drives the execution on.
func (s *Service) Respond(ctx context.Context, id, step, answer string) (*Execution, error) {
	ex, err := s.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := ex.State.CheckAnswer(ex.Def, step, answer); err != nil {
		return nil, domain.Conflict("%v", err)
	}
	if err := s.addEvent(ctx, id, workflow.Event{Kind: workflow.EventPromptAnswered, Step: step, Answer: answer, AnsweredBy: domain.PrincipalFrom(ctx).ID}); err != nil {
		return nil, err
	}
	s.Trail.Record(ctx, "respond-prompt", nil, nil, "ok", map[string]any{"execution": id, "step": step, "answer": answer})
	return s.drive(ctx, id)
}

// Cancel cancels an execution (its running commands are cancelled by the engine's next actions).
func (s *Service) Cancel(ctx context.Context, id string) (*Execution, error) {
	if _, err := s.Load(ctx, id); err != nil {
		return nil, err
	}
	by := domain.PrincipalFrom(ctx).ID
	if err := s.addEvent(ctx, id, workflow.Event{Kind: workflow.EventCancelled, By: by, Reason: "cancelled by " + by}); err != nil {
		return nil, err
	}
	s.Trail.Record(ctx, "cancel-execution", nil, nil, "ok", map[string]any{"execution": id})
	return s.drive(ctx, id)
}

// PageTime orders executions in lists: newest first.
func (r *ExecutionRecord) PageTime() time.Time { return r.StartedAt }

// PageID is an execution's cursor in lists.
func (r *ExecutionRecord) PageID() string { return r.ID }

// ExecutionFilter selects executions for a list; zero fields match everything.
type ExecutionFilter struct {
	Workflow string
	Status   string
	Since    time.Time
	Cursor   string // the id of the last execution of the previous page
	Limit    int
}

// ExecutionSummary is a line of the execution list.
type ExecutionSummary struct {
	ID        string    `json:"id"`
	Workflow  string    `json:"workflow"`
	Version   int       `json:"version"`
	StartedBy string    `json:"startedBy"`
	StartedAt time.Time `json:"startedAt"`
	Status    string    `json:"status"`
}

// ExecutionPage is one page of the execution list.
type ExecutionPage struct {
	Executions []ExecutionSummary `json:"executions"`
	Next       string             `json:"next,omitempty"`
}

// Executions lists executions, newest first, a page at a time.
func (s *Service) Executions(ctx context.Context, f ExecutionFilter) (*ExecutionPage, error) {
	var ids []string
	err := store.Walk(ctx, s.Store, layout.Executions, "", 0, func(o store.ObjectInfo) error {
		if k := o.Key; layout.Execution(layout.Name(k)) == k {
			ids = append(ids, layout.Name(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	recs := make([]*ExecutionRecord, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i, id := range ids {
		g.Go(func() error {
			r, err := s.executions.Get(gctx, s.Store, layout.Execution(id))
			if errors.Is(err, store.ErrNotFound) { // deleted since the listing, or refused by the integrity check
				return nil
			}
			recs[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	recs = slices.DeleteFunc(recs, func(r *ExecutionRecord) bool { return r == nil })
	page := &ExecutionPage{}
	page.Executions, page.Next, err = paging.Page(recs, f.Cursor, f.Limit, func(r *ExecutionRecord) (ExecutionSummary, bool, error) {
		if (f.Workflow != "" && r.Workflow != f.Workflow) || (!f.Since.IsZero() && r.StartedAt.Before(f.Since)) {
			return ExecutionSummary{}, false, nil
		}
		ex, err := s.Load(ctx, r.ID)
		if err != nil || (f.Status != "" && string(ex.State.Status) != f.Status) {
			return ExecutionSummary{}, false, err
		}
		return ExecutionSummary{ID: r.ID, Workflow: r.Workflow, Version: r.Version, StartedBy: r.StartedBy.ID, StartedAt: r.StartedAt, Status: string(ex.State.Status)}, true, nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// StreamEvents sends an execution's events as they are recorded, until the execution ends or ctx ends.
// The definition is read once; whether the execution has ended is folded, a batch at a time, from the
// events already sent, so an idle stream costs one listing per round.
func (s *Service) StreamEvents(ctx context.Context, id string, send func(id string, e workflow.Event) error) error {
	ex, err := s.Load(ctx, id)
	if err != nil {
		return err
	}
	sent, err := workflow.NewFolder(ex.Def, id)
	if err != nil {
		return err
	}
	last := ""
	for {
		page, err := s.Store.List(ctx, layout.EventsOf(id), last, 1000)
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			var e workflow.Event
			if _, err := store.ReadJSON(ctx, s.Store, o.Key, &e); errors.Is(err, store.ErrNotFound) {
				last = o.Key
				continue // refused by the integrity check: not an event of this execution
			} else if err != nil {
				return err
			}
			if err := send(e.ID, e); err != nil {
				return err
			}
			last = o.Key
			sent.Add(e)
		}
		if len(page.Objects) == 0 {
			if sent.State().Status.Final() {
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
