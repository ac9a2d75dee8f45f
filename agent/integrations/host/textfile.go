package host

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pulsehq/pulse/agent/wire"
)

// Textfile limits: a directory of scripts' output must not grow a batch without bound.
const (
	maxTextfiles      = 100
	maxTextfileBytes  = 1 << 20
	maxTextfileSeries = 1000
)

// textfiles reads the metrics that scripts and cron jobs left in dir, in the Prometheus text format,
// one or more `*.prom` files (node_exporter's textfile collector: a job writes `name.prom.tmp` and
// renames it, so a file is never read half written). This is how a fleet reports what no built-in
// sampler measures (a backup's age, a queue's length, a RAID controller's state) without a plugin:
// the next sample picks the values up. Gauges and untyped values are gauges, counters stay counters;
// summaries and histograms are refused by name. Each file is read on its own: a broken file is named
// in the error and the others' series are kept.
func (s *series) textfiles(dir string) {
	if dir == "" {
		return
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.prom"))
	if err != nil {
		s.fail("textfile "+dir, err)
		return
	}
	slices.Sort(matches)
	if len(matches) > maxTextfiles {
		s.fail("textfile "+dir, fmt.Errorf("%d *.prom files, reading the first %d", len(matches), maxTextfiles))
		matches = matches[:maxTextfiles]
	}
	count := 0
	for _, path := range matches {
		fams, err := parseTextfile(path)
		if err != nil {
			s.fail("textfile", err)
			continue
		}
		names := make([]string, 0, len(fams))
		for n := range fams {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			f := fams[n]
			kind := wire.MetricGauge
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				kind = wire.MetricCounter
			case dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
			default:
				s.fail("textfile", fmt.Errorf("%s: %s is a %s; only gauges, counters and untyped values are taken", path, n, strings.ToLower(f.GetType().String())))
				continue
			}
			for _, m := range f.GetMetric() {
				if count >= maxTextfileSeries {
					s.fail("textfile", fmt.Errorf("more than %d series in %s: the rest are left out", maxTextfileSeries, dir))
					return
				}
				labels := make([]string, 0, 2*len(m.GetLabel()))
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName(), l.GetValue())
				}
				v := m.GetGauge().GetValue()
				switch {
				case kind == wire.MetricCounter:
					v = m.GetCounter().GetValue()
				case f.GetType() == dto.MetricType_UNTYPED:
					v = m.GetUntyped().GetValue()
				}
				s.add(n, kind, v, labels...)
				count++
			}
		}
	}
}

// parseTextfile reads one file of the Prometheus text format.
func parseTextfile(path string) (map[string]*dto.MetricFamily, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if fi.Size() > maxTextfileBytes {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", path, fi.Size(), maxTextfileBytes)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fams, nil
}
