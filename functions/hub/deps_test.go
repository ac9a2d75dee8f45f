package hub_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const base = "github.com/pulsehq/pulse/functions/hub"

// mayImport says which of the hub's packages each may import, with the reason. Anything not listed
// is forbidden, so a new edge between rooms is a decision made here, not an accident; and since the
// rules follow one order (domain, events → paging, trail → access → fleet → delivery → commands → workflows,
// plans, artifacts → the edge), there can be no cycle.
var mayImport = map[string]map[string]string{
	"domain": {},
	"events": {},
	"paging": {
		"domain": "an unknown cursor is invalid input",
	},
	"trail": {
		"domain": "who acted is read from the request context",
	},
	"access": {
		"domain": "principals and domain errors",
		"trail":  "denials and token changes are audited",
	},
	"fleet": {
		"domain": "domain errors, who acted",
		"trail":  "enrollment, labels, retirement and the hatch are audited",
		"access": "enrollment tokens are secrets made and hashed the same way as API tokens",
	},
	"delivery": {
		"domain": "domain errors",
	},
	"commands": {
		"domain": "domain errors, who acted",
		"events": "a result stored is published; live views subscribe to changes",
		"trail":  "commands, approvals and cancels are audited",
		"fleet":  "target selection and catalogs (through the Fleet interface; the types are fleet's)",
		"access": "approvers are keyed by the same hash as tokens",
		"paging": "the command list pages like every list",
	},
	"workflows": {
		"domain":   "domain errors, who acted",
		"events":   "results of workflow commands arrive as events",
		"trail":    "applies, starts, answers and cancels are audited",
		"commands": "steps issue commands (through the Commands interface; the request types are commands')",
		"fleet":    "definitions are checked against the fleet's catalog",
		"paging":   "the execution list pages like every list",
	},
	"artifacts": {
		"domain": "domain errors, who pushed",
		"trail":  "pushes are audited",
	},
	"metrics": {
		"domain": "domain errors (a batch refused with its reason, a seq reused)",
	},
	"plans": {
		"domain": "domain errors, who acted",
		"events": "the view of the plans is refreshed outside the request that found it stale",
		"trail":  "applies are audited",
		"fleet":  "targets are selected over the fleet's agents and labels (through the Fleet interface; the types are fleet's)",
	},
	"telemetry": {},
	"resources": {
		"domain": "domain errors (a report refused with its reason, a late report)",
		"fleet":  "resources are filtered by their agents' names and labels, and retired agents' dropped (through the Fleet interface; the types are fleet's)",
		"paging": "the resource list pages like every list",
	},
	"notifications": {
		"domain": "domain errors, who acted",
		"trail":  "channel changes and test-sends are audited",
	},
	"alerts": {
		"domain": "domain errors, who acted",
		"trail":  "applying the rules is audited",
		"fleet":  "agents, their heartbeats and labels are what offline rules watch (through the Fleet interface; the types are fleet's)",
	},
}

// httpFree are imports no room may have: rooms speak domain errors and know nothing of HTTP; the edge
// (package hub) maps them to problems.
var httpFree = []string{"net/http", "github.com/danielgtaylor/huma"}

func TestRoomDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, base+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		if pkg == base {
			continue // the edge and composition root may import every room
		}
		room := strings.TrimPrefix(pkg, base+"/")
		allowed, known := mayImport[room]
		if !known {
			t.Errorf("package %s is not in mayImport: add it with what it may import and why", pkg)
			continue
		}
		seen++
		for _, imp := range imports {
			if imp == base {
				t.Errorf("%s imports the edge %s; rooms never import it", room, base)
			}
			if other, ok := strings.CutPrefix(imp, base+"/"); ok {
				if _, ok := allowed[other]; !ok {
					t.Errorf("%s imports %s, which mayImport does not allow", room, other)
				}
			}
			if slices.ContainsFunc(httpFree, func(p string) bool { return imp == p || strings.HasPrefix(imp, p+"/") }) {
				t.Errorf("%s imports %s: rooms know nothing of HTTP; map errors at the edge", room, imp)
			}
		}
	}
	if seen < len(mayImport) {
		t.Errorf("found %d rooms, mayImport names %d: a rule for a package that no longer exists proves nothing", seen, len(mayImport))
	}
}
