package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// TestCoreLoopSeaweedFS is the core loop on the fourth real S3 server: its own SeaweedFS (`weed server
// -s3`), `pulse init` on it, a real `pulse serve`, three real pulse-agent processes enrolling with one
// token, a command on all three with --wait, and each one's output read back through the hub. Skipped
// only when weed is neither given (PULSE_SEAWEEDFS_BIN, which make test sets) nor buildable.
func TestCoreLoopSeaweedFS(t *testing.T) {
	if _, err := s3server.Available(s3server.SeaweedFS); errors.Is(err, s3server.ErrUnavailable) {
		t.Skip(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	began := time.Now()
	srv, err := s3server.Start(ctx, s3server.SeaweedFS, s3server.Options{Dir: filepath.Join(dir, "seaweedfs")})
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the hub's and the agents' cleanups: the store outlives them.
	t.Cleanup(srv.Stop)
	started := time.Now()
	t.Logf("SeaweedFS answered S3 after %s", started.Sub(began).Round(time.Millisecond))

	if err := srv.CreateBucket(ctx, "core"); err != nil {
		t.Fatal(err)
	}
	storeURL := srv.URL("core", "")
	token := initAt(t, dir, storeURL)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")

	resp, err := http.Get(h.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct{ Status, Mode string }
	json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	mode := "conditional" // SeaweedFS honours If-None-Match and If-Match
	if s3server.Unconditional() {
		mode = "last-writer-wins" // the Garage-like pass drops the conditions (docs/garage.md)
	}
	if resp.StatusCode != 200 || ready.Mode != mode {
		t.Fatalf("/readyz %d %+v; want ready in %s mode", resp.StatusCode, ready, mode)
	}

	tokOut, tokErr, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--uses", "3", "--labels", "env=prod")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", tokErr)
	}
	ids := map[string]bool{}
	var agents []*agentProc
	for i := range 3 {
		agents = append(agents, startAgent(t, h.url, filepath.Join(dir, fmt.Sprintf("agent-%d", i)), agentConfig, "--enroll-token", strings.TrimSpace(tokOut)))
	}
	for _, a := range agents {
		ids[a.id()] = true
	}
	waitFor(t, "three agents online", 30*time.Second, func() bool {
		online := 0
		for _, a := range listAgents(t, h.url, token).Agents {
			if a.Online && ids[a.ID] {
				online++
			}
		}
		return online == 3
	})

	st, errOut, code := runJSON(t, h.url, token, "host_uptime", "--target", "env=prod", "--wait")
	if code != 0 || st.Counts["succeeded"] != 3 || len(st.Agents) != 3 {
		t.Fatalf("host_uptime: exit %d %s: %+v", code, errOut, st)
	}
	for _, a := range st.Agents {
		if !ids[a.Agent] || a.State != "succeeded" {
			t.Fatalf("host_uptime: %+v; want the three enrolled agents, succeeded", st.Agents)
		}
		out, errOut, code := pulseCLI(t, h.url, token, "output", st.ID, "--agent", a.Agent)
		if code != 0 || !strings.HasPrefix(out, "up ") {
			t.Fatalf("output of %s: exit %d (%s), %q; want an uptime line", a.Agent, code, errOut, out)
		}
	}

	// More output than one chunk object, on one agent, back byte for byte.
	const n = 300000
	var want strings.Builder
	for i := 1; i <= n; i++ {
		want.WriteString(strconv.Itoa(i))
		want.WriteByte('\n')
	}
	one := st.Agents[0].Agent
	st, errOut, code = runJSON(t, h.url, token, "count_to", "--param", "n="+strconv.Itoa(n), "--target", one, "--wait")
	if code != 0 || st.Counts["succeeded"] != 1 {
		t.Fatalf("count_to: exit %d %s: %+v", code, errOut, st)
	}
	got, errOut, code := pulseCLI(t, h.url, token, "output", st.ID, "--agent", one)
	if code != 0 || got != want.String() {
		t.Fatalf("count_to output: exit %d (%s), %d bytes; want %d identical bytes", code, errOut, len(got), want.Len())
	}
	t.Logf("core loop on SeaweedFS: %s after the server answered", time.Since(started).Round(time.Millisecond))
}
