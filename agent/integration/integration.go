// Package integration is the agent's one contract with everything that knows how to drive a specific
// system. The kernel iterates whatever registered here and knows no integration by name, so adding one
// is a new package plus one line in agent/integrations/standard; connect, auth and dispatch never change.
//
// An integration registers a Module from init. It must parse its own config and say whether it is
// enabled; everything else (preconditions, commands, periodic state) is an optional interface it
// implements only if it has that capability, so no integration carries stubs.
//
// Commands are built only through NewJob and NewSubprocess, which refuse broken shapes (a job without a
// handler, a relative binary, an unconstrained parameter, a placeholder nobody declared) when the agent
// starts rather than when someone runs them. Load turns every such failure, and any panic, into a
// soft-disabled integration with a reason the hub shows: a broken integration never takes the agent down.
package integration

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/pulsehq/pulse/agent/wire"
)

// Module is what an integration registers: an id that keys its config table, its status and the group of
// every command it contributes, and a constructor so each Load gets a fresh instance with no state left
// over from a previous configuration.
type Module struct {
	// ID is lower-case [a-z][a-z0-9_]* (wire.ValidName), short enough to leave room for "<id>_refresh".
	ID string
	// New returns a new, unconfigured instance.
	New func() Integration
}

// Integration is the required part of the contract: every integration must be able to refuse a bad
// config on its own terms and to say whether that config turns it on.
type Integration interface {
	// Configure parses the integration's raw TOML table (nil or empty when absent) into its typed config.
	// An error soft-disables the integration with the error as the reason.
	Configure(raw map[string]any) error
	// Enabled says whether the integration should run with that config (e.g. exec runs only when it has
	// commands).
	Enabled() bool
}

// Preconditioner is implemented by integrations that can only work when something outside the agent
// holds (a binary is installed, a socket answers). A failure soft-disables the integration with the error
// as the reason instead of letting its commands fail one by one later.
type Preconditioner interface {
	Precondition(ctx context.Context) error
}

// Commander is implemented by integrations that contribute commands to the agent's whitelist. Every
// command's group must equal the integration's id.
type Commander interface {
	Commands() ([]Command, error)
}

// Collector is implemented by integrations with periodic state. Declaring it earns a synthesized
// "<id>_refresh" command that prints Collect's result as JSON, so an operator can read the state on
// demand without the integration writing a command for it.
type Collector interface {
	Collect(ctx context.Context) (any, error)
}

// refreshSuffix names the synthesized command of a Collector.
const refreshSuffix = "_refresh"

// maxIDLen keeps "<id>_refresh" a valid name (wire.ValidName allows 63 characters).
const maxIDLen = 63 - len(refreshSuffix)

var registry = struct {
	sync.Mutex
	modules map[string]Module
}{modules: map[string]Module{}}

// Register adds an integration to every agent built with its package. It is called from init and panics
// on an invalid id, a nil constructor or a duplicate id, because those are programming errors that must
// fail the build's tests, not a running agent.
func Register(m Module) {
	if !wire.ValidName(m.ID) {
		panic(fmt.Sprintf("integration: register %q: id must be lower-case letters, digits and _, starting with a letter", m.ID))
	}
	if len(m.ID) > maxIDLen {
		panic(fmt.Sprintf("integration: register %q: id longer than %d characters leaves no room for %q", m.ID, maxIDLen, m.ID+refreshSuffix))
	}
	if m.New == nil {
		panic(fmt.Sprintf("integration: register %q: New is nil", m.ID))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.modules[m.ID]; dup {
		panic(fmt.Sprintf("integration: register %q: id already registered", m.ID))
	}
	registry.modules[m.ID] = m
}

// Modules lists what registered, sorted by id so that loading, statuses and conflict resolution are the
// same on every start.
func Modules() []Module {
	registry.Lock()
	defer registry.Unlock()
	ms := make([]Module, 0, len(registry.modules))
	for _, m := range registry.modules {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	return ms
}
