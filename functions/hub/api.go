package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/alert"
	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/hub/alerts"
	"github.com/pulsehq/pulse/functions/hub/artifacts"
	"github.com/pulsehq/pulse/functions/hub/commands"
	"github.com/pulsehq/pulse/functions/hub/delivery"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/fleet"
	"github.com/pulsehq/pulse/functions/hub/metrics"
	"github.com/pulsehq/pulse/functions/hub/notifications"
	"github.com/pulsehq/pulse/functions/hub/plans"
	"github.com/pulsehq/pulse/functions/hub/resources"
	"github.com/pulsehq/pulse/functions/hub/telemetry"
	"github.com/pulsehq/pulse/functions/hub/workflows"
	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/policy"
)

// NewAPI registers every operation of the Pulse API on mux and returns the huma API, whose OpenAPI
// document is the contract for the dashboard, the CLI and generated clients.
func NewAPI(mux *http.ServeMux, h *Hub) huma.API {
	cfg := huma.DefaultConfig("Pulse", h.Version)
	cfg.Info.Description = "Pulse fleet manager hub API. Errors are RFC 9457 problem details."
	cfg.Info.License = &huma.License{Name: "MIT", Identifier: "MIT"}
	cfg.DocsRenderer = huma.DocsRendererScalar
	cfg.Components.Schemas = huma.NewMapRegistry("#/components/schemas/", schemaName)
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An operator API token (pulse init prints the first one)."},
		"agentSignature": {Type: "apiKey", In: "header", Name: "Signature",
			Description: "RFC 9421 HTTP Message Signature by the agent's ed25519 key (keyid = agent id) over @method, @target-uri, content-digest and created."},
	}
	api := humago.New(mux, cfg)
	registerHealth(api, h)
	registerEnrollment(h.enrollGroup(api), h)
	registerAgentProtocol(h.agentGroup(api), h)
	registerAgentPlans(h.agentGroup(api), h)
	registerAgentArtifacts(h.agentGroup(api), h)
	registerAgentMetrics(h.agentGroup(api), h)
	registerAgentResources(h.agentGroup(api), h)
	registerFleet(h.operatorGroup(api, "Agents"), h)
	registerCommands(h.operatorGroup(api, "Commands"), h)
	registerAccess(h.operatorGroup(api, "Access"), h)
	registerAudit(h.operatorGroup(api, "Audit"), h)
	registerWorkflows(h.operatorGroup(api, "Workflows"), h)
	registerPlans(h.operatorGroup(api, "Plans"), h)
	registerRollouts(h.operatorGroup(api, "Plans"), h)
	registerProposals(h.operatorGroup(api, "Plans"), h)
	registerTelemetry(h.operatorGroup(api, "Telemetry"), h)
	registerAlerts(h.operatorGroup(api, "Alerts"), h)
	registerNotifications(h.operatorGroup(api, "Notifications"), h)
	registerPrometheus(h.operatorGroup(api, "Telemetry"), h)
	registerArtifacts(h.operatorGroup(api, "Artifacts"), h)
	registerMetrics(h.operatorGroup(api, "Metrics"), h)
	registerResources(h.operatorGroup(api, "Inventory"), h)
	return api
}

// schemaNames keeps the OpenAPI names of room types distinct and telling: the rooms' Go names
// (commands.Status, workflows.Version) are short because the package says the rest.
var schemaNames = map[reflect.Type]string{
	reflect.TypeFor[commands.Record]():          "CommandRecord",
	reflect.TypeFor[commands.Status]():          "CommandStatus",
	reflect.TypeFor[commands.Spec]():            "CreateCommandBody",
	reflect.TypeFor[commands.Summary]():         "CommandSummary",
	reflect.TypeFor[commands.Page]():            "CommandPage",
	reflect.TypeFor[commands.CommandUpdate]():   "CommandUpdate",
	reflect.TypeFor[workflows.Version]():        "WorkflowVersion",
	reflect.TypeFor[workflows.Summary]():        "WorkflowSummary",
	reflect.TypeFor[workflows.View]():           "ExecutionView",
	reflect.TypeFor[workflows.ExecutionPage]():  "ExecutionPage",
	reflect.TypeFor[fleet.Retirement]():         "AgentRetirement",
	reflect.TypeFor[delivery.RejectionRecord](): "RejectionRecord",
	reflect.TypeFor[plans.Version]():            "PlanVersion",
	reflect.TypeFor[plans.Applied]():            "PlanApplied",
	reflect.TypeFor[plans.Summary]():            "PlanSummary",
	reflect.TypeFor[plans.View]():               "PlanStatusView",
	reflect.TypeFor[plans.AgentStatus]():        "PlanAgentStatus",
	reflect.TypeFor[plans.UnitState]():          "PlanUnitState",
	reflect.TypeFor[artifacts.State]():          "ArtifactState",
	reflect.TypeFor[alert.Rules]():              "AlertRuleSet",
	reflect.TypeFor[alert.Rule]():               "AlertRule",
	reflect.TypeFor[alert.Quiet]():              "AlertQuietHours",
	reflect.TypeFor[alerts.Version]():           "AlertRulesVersion",
	reflect.TypeFor[notifications.View]():       "Channel",
	reflect.TypeFor[notifications.Entry]():      "NotificationDelivery",
	reflect.TypeFor[notifications.Attempt]():    "NotificationAttempt",
	reflect.TypeFor[notify.Message]():           "NotificationMessage",
	reflect.TypeFor[artifacts.Summary]():        "ArtifactSummary",
	reflect.TypeFor[artifacts.Pushed]():         "ArtifactPushed",
	reflect.TypeFor[metrics.Result]():           "MetricsResult",
	reflect.TypeFor[metrics.Sample]():           "MetricSample",
	reflect.TypeFor[resources.Item]():           "ResourceItem",
	reflect.TypeFor[resources.Page]():           "ResourcePage",
	reflect.TypeFor[resources.SourceError]():    "ResourceSourceError",
}

func schemaName(t reflect.Type, hint string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n, ok := schemaNames[t]; ok {
		return n
	}
	return huma.DefaultSchemaNamer(t, hint)
}

// operatorGroup is where an area's operator operations are registered: every one needs an operator
// (token, OIDC or forward auth), is rate limited per principal, and is decided by the policy with
// the operation id as the action. An operation whose decision needs more than "who does what" (the
// command and its targets) says so with Metadata decide=service and is decided by its room; one
// that shares another's action names it with Metadata action=….
func (h *Hub) operatorGroup(api huma.API, tag string) *huma.Group {
	g := huma.NewGroup(api)
	g.UseSimpleModifier(func(op *huma.Operation) {
		op.Security = []map[string][]string{{"bearer": {}}}
		op.Tags = []string{tag}
		op.Errors = withStatus(op.Errors, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests)
	})
	g.UseMiddleware(h.operatorAuth(api), h.policyGate(api))
	return g
}

// agentGroup is where the agent protocol is registered: every request is signed by the agent named in
// the path (RFC 9421), and rate limited per agent.
func (h *Hub) agentGroup(api huma.API) *huma.Group {
	g := huma.NewGroup(api)
	g.UseSimpleModifier(func(op *huma.Operation) {
		op.Tags = []string{"Agent protocol"}
		op.Security = []map[string][]string{{"agentSignature": {}}}
		op.Errors = withStatus(op.Errors, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests)
	})
	g.UseMiddleware(h.agentAuth(api))
	return g
}

// enrollGroup is where enrollment is registered: an agent without a key yet, so no signature; it is
// limited per client address instead, so an endpoint without authentication is no free write amplifier.
func (h *Hub) enrollGroup(api huma.API) *huma.Group {
	g := huma.NewGroup(api)
	g.UseSimpleModifier(func(op *huma.Operation) {
		op.Tags = []string{"Agent protocol"}
		op.Errors = withStatus(op.Errors, http.StatusTooManyRequests)
	})
	g.UseMiddleware(h.enrollLimit(api))
	return g
}

// withStatus adds the statuses a group's middlewares may answer to an operation's documented errors.
func withStatus(have []int, add ...int) []int {
	for _, a := range add {
		if !slices.Contains(have, a) {
			have = append(have, a)
		}
	}
	return have
}

// actionOf is the policy action of an operator operation: its id, unless Metadata says otherwise.
func actionOf(op *huma.Operation) (action string, gated bool) {
	if op.Metadata["decide"] == "service" {
		return "", false
	}
	if a, ok := op.Metadata["action"].(string); ok {
		return a, true
	}
	return op.OperationID, true
}

// operatorAuth establishes who an operator request acts for (the access room decides how). A source
// address whose authentications keep failing is refused first, before any credential is looked up.
func (h *Hub) operatorAuth(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		r, _ := humago.Unwrap(ctx)
		src := h.Access.Source(r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
		if wait := h.Access.AuthWait(src); wait > 0 {
			tooMany(api, ctx, wait, "too many failed authentications from "+src)
			return
		}
		p, err := h.Access.Authenticate(ctx.Context(), access.Credentials{
			Authorization: ctx.Header("Authorization"),
			RemoteUser:    ctx.Header("Remote-User"), RemoteName: ctx.Header("Remote-Name"),
			RemoteEmail: ctx.Header("Remote-Email"), RemoteGroups: ctx.Header("Remote-Groups"),
			RemoteAddr: r.RemoteAddr, Source: src,
		})
		if err != nil {
			h.writeErr(api, ctx, err)
			return
		}
		if h.throttle(api, ctx, "principal "+p.ID, access.OperatorRate) {
			return
		}
		next(huma.WithContext(ctx, domain.WithPrincipal(ctx.Context(), p)))
	}
}

// policyGate decides the operation's action before the handler runs.
func (h *Hub) policyGate(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		action, gated := actionOf(ctx.Operation())
		if gated {
			if _, err := h.Access.Decide(ctx.Context(), policy.Input{Action: action}); err != nil {
				h.writeErr(api, ctx, err)
				return
			}
		}
		next(ctx)
	}
}

// enrollLimit slows down enrollment attempts per client address.
func (h *Hub) enrollLimit(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		r, _ := humago.Unwrap(ctx)
		host := r.RemoteAddr
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			host = ap.Addr().String()
		}
		if h.throttle(api, ctx, "address "+host, access.EnrollRate) {
			return
		}
		next(ctx)
	}
}

// agentAuth requires an RFC 9421 signature by the agent named in the path.
func (h *Hub) agentAuth(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		r, _ := humago.Unwrap(ctx)
		ver, err := h.verifier.Verify(r)
		if err != nil {
			if isNotFound(err) {
				err = fmt.Errorf("unknown agent: %w", err)
			}
			huma.WriteErr(api, ctx, http.StatusUnauthorized, "agent signature refused: "+err.Error())
			return
		}
		if id := ctx.Param("id"); ver.KeyID != id {
			huma.WriteErr(api, ctx, http.StatusForbidden, fmt.Sprintf("request signed by agent %s cannot act for agent %s", ver.KeyID, id))
			return
		}
		if h.throttle(api, ctx, "agent "+ver.KeyID, access.AgentRate) {
			return
		}
		next(huma.WithContext(ctx, domain.WithAgent(ctx.Context(), ver.KeyID)))
	}
}

// throttle answers 429 with Retry-After when key is over its rate.
func (h *Hub) throttle(api huma.API, ctx huma.Context, key string, rate access.Rate) bool {
	ok, wait := h.Access.Limits.Allow(key, rate)
	if ok {
		return false
	}
	tooMany(api, ctx, wait, "too many requests from "+key)
	return true
}

// tooMany answers 429 with a Retry-After header in whole seconds (rounded up) and a problem that says
// the same.
func tooMany(api huma.API, ctx huma.Context, wait time.Duration, why string) {
	secs := int((wait + time.Second - 1) / time.Second)
	ctx.SetHeader("Retry-After", strconv.Itoa(secs))
	huma.WriteErr(api, ctx, http.StatusTooManyRequests, fmt.Sprintf("%s; retry in %ds", why, secs))
}

// problem maps an error of a room to an RFC 9457 problem, in this one place. Anything that is not a
// domain error is an infrastructure failure: the store (logged with its cause, 503 "try again"), or the
// request's own end (499).
func (h *Hub) problem(ctx context.Context, err error) *huma.ErrorModel {
	var de *domain.Error
	if errors.As(err, &de) {
		var details []error
		for _, d := range de.Details {
			details = append(details, &huma.ErrorDetail{Location: d.Location, Message: d.Message})
		}
		if de.Field != "" && len(details) == 0 {
			details = append(details, &huma.ErrorDetail{Location: de.Field, Message: de.Msg})
		}
		return problem(statusOf(de.Kind), de.Msg, details...)
	}
	if ctx.Err() != nil {
		return problem(499, "request cancelled")
	}
	h.Log.Error("store operation failed", "err", err)
	return problem(http.StatusServiceUnavailable, "store unavailable, try again: "+err.Error())
}

// problem is huma's problem for a status, as the concrete type (huma.NewError returns it).
func problem(status int, msg string, details ...error) *huma.ErrorModel {
	return huma.NewError(status, msg, details...).(*huma.ErrorModel)
}

func statusOf(k domain.Kind) int {
	switch k {
	case domain.KindInvalid:
		return http.StatusUnprocessableEntity
	case domain.KindNotFound:
		return http.StatusNotFound
	case domain.KindConflict:
		return http.StatusConflict
	case domain.KindDenied:
		return http.StatusForbidden
	case domain.KindUnauthenticated:
		return http.StatusUnauthorized
	case domain.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

// writeErr writes an error from a middleware as a problem.
func (h *Hub) writeErr(api huma.API, ctx huma.Context, err error) {
	p := h.problem(ctx.Context(), err)
	details := make([]error, len(p.Errors))
	for i, d := range p.Errors {
		details[i] = d
	}
	huma.WriteErr(api, ctx, p.Status, p.Detail, details...)
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

type respCtlKey struct{}

// register is huma.Register with what every handler needs: domain errors mapped to problems, and one
// fix: huma bounds the body read with a
// read deadline (5s) and leaves it in place, so a handler that runs longer (a held poll, a slow store)
// lets net/http's background read hit the deadline, which cancels the connection's context and with it
// every later request on that keep-alive connection. Each handler starts by clearing the deadline; the
// body has been read by then.
func register[I, O any](api huma.API, h *Hub, op huma.Operation, fn func(context.Context, *I) (*O, error)) {
	huma.Register(api, op, func(ctx context.Context, in *I) (*O, error) {
		clearReadDeadline(ctx)
		out, err := fn(ctx, in)
		if err != nil {
			return nil, h.problem(ctx, err)
		}
		return out, nil
	})
}

func clearReadDeadline(ctx context.Context) {
	if rc, ok := ctx.Value(respCtlKey{}).(*http.ResponseController); ok {
		_ = rc.SetReadDeadline(time.Time{})
	}
}

// Handler wraps the mux with what every request gets: a request id, a structured access log line, and
// problem-details bodies for requests that match no operation (the mux alone answers those in plain
// text). Hub.Handler adds the request metrics.
func Handler(mux *http.ServeMux, log *slog.Logger) http.Handler {
	return handler(mux, log, nil, nil, nil)
}

// Handler is the package's Handler for this hub, with every request counted and timed in its
// telemetry by route (GET /metrics).
func (h *Hub) Handler(mux *http.ServeMux) http.Handler {
	return handler(mux, h.Log, h.Telemetry, nil, h.cors)
}

// HandlerWithSite is Handler with the dashboard beside the API: site answers the GET and HEAD
// requests that match no operation and lie outside the API's own paths (see sitePath), so the
// dashboard can be served at / and deep links into it work, while a mistyped API path still gets
// the hub's problem-details 404 or 405. Site requests are counted under the route "site".
func (h *Hub) HandlerWithSite(mux *http.ServeMux, site http.Handler) http.Handler {
	return handler(mux, h.Log, h.Telemetry, site, h.cors)
}

// apiPrefixes are the paths that belong to the API (operations, probes, metrics, its documents and
// docs) and are never handed to the dashboard.
var apiPrefixes = []string{"/v1/", "/metrics", "/healthz", "/readyz", "/openapi", "/docs", "/schemas/"}

// sitePath reports whether an unmatched request is the dashboard's to answer.
func sitePath(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.URL.Path == "/v1" {
		return false
	}
	for _, p := range apiPrefixes {
		if strings.HasPrefix(r.URL.Path, p) {
			return false
		}
	}
	return true
}

func handler(mux *http.ServeMux, log *slog.Logger, tm *telemetry.Metrics, site http.Handler, cors *corsPolicy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = uuid.Must(uuid.NewV7()).String()
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rctx := context.WithValue(r.Context(), respCtlKey{}, http.NewResponseController(w))
		rctx = context.WithValue(rctx, hostKey{}, reached(r))
		r = r.WithContext(domain.WithRequestID(rctx, id))
		_, pattern := mux.Handler(r)
		if cors.handle(sw, r) {
			pattern = "cors-preflight"
		} else if pattern == "" && site != nil && sitePath(r) {
			pattern = "site"
			site.ServeHTTP(sw, r)
		} else if pattern == "" {
			unmatched(sw, r, mux)
		} else {
			mux.ServeHTTP(sw, r)
		}
		tm.ObserveRequest(pattern, r.Method, sw.status, time.Since(start))
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
