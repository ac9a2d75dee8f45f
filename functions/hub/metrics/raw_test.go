package metrics

import (
	"reflect"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// TestColumnsRoundTrip: a batch part stored by columns reads back as it was sent, whether its series'
// points are evenly spaced (times elided), uneven (times kept) or single.
func TestColumnsRoundTrip(t *testing.T) {
	from := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	ms := from.UnixMilli()
	for _, tc := range []struct {
		name   string
		points []wire.Point
		even   bool
	}{
		{"even", []wire.Point{{T: ms, V: 1}, {T: ms + 10000, V: 2.5}, {T: ms + 20000, V: 3}}, true},
		{"uneven", []wire.Point{{T: ms, V: 1}, {T: ms + 10000, V: 2}, {T: ms + 25000, V: 3}}, false},
		{"one point", []wire.Point{{T: ms + 5, V: 7}}, false},
		{"none", []wire.Point{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := wire.MetricBatch{Seq: 3, From: from, To: from.Add(time.Minute), IntervalSeconds: 10,
				Series: []wire.Series{{Name: "x", Kind: wire.MetricGauge, Labels: map[string]string{"a": "b"}, Points: tc.points}}}
			o := columns(b)
			if got := o.Series[0].T == nil && o.Series[0].DT != 0; got != tc.even {
				t.Errorf("times elided = %v, want %v: %+v", got, tc.even, o.Series[0])
			}
			if back := o.batch(); !reflect.DeepEqual(*back, b) {
				t.Errorf("read back %+v, want %+v", *back, b)
			}
		})
	}
}
