package site

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

const page = `<!doctype html><html><head><title>Pulse</title><script type="module" src="./assets/index-abc123.js"></script></head><body></body></html>`

func build() fstest.MapFS {
	return fstest.MapFS{
		"index.html":              {Data: []byte(page)},
		"assets/index-abc123.js":  {Data: []byte("console.log('pulse')")},
		"assets/index-def456.css": {Data: []byte("body{}")},
		"favicon.svg":             {Data: []byte("<svg/>")},
	}
}

// TestHandler: what a browser gets for each kind of path, with the caching that keeps a new build
// from mixing with an old one.
func TestHandler(t *testing.T) {
	h := NewHandler(build())
	for _, tc := range []struct {
		name, method, path string
		status             int
		cache              string
		body               string // a substring of the body
		base               bool   // the body carries <base href="/">
	}{
		{"root is index.html", "GET", "/", 200, "no-cache", "<title>Pulse</title>", false},
		{"index.html itself, not redirected", "GET", "/index.html", 200, "no-cache", "<title>Pulse</title>", false},
		{"HEAD of the root", "HEAD", "/", 200, "no-cache", "", false},
		{"hashed script is immutable", "GET", "/assets/index-abc123.js", 200, "public, max-age=31536000, immutable", "console.log", false},
		{"hashed style is immutable", "GET", "/assets/index-def456.css", 200, "public, max-age=31536000, immutable", "body{}", false},
		{"unhashed file is revalidated", "GET", "/favicon.svg", 200, "no-cache", "<svg/>", false},
		{"deep link falls back to index.html", "GET", "/fleet", 200, "no-cache", "<title>Pulse</title>", true},
		{"deeper link keeps assets at the root", "GET", "/agents/web-1/commands", 200, "no-cache", "./assets/index-abc123.js", true},
		{"directory is a deep link", "GET", "/assets", 200, "no-cache", "<title>Pulse</title>", true},
		{"missing asset is a 404, not HTML", "GET", "/assets/index-old999.js", 404, "", "", false},
		{"absent config.json is a 404 (same origin)", "GET", "/config.json", 404, "", "", false},
		{"dot segments stay inside the build", "GET", "/../../etc/passwd", 200, "no-cache", "<title>Pulse</title>", true},
		{"dot segments to a file stay inside the build", "GET", "/x/../../assets/index-abc123.js", 200, "public, max-age=31536000, immutable", "console.log", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("%s %s: status %d, want %d (body %q)", tc.method, tc.path, rec.Code, tc.status, rec.Body.String())
			}
			if got := rec.Header().Get("Cache-Control"); tc.cache != "" && got != tc.cache {
				t.Errorf("Cache-Control %q, want %q", got, tc.cache)
			}
			body := rec.Body.String()
			if !strings.Contains(body, tc.body) {
				t.Errorf("body %q does not contain %q", body, tc.body)
			}
			if got := strings.Contains(body, `<base href="/">`); got != tc.base {
				t.Errorf("<base> in body: %v, want %v (%q)", got, tc.base, body)
			}
			if tc.method == "HEAD" && body != "" {
				t.Errorf("HEAD answered a body: %q", body)
			}
		})
	}
}

// TestEmbedded: the binary's own build (the placeholder when go build ran alone) is served at the
// root, not cached, and a deep link gets the same page.
func TestEmbedded(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/fleet"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-cache" {
			t.Fatalf("GET %s: %d, Cache-Control %q", p, rec.Code, rec.Header().Get("Cache-Control"))
		}
		if !strings.Contains(rec.Body.String(), "<html") {
			t.Fatalf("GET %s: not a page: %q", p, rec.Body.String())
		}
		if !Built() && !strings.Contains(rec.Body.String(), "make build") {
			t.Fatalf("the placeholder does not say how to build the dashboard: %q", rec.Body.String())
		}
	}
}
