package hub

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/functions/hub/alerts"
	"github.com/pulsehq/pulse/functions/hub/domain"
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

// AckAlertInput acknowledges an alert.
type AckAlertInput struct {
	ID   string `path:"id" doc:"The alert's id (pulse alerts)."`
	Body struct {
		Note string `json:"note,omitempty" maxLength:"1000" doc:"What you are doing about it."`
	}
}

// AckAlertOutput is the acknowledgement that stands.
type AckAlertOutput struct {
	Body struct {
		*alerts.Ack
		Already bool `json:"already,omitempty" doc:"Someone had acknowledged it before: theirs stands."`
	}
}

// SnoozeAlertInput holds an alert's notifications.
type SnoozeAlertInput struct {
	ID   string `path:"id" doc:"The alert's id (pulse alerts)."`
	Body struct {
		For  string `json:"for" minLength:"1" maxLength:"16" doc:"How long: 30m, 2h, 1d (at most 30d); 0 lifts the snooze."`
		Note string `json:"note,omitempty" maxLength:"1000"`
	}
}

// SnoozeAlertOutput is the snooze as it stands.
type SnoozeAlertOutput struct {
	Body *alerts.Snooze
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
	register(api, h, huma.Operation{OperationID: "ack-alert", Method: http.MethodPost, Path: "/v1/alerts/{id}/ack",
		Summary:     "Acknowledge an alert",
		Description: "Says you are on it: the alert lists who acknowledged it first, and when. A second acknowledgement changes nothing and is answered with the first (already: true).",
		Errors:      []int{404}},
		func(ctx context.Context, in *AckAlertInput) (*AckAlertOutput, error) {
			a, created, err := h.Alerts.Acknowledge(ctx, in.ID, in.Body.Note)
			if err != nil {
				return nil, err
			}
			out := &AckAlertOutput{}
			out.Body.Ack, out.Body.Already = a, !created
			return out, nil
		})
	register(api, h, huma.Operation{OperationID: "snooze-alert", Method: http.MethodPost, Path: "/v1/alerts/{id}/snooze",
		Summary: "Snooze an alert's notifications",
		Description: "Holds the notifications of the alert's rule on its subject (the agent, or the series) for the duration: its resolution, and any new firing of the same problem, are recorded and listed as snoozed, and no channel hears of them. " +
			"A new snooze replaces the one before; for: 0 lifts it.",
		Errors: []int{404, 422}},
		func(ctx context.Context, in *SnoozeAlertInput) (*SnoozeAlertOutput, error) {
			d, err := parseSpan(in.Body.For)
			if err != nil {
				return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body.for", Msg: fmt.Sprintf("for %q: a duration such as 30m, 2h or 1d", in.Body.For)}
			}
			sn, err := h.Alerts.SetSnooze(ctx, in.ID, d, in.Body.Note)
			if err != nil {
				return nil, err
			}
			return &SnoozeAlertOutput{Body: sn}, nil
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
