package wire

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestMetricBatchValidate(t *testing.T) {
	from := time.UnixMilli(1_700_000_000_000).UTC()
	good := func() MetricBatch {
		return MetricBatch{Seq: 1, From: from, To: from.Add(5 * time.Minute), IntervalSeconds: 10, Series: []Series{
			{Name: "node_load1", Kind: MetricGauge, Points: []Point{{T: from.UnixMilli(), V: 0.5}, {T: from.UnixMilli() + 10_000, V: 0.7}}},
			{Name: "node_network_receive_bytes_total", Kind: MetricCounter, Labels: map[string]string{"device": "eth0"}, Points: []Point{{T: from.UnixMilli(), V: 1}}},
		}}
	}
	for _, tc := range []struct {
		name string
		mod  func(b *MetricBatch)
		bad  string
	}{
		{"good", func(*MetricBatch) {}, ""},
		{"seq 0", func(b *MetricBatch) { b.Seq = 0 }, "seq"},
		{"to before from", func(b *MetricBatch) { b.To = b.From }, "before"},
		{"too long", func(b *MetricBatch) { b.To = b.From.Add(25 * time.Hour) }, "spans"},
		{"no interval", func(b *MetricBatch) { b.IntervalSeconds = 0 }, "intervalSeconds"},
		{"bad name", func(b *MetricBatch) { b.Series[0].Name = "node-load" }, "Prometheus metric name"},
		{"bad kind", func(b *MetricBatch) { b.Series[0].Kind = "histogram" }, "kind"},
		{"bad label", func(b *MetricBatch) { b.Series[1].Labels = map[string]string{"de-vice": "x"} }, "label"},
		{"point outside", func(b *MetricBatch) { b.Series[0].Points[1].T = b.To.UnixMilli() }, "outside"},
		{"out of order", func(b *MetricBatch) { b.Series[0].Points[1].T = b.Series[0].Points[0].T }, "order"},
		{"NaN", func(b *MetricBatch) { b.Series[0].Points[0].V = math.NaN() }, "not a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := good()
			tc.mod(&b)
			err := b.Validate()
			switch {
			case tc.bad == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
				t.Fatalf("got %v, want an error containing %q", err, tc.bad)
			}
		})
	}
}
