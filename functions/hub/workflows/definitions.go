// Package workflows is the room of workflows: definitions stored as write-once versions, executions
// driven by events (started, a result arrived, a prompt was answered, a timer fired) through the pure
// engine in functions/workflow, cron schedules, and the tick that fires timers and finishes what a
// crashed hub left half done. It hears about results through the event bus and issues commands through
// the commands room's service, never through HTTP.
package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse/functions/hub/commands"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/events"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/workflow"
)

// Commands is what workflows need of the commands room.
type Commands interface {
	Create(ctx context.Context, req commands.Request) (*commands.Status, error)
	Cancel(ctx context.Context, id string) (*commands.Status, error)
}

// Catalog is what workflows need of the fleet room: every command some agent offers, to check
// definitions against.
type Catalog interface {
	Catalog(ctx context.Context) (fleet.Catalog, error)
}

// Service keeps workflows and drives their executions.
type Service struct {
	Store    store.Store
	Log      *slog.Logger
	Trail    *trail.Recorder
	Bus      *events.Bus
	Commands Commands
	Fleet    Catalog

	executions store.Once[ExecutionRecord]
	// versions are write-once; an execution's is read once per process, not on every fold.
	versions store.Once[Version]
	// mem keeps parsed definitions and executions' folds (fold.go).
	mem caches
	// driving serialises the drives of one execution in this process (striped by id): a result's
	// drive and the tick's would otherwise both see the next step due and both issue it, recording it
	// accepted twice. Drives on other hub instances stay safe as before: every action is keyed.
	driving [driveStripes]sync.Mutex
}

// Subscribe routes stored results of workflow commands into their executions. The event is recorded
// at once (it is what the execution will be folded from); driving the execution on runs outside the
// agent's upload request.
func (s *Service) Subscribe(bus *events.Bus) {
	bus.Results.Subscribe(func(ctx context.Context, r events.ResultStored) {
		if r.Execution == "" {
			return
		}
		e := workflow.Event{Kind: workflow.EventCommandResult, CommandID: r.Command, Step: r.Step, Attempt: r.Attempt, Agent: r.Agent, Status: r.Status, ExitCode: r.ExitCode}
		if err := s.addEvent(ctx, r.Execution, e); err != nil {
			s.Log.Error("execution event not recorded; the tick retries", "execution", r.Execution, "err", err)
			return
		}
		bus.Later(ctx, func(ctx context.Context) {
			if _, err := s.drive(ctx, r.Execution); err != nil {
				s.Log.Warn("drive execution", "execution", r.Execution, "err", err)
			}
		})
	})
}

// A workflow's name is a segment of its store keys (v1/workflows/<name>/…) and of URLs, schedule
// slots and audit records, so it is kept to what every store and shell takes as is: NamePattern, at
// most MaxNameLength characters. CheckName is where it is enforced.
const (
	NamePattern   = `^[a-z0-9][a-z0-9_-]{0,62}$`
	MaxNameLength = 63
)

var workflowName = regexp.MustCompile(NamePattern)

// CheckName refuses what cannot be a workflow's name as invalid input at field (where the caller
// gave it: "path.name", "body.workflow"), so a name no workflow can have is a 422 that says what a
// name may be, never a 404 suggesting it might exist or a store error from a key it cannot hold.
func CheckName(field, name string) error {
	if workflowName.MatchString(name) {
		return nil
	}
	return &domain.Error{Kind: domain.KindInvalid, Field: field, Msg: fmt.Sprintf(
		"workflow name %s: lower-case letters, digits, - and _, starting with a letter or digit, at most %d characters", shortQuote(name), MaxNameLength)}
}

// shortQuote quotes s for a message, cut to its first 40 characters when it is long.
func shortQuote(s string) string {
	if r := []rune(s); len(r) > 64 {
		return fmt.Sprintf("%q… (%d characters)", string(r[:40]), len(r))
	}
	return fmt.Sprintf("%q", s)
}

// Version is one stored version of a workflow.
type Version struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Source    string    `json:"source,omitempty" doc:"The YAML or JSON as applied."`
	Deleted   bool      `json:"deleted,omitempty"`
	AppliedBy string    `json:"appliedBy"`
	AppliedAt time.Time `json:"appliedAt"`
	// AppliedByPrincipal is whom scheduled runs of this version act for, under the policy.
	AppliedByPrincipal domain.Principal `json:"appliedByPrincipal"`
	Parsed             any              `json:"definition,omitempty" doc:"The parsed definition, as the engine sees it."`
}

// Summary is a line of the workflow list.
type Summary struct {
	Name        string    `json:"name"`
	Version     int       `json:"version"`
	Description string    `json:"description,omitempty"`
	Steps       int       `json:"steps"`
	Schedule    string    `json:"schedule,omitempty"`
	AppliedBy   string    `json:"appliedBy"`
	AppliedAt   time.Time `json:"appliedAt"`
}

// refused is the domain error of a refused workflow: every problem, each located in the source.
func refused(name string, err error) error { return domain.Refused("workflow "+name, err) }

// latest is the newest version the hub wrote: a version planted in the bucket above it fails the
// integrity check and is passed over, so it can neither run nor hide the genuine one.
func (s *Service) latest(ctx context.Context, name string) (*Version, error) {
	v, err := s.versions.Latest(ctx, s.Store, layout.WorkflowVersionsOf(name))
	if err != nil {
		return nil, err
	}
	c := *v
	return &c, nil
}

// newest is the newest genuine version among a workflow's version keys (ascending). Versions are
// written once, so each is read once per process; the caller gets its own copy.
func (s *Service) newest(ctx context.Context, keys []string) (*Version, error) {
	v, err := s.versions.Newest(ctx, s.Store, keys)
	if err != nil {
		return nil, err
	}
	c := *v
	return &c, nil
}

// heads is the newest genuine version of every workflow, deleted ones included, in name order, from
// one listing of every version.
func (s *Service) heads(ctx context.Context) ([]*Version, error) {
	var names []string
	keys := map[string][]string{}
	err := store.Walk(ctx, s.Store, layout.Workflows, "", 0, func(o store.ObjectInfo) error {
		name, _, versioned := strings.Cut(strings.TrimPrefix(o.Key, layout.Workflows), "/")
		if !versioned {
			return nil // not under layout.WorkflowVersionsOf: no version of any workflow
		}
		if _, ok := keys[name]; !ok {
			names = append(names, name)
		}
		keys[name] = append(keys[name], o.Key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*Version
	for _, name := range names {
		v, err := s.newest(ctx, keys[name])
		if errors.Is(err, store.ErrNotFound) {
			continue // no genuine version
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// current is the newest version of a live workflow, or a NotFound domain error.
func (s *Service) current(ctx context.Context, name string) (*Version, error) {
	if !workflowName.MatchString(name) { // callers check names; this guards the key for any other
		return nil, domain.NotFound("no workflow %s (see pulse workflow list)", shortQuote(name))
	}
	v, err := s.latest(ctx, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.Deleted) {
		return nil, domain.NotFound("no workflow %q (see pulse workflow list)", name)
	}
	return v, err
}

// Apply parses, checks and stores a new version of a workflow.
func (s *Service) Apply(ctx context.Context, name, source string) (*Version, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	def, err := workflow.Parse([]byte(source))
	if err != nil {
		return nil, refused(name, err)
	}
	cat, err := s.Fleet.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	if err := def.Validate(cat); err != nil {
		return nil, refused(name, err)
	}
	next := 1
	if prev, err := s.latest(ctx, name); err == nil {
		next = prev.Version + 1
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	p := domain.PrincipalFrom(ctx)
	v := &Version{Name: name, Version: next, Source: source, AppliedBy: p.ID, AppliedAt: time.Now().UTC(), AppliedByPrincipal: p}
	created, err := store.CreateJSON(ctx, s.Store, layout.WorkflowVersion(name, next), v)
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, domain.Conflict("workflow %s was changed concurrently (version %d exists); apply again", name, next)
	}
	s.Trail.Record(ctx, "apply-workflow", nil, nil, "ok", map[string]any{"name": name, "version": next})
	v.Parsed = def
	return v, nil
}

// Get returns a workflow's current version with its parsed definition.
func (s *Service) Get(ctx context.Context, name string) (*Version, error) {
	if err := CheckName("path.name", name); err != nil {
		return nil, err
	}
	v, err := s.current(ctx, name)
	if err != nil {
		return nil, err
	}
	if def, err := s.parsed(v); err == nil {
		v.Parsed = def
	}
	return v, nil
}

// List returns the current version of every workflow.
func (s *Service) List(ctx context.Context) ([]Summary, error) {
	heads, err := s.heads(ctx)
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, v := range heads {
		if v.Deleted {
			continue
		}
		out = append(out, s.summary(v))
	}
	return out, nil
}

// summary is a version's line in the workflow list.
func (s *Service) summary(v *Version) Summary {
	sum := Summary{Name: v.Name, Version: v.Version, AppliedBy: v.AppliedBy, AppliedAt: v.AppliedAt}
	if def, err := s.parsed(v); err == nil {
		sum.Description, sum.Steps = def.Description, len(def.Steps)
		if def.Schedule != nil {
			sum.Schedule = def.Schedule.Cron
		}
	}
	return sum
}

// Delete writes a deletion as a new version; earlier versions stay readable in the bucket.
func (s *Service) Delete(ctx context.Context, name string) error {
	if err := CheckName("path.name", name); err != nil {
		return err
	}
	prev, err := s.current(ctx, name)
	if err != nil {
		return err
	}
	v := Version{Name: name, Version: prev.Version + 1, Deleted: true, AppliedBy: domain.PrincipalFrom(ctx).ID, AppliedAt: time.Now().UTC()}
	if _, err := store.CreateJSON(ctx, s.Store, layout.WorkflowVersion(name, v.Version), v); err != nil {
		return err
	}
	s.Trail.Record(ctx, "delete-workflow", nil, nil, "ok", map[string]any{"name": name, "version": v.Version})
	return nil
}
