package hub_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAuthorizationSchemeIsCaseInsensitive: RFC 9110 §11.1 makes the auth scheme case-insensitive, so
// "bearer", "BEARER" and "Bearer" all carry the token; a scheme that is not bearer is still refused.
func TestAuthorizationSchemeIsCaseInsensitive(t *testing.T) {
	th := newTestHub(t)
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"Bearer " + th.admin, 200},
		{"bearer " + th.admin, 200},
		{"BEARER " + th.admin, 200},
		{"bEaReR   " + th.admin, 200},
		{"Basic " + th.admin, 401},
		{"Bearer", 401},
		{"Bearer" + th.admin, 401},
	} {
		req, _ := http.NewRequest("GET", th.url+"/v1/agents", nil)
		req.Header.Set("Authorization", tc.header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization: %.12s…: %d, want %d", tc.header, resp.StatusCode, tc.want)
		}
	}
}

// TestDecideRoutesHaveTheirOwnActions: approving and denying are separate policy actions, so a policy
// can let a group deny (stop) work it may not approve; the denial names the action that was refused.
func TestDecideRoutesHaveTheirOwnActions(t *testing.T) {
	th := newTestHub(t)
	op := th.token("ops", "operator")
	for _, tc := range []struct{ path, action string }{
		{"/v1/commands/c-1/approve", "approve-command"},
		{"/v1/commands/c-1/deny", "deny-command"},
	} {
		var p struct{ Detail string }
		if st := th.call(op, "POST", tc.path, map[string]any{}, &p); st != 403 || !strings.Contains(p.Detail, tc.action+" is reserved to admins") {
			t.Errorf("POST %s by an operator: %d %q, want 403 naming %s", tc.path, st, p.Detail, tc.action)
		}
	}
}
