package integration

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/s3"
	"github.com/pulsehq/pulse/integration-tests/s3server"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// benchHub is a real `pulse serve` on the shared MinIO with n enrolled simulated agents.
type benchHub struct {
	h      *hubProc
	token  string
	agents []*simagent.Agent
	store  store.Store // the hub's store, to count objects without going through the API
}

func newBenchHub(b *testing.B, n int, hold string) *benchHub {
	b.Helper()
	dir := b.TempDir()
	prefix := fmt.Sprintf("bench-%d-%d", n, time.Now().UnixNano())
	storeURL := minio.URL(bucket, prefix)
	cmd := exec.Command(pulseBin, "init", "--json", "--store", storeURL)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), s3server.Env()...)
	out, err := cmd.Output()
	if err != nil {
		b.Fatal(err)
	}
	var res struct {
		AdminToken string `json:"adminToken"`
	}
	json.Unmarshal(out, &res)
	h := startHub(b, dir, s3server.Env(), "--store", storeURL, "--poll-hold", hold, "--log-level", "warn")
	bs, err := s3.New(s3.Config{Bucket: bucket, Prefix: prefix + "/", Endpoint: minio.Endpoint, Region: "us-east-1",
		Creds: credentials.NewStaticV4(s3server.AccessKey, s3server.SecretKey, "")})
	if err != nil {
		b.Fatal(err)
	}
	bh := &benchHub{h: h, token: res.AdminToken, store: bs}
	ctx := context.Background()
	tokens := map[int]string{}
	const perToken = 1000
	for i := 0; i < n; i += perToken {
		var tok struct {
			Token string `json:"token"`
		}
		if code := op(b, h, bh.token, "POST", "/v1/enroll-tokens", map[string]any{"uses": min(perToken, n-i)}, &tok); code != 201 {
			b.Fatalf("enroll token: %d", code)
		}
		tokens[i/perToken] = tok.Token
	}
	bh.agents = make([]*simagent.Agent, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var failed atomic.Value
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			a, err := simagent.Enroll(ctx, h.url, tokens[i/perToken], fmt.Sprintf("sim-%05d", i), nil)
			if err != nil {
				failed.Store(err)
				return
			}
			bh.agents[i] = a
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("enroll: %v", err)
	}
	return bh
}

// percentiles reports p50/p99 of ds in milliseconds.
func percentiles(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	at := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(float64(len(ds))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkEnqueueToEnvelope: time from POST /v1/commands to the agent holding the verified envelope,
// with N agents all waiting in long polls on one hub on local MinIO.
func BenchmarkEnqueueToEnvelope(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			bh := newBenchHub(b, n, "30s")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make([]chan time.Time, n)
			for i, a := range bh.agents {
				got[i] = make(chan time.Time, 16)
				go func() {
					var ack []string
					for ctx.Err() == nil {
						works, _, err := a.Poll(ctx, ack)
						now := time.Now()
						ack = nil
						if err != nil {
							continue
						}
						for _, w := range works {
							ack = append(ack, w.InboxKey)
							got[i] <- now
						}
					}
				}()
			}
			time.Sleep(time.Second) // let every poll settle into its hold
			var lat []time.Duration
			for b.Loop() {
				i := rand.IntN(n)
				start := time.Now()
				var st commandStatus
				if code := op(b, bh.h, bh.token, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{bh.agents[i].ID}}, &st); code != 202 {
					b.Fatalf("create: %d", code)
				}
				select {
				case at := <-got[i]:
					lat = append(lat, at.Sub(start))
				case <-time.After(60 * time.Second):
					b.Fatal("envelope never arrived")
				}
			}
			percentiles(b, lat)
		})
	}
}

// BenchmarkFanout1000: one command to 1,000 agents that answer at once; time until every result is
// stored (counted in the bucket, not through the API).
func BenchmarkFanout1000(b *testing.B) {
	const n = 1000
	bh := newBenchHub(b, n, "30s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, a := range bh.agents {
		go func() {
			var ack []string
			for ctx.Err() == nil {
				works, _, err := a.Poll(ctx, ack)
				ack = nil
				if err != nil {
					continue
				}
				for _, w := range works {
					ack = append(ack, w.InboxKey)
					a.Complete(ctx, w, wire.StatusSucceeded, 0, nil)
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	for b.Loop() {
		start := time.Now()
		var st commandStatus
		if code := op(b, bh.h, bh.token, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{"all"}}, &st); code != 202 {
			b.Fatalf("create: %d", code)
		}
		for {
			done := 0
			store.Walk(context.Background(), bh.store, "v1/results/"+st.ID+"/", "", 0, func(o store.ObjectInfo) error {
				if strings.HasSuffix(o.Key, ".json") && strings.Count(strings.TrimPrefix(o.Key, "v1/results/"+st.ID+"/"), "/") == 0 {
					done++
				}
				return nil
			})
			if done == n {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("fan-out incomplete: %d of %d results", done, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-all-results")
	}
}

// BenchmarkHubMemoryWaitingPolls: the hub's resident memory while N polls wait.
func BenchmarkHubMemoryWaitingPolls(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("polls=%d", n), func(b *testing.B) {
			bh := newBenchHub(b, n, "300s")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for _, a := range bh.agents {
				go a.Poll(ctx, nil)
			}
			for b.Loop() {
				time.Sleep(5 * time.Second)
			}
			b.ReportMetric(float64(rssKiB(b, bh.h.cmd.Process.Pid))/1024, "hub-RSS-MiB")
			b.ReportMetric(float64(rssKiB(b, bh.h.cmd.Process.Pid))/float64(n), "KiB/poll")
		})
	}
}

// BenchmarkIdleAgent: a real pulse-agent, idle against a hub: resident memory and CPU share.
func BenchmarkIdleAgent(b *testing.B) {
	bh := newBenchHub(b, 0, "30s")
	var tok struct {
		Token string `json:"token"`
	}
	op(b, bh.h, bh.token, "POST", "/v1/enroll-tokens", map[string]any{}, &tok)
	stateDir := b.TempDir()
	cfg := filepath.Join(b.TempDir(), "agent.toml")
	os.WriteFile(cfg, []byte(strings.Replace(agentConfig, `heartbeat = "1s"`, `heartbeat = "30s"`, 1)), 0o600)
	cmd := exec.Command(agentBin, "run", "--hub", bh.h.url, "--state-dir", stateDir, "--config", cfg, "--enroll-token", tok.Token)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(3 * time.Second) // enrolled and idle
	for b.Loop() {
		t0 := cpuTicks(b, cmd.Process.Pid)
		time.Sleep(20 * time.Second)
		ticks := cpuTicks(b, cmd.Process.Pid) - t0
		b.ReportMetric(float64(ticks)/100/20*100, "cpu-%")
	}
	b.ReportMetric(float64(rssKiB(b, cmd.Process.Pid))/1024, "agent-RSS-MiB")
}

func rssKiB(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// cpuTicks returns utime+stime of a process in clock ticks (100 per second on Linux).
func cpuTicks(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return ut + st
}

// countingStore counts store requests by kind, to measure what an idle fleet costs.
type countingStore struct {
	store.Store
	bells, other atomic.Int64
}

func (c *countingStore) count(key string) {
	if strings.HasPrefix(key, "v1/bells/") {
		c.bells.Add(1)
	} else {
		c.other.Add(1)
	}
}
func (c *countingStore) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	c.count(k)
	return c.Store.Get(ctx, k, o)
}
func (c *countingStore) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	c.count(k)
	return c.Store.Put(ctx, k, r, n, o)
}
func (c *countingStore) List(ctx context.Context, p, after string, limit int) (store.Page, error) {
	c.count(p)
	return c.Store.List(ctx, p, after, limit)
}
func (c *countingStore) Delete(ctx context.Context, k string) error {
	c.count(k)
	return c.Store.Delete(ctx, k)
}

// BenchmarkStoreRequestsPerIdleAgent: store requests an idle agent causes per hour (polls held 30s,
// heartbeats every 30s), measured on an in-process hub over MinIO with a counting store and scaled from
// a short run with 2s holds and heartbeats. The bell feed's one LIST per second per hub instance is
// reported separately: it does not grow with the number of agents.
func BenchmarkStoreRequestsPerIdleAgent(b *testing.B) {
	const n, period = 20, 2 * time.Second
	inner, err := minio.Store(bucket)
	if err != nil {
		b.Fatal(err)
	}
	cs := &countingStore{Store: inner}
	_, priv, _ := ed25519.GenerateKey(crand.Reader)
	h, err := hub.New(context.Background(), hub.Config{Store: cs, Keys: &hubkey.Keys{Current: priv}, PollHold: period,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	mux := http.NewServeMux()
	hub.NewAPI(mux, h)
	srv := httptest.NewServer(hub.Handler(mux, h.Log))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Delivery.WatchBells(ctx)
	admin, err := hub.CreateAPIToken(ctx, h.Store, "bench", []string{"admin"}, 0, "bench")
	if err != nil {
		b.Fatal(err)
	}
	hp := &hubProc{t: b, url: srv.URL}
	var tok struct {
		Token string `json:"token"`
	}
	op(b, hp, admin, "POST", "/v1/enroll-tokens", map[string]any{"uses": n}, &tok)
	var agents []*simagent.Agent
	for i := range n {
		a, err := simagent.Enroll(ctx, srv.URL, tok.Token, fmt.Sprintf("idle-%d", i), nil)
		if err != nil {
			b.Fatal(err)
		}
		agents = append(agents, a)
	}
	var polls, beats atomic.Int64
	for b.Loop() {
		cs.bells.Store(0)
		cs.other.Store(0)
		polls.Store(0)
		beats.Store(0)
		rctx, stop := context.WithTimeout(ctx, 10*time.Second)
		var wg sync.WaitGroup
		for _, a := range agents {
			wg.Go(func() {
				for rctx.Err() == nil {
					if _, _, err := a.Poll(rctx, nil); err == nil {
						polls.Add(1)
					}
				}
			})
			wg.Go(func() {
				t := time.NewTicker(period)
				defer t.Stop()
				for {
					select {
					case <-rctx.Done():
						return
					case <-t.C:
						if a.Heartbeat(rctx) == nil {
							beats.Add(1)
						}
					}
				}
			})
		}
		wg.Wait()
		stop()
		perPoll := float64(cs.other.Load()) / float64(polls.Load()+beats.Load()) // each is one request
		perHour := perPoll * (3600/30 + 3600/30)
		b.ReportMetric(perHour, "store-req/agent/h")
		b.ReportMetric(float64(cs.bells.Load())/10*3600, "bell-req/hub/h")
	}
}

// BenchmarkWorkflowSteps: step-to-step latency of the engine (an agent's result stored → the next
// step's command in the agent's hands), and executions advanced per second with 100 executions of a
// three-step workflow in flight on one hub over MinIO.
func BenchmarkWorkflowSteps(b *testing.B) {
	const agents, executions = 10, 100
	bh := newBenchHub(b, 0, "30s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var tok struct {
		Token string `json:"token"`
	}
	op(b, bh.h, bh.token, "POST", "/v1/enroll-tokens", map[string]any{"uses": agents}, &tok)
	catalog := []wire.CommandSpec{{Name: "noop", Group: "test"}}
	var mu sync.Mutex
	var gaps []time.Duration
	for i := range agents {
		a, err := simagent.Enroll(ctx, bh.h.url, tok.Token, fmt.Sprintf("wf-%d", i), catalog)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			var ack []string
			var lastDone time.Time
			for ctx.Err() == nil {
				works, _, err := a.Poll(ctx, ack)
				got := time.Now()
				ack = nil
				if err != nil {
					continue
				}
				for _, w := range works {
					ack = append(ack, w.InboxKey)
					if w.Envelope.Kind != wire.KindCommand {
						continue
					}
					// The gap since this agent's previous result: the next step of that execution, or (less
					// often, under load) a step of another execution queued behind it.
					if !lastDone.IsZero() && len(works) == 1 {
						mu.Lock()
						gaps = append(gaps, got.Sub(lastDone))
						mu.Unlock()
					}
					a.Complete(ctx, w, wire.StatusSucceeded, 0, nil)
					lastDone = time.Now()
				}
			}
		}()
	}
	src := "steps:\n  - {name: a, type: execute, targets: [TARGET], command: noop}\n  - {name: b, type: execute, targets: [TARGET], command: noop}\n  - {name: c, type: execute, targets: [TARGET], command: noop}\n"
	for i := range agents {
		var v struct{}
		name := fmt.Sprintf("steps-%d", i)
		if code := op(b, bh.h, bh.token, "PUT", "/v1/workflows/"+name, map[string]any{"source": strings.ReplaceAll(src, "TARGET", fmt.Sprintf("wf-%d", i))}, &v); code != 200 {
			b.Fatalf("apply: %d", code)
		}
	}
	for b.Loop() {
		mu.Lock()
		gaps = nil
		mu.Unlock()
		start := time.Now()
		ids := make([]string, executions)
		for i := range executions {
			var v struct {
				ID string `json:"id"`
			}
			if code := op(b, bh.h, bh.token, "POST", "/v1/executions", map[string]any{"workflow": fmt.Sprintf("steps-%d", i%agents)}, &v); code != 201 {
				b.Fatalf("start: %d", code)
			}
			ids[i] = v.ID
		}
		for _, id := range ids {
			for {
				var v executionView
				op(b, bh.h, bh.token, "GET", "/v1/executions/"+id, nil, &v)
				if v.State.Status == "succeeded" {
					break
				}
				if time.Since(start) > 10*time.Minute {
					b.Fatalf("execution %s: %s", id, v.State.Status)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		b.ReportMetric(float64(executions*3)/time.Since(start).Seconds(), "steps/s")
		b.ReportMetric(float64(executions)/time.Since(start).Seconds(), "executions/s")
		mu.Lock()
		if len(gaps) > 0 {
			percentiles(b, gaps)
		}
		mu.Unlock()
	}
}
