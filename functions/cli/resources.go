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

// resourcesHelp is what `pulse resources --help` says before the flags.
const resourcesHelp = `Lists the fleet's resources: what each agent's integrations find on its host, as the agent last
reported it (every 5 minutes when something changed, and at least hourly). Types: disk, mount,
interface (host), container (Docker), plan and unit (the plans the agent holds, a unit per plan unit).
Statuses: ok, degraded (needs attention: a mount nearly full, a unit drifted), failed, stopped
(down, exited), unknown. Most recently changed first; sources that could not report are listed
after the table.

  pulse resources --status failed
  pulse resources --type mount --label env=prod
  pulse resources --agent web-1 --json`

func runResources(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "resources", "[--type T] [--agent A] [--label k=v] [--status S] [--search TEXT] [--json]", resourcesHelp)
	typ := fs.String("type", "", "only resources of this type (disk, mount, interface, container, plan, unit, …)")
	agent := fs.String("agent", "", "only the resources of this agent (id or name)")
	var labels listFlag
	fs.Var(&labels, "label", "only agents with this label, k=v (repeatable: all must match)")
	status := fs.String("status", "", "only resources in this status (ok, degraded, failed, stopped, unknown)")
	search := fs.String("search", "", "only resources whose id, name, reason or an attribute contains this text")
	limit := fs.Int("limit", 500, "at most this many")
	cursor := fs.String("cursor", "", "continue after the page that printed this cursor")
	asJSON := fs.Bool("json", false, "print the hub's JSON answer")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	p := &api.ListResourcesParams{}
	for _, f := range []struct {
		v   string
		dst **string
	}{{*typ, &p.Type}, {*agent, &p.Agent}, {*search, &p.Q}, {*cursor, &p.Cursor}} {
		if f.v != "" {
			v := f.v
			*f.dst = &v
		}
	}
	if *status != "" {
		s := api.ListResourcesParamsStatus(*status)
		p.Status = &s
	}
	if len(labels) > 0 {
		l := []string(labels)
		p.Label = &l
	}
	if *limit > 0 {
		l := int64(*limit)
		p.Limit = &l
	}
	resp, err := c.api.ListResourcesWithResponse(ctx, p)
	out, err := answer(c, resp, err, (*api.ListResourcesResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	printResources(env.Stdout, out.Resources, time.Now())
	for _, e := range out.Errors {
		fmt.Fprintf(env.Stderr, "%s (%s): %s could not report everything: %s\n", e.AgentName, e.Agent, e.Source, e.Error)
	}
	if len(out.Resources) == 0 {
		fmt.Fprintln(env.Stderr, "no resources match (agents report theirs within [agent] inventory, 5 minutes by default, of starting)")
	}
	if out.Next != "" {
		fmt.Fprintf(env.Stderr, "more: pulse resources … --cursor %s\n", out.Next)
	}
	return nil
}

func printResources(w io.Writer, rs []api.ResourceItem, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tAGENT\tNAME\tSTATUS\tATTRIBUTES\tLAST SEEN")
	for _, r := range rs {
		st := string(r.Status)
		if r.Reason != "" {
			st += " (" + r.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Type, cmp.Or(r.AgentName, r.Agent), cmp.Or(r.Name, r.ID), st, keyAttributes(r.Type, r.Attributes),
			now.Sub(r.LastSeen).Round(time.Second).String()+" ago")
	}
	tw.Flush()
}

// keyAttributes are the few attributes of a resource worth a column, by type; other types show
// their first three attributes by name.
func keyAttributes(typ string, attrs map[string]any) string {
	show := map[string][]string{
		"disk":      {"sizeBytes", "model"},
		"mount":     {"fstype", "sizeBytes", "usedRatio"},
		"interface": {"addresses", "mtu"},
		"container": {"image", "state", "unit"},
		"unit":      {"unitType", "state"},
		"plan":      {"version", "units"},
	}[typ]
	if show == nil {
		for k := range attrs {
			show = append(show, k)
		}
		sort.Strings(show)
		show = show[:min(3, len(show))]
	}
	var parts []string
	for _, k := range show {
		v, ok := attrs[k]
		if !ok {
			continue
		}
		switch x := v.(type) {
		case float64:
			switch {
			case k == "sizeBytes":
				parts = append(parts, humanBytes(int64(x)))
			case k == "usedRatio":
				parts = append(parts, fmt.Sprintf("%.0f%% used", x*100))
			default:
				parts = append(parts, k+"="+number(x))
			}
		default:
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, " ")
}
