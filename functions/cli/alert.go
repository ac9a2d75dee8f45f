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
const alertHelp = `Alert rules say when the hub raises an alert, of four kinds: an agent offline for longer than a
duration (offline, from every hub's tick); a metric past a threshold for a duration, with a separate
value that clears it (metric, over each batch of samples as the hub takes it, by the samples' times);
a plan unit failed or drifted (unit, over each plan status); commands failing on an agent (commands,
failures within a window, over each result). An alert is named by its rule, its subject and when its
condition began by the data, so it fires once however many hub instances run. Each firing and
resolution is queued for the rule's channels (pulse channels), held during quiet hours.
See docs/alerts.md for every field.

  rules:
    - name: down
      kind: offline
      targets: [role=web]        # label selectors or agent ids (default: all)
      for: 2m
      severity: critical         # info, warning (default), critical
    - name: disk_full
      kind: metric
      metric: node_filesystem_avail_ratio
      labels: {mountpoint: /}
      below: 0.10                # fires under 10 % free for 5 minutes ...
      clear: 0.15                # ... and resolves above 15 %
      for: 5m
      channels: [ops]
    - {name: units, kind: unit, states: [failed]}
    - {name: failing, kind: commands, failures: 3, within: 10m}
  quiet: {from: "22:00", to: "07:00", zone: Europe/Berlin}`

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
	if len(args) > 0 {
		switch args[0] {
		case "ack":
			return runAlertAck(ctx, env, args[1:])
		case "snooze":
			return runAlertSnooze(ctx, env, args[1:])
		}
	}
	fs := newFlags(env, "alerts", "[--state firing|resolved] [--json] | ack ID | snooze ID --for 2h", "Lists the alerts that fired, newest first, with their resolution once they cleared.\n"+
		"  pulse alerts ack ID [--note TEXT]         say you are on it (the first acknowledgement stands)\n"+
		"  pulse alerts snooze ID --for 2h [--note]  hold the notifications of its rule on its subject (--for 0 lifts it)\n"+
		"See `pulse alert-rules --help` for the rules that raise them.")
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
	fmt.Fprintln(tw, "ALERT\tSTATE\tSEVERITY\tRULE\tAGENT\tFIRED\tRESOLVED\tACK\tDETAIL")
	for _, a := range out.Alerts {
		resolved, ack := "-", "-"
		if !a.ResolvedAt.IsZero() {
			resolved = a.ResolvedAt.Local().Format(time.RFC3339)
		}
		if a.Ack.By != "" {
			ack = a.Ack.By
		}
		detail := a.Detail
		if a.Silenced != "" {
			detail += " [" + a.Silenced + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.State, a.Severity, a.Rule, a.Name, a.FiredAt.Local().Format(time.RFC3339), resolved, ack, oneLineText(detail))
	}
	if len(out.Alerts) == 0 {
		fmt.Fprintln(env.Stderr, "no alerts")
	}
	return tw.Flush()
}

func runAlertAck(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "alerts ack", "ID [--note TEXT] [--json]", "Acknowledges an alert: says you are on it. The alert lists who acknowledged it first; a second\nacknowledgement changes nothing.")
	note := fs.String("note", "", "what you are doing about it")
	asJSON := fs.Bool("json", false, "print JSON")
	id, rest := splitID(args)
	c, err := namedCommand(fs, rest, id, "pulse alerts ack ID")
	if err != nil {
		return err
	}
	resp, err := c.api.AckAlertWithResponse(ctx, id, api.AckAlertJSONRequestBody{Note: *note})
	out, err := answer(c, resp, err, (*api.AckAlertResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	if out.Already {
		fmt.Fprintf(env.Stdout, "alert %s was acknowledged before, by %s at %s\n", id, out.By, out.At.Local().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(env.Stdout, "alert %s acknowledged by %s\n", id, out.By)
	return nil
}

func runAlertSnooze(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "alerts snooze", "ID --for DURATION [--note TEXT] [--json]", "Holds the notifications of the alert's rule on its subject (the agent, or the series) for a while:\n"+
		"its resolution and any new firing of the same problem are recorded, listed as snoozed, and sent to no\nchannel. --for 0 lifts the snooze.")
	d := fs.String("for", "", "how long: 30m, 2h, 1d (at most 30d); 0 lifts it")
	note := fs.String("note", "", "why")
	asJSON := fs.Bool("json", false, "print JSON")
	id, rest := splitID(args)
	c, err := namedCommand(fs, rest, id, "pulse alerts snooze ID --for 2h")
	if err != nil {
		return err
	}
	if *d == "" {
		return usagef("want `pulse alerts snooze ID --for DURATION` (--for 0 lifts it)")
	}
	resp, err := c.api.SnoozeAlertWithResponse(ctx, id, api.SnoozeAlertJSONRequestBody{For: *d, Note: *note})
	out, err := answer(c, resp, err, (*api.SnoozeAlertResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	if !out.Until.After(out.At) {
		fmt.Fprintf(env.Stdout, "notifications of %s on %s are no longer snoozed\n", out.Rule, out.Subject)
		return nil
	}
	fmt.Fprintf(env.Stdout, "notifications of %s on %s snoozed until %s\n", out.Rule, out.Subject, out.Until.Local().Format(time.RFC3339))
	return nil
}
