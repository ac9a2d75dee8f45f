package cli

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	api "github.com/pulsehq/pulse/openapi/client"
)

// alertHelp is what `pulse alert-rules --help` says rules are.
const alertHelp = `Alert rules say when the hub raises an alert: an agent offline for longer than a duration (kind
offline, evaluated now); metric thresholds, failed or drifted plan units and failing commands are read
and checked (kinds metric, unit, commands) and refused when applied until the hub evaluates them.
Every hub instance evaluates the rules from its tick; an alert is named by its rule, its agent and when
its condition began, so it fires once however many instances run, and only on a transition (an agent
already offline when the rule first sees it is no alert until it comes back and goes again).

  rules:
    - name: down
      kind: offline
      targets: [role=web]        # label selectors or agent ids (default: all)
      for: 2m
      severity: critical         # info, warning (default), critical`

func runAlertRules(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("want `pulse alert-rules apply -f FILE` or `pulse alert-rules show` (see pulse alert-rules --help)")
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(env.Stdout, "Usage: pulse alert-rules apply -f FILE | show\n\n%s\n", alertHelp)
		return nil
	}
	switch args[0] {
	case "apply":
		fs := newFlags(env, "alert-rules apply", "-f FILE [--json]", "Applies the alert rules from a YAML or JSON file. The hub refuses a broken file with each problem as\nFILE:line:column: message, and stores the next version otherwise; the same file again changes nothing.\n\n"+alertHelp)
		file := fs.String("f", "", "the rules file")
		asJSON := fs.Bool("json", false, "print JSON")
		connect := clientFlags(fs)
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *file == "" {
			return usagef("want `pulse alert-rules apply -f FILE`")
		}
		src, err := os.ReadFile(*file)
		if err != nil {
			return usageError{err}
		}
		c, err := connect()
		if err != nil {
			return err
		}
		resp, err := c.api.ApplyAlertRulesWithResponse(ctx, api.ApplyAlertRulesInputBody{Source: string(src)})
		v, err := answer(c, resp, err, (*api.ApplyAlertRulesResponse).GetJSON200)
		if err != nil {
			return sourceProblems(env.Stderr, *file, err)
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		if v.Unchanged {
			fmt.Fprintf(env.Stdout, "alert rules unchanged at version %d\n", v.Version)
			return nil
		}
		fmt.Fprintf(env.Stdout, "alert rules version %d applied: %d rule(s)\n", v.Version, len(v.Rules.Rules))
		return nil
	case "show":
		fs := newFlags(env, "alert-rules show", "[--json]", "Prints the alert rules in force as they were applied (with --json: all of the stored version).")
		asJSON := fs.Bool("json", false, "print JSON")
		c, err := clientCommand(fs, args[1:])
		if err != nil {
			return err
		}
		resp, err := c.api.GetAlertRulesWithResponse(ctx)
		v, err := answer(c, resp, err, (*api.GetAlertRulesResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		fmt.Fprintf(env.Stderr, "# alert rules version %d, applied by %s at %s\n", v.Version, v.AppliedBy, v.AppliedAt.Local().Format(time.RFC3339))
		fmt.Fprint(env.Stdout, v.Source)
		return nil
	}
	return usagef("unknown `pulse alert-rules %s`; want apply or show", args[0])
}

func runAlerts(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "alerts", "[--state firing|resolved] [--json]", "Lists the alerts that fired, newest first, with their resolution once they cleared.\nSee `pulse alert-rules --help` for the rules that raise them.")
	state := fs.String("state", "", "only alerts in this state: firing or resolved")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	params := &api.ListAlertsParams{}
	if *state != "" {
		st := api.ListAlertsParamsState(*state)
		params.State = &st
	}
	resp, err := c.api.ListAlertsWithResponse(ctx, params)
	out, err := answer(c, resp, err, (*api.ListAlertsResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tSTATE\tSEVERITY\tRULE\tAGENT\tFIRED\tRESOLVED\tDETAIL")
	for _, a := range out.Alerts {
		resolved := "-"
		if !a.ResolvedAt.IsZero() {
			resolved = a.ResolvedAt.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.State, a.Severity, a.Rule, a.Name, a.FiredAt.Local().Format(time.RFC3339), resolved, oneLineText(a.Detail))
	}
	if len(out.Alerts) == 0 {
		fmt.Fprintln(env.Stderr, "no alerts")
	}
	return tw.Flush()
}
