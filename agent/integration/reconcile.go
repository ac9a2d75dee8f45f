package integration

import (
	"context"

	"github.com/pulsehq/pulse/agent/wire"
)

// Reconciler is implemented by integrations that own unit types of plans (wire.Plan): a file, a
// supervised process, a container. The kernel knows no unit type by name: it finds the Reconciler
// that declared a unit's type and asks it, unit by unit, what is there and to make it so. A unit
// type no loaded, enabled integration declares is refused, and so is a unit the integration refuses
// (CheckUnit): that is the agent's whitelist applied to state.
//
// A Reconciler keeps no state it cannot rebuild: Observe reads the environment (the file on disk, the
// process table, the container runtime), never a memory of what it did, so an agent that crashed or
// rebooted reconciles from what is actually there.
type Reconciler interface {
	// UnitTypes names the unit types the integration owns (each wire.ValidName, owned by one
	// integration only).
	UnitTypes() []string
	// CheckUnit refuses, with a reason a person can act on, a unit this agent must not or cannot apply:
	// a malformed spec, a path outside the roots its config allows. The kernel checks every unit of a
	// plan version before applying any of it, so a refused version changes nothing.
	CheckUnit(u wire.Unit) error
	// Observe reads the unit's actual state.
	Observe(ctx context.Context, u wire.Unit) (Observation, error)
	// Apply brings the unit to its desired state, doing only what differs, and returns once it is there
	// or fails; ctx carries the unit's deadline. It must be safe to run again after being interrupted
	// at any point (an agent killed mid-apply leaves no half-written file and starts no second copy).
	Apply(ctx context.Context, u wire.Unit) error
}

// Observation is what a Reconciler found of a unit.
type Observation struct {
	// Digest names the actual state ("" when there is nothing), for the status a person reads.
	Digest string
	// InState reports whether the actual state is the desired one.
	InState bool
	// Detail says what differs, for a person: "content differs", "not running (exit 1)".
	Detail string
	// WaitingOn names what the unit waits for while it is on its way (a health check), if anything.
	WaitingOn string
}

// Restarter is implemented by Reconcilers whose units can be restarted: a unit that notifies them
// (wire.Unit.Notify) changed, e.g. a new config file for a process.
type Restarter interface {
	Restart(ctx context.Context, u wire.Unit) error
}

// Releaser is implemented by Reconcilers that must let go of a unit no plan manages any more (stop a
// supervised process). A released file or container is left as it is.
type Releaser interface {
	Release(ctx context.Context, u wire.Unit) error
}

// Watcher is implemented by Reconcilers that learn of drift without polling (a supervised process
// exited): Watch calls changed, from any goroutine, whenever a unit may no longer be in its state, so
// the kernel reconciles at once instead of at its next period.
type Watcher interface {
	Watch(changed func(unit string))
}
