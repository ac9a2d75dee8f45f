package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pulsehq/pulse/functions/hub/fleet"
	api "github.com/pulsehq/pulse/openapi/client"
)

// kvFlag collects repeated k=v flags.
type kvFlag map[string]string

func (m kvFlag) String() string { return "" }
func (m kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", s)
	}
	m[k] = v
	return nil
}

// listFlag collects repeated values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ",") {
		if err := kvFlag(out).Set(strings.TrimSpace(pair)); err != nil {
			return nil, usagef("--labels %v", err)
		}
	}
	return out, nil
}

func runEnrollToken(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 && (args[0] == "list" || args[0] == "revoke") {
		return runEnrollTokenList(ctx, env, args[0], args[1:])
	}
	if len(args) == 0 || args[0] != "create" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			fmt.Fprintln(env.Stdout, "Usage: pulse enroll-token create [--labels k=v,...] [--uses N] [--ttl D] [--json]\n       pulse enroll-token list [--json]\n       pulse enroll-token revoke ID")
			return nil
		}
		return usagef("want `pulse enroll-token create|list|revoke`")
	}
	fs := newFlags(env, "enroll-token create", "[--labels k=v,...] [--uses N] [--ttl D] [--json]",
		"Creates a token that lets N agents enroll (pulse-agent run --enroll-token T). The agents get the labels.\nOnly a hash is stored; the token is printed once.")
	labels := fs.String("labels", "", "labels for the agents, k=v,k2=v2")
	uses := fs.Int("uses", 1, "how many agents may enroll with it")
	ttl := fs.Duration("ttl", fleet.DefaultEnrollTokenTTL, "how long it is valid, at most 720h")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	lbl, err := parseLabels(*labels)
	if err != nil {
		return err
	}
	ttlSeconds, err := ttlFlag(*ttl, fleet.MaxEnrollTokenTTL, false)
	if err != nil {
		return err
	}
	c, err := connect()
	if err != nil {
		return err
	}
	resp, err := c.api.CreateEnrollTokenWithResponse(ctx, api.EnrollTokenInputBody{Labels: lbl, Uses: int64(*uses), TTLSeconds: ttlSeconds})
	out, err := answer(c, resp, err, (*api.CreateEnrollTokenResponse).GetJSON201)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	fmt.Fprintln(env.Stdout, out.Token)
	fmt.Fprintf(env.Stderr, "valid for %d enrollment(s) until %s; on the machine run:\n  pulse-agent run --hub %s --enroll-token %s\n", out.Uses, out.ExpiresAt.Local().Format(time.RFC1123), c.hub, out.Token)
	return nil
}

func runAgents(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "agents", "[--selector S] [--json]", "Lists agents: id, name, online state, last heartbeat, version, labels and soft-disabled integrations.")
	selector := fs.String("selector", "", "only agents matching: all, an id, a name, or labels k=v,k2=v2")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	params := &api.ListAgentsParams{}
	if *selector != "" {
		params.Selector = selector
	}
	resp, err := c.api.ListAgentsWithResponse(ctx, params)
	out, err := answer(c, resp, err, (*api.ListAgentsResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tLAST SEEN\tVERSION\tLABELS\tDISABLED")
	for _, a := range out.Agents {
		state := "offline"
		if a.Online {
			state = "online"
		}
		seen := "never"
		if !a.LastSeen.IsZero() {
			seen = time.Since(a.LastSeen).Round(time.Second).String() + " ago"
		}
		var disabled []string
		for _, d := range a.Disabled {
			disabled = append(disabled, d.ID+": "+d.Reason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, state, seen, a.Version, labelString(a.Labels), strings.Join(disabled, "; "))
	}
	tw.Flush()
	if len(out.Agents) == 0 {
		fmt.Fprintln(env.Stderr, "no agents yet: create a token with `pulse enroll-token create` and start pulse-agent with it")
	}
	return nil
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func runRun(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			args = []string{"x", "--help"}
		} else {
			return usagef("want `pulse run COMMAND --target T [flags]`; see pulse run --help")
		}
	}
	name := args[0]
	fs := newFlags(env, "run", "COMMAND --target T [--param k=v ...] [--timeout D] [--max-concurrency N] [--max-errors N] [--wait] [--json]",
		`Runs a command from the agents' whitelist. Targets (repeatable, union): all, an agent id, an agent
name, or labels k=v,k2=v2. Every target must know the command and accept the parameters, or nothing runs.
With --wait it waits for every target's final state and exits non-zero unless all succeeded.`)
	var targets listFlag
	fs.Var(&targets, "target", "target expression (repeatable)")
	params := kvFlag{}
	fs.Var(params, "param", "parameter k=v (repeatable)")
	timeout := fs.Duration("timeout", 0, "run time limit on each agent (default: the command's own)")
	maxConc := fs.Int("max-concurrency", 0, "at most N agents at once (0: all)")
	maxErr := fs.Int("max-errors", 0, "stop releasing after N failures (0: never)")
	wait := fs.Bool("wait", false, "wait for the final state of every target")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if len(targets) == 0 {
		return usagef("--target is required (all, an agent id or name, or labels k=v)")
	}
	c, err := connect()
	if err != nil {
		return err
	}
	resp, err := c.api.CreateCommandWithResponse(ctx, api.CreateCommandBody{Command: name, Targets: targets, Params: params,
		TimeoutSeconds: int64(timeout.Seconds()), MaxConcurrency: int64(*maxConc), MaxErrors: int64(*maxErr)})
	st, err := answer(c, resp, err, (*api.CreateCommandResponse).GetJSON202)
	if err != nil {
		return err
	}
	if !*wait {
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		fmt.Fprintf(env.Stdout, "%s\n", st.ID)
		fmt.Fprintf(env.Stderr, "command %s sent to %d agent(s); follow it with `pulse command %s`\n", st.ID, len(st.Targets), st.ID)
		return nil
	}
	final, body, err := waitCommand(ctx, c, st.ID, env.Stderr, !*asJSON)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := printAnswer(env.Stdout, body); err != nil {
			return err
		}
	} else {
		printStatus(env.Stdout, final)
		printOutputs(ctx, c, env.Stdout, final)
	}
	if n := final.Counts["succeeded"]; n != int64(len(final.Agents)) {
		return fmt.Errorf("%d of %d agents succeeded", n, len(final.Agents))
	}
	return nil
}

// waitCommand follows a command's event stream until every target is final, printing progress to w
// as agents change state, then reads the command once and returns its full status, decoded and as
// the hub sent it. It returns as soon as the stream says the last result is stored: no polling.
func waitCommand(ctx context.Context, c *client, id string, w io.Writer, progress bool) (*api.CommandStatus, []byte, error) {
	lastLine, lastMessage := "", ""
	err := followCommand(ctx, c, id, func(ev streamEvent) error {
		if ev.Name != "command" {
			return nil // agent events: the counts in the command event that follows say it for a person
		}
		var u commandUpdate
		if err := json.Unmarshal(ev.Data, &u); err != nil {
			return fmt.Errorf("command %s: unreadable event from the hub: %w", id, err)
		}
		if u.Message != lastMessage && u.Message != "" {
			fmt.Fprintf(w, "%s: %s\n", id, u.Message) // said even with --json: a person is waiting
		}
		lastMessage = u.Message
		if line := countsLine(u.Counts); progress && line != lastLine && u.Message == "" {
			fmt.Fprintf(w, "%s: %s\n", id, line)
			lastLine = line
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.api.GetCommandWithResponse(ctx, id, nil)
	full, err := answer(c, resp, err, (*api.GetCommandResponse).GetJSON200)
	if err != nil {
		return nil, nil, err
	}
	return full, resp.Body, nil
}

func countsLine(counts map[string]int64) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	return strings.Join(parts, ", ")
}

func printStatus(w io.Writer, st *api.CommandStatus) {
	what := st.Command
	if p := paramString(st.Params); p != "" {
		what += " " + p
	}
	fmt.Fprintf(w, "command %s: %s on %d agent(s), issued by %s at %s\n", st.ID, what, len(st.Targets), st.Issuer, st.CreatedAt.Local().Format(time.RFC3339))
	if st.Cancelled {
		fmt.Fprintln(w, "cancelled")
	}
	if st.Stopped {
		fmt.Fprintln(w, "stopped: maxErrors reached")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tNAME\tSTATE\tEXIT\tDURATION\tOUTPUT\tREASON")
	for _, a := range st.Agents {
		exit := ""
		if a.ExitCode != nil {
			exit = strconv.FormatInt(*a.ExitCode, 10)
		}
		dur := ""
		if a.DurationMs > 0 {
			dur = (time.Duration(a.DurationMs) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d B\t%s\n", a.Agent, a.Name, a.State, exit, dur, a.OutputBytes, a.Reason)
	}
	tw.Flush()
}

func paramString(p map[string]string) string {
	return labelString(p)
}

// shownOutput is how much of each agent's output `pulse run --wait` prints; `pulse output` has it all.
const shownOutput = 16 << 10

// outputFetchers is how many agents' outputs `pulse run --wait` reads at once: one after another,
// 50 agents' outputs cost more than the command itself; in parallel they cost about one round trip.
const outputFetchers = 8

// printOutputs prints the start of every agent's output under a header, as an operator expects after
// waiting for a command, in the order of st.Agents. The outputs are read outputFetchers at a time.
func printOutputs(ctx context.Context, c *client, w io.Writer, st *api.CommandStatus) {
	type fetched struct {
		body  []byte
		err   error
		ready chan struct{}
	}
	got := make([]fetched, len(st.Agents))
	jobs := make(chan int)
	for i := range got {
		got[i].ready = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(outputFetchers, len(st.Agents)) {
		go func() {
			for i := range jobs {
				got[i].body, got[i].err = readOutputStart(ctx, c, st.ID, st.Agents[i].Agent)
				close(got[i].ready)
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i, a := range st.Agents {
			if a.OutputBytes == 0 {
				close(got[i].ready)
				continue
			}
			// A short output comes with the command's state: no request for it.
			if b, err := base64.StdEncoding.DecodeString(a.Output); err == nil && a.Output != "" && int64(len(b)) == a.OutputBytes {
				got[i].body = b
				close(got[i].ready)
				continue
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for i, a := range st.Agents {
		if a.OutputBytes == 0 {
			continue
		}
		select {
		case <-got[i].ready:
		case <-ctx.Done():
			return
		}
		b, err := got[i].body, got[i].err
		if err != nil {
			fmt.Fprintf(w, "\n--- %s (%s): output unavailable: %v\n", a.Name, a.Agent, err)
			continue
		}
		fmt.Fprintf(w, "\n--- %s (%s) ---\n%s", a.Name, a.Agent, b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			fmt.Fprintln(w)
		}
		if a.OutputBytes > int64(len(b)) {
			fmt.Fprintf(w, "… %d more bytes: pulse output %s --agent %s\n", a.OutputBytes-int64(len(b)), st.ID, a.Agent)
		}
	}
}

// readOutputStart reads up to shownOutput bytes of an agent's output of a command: its first chunk.
func readOutputStart(ctx context.Context, c *client, id, agent string) ([]byte, error) {
	one := int64(1)
	resp, err := c.stream(c.api.GetCommandOutput(ctx, id, agent, &api.GetCommandOutputParams{Max: &one}))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, shownOutput))
	if err != nil {
		return nil, fmt.Errorf("read output of %s: %w", agent, err)
	}
	return b, nil
}

func runCommand(ctx context.Context, env *Env, args []string) error {
	id, rest := splitID(args)
	fs := newFlags(env, "command", "ID [--json]", "Shows a command and its state on every target.")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if id == "" {
		return usagef("want `pulse command ID`")
	}
	c, err := connect()
	if err != nil {
		return err
	}
	resp, err := c.api.GetCommandWithResponse(ctx, id, nil)
	st, err := answer(c, resp, err, (*api.GetCommandResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	printStatus(env.Stdout, st)
	return nil
}

func runCancel(ctx context.Context, env *Env, args []string) error {
	id, rest := splitID(args)
	fs := newFlags(env, "cancel", "ID [--json]", "Cancels a command: running copies are stopped, unreleased ones never start.")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if id == "" {
		return usagef("want `pulse cancel ID`")
	}
	c, err := connect()
	if err != nil {
		return err
	}
	resp, err := c.api.CancelCommandWithResponse(ctx, id)
	st, err := answer(c, resp, err, (*api.CancelCommandResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	printStatus(env.Stdout, st)
	return nil
}

func splitID(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// outputPoll is how often `pulse output --follow` looks for new chunks while the agent runs: the
// command's stream says when its state changes, not when a chunk is stored.
const outputPoll = 500 * time.Millisecond

func runOutput(ctx context.Context, env *Env, args []string) error {
	id, rest := splitID(args)
	fs := newFlags(env, "output", "ID --agent A [--follow]", "Prints an agent's output of a command, every byte. With --follow it keeps printing until the command ends there.")
	agent := fs.String("agent", "", "agent id or name")
	follow := fs.Bool("follow", false, "keep printing new output until the command ends")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if id == "" || *agent == "" {
		return usagef("want `pulse output ID --agent A`")
	}
	c, err := connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream watch below
	var changed <-chan struct{}
	if *follow {
		changed = watchChanges(ctx, c, id)
	}
	from := int64(0)
	for {
		resp, err := c.stream(c.api.GetCommandOutput(ctx, id, *agent, &api.GetCommandOutputParams{From: &from}))
		if err != nil {
			return err
		}
		_, err = io.Copy(env.Stdout, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		next, _ := strconv.ParseInt(resp.Header.Get("X-Pulse-Next-Chunk"), 10, 64)
		complete := resp.Header.Get("X-Pulse-Complete") == "true"
		progressed := next > from
		from = next
		if complete || (!*follow && !progressed) {
			if !complete && !*follow {
				fmt.Fprintf(env.Stderr, "(output so far; state %s — use --follow to wait for the rest)\n", resp.Header.Get("X-Pulse-State"))
			}
			return nil
		}
		if !progressed {
			t := time.NewTimer(outputPoll)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case _, open := <-changed: // a state changed (the result is stored, say): look now
				if !open {
					changed = nil // the stream ended: only the timer from now on
				}
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// watchChanges follows command id's event stream in the background and signals on the channel it
// returns whenever an agent's or the command's state changes; it closes the channel when the stream
// ends (every target final, ctx done, or the stream lost for good: then the caller's polling alone
// finds the end).
func watchChanges(ctx context.Context, c *client, id string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		_ = followCommand(ctx, c, id, func(streamEvent) error {
			select {
			case ch <- struct{}{}:
			default: // one signal pending is enough: the reader fetches everything new
			}
			return nil
		})
	}()
	return ch
}
