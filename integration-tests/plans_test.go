package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/pulsehq/pulse/agent/integrations/container/dockertest"
	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// planView is what `pulse plan status NAME --json` prints.
type planView struct {
	Name      string `json:"name"`
	Version   int    `json:"version"`
	Converged int    `json:"converged"`
	Agents    []struct {
		Agent          string `json:"agent"`
		Version        int    `json:"version"`
		RefusedVersion int    `json:"refusedVersion"`
		Refused        string `json:"refused"`
		Units          []struct {
			Unit, State, Reason string
			Corrections         int
		} `json:"units"`
	} `json:"agents"`
}

func planStatus(t *testing.T, hubURL, token, name string) planView {
	t.Helper()
	out, errOut, code := pulseCLI(t, hubURL, token, "plan", "status", name, "--json")
	if code != 0 {
		t.Fatalf("pulse plan status %s: exit %d: %s", name, code, errOut)
	}
	var v planView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("pulse plan status --json: %v: %s", err, out)
	}
	return v
}

// unitStates is every agent's unit states as agent/unit=state, for messages.
func (v planView) unitStates() string {
	var parts []string
	for _, a := range v.Agents {
		for _, u := range a.Units {
			parts = append(parts, fmt.Sprintf("%s/%s=%s(v%d %s)", a.Agent, u.Unit, u.State, a.Version, u.Reason))
		}
		if a.Refused != "" {
			parts = append(parts, fmt.Sprintf("%s refused v%d: %s", a.Agent, a.RefusedVersion, a.Refused))
		}
	}
	return strings.Join(parts, "; ")
}

// every reports whether every agent holds version and every unit is in state.
func (v planView) every(version int, state string) bool {
	if len(v.Agents) == 0 {
		return false
	}
	for _, a := range v.Agents {
		if a.Version != version || len(a.Units) == 0 {
			return false
		}
		for _, u := range a.Units {
			if u.State != state {
				return false
			}
		}
	}
	return true
}

func applyPlan(t *testing.T, hubURL, token, name, dir, source string) (string, int) {
	t.Helper()
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(source), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := pulseCLI(t, hubURL, token, "plan", "apply", name, "-f", path)
	return out + errOut, code
}

// TestPlansEndToEnd: real `pulse serve` on MinIO and three real pulse-agent processes, sharing one
// real dockerd. A plan with a file, a supervised process and a container converges on all three; the
// file deleted, the process killed and the container removed by hand are repaired under enforce, and
// reported and left alone under report; an agent killed in the middle of an apply (one while its
// process waits for its health check, one while its container does) converges when started again,
// with one process, one container and a whole file; a unit outside the agents' roots is refused by
// every agent and changes nothing; a planted plan version reaches no agent; a deleted plan's processes
// are stopped by every agent and its file and containers are left. Without a dockerd (and without
// PULSE_DOCKERD_BIN, which makes one required) the plan has no container unit.
func TestPlansEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// One daemon for the three agents: each names its containers with a prefix of its own.
	docker, why := dockertest.TryStart(t)
	if docker != nil {
		if _, err := dockertest.Busybox(); err != nil {
			docker, why = nil, err.Error()
		}
	}
	var img dockertest.Image
	if docker == nil {
		t.Logf("no container unit in this run: %s", why)
	} else {
		img = dockertest.BuildImage(t, dir, "")
		docker.Load(t, img)
	}
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")

	// The three agents share this machine, so the plan's one file is the same path for all of them:
	// they share its root and write the same bytes. Each supervises its own copy of the process.
	root := filepath.Join(dir, "managed")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(dir, "outside")
	// The health checks' flags: the process's on the host, the container's through a bind mount.
	flags := filepath.Join(dir, "flags")
	if err := os.MkdirAll(flags, 0o755); err != nil {
		t.Fatal(err)
	}
	flag := filepath.Join(flags, "healthy")
	boxFlag := filepath.Join(flags, "box-healthy")
	tokOut, tokErr, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--uses", "3", "--labels", "role=web")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", tokErr)
	}
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nplan_period = \"1s\"\n", 1) + fmt.Sprintf(`
[files]
roots = [%q]

[process]
allow = ["/usr/bin/sleep", "/usr/bin/test"]
stop_grace = "2s"
`, root)
	cfgs := make([]string, 3)
	agents := make([]*agentProc, 3)
	for i := range agents {
		cfgs[i] = cfg
		if docker != nil {
			cfgs[i] += fmt.Sprintf(`
[container]
socket = %q
allow_images = ["sha256:"]
allow_mounts = [%q]
name_prefix = "pulse-a%d-"
stop_grace = "1s"
`, docker.Host, flags, i)
		}
		agents[i] = startAgent(t, h.url, filepath.Join(dir, fmt.Sprintf("agent-%d", i)), cfgs[i], "--enroll-token", strings.TrimSpace(tokOut))
	}
	for _, a := range agents {
		a.id()
	}
	bucket := bucketStore(t, storeURL)

	conf := filepath.Join(root, "app", "app.conf")
	arg := fmt.Sprint(100000 + time.Now().UnixNano()%100000) // this run's sleep, told apart from any other
	var args []string                                        // every arg this run's processes got
	t.Cleanup(func() {
		// Supervised processes outlive their agent by design (an agent restart must not stop them).
		for _, a := range args {
			exec.Command("pkill", "-KILL", "-f", "^/usr/bin/sleep "+a+"$").Run()
		}
	})
	args = append(args, arg)
	source := func(mode, sleepFor, health string) string {
		src := fmt.Sprintf(`targets: [role=web]
mode: %s
units:
  - name: conf
    type: file
    notify: [app]
    spec: {path: %q, content: "port=8080\n", mode: "0644"}
  - name: app
    type: process
    requires: [conf]
    deadline: 60s
    spec: {command: /usr/bin/sleep, args: [%q], restart: always%s}
`, mode, conf, sleepFor, health)
		if docker != nil {
			boxHealth := ""
			if health != "" {
				boxHealth = ", health: {command: [/bin/test, -e, /flags/box-healthy], interval: 300ms, retries: 1}"
			}
			src += fmt.Sprintf(`  - name: box
    type: container
    requires: [app]
    deadline: 60s
    spec: {image: %q, command: /bin/sleep, args: [%q], mounts: [{source: %q, target: /flags, readOnly: true}]%s}
`, img.ID, sleepFor, flags, boxHealth)
		}
		return src
	}
	// boxes counts the agents' containers of unit box: all of them, and those running this run's
	// current sleep; by name, so a duplicate shows.
	boxes := func() (all, current int, names map[string]int) {
		names = map[string]int{}
		if docker == nil {
			return 3, 3, map[string]int{"pulse-a0-box": 1, "pulse-a1-box": 1, "pulse-a2-box": 1}
		}
		list, err := docker.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "pulse.unit=box"))})
		if err != nil {
			t.Fatalf("list containers: %v", err)
		}
		for _, c := range list {
			for _, n := range c.Names {
				names[strings.TrimPrefix(n, "/")]++
			}
			if c.State == "running" && strings.HasSuffix(c.Command, " "+arg) {
				current++
			}
		}
		return len(list), current, names
	}
	removeBoxes := func() {
		t.Helper()
		if docker == nil {
			return
		}
		for i := range agents {
			if err := docker.Client.ContainerRemove(ctx, fmt.Sprintf("pulse-a%d-box", i), container.RemoveOptions{Force: true}); err != nil {
				t.Fatalf("remove a container by hand: %v", err)
			}
		}
	}
	wantBoxes := func(t *testing.T) {
		t.Helper()
		all, current, names := boxes()
		if all != 3 || current != 3 || len(names) != 3 {
			t.Errorf("containers of unit box: %d (%d running the current spec), named %v; want one per agent, running", all, current, names)
		}
	}
	waitPlan := func(what string, cond func(planView) bool) planView {
		t.Helper()
		var v planView
		waitFor(t, what, 90*time.Second, func() bool {
			v = planStatus(t, h.url, token, "web")
			return cond(v)
		})
		return v
	}
	running := func() int { return processesMatching("/usr/bin/sleep", arg) }
	wantFile := func(t *testing.T) {
		t.Helper()
		b, err := os.ReadFile(conf)
		if err != nil || string(b) != "port=8080\n" {
			t.Fatalf("managed file: %q, %v; want the plan's content whole", b, err)
		}
		if fi, _ := os.Stat(conf); fi.Mode().Perm() != 0o644 {
			t.Errorf("managed file mode %v, want 0644", fi.Mode().Perm())
		}
	}

	pt := t
	t.Run("a plan converges on three agents", func(t *testing.T) {
		if out, code := applyPlan(t, h.url, token, "web", dir, source("enforce", arg, "")); code != 0 {
			t.Fatalf("pulse plan apply: exit %d: %s", code, out)
		}
		v := waitPlan("every unit converged on three agents", func(v planView) bool { return len(v.Agents) == 3 && v.every(1, "converged") })
		if v.Converged != 3 {
			t.Errorf("converged agents %d, want 3: %s", v.Converged, v.unitStates())
		}
		wantFile(t)
		if n := running(); n != 3 {
			t.Errorf("%d supervised processes, want one per agent (3)", n)
		}
		wantBoxes(t)
	})

	t.Run("drift is repaired under enforce", func(t *testing.T) {
		if err := os.Remove(conf); err != nil {
			t.Fatal(err)
		}
		exec.Command("pkill", "-KILL", "-f", "^/usr/bin/sleep "+arg+"$").Run()
		removeBoxes()
		v := waitPlan("file, processes and containers repaired, corrections counted", func(v planView) bool {
			if !v.every(1, "converged") || running() != 3 {
				return false
			}
			if _, current, _ := boxes(); current != 3 {
				return false
			}
			for _, a := range v.Agents {
				for _, u := range a.Units {
					if (u.Unit == "app" || u.Unit == "box") && u.Corrections < 1 {
						return false
					}
				}
			}
			return true
		})
		wantFile(t)
		wantBoxes(t)
		t.Logf("after repair: %s", v.unitStates())
	})

	t.Run("drift is reported and left alone under report", func(t *testing.T) {
		if out, code := applyPlan(t, h.url, token, "web", dir, source("report", arg, "")); code != 0 {
			t.Fatalf("pulse plan apply: exit %d: %s", code, out)
		}
		waitPlan("version 2 held by every agent", func(v planView) bool { return v.every(2, "converged") })
		// The containers first: a unit waits for what it requires, and box requires app, which
		// requires conf.
		removeBoxes()
		if docker != nil {
			waitPlan("the removed containers reported drifted by every agent", func(v planView) bool {
				for _, a := range v.Agents {
					for _, u := range a.Units {
						if u.Unit == "box" && u.State != "drifted" {
							return false
						}
					}
				}
				return len(v.Agents) == 3
			})
		}
		if err := os.Remove(conf); err != nil {
			t.Fatal(err)
		}
		waitPlan("the missing file reported drifted by every agent", func(v planView) bool {
			for _, a := range v.Agents {
				for _, u := range a.Units {
					if u.Unit == "conf" && u.State != "drifted" {
						return false
					}
				}
			}
			return len(v.Agents) == 3
		})
		time.Sleep(3 * time.Second) // three plan periods: a repair would have happened by now
		if _, err := os.Stat(conf); err == nil {
			t.Fatal("the file was written again under report")
		}
		if all, _, names := boxes(); docker != nil && all != 0 {
			t.Fatalf("containers were created again under report: %v", names)
		}
	})

	t.Run("an agent killed in the middle of an apply converges when started again", func(t *testing.T) {
		// Version 3 runs a new process whose health check passes only once the flag exists: every agent
		// is applying it (the process started, waiting for health) when agent 0 is killed. Then a new
		// container whose health check waits for another flag: agent 1 is killed while it waits.
		arg = fmt.Sprint(200000 + time.Now().UnixNano()%100000)
		args = append(args, arg)
		health := fmt.Sprintf(", health: {command: [/usr/bin/test, -e, %q]}", flag)
		if out, code := applyPlan(t, h.url, token, "web", dir, source("enforce", arg, health)); code != 0 {
			t.Fatalf("pulse plan apply: exit %d: %s", code, out)
		}
		waitFor(t, "the new process started on every agent", 60*time.Second, func() bool { return running() == 3 })
		victim := agents[0]
		victim.cmd.Process.Signal(syscall.SIGKILL)
		victim.done <- <-victim.done // kept for its cleanup, which finds it ended
		if err := os.WriteFile(flag, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		agents[0] = startAgent(pt, h.url, victim.stateDir, cfgs[0]) // runs on for the subtests that follow
		if docker != nil {
			waitFor(t, "the new container started on every agent", 60*time.Second, func() bool { _, current, _ := boxes(); return current == 3 })
			victim := agents[1]
			victim.cmd.Process.Signal(syscall.SIGKILL)
			victim.done <- <-victim.done
			if err := os.WriteFile(boxFlag, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			agents[1] = startAgent(pt, h.url, victim.stateDir, cfgs[1])
		}
		v := waitPlan("version 3 converged on every agent", func(v planView) bool { return v.every(3, "converged") })
		if n := running(); n != 3 {
			t.Errorf("%d processes after the restart, want 3 (no duplicate): %s", n, v.unitStates())
		}
		wantFile(t)
		wantBoxes(t)
	})

	t.Run("a unit outside the agents' roots is refused and changes nothing", func(t *testing.T) {
		bad := strings.Replace(source("enforce", arg, fmt.Sprintf(", health: {command: [/usr/bin/test, -e, %q]}", flag)), conf, filepath.Join(outside, "x.conf"), 1)
		if out, code := applyPlan(t, h.url, token, "web", dir, bad); code != 0 {
			t.Fatalf("pulse plan apply: exit %d: %s", code, out)
		}
		v := waitPlan("version 4 refused by every agent", func(v planView) bool {
			for _, a := range v.Agents {
				if a.RefusedVersion != 4 || a.Version != 3 {
					return false
				}
			}
			return len(v.Agents) == 3
		})
		for _, a := range v.Agents {
			if !strings.Contains(a.Refused, "root") {
				t.Errorf("%s refused version 4 with %q, want the reason to name the roots", a.Agent, a.Refused)
			}
		}
		if _, err := os.Stat(outside); err == nil {
			t.Error("a refused version wrote outside the roots")
		}
		if !v.every(3, "converged") || running() != 3 {
			t.Errorf("the refused version changed what version 3 manages: %s, %d processes", v.unitStates(), running())
		}
	})

	t.Run("a version planted in the bucket reaches no agent", func(t *testing.T) {
		marker := filepath.Join(root, "planted")
		plan := wire.Plan{Name: "web", Version: 9, Units: []wire.Unit{{Name: "x", Type: "file",
			Spec: json.RawMessage(fmt.Sprintf(`{"path": %q, "content": "owned\n", "mode": "0644"}`, marker))}}}
		b, _ := json.Marshal(map[string]any{"name": "web", "version": 9, "source": "planted", "targets": []string{"all"}, "plan": plan,
			"appliedBy": "admin", "appliedAt": time.Now().UTC()})
		if _, err := store.PutBytes(ctx, bucket, layout.PlanVersion("web", 9), b, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // five plan periods
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("an agent applied a plan version planted in the bucket")
		}
		if v := planStatus(t, h.url, token, "web"); v.Version != 4 {
			t.Errorf("the hub shows version %d, want 4 (the planted 9 fails the integrity check)", v.Version)
		}
	})

	t.Run("a deleted plan's processes are stopped and its file left", func(t *testing.T) {
		if out, errOut, code := pulseCLI(t, h.url, token, "plan", "delete", "web"); code != 0 {
			t.Fatalf("pulse plan delete: exit %d: %s%s", code, out, errOut)
		}
		waitFor(t, "every agent stopped the deleted plan's process", 60*time.Second, func() bool { return running() == 0 })
		wantFile(t)
		wantBoxes(t) // a released container is left as it is
	})
}
