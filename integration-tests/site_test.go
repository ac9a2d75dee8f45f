package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// chromiumBin is Debian's Chromium, installed by `integration-tests/tools/install.sh chromium`
// (make test does); PULSE_CHROMIUM_BIN names another. With PULSE_CHROMIUM_BIN set, a missing
// browser fails the dashboard test instead of skipping it.
func chromiumBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PULSE_CHROMIUM_BIN")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("PULSE_CHROMIUM_BIN") != "" {
			t.Fatalf("PULSE_CHROMIUM_BIN=%s: %v", bin, err)
		}
		t.Skipf("no Chromium at %s (integration-tests/tools/install.sh chromium installs Debian's)", bin)
	}
	return bin
}

// dashboardSetup is what TestDashboard and BenchmarkDashboard run Playwright against: the dashboard
// built by site/build.sh (npm ci, vite build) and embedded in a real pulse serve on MinIO, with a real
// pulse-agent whose exec integration is soft-disabled by a broken command, whose shell hatch is
// unsealed on the host and whose files integration may write plan files under a directory of the
// test; the same build served by a plain file server on another origin (CORS); a viewer token and
// two more admins; and a test-only server that plays a bucket writer on the audit trail.
type dashboardSetup struct {
	site string // the site/ directory
	hub  *hubProc
	// env is the environment Playwright runs with: the hub, the tokens, the agent's name, the other
	// origin, the audit tamperer, the browser.
	env []string
}

// startDashboard builds and starts everything a dashboard run needs, stopped when t ends.
func startDashboard(t testing.TB) *dashboardSetup {
	chromium := chromiumBin(t)
	site, err := filepath.Abs("../site")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("bash", "build.sh")
	build.Dir = site
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("site/build.sh: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "pulse")
	gob := exec.Command("go", "build", "-o", bin, "./functions/cmd/pulse")
	gob.Dir = ".."
	if out, err := gob.CombinedOutput(); err != nil {
		t.Fatalf("go build pulse with the dashboard: %v\n%s", err, out)
	}

	// The same build as plain static files on another origin, with a config.json naming the hub: the
	// hub allows that origin (--cors-origin), as for a bucket or CDN deployment.
	static, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	staticURL := "http://" + static.Addr().String()

	storeURL, admin := initStore(t, dir)
	// The browser's own address is a trusted forward-auth proxy, so a page whose requests carry
	// Remote-User (as a proxy would add) is signed in without a token (e2e/forward.spec.ts).
	hubConf := filepath.Join(dir, "hub.toml")
	if err := os.WriteFile(hubConf, []byte("[auth.forward]\ntrusted_proxies = [\"127.0.0.1\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHubBin(t, bin, dir, freeAddr(t), s3server.Env(), "--config", hubConf, "--store", storeURL, "--poll-hold", "5s", "--cors-origin", staticURL)
	root := filepath.Join(dir, "static")
	if err := os.CopyFS(root, os.DirFS(filepath.Join(site, "dist", "app"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "config.json"), []byte(`{"hub": "`+h.url+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	files := &http.Server{Handler: http.FileServer(http.Dir(root))}
	go files.Serve(static)
	t.Cleanup(func() { files.Close() })
	tok, errOut, code := pulseCLI(t, h.url, admin, "enroll-token", "create", "--labels", "env=e2e,role=web")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", errOut)
	}
	stateDir := filepath.Join(dir, "agent")
	// Plans may write files under planFiles (e2e/plans.spec.ts applies file units there).
	planFiles := filepath.Join(dir, "plan-files")
	if err := os.MkdirAll(planFiles, 0o755); err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(agentConfig, "[agent]\n", "[agent]\ninventory = \"1s\"\nmetrics_upload = \"2s\"\n", 1) +
		"\n[exec.commands.bad_cmd]\nbinary = \"relative/tool\"\n\n[files]\nroots = [\"" + planFiles + "\"]\n"
	agentID := startAgent(t, h.url, stateDir, broken, "--enroll-token", strings.TrimSpace(tok)).id()
	viewer, errOut, code := pulseCLI(t, h.url, admin, "token", "create", "--name", "e2e-viewer", "--groups", "viewer")
	if code != 0 {
		t.Fatalf("token create --groups viewer: %s", errOut)
	}
	// Two more admins, each a person of their own, to approve the bootstrap admin's shell_run (the
	// default policy wants two admins other than the requester), and Bob approves a plan Ada applies on
	// env=prod.
	approvers := map[string]string{}
	for _, who := range []string{"ada", "bob"} {
		out, errOut, code := pulseCLI(t, h.url, admin, "token", "create", "--name", who, "--groups", "admin", "--for", who)
		if code != 0 {
			t.Fatalf("token create %s: %s", who, errOut)
		}
		approvers[who] = strings.TrimSpace(out)
	}

	host, _ := os.Hostname()
	unseal := exec.Command(agentBin, "unseal", "--for", "10m", "--state-dir", stateDir)
	unseal.Stdin = strings.NewReader(host + "\n")
	if out, err := unseal.CombinedOutput(); err != nil {
		t.Fatalf("unseal: %v\n%s", err, out)
	}
	var name string
	waitFor(t, "the agent online, exec disabled and the hatch open", 30*time.Second, func() bool {
		out, _, _ := pulseCLI(t, h.url, admin, "agents", "--json")
		var l struct {
			Agents []struct {
				Name     string            `json:"name"`
				Online   bool              `json:"online"`
				Disabled []json.RawMessage `json:"disabled"`
				Hatch    *struct {
					Open bool `json:"open"`
				} `json:"hatch"`
			} `json:"agents"`
		}
		if json.Unmarshal([]byte(out), &l) != nil || len(l.Agents) != 1 {
			return false
		}
		a := l.Agents[0]
		name = a.Name
		return a.Online && len(a.Disabled) > 0 && a.Hatch != nil && a.Hatch.Open
	})
	waitFor(t, "the agent's root mount in its inventory", 30*time.Second, func() bool {
		out, _, _ := pulseCLI(t, h.url, admin, "resources", "--json", "--agent", agentID)
		return strings.Contains(out, `"mount"`)
	})
	tamper := startAuditTamperer(t, storeURL)
	return &dashboardSetup{site: site, hub: h, env: []string{
		"PULSE_E2E_HUB=" + h.url + "/", "PULSE_E2E_TOKEN=" + admin, "PULSE_E2E_AGENT=" + name, "PULSE_E2E_AGENT_ID=" + agentID,
		"PULSE_E2E_VIEWER=" + strings.TrimSpace(viewer), "PULSE_E2E_STATIC=" + staticURL + "/",
		"PULSE_E2E_ADA=" + approvers["ada"], "PULSE_E2E_BOB=" + approvers["bob"],
		"PULSE_E2E_FILES=" + planFiles, "PULSE_E2E_TAMPER=" + tamper,
		"PULSE_CHROMIUM_BIN=" + chromium, "CI=1",
	}}
}

// playwright runs the site's Playwright suite with args (a project, files) and extra environment, and
// returns what it printed.
func (d *dashboardSetup) playwright(args []string, env ...string) (string, error) {
	pw := exec.Command(filepath.Join(d.site, "node_modules", ".bin", "playwright"), append([]string{"test"}, args...)...)
	pw.Dir = d.site
	pw.Env = append(append(os.Environ(), d.env...), env...)
	out, err := pw.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("playwright test %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// startAuditTamperer starts a test-only HTTP server on a loopback port that plays a bucket writer on
// the audit trail of the hub on storeURL, holding MinIO's credentials as such a writer would: POST
// /tamper edits the bytes of one sealed record (the first of the newest seal that covers any) in
// place, MAC header and all, and answers its key; POST /restore puts back the bytes it had. The
// dashboard's audit spec (site/e2e/audit.spec.ts) verifies the chain before, during and after; the
// record is put back when the test ends in any case. It returns the server's URL.
func startAuditTamperer(t testing.TB, storeURL string) string {
	s := bucketStore(t, storeURL)
	var mu sync.Mutex
	held := map[string][]byte{} // key → the bytes the hub wrote
	restore := func(ctx context.Context) error {
		for key, b := range held {
			if _, err := store.PutBytes(ctx, s, key, b, store.PutOptions{ContentType: "application/json"}); err != nil {
				return fmt.Errorf("restore %s: %w", key, err)
			}
			delete(held, key)
		}
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tamper", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		key, err := tamperSealedRecord(r.Context(), s, held)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"key": key})
	})
	mux.HandleFunc("POST /restore", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if err := restore(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		defer mu.Unlock()
		if err := restore(context.Background()); err != nil {
			t.Errorf("audit tamperer: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// tamperSealedRecord edits the first record of the newest seal that covers any, keeping the bytes it
// had in held (a record already edited is edited once), and returns its key.
func tamperSealedRecord(ctx context.Context, s store.Store, held map[string][]byte) (string, error) {
	var seals []string
	if err := store.Walk(ctx, s, layout.AuditSeals, "", 0, func(o store.ObjectInfo) error {
		seals = append(seals, o.Key)
		return nil
	}); err != nil {
		return "", fmt.Errorf("list the seals: %w", err)
	}
	for i := len(seals) - 1; i >= 0; i-- {
		raw, _, err := store.ReadAll(ctx, s, seals[i])
		if err != nil {
			return "", fmt.Errorf("read seal %s: %w", seals[i], err)
		}
		_, body, _ := bytes.Cut(raw, []byte("\n")) // past the hub's MAC header
		var seal audit.Seal
		if err := json.Unmarshal(body, &seal); err != nil {
			return "", fmt.Errorf("seal %s: %w", seals[i], err)
		}
		if len(seal.Records) == 0 {
			continue
		}
		key := seal.Records[0].Key
		if _, done := held[key]; done {
			return key, nil
		}
		orig, _, err := store.ReadAll(ctx, s, key)
		if err != nil {
			return "", fmt.Errorf("read record %s: %w", key, err)
		}
		// What a bucket writer covering their tracks would do: change what the record says, keep the
		// hub's header in front of it.
		edited := bytes.Replace(orig, []byte(`"outcome":"ok"`), []byte(`"outcome":"failed"`), 1)
		if bytes.Equal(edited, orig) {
			edited = append(append([]byte{}, bytes.TrimRight(orig, "\n}")...), `,"edited":true}`...)
		}
		if _, err := store.PutBytes(ctx, s, key, edited, store.PutOptions{ContentType: "application/json"}); err != nil {
			return "", fmt.Errorf("edit record %s: %w", key, err)
		}
		held[key] = orig
		return key, nil
	}
	return "", errors.New("no seal covers a record yet")
}

// TestDashboard runs the dashboard's Playwright suite (site/e2e) in Debian's Chromium against
// startDashboard's hub and agent: sign-in, the fleet with the agent and its details, the selector
// filter, the hatch banner, deep links, the navigation, the command palette and the keyboard
// shortcuts, the agent page with its inventory and its metric charts (uPlot), a command run from the
// form with its output arriving live, cancel, the history, alerts, a viewer token refused with the
// policy rule shown, a workflow run with an input from the Workflows page and its execution followed
// live to its prompt, answered there and finished, the executions list, a plan applied from the page
// and followed live through a staged rollout (pause, resume, a refused promote, abort, rollback) and
// a proposal approved by a second admin, the audit trail verified whole, broken by a bucket writer
// (the record named) and whole again, phone width, axe on every page, and screenshots of every page,
// light and dark (in site/test-results/screenshots unless PULSE_E2E_SHOTS says where); and the same
// build served by a plain file server on another origin, naming the hub in config.json, signs in and
// runs a command against the hub (CORS).
func TestDashboard(t *testing.T) {
	d := startDashboard(t)
	shots := os.Getenv("PULSE_E2E_SHOTS")
	if shots == "" {
		shots = filepath.Join(d.site, "test-results", "screenshots")
	}
	out, err := d.playwright([]string{"--project", "e2e"}, "PULSE_E2E_SHOTS="+shots)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("playwright:\n%s", out)
	for _, page := range []string{"signin", "fleet", "agent", "agent-load", "palette", "run", "command", "commands", "denied", "alerts", "phone-menu", "approvals", "approval", "workflows", "execution", "executions",
		"plans", "plan", "plan-proposal", "audit", "audit-broken", "shortcuts"} {
		for _, theme := range []string{"light", "dark"} {
			shot := page + "-" + theme
			if st, err := os.Stat(filepath.Join(shots, shot+".png")); err != nil || st.Size() == 0 {
				t.Errorf("screenshot %s: %v", shot, err)
			}
		}
	}
	t.Logf("screenshots in %s", shots)
}
