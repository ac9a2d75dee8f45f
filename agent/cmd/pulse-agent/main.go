// Command pulse-agent runs on every managed machine: it enrolls with a Pulse hub once, then long-polls
// it for signed work, runs whitelisted commands and uploads their output and results.
//
// Usage:
//
//	pulse-agent run --hub https://hub.example --enroll-token TOKEN   # first start
//	pulse-agent run                                                   # later starts
//	pulse-agent unseal [--for 15m]                                    # open the shell hatch, on the host
//	pulse-agent seal                                                  # close it early
//	pulse-agent hatch                                                 # is it open?
//	pulse-agent selftest [run's flags]                               # can this binary work here?
//	pulse-agent version
//	pulse-agent help
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/pulsehq/pulse/agent/integrations/host"
	_ "github.com/pulsehq/pulse/agent/integrations/standard" // the integrations this binary carries
	"github.com/pulsehq/pulse/agent/kernel"
	"github.com/pulsehq/pulse/agent/state"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// exit codes: 1 for a failure at run time, 2 for a command line the agent does not understand.
const (
	exitFailure = 1
	exitUsage   = 2
)

const tokenEnv = "PULSE_ENROLL_TOKEN"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runAgent(args[1:], stdout, stderr)
	case "selftest":
		return selfTest(args[1:], stdout, stderr)
	case "unseal":
		return unseal(args[1:], stdin, stdout, stderr)
	case "seal":
		return seal(args[1:], stdout, stderr)
	case "hatch":
		return hatchStatus(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "pulse-agent", agentVersion())
		return 0
	case "help", "--help", "-help", "-h":
		if len(args) > 1 && args[1] == "run" {
			fs, _ := runFlags()
			printRunUsage(stdout, fs)
			return 0
		}
		if len(args) > 1 {
			if u, ok := hatchUsages[args[1]]; ok {
				fs, _ := hatchFlags(args[1])
				printUsage(stdout, fs, u)
				return 0
			}
		}
		fmt.Fprint(stdout, topUsage)
		return 0
	}
	fmt.Fprintf(stderr, "pulse-agent: unknown command %q; run 'pulse-agent help'\n", args[0])
	return exitUsage
}

const topUsage = `pulse-agent runs Pulse work on this machine: it enrolls with a hub once, then
long-polls it for signed commands, runs those its integrations whitelist, and uploads results.

Usage:
  pulse-agent run [flags]   run the agent (see 'pulse-agent run --help')
  pulse-agent unseal        open the shell hatch on this host for a while (at most an hour)
  pulse-agent seal          close the shell hatch now
  pulse-agent hatch         say whether the shell hatch is open
  pulse-agent selftest [flags]  load the config (run's flags), sign one request to the hub, print
                            {version} as JSON; what a new binary must pass before it replaces this one
  pulse-agent version       print the version
  pulse-agent help          show this help

First start:  pulse-agent run --hub https://hub.example --enroll-token TOKEN
Later starts: pulse-agent run   (the identity in the state directory is reused)
`

type runOptions struct {
	hub, token, stateDir, configPath, logFormat, logLevel string
}

func runFlags() (*flag.FlagSet, *runOptions) {
	o := &runOptions{}
	fs := flag.NewFlagSet("pulse-agent run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.hub, "hub", "", "hub base `URL`, e.g. https://pulse.example.com; overrides hub in agent.toml and the URL stored at enrollment")
	fs.StringVar(&o.token, "enroll-token", "", "enrollment `token`, needed on the first start only (or set "+tokenEnv+"); ignored once enrolled")
	fs.StringVar(&o.stateDir, "state-dir", "", "`directory` for the key, identity, replay record and outbox (default "+state.DefaultDir+"); overrides state_dir in agent.toml")
	fs.StringVar(&o.configPath, "config", "", "agent.toml `path`: [agent] settings and one table per integration (default "+kernel.DefaultConfigPath+", if it exists)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format` on stderr: text or json")
	fs.StringVar(&o.logLevel, "log-level", "", "log `level`: debug, info, warn or error; overrides log_level in agent.toml (default info)")
	return fs, o
}

func printRunUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: pulse-agent run [flags]

Runs the agent until SIGINT or SIGTERM. On the first start it creates its key in the state directory
and enrolls with the hub using the token; later starts reuse that identity.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func runAgent(args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := agentConfig("run", args, stdout, stderr)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the agent at once
	}()

	if err := kernel.Run(ctx, cfg); err != nil {
		if ctx.Err() != nil { // interrupted while enrolling: the operator asked for it
			fmt.Fprintf(stderr, "pulse-agent: stopped before enrollment finished: %s\n", oneLine(err.Error()))
			return exitFailure
		}
		fmt.Fprintf(stderr, "pulse-agent: %s\n", oneLine(err.Error()))
		return exitFailure
	}
	return 0
}

// selfTest runs kernel.SelfTest with the configuration run would use, and prints its result as JSON:
// the agent's self-update runs it on a new binary before swapping it in.
func selfTest(args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := agentConfig("selftest", args, stdout, stderr)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := kernel.SelfTest(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "pulse-agent selftest: %s\n", oneLine(err.Error()))
		return exitFailure
	}
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	return 0
}

// agentConfig reads run's flags and the config file into a kernel.Config; ok is false when the
// command line is wrong (code says how to exit).
func agentConfig(cmd string, args []string, stdout, stderr io.Writer) (cfg kernel.Config, code int, ok bool) {
	fs, o := runFlags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printRunUsage(stdout, fs)
			return cfg, 0, false
		}
		fmt.Fprintf(stderr, "pulse-agent %s: %s; see 'pulse-agent run --help'\n", cmd, oneLine(err.Error()))
		return cfg, exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pulse-agent %s: unexpected argument %q; see 'pulse-agent run --help'\n", cmd, fs.Arg(0))
		return cfg, exitUsage, false
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		fmt.Fprintf(stderr, "pulse-agent %s: --log-format %q: want text or json\n", cmd, o.logFormat)
		return cfg, exitUsage, false
	}
	if o.logLevel != "" {
		if _, err := kernel.ParseLevel(o.logLevel); err != nil {
			fmt.Fprintf(stderr, "pulse-agent %s: --log-level: %v\n", cmd, err)
			return cfg, exitUsage, false
		}
	}

	if o.configPath != "" {
		cfg = kernel.LoadConfig(o.configPath, true)
	} else {
		cfg = kernel.LoadConfig(kernel.DefaultConfigPath, false)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["hub"] {
		if err := kernel.CheckHubURL(o.hub); err != nil {
			fmt.Fprintf(stderr, "pulse-agent %s: --hub: %v\n", cmd, err)
			return cfg, exitUsage, false
		}
		cfg.Hub = o.hub
	}
	if set["state-dir"] {
		cfg.StateDir = o.stateDir
	}
	if set["log-level"] {
		cfg.LogLevel = o.logLevel
	}
	cfg.EnrollToken = o.token
	if cfg.EnrollToken == "" {
		cfg.EnrollToken = os.Getenv(tokenEnv)
	}

	level, _ := kernel.ParseLevel(cfg.LogLevel) // validated by LoadConfig or above
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	cfg.Logger = slog.New(h)
	cfg.Version = agentVersion()
	cfg.Facts = host.Facts

	return cfg, 0, true
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func agentVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
