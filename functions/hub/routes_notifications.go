package hub

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/functions/hub/notifications"
)

// ChannelNameInput names a channel.
type ChannelNameInput struct {
	Name string `path:"name" maxLength:"63" doc:"The channel's name."`
}

// SetChannelInput is a channel's configuration.
type SetChannelInput struct {
	Name string `path:"name" maxLength:"63" doc:"The channel's name."`
	Body struct {
		Source string `json:"source" minLength:"1" maxLength:"65536" doc:"The channel in YAML or JSON: kind and its fields (docs/notifications.md)."`
	}
}

// ChannelOutput is one channel, its secrets masked.
type ChannelOutput struct {
	Body *notifications.View
}

// ChannelsOutput lists channels, their secrets masked.
type ChannelsOutput struct {
	Body struct {
		Channels []notifications.View `json:"channels"`
	}
}

// DeliveryOutput is one delivery with its attempts.
type DeliveryOutput struct {
	Body *notifications.Entry
}

// ListNotificationsInput filters the delivery log.
type ListNotificationsInput struct {
	Alert   string `query:"alert" maxLength:"128" doc:"Only deliveries of this alert."`
	Channel string `query:"channel" maxLength:"63" doc:"Only deliveries to this channel."`
	State   string `query:"state" enum:"queued,sending,retrying,sent,failed," doc:"Only deliveries in this state."`
}

// NotificationsOutput is the delivery log.
type NotificationsOutput struct {
	Body struct {
		Notifications []notifications.Entry `json:"notifications"`
	}
}

// registerNotifications is the notifications room's operator side.
func registerNotifications(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "set-channel", Method: http.MethodPut, Path: "/v1/channels/{name}",
		Summary: "Create or replace a notification channel",
		Description: "Parses the channel (problems are reported with line:column in the source) and stores it, its secrets sealed under a key derived from the hub's signing key. " +
			"The answer, like every other, shows the secrets masked.",
		Errors: []int{422}},
		func(ctx context.Context, in *SetChannelInput) (*ChannelOutput, error) {
			v, err := h.Notifications.Put(ctx, in.Name, in.Body.Source)
			if err != nil {
				return nil, err
			}
			return &ChannelOutput{Body: v}, nil
		})
	register(api, h, huma.Operation{OperationID: "list-channels", Method: http.MethodGet, Path: "/v1/channels",
		Summary: "List the notification channels", Description: "Every channel by name, its secrets masked."},
		func(ctx context.Context, _ *struct{}) (*ChannelsOutput, error) {
			list, err := h.Notifications.List(ctx)
			if err != nil {
				return nil, err
			}
			out := &ChannelsOutput{}
			out.Body.Channels = list
			return out, nil
		})
	register(api, h, huma.Operation{OperationID: "get-channel", Method: http.MethodGet, Path: "/v1/channels/{name}",
		Summary: "A notification channel", Description: "The channel, its secrets masked.", Errors: []int{404}},
		func(ctx context.Context, in *ChannelNameInput) (*ChannelOutput, error) {
			v, err := h.Notifications.Get(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			return &ChannelOutput{Body: v}, nil
		})
	register(api, h, huma.Operation{OperationID: "delete-channel", Method: http.MethodDelete, Path: "/v1/channels/{name}",
		Summary: "Delete a notification channel", Description: "Deliveries still queued for it fail with that reason in the log.", Errors: []int{404},
		DefaultStatus: http.StatusNoContent},
		func(ctx context.Context, in *ChannelNameInput) (*struct{}, error) {
			return nil, h.Notifications.Delete(ctx, in.Name)
		})
	register(api, h, huma.Operation{OperationID: "test-channel", Method: http.MethodPost, Path: "/v1/channels/{name}/test",
		Summary: "Send a test notification",
		Description: "Sends a test message to the channel now and answers with the attempt: sent, or failed with the receiver's status and answer. " +
			"It is a delivery like any other: in the log (GET /v1/notifications), and retried when it fails.",
		Errors: []int{404}},
		func(ctx context.Context, in *ChannelNameInput) (*DeliveryOutput, error) {
			e, err := h.Notifications.Test(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			return &DeliveryOutput{Body: e}, nil
		})
	register(api, h, huma.Operation{OperationID: "list-notifications", Method: http.MethodGet, Path: "/v1/notifications",
		Summary: "The delivery log",
		Description: "Every delivery of a notification to a channel, newest first, with each attempt: when, by which hub instance, sent or failed, the receiver's answer, the next retry. " +
			"Kept 30 days."},
		func(ctx context.Context, in *ListNotificationsInput) (*NotificationsOutput, error) {
			list, err := h.Notifications.Deliveries(ctx, notifications.Filter{Alert: in.Alert, Channel: in.Channel, State: in.State})
			if err != nil {
				return nil, err
			}
			out := &NotificationsOutput{}
			out.Body.Notifications = list
			return out, nil
		})
}
