package standard_test

import (
	"slices"
	"testing"

	"github.com/pulsehq/pulse/agent/integration"
	_ "github.com/pulsehq/pulse/agent/integrations/standard"
)

// The manifest registers the built-ins and nothing else, in particular no test modules.
func TestManifest(t *testing.T) {
	var ids []string
	for _, m := range integration.Modules() {
		ids = append(ids, m.ID)
	}
	if want := []string{"agent_update", "container", "exec", "files", "host", "process", "shell"}; !slices.Equal(ids, want) {
		t.Fatalf("registered %v, want %v", ids, want)
	}
}
