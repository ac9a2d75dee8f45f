package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pulsehq/pulse/agent/wire"
)

// Stateful is implemented by integrations that must keep records across agent restarts (the pid of a
// process they supervise, its log). Load gives each its own directory under the agent's state
// directory (WithStateDir), created 0700 before Precondition runs, so no integration needs to know
// where the agent keeps its state or can step on another's records.
type Stateful interface {
	UseStateDir(dir string) error
}

// useStateDir creates and hands over an integration's directory.
func useStateDir(st Stateful, root, id string) error {
	if root == "" {
		return fmt.Errorf("it keeps records across restarts and the agent gave it no state directory")
	}
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if err := st.UseStateDir(dir); err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	return nil
}

// unitTypes checks what a Reconciler declares: valid names, none twice, at least one.
func unitTypes(r Reconciler) ([]string, error) {
	types := slices.Clone(r.UnitTypes())
	if len(types) == 0 {
		return nil, fmt.Errorf("unit types: it reconciles plan units but declares no unit type")
	}
	seen := map[string]bool{}
	for _, t := range types {
		if !wire.ValidName(t) {
			return nil, fmt.Errorf("unit types: %q is not a valid unit type name (lower-case letters, digits and _)", t)
		}
		if seen[t] {
			return nil, fmt.Errorf("unit types: %s declared twice", t)
		}
		seen[t] = true
	}
	return types, nil
}

// claimUnits refuses an integration declaring a unit type an integration loaded before it (in id
// order) already owns, so every unit type has exactly one owner on every start.
func (s *Set) claimUnits(l loaded) error {
	if !l.enabled {
		return nil
	}
	for _, t := range l.unitTypes {
		if o, taken := s.units[t]; taken {
			return fmt.Errorf("unit types: %s is already owned by integration %s", t, o.id)
		}
	}
	return nil
}

// noteOff remembers the unit types of an integration that does not run, so a refused unit can say
// which integration to enable rather than only that its type is unknown.
func (s *Set) noteOff(id string, types []string, reason string) {
	for _, t := range types {
		if _, ok := s.offTypes[t]; !ok {
			s.offTypes[t] = fmt.Sprintf("integration %s, which owns it, is not running on this agent: %s", id, reason)
		}
	}
}

// Reconciler returns the Reconciler that owns a unit type, or why this agent does not apply units of
// that type: no integration declares it, or the one that does is disabled (with its reason). This is
// the agent's whitelist of unit types: the kernel refuses a plan with a unit it cannot find here.
func (s *Set) Reconciler(unitType string) (Reconciler, error) {
	if o, ok := s.units[unitType]; ok {
		return o.r, nil
	}
	if why, ok := s.offTypes[unitType]; ok {
		return nil, fmt.Errorf("unit type %q is not allowed here: %s", unitType, why)
	}
	allowed := "none"
	if len(s.typeNames) > 0 {
		allowed = strings.Join(s.typeNames, ", ")
	}
	return nil, fmt.Errorf("unit type %q is not allowed here: no integration of this agent owns it (unit types it allows: %s)", unitType, allowed)
}

// Reconcilers lists every enabled Reconciler in id order, for the kernel to set up watches.
func (s *Set) Reconcilers() []Reconciler { return slices.Clone(s.recs) }

// UnitTypes lists the unit types this agent applies, sorted.
func (s *Set) UnitTypes() []string { return slices.Clone(s.typeNames) }
