package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
	"github.com/pulsehq/pulse/integration-tests/simagent"
	"github.com/pulsehq/pulse/openapi/client"
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
	op(t, h, admin, "POST", "/v1/enroll-tokens", client.EnrollTokenInputBody{}, &tok)
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

// applyWorkflow writes src to a file and applies it with the CLI, as an operator would.
func applyWorkflow(t *testing.T, h *hubProc, token, dir, file, src string) {
	t.Helper()
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := pulseCLI(t, h.url, token, "workflow", "apply", "-f", p); code != 0 {
		t.Fatalf("workflow apply %s: %s", file, errOut)
	}
}

// runWorkflow starts an execution with the CLI and returns its id.
func runWorkflow(t *testing.T, h *hubProc, token, name string) string {
	t.Helper()
	out, errOut, code := pulseCLI(t, h.url, token, "workflow", "run", name)
	if code != 0 {
		t.Fatalf("workflow run %s: %s", name, errOut)
	}
	return strings.TrimSpace(out)
}

type executionView struct {
	ID    string `json:"id"`
	State struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
		Steps  map[string]struct {
			Status string `json:"status"`
		} `json:"steps"`
	} `json:"state"`
}

func waitExecution(t *testing.T, h *hubProc, token, id, what string, cond func(executionView) bool) executionView {
	t.Helper()
	var v executionView
	waitFor(t, what, 60*time.Second, func() bool {
		v = executionView{}
		op(t, h, token, "GET", "/v1/executions/"+id, nil, &v)
		return cond(v)
	})
	return v
}

// TestInteractiveSystemUpdate runs the seed's workflow across three agents: the prompt is answered
// through the API and the CLI; the conditional upgrade runs for "Yes" and is skipped for "No".
func TestInteractiveSystemUpdate(t *testing.T) {
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var tok struct {
		Token string `json:"token"`
	}
	op(t, h, admin, "POST", "/v1/enroll-tokens", client.EnrollTokenInputBody{Uses: 3}, &tok)
	ran := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 3 {
		a, err := simagent.Enroll(ctx, h.url, tok.Token, fmt.Sprintf("srv-%d", i), updateCatalog)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			serveLoop(ctx, t, a, func(w simagent.Work) (wire.Status, []byte) {
				mu.Lock()
				ran[w.Command.Name]++
				mu.Unlock()
				return wire.StatusSucceeded, []byte(w.Command.Name + " ok\n")
			})
		})
	}
	defer func() { cancel(); wg.Wait() }()
	seed, _ := os.ReadFile(filepath.Join("..", "functions", "workflow", "testdata", "interactive-system-update.json"))
	applyWorkflow(t, h, admin, dir, "system-update.json", string(seed))
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return ran[name]
	}

	for _, c := range []struct{ first, second string }{{"Yes", "No"}, {"No", "Yes"}} {
		t.Run("upgrade "+c.first+", reboot "+c.second, func(t *testing.T) {
			id := runWorkflow(t, h, admin, "system-update")
			upgrades, reboots := count("apt_upgrade"), count("reboot")
			waitExecution(t, h, admin, id, "the first prompt", func(v executionView) bool {
				return v.State.Steps["User approval"].Status == "awaiting_response"
			})
			if count("apt_update") == 0 {
				t.Fatal("apt_update never ran")
			}
			// An answer that is not an option, or to a step not waiting, is refused and changes nothing.
			if code := op(t, h, admin, "POST", "/v1/executions/"+id+"/respond", client.RespondInputBody{Step: "User approval", Answer: "Maybe"}, nil); code != 409 {
				t.Fatalf("answer outside the options: %d, want 409", code)
			}
			if code := op(t, h, admin, "POST", "/v1/executions/"+id+"/respond", client.RespondInputBody{Step: "Reboot confirmation", Answer: "Yes"}, nil); code != 409 {
				t.Fatalf("answer to a prompt not reached: %d, want 409", code)
			}
			// The first answer through the API, the second through the CLI.
			if code := op(t, h, admin, "POST", "/v1/executions/"+id+"/respond", client.RespondInputBody{Step: "User approval", Answer: c.first}, nil); code != 200 {
				t.Fatalf("respond: %d", code)
			}
			waitExecution(t, h, admin, id, "the second prompt", func(v executionView) bool {
				return v.State.Steps["Reboot confirmation"].Status == "awaiting_response"
			})
			if _, errOut, code := pulseCLI(t, h.url, admin, "respond", id, "--step", "Reboot confirmation", c.second); code != 0 {
				t.Fatalf("pulse respond: %s", errOut)
			}
			v := waitExecution(t, h, admin, id, "the end", func(v executionView) bool { return v.State.Status == "succeeded" || v.State.Status == "failed" })
			want := map[string]string{"Yes": "succeeded", "No": "skipped"}
			if got := v.State.Steps["Upgrade packages"].Status; got != want[c.first] {
				t.Errorf("upgrade step %s after %q", got, c.first)
			}
			if got := v.State.Steps["Reboot servers"].Status; got != want[c.second] {
				t.Errorf("reboot step %s after %q", got, c.second)
			}
			if v.State.Status != "succeeded" {
				t.Fatalf("execution %s: %s", v.State.Status, v.State.Reason)
			}
			wantRuns := map[string]int{"Yes": 3, "No": 0}
			if n := count("apt_upgrade") - upgrades; n != wantRuns[c.first] {
				t.Errorf("apt_upgrade ran %d times, want %d", n, wantRuns[c.first])
			}
			if n := count("reboot") - reboots; n != wantRuns[c.second] {
				t.Errorf("reboot ran %d times, want %d", n, wantRuns[c.second])
			}
		})
	}
}

// TestWorkflowBehaviours: a step that fails twice then succeeds ends succeeded with three attempts; a
// wait step waits on the tick; a step whose agent is offline times out as declared; a cron schedule
// fires.
func TestWorkflowBehaviours(t *testing.T) {
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	catalog := []wire.CommandSpec{{Name: "flaky", Group: "test"}, {Name: "noop", Group: "test"}}
	enroll := func(labels map[string]string, name string) *simagent.Agent {
		var tok struct {
			Token string `json:"token"`
		}
		op(t, h, admin, "POST", "/v1/enroll-tokens", client.EnrollTokenInputBody{Labels: labels}, &tok)
		a, err := simagent.Enroll(ctx, h.url, tok.Token, name, catalog)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	online := enroll(map[string]string{"role": "online"}, "up")
	enroll(map[string]string{"role": "offline"}, "down") // enrolled, never polls
	var mu sync.Mutex
	flaky := 0
	var wg sync.WaitGroup
	wg.Go(func() {
		serveLoop(ctx, t, online, func(w simagent.Work) (wire.Status, []byte) {
			if w.Command.Name != "flaky" {
				return wire.StatusSucceeded, nil
			}
			mu.Lock()
			defer mu.Unlock()
			if flaky++; flaky <= 2 {
				return wire.StatusFailed, []byte("not yet\n")
			}
			return wire.StatusSucceeded, []byte("now\n")
		})
	})
	defer func() { cancel(); wg.Wait() }()

	src := `name: behaviours
steps:
  - name: flaky
    type: execute
    targets: [role=online]
    command: flaky
    retry:
      attempts: 3
      backoff: 1s
  - name: pause
    type: wait
    duration: 2s
  - name: unreachable
    type: execute
    targets: [role=offline]
    command: noop
    timeout: 3s
    on_failure: continue
`
	applyWorkflow(t, h, admin, dir, "behaviours.yaml", src)
	id := runWorkflow(t, h, admin, "behaviours")
	var full struct {
		State struct {
			Status string `json:"status"`
			Steps  map[string]struct {
				Status   string `json:"status"`
				Reason   string `json:"reason"`
				Attempts []struct {
					CommandID string `json:"commandId"`
					Status    string `json:"status"`
				} `json:"attempts"`
			} `json:"steps"`
		} `json:"state"`
	}
	waitFor(t, "the execution to end", 90*time.Second, func() bool {
		op(t, h, admin, "GET", "/v1/executions/"+id, nil, &full)
		return full.State.Status == "succeeded" || full.State.Status == "failed" || full.State.Status == "cancelled"
	})
	fl := full.State.Steps["flaky"]
	if fl.Status != "succeeded" || len(fl.Attempts) != 3 || fl.Attempts[0].Status != "failed" || fl.Attempts[2].Status != "succeeded" {
		t.Fatalf("flaky step: %+v", fl)
	}
	if ids := map[string]bool{fl.Attempts[0].CommandID: true, fl.Attempts[1].CommandID: true, fl.Attempts[2].CommandID: true}; len(ids) != 3 {
		t.Fatalf("attempts share command ids: %+v", fl.Attempts)
	}
	if st := full.State.Steps["pause"].Status; st != "succeeded" {
		t.Fatalf("wait step: %s", st)
	}
	if un := full.State.Steps["unreachable"]; un.Status != "failed" || !strings.Contains(strings.ToLower(un.Reason), "time") {
		t.Fatalf("offline agent's step: %+v", un)
	}

	t.Run("a cron schedule fires", func(t *testing.T) {
		cronSrc := "name: every-minute\nschedule:\n  cron: \"* * * * *\"\n  timezone: Europe/Paris\nsteps:\n  - name: ping\n    type: execute\n    targets: [role=online]\n    command: noop\n"
		applyWorkflow(t, h, admin, dir, "every-minute.yaml", cronSrc)
		waitFor(t, "a scheduled execution", 80*time.Second, func() bool {
			var recs struct {
				Records []struct {
					Action string         `json:"action"`
					Detail map[string]any `json:"detail"`
				} `json:"records"`
			}
			op(t, h, admin, "GET", "/v1/audit", nil, &recs)
			for _, r := range recs.Records {
				if r.Action == "start-execution" && r.Detail["workflow"] == "every-minute" {
					return true
				}
			}
			return false
		})
		// Only one run per slot, whatever the number of ticks in that minute.
		out, _, _ := pulseCLI(t, h.url, admin, "audit", "list", "--json")
		if n := strings.Count(out, `"workflow": "every-minute"`); n > 2 {
			t.Fatalf("%d starts of the scheduled workflow within about a minute", n)
		}
	})
}

// TestWorkflowOnStatelessHubs: two hubs on one bucket receive the results of one execution in random
// order and still issue every command exactly once; a hub killed while an execution waits on a prompt
// and a timer picks it up again after a restart.
func TestWorkflowOnStatelessHubs(t *testing.T) {
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	h1 := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "2s")
	h2 := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "2s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var tok struct {
		Token string `json:"token"`
	}
	op(t, h1, admin, "POST", "/v1/enroll-tokens", client.EnrollTokenInputBody{Uses: 3}, &tok)
	catalog := []wire.CommandSpec{{Name: "noop", Group: "test"}}
	var hubsMu sync.Mutex
	live := []string{h1.url, h2.url}
	pick := func() string {
		hubsMu.Lock()
		defer hubsMu.Unlock()
		return live[rand.IntN(len(live))]
	}
	var wg sync.WaitGroup
	for i := range 3 {
		a, err := simagent.Enroll(ctx, h1.url, tok.Token, fmt.Sprintf("node-%d", i), catalog)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			// Each poll and each upload goes to a live hub chosen at random. (This simulated agent does not
			// retry uploads as the real one does, so it only uses hubs that are up.)
			var ack []string
			for ctx.Err() == nil {
				a.Hub = pick()
				works, _, err := a.Poll(ctx, ack)
				ack = nil
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for _, w := range works {
					ack = append(ack, w.InboxKey)
					if w.Envelope.Kind == wire.KindCommand {
						time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
						a.Hub = pick()
						for a.Complete(ctx, w, wire.StatusSucceeded, 0, nil) != nil && ctx.Err() == nil {
							time.Sleep(200 * time.Millisecond) // the hub is restarting
						}
					}
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	apply := func(name, src string) { applyWorkflow(t, h1, admin, dir, name+".yaml", src) }
	status := func(h *hubProc, id string) string {
		var v executionView
		op(t, h, admin, "GET", "/v1/executions/"+id, nil, &v)
		return v.State.Status
	}

	t.Run("two hubs, results in random order", func(t *testing.T) {
		apply("three-steps", "steps:\n  - {name: one, type: execute, targets: [all], command: noop}\n  - {name: two, type: execute, targets: [all], command: noop}\n  - {name: three, type: execute, targets: [all], command: noop}\n")
		id := runWorkflow(t, h2, admin, "three-steps")
		waitFor(t, "the execution to end", 60*time.Second, func() bool { return status(h1, id) == "succeeded" })
		if s := status(h2, id); s != "succeeded" {
			t.Fatalf("hub 2 sees %s", s)
		}
		// Count the commands in the bucket: one per step, never two.
		s := bucketStore(t, storeURL)
		n := 0
		store.Walk(ctx, s, "v1/commands/", "", 0, func(o store.ObjectInfo) error {
			if !strings.HasSuffix(o.Key, ".json") || strings.Count(strings.TrimPrefix(o.Key, "v1/commands/"), "/") != 0 {
				return nil
			}
			b, _, err := store.ReadAll(ctx, s, o.Key)
			if err == nil && strings.Contains(string(b), id) {
				n++
			}
			return nil
		})
		if n != 3 {
			t.Fatalf("%d commands issued for 3 steps", n)
		}
	})

	t.Run("hub killed while waiting on a prompt and a timer", func(t *testing.T) {
		apply("ask-wait-run", "steps:\n  - {name: ask, type: prompt, message: \"Continue?\", options: [\"Yes\", \"No\"]}\n  - {name: pause, type: wait, duration: 3s}\n  - {name: run, type: execute, targets: [all], command: noop}\n")
		id := runWorkflow(t, h1, admin, "ask-wait-run")
		// Kill both hubs while the execution waits on the prompt, restart one where it was.
		addr := strings.TrimPrefix(h1.url, "http://")
		hubsMu.Lock()
		live = []string{h1.url} // the address the restarted hub takes
		hubsMu.Unlock()
		for _, h := range []*hubProc{h1, h2} {
			h.cmd.Process.Kill()
			<-h.done
			h.done <- nil
		}
		h3 := startHubAt(t, dir, addr, s3server.Env(), "--store", storeURL, "--poll-hold", "2s")
		if code := op(t, h3, admin, "POST", "/v1/executions/"+id+"/respond", client.RespondInputBody{Step: "ask", Answer: "Yes"}, nil); code != 200 {
			t.Fatalf("respond after restart: %d", code)
		}
		// Kill it again while the timer runs; the next hub's tick fires it.
		waitFor(t, "the wait step", 20*time.Second, func() bool {
			var v executionView
			op(t, h3, admin, "GET", "/v1/executions/"+id, nil, &v)
			return v.State.Steps["pause"].Status == "running"
		})
		h3.cmd.Process.Kill()
		<-h3.done
		h3.done <- nil
		h4 := startHubAt(t, dir, addr, s3server.Env(), "--store", storeURL, "--poll-hold", "2s")
		waitFor(t, "the execution to end after the timer", 60*time.Second, func() bool { return status(h4, id) == "succeeded" })
	})
}

// TestTickCommand: with no hub running, `pulse tick` (what a cloud scheduler runs) fires a workflow's
// due timer and finishes the execution.
func TestTickCommand(t *testing.T) {
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL)
	applyWorkflow(t, h, admin, dir, "nap.yaml", "steps:\n  - {name: nap, type: wait, duration: 2s}\n")
	id := runWorkflow(t, h, admin, "nap")
	h.cmd.Process.Signal(syscall.SIGTERM)
	<-h.done
	h.done <- nil
	time.Sleep(2500 * time.Millisecond)
	tick := exec.Command(pulseBin, "tick", "--store", storeURL, "--json")
	tick.Dir, tick.Env = dir, append(os.Environ(), s3server.Env()...)
	if b, err := tick.CombinedOutput(); err != nil || !strings.Contains(string(b), `"activeExecutions": 1`) {
		t.Fatalf("pulse tick: %v\n%s", err, b)
	}
	// The tick finished it: a second tick finds nothing active, and a hub shows it succeeded.
	tick = exec.Command(pulseBin, "tick", "--store", storeURL, "--json")
	tick.Dir, tick.Env = dir, append(os.Environ(), s3server.Env()...)
	if b, err := tick.CombinedOutput(); err != nil || !strings.Contains(string(b), `"activeExecutions": 0`) {
		t.Fatalf("second pulse tick: %v\n%s", err, b)
	}
	h2 := startHub(t, dir, s3server.Env(), "--store", storeURL)
	var v executionView
	op(t, h2, admin, "GET", "/v1/executions/"+id, nil, &v)
	if v.State.Status != "succeeded" {
		t.Fatalf("after pulse tick: %+v", v.State)
	}
}
