package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sort"

	"github.com/pulsehq/pulse/agent/wire"
)

// Set is the loaded integrations of one agent: the whitelist the agent advertises and the only commands
// it will run. It does not change after Load, so it is safe for concurrent use.
type Set struct {
	statuses    []wire.IntegrationStatus
	commands    map[string]Command
	catalog     []wire.CommandSpec
	collectors  []collectorEntry
	samplers    []Sampler        // enabled MetricSources whose config samples
	inventories []inventoryEntry // enabled Inventory sources, in id order
	unknown     []string
	log         *slog.Logger
	hatch       func() error // nil: the hatch never opens
	stateDir    string       // "": no integration may keep records (WithStateDir)
	artifacts   Artifacts    // nil: no integration gets artifacts (WithArtifacts)

	units     map[string]unitOwner // unit type -> the enabled integration that owns it
	offTypes  map[string]string    // unit type -> why the integration declaring it is not running
	recs      []Reconciler         // every enabled Reconciler, in id order
	typeNames []string             // the keys of units, sorted, for messages
	running   []Integration        // every enabled integration, in id order, for the lifecycle hooks
}

// unitOwner is the integration that owns a unit type.
type unitOwner struct {
	id string
	r  Reconciler
}

// Option adjusts Load.
type Option func(*Set)

// WithHatch gives Load the agent's hatch. open is asked at every run of a command marked RequireHatch:
// nil lets it run, an error is the reason it is rejected. Without this option such commands never run,
// so a Set built without a hatch (a test, a tool) fails closed.
func WithHatch(open func() error) Option {
	return func(s *Set) { s.hatch = open }
}

// WithStateDir gives Load the directory under which integrations that keep records across restarts
// (Stateful) get a directory each, named by their id. Without it such an integration is disabled: a
// Set built without a state directory (a test, a tool) must not scatter records.
func WithStateDir(dir string) Option {
	return func(s *Set) { s.stateDir = dir }
}

type collectorEntry struct {
	id string
	c  Collector
}

// Load builds every registered integration from its config table and keeps those that come up. Any
// error or panic in one integration (bad config, failed precondition, a refused command) disables just
// that integration with a reason; Load itself never fails, because the agent must stay reachable to be
// repaired. Config tables whose id nobody registered are logged and returned by UnknownTables, since they
// are usually a typo for an integration that is now silently unconfigured.
func Load(ctx context.Context, tables map[string]any, log *slog.Logger, opts ...Option) *Set {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Set{commands: map[string]Command{}, log: log, units: map[string]unitOwner{}, offTypes: map[string]string{}}
	for _, o := range opts {
		o(s)
	}
	owner := map[string]string{} // command name -> integration id

	modules := Modules()
	known := map[string]bool{}
	for _, m := range modules {
		known[m.ID] = true
		st := wire.IntegrationStatus{ID: m.ID}
		l, err := loadOne(ctx, m, tables[m.ID], s.stateDir, s.artifacts, log)
		if err == nil {
			err = claim(l, owner)
		}
		if err == nil {
			err = s.claimUnits(l)
		}
		switch {
		case err != nil:
			st.Reason = err.Error()
			log.Warn("integration disabled", "integration", m.ID, "reason", st.Reason)
			s.noteOff(m.ID, l.unitTypes, st.Reason)
		case !l.enabled:
			st.Reason = "not enabled by its configuration"
			log.Info("integration not enabled", "integration", m.ID)
			s.noteOff(m.ID, l.unitTypes, st.Reason)
		default:
			st.Enabled = true
			s.running = append(s.running, l.inst)
			for _, c := range l.commands {
				owner[c.spec.Name] = m.ID
				s.commands[c.spec.Name] = c
				s.catalog = append(s.catalog, c.Spec())
			}
			if l.sampler.src != nil {
				s.samplers = append(s.samplers, l.sampler)
			}
			if l.collector != nil {
				s.collectors = append(s.collectors, collectorEntry{id: m.ID, c: l.collector})
			}
			if inv, ok := l.inst.(Inventory); ok {
				s.inventories = append(s.inventories, inventoryEntry{id: m.ID, inv: inv})
			}
			if l.reconciler != nil {
				s.recs = append(s.recs, l.reconciler)
				for _, t := range l.unitTypes {
					s.units[t] = unitOwner{id: m.ID, r: l.reconciler}
					s.typeNames = append(s.typeNames, t)
				}
			}
			log.Info("integration enabled", "integration", m.ID, "commands", len(l.commands), "unitTypes", l.unitTypes)
		}
		s.statuses = append(s.statuses, st)
	}
	sort.Slice(s.catalog, func(i, j int) bool { return s.catalog[i].Name < s.catalog[j].Name })
	sort.Strings(s.typeNames)
	for t := range s.units {
		delete(s.offTypes, t) // declared by a disabled integration, owned by an enabled one
	}

	for id := range tables {
		if !known[id] {
			s.unknown = append(s.unknown, id)
		}
	}
	sort.Strings(s.unknown)
	for _, id := range s.unknown {
		log.Warn("config table for an unknown integration ignored", "table", id)
	}
	return s
}

// loaded is one integration brought up by loadOne, not yet merged into the Set.
type loaded struct {
	inst       Integration
	enabled    bool
	commands   []Command
	collector  Collector
	sampler    Sampler // src nil: the integration samples no metrics under its config
	reconciler Reconciler
	unitTypes  []string // what reconciler declares; also known for a disabled integration, for messages
}

// loadOne runs one integration through its lifecycle. Every call into integration code is behind a
// recover, so a panic becomes a reason naming the step.
func loadOne(ctx context.Context, m Module, table any, stateDir string, artifacts Artifacts, log *slog.Logger) (l loaded, err error) {
	step := "New"
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in %s: %v", step, r)
			log.Debug("integration panic", "integration", m.ID, "stack", string(debug.Stack()))
		}
	}()

	var raw map[string]any
	if table != nil {
		t, ok := table.(map[string]any)
		if !ok {
			return l, fmt.Errorf("configuration: [%s] must be a table, got %T", m.ID, table)
		}
		raw = t
	}

	inst := m.New()
	if inst == nil {
		return l, fmt.Errorf("New returned nil")
	}
	step = "Configure"
	if err := inst.Configure(raw); err != nil {
		return l, fmt.Errorf("configuration: %w", err)
	}
	if r, ok := inst.(Reconciler); ok {
		step = "UnitTypes"
		if l.unitTypes, err = unitTypes(r); err != nil {
			return l, err
		}
		l.reconciler = r
	}
	step = "Enabled"
	if !inst.Enabled() {
		return l, nil
	}
	l.enabled = true
	l.inst = inst

	if st, ok := inst.(Stateful); ok {
		step = "UseStateDir"
		if err := useStateDir(st, stateDir, m.ID); err != nil {
			return l, err
		}
	}
	if au, ok := inst.(ArtifactUser); ok && artifacts != nil {
		au.UseArtifacts(artifacts)
	}
	if p, ok := inst.(Preconditioner); ok {
		step = "Precondition"
		if err := p.Precondition(ctx); err != nil {
			return l, fmt.Errorf("precondition failed: %w", err)
		}
	}

	seen := map[string]bool{}
	if c, ok := inst.(Commander); ok {
		step = "Commands"
		cmds, err := c.Commands()
		if err != nil {
			return l, fmt.Errorf("commands: %w", err)
		}
		for i, cmd := range cmds {
			if !cmd.built() {
				return l, fmt.Errorf("commands: command %d (%q) %v", i, cmd.spec.Name, errNoHandler)
			}
			if cmd.spec.Group != m.ID {
				return l, fmt.Errorf("commands: command %s has group %q; it must be the integration's id %q", cmd.spec.Name, cmd.spec.Group, m.ID)
			}
			if seen[cmd.spec.Name] {
				return l, fmt.Errorf("commands: command %s declared twice", cmd.spec.Name)
			}
			seen[cmd.spec.Name] = true
			l.commands = append(l.commands, cmd)
		}
	}

	step = "SampleEvery"
	if sm, ok := metricSampler(m.ID, inst); ok {
		l.sampler = sm
	}

	if c, ok := inst.(Collector); ok {
		name := m.ID + refreshSuffix
		if seen[name] {
			return l, fmt.Errorf("commands: command %s is synthesized for the collector and may not be declared", name)
		}
		refresh, err := NewJob(wire.CommandSpec{
			Name:                  name,
			Group:                 m.ID,
			Description:           "Collect the current state of " + m.ID + " and print it as JSON",
			DefaultTimeoutSeconds: 60,
		}, refreshJob(c))
		if err != nil {
			return l, fmt.Errorf("commands: %w", err)
		}
		l.commands = append(l.commands, refresh)
		l.collector = c
	}
	return l, nil
}

// claim refuses an integration whose command names collide with those of one loaded before it (in id
// order, so the outcome is the same on every start).
func claim(l loaded, owner map[string]string) error {
	for _, c := range l.commands {
		if other, taken := owner[c.spec.Name]; taken {
			return fmt.Errorf("commands: command %s is already provided by integration %s", c.spec.Name, other)
		}
	}
	return nil
}

func refreshJob(c Collector) JobFunc {
	return func(ctx context.Context, _ map[string]string, out io.Writer) error {
		v, err := c.Collect(ctx)
		if err != nil {
			return fmt.Errorf("collect: %w", err)
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode collected state: %w", err)
		}
		_, err = out.Write(append(b, '\n'))
		return err
	}
}

// Catalog is the whitelist this agent advertises: every command of every enabled integration, including
// synthesized "<id>_refresh" commands, sorted by name.
func (s *Set) Catalog() []wire.CommandSpec {
	out := make([]wire.CommandSpec, len(s.catalog))
	for i, c := range s.catalog {
		out[i] = copySpec(c)
	}
	return out
}

// Statuses reports every registered integration, sorted by id, with the reason when it is disabled, so
// the hub can show why a capability is missing rather than just its absence.
func (s *Set) Statuses() []wire.IntegrationStatus {
	return append([]wire.IntegrationStatus(nil), s.statuses...)
}

// UnknownTables lists config tables that no registered integration claims, sorted.
func (s *Set) UnknownTables() []string { return append([]string(nil), s.unknown...) }

// State is one integration's collected state, or why it could not be read.
type State struct {
	ID    string
	Value any
	Err   error
}

// Collect reads the state of every enabled Collector, in id order, for the kernel's periodic push. A
// failing or panicking collector yields its error in its State and does not stop the others.
func (s *Set) Collect(ctx context.Context) []State {
	out := make([]State, 0, len(s.collectors))
	for _, e := range s.collectors {
		st := State{ID: e.id}
		func() {
			defer func() {
				if r := recover(); r != nil {
					st.Err = fmt.Errorf("collect %s: panic: %v", e.id, r)
				}
			}()
			v, err := e.c.Collect(ctx)
			if err != nil {
				st.Err = fmt.Errorf("collect %s: %w", e.id, err)
				return
			}
			st.Value = v
		}()
		out = append(out, st)
	}
	return out
}
