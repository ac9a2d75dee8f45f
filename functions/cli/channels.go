package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pulsehq/pulse/functions/notify"
	"github.com/pulsehq/pulse/functions/yamlsrc"
	api "github.com/pulsehq/pulse/openapi/client"
)

// channelsHelp is what `pulse channels --help` says channels are.
const channelsHelp = `Channels are where the hub sends alert notifications: a generic webhook (signed with HMAC-SHA256),
Slack, Discord, Microsoft Teams, ntfy, Gotify, PagerDuty (Events API v2) or e-mail over SMTP. Rules name
their channels (channels: [ops]); a rule that names none notifies the channels marked default: true.
Secrets (webhook URLs of Slack, Discord and Teams, tokens, routing keys, HMAC secrets, SMTP passwords)
are stored sealed under the hub's signing key and always shown masked. See docs/notifications.md.

  channels:
    - name: ops
      kind: slack
      url: https://hooks.slack.com/services/T000/B000/XXXX
      default: true
    - name: oncall
      kind: pagerduty
      routingKey: 0123456789abcdef0123456789abcdef
    - name: mail
      kind: email
      host: smtp.example.com        # port 587 and STARTTLS by default; tls: tls for 465
      username: pulse
      password: …
      from: Pulse <pulse@example.com>
      to: [ops@example.com]`

func runChannels(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintf(env.Stdout, "Usage: pulse channels [list] | apply -f FILE | show NAME | test NAME | delete NAME\n\n%s\n", channelsHelp)
		return nil
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return runChannelsList(ctx, env, args)
	}
	switch args[0] {
	case "list":
		return runChannelsList(ctx, env, args[1:])
	case "apply":
		return runChannelsApply(ctx, env, args[1:])
	case "show":
		return runChannelShow(ctx, env, args[1:])
	case "test":
		return runChannelTest(ctx, env, args[1:])
	case "delete":
		return runChannelDelete(ctx, env, args[1:])
	}
	return usagef("unknown `pulse channels %s`; want list, apply, show, test or delete (see pulse channels --help)", args[0])
}

func runChannelsList(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "channels", "[--json]", "Lists the notification channels, their secrets masked.\n\n"+channelsHelp)
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	resp, err := c.api.ListChannelsWithResponse(ctx)
	out, err := answer(c, resp, err, (*api.ListChannelsResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tDEFAULT\tWHERE\tUPDATED")
	for _, ch := range out.Channels {
		def := "-"
		if ch.Default {
			def = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ch.Name, ch.Kind, def, where(ch), ch.UpdatedAt.Local().Format(time.RFC3339))
	}
	if len(out.Channels) == 0 {
		fmt.Fprintln(env.Stderr, "no channels (pulse channels apply -f FILE)")
	}
	return tw.Flush()
}

// where is a channel's destination in one cell, secrets masked as the hub sent them.
func where(ch api.Channel) string {
	switch ch.Kind {
	case notify.Email:
		return strings.Join(ch.To, ", ") + " via " + ch.Host
	case notify.Ntfy:
		server := ch.URL
		if server == "" {
			server = notify.DefaultNtfyServer
		}
		return strings.TrimRight(server, "/") + "/" + ch.Topic
	case notify.PagerDuty:
		if ch.URL == "" {
			return notify.DefaultPagerDutyEndpoint
		}
	}
	return ch.URL
}

func runChannelsApply(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "channels apply", "-f FILE [--json]",
		"Creates or replaces the channels in a YAML or JSON file (channels: with a list, or one channel with its\n"+
			"name). The file is checked first, and refused with each problem as FILE:line:column: message; nothing\n"+
			"is sent to the hub then. Channels of the hub that the file does not name stay as they are.\n\n"+channelsHelp)
	file := fs.String("f", "", "the channels file")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usagef("want `pulse channels apply -f FILE`")
	}
	src, err := os.ReadFile(*file)
	if err != nil {
		return usageError{err}
	}
	chs, err := notify.ParseFile(src)
	if err != nil {
		return localProblems(env, *file, err)
	}
	c, err := connect()
	if err != nil {
		return err
	}
	var applied []*api.Channel
	for _, ch := range chs {
		body, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		resp, err := c.api.SetChannelWithResponse(ctx, ch.Name, api.SetChannelInputBody{Source: string(body)})
		v, err := answer(c, resp, err, (*api.SetChannelResponse).GetJSON200)
		if err != nil {
			return fmt.Errorf("channel %s: %w", ch.Name, err)
		}
		applied = append(applied, v)
		if !*asJSON {
			fmt.Fprintf(env.Stdout, "channel %s (%s) applied\n", v.Name, v.Kind)
		}
	}
	if *asJSON {
		return printJSON(env.Stdout, map[string]any{"channels": applied})
	}
	return nil
}

// localProblems prints a file's problems found before anything was sent, as FILE:line:column.
func localProblems(env *Env, file string, err error) error {
	var ye *yamlsrc.Error
	if !errors.As(err, &ye) {
		return usageError{fmt.Errorf("%s: %w", file, err)}
	}
	for _, p := range ye.Problems {
		fmt.Fprintf(env.Stderr, "%s:%s\n", file, p.String())
	}
	return fmt.Errorf("%s refused: %d problem(s) in %s", ye.Subject, len(ye.Problems), file)
}

func runChannelShow(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "channels show", "NAME", "Prints one channel as JSON, its secrets masked.")
	c, err := namedCommand(fs, rest, name, "pulse channels show NAME")
	if err != nil {
		return err
	}
	resp, err := c.api.GetChannelWithResponse(ctx, name)
	if _, err := answer(c, resp, err, (*api.GetChannelResponse).GetJSON200); err != nil {
		return err
	}
	return printAnswer(env.Stdout, resp.Body)
}

func runChannelTest(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "channels test", "NAME [--json]",
		"Sends a test notification to a channel now and prints what the receiver answered. A test that fails\n"+
			"is retried like any notification (pulse notifications --channel NAME shows how it went on); the\n"+
			"command exits 1 when the first attempt failed.")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := namedCommand(fs, rest, name, "pulse channels test NAME")
	if err != nil {
		return err
	}
	resp, err := c.api.TestChannelWithResponse(ctx, name)
	d, err := answer(c, resp, err, (*api.TestChannelResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := printAnswer(env.Stdout, resp.Body); err != nil {
			return err
		}
	} else if len(d.Attempts) > 0 {
		a := d.Attempts[0]
		fmt.Fprintf(env.Stdout, "channel %s: %s%s\n", name, a.State, attemptDetail(a))
	} else {
		fmt.Fprintf(env.Stdout, "channel %s: %s (another hub instance is sending it)\n", name, d.State)
	}
	if len(d.Attempts) > 0 && d.Attempts[0].State == "failed" {
		return fmt.Errorf("the test notification to %s failed; delivery %s is retried", name, d.ID)
	}
	return nil
}

// attemptDetail is what the receiver answered, for one line.
func attemptDetail(a api.NotificationAttempt) string {
	var parts []string
	if a.Status != 0 {
		parts = append(parts, fmt.Sprintf("HTTP %d", a.Status))
	}
	if a.Error != "" {
		parts = append(parts, oneLineText(a.Error))
	} else if a.Answer != "" {
		parts = append(parts, oneLineText(a.Answer))
	}
	if !a.NextAt.IsZero() {
		parts = append(parts, "next try "+a.NextAt.Local().Format(time.RFC3339))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func runChannelDelete(ctx context.Context, env *Env, args []string) error {
	name, rest := splitID(args)
	fs := newFlags(env, "channels delete", "NAME", "Deletes a channel. Notifications still queued for it fail with that reason in the log;\nrules that name it are refused when applied again.")
	c, err := namedCommand(fs, rest, name, "pulse channels delete NAME")
	if err != nil {
		return err
	}
	resp, err := c.api.DeleteChannelWithResponse(ctx, name)
	if err := c.check(resp, err); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "channel %s deleted\n", name)
	return nil
}

func runNotifications(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "notifications", "[--alert ID] [--channel NAME] [--state STATE] [--json]",
		"Shows the delivery log: every notification sent or being sent to a channel, newest first, with its state\n"+
			"(queued, sending, retrying, sent, failed) and its last attempt: the receiver's answer or the error, and\n"+
			"when it is tried next. Failed deliveries are retried after 10s, 30s, 1m, 2m, 5m, 15m, 30m and given up\n"+
			"after 8 attempts or 24 hours. --json prints every attempt.")
	alertID := fs.String("alert", "", "only the deliveries of this alert")
	channel := fs.String("channel", "", "only the deliveries to this channel")
	state := fs.String("state", "", "only deliveries in this state: queued, sending, retrying, sent or failed")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	params := &api.ListNotificationsParams{}
	if *alertID != "" {
		params.Alert = alertID
	}
	if *channel != "" {
		params.Channel = channel
	}
	if *state != "" {
		st := api.ListNotificationsParamsState(*state)
		params.State = &st
	}
	resp, err := c.api.ListNotificationsWithResponse(ctx, params)
	out, err := answer(c, resp, err, (*api.ListNotificationsResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUED\tALERT\tKIND\tCHANNEL\tSTATE\tATTEMPTS\tLAST")
	for _, d := range out.Notifications {
		last := "-"
		if n := len(d.Attempts); n > 0 {
			a := d.Attempts[n-1]
			last = string(a.State) + attemptDetail(a)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.QueuedAt.Local().Format(time.RFC3339), d.Message.Alert, d.Message.Kind, d.Channel, d.State, len(d.Attempts), last)
	}
	if len(out.Notifications) == 0 {
		fmt.Fprintln(env.Stderr, "no notifications")
	}
	return tw.Flush()
}
