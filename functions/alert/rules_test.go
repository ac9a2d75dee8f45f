package alert

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/yamlsrc"
)

const example = `rules:
  - name: disk_full
    kind: metric
    targets: [role=web]
    metric: node_filesystem_avail_ratio
    labels: {mountpoint: /}
    below: 0.10
    clear: 0.15
    for: 5m
    severity: critical
    channels: [ops]
  - name: down
    kind: offline
    for: 2m
  - name: units
    kind: unit
  - name: failing_commands
    kind: commands
    failures: 3
    within: 10m
    notifyResolved: false
quiet: {from: "22:00", to: "07:00", zone: Europe/Berlin}
`

// TestParseExample: the documented example reads into its rules, with their defaults.
func TestParseExample(t *testing.T) {
	rs, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) != 4 {
		t.Fatalf("%d rules", len(rs.Rules))
	}
	d := rs.Rules[0]
	if d.Kind != KindMetric || d.Metric != "node_filesystem_avail_ratio" || d.Labels["mountpoint"] != "/" || *d.Below != 0.10 || *d.Clear != 0.15 ||
		d.For() != 5*time.Minute || d.Severity != "critical" || d.Channels[0] != "ops" || !d.NotifyResolved || d.Targets[0] != "role=web" {
		t.Errorf("disk_full: %+v", d)
	}
	if o := rs.Rules[1]; o.Kind != KindOffline || o.For() != 2*time.Minute || o.Targets[0] != "all" || o.Severity != "warning" {
		t.Errorf("down: %+v", o)
	}
	if u := rs.Rules[2]; len(u.States) != 2 || u.For() != 0 {
		t.Errorf("units: %+v", u)
	}
	if c := rs.Rules[3]; c.Failures != 3 || c.Within() != 10*time.Minute || c.NotifyResolved {
		t.Errorf("failing_commands: %+v", c)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tc := range []struct {
		at   time.Time
		hold bool
		ends time.Time // when the quiet hours holding at at end
	}{
		{time.Date(2026, 12, 1, 23, 0, 0, 0, berlin), true, time.Date(2026, 12, 2, 7, 0, 0, 0, berlin)},
		{time.Date(2026, 12, 1, 6, 59, 0, 0, berlin), true, time.Date(2026, 12, 1, 7, 0, 0, 0, berlin)},
		{time.Date(2026, 12, 1, 7, 0, 0, 0, berlin), false, time.Date(2026, 12, 1, 7, 0, 0, 0, berlin)},
		{time.Date(2026, 12, 1, 12, 0, 0, 0, berlin), false, time.Date(2026, 12, 1, 12, 0, 0, 0, berlin)},
		// the night the clocks go back: 07:00 is still the end, an hour longer by the wall
		{time.Date(2026, 10, 24, 23, 30, 0, 0, berlin), true, time.Date(2026, 10, 25, 7, 0, 0, 0, berlin)},
	} {
		if got := rs.Quiet.Holds(tc.at); got != tc.hold {
			t.Errorf("quiet at %s: %v, want %v", tc.at, got, tc.hold)
		}
		if got := rs.Quiet.Ends(tc.at); !got.Equal(tc.ends) {
			t.Errorf("quiet at %s ends %s, want %s", tc.at, got, tc.ends)
		}
	}
}

// TestRefused: each mistake is placed at its line and column.
func TestRefused(t *testing.T) {
	rule := func(body string) string { return "rules:\n  - name: r\n" + body }
	cases := []struct {
		name      string
		src       string
		line, col int
		path      string
		want      string
	}{
		{"empty", "", 1, 1, "", "empty rules"},
		{"no rules", "quiet: {from: \"22:00\", to: \"07:00\"}\n", 1, 1, "rules", "no rules"},
		{"unknown top field", "rules: []\nalerts: []\n", 2, 1, "alerts", `unknown field "alerts"`},
		{"no kind", rule("    for: 1m\n"), 2, 5, "rules[0].kind", "needs a kind"},
		{"unknown kind", rule("    kind: cpu\n"), 3, 11, "rules[0].kind", `unknown kind "cpu"`},
		{"a field the kind does not take", rule("    kind: offline\n    for: 1m\n    metric: x\n"), 5, 5, "rules[0].metric", `unknown field "metric"`},
		{"no name", "rules:\n  - kind: unit\n", 2, 5, "rules[0].name", "needs a name"},
		{"bad name", "rules:\n  - name: Disk-Full\n    kind: unit\n", 2, 11, "rules[0].name", "rule name"},
		{"duplicate name", "rules:\n  - {name: a, kind: unit}\n  - {name: a, kind: unit}\n", 3, 12, "rules[1].name", "already defined"},
		{"metric without a threshold", rule("    kind: metric\n    metric: node_load1\n"), 2, 5, "rules[0].above", "a threshold"},
		{"metric with both", rule("    kind: metric\n    metric: node_load1\n    above: 4\n    below: 1\n"), 6, 12, "rules[0].below", "not both"},
		{"clear on the wrong side", rule("    kind: metric\n    metric: node_load1\n    above: 4\n    clear: 5\n"), 6, 12, "rules[0].clear", "resolves at or below"},
		{"bad metric name", rule("    kind: metric\n    metric: node-load\n    above: 1\n"), 4, 13, "rules[0].metric", "Prometheus metric name"},
		{"threshold not a number", rule("    kind: metric\n    metric: node_load1\n    above: high\n"), 5, 12, "rules[0].above", "want a number"},
		{"offline without for", rule("    kind: offline\n"), 2, 5, "rules[0].for", "a duration the agent must be offline for"},
		{"for without a unit", rule("    kind: offline\n    for: 30\n"), 4, 10, "rules[0].for", "such as 30s"},
		{"for too long", rule("    kind: offline\n    for: 400h\n"), 4, 10, "rules[0].for", "at most"},
		{"bad unit state", rule("    kind: unit\n    states: [failed, broken]\n"), 4, 13, "rules[0].states[1]", `unit state "broken"`},
		{"commands without failures", rule("    kind: commands\n    within: 5m\n"), 2, 5, "rules[0].failures", "a number of failures"},
		{"bad severity", rule("    kind: unit\n    severity: urgent\n"), 4, 15, "rules[0].severity", "unknown severity"},
		{"notifyResolved not a bool", rule("    kind: unit\n    notifyResolved: maybe\n"), 4, 21, "rules[0].notifyResolved", "true or false"},
		{"bad quiet time", "rules: []\nquiet: {from: \"25:00\", to: \"07:00\"}\n", 2, 15, "quiet.from", "not a clock time"},
		{"bad zone", "rules: []\nquiet: {from: \"22:00\", to: \"07:00\", zone: Mars/Olympus}\n", 2, 43, "quiet.zone", "unknown time zone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src))
			var ye *yamlsrc.Error
			if !errors.As(err, &ye) {
				t.Fatalf("want a *yamlsrc.Error, got %v", err)
			}
			if !strings.HasPrefix(err.Error(), "alert rules refused:") {
				t.Errorf("message %q", err)
			}
			for _, p := range ye.Problems {
				if p.Line == c.line && p.Column == c.col && p.Path == c.path && strings.Contains(p.Message, c.want) {
					return
				}
			}
			t.Fatalf("want %d:%d: %s: ...%s..., got:\n%v", c.line, c.col, c.path, c.want, err)
		})
	}
}
