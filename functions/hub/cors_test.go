package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
)

// TestCORS: with cors_origins set, a preflight from an allowed origin is answered with the methods
// and headers a dashboard sends (Authorization, Last-Event-ID); its requests get the origin back and
// the headers it may read; a preflight from another origin is refused with a problem that says how to
// allow it, and that origin's requests get no CORS headers (the browser withholds the answer). A hub
// with no origins configured adds no CORS headers at all.
func TestCORS(t *testing.T) {
	start := func(origins []string) (*httptest.Server, string) {
		settings := config.Defaults()
		settings.Store = "file:" + t.TempDir()
		settings.CORSOrigins = origins
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		ctx := context.Background()
		h, err := hub.New(ctx, hub.Config{Settings: settings, Keys: &hubkey.Keys{Current: priv}, PollHold: time.Second,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		mux := http.NewServeMux()
		hub.NewAPI(mux, h)
		srv := httptest.NewServer(h.Handler(mux))
		t.Cleanup(srv.Close)
		admin, err := hub.CreateAPIToken(ctx, h.Store, "root", []string{"admin"}, 0, "test")
		if err != nil {
			t.Fatal(err)
		}
		return srv, admin
	}
	do := func(srv *httptest.Server, method, path, origin, token string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	const dash = "https://dash.example.com"
	srv, admin := start([]string{dash})
	pre := map[string]string{"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization, last-event-id"}

	resp := do(srv, "OPTIONS", "/v1/agents", dash, "", pre)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != dash ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight from the dashboard: %d %v", resp.StatusCode, resp.Header)
	}
	resp = do(srv, "GET", "/v1/agents", dash, admin, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != dash || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") ||
		!strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Fatalf("a request from the dashboard: %d %v", resp.StatusCode, resp.Header)
	}
	// The command page follows output by the output route's headers: the page must be able to read them.
	for _, h := range []string{"X-Pulse-Next-Chunk", "X-Pulse-Complete", "X-Pulse-State"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), h) {
			t.Errorf("%s is not exposed to the dashboard: %q", h, resp.Header.Get("Access-Control-Expose-Headers"))
		}
	}
	resp = do(srv, "GET", "/v1/agents", dash, "", nil)
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != dash {
		t.Fatalf("a refusal must reach the page too, so it can say why: %d %v", resp.StatusCode, resp.Header)
	}

	req, _ := http.NewRequest("OPTIONS", srv.URL+"/v1/agents", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var problem struct{ Detail string }
	json.NewDecoder(r.Body).Decode(&problem)
	r.Body.Close()
	if r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(problem.Detail, "--cors-origin https://evil.example") {
		t.Fatalf("preflight from another origin: %d %v %+v", r.StatusCode, r.Header, problem)
	}
	if resp := do(srv, "GET", "/v1/agents", "https://evil.example", admin, nil); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin's request got %v", resp.Header)
	}

	none, admin2 := start(nil)
	if resp := do(none, "GET", "/v1/agents", dash, admin2, nil); resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Vary") != "" {
		t.Fatalf("no origins configured: %d %v", resp.StatusCode, resp.Header)
	}
	any, admin3 := start([]string{"*"})
	if resp := do(any, "GET", "/v1/agents", "http://localhost:5173", admin3, nil); resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Fatalf("* configured: %v", resp.Header)
	}
}
