package hub

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// HealthOutput says the process is alive.
type HealthOutput struct {
	Body struct {
		Status  string `json:"status" example:"ok" doc:"Always ok: the process answers."`
		Version string `json:"version" doc:"The hub's version."`
	}
}

// ReadyOutput says the hub can serve: its store answers.
type ReadyOutput struct {
	Body ReadyStatus
}

// ReadyStatus is the readiness report.
type ReadyStatus struct {
	Status    string    `json:"status" example:"ready" doc:"ready when the store answered the last check."`
	Store     string    `json:"store" doc:"The store URL, without secrets."`
	Mode      string    `json:"mode" enum:"conditional,last-writer-wins" doc:"Whether the store honours conditional writes (see the store probe)."`
	CheckedAt time.Time `json:"checkedAt" doc:"When the store was last checked."`
}

func registerHealth(api huma.API, h *Hub) {
	register(api, h, huma.Operation{
		OperationID: "get-healthz",
		Method:      http.MethodGet,
		Path:        "/healthz",
		Summary:     "Liveness",
		Description: "Answers 200 while the process runs, whatever the state of the store. Use it for restarts, not for routing traffic.",
		Tags:        []string{"Health"},
	}, func(ctx context.Context, _ *struct{}) (*HealthOutput, error) {
		out := &HealthOutput{}
		out.Body.Status = "ok"
		out.Body.Version = h.Version
		return out, nil
	})

	register(api, h, huma.Operation{
		OperationID: "get-readyz",
		Method:      http.MethodGet,
		Path:        "/readyz",
		Summary:     "Readiness",
		Description: "Answers 200 when the store is reachable, with the mode it runs in; otherwise 503 with a problem whose detail names the cause (unreachable endpoint, missing bucket, refused credentials).",
		Tags:        []string{"Health"},
		Errors:      []int{http.StatusServiceUnavailable},
	}, func(ctx context.Context, _ *struct{}) (*ReadyOutput, error) {
		st := h.Ready.Check(ctx)
		if st.Err != nil {
			return nil, huma.Error503ServiceUnavailable("not ready: store " + h.Ready.URL() + ": " + st.Err.Error())
		}
		return &ReadyOutput{Body: ReadyStatus{Status: "ready", Store: h.Ready.URL(), Mode: string(st.Mode), CheckedAt: st.CheckedAt}}, nil
	})
}
