package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pulsehq/pulse/functions/hub/access"
	api "github.com/pulsehq/pulse/openapi/client"
)

func runToken(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("want `pulse token create|list|revoke`")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		fs := newFlags(env, "token create", "--name N --groups g1,g2 [--for PERSON] [--ttl D] [--json]",
			`Creates an operator API token. Its groups decide what the policy lets it do (admin, operator, viewer
in the default policy). The secret is printed once; only its hash is stored.

The token belongs to you unless --for names the person it is for (an admin onboarding someone). Either
way it was made by you, so it never counts as an approval of a command you requested: a second
approver needs a credential that you did not make (docs/security.md).`)
		name := fs.String("name", "", "a name for the token (who or what uses it)")
		groups := fs.String("groups", "", "comma-separated groups")
		ttl := fs.Duration("ttl", 0, "lifetime, at most 8760h (default: no expiry)")
		forPerson := fs.String("for", "", "the person the token is for (default: you)")
		asJSON := fs.Bool("json", false, "print JSON")
		connect := clientFlags(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		if *name == "" || *groups == "" {
			return usagef("--name and --groups are required")
		}
		ttlSeconds, err := ttlFlag(*ttl, access.MaxTokenTTL, true)
		if err != nil {
			return err
		}
		c, err := connect()
		if err != nil {
			return err
		}
		resp, err := c.api.CreateTokenWithResponse(ctx, api.TokenInputBody{Name: *name, Groups: strings.Split(*groups, ","), TTLSeconds: ttlSeconds, For: *forPerson})
		out, err := answer(c, resp, err, (*api.CreateTokenResponse).GetJSON201)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		fmt.Fprintln(env.Stdout, out.Token)
		fmt.Fprintf(env.Stderr, "token %s (%s, groups %s, belongs to %s): shown once\n", out.ID, out.Name, strings.Join(out.Groups, ","), out.Owner)
		return nil
	case "list":
		fs := newFlags(env, "token list", "[--json]", "Lists operator tokens, without their secrets.")
		asJSON := fs.Bool("json", false, "print JSON")
		c, err := clientCommand(fs, args)
		if err != nil {
			return err
		}
		resp, err := c.api.ListTokensWithResponse(ctx)
		out, err := answer(c, resp, err, (*api.ListTokensResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tGROUPS\tCREATED\tEXPIRES\tSTATE")
		for _, t := range out.Tokens {
			exp, state := "never", "active"
			if !t.ExpiresAt.IsZero() {
				exp = t.ExpiresAt.Local().Format(time.RFC3339)
				if time.Now().After(t.ExpiresAt) {
					state = "expired"
				}
			}
			if t.Revoked {
				state = "revoked"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Groups, ","), t.CreatedAt.Local().Format(time.RFC3339), exp, state)
		}
		return tw.Flush()
	case "revoke":
		id, rest := splitID(args)
		fs := newFlags(env, "token revoke", "ID", "Revokes an operator token (ID from `pulse token list`); every hub refuses it within seconds.")
		connect := clientFlags(fs)
		if err := parse(fs, rest); err != nil {
			return err
		}
		if id == "" {
			return usagef("want `pulse token revoke ID`")
		}
		c, err := connect()
		if err != nil {
			return err
		}
		resp, err := c.api.RevokeTokenWithResponse(ctx, id)
		if err := c.check(resp, err); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "token %s revoked\n", id)
		return nil
	}
	return usagef("unknown `pulse token %s`; want create, list or revoke", sub)
}

func runApprove(ctx context.Context, env *Env, args []string) error {
	return approval(ctx, env, args, true)
}
func runDeny(ctx context.Context, env *Env, args []string) error {
	return approval(ctx, env, args, false)
}

func approval(ctx context.Context, env *Env, args []string, approve bool) error {
	verb := "approve"
	if !approve {
		verb = "deny"
	}
	id, rest := splitID(args)
	fs := newFlags(env, verb, "ID [--comment TEXT] [--json]", "Records your decision on a command awaiting approval. You cannot approve your own command.")
	comment := fs.String("comment", "", "why")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if id == "" {
		return usagef("want `pulse %s ID`", verb)
	}
	c, err := connect()
	if err != nil {
		return err
	}
	var (
		st   *api.CommandStatus
		body []byte
	)
	decision := api.DecideInputBody{Comment: *comment}
	if approve {
		resp, err := c.api.ApproveCommandWithResponse(ctx, id, decision)
		st, err = answer(c, resp, err, (*api.ApproveCommandResponse).GetJSON200)
		if err != nil {
			return err
		}
		body = resp.Body
	} else {
		resp, err := c.api.DenyCommandWithResponse(ctx, id, decision)
		st, err = answer(c, resp, err, (*api.DenyCommandResponse).GetJSON200)
		if err != nil {
			return err
		}
		body = resp.Body
	}
	if *asJSON {
		return printAnswer(env.Stdout, body)
	}
	printStatus(env.Stdout, st)
	return nil
}

func runAudit(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("want `pulse audit list|verify`")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		fs := newFlags(env, "audit list", "[--since D|TIME] [--principal P] [--json]", "Prints audit records: who did what, on which agents, what the policy decided.")
		since := fs.String("since", "24h", "a duration back from now, or an RFC 3339 time")
		principal := fs.String("principal", "", "only this principal")
		asJSON := fs.Bool("json", false, "print JSON")
		connect := clientFlags(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		t, err := parseSince(*since)
		if err != nil {
			return usageError{err}
		}
		c, err := connect()
		if err != nil {
			return err
		}
		// Whole seconds, as an operator writes --since.
		t = t.UTC().Truncate(time.Second)
		params := &api.GetAuditParams{Since: &t}
		if *principal != "" {
			params.Principal = principal
		}
		resp, err := c.api.GetAuditWithResponse(ctx, params)
		out, err := answer(c, resp, err, (*api.GetAuditResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tPRINCIPAL\tVIA\tACTION\tOUTCOME\tTARGETS\tDETAIL")
		for _, r := range out.Records {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Time.Local().Format(time.RFC3339), r.Principal.ID, r.Principal.Via, r.Action, r.Outcome, len(r.Targets), detailString(r))
		}
		return tw.Flush()
	case "verify":
		fs := newFlags(env, "audit verify", "[--json]", "Checks the audit chain as stored, without sealing first: names the first record that was changed, removed, forged or inserted, a seal the hub did not sign, or a gap in the seals that no hub start explains.")
		asJSON := fs.Bool("json", false, "print JSON")
		c, err := clientCommand(fs, args)
		if err != nil {
			return err
		}
		resp, err := c.api.VerifyAuditWithResponse(ctx)
		rep, err := answer(c, resp, err, (*api.VerifyAuditResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := printAnswer(env.Stdout, resp.Body); err != nil {
				return err
			}
		} else if rep.OK {
			fmt.Fprintf(env.Stdout, "audit chain intact: %d seals, %d records (%d not sealed yet)\n", rep.Seals, rep.Records, rep.Unsealed)
		}
		if !rep.OK {
			return fmt.Errorf("audit chain broken: %s", rep.Problem)
		}
		if !*asJSON {
			for _, g := range rep.Gaps {
				fmt.Fprintf(env.Stdout, "  no seal from %s to %s (after seal %d): a hub start follows, so no hub was running\n",
					g.From.Local().Format(time.RFC3339), g.To.Local().Format(time.RFC3339), g.AfterSeq)
			}
		}
		return nil
	}
	return usagef("unknown `pulse audit %s`; want list or verify", sub)
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a duration (24h) or an RFC 3339 time", s)
	}
	return t, nil
}

func detailString(r api.Record) string {
	var parts []string
	for _, k := range []string{"command", "commandId", "name", "tokenId", "by", "why"} {
		if v, ok := r.Detail[k]; ok && v != nil && v != "" {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	if len(r.Decision.Reasons) > 0 {
		parts = append(parts, "reason="+strings.Join(r.Decision.Reasons, "; "))
	}
	return strings.Join(parts, " ")
}

// ttlFlag turns a --ttl flag into the whole seconds the API takes, refusing what the hub would
// refuse (or misread) before anything is sent: a negative lifetime, one above max, and one under a
// second, which would round to 0 and mean "no expiry" or "the default" instead of "very short".
// A fraction of a second above that rounds up, so a token never lives shorter than asked.
func ttlFlag(d, max time.Duration, zeroOK bool) (int64, error) {
	switch {
	case d == 0 && zeroOK:
		return 0, nil
	case d < time.Second && zeroOK:
		return 0, usagef("--ttl %s: at least 1s, or 0 for no expiry", d)
	case d < time.Second:
		return 0, usagef("--ttl %s: at least 1s", d)
	case d > max:
		return 0, usagef("--ttl %s: at most %s", d, max)
	}
	return int64((d + time.Second - 1) / time.Second), nil
}
