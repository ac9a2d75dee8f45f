// Package hub is the stateless HTTP side of Pulse: the huma v2 API that every entrypoint (the local
// `pulse serve`, a cloud function, the OpenAPI dump) builds through NewAPI, so they all serve exactly the
// operations and the document that the code defines.
package hub

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/google/uuid"

	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/policy"
)

// Hub holds what handlers need. It keeps no state that matters between requests: everything lives in
// the store, so any number of hubs can serve the same bucket.
type Hub struct {
	Store   store.Store
	Ready   *Readiness
	Log     *slog.Logger
	Version string
	// Keys signs work for agents.
	Keys *hubkey.Keys
	// PollHold is how long a poll waits for work (default 30s; short for cloud functions).
	PollHold time.Duration
	// HeartbeatInterval is what agents are configured with; three missed beats mean offline.
	HeartbeatInterval time.Duration
	// PublicScheme is "https" when a TLS-terminating proxy sits in front, so agent signatures over
	// the URL verify.
	PublicScheme string
	// TrustedProxies may set forward-auth identity headers (Remote-User, Remote-Groups, …).
	TrustedProxies []netip.Prefix
	// OIDC verifies bearer tokens from an identity provider; nil when not configured.
	OIDC *OIDCVerifier
	// Policy decides every operator action.
	Policy *policy.Engine

	verifier    *httpsig.Verifier
	tokensCache tokenCache
	identities  onceCache[AgentIdentity]
	commands    onceCache[CommandRecord]
	executions  onceCache[ExecutionRecord]
	notify      notifier
	draining    chan struct{}
	limits      limits
	hatchMu     sync.Mutex
	hatch       map[string]bool // last hatch state seen per agent, to audit changes
	drainOnce   sync.Once
}

// Drain makes waiting polls return at once, for a quick graceful shutdown.
func (h *Hub) Drain() {
	h.drainOnce.Do(func() { close(h.draining) })
}

// NewAPI registers every operation of the Pulse API on mux and returns the huma API, whose OpenAPI
// document is the contract for the dashboard, the CLI and generated clients. h may carry a nil store when
// the API is built only to print its document.
func NewAPI(mux *http.ServeMux, h *Hub) huma.API {
	cfg := huma.DefaultConfig("Pulse", h.Version)
	cfg.Info.Description = "Pulse fleet manager hub API. Errors are RFC 9457 problem details."
	cfg.Info.License = &huma.License{Name: "MIT", Identifier: "MIT"}
	cfg.DocsRenderer = huma.DocsRendererScalar
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An operator API token (pulse init prints the first one)."},
		"agentSignature": {Type: "apiKey", In: "header", Name: "Signature",
			Description: "RFC 9421 HTTP Message Signature by the agent's ed25519 key (keyid = agent id) over @method, @target-uri, content-digest and created."},
	}
	h.draining = make(chan struct{})
	h.verifier = h.newVerifier()
	api := humago.New(mux, cfg)
	registerHealth(api, h)
	registerAgentAPI(api, h)
	registerOperatorAPI(api, h)
	registerGovernanceAPI(api, h)
	registerWorkflowAPI(api, h)
	registerExecutionAPI(api, h)
	return api
}

// Handler wraps the mux with what every request gets: a request id, a structured access log line, and
// problem-details bodies for requests that match no operation (the mux alone answers those in plain
// text).
func Handler(mux *http.ServeMux, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = uuid.Must(uuid.NewV7()).String()
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rctx := context.WithValue(r.Context(), respCtlKey{}, http.NewResponseController(w))
		r = r.WithContext(context.WithValue(rctx, requestIDKey{}, id))
		if _, pattern := mux.Handler(r); pattern == "" {
			unmatched(sw, r, mux)
		} else {
			mux.ServeHTTP(sw, r)
		}
		level := slog.LevelInfo
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			level = slog.LevelDebug // probes every few seconds would drown the log
		}
		log.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
			slog.Duration("duration", time.Since(start)), slog.String("request_id", id), slog.String("remote", r.RemoteAddr))
	})
}

// unmatched answers a request no operation matched with the mux's own status (404, or 405 with its
// Allow header) as a problem-details body.
func unmatched(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	probe := &headerCapture{header: http.Header{}}
	mux.ServeHTTP(probe, r)
	if allow := probe.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	status := probe.status
	detail := "No operation at " + r.URL.Path + "; see /docs or /openapi.json for the API."
	if status == http.StatusMethodNotAllowed {
		detail = r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + probe.header.Get("Allow") + "."
	} else {
		status = http.StatusNotFound
	}
	writeProblem(w, status, detail, r.URL.Path)
}

func writeProblem(w http.ResponseWriter, status int, detail, instance string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(&huma.ErrorModel{
		Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Instance: instance,
	})
}

type respCtlKey struct{}

// register is huma.Register with one fix applied to every handler: huma bounds the body read with a read
// deadline (5s) and leaves it in place, so a handler that runs longer (a held poll, a slow store) lets
// net/http's background read hit the deadline, which cancels the connection's context and with it every
// later request on that keep-alive connection. Each handler starts by clearing the deadline; the body
// has been read by then.
func register[I, O any](api huma.API, op huma.Operation, fn func(context.Context, *I) (*O, error)) {
	huma.Register(api, op, func(ctx context.Context, in *I) (*O, error) {
		if rc, ok := ctx.Value(respCtlKey{}).(*http.ResponseController); ok {
			_ = rc.SetReadDeadline(time.Time{})
		}
		return fn(ctx, in)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer (flushing for streams).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type headerCapture struct {
	header http.Header
	status int
}

func (c *headerCapture) Header() http.Header         { return c.header }
func (c *headerCapture) Write(b []byte) (int, error) { return len(b), nil }
func (c *headerCapture) WriteHeader(code int)        { c.status = code }

// Serve runs srv on ln until ctx is cancelled, then shuts it down gracefully: in-flight requests get up
// to grace to finish (long polls included) before connections are closed. The listener is opened by the
// caller so that "address in use" is reported before anything else starts.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, log *slog.Logger, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return err
	}
	return nil
}
