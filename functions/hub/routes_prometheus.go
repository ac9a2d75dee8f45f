package hub

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehq/pulse/functions/hub/metrics"
)

// Agents only dial out, so Prometheus cannot scrape them: the hub exposes the newest sample of every
// series each agent uploaded (metrics.Service.Latest), in Prometheus' text format, per agent and for
// the whole fleet, and lists the agents in Prometheus' http_sd format so a scrape config finds them
// (with their labels as target labels). All of it takes a reader's token.

// PrometheusTargetsOutput is an http_sd answer: target groups.
type PrometheusTargetsOutput struct {
	Body []PrometheusTargetGroup
}

// PrometheusTargetGroup is one http_sd target group: the hub's address, and the agent's path and
// labels.
type PrometheusTargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// PrometheusAgentInput names the agent to expose.
type PrometheusAgentInput struct {
	ID string `path:"id" doc:"The agent's id or name."`
}

// PrometheusOutput is a text exposition.
type PrometheusOutput struct {
	ContentType string `header:"Content-Type"`
	Body        []byte
}

var promLabelName = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// promLabel turns an agent label's name into a Prometheus label name (label_<name>, other characters
// as _), so an agent labelled role=web is scraped with label_role="web" and can never overwrite a
// label Prometheus or the series set.
func promLabel(name string) string { return "label_" + promLabelName.ReplaceAllString(name, "_") }

func registerPrometheus(api huma.API, h *Hub) {
	text := map[string]*huma.Response{"200": {Description: "Prometheus text format.", Content: map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: "string"}}}}}
	register(api, h, huma.Operation{OperationID: "prometheus-targets", Method: http.MethodGet, Path: "/v1/prometheus/targets",
		Summary: "The fleet as Prometheus scrape targets (http_sd)",
		Description: "Prometheus' HTTP service discovery format: one target group per agent, whose target is this hub (the Host the request came to) with __metrics_path__ /v1/agents/{id}/prometheus, " +
			"and the labels agent, agent_name and label_<name> for each of the agent's labels. Scrape with the same reader's token."},
		func(ctx context.Context, _ *struct{}) (*PrometheusTargetsOutput, error) {
			all, err := h.Fleet.Identities(ctx, false)
			if err != nil {
				return nil, err
			}
			host, scheme := requestHost(ctx)
			out := &PrometheusTargetsOutput{Body: []PrometheusTargetGroup{}}
			for _, t := range all {
				labels := map[string]string{"__metrics_path__": "/v1/agents/" + t.Ident.ID + "/prometheus", "__scheme__": scheme,
					"agent": t.Ident.ID, "agent_name": t.Ident.Name}
				for k, v := range t.Labels {
					labels[promLabel(k)] = v
				}
				out.Body = append(out.Body, PrometheusTargetGroup{Targets: []string{host}, Labels: labels})
			}
			return out, nil
		})
	register(api, h, huma.Operation{OperationID: "agent-prometheus", Method: http.MethodGet, Path: "/v1/agents/{id}/prometheus",
		Summary: "An agent's newest samples in Prometheus' text format",
		Description: "The newest sample of every series the agent uploaded (node_exporter-style names), each with the time it was sampled. Its target labels come from the http_sd listing. " +
			"Costs one LIST per hour back to the newest hour the agent uploaded in, and a GET of each batch of that hour not read before.",
		Responses: text, Errors: []int{404}},
		func(ctx context.Context, in *PrometheusAgentInput) (*PrometheusOutput, error) {
			t, err := h.Fleet.Target(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			samples, err := h.Metrics.Latest(ctx, t.Ident.ID)
			if err != nil {
				return nil, err
			}
			b, err := exposition(map[string][]metrics.Sample{"": samples})
			if err != nil {
				return nil, err
			}
			return &PrometheusOutput{ContentType: string(expfmt.NewFormat(expfmt.TypeTextPlain)), Body: b}, nil
		})
	register(api, h, huma.Operation{OperationID: "fleet-prometheus", Method: http.MethodGet, Path: "/v1/prometheus/fleet",
		Summary: "Every agent's newest samples in one exposition",
		Description: "As /v1/agents/{id}/prometheus for every agent, each series with an agent label (and agent_name). One scrape reads every agent's newest hour: " +
			"for a large fleet, scrape the agents through /v1/prometheus/targets instead.",
		Responses: text},
		func(ctx context.Context, _ *struct{}) (*PrometheusOutput, error) {
			all, err := h.Fleet.Identities(ctx, false)
			if err != nil {
				return nil, err
			}
			byAgent := map[string][]metrics.Sample{}
			names := map[string]string{}
			for _, t := range all {
				s, err := h.Metrics.Latest(ctx, t.Ident.ID)
				if err != nil {
					return nil, err
				}
				byAgent[t.Ident.ID], names[t.Ident.ID] = s, t.Ident.Name
			}
			b, err := exposition(byAgent, names)
			if err != nil {
				return nil, err
			}
			return &PrometheusOutput{ContentType: string(expfmt.NewFormat(expfmt.TypeTextPlain)), Body: b}, nil
		})
}

// requestHost is the host and scheme the request came to, which Prometheus reaches the hub at.
func requestHost(ctx context.Context) (host, scheme string) {
	at, _ := ctx.Value(hostKey{}).(reachedAt)
	if at.host == "" {
		return "localhost", "http"
	}
	return at.host, at.scheme
}

type hostKey struct{}

// reachedAt is where a request reached the hub, as its client addressed it.
type reachedAt struct{ host, scheme string }

func reached(r *http.Request) reachedAt {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return reachedAt{host: r.Host, scheme: scheme}
}

// exposition writes samples in Prometheus' text format, one family per name. Samples under an agent
// id ("" for one agent's own exposition) get agent and agent_name labels.
func exposition(byAgent map[string][]metrics.Sample, names ...map[string]string) ([]byte, error) {
	families := map[string]*dto.MetricFamily{}
	agents := make([]string, 0, len(byAgent))
	for a := range byAgent {
		agents = append(agents, a)
	}
	slices.Sort(agents)
	for _, a := range agents {
		for _, s := range byAgent[a] {
			mf := families[s.Name]
			if mf == nil {
				typ := dto.MetricType_GAUGE
				if s.Kind == "counter" {
					typ = dto.MetricType_COUNTER
				}
				mf = &dto.MetricFamily{Name: proto.String(s.Name), Type: typ.Enum(), Help: proto.String("Sampled by the agent; the newest sample the hub holds.")}
				families[s.Name] = mf
			}
			m := &dto.Metric{TimestampMs: proto.Int64(s.T)}
			labels := map[string]string{}
			for k, v := range s.Labels {
				labels[k] = v
			}
			if a != "" {
				labels["agent"] = a
				if len(names) > 0 {
					labels["agent_name"] = names[0][a]
				}
			}
			keys := make([]string, 0, len(labels))
			for k := range labels {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(k), Value: proto.String(labels[k])})
			}
			if *mf.Type == dto.MetricType_COUNTER {
				m.Counter = &dto.Counter{Value: proto.Float64(s.V)}
			} else {
				m.Gauge = &dto.Gauge{Value: proto.Float64(s.V)}
			}
			mf.Metric = append(mf.Metric, m)
		}
	}
	nameList := make([]string, 0, len(families))
	for n := range families {
		nameList = append(nameList, n)
	}
	slices.Sort(nameList)
	var buf bytes.Buffer
	for _, n := range nameList {
		if _, err := expfmt.MetricFamilyToText(&buf, families[n]); err != nil {
			return nil, fmt.Errorf("write metric %s: %w", n, err)
		}
	}
	return buf.Bytes(), nil
}
