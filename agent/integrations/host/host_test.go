package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/integrations/host"
	"github.com/pulsehq/pulse/agent/wire"
)

func run(t *testing.T, s *integration.Set, name string) string {
	t.Helper()
	var out bytes.Buffer
	res := s.Run(context.Background(), wire.Command{Name: name}, &out)
	if res.Status != wire.StatusSucceeded {
		t.Fatalf("%s = %+v\n%s", name, res, out.String())
	}
	return out.String()
}

func TestHostEnabledByDefault(t *testing.T) {
	s := integration.Load(context.Background(), nil, nil)
	st := s.Statuses()
	if len(st) != 1 || st[0].ID != "host" || !st[0].Enabled {
		t.Fatalf("statuses = %+v", st)
	}
	var names []string
	for _, c := range s.Catalog() {
		names = append(names, c.Name)
		if c.Dangerous || c.Group != "host" {
			t.Errorf("spec %+v", c)
		}
	}
	if got := strings.Join(names, ","); got != "host_info,host_refresh,host_uptime" {
		t.Fatalf("catalog = %s", got)
	}
}

func TestHostInfoIsJSON(t *testing.T) {
	s := integration.Load(context.Background(), nil, nil)
	for _, name := range []string{"host_info", "host_refresh"} {
		var info host.Info
		out := run(t, s, name)
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("%s output is not JSON: %v\n%s", name, err, out)
		}
		if info.Hostname == "" || info.OS == "" || info.Arch == "" || info.CPUs < 1 {
			t.Fatalf("%s = %+v", name, info)
		}
		t.Logf("%s:\n%s", name, out)
		if len(info.Problems) > 0 {
			t.Logf("%s problems (tolerated): %v", name, info.Problems)
		}
	}
}

func TestHostUptime(t *testing.T) {
	s := integration.Load(context.Background(), nil, nil)
	out := run(t, s, "host_uptime")
	if !regexp.MustCompile(`^up (\d+d \d+h \d+m|\d+h \d+m|\d+m) \(boot \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)\n$`).MatchString(out) {
		t.Fatalf("host_uptime = %q", out)
	}
}

func TestFormatUptime(t *testing.T) {
	boot := time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC)
	for up, want := range map[time.Duration]string{
		3*24*time.Hour + 4*time.Hour + 12*time.Minute + 30*time.Second: "up 3d 4h 12m (boot 2026-11-19T08:00:00Z)",
		4*time.Hour + 59*time.Second:                                   "up 4h 0m (boot 2026-11-19T08:00:00Z)",
		42 * time.Second:                                               "up 0m (boot 2026-11-19T08:00:00Z)",
	} {
		if got := host.FormatUptime(up, boot); got != want {
			t.Errorf("FormatUptime(%s) = %q, want %q", up, got, want)
		}
	}
}

func TestHostRefusesConfigKeys(t *testing.T) {
	s := integration.Load(context.Background(), map[string]any{"host": map[string]any{"interval": "10s"}}, nil)
	st := s.Statuses()[0]
	if st.Enabled || !strings.Contains(st.Reason, `unknown key "interval"`) {
		t.Fatalf("host with an unknown key = %+v", st)
	}
	// An empty [host] table is fine.
	if st := integration.Load(context.Background(), map[string]any{"host": map[string]any{}}, nil).Statuses()[0]; !st.Enabled {
		t.Fatalf("host with an empty table = %+v", st)
	}
}

func TestFacts(t *testing.T) {
	f := host.Facts(context.Background())
	for _, k := range []string{"hostname", "os", "arch"} {
		if f[k] == "" {
			t.Errorf("fact %s empty in %v", k, f)
		}
	}
	for _, k := range []string{"platform", "kernel"} {
		if _, ok := f[k]; !ok {
			t.Errorf("fact %s missing from %v", k, f)
		}
	}
}
