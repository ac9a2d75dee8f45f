package integration

import (
	"context"
	"fmt"

	"github.com/pulsehq/pulse/agent/wire"
)

// Inventory is implemented by integrations that find resources on the host (the host's disks, mounts
// and interfaces; the Docker containers). The kernel collects every source every [agent] inventory
// interval, merges what they return into one wire.InventoryReport and uploads it when it changed; the
// integration never talks to the hub, and knows nothing of the other sources.
type Inventory interface {
	// Resources returns what the integration finds now. Their ChangedAt is the kernel's to set. A
	// partial failure returns what was read and an error saying what was not: the kernel reports both.
	Resources(ctx context.Context) ([]wire.Resource, error)
}

// Found is one inventory source's answer: its integration's id, what it found, and why it could not
// find everything (nil: it could).
type Found struct {
	ID        string
	Resources []wire.Resource
	Err       error
}

type inventoryEntry struct {
	id  string
	inv Inventory
}

// Inventory asks every enabled Inventory source, in id order. A source that fails or panics yields its
// error in its Found and does not stop the others.
func (s *Set) Inventory(ctx context.Context) []Found {
	out := make([]Found, 0, len(s.inventories))
	for _, e := range s.inventories {
		f := Found{ID: e.id}
		func() {
			defer func() {
				if r := recover(); r != nil {
					f.Resources, f.Err = nil, fmt.Errorf("inventory %s: panic: %v", e.id, r)
				}
			}()
			f.Resources, f.Err = e.inv.Resources(ctx)
			if f.Err != nil {
				f.Err = fmt.Errorf("inventory %s: %w", e.id, f.Err)
			}
		}()
		out = append(out, f)
	}
	return out
}

// HasInventory says whether any enabled integration reports resources.
func (s *Set) HasInventory() bool { return len(s.inventories) > 0 }
