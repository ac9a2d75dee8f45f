package hub_test

import (
	"io"
	"net/http"
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

