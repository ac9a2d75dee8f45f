package hub

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// registerTelemetry is what the hub says about itself to Prometheus. It takes a reader's token (the
// scrape config's authorization: bearer), as every read of the fleet does: the series name routes,
// store operations and counts a stranger has no business seeing.
func registerTelemetry(api huma.API, h *Hub) {
	huma.Register(api, huma.Operation{OperationID: "get-metrics", Method: http.MethodGet, Path: "/metrics",
		Summary: "The hub's own metrics, for Prometheus",
		Description: "Prometheus text format (OpenMetrics when asked): pulse_http_requests_total and pulse_http_request_duration_seconds by route and status, " +
			"pulse_store_operations_total and pulse_store_operation_duration_seconds by operation and outcome, pulse_polls_waiting, pulse_workflow_executions_active, " +
			"pulse_command_results_total by status, and the Go runtime's and the process's. Each series is this hub instance's: scrape every instance.",
		Responses: map[string]*huma.Response{"200": {Description: "The metrics.", Content: map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: "string"}}}}},
	}, func(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
		clearReadDeadline(ctx)
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			r, w := humago.Unwrap(hctx)
			reg := prometheus.NewRegistry() // a hub wired on no store has nothing to say
			if h.Telemetry != nil {
				reg = h.Telemetry.Registry
			}
			promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}).ServeHTTP(w, r)
		}}, nil
	})
}
