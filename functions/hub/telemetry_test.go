package hub_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestMetricsEndpoint: GET /metrics answers a reader's token in Prometheus' text format with the
// requests by route (the pattern, not the path), the store operations by outcome and the rooms'
// series; without a token it is a 401 problem.
func TestMetricsEndpoint(t *testing.T) {
	th := newTestHub(t)
	th.agent("web-1", map[string]string{"role": "web"}, nil)
	var out struct{ Detail string }
	th.call(th.admin, "GET", "/v1/agents/nothing-here", nil, &out) // a 404 on a route with a parameter
	scrape := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", th.url+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := scrape(""); st != 401 || !strings.Contains(body, `"status":401`) {
		t.Fatalf("without a token: %d %s", st, body)
	}
	st, body := scrape(th.token("eve", "viewer"))
	if st != 200 {
		t.Fatalf("a viewer scrapes: %d %s", st, body)
	}
	for _, want := range []string{
		`pulse_http_requests_total{method="GET",route="GET /v1/agents/{id}",status="404"} 1`,
		`pulse_http_request_duration_seconds_bucket{method="POST",route="POST /v1/enroll",le="+Inf"}`,
		`pulse_store_operations_total{op="put",outcome="ok"}`,
		`pulse_store_operations_total{op="get",outcome="not_found"}`,
		`pulse_store_operation_duration_seconds_count{op="list"}`,
		`pulse_polls_waiting 0`,
		`pulse_workflow_executions_active`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	if regexp.MustCompile(`route="[^"]*nothing-here`).MatchString(body) {
		t.Error("a path, not a pattern, became a label value")
	}
}
