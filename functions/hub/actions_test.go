package hub_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/policy"
)

// TestEveryActionIsNamedInThePolicy: the default policy fails closed, so an operator operation whose
// action it does not name is silently denied to everyone but admins. Every gated operation's action
// (its operation id, or the action its Metadata names) must appear in the default rules.
func TestEveryActionIsNamedInThePolicy(t *testing.T) {
	api := hub.NewAPI(http.NewServeMux(), newTestHub(t).h)
	srcs, err := policy.DefaultSources()
	if err != nil {
		t.Fatal(err)
	}
	rules := srcs["default/rules.rego"]
	if rules == "" {
		t.Fatal("no rules.rego in the default policy")
	}
	gated := 0
	for path, item := range api.OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op == nil || len(op.Security) == 0 || op.Security[0]["bearer"] == nil || op.Metadata["decide"] == "service" {
				continue
			}
			action := op.OperationID
			if a, ok := op.Metadata["action"].(string); ok {
				action = a
			}
			gated++
			if !strings.Contains(rules, `"`+action+`"`) {
				t.Errorf("%s %s: action %q is not named in policy/default/rules.rego", op.Method, path, action)
			}
		}
	}
	if gated < 20 {
		t.Fatalf("found %d gated operations; the check would prove little", gated)
	}
}
