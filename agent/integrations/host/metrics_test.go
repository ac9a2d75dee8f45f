package host_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// sampleHost samples this machine once through the integration, as the kernel does.
func sampleHost(t *testing.T, raw map[string]any) ([]wire.Series, time.Time) {
	t.Helper()
	s := integration.Load(context.Background(), map[string]any{"host": raw}, nil)
	sm := s.Samplers()
	if len(sm) != 1 || sm[0].ID != "host" {
		t.Fatalf("samplers = %+v", sm)
	}
	now := time.Now()
	series, err := sm[0].Sample(context.Background(), now)
	if err != nil {
		t.Logf("partial sample (tolerated): %v", err)
	}
	if len(series) == 0 {
		t.Fatal("no series sampled on this host")
	}
	return series, now
}

// TestHostSamplesFollowPrometheusConventions samples the real host and holds every series to the
// naming rules of docs/metrics-agent.md: counters end in _total, gauges in a base unit or are one of
// the unitless counts, ratios stay in 0–1, every series of a labelled family carries its labels, and
// one sample is one point at the sample time, with no two series alike.
func TestHostSamplesFollowPrometheusConventions(t *testing.T) {
	series, now := sampleHost(t, nil)
	unitless := map[string]bool{"node_load1": true, "node_load5": true, "node_load15": true,
		"node_procs": true, "node_procs_running": true, "node_procs_blocked": true}
	gaugeUnit := regexp.MustCompile(`_(bytes|seconds|celsius|ratio|files|files_free)$`)
	families := []struct {
		prefix string
		labels []string
	}{
		{"node_cpu_seconds_total", []string{"mode"}},
		{"node_filesystem_", []string{"mountpoint", "device", "fstype"}},
		{"node_disk_", []string{"device"}},
		{"node_network_", []string{"device"}},
		{"node_hwmon_temp_celsius", []string{"sensor"}},
	}
	seen := map[string]bool{}
	names := map[string]int{}
	for _, s := range series {
		key := s.Name + "{" + labelString(s.Labels) + "}"
		if seen[key] {
			t.Errorf("series %s sampled twice", key)
		}
		seen[key] = true
		names[s.Name]++
		if len(s.Points) != 1 || s.Points[0].T != now.UnixMilli() {
			t.Errorf("%s: points %+v, want one at %d", key, s.Points, now.UnixMilli())
		}
		v := s.Points[0].V
		switch s.Kind {
		case wire.MetricCounter:
			if !strings.HasSuffix(s.Name, "_total") {
				t.Errorf("counter %s does not end in _total", s.Name)
			}
			if v < 0 {
				t.Errorf("counter %s = %v < 0", key, v)
			}
		case wire.MetricGauge:
			if strings.HasSuffix(s.Name, "_total") {
				t.Errorf("gauge %s ends in _total", s.Name)
			}
			if !unitless[s.Name] && !gaugeUnit.MatchString(s.Name) {
				t.Errorf("gauge %s names no base unit", s.Name)
			}
		default:
			t.Errorf("%s: kind %q", key, s.Kind)
		}
		if strings.HasSuffix(s.Name, "_ratio") && (v < 0 || v > 1) {
			t.Errorf("ratio %s = %v outside 0–1", key, v)
		}
		if strings.HasSuffix(s.Name, "_bytes") && v < 0 {
			t.Errorf("%s = %v bytes", key, v)
		}
		for _, f := range families {
			if strings.HasPrefix(s.Name, f.prefix) {
				for _, l := range f.labels {
					if s.Labels[l] == "" {
						t.Errorf("%s lacks label %q", key, l)
					}
				}
			}
		}
	}
	// What every Linux host (and this one) has; filesystems, disks, interfaces and sensors depend on
	// the machine and are checked above when present.
	for _, want := range []struct {
		name string
		n    int
	}{
		{"node_cpu_seconds_total", 8}, {"node_load1", 1}, {"node_load5", 1}, {"node_load15", 1},
		{"node_memory_MemTotal_bytes", 1}, {"node_memory_MemAvailable_bytes", 1}, {"node_memory_SwapTotal_bytes", 1},
		{"node_boot_time_seconds", 1}, {"node_procs", 1},
	} {
		if names[want.name] != want.n {
			t.Errorf("%d series %s, want %d", names[want.name], want.name, want.n)
		}
	}
	for _, fam := range []string{"node_filesystem_size_bytes", "node_network_receive_bytes_total", "node_disk_read_bytes_total"} {
		if names[fam] == 0 {
			t.Logf("this host has no %s series (no real filesystem, interface or disk visible)", fam)
		}
	}
	b := wire.MetricBatch{Seq: 1, From: now, To: now.Add(time.Millisecond), IntervalSeconds: 10, Series: series}
	if err := b.Validate(); err != nil {
		t.Fatalf("a sample is not a valid batch: %v", err)
	}
	t.Logf("%d series per sample on this host: %v", len(series), names)
}

// TestHostSamplesOnlyRealFilesystems checks that kernel views and memory-backed mounts, which a host
// has dozens of, do not become series.
func TestHostSamplesOnlyRealFilesystems(t *testing.T) {
	series, _ := sampleHost(t, nil)
	for _, s := range series {
		if !strings.HasPrefix(s.Name, "node_filesystem_") {
			continue
		}
		mp, fs := s.Labels["mountpoint"], s.Labels["fstype"]
		for _, bad := range []string{"proc", "sysfs", "tmpfs", "devtmpfs", "cgroup", "cgroup2", "devpts"} {
			if fs == bad {
				t.Errorf("pseudo filesystem sampled: %s on %s", fs, mp)
			}
		}
		if strings.HasPrefix(mp, "/proc") || strings.HasPrefix(mp, "/sys") {
			t.Errorf("kernel view sampled: %s", mp)
		}
	}
}

func TestHostMetricsConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		raw   map[string]any
		every time.Duration // 0: no sampler
		bad   string        // part of the disabled reason
	}{
		{"default", nil, 10 * time.Second, ""},
		{"sample_every", map[string]any{"sample_every": "30s"}, 30 * time.Second, ""},
		{"off", map[string]any{"metrics": false}, 0, ""},
		{"on explicitly", map[string]any{"metrics": true, "sample_every": "1s"}, time.Second, ""},
		{"too often", map[string]any{"sample_every": "100ms"}, 0, "sample_every"},
		{"not a duration", map[string]any{"sample_every": "often"}, 0, "sample_every"},
		{"typo", map[string]any{"sample_evry": "10s"}, 0, "sample_evry"},
		{"textfile_dir", map[string]any{"textfile_dir": "/var/lib/pulse/textfile"}, 10 * time.Second, ""},
		{"relative textfile_dir", map[string]any{"textfile_dir": "textfile"}, 0, "absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := integration.Load(context.Background(), map[string]any{"host": tc.raw}, nil)
			st := s.Statuses()[0]
			if tc.bad != "" {
				if st.Enabled || !strings.Contains(st.Reason, tc.bad) {
					t.Fatalf("status %+v, want disabled naming %q", st, tc.bad)
				}
				return
			}
			if !st.Enabled {
				t.Fatalf("disabled: %s", st.Reason)
			}
			sm := s.Samplers()
			switch {
			case tc.every == 0 && len(sm) != 0:
				t.Fatalf("samplers %+v, want none", sm)
			case tc.every != 0 && (len(sm) != 1 || sm[0].Every != tc.every):
				t.Fatalf("samplers %+v, want one every %s", sm, tc.every)
			}
			if len(s.Catalog()) != 3 {
				t.Fatalf("commands lost with the metrics setting: %v", s.Catalog())
			}
		})
	}
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + l[k] + ",")
	}
	return b.String()
}
