package alert

import (
	"errors"
	"testing"

	"github.com/pulsehq/pulse/functions/yamlsrc"
)

// FuzzParse: whatever the source, Parse answers rules or a placed refusal, never a panic, and a rule
// set it accepts holds what its engine relies on (a metric rule has exactly one trigger).
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("rules:\n  - {name: a, kind: metric, metric: x, above: 1, clear: 0.5}\n"))
	f.Add([]byte(`{"rules": [{"name": "b", "kind": "offline", "for": "1m"}]}`))
	f.Add([]byte("rules: [{name: c, kind: unit, states: failed}]\nquiet: {from: '23:59', to: '00:00'}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		rs, err := Parse(src)
		if err != nil {
			var ye *yamlsrc.Error
			if !errors.As(err, &ye) || len(ye.Problems) == 0 {
				t.Fatalf("refusal without problems: %v", err)
			}
			return
		}
		for _, r := range rs.Rules {
			if r.Kind == KindMetric && (r.Above == nil) == (r.Below == nil) {
				t.Fatalf("metric rule %s accepted with above=%v below=%v", r.Name, r.Above, r.Below)
			}
		}
	})
}
