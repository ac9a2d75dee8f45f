package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	api "github.com/pulsehq/pulse/openapi/client"
)

// metricsHelp is what `pulse metrics --help` says before the flags.
const metricsHelp = `Prints an agent's metric history as a small chart per series: a sparkline of the averages, then the
minimum, average, maximum and last value over the range. AGENT is the agent's id or name; NAME is a
metric name as the agent sends it (node_cpu_seconds_total, node_filesystem_avail_bytes, …); without
NAME, the series the agent reports are listed with their newest value.

The hub answers from the finest tier that still covers the range: raw samples for the last 24 h,
1-minute buckets for 7 days, 1-hour for 90 days, 1-day for 2 years (by default), and says which.

  pulse metrics web-1 node_load1 --since 6h
  pulse metrics web-1 node_filesystem_avail_bytes --label mountpoint=/ --since 7d --step 1h
  pulse metrics web-1 node_cpu_seconds_total --json
  pulse metrics web-1 node_load1 --since 10m --watch   # redraw every 10 s; the agent uploads every 10 s meanwhile

With --watch the chart is drawn again every 10 seconds until Ctrl-C, and the hub asks the agent to
upload its samples every 10 s while you watch (instead of every 5 minutes), so the chart moves.`

func runMetrics(ctx context.Context, env *Env, args []string) error {
	agent, rest := splitID(args)
	name, rest := splitID(rest)
	fs := newFlags(env, "metrics", "AGENT [NAME] [--since 6h] [--step 1m] [--label k=v] [--watch] [--json]", metricsHelp)
	since := fs.String("since", "1h", "how far back: a duration (30m, 6h, 7d) or an RFC 3339 time")
	until := fs.String("until", "", "end of the range: a duration before now or an RFC 3339 time (default now)")
	step := fs.String("step", "", "bucket width (10s, 1m, 1h, 1d); default: about 240 points over the range")
	var labels listFlag
	fs.Var(&labels, "label", "only series with this label, k=v (repeatable)")
	asJSON := fs.Bool("json", false, "print the hub's JSON answer")
	width := fs.Int("width", 60, "width of a sparkline in characters")
	watch := fs.Bool("watch", false, "draw the chart again every 10 s until interrupted; the agent uploads every 10 s while watched")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if agent == "" {
		return usagef("want `pulse metrics AGENT [NAME]` (see pulse metrics --help)")
	}
	c, err := connect()
	if err != nil {
		return err
	}
	if name == "" {
		resp, err := c.api.ListAgentMetricsWithResponse(ctx, agent)
		v, err := answer(c, resp, err, (*api.ListAgentMetricsResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		if len(v.Series) == 0 {
			fmt.Fprintf(env.Stdout, "agent %s uploaded no metrics in the last 24 h\n", v.Agent)
			return nil
		}
		for _, s := range v.Series {
			fmt.Fprintf(env.Stdout, "%s  %s  %s  (%s)\n", seriesName(s.Name, s.Labels), s.Kind, number(s.V), time.UnixMilli(s.T).UTC().Format(time.RFC3339))
		}
		return nil
	}
	params := &api.GetAgentMetricsParams{Name: name, From: &[]string{*since}[0]}
	if *until != "" {
		params.To = until
	}
	if *step != "" {
		params.Step = step
	}
	if len(labels) > 0 {
		l := []string(labels)
		params.Label = &l
	}
	if !*watch {
		return drawMetrics(ctx, env, c, agent, params, *asJSON, *width)
	}
	live := true
	params.Live = &live
	for {
		if err := drawMetrics(ctx, env, c, agent, params, *asJSON, *width); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Second):
		}
		if !*asJSON {
			fmt.Fprintln(env.Stdout)
		}
	}
}

// drawMetrics queries one range and prints it.
func drawMetrics(ctx context.Context, env *Env, c *client, agent string, params *api.GetAgentMetricsParams, asJSON bool, width int) error {
	resp, err := c.api.GetAgentMetricsWithResponse(ctx, agent, params)
	v, err := answer(c, resp, err, (*api.GetAgentMetricsResponse).GetJSON200)
	if err != nil {
		return err
	}
	if asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	fmt.Fprintf(env.Stdout, "%s on %s, %s to %s, every %s (tier %s)\n", v.Name, v.Agent,
		v.From.UTC().Format("2006-01-02 15:04"), v.To.UTC().Format("2006-01-02 15:04 MST"), time.Duration(v.StepSeconds)*time.Second, v.Tier)
	if len(v.Series) == 0 {
		fmt.Fprintf(env.Stdout, "no samples of %s in this range (pulse metrics %s lists the series the agent reports)\n", v.Name, agent)
		return nil
	}
	for _, s := range v.Series {
		printSeries(env.Stdout, s, width)
	}
	return nil
}

// printSeries prints one series: its name and labels, a sparkline of its averages, and its summary.
func printSeries(w io.Writer, s api.ResultSeries, width int) {
	fmt.Fprintf(w, "\n%s\n", seriesName(s.Name, s.Labels))
	if len(s.Points) == 0 {
		fmt.Fprintln(w, "  (no samples)")
		return
	}
	lo, hi, sum, n := math.Inf(1), math.Inf(-1), 0.0, int64(0)
	for _, p := range s.Points {
		lo, hi = math.Min(lo, p.Min), math.Max(hi, p.Max)
		sum += p.Avg * float64(p.Count)
		n += p.Count
	}
	fmt.Fprintf(w, "  %s\n", sparkline(s.Points, width))
	last := s.Points[len(s.Points)-1]
	fmt.Fprintf(w, "  min %s  avg %s  max %s  last %s  (%d samples)\n", number(lo), number(sum/float64(max(n, 1))), number(hi), number(last.Last), n)
}

// sparkSteps are the eight heights of a sparkline.
var sparkSteps = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the averages of points in at most width characters (neighbouring points merged),
// scaled between their smallest and largest average.
func sparkline(points []api.ResultPoint, width int) string {
	width = max(width, 1)
	cols := make([]float64, 0, width)
	per := (len(points) + width - 1) / width
	for i := 0; i < len(points); i += per {
		sum, n := 0.0, 0.0
		for _, p := range points[i:min(i+per, len(points))] {
			sum += p.Avg * float64(max(p.Count, 1))
			n += float64(max(p.Count, 1))
		}
		cols = append(cols, sum/n)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range cols {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	var sb strings.Builder
	for _, v := range cols {
		i := 0
		if hi > lo {
			i = int((v - lo) / (hi - lo) * float64(len(sparkSteps)-1))
		}
		sb.WriteRune(sparkSteps[i])
	}
	return sb.String()
}

// seriesName is a series as Prometheus writes it: name{k="v",…}.
func seriesName(name string, labels map[string]string) string {
	if len(labels) == 0 {
		return name
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, labels[k])
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// number prints a value short: at most 4 significant digits, and k/M/G/T for large ones.
func number(v float64) string {
	a := math.Abs(v)
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e4, "k"}} {
		if a >= u.div {
			return strconv.FormatFloat(v/u.div, 'g', 4, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
