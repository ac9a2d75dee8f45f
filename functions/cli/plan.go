package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	api "github.com/pulsehq/pulse/openapi/client"
)

// planHelp is what `pulse plan --help` says plans are, before the subcommands' flags.
const planHelp = `A plan is what must be true on some agents: files, processes, containers, … (units), each kept in its
desired state by the agent's integration for its type. The agents its targets select (agent ids or
names, label selectors k=v) fetch its newest version, reconcile it continuously and report every
unit's state; mode enforce repairs what drifted, mode report only says what differs.

  targets: [role=web]
  mode: enforce
  units:
    - name: conf
      type: file
      notify: [app]                 # restart app when conf changed
      spec: {path: /etc/app/app.conf, content: "port=8080\n", mode: "0644"}
    - name: app
      type: process
      requires: [conf]              # apply conf first
      deadline: 30s                 # then app is failed, with the reason, not "applying" for ever
      spec: {command: /usr/bin/sleep, args: ["1000"], restart: always}
  rollout:                          # optional: a new version reaches the targets in waves
    first: 1                        # the first wave: a count, or "10%"
    waves: 2                        # the rest, in 2 waves
    bake: 5m                        # a converged wave stays healthy this long before the next
    health: 'units.all(u, u.state == "converged")'
    maxFailed: 0                    # agents with a failed unit tolerated before it halts`

func runPlan(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("want `pulse plan apply|status|show|rollout|rollback|delete|proposals|approve|deny NAME` (see pulse plan --help)")
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(env.Stdout, "Usage: pulse plan apply|status|show|rollout|rollback|delete|proposals|approve|deny NAME …\n\n%s\n\nRun 'pulse plan SUBCOMMAND --help' for its flags; 'pulse plans' lists the plans.\n", planHelp)
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "apply":
		return runPlanApply(ctx, env, args)
	case "status":
		return runPlanStatus(ctx, env, args)
	case "show":
		return runPlanShow(ctx, env, args)
	case "delete":
		return runPlanDelete(ctx, env, args)
	case "rollout":
		return runPlanRollout(ctx, env, args)
	case "rollback":
		return runPlanRollback(ctx, env, args)
	case "proposals":
		return runPlanProposals(ctx, env, args)
	case "approve", "deny":
		return runPlanDecide(ctx, env, sub, args)
	}
	return usagef("unknown `pulse plan %s`; want apply, status, show, rollout, rollback, delete, proposals, approve or deny (or `pulse plans`)", sub)
}

func runPlanApply(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "plan apply", "NAME -f FILE [--json]",
		"Applies a plan from a YAML or JSON file as plan NAME (lower-case letters, digits and _). The hub checks it\n"+
			"first — syntax, fields, unit names, requires and notify, cycles, that every target matches an agent — and\n"+
			"refuses it with each problem as FILE:line:column: message. Otherwise it stores the next version and sends it to\n"+
			"the agents its targets select; the same file again changes nothing.\n\n"+planHelp)
	file := fs.String("f", "", "the plan file")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if name == "" || *file == "" {
		return usagef("want `pulse plan apply NAME -f FILE`")
	}
	src, err := os.ReadFile(*file)
	if err != nil {
		return usageError{err}
	}
	c, err := connect()
	if err != nil {
		return err
	}
	resp, err := c.api.ApplyPlanWithResponse(ctx, name, api.ApplyPlanInputBody{Source: string(src)})
	v, err := answer(c, resp, err, (*api.ApplyPlanResponse).GetJSON200)
	if err != nil {
		return sourceProblems(env.Stderr, *file, err)
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	if v.Proposal.ID != "" {
		printProposal(env.Stdout, "apply", name, v.Proposal)
		return nil
	}
	if v.Unchanged {
		fmt.Fprintf(env.Stdout, "plan %s unchanged at version %d\n", v.Name, v.Version)
		return nil
	}
	if len(v.Rollout.Waves) > 0 {
		fmt.Fprintf(env.Stdout, "plan %s version %d applied: rolling out in %d wave(s), the first sent to %d agent(s) (pulse plan rollout %s)\n",
			v.Name, v.Version, len(v.Rollout.Waves), len(v.Agents), v.Name)
		return nil
	}
	fmt.Fprintf(env.Stdout, "plan %s version %d applied: sent to %d agent(s)\n", v.Name, v.Version, len(v.Agents))
	return nil
}

func runPlanRollout(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	op := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		op, rest = rest[0], rest[1:]
	}
	fs := newFlags(env, "plan rollout", "NAME [pause|resume|promote|abort] [--reason TEXT] [--json]",
		"Shows the rollout of a plan's newest version: its state (rolling, paused, halted, aborted, completed,\n"+
			"rolled_back) and why, and each wave with its agents converged and failed. With an operation:\n"+
			"  pause    no further wave starts; released agents keep the version\n"+
			"  resume   the hub looks at it again (a halted rollout whose failures still stand halts again)\n"+
			"  promote  release the next wave now, without waiting for the bake or the health condition\n"+
			"  abort    stop for good: released agents keep the version, the others the version before\n"+
			"`pulse plan rollback NAME` returns every agent to the version before.")
	reason := fs.String("reason", "", "why, for the audit trail")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if name == "" {
		return usagef("want `pulse plan rollout NAME [pause|resume|promote|abort]`")
	}
	c, err := connect()
	if err != nil {
		return err
	}
	body := api.RolloutOpInputBody{Reason: *reason}
	// Each operation is its own route (and policy action); all answer the rollout.
	ops := map[string]func() (*api.RolloutView, []byte, error){
		"": func() (*api.RolloutView, []byte, error) {
			resp, err := c.api.GetRolloutWithResponse(ctx, name)
			return rolloutAnswer(c, resp, err, (*api.GetRolloutResponse).GetJSON200)
		},
		"pause": func() (*api.RolloutView, []byte, error) {
			resp, err := c.api.PauseRolloutWithResponse(ctx, name, body)
			return rolloutAnswer(c, resp, err, (*api.PauseRolloutResponse).GetJSON200)
		},
		"resume": func() (*api.RolloutView, []byte, error) {
			resp, err := c.api.ResumeRolloutWithResponse(ctx, name, body)
			return rolloutAnswer(c, resp, err, (*api.ResumeRolloutResponse).GetJSON200)
		},
		"promote": func() (*api.RolloutView, []byte, error) {
			resp, err := c.api.PromoteRolloutWithResponse(ctx, name, body)
			return rolloutAnswer(c, resp, err, (*api.PromoteRolloutResponse).GetJSON200)
		},
		"abort": func() (*api.RolloutView, []byte, error) {
			resp, err := c.api.AbortRolloutWithResponse(ctx, name, body)
			return rolloutAnswer(c, resp, err, (*api.AbortRolloutResponse).GetJSON200)
		},
	}
	do, ok := ops[op]
	if !ok {
		return usagef("unknown rollout operation %q; want pause, resume, promote or abort (or none, to show it)", op)
	}
	v, raw, err := do()
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, raw)
	}
	if v.Proposal.ID != "" {
		printProposal(env.Stdout, op, name, v.Proposal)
	}
	line := fmt.Sprintf("plan %s version %d: rollout %s, %d of %d wave(s) released", v.Name, v.Version, v.State, v.Released, len(v.Waves))
	if v.Reason != "" {
		line += ": " + oneLineText(v.Reason)
	}
	fmt.Fprintln(env.Stdout, line)
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tRELEASED\tAGENTS\tCONVERGED\tFAILED")
	for _, w := range v.Waves {
		released := "no"
		if w.Released {
			released = "yes"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\n", w.Wave, released, len(w.Agents), w.Converged, w.Failed)
	}
	return tw.Flush()
}

func runPlanRollback(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "plan rollback", "NAME [--reason TEXT] [--json]",
		"Returns a plan's agents to the version before: the newest earlier version that reached every target (it had\n"+
			"no rollout, or its rollout completed). Agents never go back to an older version, so this stores a new\n"+
			"version with that version's source and targets, without a rollout, and sends it to every target at once;\n"+
			"a rollout of the newest version ends rolled_back.")
	reason := fs.String("reason", "", "why, for the audit trail")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := namedCommand(fs, rest, name, "pulse plan rollback NAME")
	if err != nil {
		return err
	}
	resp, err := c.api.RollbackPlanWithResponse(ctx, name, api.RolloutOpInputBody{Reason: *reason})
	a, err := answer(c, resp, err, (*api.RollbackPlanResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	if a.Proposal.ID != "" {
		printProposal(env.Stdout, "rollback", name, a.Proposal)
		return nil
	}
	fmt.Fprintf(env.Stdout, "plan %s rolled back: version %d has the content of version %d, sent to %d agent(s)\n", a.Name, a.Version, a.RolledBackTo, len(a.Agents))
	return nil
}

// sourceProblems prints each problem the hub located in a refused source as FILE:line:column: path:
// message, the form editors jump to, and returns a short error in their place; other errors are
// returned as they are.
func sourceProblems(w io.Writer, file string, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != 422 {
		return err
	}
	n := 0
	for _, d := range ae.Errors {
		at, ok := strings.CutPrefix(d.Location, "body.source")
		if !ok {
			continue
		}
		pos, path, _ := strings.Cut(strings.TrimPrefix(at, ":"), " ")
		where := file
		if pos != "" {
			where += ":" + pos
		}
		if path != "" {
			where += ": " + path
		}
		fmt.Fprintf(w, "%s: %s\n", where, d.Message)
		n++
	}
	if n == 0 {
		return err
	}
	what, _, _ := strings.Cut(ae.Detail, ":")
	return fmt.Errorf("%s: %d problem(s) in %s (HTTP %d)", what, n, file, ae.Status)
}

func runPlanStatus(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "plan status", "NAME [--json]",
		"Shows where a plan stands on every agent its targets select now: online or not, the version the agent\n"+
			"holds (- before its first report), then each unit's state (pending, applying, converged, failed,\n"+
			"drifted; unknown before the agent reported) and the reason the agent gave, or the version it refused and why.")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := namedCommand(fs, rest, name, "pulse plan status NAME")
	if err != nil {
		return err
	}
	resp, err := c.api.GetPlanStatusWithResponse(ctx, name)
	v, err := answer(c, resp, err, (*api.GetPlanStatusResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	fmt.Fprintf(env.Stdout, "plan %s version %d (%s): %d of %d agent(s) converged\n", v.Name, v.Version, v.Mode, v.Converged, len(v.Agents))
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tNAME\tONLINE\tVERSION\tUNIT\tSTATE\tREASON")
	for _, a := range v.Agents {
		version := "-"
		if a.Version > 0 {
			version = fmt.Sprint(a.Version)
		}
		online := "no"
		if a.Online {
			online = "yes"
		}
		lead := fmt.Sprintf("%s\t%s\t%s\t%s", a.Agent, a.Name, online, version)
		if a.RefusedVersion > 0 {
			fmt.Fprintf(tw, "%s\t-\trefused\tversion %d: %s\n", lead, a.RefusedVersion, oneLineText(a.Refused))
			lead = "\t\t\t"
		}
		for _, u := range a.Units {
			why := u.Reason
			if u.WaitingOn != "" {
				why = strings.TrimSpace(why + " (waiting on " + u.WaitingOn + ")")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", lead, u.Unit, u.State, oneLineText(why))
			lead = "\t\t\t"
		}
		if len(a.Units) == 0 && a.RefusedVersion == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t\n", lead)
		}
	}
	return tw.Flush()
}

// rolloutAnswer is answer for the rollout routes, with the raw body for --json.
func rolloutAnswer[R response](c *client, resp R, err error, get func(R) *api.RolloutView) (*api.RolloutView, []byte, error) {
	v, err := answer(c, resp, err, get)
	if err != nil {
		return nil, nil, err
	}
	return v, resp.GetBody(), nil
}

// reasonSuffix is ": reason" on one line, or nothing.
func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + oneLineText(r)
}

// oneLineText keeps a reason an agent gave on one line of a table.
func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }

func runPlanShow(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "plan show", "NAME [--json]", "Prints a plan's newest version as it was applied (its source), or with --json the stored version:\nsource, targets, the plan as agents receive it, who applied it and when.")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := namedCommand(fs, rest, name, "pulse plan show NAME")
	if err != nil {
		return err
	}
	resp, err := c.api.GetPlanWithResponse(ctx, name)
	v, err := answer(c, resp, err, (*api.GetPlanResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	fmt.Fprintf(env.Stderr, "# plan %s version %d, applied by %s at %s\n", v.Name, v.Version, v.AppliedBy, v.AppliedAt.Local().Format(time.RFC3339))
	fmt.Fprint(env.Stdout, v.Source)
	return nil
}

func runPlanDelete(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "plan delete", "NAME [--json]", "Deletes a plan: its agents stop getting it and, once their fetches have not listed it for a plan\nperiod, release its units (a supervised process is stopped; a file is left where it is). The history\nof its versions stays; applying it again starts at the next version.")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := namedCommand(fs, rest, name, "pulse plan delete NAME")
	if err != nil {
		return err
	}
	resp, err := c.api.DeletePlanWithResponse(ctx, name)
	a, err := answer(c, resp, err, (*api.DeletePlanResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	if a.Proposal.ID != "" {
		printProposal(env.Stdout, "delete", name, a.Proposal)
		return nil
	}
	fmt.Fprintf(env.Stdout, "plan %s deleted (version %d); %d agent(s) release its units within a plan period\n", a.Name, a.Version, len(a.Agents))
	return nil
}

func runPlans(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "plans", "[--json]", "Lists the plans with their newest version: mode, units, targets, who applied it and when.\nSee `pulse plan --help` for what a plan is.")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	resp, err := c.api.ListPlansWithResponse(ctx)
	out, err := answer(c, resp, err, (*api.ListPlansResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tMODE\tUNITS\tTARGETS\tAPPLIED\tBY")
	for _, p := range out.Plans {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", p.Name, p.Version, p.Mode, p.Units, strings.Join(p.Targets, " "), p.AppliedAt.Local().Format(time.RFC3339), p.AppliedBy)
	}
	if len(out.Plans) == 0 {
		fmt.Fprintln(env.Stderr, "no plans yet: `pulse plan apply NAME -f FILE` applies one")
	}
	return tw.Flush()
}

// namedCommand parses a plan subcommand's flags and, once the plan's NAME is there (want is the usage
// that says so), connects: clientCommand for the subcommands that name a plan.
func namedCommand(fs *flag.FlagSet, args []string, name, want string) (*client, error) {
	connect := clientFlags(fs)
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, usagef("want `%s`", want)
	}
	return connect()
}

// printProposal says that an operation awaits approvals, and how to give them.
func printProposal(w io.Writer, op, name string, p api.ProposalView) {
	fmt.Fprintf(w, "plan %s: the %s awaits %d approval(s) from %s (%s); nothing was done yet.\n  proposal %s: another person approves it with `pulse plan approve %s %s`\n",
		name, op, p.Approvals.Count, strings.Join(p.Approvals.Groups, " or "), p.Approvals.Reason, p.ID, name, p.ID)
}

func runPlanProposals(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "plan proposals", "NAME [--json]",
		"Lists a plan's proposals: operations (apply, delete, rollback, rollout operations) that the policy allows\n"+
			"only after others approve them, newest first, with who approved them and what became of them.")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := namedCommand(fs, rest, name, "pulse plan proposals NAME")
	if err != nil {
		return err
	}
	resp, err := c.api.ListPlanProposalsWithResponse(ctx, name)
	out, err := answer(c, resp, err, (*api.ListPlanProposalsResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROPOSAL\tOP\tSTATE\tAPPROVALS\tBY\tAT\tOUTCOME")
	for _, p := range out.Proposals {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", p.ID, p.Op, p.State, len(p.Approvers), p.Approvals.Count, p.RequestedBy,
			p.At.Local().Format(time.RFC3339), oneLineText(p.Outcome))
	}
	if len(out.Proposals) == 0 {
		fmt.Fprintf(env.Stderr, "plan %s has no proposals\n", name)
	}
	return tw.Flush()
}

func runPlanDecide(ctx context.Context, env *Env, verb string, args []string) error {
	name, rest := splitID(args)
	id, rest := splitID(rest)
	fs := newFlags(env, "plan "+verb, "NAME PROPOSAL [--comment TEXT] [--json]",
		"Approves or denies a proposal (see `pulse plan proposals NAME`). Its proposer cannot approve it, a person\n"+
			"counts once, and only members of the groups the policy named count; the approval that makes the count\n"+
			"does the operation as it was proposed, unless the plan changed since (the proposal is then stale).")
	comment := fs.String("comment", "", "why, for the audit trail")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if name == "" || id == "" {
		return usagef("want `pulse plan %s NAME PROPOSAL`", verb)
	}
	c, err := connect()
	if err != nil {
		return err
	}
	var p *api.ProposalView
	var raw []byte
	body := api.ProposalInputBody{Comment: *comment}
	if verb == "approve" {
		resp, e := c.api.ApprovePlanWithResponse(ctx, name, id, body)
		p, err = answer(c, resp, e, (*api.ApprovePlanResponse).GetJSON200)
		if resp != nil {
			raw = resp.Body
		}
	} else {
		resp, e := c.api.DenyPlanWithResponse(ctx, name, id, body)
		p, err = answer(c, resp, e, (*api.DenyPlanResponse).GetJSON200)
		if resp != nil {
			raw = resp.Body
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, raw)
	}
	switch p.State {
	case "awaiting":
		fmt.Fprintf(env.Stdout, "proposal %s: %d of %d approval(s); it waits for more\n", p.ID, len(p.Approvers), p.Approvals.Count)
	default:
		fmt.Fprintf(env.Stdout, "proposal %s %s: %s\n", p.ID, p.State, p.Outcome)
	}
	return nil
}
