package integration

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// TestBucketWriterGetsNothingRun is finding 1 of the trust issue, reproduced with real processes on
// MinIO: someone who can write to the bucket but holds no key plants a workflow with a one-minute
// schedule "applied by admin", and an admin token. Before the hub MACed its records, the hub started
// the schedule within a second and the command ran on every agent, audited as admin. Now the hub
// refuses both objects, says so once in its log, and `pulse doctor` names them.
func TestBucketWriterGetsNothingRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	tok, _, _ := pulseCLI(t, h.url, admin, "enroll-token", "create")
	startAgent(t, h.url, filepath.Join(dir, "agent"), agentConfig, "--enroll-token", strings.TrimSpace(tok))
	waitFor(t, "agent online", 30*time.Second, func() bool {
		l := listAgents(t, h.url, admin)
		return len(l.Agents) == 1 && l.Agents[0].Online
	})
	ran := scratch(t, dir)
	s := bucketStore(t, storeURL)
	plant := func(key string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if _, err := store.PutBytes(ctx, s, key, b, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	src := "name: nightly\nschedule:\n  cron: \"* * * * *\"\nsteps:\n  - name: plant\n    type: execute\n    targets: all\n    command: make_file\n    params: {template: \"" + ran + "/x.XXXXXX\"}\n"
	wfKey := layout.WorkflowVersion("nightly", 1)
	plant(wfKey, map[string]any{"name": "nightly", "version": 1, "source": src, "appliedBy": "admin",
		"appliedAt":          time.Now().Add(-5 * time.Minute).UTC(),
		"appliedByPrincipal": map[string]any{"id": "admin", "groups": []string{"admin"}, "via": "token", "person": "person:admin"}})
	secret := "pulse_planted-by-a-bucket-writer"
	tokKey := layout.Token(access.HashSecret(secret))
	plant(tokKey, access.APIToken{Name: "admin", Groups: []string{"admin"}, CreatedAt: time.Now(), Owner: "person:admin"})

	h.waitLog("refused an object the hub did not write")
	time.Sleep(3 * time.Second) // a few more ticks, in which a believed schedule would have started
	if n := countFiles(t, ran); n != 0 {
		t.Fatalf("the planted workflow ran make_file %d times", n)
	}
	var execs struct {
		Executions []struct{ Workflow string } `json:"executions"`
	}
	if code := op(t, h, admin, "GET", "/v1/executions", nil, &execs); code != 200 || len(execs.Executions) != 0 {
		t.Fatalf("executions: %d %+v, want none", code, execs.Executions)
	}
	if _, errOut, code := pulseCLI(t, h.url, secret, "agents"); code == 0 || !strings.Contains(errOut, "401") {
		t.Fatalf("the planted token: exit %d %q, want a 401", code, errOut)
	}
	out, errOut, code := pulseCLI(t, h.url, admin, "doctor", "--scan")
	if code == 0 || !strings.Contains(out, wfKey) || !strings.Contains(out, tokKey) {
		t.Fatalf("pulse doctor --scan: exit %d\n%s%s\nwant both planted keys named", code, out, errOut)
	}
	var recs struct {
		Records []struct {
			Action string `json:"action"`
		} `json:"records"`
	}
	op(t, h, admin, "GET", "/v1/audit", nil, &recs)
	for _, r := range recs.Records {
		if r.Action == "create-command" || r.Action == "start-execution" {
			t.Fatalf("the audit log shows %s: the planted workflow acted", r.Action)
		}
	}
}
