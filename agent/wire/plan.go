package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// KindPlan delivers one version of a plan: the desired state of the agents it names, which the agent
// reconciles and keeps reconciling (the body is a Plan). Unlike a command it is not run once: the
// agent keeps the newest version of each plan it accepted and never goes back to an older one, so a
// plan envelope is protected against replay by its version, not by the replay record.
const KindPlan Kind = "plan"

// Plan modes: what an agent does about a unit whose actual state differs from the plan.
const (
	// ModeEnforce repairs the unit and counts the correction.
	ModeEnforce = "enforce"
	// ModeReport says what differs and touches nothing.
	ModeReport = "report"
)

// Plan is one version of a plan as the agent receives it, the body of a KindPlan envelope. Versions
// are immutable: the hub stores each once, and a changed plan is a new version.
type Plan struct {
	// Name is the plan's name (ValidName); an agent keeps one version per name.
	Name string `json:"name"`
	// Version counts from 1; an agent refuses a version lower than one it already accepted.
	Version int `json:"version"`
	// Mode is ModeEnforce (the default when empty) or ModeReport.
	Mode string `json:"mode,omitempty"`
	// Units is the desired state, one unit per thing the plan manages.
	Units []Unit `json:"units"`
}

// Unit is one managed thing: a file, a process, a container. Its Type picks the agent integration
// that owns it (integration.Reconciler); Spec is that integration's to read and refuse.
type Unit struct {
	// Name is unique in the plan (ValidName), and what requires, notify and the status name.
	Name string `json:"name"`
	// Type is the unit type (ValidName), e.g. file, process, container.
	Type string `json:"type"`
	// Requires names units that must be converged before this one is applied.
	Requires []string `json:"requires,omitempty"`
	// Notify names units to restart when this one changed (a new config file restarts its process).
	Notify []string `json:"notify,omitempty"`
	// DeadlineSeconds bounds each phase of applying the unit (0: DefaultUnitDeadline); a unit still not
	// in its desired state after it is failed, with the reason.
	DeadlineSeconds int `json:"deadlineSeconds,omitempty"`
	// Spec is the type's own description of the desired state.
	Spec json.RawMessage `json:"spec"`
}

// DefaultUnitDeadline bounds a phase of a unit whose plan sets none.
const DefaultUnitDeadline = 2 * time.Minute

// MaxUnits bounds a plan, so one plan cannot make an agent reconcile without end.
const MaxUnits = 500

// ErrBadPlan wraps every reason Validate refuses a plan for.
var ErrBadPlan = errors.New("bad plan")

// Validate checks what hub and agent both rely on: names, mode, unique units, dependencies that name
// existing units and form no cycle. It does not look inside a unit's Spec: the integration that owns
// the type does.
func (p *Plan) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadPlan, fmt.Sprintf(format, a...))
	}
	switch {
	case !ValidName(p.Name):
		return bad("name %q: lower-case letters, digits and _, starting with a letter", p.Name)
	case p.Version < 1:
		return bad("version %d: versions count from 1", p.Version)
	case p.Mode != "" && p.Mode != ModeEnforce && p.Mode != ModeReport:
		return bad("mode %q: %s or %s", p.Mode, ModeEnforce, ModeReport)
	case len(p.Units) == 0:
		return bad("no units")
	case len(p.Units) > MaxUnits:
		return bad("%d units; at most %d", len(p.Units), MaxUnits)
	}
	index := map[string]int{}
	for i, u := range p.Units {
		switch {
		case !ValidName(u.Name):
			return bad("unit %d: name %q: lower-case letters, digits and _, starting with a letter", i+1, u.Name)
		case !ValidName(u.Type):
			return bad("unit %s: type %q is not a unit type name", u.Name, u.Type)
		case u.DeadlineSeconds < 0:
			return bad("unit %s: deadlineSeconds %d is negative", u.Name, u.DeadlineSeconds)
		case len(u.Spec) == 0 || !json.Valid(u.Spec):
			return bad("unit %s: spec must be a JSON object", u.Name)
		}
		if _, dup := index[u.Name]; dup {
			return bad("unit %s is defined twice", u.Name)
		}
		index[u.Name] = i
	}
	for _, u := range p.Units {
		for _, list := range [][]string{u.Requires, u.Notify} {
			for _, dep := range list {
				if _, ok := index[dep]; !ok {
					return bad("unit %s names unit %q, which the plan does not define", u.Name, dep)
				}
				if dep == u.Name {
					return bad("unit %s names itself", u.Name)
				}
			}
		}
	}
	if _, err := p.Order(); err != nil {
		return err
	}
	return nil
}

// Order returns the units in an order that applies every unit after the units it requires (and,
// between independent units, in the plan's order). It fails on a cycle, naming it.
func (p *Plan) Order() ([]Unit, error) {
	index := map[string]int{}
	for i, u := range p.Units {
		index[u.Name] = i
	}
	const (
		unvisited = iota
		visiting
		done
	)
	mark := make([]int, len(p.Units))
	var out []Unit
	var path []string
	var visit func(i int) error
	visit = func(i int) error {
		switch mark[i] {
		case done:
			return nil
		case visiting:
			start := slices.Index(path, p.Units[i].Name)
			return fmt.Errorf("%w: units require each other in a cycle: %s", ErrBadPlan, strings.Join(append(path[start:], p.Units[i].Name), " → "))
		}
		mark[i] = visiting
		path = append(path, p.Units[i].Name)
		for _, dep := range p.Units[i].Requires {
			j, ok := index[dep]
			if !ok {
				return fmt.Errorf("%w: unit %s requires unit %q, which the plan does not define", ErrBadPlan, p.Units[i].Name, dep)
			}
			if err := visit(j); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		mark[i] = done
		out = append(out, p.Units[i])
		return nil
	}
	for i := range p.Units {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Deadline is the unit's phase deadline.
func (u Unit) Deadline() time.Duration {
	if u.DeadlineSeconds > 0 {
		return time.Duration(u.DeadlineSeconds) * time.Second
	}
	return DefaultUnitDeadline
}

// Digest names the unit's desired state: equal digests, equal desired states. It is what status
// reports as desired, beside the digest of what the agent observed.
func (u Unit) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", u.Type, u.Name)
	h.Write(u.Spec)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Unit states, as an agent reports them.
const (
	// UnitPending: not looked at yet, or waiting for what it requires (WaitingOn says what).
	UnitPending = "pending"
	// UnitApplying: being brought to its desired state now.
	UnitApplying = "applying"
	// UnitConverged: the actual state is the desired state.
	UnitConverged = "converged"
	// UnitFailed: applying failed or did not finish within its deadline (Reason says why); retried with
	// backoff until it succeeds or a newer plan arrives.
	UnitFailed = "failed"
	// UnitDrifted: the actual state differs and the plan's mode is report, so nothing was touched.
	UnitDrifted = "drifted"
)

// UnitStatus is one unit's state on one agent.
type UnitStatus struct {
	Unit  string `json:"unit"`
	Type  string `json:"type"`
	State string `json:"state" enum:"pending,applying,converged,failed,drifted"`
	// Desired is the unit's Digest; Observed the digest of what the agent found (empty: nothing there).
	Desired  string `json:"desired"`
	Observed string `json:"observed,omitempty"`
	// Reason says, for a person, why the unit is failed, drifted or pending.
	Reason string `json:"reason,omitempty"`
	// WaitingOn names what a pending or applying unit waits for: a unit it requires, a health check,
	// free space.
	WaitingOn string `json:"waitingOn,omitempty"`
	// Corrections counts the times the agent repaired drift of this unit under this plan version.
	Corrections int       `json:"corrections,omitempty"`
	ChangedAt   time.Time `json:"changedAt"`
}

// PlanStatus is what an agent reports about one plan (POST /v1/agents/{id}/plans/{name}/status):
// the version it holds and every unit's state, or why it refused the version it was offered.
type PlanStatus struct {
	Plan string `json:"plan"`
	// Version is the version the agent holds and reconciles (0: none yet); Units are its units.
	Version int          `json:"version"`
	Units   []UnitStatus `json:"units,omitempty"`
	// RefusedVersion and Refused say that the agent refused a version it was offered, and why (a unit
	// type or root its config does not allow, a spec its integration refuses, a version older than the
	// one it holds); nothing of that version was applied, and Version is still the one it holds.
	RefusedVersion int       `json:"refusedVersion,omitempty"`
	Refused        string    `json:"refused,omitempty"`
	At             time.Time `json:"at"`
}

// AgentPlans is the hub's answer to GET /v1/agents/{id}/plans: the newest version of every plan that
// names the agent, each signed for it, so an agent that was offline or enrolled later gets its plans.
type AgentPlans struct {
	Plans []SignedEnvelope `json:"plans"`
}
