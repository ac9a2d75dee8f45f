package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Track states: where one rule stands on one subject (an agent, one of its series or units).
const (
	// StateOK: the condition does not hold.
	StateOK = "ok"
	// StateBaseline: the condition already held when the rule first saw the subject (a machine that
	// was already off when the rule was applied): it is not an alert until it clears and comes back.
	// Alerts fire on transitions only.
	StateBaseline = "baseline"
	// StatePending: the condition holds, not yet for the rule's duration.
	StatePending = "pending"
	// StateFiring: it held for the duration; the alert fired.
	StateFiring = "firing"
	// StateResolved: it fired and then cleared.
	StateResolved = "resolved"
)

// Flapping: an alert that fired more than FlapLimit times within FlapWindow still changes state, but
// notifies no one until it has been quiet for FlapWindow, so a value hovering at its threshold does
// not page every few minutes.
const (
	FlapLimit  = 3
	FlapWindow = time.Hour
)

// Observation is what the caller found of a subject at an evaluation.
type Observation struct {
	// Active says the condition holds now (for a metric, after Rule.Holds' hysteresis).
	Active bool
	// Since is when it began to hold, by the data: the first sample past the trigger in the current
	// run, the agent's last heartbeat plus the time after which it counts offline, the unit's change.
	// Every hub instance finds the same Since, so every instance names the alert the same.
	Since time.Time
	// Value and Detail are for the notification: the value that crossed, a person's words.
	Value  float64
	Detail string
}

// Track is where a rule stands on a subject, kept by the caller between evaluations.
type Track struct {
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// AlertID names the current or last firing: ID(rule, subject, since).
	AlertID    string    `json:"alertId,omitempty"`
	FiredAt    time.Time `json:"firedAt,omitzero"`
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	// Fired are the recent firings, for flapping (within FlapWindow).
	Fired    []time.Time `json:"fired,omitempty"`
	Flapping bool        `json:"flapping,omitempty"`
}

// Transition is a change that concerns people: an alert fired or resolved.
type Transition struct {
	Kind    string    `json:"kind" enum:"fired,resolved"`
	AlertID string    `json:"alertId"`
	At      time.Time `json:"at"`
	// Notify is false while the alert flaps, or for a resolution the rule does not notify.
	Notify bool `json:"notify"`
}

// Transition kinds.
const (
	Fired    = "fired"
	Resolved = "resolved"
)

// ID names an alert: the rule, the subject and when its condition began by the data.
func ID(rule, subject string, since time.Time) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d", rule, subject, since.UnixMilli()))
	return "al-" + hex.EncodeToString(sum[:10])
}

// Step moves a subject's track after an observation at now. prev is nil the first time the rule sees
// the subject. It returns the new track and the transition, if one happened.
func Step(r *Rule, subject string, prev *Track, o Observation, now time.Time) (Track, *Transition) {
	if prev == nil {
		if o.Active {
			return Track{State: StateBaseline, Since: o.Since}, nil
		}
		return Track{State: StateOK}, nil
	}
	t := *prev
	t.Fired = recent(t.Fired, now)
	switch t.State {
	case StateBaseline:
		if !o.Active {
			t.State, t.Since = StateOK, time.Time{}
		}
		return t, nil
	case StateFiring:
		if o.Active {
			return t, nil
		}
		t.State, t.ResolvedAt = StateResolved, now
		return t, &Transition{Kind: Resolved, AlertID: t.AlertID, At: now, Notify: r.NotifyResolved && !t.Flapping}
	}
	// ok, resolved or pending
	if !o.Active {
		if t.State == StatePending {
			t.State, t.Since = StateOK, time.Time{} // a spike shorter than the rule's duration
		}
		return t, nil
	}
	if t.State != StatePending {
		t.State = StatePending
	}
	t.Since = o.Since
	if now.Sub(o.Since) < r.For() {
		return t, nil
	}
	t.State, t.FiredAt, t.AlertID = StateFiring, now, ID(r.Name, subject, o.Since)
	t.Fired = append(t.Fired, now)
	t.Flapping = len(t.Fired) > FlapLimit
	return t, &Transition{Kind: Fired, AlertID: t.AlertID, At: now, Notify: !t.Flapping}
}

// recent keeps the firings within FlapWindow of now.
func recent(fired []time.Time, now time.Time) []time.Time {
	out := fired[:0:0]
	for _, f := range fired {
		if now.Sub(f) < FlapWindow {
			out = append(out, f)
		}
	}
	return out
}

// Holds says whether a metric rule's condition holds for value v, with hysteresis: an alert that is
// firing (or pending) stays so until v crosses back past Clear (the trigger when none is given), so a
// value wobbling at the threshold does not fire and resolve on every sample.
func (r *Rule) Holds(active bool, v float64) bool {
	switch {
	case r.Above != nil:
		if active {
			return v > clearOr(r.Clear, *r.Above)
		}
		return v > *r.Above
	case r.Below != nil:
		if active {
			return v < clearOr(r.Clear, *r.Below)
		}
		return v < *r.Below
	}
	return false
}

func clearOr(c *float64, trigger float64) float64 {
	if c != nil {
		return *c
	}
	return trigger
}
