// Package cli is the `pulse` command line: the hub server and, as the project grows, the operator
// client. Errors reach the user as one line on stderr and a non-zero exit status, never a stack trace.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Version is the binary's version, set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// Exit statuses, so scripts can tell a usage mistake from a runtime failure.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// Env is what a command may touch: its output streams, so tests can capture them.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
}

// usageError marks errors that are the caller's to fix; they exit with ExitUsage.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func commands() map[string]command {
	return map[string]command{
		"serve":         {"run the hub (API server) against a store", runServe},
		"init":          {"create the bucket, the signing key and the first admin token", runInit},
		"enroll-token":  {"create, list and revoke enrollment tokens for agents", runEnrollToken},
		"agents":        {"list agents: labels, online state, disabled integrations", runAgents},
		"agent":         {"show one agent, change its labels, retire it", runAgent},
		"commands":      {"list commands: filter by state, issuer, agent, command, since", runCommands},
		"approvals":     {"list the commands awaiting an approval you could give", runApprovals},
		"run":           {"run a whitelisted command on agents", runRun},
		"command":       {"show a command and its state on every agent", runCommand},
		"output":        {"print an agent's output of a command (--follow to watch)", runOutput},
		"cancel":        {"cancel what has not finished of a command", runCancel},
		"key":           {"show or rotate the hub's signing key", runKey},
		"token":         {"create, list and revoke operator API tokens", runToken},
		"approve":       {"approve a command awaiting approval", runApprove},
		"deny":          {"deny a command awaiting approval", runDeny},
		"audit":         {"list audit records, verify the audit chain", runAudit},
		"doctor":        {"list objects in the bucket the hub did not write (forged or edited)", runDoctor},
		"workflow":      {"apply, list, show, delete, run and watch workflows", runWorkflow},
		"execution":     {"show or cancel a workflow execution", runExecution},
		"plan":          {"apply a plan (desired state on agents), show it, see where it stands per agent and unit", runPlan},
		"plans":         {"list plans with their newest version", runPlans},
		"artifact":      {"push a file to the hub as an artifact that plans name by sha256", runArtifact},
		"alert-rules":   {"apply or show the alert rules the hub evaluates", runAlertRules},
		"alerts":        {"list the alerts that fired and resolved", runAlerts},
		"channels":      {"list, apply, test and delete the channels alerts notify", runChannels},
		"notifications": {"show the delivery log of notifications: sent, retrying, failed", runNotifications},
		"artifacts":     {"list the artifacts the hub holds", runArtifacts},
		"metrics":       {"chart an agent's metric history (pulse metrics AGENT NAME --since 6h)", runMetrics},
		"resources":     {"list the fleet's resources (disks, mounts, interfaces, containers, plan units) by type, agent, label, status", runResources},
		"respond":       {"answer a prompt step of an execution", runRespond},
		"tick":          {"run the hub's periodic work once (for cloud-function deployments)", runTick},
		"openapi":       {"print or write the OpenAPI documents of the API", runOpenAPI},
		"version":       {"print the version", runVersion},
	}
}

// Main runs the command line and returns the process exit status.
func Main(ctx context.Context, args []string, env *Env) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if _, ok := cmds[args[1]]; ok {
				return Main(ctx, []string{args[1], "--help"}, env)
			}
		}
		printUsage(env.Stdout, cmds)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "pulse: unknown command %q; run 'pulse help' for the list\n", args[0])
		return ExitUsage
	}
	err := cmd.run(ctx, env, args[1:])
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &usageError{}):
		fmt.Fprintf(env.Stderr, "pulse %s: %v\n", args[0], err)
		return ExitUsage
	default:
		fmt.Fprintf(env.Stderr, "pulse %s: %v\n", args[0], oneLine(err))
		return ExitError
	}
}

// oneLine keeps an error to one line, so scripts and people see the cause without a dump.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func printUsage(w io.Writer, cmds map[string]command) {
	fmt.Fprintf(w, "pulse — the Pulse fleet manager hub and operator CLI (%s)\n\nUsage: pulse COMMAND [flags]\n\nCommands:\n", Version)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'pulse COMMAND --help' for a command's flags.\n")
}

// newFlags builds a flag set whose errors are returned (not printed twice, not exiting) and whose
// --help shows a description first.
func newFlags(env *Env, name, usage, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "Usage: pulse %s %s\n\n%s\n\nFlags:\n", name, usage, description)
		fs.SetOutput(env.Stdout)
		fs.PrintDefaults()
		fs.SetOutput(env.Stderr)
	}
	return fs
}

// parse parses flags, turning flag errors into usage errors and refusing stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard) // we print the error ourselves, once
	err := fs.Parse(args)
	fs.SetOutput(os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func runVersion(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "version", "", "Prints the version of this binary.")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, Version)
	return nil
}

func runOpenAPI(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "openapi", "[--out DIR]", "Prints the OpenAPI 3.1 document (YAML) of the hub API, or with --out writes\nopenapi.yaml, openapi.json and openapi-3.0.yaml into DIR (what `make openapi` commits).")
	out := fs.String("out", "", "directory to write the documents into")
	if err := parse(fs, args); err != nil {
		return err
	}
	docs, err := openAPIDocuments()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := env.Stdout.Write(docs["openapi.yaml"])
		return err
	}
	for name, b := range docs {
		p := filepath.Join(*out, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		fmt.Fprintf(env.Stderr, "wrote %s\n", p)
	}
	return nil
}
