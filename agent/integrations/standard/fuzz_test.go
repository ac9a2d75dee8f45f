package standard_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/kernel"
)

// FuzzAgentConfig feeds arbitrary agent.toml documents through what the agent does with its config:
// kernel.ParseConfig, then loading the built-in integrations from the tables it returns. Properties:
// nothing panics (not even inside an integration, where Load would hide it as a disabled status); a
// document that is not TOML loses every table and says so once; every [agent] value kept is valid; an
// integration that does not run says why.
func FuzzAgentConfig(f *testing.F) {
	for _, seed := range []string{
		"",
		"[agent]\nhub = \"https://hub.example\"\nstate_dir = \"/var/lib/pulse-agent\"\nheartbeat = \"30s\"\nlog_level = \"debug\"\n",
		"[agent]\nhub = \"ftp://x\"\nheartbeat = 5\nlog_level = \"loud\"\ncolour = \"blue\"\n",
		"[agent\nhub = 1",
		"agent = 3\nexec = \"x\"\n",
		"[exec.commands.df]\nbinary = \"/bin/df\"\nargs = [\"-h\", \"{{path}}\"]\ntimeout = \"30s\"\n[exec.commands.df.params.path]\npattern = \"/[a-z/]*\"\nmax_bytes = 256\nrequired = true\n",
		"[exec.commands.bad]\nbinary = \"relative/tool\"\n",
		"[exec.commands.x]\nbinary = \"/bin/echo\"\nargs = [\"{{nobody}}\"]\n",
		"[exec.commands.y]\nbinary = \"/bin/echo\"\ntimeout = \"-1s\"\n[exec.commands.y.params.p]\npattern = \"(\"\n",
		"[exec]\ncommands = 7\n",
		"[shell]\nenabled = true\n[host]\nx = [1, {a = 2}]\n",
		"[nosuchintegration]\nk = 1\n",
		"[agent]\nheartbeat = \"0s\"\n[[exec.commands]]\n",
		"[agent]\nplan_period = \"90s\"\n[files]\nroots = [\"/etc/app\", \"/\", \"rel\"]\n",
		"[process]\nallow = [\"/usr/bin/sleep\", \"/opt/[x\"]\nstop_grace = \"-1s\"\n",
		"[files]\nroots = 3\n[process]\nallow = [\"/bin/*\"]\n",
		"[container]\nallow_images = [\"\"]\nallow_mounts = [\"/\"]\nsocket = \"tcp://10.0.0.1:2375\"\nname_prefix = \"-x\"\n",
		"[container]\nallow_images = [\"sha256:\"]\nsocket = \"unix:///nonexistent/docker.sock\"\nmin_free_mb = -1\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := kernel.ParseConfig(data)
		var doc map[string]any
		if toml.Unmarshal(data, &doc) != nil {
			if len(cfg.Problems) != 1 || !strings.HasPrefix(cfg.Problems[0], "syntax error") || cfg.Integrations != nil {
				t.Fatalf("a TOML error must lose every table with one problem: %+v", cfg)
			}
			return
		}
		if cfg.Hub != "" && kernel.CheckHubURL(cfg.Hub) != nil {
			t.Fatalf("kept an invalid hub URL %q", cfg.Hub)
		}
		if cfg.Heartbeat < 0 {
			t.Fatalf("kept a negative heartbeat %v", cfg.Heartbeat)
		}
		if cfg.LogLevel != "" {
			if _, err := kernel.ParseLevel(cfg.LogLevel); err != nil {
				t.Fatalf("kept an invalid log level %q", cfg.LogLevel)
			}
		}
		if _, ok := cfg.Integrations["agent"]; ok {
			t.Fatal("the [agent] table was handed to the integrations")
		}
		set := integration.Load(context.Background(), cfg.Integrations, nil)
		for _, st := range set.Statuses() {
			if strings.Contains(st.Reason, "panic") {
				t.Fatalf("integration %s panicked on this config: %s", st.ID, st.Reason)
			}
			if !st.Enabled && st.Reason == "" {
				t.Fatalf("integration %s disabled without a reason", st.ID)
			}
		}
		for _, spec := range set.Catalog() {
			if err := spec.Check(); err != nil {
				t.Fatalf("the catalog holds an unenforceable command: %v", errors.Unwrap(err))
			}
		}
	})
}
