package integration

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
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
	// dir, addr and args start the hub again where its agents expect it.
	dir, addr string
	args      []string
}

// restart kills the hub (SIGKILL: nothing is flushed) and starts it again on the same address.
func (bh *benchHub) restart(b *testing.B) {
	bh.h.cmd.Process.Kill()
	<-bh.h.done
	bh.h.done <- nil
	bh.h = startHubAt(b, bh.dir, bh.addr, s3server.Env(), bh.args...)
}

func newBenchHub(b *testing.B, n int, hold string) *benchHub {
	b.Helper()
	dir := b.TempDir()
	prefix := fmt.Sprintf("bench-%d-%d", n, time.Now().UnixNano())
	storeURL := minio.URL(bucket, prefix)
	adminToken := initAt(b, dir, storeURL)
	args := []string{"--store", storeURL, "--poll-hold", hold, "--log-level", "warn"}
	addr := freeAddr(b)
	h := startHubAt(b, dir, addr, s3server.Env(), args...)
	bs, err := s3.New(s3.Config{Bucket: bucket, Prefix: prefix + "/", Endpoint: minio.Endpoint, Region: "us-east-1",
		Creds: credentials.NewStaticV4(s3server.AccessKey, s3server.SecretKey, "")})
	if err != nil {
		b.Fatal(err)
	}
	bh := &benchHub{h: h, token: adminToken, store: bs, dir: dir, addr: addr, args: args}
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
			if err == nil {
				err = a.Heartbeat(ctx) // as a real agent does when it starts
			}
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
				go a.Serve(ctx, func(simagent.Work) { got[i] <- time.Now() })
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
		go a.Serve(ctx, func(w simagent.Work) { a.Complete(ctx, w, wire.StatusSucceeded, 0, nil) })
	}
	time.Sleep(2 * time.Second)
	putRate := rawPutRate(b, bh.store)
	for b.Loop() {
		start := time.Now()
		var st commandStatus
		if code := op(b, bh.h, bh.token, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{"all"}}, &st); code != 202 {
			b.Fatalf("create: %d", code)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "create-ms")
		b.ReportMetric(putRate, "store-PUT/s")
		results := &resultCounter{st: bh.store, cmd: st.ID}
		for results.count() < n {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("fan-out incomplete: %d of %d results", results.n, n)
			}
			time.Sleep(500 * time.Millisecond)
		}
		b.ReportMetric(results.last.Sub(start).Seconds(), "s-all-results")
		b.ReportMetric(results.first.Sub(start).Seconds(), "s-first-result")
	}
}

// rawPutRate is what the store takes without the hub: 1 KiB create-only PUTs from 16 writers for two
// seconds, the ceiling any fan-out on it runs into.
func rawPutRate(b *testing.B, st store.Store) float64 {
	b.Helper()
	ctx := context.Background()
	var n atomic.Int64
	deadline := time.Now().Add(2 * time.Second)
	body := strings.Repeat("x", 1024)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				key := fmt.Sprintf("v1/_probe/rate-%d-%d.json", w, i)
				if _, err := store.PutBytes(ctx, st, key, []byte(body), store.PutOptions{CreateOnly: true}); err == nil {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / 2
}

// resultCounter counts the results of a command in the bucket and when the last of them landed (the
// store's own time). The fan-out figure is that time, so how often the count lists (every half second:
// a listing of 1,000 keys costs MinIO tens of milliseconds of CPU, which the fan-out would lose) does
// not change it.
type resultCounter struct {
	st          store.Store
	cmd         string
	n           int
	first, last time.Time
}

func (c *resultCounter) count() int {
	prefix := "v1/results/" + c.cmd + "/"
	n, first, last := 0, time.Time{}, time.Time{}
	store.Walk(context.Background(), c.st, prefix, "", 0, func(o store.ObjectInfo) error {
		if strings.HasSuffix(o.Key, ".json") && strings.Count(strings.TrimPrefix(o.Key, prefix), "/") == 0 {
			n++
			if o.LastModified.After(last) {
				last = o.LastModified
			}
			if first.IsZero() || o.LastModified.Before(first) {
				first = o.LastModified
			}
		}
		return nil
	})
	c.n, c.first, c.last = n, first, last
	return n
}

// BenchmarkFanoutHubKilled: the hub is killed (SIGKILL) right after it released a command to 1,000
// agents, while they run it and upload their results, and started again. Like the real agent, each
// simulated agent runs an envelope it already ran never again (acknowledging it) and retries its
// result until the hub takes it. It fails unless every result is stored and no agent ran the command
// twice; it reports the time until the last result.
func BenchmarkFanoutHubKilled(b *testing.B) {
	const n = 1000
	bh := newBenchHub(b, n, "30s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := make([]map[string]int, n)
	var mu sync.Mutex
	for i, a := range bh.agents {
		runs[i] = map[string]int{}
		go a.Serve(ctx, func(w simagent.Work) {
			mu.Lock()
			runs[i][w.Command.CommandID]++
			again := runs[i][w.Command.CommandID] > 1
			mu.Unlock()
			if again {
				return // the agent's replay record: offered again, never run again
			}
			for ctx.Err() == nil && a.Complete(ctx, w, wire.StatusSucceeded, 0, nil) != nil {
				time.Sleep(100 * time.Millisecond) // the outbox retries until the hub takes it
			}
		})
	}
	time.Sleep(2 * time.Second)
	for b.Loop() {
		start := time.Now()
		var st commandStatus
		if code := op(b, bh.h, bh.token, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{"all"}}, &st); code != 202 {
			b.Fatalf("create: %d", code)
		}
		results := &resultCounter{st: bh.store, cmd: st.ID}
		atKill := results.count()
		bh.restart(b)
		for results.count() < n {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("after the restart: %d of %d results", results.n, n)
			}
			time.Sleep(500 * time.Millisecond)
		}
		b.ReportMetric(results.last.Sub(start).Seconds(), "s-all-results")
		b.ReportMetric(float64(atKill), "results-when-killed")
		mu.Lock()
		again := 0
		for i, r := range runs {
			switch {
			case r[st.ID] == 0:
				b.Errorf("agent %d never received the command, yet a result of it is stored", i)
			case r[st.ID] > 1:
				again++ // offered again by the restarted hub; acknowledged, not run
			}
		}
		mu.Unlock()
		b.ReportMetric(float64(again), "offered-again")
		var final commandStatus
		op(b, bh.h, bh.token, "GET", "/v1/commands/"+st.ID, nil, &final)
		if !final.Done || final.Counts["succeeded"] != n {
			b.Fatalf("after the restart: %+v", final.Counts)
		}
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
			// Creating a command with the whole fleet enrolled (and waiting): one target each time, so
			// what is measured is what a create costs, not the release to many.
			var lat []time.Duration
			for range 20 {
				start := time.Now()
				var st commandStatus
				if code := op(b, bh.h, bh.token, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{bh.agents[rand.IntN(n)].ID}}, &st); code != 202 {
					b.Fatalf("create: %d", code)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "create-p50-ms")
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

// countingStore counts store requests by kind, to measure what an idle fleet and a command cost. The
// bell feed, the resync of open deliveries and the refresh of the retired set (a LIST every few
// seconds while requests come) are per hub instance, not per agent: counted apart.
type countingStore struct {
	store.Store
	bells, other, writes atomic.Int64
	// observe, when set, sees the key (or prefix) of every request, for counts of its own.
	observe func(key string)
}

func (c *countingStore) count(key string) {
	if c.observe != nil {
		c.observe(key)
	}
	if strings.HasPrefix(key, "v1/bells/") || strings.HasPrefix(key, "v1/deliveries/") || strings.HasPrefix(key, "v1/retired-agents/") {
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
	c.writes.Add(1)
	return c.Store.Put(ctx, k, r, n, o)
}
func (c *countingStore) List(ctx context.Context, p, after string, limit int) (store.Page, error) {
	c.count(p)
	return c.Store.List(ctx, p, after, limit)
}
func (c *countingStore) Delete(ctx context.Context, k string) error {
	c.count(k)
	c.writes.Add(1)
	return c.Store.Delete(ctx, k)
}

// inProcessHub is a hub on MinIO behind a counting store (observe, when set, sees every request's
// key), served in-process, with n enrolled simulated agents offering catalog.
func inProcessHub(b *testing.B, n int, hold time.Duration, catalog []wire.CommandSpec, observe func(string)) (*hub.Hub, *countingStore, *hubProc, string, []*simagent.Agent) {
	b.Helper()
	_, priv, _ := ed25519.GenerateKey(crand.Reader)
	return inProcessHubWith(b, n, hub.Config{Keys: &hubkey.Keys{Current: priv}, PollHold: hold}, catalog, observe)
}

// inProcessHubWith is inProcessHub with the hub's configuration (its store is set here).
func inProcessHubWith(b *testing.B, n int, cfg hub.Config, catalog []wire.CommandSpec, observe func(string)) (*hub.Hub, *countingStore, *hubProc, string, []*simagent.Agent) {
	b.Helper()
	inner, err := minio.Store(bucket)
	if err != nil {
		b.Fatal(err)
	}
	cs := &countingStore{Store: inner, observe: observe}
	cfg.Store, cfg.Log, cfg.Version = cs, slog.New(slog.NewTextHandler(io.Discard, nil)), "bench"
	h, err := hub.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	mux := http.NewServeMux()
	hub.NewAPI(mux, h)
	srv := httptest.NewServer(hub.Handler(mux, h.Log))
	b.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
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
		a, err := simagent.Enroll(ctx, srv.URL, tok.Token, fmt.Sprintf("sim-%d", i), catalog)
		if err != nil {
			b.Fatal(err)
		}
		agents = append(agents, a)
	}
	return h, cs, hp, admin, agents
}

// BenchmarkStoreRequestsPerIdleAgent: store requests an idle agent causes per hour with the
// long-running hub's defaults (polls held 30 s, an unchanged heartbeat every 2 min), from the
// requests one held poll and one heartbeat cost, measured on an in-process hub over MinIO with a
// counting store (2 s holds, so the run is short). The bell feed's LIST per second and the resync of
// open deliveries every 30 s (and the retired set's refresh) are per hub instance and reported apart: they do not grow with the
// number of agents.
func BenchmarkStoreRequestsPerIdleAgent(b *testing.B) {
	const n, period = 20, 2 * time.Second
	_, cs, _, _, agents := inProcessHub(b, n, period, nil, nil)
	ctx := context.Background()
	for _, a := range agents { // the first heartbeat is a change; the ones measured below are not
		a.Heartbeat(ctx)
	}
	for b.Loop() {
		// Polls alone, held.
		cs.bells.Store(0)
		cs.other.Store(0)
		var polls atomic.Int64
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
		}
		wg.Wait()
		stop()
		perPoll := float64(cs.other.Load()) / float64(max(polls.Load(), 1))
		hubPerHour := float64(cs.bells.Load()) / 10 * 3600
		// Heartbeats alone.
		cs.other.Store(0)
		for _, a := range agents {
			a.Heartbeat(ctx)
		}
		perBeat := float64(cs.other.Load()) / float64(n)
		perHour := perPoll*(3600/30) + perBeat*(3600/120)
		b.ReportMetric(perPoll, "store-req/poll")
		b.ReportMetric(perBeat, "store-req/heartbeat")
		b.ReportMetric(perHour, "store-req/agent/h")
		b.ReportMetric(hubPerHour, "per-hub-req/h")
	}
}

// BenchmarkWritesPerAgent: store writes (PUTs and DELETEs) of one command that every agent answers at
// once with a little output, on an in-process hub over MinIO: the writes that grow with the number of
// agents, from a command to 1 agent and one to 101 (per agent = the difference / 100), and what one
// command costs besides.
func BenchmarkWritesPerAgent(b *testing.B) {
	const n = 101
	_, cs, hp, admin, agents := inProcessHub(b, n, 30*time.Second, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, a := range agents {
		go a.Serve(ctx, func(w simagent.Work) { a.Complete(ctx, w, wire.StatusSucceeded, 0, []byte("up 3 days\n")) })
	}
	time.Sleep(time.Second)
	run := func(targets []string) int64 {
		before := cs.writes.Load()
		var st commandStatus
		if code := op(b, hp, admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": targets}, &st); code != 202 {
			b.Fatalf("create: %d", code)
		}
		for deadline := time.Now().Add(time.Minute); ; {
			op(b, hp, admin, "GET", "/v1/commands/"+st.ID, nil, &st)
			if st.Done || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !st.Done {
			b.Fatalf("command %s not done", st.ID)
		}
		time.Sleep(200 * time.Millisecond) // late writes (the audit record) land
		return cs.writes.Load() - before
	}
	for b.Loop() {
		one := run([]string{agents[0].ID})
		all := run([]string{"all"})
		perAgent := float64(all-one) / float64(n-1)
		b.ReportMetric(perAgent, "writes/agent")
		b.ReportMetric(float64(one)-perAgent, "writes/command")
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
