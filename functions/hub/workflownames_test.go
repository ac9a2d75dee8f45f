package hub_test

import (
	"net/url"
	"strings"
	"testing"
)

// TestBadWorkflowNamesAreInvalid: a name that cannot be a workflow's (too long, emoji, upper case, a
// path) is refused as invalid input naming where it was given, on every route that takes one, never
// a 404 that suggests it might exist or a 503 from a store that cannot hold the key.
func TestBadWorkflowNamesAreInvalid(t *testing.T) {
	th := newTestHub(t)
	src := func(name string) string {
		return "name: " + name + "\nsteps:\n  - name: Ask\n    type: prompt\n    message: Go on?\n    options: [\"Yes\"]\n"
	}
	for _, name := range []string{strings.Repeat("a", 64), strings.Repeat("x", 5000), "🚀", "nightly-🚀", "Nightly", "-lead", "a.b", "a b"} {
		path := "/v1/workflows/" + url.PathEscape(name)
		for _, tc := range []struct {
			method, path, field string
			body                any
		}{
			{"GET", path, "path.name", nil},
			{"DELETE", path, "path.name", nil},
			{"PUT", path, "path.name", map[string]any{"source": src("x")}},
			{"POST", "/v1/workflows", "body.name", map[string]any{"name": name, "source": src("x")}},
			{"POST", "/v1/executions", "body.workflow", map[string]any{"workflow": name}},
		} {
			var p problemBody
			st := th.call(th.admin, tc.method, tc.path, tc.body, &p)
			if st != 422 || len(p.Errors) == 0 || p.Errors[0].Location != tc.field {
				t.Errorf("%s %s (%.20q): %d %q %+v, want 422 naming %s", tc.method, tc.path[:min(len(tc.path), 40)], name, st, p.Detail, p.Errors, tc.field)
			}
		}
	}
	// The longest name is accepted, and a good name that names no workflow is still a 404.
	long := strings.Repeat("a", 63)
	if st := th.call(th.admin, "PUT", "/v1/workflows/"+long, map[string]any{"source": src(long)}, nil); st != 200 {
		t.Errorf("PUT a 63-character name: %d, want 200", st)
	}
	if st := th.call(th.admin, "GET", "/v1/workflows/nightly", nil, nil); st != 404 {
		t.Errorf("GET an unknown but valid name: %d, want 404", st)
	}
}
