package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	api "github.com/pulsehq/pulse/openapi/client"
)

func runWorkflowRun(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "workflow run", "NAME [--input k=v ...] [--json]", "Starts an execution of a workflow and prints its id and first state.")
	inputs := kvFlag{}
	fs.Var(inputs, "input", "input k=v (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if name == "" {
		return usagef("want `pulse workflow run NAME`")
	}
	c, err := connect()
	if err != nil {
		return err
	}
	in := api.StartExecutionInputBody{Workflow: name}
	if len(inputs) > 0 {
		in.Inputs = map[string]any{}
		for k, v := range inputs {
			in.Inputs[k] = v // sent as strings; the hub converts them to the declared types
		}
	}
	resp, err := c.api.StartExecutionWithResponse(ctx, in)
	v, err := answer(c, resp, err, (*api.StartExecutionResponse).GetJSON201)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	fmt.Fprintln(env.Stdout, v.ID)
	fmt.Fprintf(env.Stderr, "execution %s of %s v%d: %s; follow it with `pulse workflow watch %s`\n", v.ID, v.Workflow, v.Version, v.State.Status, v.ID)
	return nil
}

func runExecution(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "cancel") {
		return usagef("want `pulse execution show|cancel ID`")
	}
	sub := args[0]
	id, rest := splitID(args[1:])
	fs := newFlags(env, "execution "+sub, "ID [--json]", "show: every step's state, prompts and per-agent results.\ncancel: cancels the execution; running commands are cancelled.")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if id == "" {
		return usagef("want `pulse execution %s ID`", sub)
	}
	c, err := connect()
	if err != nil {
		return err
	}
	var (
		v    *api.ExecutionView
		body []byte
	)
	if sub == "cancel" {
		resp, err := c.api.CancelExecutionWithResponse(ctx, id)
		if v, err = answer(c, resp, err, (*api.CancelExecutionResponse).GetJSON200); err != nil {
			return err
		}
		body = resp.Body
	} else {
		resp, err := c.api.GetExecutionWithResponse(ctx, id)
		if v, err = answer(c, resp, err, (*api.GetExecutionResponse).GetJSON200); err != nil {
			return err
		}
		body = resp.Body
	}
	if *asJSON {
		return printAnswer(env.Stdout, body)
	}
	printExecution(env.Stdout, v)
	return nil
}

func printExecution(w io.Writer, v *api.ExecutionView) {
	st := v.State
	fmt.Fprintf(w, "execution %s: workflow %s v%d, started by %s — %s", v.ID, v.Workflow, v.Version, v.StartedBy, st.Status)
	if st.Reason != "" {
		fmt.Fprintf(w, " (%s)", st.Reason)
	}
	fmt.Fprintln(w)
	names := make([]string, 0, len(st.Steps))
	for n := range st.Steps {
		names = append(names, n)
	}
	order := map[string]int{}
	for i, e := range st.Timeline {
		if _, ok := order[e.Step]; !ok {
			order[e.Step] = i
		}
	}
	sort.SliceStable(names, func(i, j int) bool {
		oi, iok := order[names[i]]
		oj, jok := order[names[j]]
		if iok != jok {
			return iok
		}
		return oi < oj
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tTYPE\tSTATE\tREASON")
	for _, n := range names {
		s := st.Steps[n]
		reason := s.Reason
		if a, ok := st.Answers[n]; ok {
			reason = strings.TrimSpace(reason + " answer: " + a)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, s.Type, s.Status, reason)
	}
	tw.Flush()
}

func runRespond(ctx context.Context, env *Env, args []string) error {
	id, rest := splitID(args)
	fs := newFlags(env, "respond", "ID --step S OPTION", "Answers a prompt step of an execution with one of its options.")
	step := fs.String("step", "", "the prompt step's name")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	// OPTION may come before or after the flags.
	var option string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		option, rest = rest[0], rest[1:]
	}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(rest); err != nil {
		return usageError{err}
	}
	if option == "" && fs.NArg() > 0 {
		option = fs.Arg(0)
	}
	if id == "" || *step == "" || option == "" {
		return usagef("want `pulse respond ID --step S OPTION`")
	}
	c, err := connect()
	if err != nil {
		return err
	}
	resp, err := c.api.RespondPromptWithResponse(ctx, id, api.RespondInputBody{Step: *step, Answer: option})
	v, err := answer(c, resp, err, (*api.RespondPromptResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	printExecution(env.Stdout, v)
	return nil
}

func runWorkflowWatch(ctx context.Context, env *Env, args []string) error {
	id, rest := splitID(args)
	fs := newFlags(env, "workflow watch", "EXECUTION_ID", "Prints an execution's events as they happen (steps, prompts, results) until it ends.")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if id == "" {
		return usagef("want `pulse workflow watch EXECUTION_ID`")
	}
	c, err := connect()
	if err != nil {
		return err
	}
	resp, err := c.stream(c.api.StreamExecutionEvents(ctx, id))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			fmt.Fprintf(env.Stdout, "%s %s\n", time.Now().Format("15:04:05"), data)
		}
	}
	final, err := c.api.GetExecutionWithResponse(ctx, id)
	if v, err := answer(c, final, err, (*api.GetExecutionResponse).GetJSON200); err == nil {
		printExecution(env.Stdout, v)
	}
	return sc.Err()
}
