package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/kernel"
	"github.com/pulsehq/pulse/agent/state"
)

// The sealed hatch is opened here, on the host, and nowhere else: the hub has no way to write the hatch
// file. Opening it takes the host's name typed back, lasts at most kernel.MaxHatch and records the local
// account; the running agent honours it until it expires, reports it to the hub, and re-seals at start.

const defaultHatchFor = 15 * time.Minute

var hatchUsages = map[string]string{
	"unseal": `Usage: pulse-agent unseal [flags]

Opens the shell hatch on this host: until it closes, the agent runs shell_run (an arbitrary script as
the agent's user) for whoever the hub allows to send it. You are asked to type this host's name back.
The hatch closes by itself after --for (at most 1h), when the agent restarts, or with 'pulse-agent seal'.
The agent reports it to the hub while it is open. Run it as the agent's user or as root.

Flags:
`,
	"seal": `Usage: pulse-agent seal [flags]

Closes the shell hatch on this host now; shell_run is rejected again.

Flags:
`,
	"hatch": `Usage: pulse-agent hatch [flags]

Says whether the shell hatch on this host is open, until when and who opened it.

Flags:
`,
}

type hatchOptions struct {
	stateDir, configPath string
	open                 time.Duration
}

func hatchFlags(name string) (*flag.FlagSet, *hatchOptions) {
	o := &hatchOptions{}
	fs := flag.NewFlagSet("pulse-agent "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.stateDir, "state-dir", "", "the agent's state `directory` (default: state_dir in agent.toml, else "+state.DefaultDir+")")
	fs.StringVar(&o.configPath, "config", "", "agent.toml `path` to read state_dir from (default "+kernel.DefaultConfigPath+", if it exists)")
	if name == "unseal" {
		fs.DurationVar(&o.open, "for", defaultHatchFor, "how long the hatch stays open, at most 1h")
	}
	return fs, o
}

func printUsage(w io.Writer, fs *flag.FlagSet, usage string) {
	fmt.Fprint(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// parseHatchArgs parses a hatch subcommand's flags and finds the state directory. done is true when the
// caller should return code at once (help, usage error).
func parseHatchArgs(name string, args []string, stdout, stderr io.Writer) (o *hatchOptions, dir string, code int, done bool) {
	fs, o := hatchFlags(name)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, hatchUsages[name])
			return nil, "", 0, true
		}
		fmt.Fprintf(stderr, "pulse-agent %s: %s; see 'pulse-agent %s --help'\n", name, oneLine(err.Error()), name)
		return nil, "", exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pulse-agent %s: unexpected argument %q; see 'pulse-agent %s --help'\n", name, fs.Arg(0), name)
		return nil, "", exitUsage, true
	}
	dir = o.stateDir
	if dir == "" {
		var cfg kernel.Config
		if o.configPath != "" {
			cfg = kernel.LoadConfig(o.configPath, true)
		} else {
			cfg = kernel.LoadConfig(kernel.DefaultConfigPath, false)
		}
		for _, p := range cfg.Problems {
			fmt.Fprintf(stderr, "pulse-agent %s: warning: %s\n", name, oneLine(p))
		}
		dir = cfg.StateDir
	}
	if dir == "" {
		dir = state.DefaultDir
	}
	return o, dir, 0, false
}

func unseal(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, dir, code, done := parseHatchArgs("unseal", args, stdout, stderr)
	if done {
		return code
	}
	switch {
	case o.open > kernel.MaxHatch:
		fmt.Fprintf(stderr, "pulse-agent unseal: --for %s: the hatch opens for at most 1h; the hatch stays sealed\n", o.open)
		return exitUsage
	case o.open <= 0:
		fmt.Fprintf(stderr, "pulse-agent unseal: --for %s: want a positive duration such as 15m; the hatch stays sealed\n", o.open)
		return exitUsage
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "pulse-agent unseal: no agent state directory at %s (pass --state-dir); the hatch stays sealed\n", dir)
		return exitFailure
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		fmt.Fprintf(stderr, "pulse-agent unseal: cannot tell this host's name (%v); the hatch stays sealed\n", err)
		return exitFailure
	}

	fmt.Fprintf(stderr, "This opens the shell hatch on %s for %s: until then, anyone the hub allows to send shell_run\n"+
		"runs any script here as the agent's user.\n", host, o.open)
	fmt.Fprintf(stderr, "Type the hostname (%s) to open the shell hatch: ", host)
	answer, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || answer == "") {
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "pulse-agent unseal: no answer; the hatch stays sealed")
		return exitFailure
	}
	answer = strings.TrimSpace(answer)
	if !strings.EqualFold(answer, host) {
		fmt.Fprintf(stderr, "pulse-agent unseal: %q is not this host's name (%s); the hatch stays sealed\n", answer, host)
		return exitFailure
	}

	by := localAccount()
	st, err := kernel.OpenHatch(dir, o.open, by)
	if err != nil {
		hint := ""
		if errors.Is(err, os.ErrPermission) {
			hint = " (run it as the agent's user or as root)"
		}
		fmt.Fprintf(stderr, "pulse-agent unseal: %s%s; the hatch stays sealed\n", oneLine(err.Error()), hint)
		return exitFailure
	}
	fmt.Fprintf(stdout, "The shell hatch on %s is open until %s (%s), opened by %s.\n",
		host, st.ExpiresAt.Local().Format("15:04:05 MST"), o.open, st.By)
	fmt.Fprintln(stdout, "The running agent reports it to the hub. It closes by itself then, when the agent restarts, or now with 'pulse-agent seal'.")
	return 0
}

// localAccount names the account running this command and, through sudo, the one it came from.
func localAccount() string {
	name := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if su := os.Getenv("SUDO_USER"); su != "" && su != name {
		name += " (sudo from " + su + ")"
	}
	return name
}

func seal(args []string, stdout, stderr io.Writer) int {
	_, dir, code, done := parseHatchArgs("seal", args, stdout, stderr)
	if done {
		return code
	}
	had, err := kernel.SealHatch(dir)
	if err != nil {
		fmt.Fprintf(stderr, "pulse-agent seal: %s\n", oneLine(err.Error()))
		return exitFailure
	}
	if had {
		fmt.Fprintln(stdout, "The shell hatch is sealed.")
	} else {
		fmt.Fprintln(stdout, "The shell hatch was already sealed.")
	}
	return 0
}

func hatchStatus(args []string, stdout, stderr io.Writer) int {
	_, dir, code, done := parseHatchArgs("hatch", args, stdout, stderr)
	if done {
		return code
	}
	now := time.Now()
	st, err := kernel.ReadHatch(dir, now)
	switch {
	case errors.Is(err, os.ErrPermission):
		// Not being allowed to look says nothing about the hatch; "sealed" would be a guess.
		fmt.Fprintf(stderr, "pulse-agent hatch: %s (run it as the agent's user or as root)\n", oneLine(err.Error()))
		return exitFailure
	case err != nil:
		fmt.Fprintf(stdout, "sealed (%s)\n", oneLine(err.Error()))
	case st.Open:
		fmt.Fprintf(stdout, "open until %s (%s left), opened by %s at %s\n",
			st.ExpiresAt.Local().Format(time.DateTime+" MST"), st.ExpiresAt.Sub(now).Round(time.Second),
			st.By, st.OpenedAt.Local().Format(time.DateTime+" MST"))
	case !st.ExpiresAt.IsZero():
		fmt.Fprintf(stdout, "sealed (the window %s opened expired at %s)\n", st.By, st.ExpiresAt.Local().Format(time.DateTime+" MST"))
	default:
		fmt.Fprintln(stdout, "sealed")
	}
	return 0
}
