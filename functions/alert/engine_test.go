package alert

import (
	"testing"
	"time"
)

// TestStep walks a subject's track through observations and checks each state and transition.
func TestStep(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	rule := &Rule{Name: "down", Kind: KindOffline, ForSeconds: 60, NotifyResolved: true}
	type obs struct {
		now     int
		active  bool
		since   int
		state   string
		changed string // "", fired, resolved
		notify  bool
	}
	cases := []struct {
		name  string
		first bool // the rule has never seen the subject: no previous track
		steps []obs
	}{
		{"fires after its duration and resolves", true, []obs{
			{0, false, 0, StateOK, "", false},
			{10, true, 5, StatePending, "", false},
			{50, true, 5, StatePending, "", false},
			{65, true, 5, StateFiring, Fired, true},
			{70, true, 5, StateFiring, "", false},
			{80, false, 0, StateResolved, Resolved, true},
		}},
		{"a spike shorter than the duration never fires", true, []obs{
			{0, false, 0, StateOK, "", false},
			{10, true, 10, StatePending, "", false},
			{30, false, 0, StateOK, "", false},
			{100, false, 0, StateOK, "", false},
		}},
		{"already so at the first look is no alert until it clears and comes back", true, []obs{
			{0, true, -3600, StateBaseline, "", false},
			{500, true, -3600, StateBaseline, "", false},
			{600, false, 0, StateOK, "", false},
			{610, true, 610, StatePending, "", false},
			{700, true, 610, StateFiring, Fired, true},
		}},
		{"a condition that began long ago by the data fires at once once seen pending", true, []obs{
			{0, false, 0, StateOK, "", false},
			{10, true, -100, StateFiring, Fired, true},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var prev *Track
			for i, o := range c.steps {
				tr, change := Step(rule, "ag-1", prev, Observation{Active: o.active, Since: at(o.since)}, at(o.now))
				if tr.State != o.state {
					t.Fatalf("step %d: state %s, want %s", i, tr.State, o.state)
				}
				switch {
				case o.changed == "" && change != nil:
					t.Fatalf("step %d: unexpected %+v", i, change)
				case o.changed != "" && (change == nil || change.Kind != o.changed || change.Notify != o.notify):
					t.Fatalf("step %d: %+v, want %s notify=%v", i, change, o.changed, o.notify)
				}
				prev = &tr
			}
		})
	}
}

// TestSameDataSameID: two instances that see the same data, at different moments, name the alert
// the same; a new episode is a new alert.
func TestSameDataSameID(t *testing.T) {
	rule := &Rule{Name: "down", ForSeconds: 60}
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	pending := &Track{State: StateOK}
	a, ca := Step(rule, "ag-1", pending, Observation{Active: true, Since: t0}, t0.Add(61*time.Second))
	b, cb := Step(rule, "ag-1", pending, Observation{Active: true, Since: t0}, t0.Add(64*time.Second))
	if ca == nil || cb == nil || ca.AlertID != cb.AlertID || a.AlertID != b.AlertID {
		t.Fatalf("%+v %+v", ca, cb)
	}
	if other := ID("down", "ag-1", t0.Add(time.Hour)); other == ca.AlertID {
		t.Fatal("a later episode has the same id")
	}
	if other := ID("down", "ag-2", t0); other == ca.AlertID {
		t.Fatal("another subject has the same id")
	}
}

// TestFlapping: past FlapLimit firings within FlapWindow an alert still changes state but notifies
// no one, and notifies again once it has been quiet for the window.
func TestFlapping(t *testing.T) {
	rule := &Rule{Name: "flappy", NotifyResolved: true}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tr := &Track{State: StateOK}
	var notified []bool
	for i := range FlapLimit + 2 {
		on, fired := Step(rule, "s", tr, Observation{Active: true, Since: now}, now)
		now = now.Add(time.Minute)
		off, resolved := Step(rule, "s", &on, Observation{}, now)
		now = now.Add(time.Minute)
		if fired == nil || resolved == nil {
			t.Fatalf("round %d: %+v %+v", i, fired, resolved)
		}
		notified = append(notified, fired.Notify)
		tr = &off
	}
	for i, n := range notified {
		if want := i < FlapLimit; n != want {
			t.Errorf("firing %d notified %v, want %v", i+1, n, want)
		}
	}
	on, fired := Step(rule, "s", tr, Observation{Active: true, Since: now.Add(FlapWindow)}, now.Add(FlapWindow))
	if fired == nil || !fired.Notify || on.Flapping {
		t.Errorf("after a quiet window: %+v %+v", fired, on)
	}
}

// TestHolds: hysteresis keeps a firing alert until the value crosses back past clear.
func TestHolds(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	above := &Rule{Above: f(0.9), Clear: f(0.8)}
	below := &Rule{Below: f(0.1)}
	for _, c := range []struct {
		r      *Rule
		active bool
		v      float64
		want   bool
	}{
		{above, false, 0.85, false},
		{above, false, 0.95, true},
		{above, true, 0.85, true}, // between clear and trigger: stays
		{above, true, 0.75, false},
		{below, false, 0.05, true},
		{below, true, 0.1, false}, // clear defaults to the trigger
	} {
		if got := c.r.Holds(c.active, c.v); got != c.want {
			t.Errorf("active=%v v=%v: %v, want %v", c.active, c.v, got, c.want)
		}
	}
}
