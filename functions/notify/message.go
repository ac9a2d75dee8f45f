// Package notify tells people about alerts through the services they already use: the channel kinds
// (a generic webhook, Slack, Discord, Microsoft Teams, ntfy, Gotify, PagerDuty Events v2, e-mail over
// SMTP), how a channel is configured and checked, how each kind's message is shaped and sent, and how a
// channel's secrets are sealed so the bucket never holds them in clear. It does no queueing: the hub's
// notifications room keeps the delivery queue and its log in the bucket and calls Send.
package notify

import "time"

// Message kinds: an alert fired or resolved, or an operator's test-send of a channel.
const (
	KindFired    = "fired"
	KindResolved = "resolved"
	KindTest     = "test"
)

// Message is what one notification says, the same for every channel kind; each kind shapes it for its
// service. The alerts room fills it from the alert's event, so every channel of one alert says the same.
type Message struct {
	// Alert is the alert's id (alert.ID): the dedup key PagerDuty and receivers match a resolution by.
	Alert string `json:"alert"`
	// Kind is fired, resolved or test.
	Kind     string `json:"kind" enum:"fired,resolved,test"`
	Rule     string `json:"rule"`
	RuleKind string `json:"ruleKind" doc:"metric, offline, unit or commands."`
	Severity string `json:"severity" enum:"info,warning,critical"`
	// Agent and Name are the agent's id and name; Subject is what the rule watched on it (the agent
	// itself, one of its series, one of its plan units).
	Agent   string `json:"agent"`
	Name    string `json:"name"`
	Subject string `json:"subject"`
	// Value is the observed value of a metric rule (nil for other kinds).
	Value *float64 `json:"value,omitempty"`
	// Detail is a person's words for what was seen ("avail ratio 0.04 < 0.10 on /").
	Detail string `json:"detail"`
	// Since is when the condition began by the data; At is when the alert fired or resolved.
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
	// URL, when the hub knows its public address, links to the alert.
	URL string `json:"url,omitempty"`
}
