package hub

import (
	"net/http"
	"slices"
)

// corsPolicy lets pages from other origins call the API from a browser: the dashboard built once and
// served from a bucket or a CDN (config cors_origins, pulse serve --cors-origin). The API takes bearer
// tokens in the Authorization header, never cookies, so allowing an origin lets its pages use a token
// their user typed in, nothing more; credentials are not allowed.
type corsPolicy struct {
	any     bool
	origins []string
}

// newCORS is the policy for the configured origins (nil when there are none: no CORS headers at all).
func newCORS(origins []string) *corsPolicy {
	if len(origins) == 0 {
		return nil
	}
	return &corsPolicy{any: slices.Contains(origins, "*"), origins: origins}
}

// What a cross-origin page may send and read.
const (
	corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type, Last-Event-ID, If-Match, If-None-Match, X-Request-Id"
	// X-Pulse-*: where a command's output continues, whether it is complete, the agent's state
	// (GET /v1/commands/{id}/output/{agent}), which the dashboard's command page follows.
	corsExpose = "ETag, Link, Location, Retry-After, X-Request-Id, X-Pulse-Next-Chunk, X-Pulse-Complete, X-Pulse-State"
	corsMaxAge = "600"
)

// handle adds the CORS headers a request from an allowed origin gets, and answers a preflight itself.
// It reports whether it answered. A preflight from an origin not allowed is refused with a problem
// that says how to allow it; a simple request from one goes on without CORS headers, so the browser
// withholds the answer from the page.
func (c *corsPolicy) handle(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if c == nil || origin == "" {
		return false
	}
	w.Header().Add("Vary", "Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if !c.any && !slices.Contains(c.origins, origin) {
		if preflight {
			writeProblem(w, http.StatusForbidden, "pages from "+origin+" may not call this hub from a browser: add the origin to cors_origins in the hub's config (or pulse serve --cors-origin "+origin+")", r.URL.Path)
			return true
		}
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	if !preflight {
		w.Header().Set("Access-Control-Expose-Headers", corsExpose)
		return false
	}
	w.Header().Add("Vary", "Access-Control-Request-Method")
	w.Header().Add("Vary", "Access-Control-Request-Headers")
	w.Header().Set("Access-Control-Allow-Methods", corsMethods)
	w.Header().Set("Access-Control-Allow-Headers", corsHeaders)
	w.Header().Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}
