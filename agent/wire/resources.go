package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Resource statuses: a small fixed set, so a fleet-wide filter ("everything failed") means the same for a
// disk, a container and a plan unit. Each integration maps its own states onto them
// (docs/inventory.md has the table).
const (
	// ResourceOK: working as it should.
	ResourceOK = "ok"
	// ResourceDegraded: working, but needs attention soon (a filesystem nearly full, a unit drifted).
	ResourceDegraded = "degraded"
	// ResourceFailed: not working (a container that exited with an error, a unit that failed to apply).
	ResourceFailed = "failed"
	// ResourceStopped: not running on purpose or by state (an interface down, a container stopped).
	ResourceStopped = "stopped"
	// ResourceUnknown: the agent could not tell (a statfs that hung, a state it does not know).
	ResourceUnknown = "unknown"
)

// ResourceStatuses lists the statuses Validate accepts, in order of severity for people.
var ResourceStatuses = []string{ResourceOK, ResourceDegraded, ResourceFailed, ResourceStopped, ResourceUnknown}

// The types of the resources the built-in integrations and the kernel report. The wire accepts any
// type that is a short lower-case name, so an integration can add its own without a change here.
const (
	ResourceDisk      = "disk"
	ResourceMount     = "mount"
	ResourceInterface = "interface"
	ResourceContainer = "container"
	ResourcePlan      = "plan"
	ResourceUnit      = "unit"
)

// Resource is one thing an agent's integrations found on the host, as the inventory shows it. Type
// and ID name it within its agent (ID is unique per type), so two reports of the same disk are the
// same resource; everything else may change between reports.
type Resource struct {
	// Type is a lower-case name: disk, mount, interface, container, plan, unit, or an integration's own.
	Type string `json:"type"`
	// ID is unique among the agent's resources of Type: a device name, a mount point, a container id,
	// "<plan>/<unit>".
	ID string `json:"id"`
	// Name is what people call it when the ID is not that (a container's name); empty means the ID.
	Name string `json:"name,omitempty"`
	// Parent is "<type>/<id>" of another resource in the same report (a unit's plan), or empty when
	// the resource hangs off the host itself.
	Parent string `json:"parent,omitempty"`
	Status string `json:"status" enum:"ok,degraded,failed,stopped,unknown"`
	// Reason says, for a person, why Status is not ok (at most MaxReasonBytes).
	Reason string `json:"reason,omitempty"`
	// Attributes are the resource's facts (size, fstype, image, addresses): strings, numbers or
	// booleans, bounded by MaxResourceAttributes and MaxAttributeBytes.
	Attributes map[string]any `json:"attributes,omitempty"`
	// ChangedAt is when the agent saw the resource's status or attributes last change (the first
	// time it saw it, after a restart).
	ChangedAt time.Time `json:"changedAt,omitzero"`
}

// Key is "<type>/<id>", what a Parent names.
func (r Resource) Key() string { return r.Type + "/" + r.ID }

// InventoryError says that one source of resources (an integration, or the kernel's plans) could not
// be read, so the hub shows why its resources are missing or stale instead of nothing.
type InventoryError struct {
	// Source is the integration's id, or "plans".
	Source string `json:"source"`
	Error  string `json:"error"`
}

// InventoryReport is an agent's whole current inventory (PUT /v1/agents/{id}/resources): every
// resource every source reported, replacing the previous report. Seq orders an agent's reports: the
// hub keeps the report with the highest Seq, so a report that arrives late (retried after an outage)
// never overwrites a newer one. The agent takes it from the clock (Unix milliseconds of At), made
// strictly increasing within a run.
type InventoryReport struct {
	Seq       uint64           `json:"seq"`
	At        time.Time        `json:"at"`
	Resources []Resource       `json:"resources"`
	Errors    []InventoryError `json:"errors,omitempty"`
}

// Bounds on one report, so an agent cannot make the hub store (and every hub instance keep in memory)
// without end: a host with a thousand containers still fits, with room.
const (
	MaxResources          = 2000
	MaxResourceAttributes = 32
	MaxAttributeKeyBytes  = 64
	MaxAttributeBytes     = 512 // a string value
	MaxResourceIDBytes    = 256 // an id, a name, a parent
	MaxInventoryErrors    = 64
	MaxInventoryBytes     = 2 << 20 // the report's JSON
	// DefaultInventoryEvery is how often the agent collects its inventory ([agent] inventory).
	DefaultInventoryEvery = 5 * time.Minute
	// InventoryRefresh is how long an unchanged inventory goes without a report: the hub's "last
	// seen" of a resource is never older than this while its agent runs.
	InventoryRefresh = time.Hour
)

var (
	resourceType = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	attributeKey = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.-]{0,63}$`)
)

// ErrBadInventory wraps every reason Validate refuses a report for.
var ErrBadInventory = errors.New("bad inventory report")

// Validate refuses a report the hub cannot keep as it is: no seq or time, too many resources, errors
// or bytes, a type that is not a short lower-case name, an empty or duplicate id, an unknown status, a
// parent that names no resource of the report, attributes that are too many, too large, or not a
// string, a finite number or a boolean. The reason names the resource.
func (r *InventoryReport) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadInventory, fmt.Sprintf(format, a...))
	}
	switch {
	case r.Seq == 0:
		return bad("seq counts from 1")
	case r.At.IsZero():
		return bad("at: the time the inventory was collected is missing")
	case len(r.Resources) > MaxResources:
		return bad("%d resources, at most %d", len(r.Resources), MaxResources)
	case len(r.Errors) > MaxInventoryErrors:
		return bad("%d errors, at most %d", len(r.Errors), MaxInventoryErrors)
	}
	seen := make(map[string]bool, len(r.Resources))
	for i, res := range r.Resources {
		if err := res.Validate(); err != nil {
			return bad("resource %d (%s): %v", i, shortKey(res), err)
		}
		if seen[res.Key()] {
			return bad("resource %d: %s appears twice (an id is unique per type)", i, res.Key())
		}
		seen[res.Key()] = true
	}
	for i, res := range r.Resources {
		if res.Parent != "" && !seen[res.Parent] {
			return bad("resource %d (%s): parent %q is no resource of the report", i, res.Key(), res.Parent)
		}
	}
	for i, e := range r.Errors {
		switch {
		case !ValidName(e.Source):
			return bad("error %d: source %q is not an integration id", i, e.Source)
		case e.Error == "" || len(e.Error) > MaxReasonBytes || !utf8.ValidString(e.Error):
			return bad("error %d (%s): the text must be valid UTF-8 of 1 to %d bytes", i, e.Source, MaxReasonBytes)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return bad("cannot be encoded: %v", err)
	}
	if len(b) > MaxInventoryBytes {
		return bad("%d bytes of JSON, at most %d", len(b), MaxInventoryBytes)
	}
	return nil
}

// Validate checks one resource on its own (everything but whether its parent is in its report), so
// the agent can leave out, and report, a resource one integration got wrong without losing the rest.
func (res Resource) Validate() error {
	switch {
	case !resourceType.MatchString(res.Type):
		return fmt.Errorf("type %q: a lower-case name of at most 32 characters, such as disk or container", res.Type)
	case !textOK(res.ID, false):
		return fmt.Errorf("id: valid UTF-8 without control characters, 1 to %d bytes", MaxResourceIDBytes)
	case !textOK(res.Name, true):
		return fmt.Errorf("name: valid UTF-8 without control characters, at most %d bytes", MaxResourceIDBytes)
	case !validStatus(res.Status):
		return fmt.Errorf("status %q: one of %s", res.Status, strings.Join(ResourceStatuses, ", "))
	case len(res.Reason) > MaxReasonBytes || !utf8.ValidString(res.Reason):
		return fmt.Errorf("reason: valid UTF-8 of at most %d bytes", MaxReasonBytes)
	case len(res.Attributes) > MaxResourceAttributes:
		return fmt.Errorf("%d attributes, at most %d", len(res.Attributes), MaxResourceAttributes)
	}
	if res.Parent != "" {
		t, id, ok := strings.Cut(res.Parent, "/")
		if !ok || !resourceType.MatchString(t) || !textOK(id, false) {
			return fmt.Errorf("parent %q: \"<type>/<id>\" of another resource, or empty for the host", res.Parent)
		}
		if res.Parent == res.Key() {
			return errors.New("a resource cannot be its own parent")
		}
	}
	for k, v := range res.Attributes {
		if !attributeKey.MatchString(k) {
			return fmt.Errorf("attribute %q: a name of letters, digits, _ . - (at most %d bytes, not starting with a digit)", k, MaxAttributeKeyBytes)
		}
		if err := checkScalar(v); err != nil {
			return fmt.Errorf("attribute %s: %v", k, err)
		}
	}
	return nil
}

// checkScalar accepts what an attribute may hold: a string of at most MaxAttributeBytes, a finite
// number, a boolean. Nested values would make the inventory a document store nobody can filter.
func checkScalar(v any) error {
	switch x := v.(type) {
	case string:
		if len(x) > MaxAttributeBytes || !utf8.ValidString(x) {
			return fmt.Errorf("a string must be valid UTF-8 of at most %d bytes", MaxAttributeBytes)
		}
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return errors.New("not a finite number")
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return errors.New("not a finite number")
		}
	case json.Number:
		if _, err := x.Float64(); err != nil {
			return fmt.Errorf("not a number: %v", err)
		}
	default:
		return fmt.Errorf("a %T: want a string, a number or a boolean", v)
	}
	return nil
}

func validStatus(s string) bool {
	for _, st := range ResourceStatuses {
		if s == st {
			return true
		}
	}
	return false
}

// textOK says whether s is an id, name or parent the hub can show and filter by.
func textOK(s string, empty bool) bool {
	if s == "" {
		return empty
	}
	if len(s) > MaxResourceIDBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// shortKey names a resource in a refusal without repeating a megabyte an agent sent as its id.
func shortKey(r Resource) string {
	k := r.Key()
	if len(k) > 80 {
		cut := 80
		for cut > 0 && !utf8.RuneStart(k[cut]) {
			cut--
		}
		k = k[:cut] + "…"
	}
	return fmt.Sprintf("%q", k)
}
