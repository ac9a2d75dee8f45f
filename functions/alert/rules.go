// Package alert reads alert rules and decides, from what was observed, when an alert starts, fires
// and resolves. It is pure (no I/O; the caller gives the clock): the hub's alerts room stores the
// rules and each alert's track, evaluates from the tick on every instance, and notifies the channels.
// Two instances that see the same data decide the same thing: an alert's id comes from its rule, its
// subject and the moment its condition began by the data (a sample's time, an agent's last
// heartbeat), never from when an instance happened to look.
//
//	rules:
//	  - name: disk_full
//	    kind: metric
//	    targets: [role=web]          # label selectors or agent ids, as commands take them (default all)
//	    metric: node_filesystem_avail_ratio
//	    labels: {mountpoint: /}
//	    below: 0.10                  # fires under 10 % free …
//	    clear: 0.15                  # … and resolves only above 15 % (hysteresis; default: the trigger)
//	    for: 5m                      # the condition must hold this long (a short spike never fires)
//	    severity: critical
//	    channels: [ops]
//	  - name: down
//	    kind: offline
//	    for: 2m
//	  - name: units
//	    kind: unit
//	    states: [failed, drifted]    # default both
//	  - name: failing_commands
//	    kind: commands
//	    failures: 3
//	    within: 10m
//	quiet: {from: "22:00", to: "07:00", zone: Europe/Berlin}   # notifications wait until it ends
package alert

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/yamlsrc"

	_ "time/tzdata" // quiet hours' zones resolve the same on every hub
)

// Rule kinds.
const (
	// KindMetric: a metric of an agent crosses a threshold (above or below) for a duration.
	KindMetric = "metric"
	// KindOffline: an agent is offline for longer than a duration.
	KindOffline = "offline"
	// KindUnit: a plan unit on an agent is failed or drifted (for a duration, default at once).
	KindUnit = "unit"
	// KindCommands: commands fail on an agent: at least Failures final failures within a window.
	KindCommands = "commands"
)

// Severities.
var severities = []string{"info", "warning", "critical"}

// Limits on a rule set.
const (
	MaxSourceBytes = 256 << 10
	MaxRules       = 200
	MaxFor         = 7 * 24 * time.Hour
)

// Rules is a parsed rule set.
type Rules struct {
	Rules []Rule `json:"rules"`
	// Quiet, when set, holds notifications (not the alerts' states) during those hours.
	Quiet *Quiet `json:"quiet,omitempty"`

	locs map[string][2]int // where each value was in the source, by path
}

// At is where path ("rules[1].kind") was in the source (0, 0 when it was not written), so the hub can
// place what it refuses later at its line and column.
func (rs *Rules) At(path string) (line, col int) {
	l := rs.locs[path]
	return l[0], l[1]
}

// Rule is one alert rule.
type Rule struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Targets []string `json:"targets"`
	// Metric, Labels, Above, Below and Clear are a metric rule's: the series (name and label
	// matchers), the trigger (exactly one of Above and Below), and the value that resolves it.
	Metric string            `json:"metric,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Above  *float64          `json:"above,omitempty"`
	Below  *float64          `json:"below,omitempty"`
	Clear  *float64          `json:"clear,omitempty"`
	// ForSeconds is how long the condition must hold before the alert fires.
	ForSeconds int `json:"forSeconds,omitempty"`
	// States are a unit rule's unit states (failed, drifted).
	States []string `json:"states,omitempty"`
	// Plan limits a unit rule to one plan ("" for every plan).
	Plan string `json:"plan,omitempty"`
	// Failures and WithinSeconds are a commands rule's.
	Failures      int `json:"failures,omitempty"`
	WithinSeconds int `json:"withinSeconds,omitempty"`

	Severity string   `json:"severity"`
	Channels []string `json:"channels,omitempty"`
	// NotifyResolved sends a notification when the alert resolves (default true).
	NotifyResolved bool `json:"notifyResolved"`
}

// For is the rule's duration.
func (r *Rule) For() time.Duration { return time.Duration(r.ForSeconds) * time.Second }

// Within is a commands rule's window.
func (r *Rule) Within() time.Duration { return time.Duration(r.WithinSeconds) * time.Second }

// Quiet hours: from From to To (clock times, wrapping midnight when To is before From) in Zone.
type Quiet struct {
	From string `json:"from"`
	To   string `json:"to"`
	Zone string `json:"zone,omitempty"`
	from int    // minutes after midnight
	to   int
	loc  *time.Location
}

// Holds says whether notifications wait at now.
func (q *Quiet) Holds(now time.Time) bool {
	if q == nil {
		return false
	}
	if q.loc == nil { // a Quiet decoded from JSON: read its clock times again
		if err := q.compile(); err != nil {
			return false
		}
	}
	t := now.In(q.loc)
	m := t.Hour()*60 + t.Minute()
	if q.from <= q.to {
		return m >= q.from && m < q.to
	}
	return m >= q.from || m < q.to
}

// Ends is when the quiet hours holding at now end (now itself when they do not hold): notifications
// held by them are sent then.
func (q *Quiet) Ends(now time.Time) time.Time {
	if !q.Holds(now) {
		return now
	}
	t := now.In(q.loc)
	end := time.Date(t.Year(), t.Month(), t.Day(), q.to/60, q.to%60, 0, 0, q.loc)
	if !end.After(t) {
		end = time.Date(t.Year(), t.Month(), t.Day()+1, q.to/60, q.to%60, 0, 0, q.loc)
	}
	return end
}

func (q *Quiet) compile() error {
	var err error
	if q.from, err = clock(q.From); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if q.to, err = clock(q.To); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	if q.loc, err = time.LoadLocation(q.Zone); err != nil {
		return fmt.Errorf("zone %q: %w", q.Zone, err)
	}
	return nil
}

var clockRE = regexp.MustCompile(`^([01]\d|2[0-3]):([0-5]\d)$`)

func clock(s string) (int, error) {
	m := clockRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a clock time such as 22:00", s)
	}
	h, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	return h*60 + mi, nil
}

var (
	topFields    = []string{"rules", "quiet"}
	ruleFields   = []string{"name", "kind", "targets", "metric", "labels", "above", "below", "clear", "for", "states", "plan", "failures", "within", "severity", "channels", "notifyResolved"}
	quietFields  = []string{"from", "to", "zone"}
	kinds        = []string{KindMetric, KindOffline, KindUnit, KindCommands}
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	// fieldsOf says which fields each kind takes beyond the common ones.
	fieldsOf = map[string][]string{
		KindMetric:   {"metric", "labels", "above", "below", "clear", "for"},
		KindOffline:  {"for"},
		KindUnit:     {"states", "plan", "for"},
		KindCommands: {"failures", "within"},
	}
	common = []string{"name", "kind", "targets", "severity", "channels", "notifyResolved"}
)

// Parse reads a rule set in YAML or JSON. It refuses, each at its line and column: syntax errors,
// unknown fields and fields the rule's kind does not take, missing or duplicate names, unknown kinds
// and severities, a metric rule without exactly one of above and below or whose clear is on the wrong
// side of its trigger, bad durations, numbers and clock times.
func Parse(src []byte) (*Rules, error) {
	var ps yamlsrc.Problems
	if len(src) > MaxSourceBytes {
		ps.Add(0, 0, "", "rules are %d bytes, more than %d", len(src), MaxSourceBytes)
		return nil, ps.Err("alert rules")
	}
	root, _, syntax := yamlsrc.Read(src)
	if syntax != nil {
		ps.List = append(ps.List, *syntax)
		return nil, ps.Err("alert rules")
	}
	if root == nil {
		ps.Add(1, 1, "", "empty rules: want a mapping with a list of rules")
		return nil, ps.Err("alert rules")
	}
	p := &parser{out: &Rules{locs: map[string][2]int{}}}
	p.w = yamlsrc.Walker{Problems: &ps, Record: func(n *yaml.Node, path string) { p.out.locs[path] = [2]int{n.Line, n.Column} }}
	p.top(root)
	if err := ps.Err("alert rules"); err != nil {
		return nil, err
	}
	return p.out, nil
}

type parser struct {
	w   yamlsrc.Walker
	out *Rules
}

func (p *parser) top(n *yaml.Node) {
	saw := false
	p.w.Pairs(n, "", topFields, func(key string, _, v *yaml.Node, path string) {
		switch key {
		case "rules":
			saw = true
			p.rules(v, path)
		case "quiet":
			p.quiet(v, path)
		}
	})
	if n.Kind == yaml.MappingNode && !saw {
		p.w.Errf(n, "rules", "no rules: want a list of rules (name, kind, …)")
	}
}

func (p *parser) rules(n *yaml.Node, path string) {
	if !p.w.Kind(n, path, yaml.SequenceNode, "a list of rules") {
		return
	}
	if len(n.Content) > MaxRules {
		p.w.Errf(n, path, "%d rules; at most %d", len(n.Content), MaxRules)
		return
	}
	names := map[string]int{}
	for i, e := range n.Content {
		sub := yamlsrc.Index(path, i)
		r, nameNode := p.rule(e, sub)
		if nameNode != nil {
			if first, dup := names[r.Name]; dup {
				p.w.Errf(nameNode, sub+".name", "rule %q is already defined at rules[%d]: rule names are unique", r.Name, first)
			}
			names[r.Name] = i
		}
		p.out.Rules = append(p.out.Rules, r)
	}
}

func (p *parser) rule(n *yaml.Node, path string) (Rule, *yaml.Node) {
	r := Rule{Targets: []string{"all"}, Severity: "warning", NotifyResolved: true}
	if !p.w.Kind(n, path, yaml.MappingNode, "a rule (a mapping with name and kind)") {
		return r, nil
	}
	// The kind decides which fields are known, so it is read first.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			if k, ok := p.w.Str(n.Content[i+1], path+".kind"); ok {
				if !slices.Contains(kinds, k) {
					p.w.Errf(n.Content[i+1], path+".kind", "unknown kind %q (want %s)", k, strings.Join(kinds, ", "))
				}
				r.Kind = k
			}
		}
	}
	known := ruleFields
	if fs, ok := fieldsOf[r.Kind]; ok {
		known = append(slices.Clone(common), fs...)
	}
	var nameNode *yaml.Node
	var belowNode, clearNode *yaml.Node
	p.w.Pairs(n, path, known, func(key string, _, v *yaml.Node, sub string) {
		switch key {
		case "name":
			if s, ok := p.w.Str(v, sub); ok {
				r.Name, nameNode = s, v
				if !wire.ValidName(s) {
					p.w.Errf(v, sub, "rule name %q: lower-case letters, digits and _, starting with a letter, at most 63 characters", s)
				}
			}
		case "targets":
			r.Targets = p.w.Strings(v, sub, true)
			if len(r.Targets) == 0 && v.Kind == yaml.SequenceNode {
				p.w.Errf(v, sub, "no targets: leave targets out for every agent")
			}
		case "metric":
			if s, ok := p.w.Str(v, sub); ok {
				r.Metric = s
				if !metricNameRE.MatchString(s) {
					p.w.Errf(v, sub, "%q is not a Prometheus metric name", s)
				}
			}
		case "labels":
			if p.w.Kind(v, sub, yaml.MappingNode, "a mapping of label names to values") {
				r.Labels = map[string]string{}
				p.w.Pairs(v, sub, nil, func(k string, _, lv *yaml.Node, lsub string) {
					if s, ok := p.w.Str(lv, lsub); ok {
						r.Labels[k] = s
					}
				})
			}
		case "above":
			r.Above = p.number(v, sub)
		case "below":
			r.Below, belowNode = p.number(v, sub), v
		case "clear":
			r.Clear, clearNode = p.number(v, sub), v
		case "for":
			r.ForSeconds = p.duration(v, sub, 0)
		case "within":
			r.WithinSeconds = p.duration(v, sub, time.Second)
		case "states":
			r.States = p.w.Strings(v, sub, true)
			for i, st := range r.States {
				if st != wire.UnitFailed && st != wire.UnitDrifted {
					p.w.Errf(v, yamlsrc.Index(sub, i), "unit state %q: want %s or %s", st, wire.UnitFailed, wire.UnitDrifted)
				}
			}
		case "plan":
			if s, ok := p.w.Str(v, sub); ok {
				r.Plan = s
				if !wire.ValidName(s) {
					p.w.Errf(v, sub, "plan name %q: lower-case letters, digits and _", s)
				}
			}
		case "failures":
			r.Failures = p.w.Int(v, sub)
			if r.Failures < 1 && v.Value == "0" {
				p.w.Errf(v, sub, "want at least 1 failure")
			}
		case "severity":
			if s, ok := p.w.Str(v, sub); ok {
				r.Severity = s
				if !slices.Contains(severities, s) {
					p.w.Errf(v, sub, "unknown severity %q (want %s)", s, strings.Join(severities, ", "))
				}
			}
		case "channels":
			r.Channels = p.w.Strings(v, sub, true)
			for i, c := range r.Channels {
				if !wire.ValidName(c) {
					p.w.Errf(v, yamlsrc.Index(sub, i), "channel name %q: lower-case letters, digits and _", c)
				}
			}
		case "notifyResolved":
			if p.w.Kind(v, sub, yaml.ScalarNode, "true or false") {
				if v.ShortTag() != "!!bool" {
					p.w.Errf(v, sub, "want true or false, got %q", v.Value)
				} else {
					r.NotifyResolved = v.Value == "true"
				}
			}
		}
	})
	missing := func(field, what string) {
		p.w.Errf(n, path+"."+field, "a %s rule needs %s", cmpOr(r.Kind, "an alert"), what)
	}
	if nameNode == nil && r.Name == "" {
		p.w.Errf(n, path+".name", "a rule needs a name (lower-case letters, digits and _), unique in the rules")
	}
	switch r.Kind {
	case "":
		p.w.Errf(n, path+".kind", "a rule needs a kind (%s)", strings.Join(kinds, ", "))
	case KindMetric:
		switch {
		case r.Metric == "":
			missing("metric", "a metric name")
		case r.Above == nil && r.Below == nil:
			missing("above", "a threshold: above or below")
		case r.Above != nil && r.Below != nil:
			p.w.Errf(belowNode, path+".below", "give above or below, not both: one rule watches one side")
		case r.Clear != nil && r.Above != nil && *r.Clear > *r.Above:
			p.w.Errf(clearNode, path+".clear", "clear %v is above the trigger %v: an alert on above resolves at or below its trigger", *r.Clear, *r.Above)
		case r.Clear != nil && r.Below != nil && *r.Clear < *r.Below:
			p.w.Errf(clearNode, path+".clear", "clear %v is below the trigger %v: an alert on below resolves at or above its trigger", *r.Clear, *r.Below)
		}
	case KindOffline:
		if r.ForSeconds == 0 {
			missing("for", "a duration the agent must be offline for (for: 2m)")
		}
	case KindUnit:
		if len(r.States) == 0 {
			r.States = []string{wire.UnitFailed, wire.UnitDrifted}
		}
	case KindCommands:
		if r.Failures == 0 {
			missing("failures", "a number of failures (failures: 3)")
		}
		if r.WithinSeconds == 0 {
			missing("within", "a window (within: 10m)")
		}
	}
	return r, nameNode
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (p *parser) number(n *yaml.Node, path string) *float64 {
	if !p.w.Kind(n, path, yaml.ScalarNode, "a number") {
		return nil
	}
	f, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || math.IsInf(f, 0) || math.IsNaN(f) {
		p.w.Errf(n, path, "want a number, got %q", n.Value)
		return nil
	}
	return &f
}

// duration reads "30s", "5m", "1h" as whole seconds, at least least.
func (p *parser) duration(n *yaml.Node, path string, least time.Duration) int {
	if !p.w.Kind(n, path, yaml.ScalarNode, `a duration such as "30s" or "5m"`) {
		return 0
	}
	d, err := time.ParseDuration(n.Value)
	switch {
	case n.ShortTag() == "!!int" && n.Value != "0":
		p.w.Errf(n, path, "want a duration with its unit, such as %ss", n.Value)
	case n.Value == "0" && least == 0:
	case err != nil:
		p.w.Errf(n, path, `want a duration such as "30s", "5m" or "1h", got %q`, n.Value)
	case d < least || d < 0 || d%time.Second != 0:
		p.w.Errf(n, path, "want a whole number of seconds, at least %s, got %q", max(least, time.Second), n.Value)
	case d > MaxFor:
		p.w.Errf(n, path, "at most %s, got %q", MaxFor, n.Value)
	default:
		return int(d / time.Second)
	}
	return 0
}

func (p *parser) quiet(n *yaml.Node, path string) {
	if !p.w.Kind(n, path, yaml.MappingNode, "a mapping with from, to and zone") {
		return
	}
	q := &Quiet{Zone: "UTC"}
	nodes := map[string]*yaml.Node{}
	p.w.Pairs(n, path, quietFields, func(key string, _, v *yaml.Node, sub string) {
		if s, ok := p.w.Str(v, sub); ok {
			nodes[key] = v
			switch key {
			case "from":
				q.From = s
			case "to":
				q.To = s
			case "zone":
				q.Zone = s
			}
		}
	})
	for _, f := range []string{"from", "to"} {
		if nodes[f] == nil {
			p.w.Errf(n, path+"."+f, "quiet hours need %s, a clock time such as 22:00", f)
			return
		}
	}
	if _, err := clock(q.From); err != nil {
		p.w.Errf(nodes["from"], path+".from", "%v", err)
	}
	if _, err := clock(q.To); err != nil {
		p.w.Errf(nodes["to"], path+".to", "%v", err)
	}
	if _, err := time.LoadLocation(q.Zone); err != nil {
		at := nodes["zone"]
		if at == nil {
			at = n
		}
		p.w.Errf(at, path+".zone", "unknown time zone %q", q.Zone)
	}
	if q.compile() == nil {
		p.out.Quiet = q
	}
}
