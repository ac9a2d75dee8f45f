package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	cases := []struct {
		name, file string
		env        map[string]string
		check      func(Hub) bool
		err        string
	}{
		{name: "defaults", check: func(h Hub) bool { return h.Addr == "127.0.0.1:8080" && h.Store == "file:pulse-data" }},
		{name: "file", file: "addr = \"0.0.0.0:9000\"\nshutdown_grace = \"3s\"\n[log]\nformat = \"json\"\n",
			check: func(h Hub) bool {
				return h.Addr == "0.0.0.0:9000" && h.ShutdownGrace.Duration == 3*time.Second && h.Log.Format == "json" && h.Log.Level == "info"
			}},
		{name: "env beats file", file: "store = \"file:///a\"\n", env: map[string]string{"PULSE_STORE": "file:///b"},
			check: func(h Hub) bool { return h.Store == "file:///b" }},
		{name: "unknown key", file: "addr = \"x\"\nstroe = \"y\"\n", err: `unknown key "stroe" (line 2)`},
		{name: "bad duration", file: "shutdown_grace = \"soon\"\n", err: "want a number with a unit"},
		{name: "syntax", file: "addr = \n", err: "line 1"},
		{name: "wrong type", file: "addr = 8080\n", err: "line 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			path := ""
			if c.file != "" {
				path = filepath.Join(t.TempDir(), "pulse.toml")
				os.WriteFile(path, []byte(c.file), 0o600)
			}
			h, err := Load(path)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Load: %v; want error containing %q", err, c.err)
				}
				return
			}
			if err != nil || !c.check(h) {
				t.Fatalf("Load = %+v, %v", h, err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	bad := []func(*Hub){
		func(h *Hub) { h.Addr = "" },
		func(h *Hub) { h.Log.Level = "loud" },
		func(h *Hub) { h.Log.Format = "xml" },
	}
	for i, mutate := range bad {
		h := Defaults()
		mutate(&h)
		if h.Validate() == nil {
			t.Errorf("case %d: Validate accepted %+v", i, h)
		}
	}
	if err := Defaults().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

// TestExampleConfigLoads keeps the shipped example valid.
func TestExampleConfigLoads(t *testing.T) {
	h, err := Load(filepath.Join("..", "..", "infra", "pulse.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if h.Store != "file:///var/lib/pulse" || h.Log.Format != "json" {
		t.Fatalf("example loaded as %+v", h)
	}
}

// TestMetricsRetention: the [metrics] table sets each tier's retention; a grace as long as the raw
// retention is refused, because raw batches would be deleted before their hour is compacted.
func TestMetricsRetention(t *testing.T) {
	for _, tc := range []struct {
		name, toml, wantErr string
	}{
		{"defaults", "", ""},
		{"all set", "[metrics]\nraw = \"48h\"\nminute = \"336h\"\nhour = \"2160h\"\nday = \"8760h\"\ngrace = \"6h\"\n", ""},
		{"grace too long", "[metrics]\ngrace = \"24h\"\n", "metrics.grace"},
		{"negative", "[metrics]\nminute = \"-1h\"\n", "metrics.minute"},
		{"unknown key", "[metrics]\nweekly = \"1h\"\n", "unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hub.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err == nil {
				err = cfg.Validate()
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestCORSOrigins: cors_origins takes exact origins as browsers send them, or *; anything else is
// refused with what an origin looks like.
func TestCORSOrigins(t *testing.T) {
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://dash.example.com", true},
		{"http://127.0.0.1:5173", true},
		{"*", true},
		{"https://dash.example.com/", false},
		{"https://dash.example.com/app", false},
		{"dash.example.com", false},
		{"ftp://dash.example.com", false},
		{"https://Dash.example.com", false},
		{"", false},
	} {
		h := Defaults()
		h.CORSOrigins = []string{tc.origin}
		err := h.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok %v", tc.origin, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "scheme://host") && !strings.Contains(err.Error(), "lower case") {
			t.Errorf("%q: %v does not say what an origin looks like", tc.origin, err)
		}
	}
}
