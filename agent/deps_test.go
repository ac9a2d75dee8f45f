package agent_test

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are import-path prefixes the agent must never pull in, directly or transitively: the hub and
// the policy engine (the agent defines the wire format; the hub imports it, never the other way round),
// and the libraries that make the hub large (OPA, AWS SDK, the S3 client, the API framework). A new
// dependency that drags one of them in fails here, not in a size review.
var forbidden = []string{
	"github.com/pulsehq/pulse/functions",
	"github.com/pulsehq/pulse/policy",
	"github.com/open-policy-agent/",
	"github.com/aws/",
	"github.com/minio/",
	"github.com/danielgtaylor/huma",
}

func TestAgentDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "github.com/pulsehq/pulse/agent/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned only %d packages; the check would prove nothing", len(deps))
	}
	for _, dep := range deps {
		for _, bad := range forbidden {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("the agent depends on %s (forbidden prefix %s); see agent/doc.go", dep, bad)
			}
		}
	}
}
