package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	api "github.com/pulsehq/pulse/openapi/client"
)

// The commands here put on the command line what the API grew for dashboards and scripts: the
// command list, the approvals waiting for you, one agent, its labels and retirement, and enrollment
// tokens. Each has --json for scripts.

func runCommands(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "commands", "[--state S] [--issuer P] [--agent ID] [--command NAME] [--since D|TIME] [--limit N] [--json]",
		"Lists commands, newest first: state, command, issuer, targets and per-state counts.")
	state := fs.String("state", "", "only commands in this state (awaiting_approval, denied, cancelled, running, done, failed, …)")
	issuer := fs.String("issuer", "", "only commands issued by this principal")
	agent := fs.String("agent", "", "only commands with this agent among their targets")
	command := fs.String("command", "", "only this command")
	since := fs.String("since", "", "only commands created since: a duration back from now, or an RFC 3339 time")
	limit := fs.Int("limit", 50, "at most this many")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	p := &api.ListCommandsParams{}
	if *state != "" {
		s := api.ListCommandsParamsState(*state)
		p.State = &s
	}
	for _, f := range []struct {
		v   string
		dst **string
	}{{*issuer, &p.Issuer}, {*agent, &p.Agent}, {*command, &p.Command}} {
		if f.v != "" {
			v := f.v
			*f.dst = &v
		}
	}
	if *since != "" {
		t, err := parseSince(*since)
		if err != nil {
			return usageError{err}
		}
		t = t.UTC().Truncate(time.Second)
		p.Since = &t
	}
	if *limit > 0 {
		l := int64(*limit)
		p.Limit = &l
	}
	c, err := connect()
	if err != nil {
		return err
	}
	resp, err := c.api.ListCommandsWithResponse(ctx, p)
	out, err := answer(c, resp, err, (*api.ListCommandsResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	printSummaries(env.Stdout, out.Commands)
	if out.Next != "" {
		fmt.Fprintf(env.Stderr, "more: the API's next cursor is %s\n", out.Next)
	}
	return nil
}

func runApprovals(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "approvals", "[--json]",
		"Lists the commands awaiting an approval that you could give: not your own, not approved by you\nyet, and you are in a group that may approve. Approve with `pulse approve ID`.")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	resp, err := c.api.ListApprovalsWithResponse(ctx, &api.ListApprovalsParams{})
	out, err := answer(c, resp, err, (*api.ListApprovalsResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	if len(out.Commands) == 0 {
		fmt.Fprintln(env.Stdout, "nothing awaits your approval")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCOMMAND\tREQUESTED BY\tTARGETS\tAPPROVALS\tWHY")
	for _, s := range out.Commands {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d of %d\t%s\n", s.ID, s.Command, s.Issuer, len(s.Targets), len(s.Approvers), s.Approval.Count, s.Approval.Reason)
	}
	return tw.Flush()
}

func printSummaries(w io.Writer, cmds []api.CommandSummary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tSTATE\tCOMMAND\tISSUER\tTARGETS\tCOUNTS")
	for _, s := range cmds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, s.CreatedAt.Local().Format(time.RFC3339), s.State, s.Command, s.Issuer, len(s.Targets), countsLine(s.Counts))
	}
	tw.Flush()
}

func runAgent(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "labels" && args[0] != "retire") {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			fmt.Fprintln(env.Stdout, "Usage: pulse agent show|labels|retire ID ...\n\n  show ID              facts, labels, integrations, hatch\n  labels ID k=v,...    replace the agent's labels (an empty list removes them all)\n  retire ID [--reason] refuse the agent from now on; its history is kept")
			return nil
		}
		return usagef("want `pulse agent show|labels|retire ID`")
	}
	sub := args[0]
	id, rest := splitID(args[1:])
	switch sub {
	case "show":
		fs := newFlags(env, "agent show", "ID [--json]", "Shows one agent: state, labels, facts, integrations and their status, the shell hatch.")
		asJSON := fs.Bool("json", false, "print JSON")
		c, err := clientCommand(fs, rest)
		if err != nil {
			return err
		}
		if id == "" {
			return usagef("want `pulse agent show ID`")
		}
		resp, err := c.api.GetAgentWithResponse(ctx, id)
		a, err := answer(c, resp, err, (*api.GetAgentResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		printAgent(env.Stdout, a)
		return nil
	case "labels":
		var spec string
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			spec, rest = rest[0], rest[1:]
		}
		fs := newFlags(env, "agent labels", "ID k=v,k2=v2 [--json]", "Replaces an agent's labels; the change is kept as a new version and audited. `\"\"` removes them all.")
		asJSON := fs.Bool("json", false, "print JSON")
		c, err := clientCommand(fs, rest)
		if err != nil {
			return err
		}
		if id == "" {
			return usagef("want `pulse agent labels ID k=v,...`")
		}
		labels, err := parseLabels(spec)
		if err != nil {
			return err
		}
		if labels == nil {
			labels = map[string]string{}
		}
		resp, err := c.api.SetAgentLabelsWithResponse(ctx, id, api.SetAgentLabelsJSONRequestBody{Labels: labels})
		a, err := answer(c, resp, err, (*api.SetAgentLabelsResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		fmt.Fprintf(env.Stdout, "%s (%s): labels %s\n", a.ID, a.Name, cmp.Or(labelString(a.Labels), "(none)"))
		return nil
	default:
		fs := newFlags(env, "agent retire", "ID [--reason TEXT] [--json]", "Retires an agent: its identity is refused from then on (re-enrolling needs a new token); its\ncommands, results and audit records are kept.")
		reason := fs.String("reason", "", "why, for the audit record")
		asJSON := fs.Bool("json", false, "print JSON")
		c, err := clientCommand(fs, rest)
		if err != nil {
			return err
		}
		if id == "" {
			return usagef("want `pulse agent retire ID`")
		}
		resp, err := c.api.RetireAgentWithResponse(ctx, id, api.RetireAgentJSONRequestBody{Reason: *reason})
		a, err := answer(c, resp, err, (*api.RetireAgentResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		fmt.Fprintf(env.Stdout, "retired %s (%s)\n", a.ID, a.Name)
		return nil
	}
}

func printAgent(w io.Writer, a *api.AgentView) {
	state := "offline"
	if a.Online {
		state = "online"
	}
	if !a.Retired.At.IsZero() {
		state = "retired " + a.Retired.At.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "%s  %s  %s  version %s\n", a.ID, a.Name, state, a.Version)
	if !a.LastSeen.IsZero() {
		fmt.Fprintf(w, "last seen %s ago; enrolled %s\n", time.Since(a.LastSeen).Round(time.Second), a.EnrolledAt.Local().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "labels    %s\n", cmp.Or(labelString(a.Labels), "(none)"))
	if a.Hatch.Open {
		fmt.Fprintf(w, "SHELL HATCH OPEN until %s (opened by %s)\n", a.Hatch.ExpiresAt.Local().Format(time.RFC3339), a.Hatch.By)
	}
	keys := make([]string, 0, len(a.Facts))
	for k := range a.Facts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "fact      %s=%s\n", k, a.Facts[k])
	}
	for _, s := range a.Integrations {
		line := s.ID + ": enabled"
		if !s.Enabled {
			line = s.ID + ": disabled"
		}
		if s.Reason != "" {
			line += " (" + s.Reason + ")"
		}
		fmt.Fprintf(w, "integr.   %s\n", line)
	}
	if len(a.Commands) > 0 {
		fmt.Fprintf(w, "commands  %s\n", strings.Join(a.Commands, ", "))
	}
}

// runEnrollTokenList lists and revokes enrollment tokens (pulse enroll-token list|revoke).
func runEnrollTokenList(ctx context.Context, env *Env, sub string, args []string) error {
	if sub == "revoke" {
		id, rest := splitID(args)
		fs := newFlags(env, "enroll-token revoke", "ID [--json]", "Revokes an enrollment token: no agent enrolls with it from then on; agents it enrolled stay.")
		asJSON := fs.Bool("json", false, "print JSON")
		c, err := clientCommand(fs, rest)
		if err != nil {
			return err
		}
		if id == "" {
			return usagef("want `pulse enroll-token revoke ID` (the id from `pulse enroll-token list`)")
		}
		resp, err := c.api.RevokeEnrollTokenWithResponse(ctx, id)
		if _, err := answer(c, resp, err, func(*api.RevokeEnrollTokenResponse) *struct{} { return &struct{}{} }); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.Stdout, map[string]any{"id": id, "revoked": true})
		}
		fmt.Fprintf(env.Stdout, "revoked enrollment token %s\n", id)
		return nil
	}
	fs := newFlags(env, "enroll-token list", "[--json]", "Lists enrollment tokens (without secrets): uses, labels, expiry, whether revoked.")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	resp, err := c.api.ListEnrollTokensWithResponse(ctx)
	out, err := answer(c, resp, err, (*api.ListEnrollTokensResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tBY\tUSED\tEXPIRES\tSTATE\tLABELS")
	for _, t := range out.Tokens {
		state := "valid"
		switch {
		case t.Revoked:
			state = "revoked"
		case t.Expired:
			state = "expired"
		case t.Used >= t.Uses:
			state = "used up"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d of %d\t%s\t%s\t%s\n", t.ID, t.CreatedAt.Local().Format(time.RFC3339), t.CreatedBy, t.Used, t.Uses, t.ExpiresAt.Local().Format(time.RFC3339), state, labelString(t.Labels))
	}
	return tw.Flush()
}
