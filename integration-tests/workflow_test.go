package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/integration-tests/s3server"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// updateCatalog is what the seed's "Interactive System Update" needs once its shell lines are replaced
// by whitelisted commands.
var updateCatalog = []wire.CommandSpec{
	{Name: "apt_update", Group: "apt"},
	{Name: "apt_upgrade", Group: "apt", Params: []wire.ParamSpec{{Name: "assume_yes", Pattern: "true|false"}}},
	{Name: "reboot", Group: "power", Dangerous: true, Params: []wire.ParamSpec{{Name: "delay_minutes", Pattern: "[0-9]{1,3}"}}},
}

// TestWorkflowApply: the seed's workflow loads through the real hub and CLI; broken ones are refused at
// apply with the place and the reason, and nothing is stored for them.
func TestWorkflowApply(t *testing.T) {
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL)
	var tok struct {
		Token string `json:"token"`
	}
	op(t, h, admin, "POST", "/v1/enroll-tokens", map[string]any{}, &tok)
	if _, err := simagent.Enroll(context.Background(), h.url, tok.Token, "srv-1", updateCatalog); err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join("..", "functions", "workflow", "testdata", "interactive-system-update.json"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(src), 0o600)
		return p
	}
	out, errOut, code := pulseCLI(t, h.url, admin, "workflow", "apply", "-f", write("system-update.json", string(seed)))
	if code != 0 || !strings.Contains(out, "workflow system-update version 1 applied") {
		t.Fatalf("apply seed: exit %d %s %s", code, out, errOut)
	}
	out, _, _ = pulseCLI(t, h.url, admin, "workflow", "list")
	if !strings.Contains(out, "system-update") {
		t.Fatalf("list: %s", out)
	}

	const head = "steps:\n  - name: ask\n    type: prompt\n    message: Go?\n    options: [\"Yes\", \"No\"]\n"
	for _, c := range []struct {
		name, src string
		want      []string
	}{
		{"syntax", "steps:\n  - name: a\n    type: [execute\n", []string{"3"}},
		{"unknown-type", head + "  - name: b\n    type: teleport\n", []string{"7:11", "teleport"}},
		{"unknown-command", head + "  - name: b\n    type: execute\n    targets: all\n    command: format_disk\n", []string{"9:14", "format_disk"}},
		{"bad-param", head + "  - name: b\n    type: execute\n    targets: all\n    command: apt_upgrade\n    params: {assume_yes: maybe}\n", []string{"10:", "assume_yes"}},
		{"not-boolean", head + "  - name: b\n    type: wait\n    duration: 1s\n    condition: promptResponse\n", []string{"9:16", "bool"}},
		{"too-expensive", head + "  - name: b\n    type: wait\n    duration: 1s\n    condition: \"[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30].all(x, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30].all(y, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30].all(z, x + y + z > 0)))\"\n", []string{"9:", "too expensive"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := pulseCLI(t, h.url, admin, "workflow", "apply", "-f", write(c.name+".yaml", c.src))
			if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "HTTP 422") {
				t.Fatalf("exit %d, stderr %q; want one line with a 422", code, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if _, _, code := pulseCLI(t, h.url, admin, "workflow", "show", c.name); code == 0 {
				t.Errorf("refused workflow %s was stored", c.name)
			}
		})
	}
}
