package integration_test

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/pulsehq/pulse/agent/integration"
)

type sampleConfig struct {
	Name  string `toml:"name"`
	Port  int    `toml:"port"`
	Items map[string]struct {
		Path string `toml:"path"`
	} `toml:"items"`
}

func TestDecodeConfig(t *testing.T) {
	parse := func(doc string) map[string]any {
		var m map[string]any
		if err := toml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("parse %q: %v", doc, err)
		}
		return m
	}

	t.Run("absent table keeps defaults", func(t *testing.T) {
		c := sampleConfig{Port: 8080}
		if err := integration.DecodeConfig(nil, &c); err != nil || c.Port != 8080 {
			t.Fatalf("DecodeConfig(nil) = %v, port %d", err, c.Port)
		}
	})
	t.Run("decodes", func(t *testing.T) {
		c := sampleConfig{Port: 8080}
		err := integration.DecodeConfig(parse("name = \"n\"\n[items.one]\npath = \"/x\"\n"), &c)
		if err != nil || c.Name != "n" || c.Port != 8080 || c.Items["one"].Path != "/x" {
			t.Fatalf("got %+v, %v", c, err)
		}
	})

	cases := []struct {
		name string
		doc  string
		want string
	}{
		{"unknown key", `nmae = "typo"`, `unknown key "nmae"`},
		{"unknown nested key", "[items.one]\npath = \"/x\"\npaht = \"/y\"\n", `unknown key "items.one.paht"`},
		{"wrong type", `port = "eighty"`, `key "port"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c sampleConfig
			err := integration.DecodeConfig(parse(tc.doc), &c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeConfig error = %v, want it to mention %s", err, tc.want)
			}
		})
	}

	t.Run("not a pointer", func(t *testing.T) {
		if err := integration.DecodeConfig(map[string]any{"name": "x"}, sampleConfig{}); err == nil {
			t.Fatal("decoding into a non-pointer was accepted")
		}
	})
}
