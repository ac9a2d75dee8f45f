package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pulsehq/pulse/functions/workflow"
	api "github.com/pulsehq/pulse/openapi/client"
)

func runWorkflow(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("want `pulse workflow apply|list|show|delete|run|watch`")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "run":
		return runWorkflowRun(ctx, env, args)
	case "watch":
		return runWorkflowWatch(ctx, env, args)
	case "apply":
		fs := newFlags(env, "workflow apply", "-f FILE [--name NAME] [--json]",
			"Creates or replaces a workflow from a YAML or JSON file. The hub checks it first — syntax, step types,\ncommands and parameters against the fleet's catalogs, CEL conditions typed and cost-bounded — and refuses\nit with the line and the reason.")
		file := fs.String("f", "", "the workflow file")
		name := fs.String("name", "", "workflow name (default: the definition's name, else the file name)")
		asJSON := fs.Bool("json", false, "print JSON")
		connect := clientFlags(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		if *file == "" {
			return usagef("-f FILE is required")
		}
		src, err := os.ReadFile(*file)
		if err != nil {
			return usageError{err}
		}
		n := *name
		if n == "" {
			n = defaultWorkflowName(*file, src)
		}
		c, err := connect()
		if err != nil {
			return err
		}
		resp, err := c.api.ApplyWorkflowWithResponse(ctx, n, api.ApplyWorkflowInputBody{Source: string(src)})
		v, err := answer(c, resp, err, (*api.ApplyWorkflowResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		fmt.Fprintf(env.Stdout, "workflow %s version %d applied\n", v.Name, v.Version)
		return nil
	case "list":
		fs := newFlags(env, "workflow list", "[--json]", "Lists workflows with their current version.")
		asJSON := fs.Bool("json", false, "print JSON")
		c, err := clientCommand(fs, args)
		if err != nil {
			return err
		}
		resp, err := c.api.ListWorkflowsWithResponse(ctx)
		out, err := answer(c, resp, err, (*api.ListWorkflowsResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tSTEPS\tSCHEDULE\tAPPLIED\tBY\tDESCRIPTION")
		for _, w := range out.Workflows {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", w.Name, w.Version, w.Steps, w.Schedule, w.AppliedAt.Local().Format(time.RFC3339), w.AppliedBy, w.Description)
		}
		return tw.Flush()
	case "show", "delete":
		name, rest := splitID(args)
		fs := newFlags(env, "workflow "+sub, "NAME [--json]", "show: prints a workflow's current version (its source, or --json with the parsed definition).\ndelete: deletes it (a new version that says so; history stays in the bucket).")
		asJSON := fs.Bool("json", false, "print JSON")
		connect := clientFlags(fs)
		if err := parse(fs, rest); err != nil {
			return err
		}
		if name == "" {
			return usagef("want `pulse workflow %s NAME`", sub)
		}
		c, err := connect()
		if err != nil {
			return err
		}
		if sub == "delete" {
			resp, err := c.api.DeleteWorkflowWithResponse(ctx, name)
			if err := c.check(resp, err); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "workflow %s deleted\n", name)
			return nil
		}
		resp, err := c.api.GetWorkflowWithResponse(ctx, name)
		v, err := answer(c, resp, err, (*api.GetWorkflowResponse).GetJSON200)
		if err != nil {
			return err
		}
		if *asJSON {
			return printAnswer(env.Stdout, resp.Body)
		}
		fmt.Fprintf(env.Stderr, "# workflow %s version %d, applied by %s at %s\n", v.Name, v.Version, v.AppliedBy, v.AppliedAt.Local().Format(time.RFC3339))
		fmt.Fprint(env.Stdout, v.Source)
		return nil
	}
	return usagef("unknown `pulse workflow %s`; want apply, list, show, delete, run or watch", sub)
}

// defaultWorkflowName is the name `workflow apply` stores a definition under when --name is not given:
// the definition's own name, else the file's name without its extension, lower-cased with spaces and
// dots as dashes (the hub takes lower-case letters, digits, - and _).
func defaultWorkflowName(file string, src []byte) string {
	n := definitionName(src)
	if n == "" {
		n = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	return strings.ToLower(strings.NewReplacer(" ", "-", ".", "-").Replace(strings.TrimSpace(n)))
}

// definitionName is the definition's own name, read by the parser the hub uses, or "" when it has
// none or does not parse (the hub then says where it is broken).
func definitionName(src []byte) string {
	def, err := workflow.Parse(src)
	if err != nil {
		return ""
	}
	return def.Name
}
