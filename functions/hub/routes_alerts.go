package hub

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/functions/hub/alerts"
)

// ApplyAlertRulesInput is a new version of the alert rules.
type ApplyAlertRulesInput struct {
	Body struct {
		Source string `json:"source" minLength:"1" maxLength:"262144" doc:"The rules in YAML or JSON."`
	}
}

// AlertRulesOutput is a version of the alert rules.
type AlertRulesOutput struct {
	Body struct {
		*alerts.Version
		Unchanged bool `json:"unchanged,omitempty" doc:"The source is the newest version's: nothing was stored."`
	}
}

// ListAlertsInput filters the alerts.
type ListAlertsInput struct {
	State string `query:"state" enum:"firing,resolved," doc:"Only alerts in this state (default: all)."`
}

// AlertsOutput lists alerts.
type AlertsOutput struct {
	Body struct {
		Alerts []alerts.Alert `json:"alerts"`
	}
}

// registerAlerts is the alerts room's operator side.
func registerAlerts(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "apply-alert-rules", Method: http.MethodPut, Path: "/v1/alert-rules",
		Summary: "Apply the alert rules",
		Description: "Parses the rules (problems are reported with line:column in the source) and stores the next version; every hub instance evaluates the newest from its tick. " +
			"Rules of a kind this hub does not evaluate yet are refused at their kind. A source identical to the newest version's stores nothing (unchanged: true).",
		Errors: []int{409, 422}},
		func(ctx context.Context, in *ApplyAlertRulesInput) (*AlertRulesOutput, error) {
			v, unchanged, err := h.Alerts.Apply(ctx, in.Body.Source)
			if err != nil {
				return nil, err
			}
			out := &AlertRulesOutput{}
			out.Body.Version, out.Body.Unchanged = v, unchanged
			return out, nil
		})
	register(api, h, huma.Operation{OperationID: "get-alert-rules", Method: http.MethodGet, Path: "/v1/alert-rules",
		Summary: "The alert rules in force", Errors: []int{404}},
		func(ctx context.Context, _ *struct{}) (*AlertRulesOutput, error) {
			v, err := h.Alerts.Rules(ctx)
			if err != nil {
				return nil, err
			}
			out := &AlertRulesOutput{}
			out.Body.Version = v
			return out, nil
		})
	register(api, h, huma.Operation{OperationID: "list-alerts", Method: http.MethodGet, Path: "/v1/alerts",
		Summary:     "List alerts",
		Description: "Alerts that fired, newest first, with their resolution once they cleared. An alert is named by its rule, its subject and when its condition began, so it is listed once however many hub instances saw it."},
		func(ctx context.Context, in *ListAlertsInput) (*AlertsOutput, error) {
			list, err := h.Alerts.List(ctx, in.State)
			if err != nil {
				return nil, err
			}
			out := &AlertsOutput{}
			out.Body.Alerts = list
			return out, nil
		})
}
