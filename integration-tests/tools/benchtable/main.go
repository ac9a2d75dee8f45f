// Command benchtable passes `go test -bench` output through and ends it with a table of the project's
// performance goals (issue #10): each figure measured beside its goal, and whether it was met. `make
// bench` and `make bench-peers` pipe their benchmarks through it; a figure whose benchmark did not
// run shows as "not run", or is left out with -ran.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// goal is one figure: the metric a benchmark reports and the bound it must meet.
type goal struct {
	figure  string
	bench   string // benchmark name without the -GOMAXPROCS suffix
	unit    string
	bound   float64
	atLeast bool   // the figure must reach bound, not stay under it
	also    string // another metric of the same benchmark printed beside it (unit)
	// per, when set, is a second benchmark with the same metric: the figure is bench's value over
	// per's (growth: 1 is linear cost per event).
	per string
	// measured marks a figure an issue asks to measure without setting a bound: it is printed, and
	// nothing is met or missed.
	measured bool
}

var goals = []goal{
	{figure: "store writes per agent per command (done within 1 s, small output)", bench: "BenchmarkWritesPerAgent", unit: "writes/agent", bound: 2, also: "writes/command"},
	{figure: "fan-out to 1,000 simulated agents on MinIO, all results stored (s)", bench: "BenchmarkFanout1000", unit: "s-all-results", bound: 2, also: "store-PUT/s"},
	{figure: "the same with the hub killed and restarted mid fan-out (s; no result lost)", bench: "BenchmarkFanoutHubKilled", unit: "s-all-results", bound: 0, also: "offered-again"},
	{figure: "command issued → agent holds the envelope, 10 agents, p50 (ms)", bench: "BenchmarkEnqueueToEnvelope/agents=10", unit: "p50-ms", bound: 10},
	{figure: "the same, p99 (ms)", bench: "BenchmarkEnqueueToEnvelope/agents=10", unit: "p99-ms", bound: 50},
	{figure: "the same with 1,000 agents in long polls, p50 (ms)", bench: "BenchmarkEnqueueToEnvelope/agents=1000", unit: "p50-ms", bound: 20},
	{figure: "command creation with 10,000 enrolled agents, p50 (ms)", bench: "BenchmarkHubMemoryWaitingPolls/polls=10000", unit: "create-p50-ms", bound: 50},
	{figure: "hub memory with 10,000 waiting polls (MiB)", bench: "BenchmarkHubMemoryWaitingPolls/polls=10000", unit: "hub-RSS-MiB", bound: 500},
	{figure: "store requests per idle agent per hour, long-running hub defaults", bench: "BenchmarkStoreRequestsPerIdleAgent", unit: "store-req/agent/h", bound: 36, also: "per-hub-req/h"},
	{figure: "workflow step to next step, p50 (ms)", bench: "BenchmarkWorkflowSteps", unit: "p50-ms", bound: 10},
	{figure: "store requests per event, a 1,000-event execution over a 100-event one (1: linear)", bench: "BenchmarkWorkflowEventCost/events=999",
		per: "BenchmarkWorkflowEventCost/events=101", unit: "exec-req/event", bound: 1.5},
	{figure: "pulse run --wait, 50 real agents, times faster than Ansible ad hoc", bench: "BenchmarkPeersAnsible", unit: "x-faster", bound: 100, atLeast: true},
	{figure: "plans: 100 simulated agents × 10 file units, apply → all converged (s)", bench: "BenchmarkPlanConverge", unit: "s-converged", measured: true},
	{figure: "plans: store requests per agent per hour, converged idle plan, 60 s period", bench: "BenchmarkPlanConverge", unit: "store-req/agent/h", measured: true},
	{figure: "metrics: store writes per agent per hour (10 s samples, 5 min uploads, 100 series; raw + 1m tier)", bench: "BenchmarkMetricsWritesPerAgent", unit: "writes/agent/h", measured: true, also: "objects/agent/day"},
	{figure: "metrics: bytes written per agent per hour, as stored (KiB)", bench: "BenchmarkMetricsWritesPerAgent", unit: "KiB/agent/h", measured: true, also: "MiB/agent/day"},
	{figure: "metrics: 1,000 simulated agents upload a 5-minute batch each at once, all stored (s)", bench: "BenchmarkMetricsIngest1000", unit: "s-1000-batches", measured: true, also: "batches/s"},
	{figure: "metrics: a 24 h range query at 1-minute step (16 series), p50 (ms)", bench: "BenchmarkMetricsQuery24h", unit: "p50-ms", measured: true, also: "cold-ms"},
	{figure: "alerts: 1,000 agents' batches taken with 10 metric rules in force, tracks settled (s)", bench: "BenchmarkMetricAlerts1000", unit: "s-1000-settled", measured: true, also: "extra-req/batch"},
	{figure: "alerts: 1,000 agents' batches that fire a metric alert each (s)", bench: "BenchmarkMetricAlerts1000", unit: "s-1000-firing", measured: true, also: "extra-req/firing-batch"},
	{figure: "alerts: one evaluation of 10 offline rules over 1,000 agents, tracks settled, p50 (ms)", bench: "BenchmarkAlertTick1000", unit: "p50-ms/tick", measured: true, also: "store-req/tick"},
	{figure: "alerts: the evaluation in which 1,000 agents × 10 rules fire at once (s)", bench: "BenchmarkAlertTick1000", unit: "s-10000-fired", measured: true},
	{figure: "function mode: store requests per idle agent per hour (a poll every 5 s, a liveness beat every 2 min)", bench: "BenchmarkFunctionIdleAgent", unit: "store-req/agent/h", measured: true, also: "invocations/agent/h"},
	{figure: "function mode: store requests of one poll, warm instance (cold in the next column)", bench: "BenchmarkFunctionIdleAgent", unit: "store-req/poll-warm", bound: 1, also: "store-req/poll-cold"},
	{figure: "function mode: one idle poll's time in the handler, p50 (ms; billed duration)", bench: "BenchmarkFunctionIdleAgent", unit: "p50-ms/poll", measured: true},
	{figure: "plans: CPU of a real idle agent reconciling 20 units every 60 s (% of a core)", bench: "BenchmarkPlanIdleAgentCPU", unit: "cpu-%-at-60s", measured: true, also: "cpu-ms/round"},
	{figure: "dashboard: JavaScript shipped on first load, gzip (KiB; the scripts before any lazy chunk)", bench: "BenchmarkDashboard", unit: "first-js-gzip-KiB", measured: true, also: "first-js-files"},
	{figure: "dashboard: first load against a local hub, navigation to the first agent row, median of 5 (ms)", bench: "BenchmarkDashboard", unit: "first-load-ms", measured: true},
	{figure: "dashboard: 10,000 simulated agents, sign-in to the first rows, median of 3 (ms)", bench: "BenchmarkDashboard", unit: "fleet10k-render-ms", measured: true},
	{figure: "dashboard: 10,000 simulated agents, four scroll jumps to the last row, median of 3 (ms)", bench: "BenchmarkDashboard", unit: "fleet10k-scroll-ms", measured: true},
}

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

func main() {
	ran := flag.Bool("ran", false, "list only the figures whose benchmark ran")
	flag.Parse()
	metrics := map[string]map[string]float64{}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		text := in.Text()
		fmt.Println(text)
		m := line.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if metrics[m[1]] == nil {
				metrics[m[1]] = map[string]float64{}
			}
			metrics[m[1]][f[i+1]] = v
		}
	}
	write(os.Stdout, metrics, *ran)
}

func write(w io.Writer, metrics map[string]map[string]float64, onlyRan bool) {
	fmt.Fprintln(w, "\n| figure | measured | goal | met |\n| --- | --- | --- | --- |")
	for _, g := range goals {
		v, ok := metrics[g.bench][g.unit]
		if d, dok := metrics[g.per][g.unit]; g.per != "" && ok {
			v, ok = v/d, dok && d != 0
		}
		if !ok && onlyRan {
			continue
		}
		measured, goalText, met := "not run", "", ""
		switch {
		case g.measured:
			goalText = "— (measured)"
		case g.bound == 0:
			goalText = "every result stored"
		case g.atLeast:
			goalText = "≥ " + num(g.bound)
		default:
			goalText = "≤ " + num(g.bound)
		}
		if ok {
			measured = num(v)
			if a, ok := metrics[g.bench][g.also]; ok && g.also != "" {
				measured += fmt.Sprintf(" (%s %s)", num(a), g.also)
			}
			switch {
			case g.measured:
				met = "—"
			case g.bound == 0:
				met = "yes"
			case g.atLeast && v >= g.bound, !g.atLeast && v <= g.bound:
				met = "yes"
			default:
				met = "**no**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", g.figure, measured, goalText, met)
	}
}

func num(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
