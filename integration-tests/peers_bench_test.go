package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// peersAgents is how many real pulse-agent processes (and Ansible hosts) the peers benchmark uses.
const peersAgents = 50

// peersGoal is the target: Pulse at least this many times faster than Ansible ad hoc.
const peersGoal = 100.0

// BenchmarkPeersAnsible compares Pulse with Ansible doing the same thing on the same machine in the
// same run: `pulse run host_uptime --target all --wait` on 50 real pulse-agent processes behind one
// `pulse serve` on MinIO, against `ansible all -m command -a uptime` on 50 hosts with
// connection=local and forks=50. Pulse runs 5 times, Ansible 3 (each after one untimed warm-up run);
// the medians are compared. Run it with `make bench-peers`.
func BenchmarkPeersAnsible(b *testing.B) {
	ansible, err := exec.LookPath("ansible")
	if err != nil {
		b.Skip("ansible is not on PATH: `make bench-peers` installs Debian's (apt-get install -y ansible)")
	}
	ctx := context.Background()
	dir := b.TempDir()

	// One hub on the shared MinIO, in its own prefix, and 50 agents enrolled with one token.
	storeURL := minio.URL(bucket, fmt.Sprintf("peers-%d", time.Now().UnixNano()))
	token := initAt(b, dir, storeURL)
	h := startHub(b, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "30s", "--log-level", "warn")
	tokOut, tokErr, code := pulseCLI(b, h.url, token, "enroll-token", "create", "--uses", fmt.Sprint(peersAgents))
	if code != 0 {
		b.Fatalf("enroll-token create: %s", tokErr)
	}
	// Heartbeats as in production (30 s), not the tests' 1 s: 50 agents beating every second would
	// load the two cores with store writes that have nothing to do with running a command.
	cfg := strings.Replace(agentConfig, `heartbeat = "1s"`, `heartbeat = "30s"`, 1)
	agents := make([]*agentProc, peersAgents)
	for i := range agents {
		agents[i] = startAgent(b, h.url, filepath.Join(dir, fmt.Sprintf("agent-%02d", i)), cfg, "--enroll-token", strings.TrimSpace(tokOut))
	}
	for _, a := range agents {
		a.id()
	}
	waitFor(b, fmt.Sprintf("%d agents online", peersAgents), 2*time.Minute, func() bool {
		online := 0
		for _, a := range listAgents(b, h.url, token).Agents {
			if a.Online {
				online++
			}
		}
		return online == peersAgents
	})

	// phases keeps, per timed run, when (from the run's start) the first agent started the command, the
	// last one finished it and the hub created it: where a run's time goes.
	var phases [][3]time.Duration
	pulseRun := func() error {
		t0 := time.Now()
		stdout, stderr, code := pulseCLI(b, h.url, token, "run", "host_uptime", "--target", "all", "--wait")
		if code != 0 {
			return fmt.Errorf("pulse run: exit %d: %s", code, stderr)
		}
		if n := strings.Count(stdout, " succeeded "); n != peersAgents {
			return fmt.Errorf("pulse run: %d agents succeeded, want %d:\n%s", n, peersAgents, stdout)
		}
		out, _, _ := pulseCLI(b, h.url, token, "commands", "--limit", "1", "--json")
		var list struct {
			Commands []struct {
				ID        string    `json:"id"`
				CreatedAt time.Time `json:"createdAt"`
			} `json:"commands"`
		}
		if json.Unmarshal([]byte(out), &list) == nil && len(list.Commands) == 1 {
			cmdOut, _, _ := pulseCLI(b, h.url, token, "command", list.Commands[0].ID, "--json")
			var st struct {
				Agents []struct {
					StartedAt, FinishedAt time.Time
				} `json:"agents"`
			}
			if json.Unmarshal([]byte(cmdOut), &st) == nil && len(st.Agents) > 0 {
				first, last := st.Agents[0].StartedAt, st.Agents[0].FinishedAt
				for _, a := range st.Agents {
					if a.StartedAt.Before(first) {
						first = a.StartedAt
					}
					if a.FinishedAt.After(last) {
						last = a.FinishedAt
					}
				}
				phases = append(phases, [3]time.Duration{list.Commands[0].CreatedAt.Sub(t0), first.Sub(t0), last.Sub(t0)})
			}
		}
		return nil
	}

	// Ansible: an inventory of 50 local hosts, and every file it writes kept in a temporary directory.
	adir := b.TempDir()
	var inv strings.Builder
	inv.WriteString("[all]\n")
	for i := range peersAgents {
		fmt.Fprintf(&inv, "host%02d ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n", i)
	}
	invPath := filepath.Join(adir, "inventory.ini")
	if err := os.WriteFile(invPath, []byte(inv.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	ansibleRun := func() error {
		runCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(runCtx, ansible, "all", "-i", invPath, "-f", fmt.Sprint(peersAgents), "-m", "command", "-a", "uptime")
		cmd.Dir = adir
		cmd.Env = append(os.Environ(),
			"ANSIBLE_HOST_KEY_CHECKING=False",
			"ANSIBLE_STDOUT_CALLBACK=minimal",
			"ANSIBLE_RETRY_FILES_ENABLED=False",
			"ANSIBLE_HOME="+filepath.Join(adir, "home"),
			"ANSIBLE_LOCAL_TEMP="+filepath.Join(adir, "local-tmp"),
			"ANSIBLE_REMOTE_TEMP="+filepath.Join(adir, "remote-tmp"),
		)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("ansible: %w:\n%s", err, out)
		}
		if n := strings.Count(string(out), "| CHANGED | rc=0"); n != peersAgents {
			return fmt.Errorf("ansible: %d hosts ran uptime, want %d:\n%s", n, peersAgents, out)
		}
		return nil
	}

	// timed runs fn once untimed (a cold first run measures caches, not the tool), then n times.
	timed := func(what string, n int, fn func() error) []time.Duration {
		if err := fn(); err != nil {
			b.Fatalf("%s warm-up: %v", what, err)
		}
		ds := make([]time.Duration, n)
		for i := range ds {
			t0 := time.Now()
			if err := fn(); err != nil {
				b.Fatalf("%s run %d: %v", what, i+1, err)
			}
			ds[i] = time.Since(t0)
		}
		return ds
	}

	for b.Loop() {
		pulseTimes := timed("pulse", 5, pulseRun)
		ansibleTimes := timed("ansible", 3, ansibleRun)
		p, a := median(pulseTimes), median(ansibleTimes)
		ratio := float64(a) / float64(p)
		b.ReportMetric(ms(p), "pulse-median-ms")
		b.ReportMetric(ms(a), "ansible-median-ms")
		b.ReportMetric(ratio, "x-faster")
		w := os.Stdout
		fmt.Fprintf(w, "\n%d hosts, `uptime` on each, same machine, same run\n", peersAgents)
		fmt.Fprintf(w, "%-44s %-40s %s\n", "figure", "measured", "goal")
		fmt.Fprintf(w, "%-44s %-40s %s\n", "pulse run --wait, median of 5", fmt.Sprintf("%.0f ms %s", ms(p), msList(pulseTimes)), "")
		fmt.Fprintf(w, "%-44s %-40s %s\n", "ansible -f 50 connection=local, median of 3", fmt.Sprintf("%.0f ms %s", ms(a), msList(ansibleTimes)), "")
		fmt.Fprintf(w, "%-44s %-40s %s\n", "Pulse faster by", fmt.Sprintf("%.1f×", ratio), fmt.Sprintf("≥ %.0f×", peersGoal))
		for i, p := range phases {
			fmt.Fprintf(w, "pulse run %d: created at %.0f ms, first agent started at %.0f ms, last finished at %.0f ms\n", i, ms(p[0]), ms(p[1]), ms(p[2]))
		}
	}
}

// median is the middle of ds (the upper middle for an even count); ds is not changed.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// ms is d in milliseconds, for metrics.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// msList writes every run's time, so a reader sees the spread behind a median.
func msList(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.0f", ms(d))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
