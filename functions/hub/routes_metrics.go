package hub

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/metrics"
)

// AgentMetricsUploadInput is an agent's batch of samples, as sent: gzip-compressed JSON of a
// wire.MetricBatch (or plain JSON).
type AgentMetricsUploadInput struct {
	ID              string `path:"id"`
	ContentEncoding string `header:"Content-Encoding" doc:"gzip (the agent's way), or absent for plain JSON."`
	RawBody         []byte `contentType:"application/json"`
}

// AgentMetricsQueryInput is a range query of one agent's series.
type AgentMetricsQueryInput struct {
	ID    string   `path:"id" doc:"The agent's id or name."`
	Name  string   `query:"name" required:"true" doc:"The metric's name, e.g. node_cpu_seconds_total (GET /v1/agents/{id}/metrics/names lists them)."`
	From  string   `query:"from" doc:"Start: RFC 3339, or a duration before now (6h, 30m, 7d). Default: an hour before to."`
	To    string   `query:"to" doc:"End: RFC 3339, or a duration before now. Default: now."`
	Step  string   `query:"step" doc:"Bucket width (10s, 1m, 1h, 1d). Default: about 240 points over the range. Raised to the tier's resolution."`
	Label []string `query:"label" doc:"name=value a series must have, e.g. mountpoint=/ (repeatable)."`
	Live  bool     `query:"live" doc:"Someone watches live: for the next 2 minutes the agent uploads its samples every 10 s instead of every batch interval (5 minutes by default), so the next queries show them. Ask again to go on."`
}

// Live watching: what a query with live=true asks of the agent, and for how long.
const (
	liveEvery = 10 * time.Second
	liveFor   = 2 * time.Minute
)

// AgentMetricsOutput is a range query's answer.
type AgentMetricsOutput struct {
	Body *metrics.Result
}

// AgentMetricNamesInput names the agent.
type AgentMetricNamesInput struct {
	ID string `path:"id" doc:"The agent's id or name."`
}

// AgentMetricNamesOutput lists an agent's series with their newest sample.
type AgentMetricNamesOutput struct {
	Body struct {
		Agent  string           `json:"agent"`
		Series []metrics.Sample `json:"series"`
	}
}

// registerAgentMetrics is the agent's side of the metrics room: uploading batches.
func registerAgentMetrics(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "agent-metrics", Method: http.MethodPost, Path: "/v1/agents/{id}/metrics",
		Summary: "Upload a batch of metric samples",
		Description: "The body is the JSON of a MetricBatch (agent/wire), gzip-compressed with Content-Encoding: gzip (plain JSON is accepted too), at most 4 MiB as sent and 8 MiB decompressed. " +
			"The batch is stored write-once under the agent, hour and seq: the same batch uploaded again is answered 204 and stored once; another batch under a seq already used is a 409. " +
			"422 says why a batch was refused (a bad name, points out of order, ended more than the raw retention ago …): drop it, it will never be accepted. 413: split it.",
		DefaultStatus: http.StatusNoContent, MaxBodyBytes: metrics.MaxCompressedBatch, SkipValidateBody: true, Errors: []int{409, 413, 422}},
		func(ctx context.Context, in *AgentMetricsUploadInput) (*struct{}, error) {
			agent := domain.AgentFrom(ctx)
			b, err := h.Metrics.Ingest(ctx, agent, in.ContentEncoding, in.RawBody)
			if err != nil {
				return nil, err
			}
			// The batch is stored; its alerts are decided before it is answered, so a failure to
			// record one makes the agent upload the batch again (stored once) and nothing is lost.
			return nil, h.Alerts.ObserveBatch(ctx, agent, b)
		})
}

// registerMetrics is the operator side of the metrics room: range queries and the series an agent has.
func registerMetrics(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "get-agent-metrics", Method: http.MethodGet, Path: "/v1/agents/{id}/metrics",
		Summary: "An agent's metric history",
		Description: "The series named name (and having every label given) over [from, to), in buckets of step with avg, min, max, count and last. " +
			"The answer comes from the finest tier that still covers from and whose resolution is at most step: raw (24 h), 1m (7 d), 1h (90 d), 1d (2 years), and says which.",
		Errors: []int{404, 422}},
		func(ctx context.Context, in *AgentMetricsQueryInput) (*AgentMetricsOutput, error) {
			t, err := h.Fleet.Target(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			now := h.Metrics.Now()
			if in.Live {
				h.Delivery.Watch(ctx, t.Ident.ID, liveEvery, time.Now().Add(liveFor))
			}
			q := metrics.Query{Agent: t.Ident.ID, Name: in.Name}
			if q.From, err = parseWhen("query.from", in.From, now); err != nil {
				return nil, err
			}
			if q.To, err = parseWhen("query.to", in.To, now); err != nil {
				return nil, err
			}
			if in.Step != "" {
				if q.Step, err = parseSpan(in.Step); err != nil || q.Step <= 0 {
					return nil, &domain.Error{Kind: domain.KindInvalid, Field: "query.step", Msg: "step " + in.Step + ": a duration such as 10s, 1m, 1h or 1d"}
				}
			}
			if q.Labels, err = metrics.ParseLabels(in.Label); err != nil {
				return nil, err
			}
			r, err := h.Metrics.Range(ctx, q)
			if err != nil {
				return nil, err
			}
			return &AgentMetricsOutput{Body: r}, nil
		})
	register(api, h, huma.Operation{OperationID: "list-agent-metrics", Method: http.MethodGet, Path: "/v1/agents/{id}/metrics/names",
		Summary:     "The series an agent reports",
		Description: "Every series (name, kind, labels) of the newest hour in which the agent uploaded samples, with its newest sample.",
		Errors:      []int{404, 422}},
		func(ctx context.Context, in *AgentMetricNamesInput) (*AgentMetricNamesOutput, error) {
			t, err := h.Fleet.Target(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			s, err := h.Metrics.Latest(ctx, t.Ident.ID)
			if err != nil {
				return nil, err
			}
			out := &AgentMetricNamesOutput{}
			out.Body.Agent, out.Body.Series = t.Ident.ID, s
			return out, nil
		})
}

// parseWhen reads a time: RFC 3339, or a duration before now; empty is the zero time (the default).
func parseWhen(field, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := parseSpan(strings.TrimPrefix(s, "-")); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, &domain.Error{Kind: domain.KindInvalid, Field: field, Msg: s + ": RFC 3339 (2026-12-01T10:00:00Z) or a duration before now (6h, 7d)"}
}

// parseSpan is time.ParseDuration that also knows days (7d).
func parseSpan(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := time.ParseDuration(n + "h")
		return d * 24, err
	}
	return time.ParseDuration(s)
}
