package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
)

// TestHandlerWithSite: the dashboard answers what no operation does, and only that; the API's own
// paths keep their answers, their problem-details 404s and their 405s.
func TestHandlerWithSite(t *testing.T) {
	settings := config.Defaults()
	settings.Store = "file:" + t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := hub.New(ctx, hub.Config{Settings: settings, Keys: &hubkey.Keys{Current: priv},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mux := http.NewServeMux()
	hub.NewAPI(mux, h)
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "dashboard at "+r.URL.Path)
	})
	srv := httptest.NewServer(h.HandlerWithSite(mux, site))
	defer srv.Close()

	for _, tc := range []struct {
		method, path string
		status       int
		body         string // a substring of the answer
	}{
		{"GET", "/", 200, "dashboard at /"},
		{"GET", "/fleet", 200, "dashboard at /fleet"},
		{"GET", "/agents/web-1", 200, "dashboard at /agents/web-1"},
		{"HEAD", "/fleet", 200, ""},
		{"GET", "/healthz", 200, `"status":"ok"`},
		{"GET", "/openapi.yaml", 200, "openapi:"},
		{"GET", "/v1/agents", 401, "application/problem+json"},
		{"GET", "/v1/no-such-thing", 404, "No operation at /v1/no-such-thing"},
		{"GET", "/v1", 404, "No operation at /v1"},
		{"GET", "/openapi-nope", 404, "No operation at /openapi-nope"},
		{"GET", "/v1/agents/x/labels", 405, "GET is not allowed on /v1/agents/x/labels"},
		{"POST", "/fleet", 404, "No operation at /fleet"},
		{"DELETE", "/", 404, "No operation at /"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			got := resp.Header.Get("Content-Type") + " " + string(b)
			if resp.StatusCode != tc.status || !strings.Contains(got, tc.body) {
				t.Fatalf("%s %s: %d %q, want %d with %q", tc.method, tc.path, resp.StatusCode, got, tc.status, tc.body)
			}
			bySite := resp.Header.Get("Content-Type") == "text/html"
			if want := strings.HasPrefix(tc.body, "dashboard") || tc.method == "HEAD"; bySite != want {
				t.Fatalf("%s %s: answered by the dashboard: %v, want %v (%q)", tc.method, tc.path, bySite, want, got)
			}
		})
	}
}
