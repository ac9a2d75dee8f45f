package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// BenchmarkPlanConverge: 100 simulated agents in long polls on an in-process hub over MinIO; a plan of
// 10 file units is applied and each agent, on receiving it, reports every unit converged (as a real
// agent does after its first round). It measures the hub's side of a rollout to 100 agents: apply →
// the status view says all 100 converged. Then every agent fetches its plans once a second (sixty
// times the default plan period) for a while, as a converged, idle fleet does, and the store
// requests of that window are counted per agent per hour at the default period.
func BenchmarkPlanConverge(b *testing.B) {
	const agents, units = 100, 10
	_, cs, hp, admin, sims := inProcessHub(b, agents, 30*time.Second, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var src strings.Builder
	src.WriteString("targets: [all]\nunits:\n")
	for i := range units {
		fmt.Fprintf(&src, "  - {name: f%d, type: file, spec: {path: /etc/app/f%d.conf, content: \"x=%d\\n\", mode: \"0644\"}}\n", i, i, i)
	}
	// Each simulated agent polls; a plan envelope is answered with a status of every unit converged.
	var wg sync.WaitGroup
	for _, a := range sims {
		wg.Go(func() {
			var ack []string
			for ctx.Err() == nil {
				works, _, err := a.Poll(ctx, ack)
				ack = nil
				if err != nil {
					continue
				}
				for _, w := range works {
					ack = append(ack, w.InboxKey)
					if w.Envelope.Kind != wire.KindPlan {
						continue
					}
					st := wire.PlanStatus{Plan: w.Plan.Name, Version: w.Plan.Version}
					for _, u := range w.Plan.Units {
						st.Units = append(st.Units, wire.UnitStatus{Unit: u.Name, Type: u.Type, State: wire.UnitConverged,
							Desired: u.Digest(), Observed: u.Digest(), ChangedAt: time.Now().UTC()})
					}
					a.ReportPlan(ctx, st)
				}
			}
		})
	}
	defer wg.Wait()
	defer cancel()
	for b.Loop() {
		start := time.Now()
		var applied struct {
			Version int `json:"version"`
		}
		if code := op(b, hp, admin, "PUT", "/v1/plans/bench", map[string]any{"source": src.String()}, &applied); code != 200 {
			b.Fatalf("apply: %d", code)
		}
		for {
			var v struct {
				Converged int `json:"converged"`
			}
			op(b, hp, admin, "GET", "/v1/plans/bench/status", nil, &v)
			if v.Converged == agents {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("%d of %d agents converged after 5 min", v.Converged, agents)
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-converged")

		// The idle fleet: every agent fetches its plans once a second for the window.
		const window = 10 * time.Second
		before := cs.bells.Load() + cs.other.Load()
		fetches := 0
		var mu sync.Mutex
		var fg sync.WaitGroup
		end := time.Now().Add(window)
		for _, a := range sims {
			fg.Go(func() {
				for time.Now().Before(end) {
					if works, err := a.Plans(ctx); err == nil && len(works) == 1 {
						mu.Lock()
						fetches++
						mu.Unlock()
					}
					time.Sleep(time.Second)
				}
			})
		}
		fg.Wait()
		reqs := cs.bells.Load() + cs.other.Load() - before
		// At the default plan period (60 s) an agent fetches 60 times an hour; the window's requests
		// per fetch, times that, is the per-agent hourly figure (the hub's own listings, every 30 s per
		// instance, are in it too, spread over the agents).
		perFetch := float64(reqs) / float64(max(fetches, 1))
		b.ReportMetric(perFetch*60, "store-req/agent/h")
		b.ReportMetric(float64(fetches), "fetches")
	}
}

// BenchmarkPlanIdleAgentCPU: one real pulse-agent holding a converged plan of 20 file units, fetching
// and reconciling it every second (60 times its default period) for 20 s: the CPU of one round, and
// what that is as a share of a core at the default 60 s period.
func BenchmarkPlanIdleAgentCPU(b *testing.B) {
	const units, window = 20, 20 * time.Second
	bh := newBenchHub(b, 0, "30s")
	var tok struct {
		Token string `json:"token"`
	}
	op(b, bh.h, bh.token, "POST", "/v1/enroll-tokens", map[string]any{}, &tok)
	root := b.TempDir()
	stateDir := b.TempDir()
	cfg := filepath.Join(b.TempDir(), "agent.toml")
	conf := strings.Replace(agentConfig, "heartbeat = \"1s\"", "heartbeat = \"30s\"\nplan_period = \"1s\"", 1) + fmt.Sprintf("\n[files]\nroots = [%q]\n", root)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(agentBin, "run", "--hub", bh.h.url, "--state-dir", stateDir, "--config", cfg, "--enroll-token", tok.Token)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var src strings.Builder
	src.WriteString("targets: [all]\nunits:\n")
	for i := range units {
		fmt.Fprintf(&src, "  - {name: f%d, type: file, spec: {path: %q, content: \"x=%d\\n\", mode: \"0644\"}}\n", i, filepath.Join(root, fmt.Sprintf("f%d.conf", i)), i)
	}
	waitFor(b, "the agent online", time.Minute, func() bool {
		l := listAgents(b, bh.h.url, bh.token)
		return len(l.Agents) == 1 && l.Agents[0].Online
	})
	if code := op(b, bh.h, bh.token, "PUT", "/v1/plans/idle", map[string]any{"source": src.String()}, nil); code != 200 {
		b.Fatalf("apply: %d", code)
	}
	waitFor(b, "the plan converged", time.Minute, func() bool {
		var v struct {
			Converged int `json:"converged"`
		}
		op(b, bh.h, bh.token, "GET", "/v1/plans/idle/status", nil, &v)
		return v.Converged == 1
	})
	for b.Loop() {
		t0 := cpuTicks(b, cmd.Process.Pid)
		time.Sleep(window)
		ticks := cpuTicks(b, cmd.Process.Pid) - t0
		perRound := float64(ticks) * 10 / window.Seconds() // ms of CPU per round (one round a second)
		b.ReportMetric(perRound, "cpu-ms/round")
		b.ReportMetric(perRound/60000*100, "cpu-%-at-60s")
	}
}
