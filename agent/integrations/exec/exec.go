// Package exec is the built-in integration for operator-defined commands: whitelisted subprocesses
// declared in the agent's TOML config, without writing an integration. They are full citizens of the
// catalog: absolute binary, validated parameters, a timeout, signed dispatch like everything else.
//
//	[exec.commands.disk_usage]
//	binary = "/usr/bin/df"
//	args = ["-h", "{{path}}"]
//	timeout = "30s"
//	description = "Disk usage of a path"
//	dangerous = false
//	[exec.commands.disk_usage.params.path]
//	pattern = "/[a-zA-Z0-9/._-]*"
//	max_bytes = 256
//	required = true
//
// One broken definition disables the whole integration with a reason naming the command: partially
// loading an operator's whitelist would leave them guessing which commands exist.
package exec

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// ID is the integration's id, its config table and the group of every command it declares.
const ID = "exec"

func init() {
	integration.Register(integration.Module{ID: ID, New: func() integration.Integration { return &Exec{} }})
}

// Exec is the integration instance; Configure builds every command so construction guards fire at
// start-up.
type Exec struct {
	commands []integration.Command
	binaries map[string]string // command name -> binary, for the precondition
}

var (
	_ integration.Integration    = (*Exec)(nil)
	_ integration.Preconditioner = (*Exec)(nil)
	_ integration.Commander      = (*Exec)(nil)
)

type config struct {
	Commands map[string]commandConfig `toml:"commands"`
}

type commandConfig struct {
	Binary      string                 `toml:"binary"`
	Args        []string               `toml:"args"`
	Env         []string               `toml:"env"`
	Dir         string                 `toml:"dir"`
	Timeout     string                 `toml:"timeout"`
	Description string                 `toml:"description"`
	Dangerous   bool                   `toml:"dangerous"`
	Params      map[string]paramConfig `toml:"params"`
}

type paramConfig struct {
	Pattern     string `toml:"pattern"`
	MaxBytes    int    `toml:"max_bytes"`
	Required    bool   `toml:"required"`
	Description string `toml:"description"`
}

// Configure decodes [exec] strictly and builds every declared command, so a relative binary, an
// unconstrained parameter, a bad pattern or duration is refused now, naming the command.
func (e *Exec) Configure(raw map[string]any) error {
	var c config
	if err := integration.DecodeConfig(raw, &c); err != nil {
		return err
	}
	names := make([]string, 0, len(c.Commands))
	for n := range c.Commands {
		names = append(names, n)
	}
	sort.Strings(names)
	e.commands, e.binaries = nil, map[string]string{}
	for _, name := range names {
		cmd, err := build(name, c.Commands[name])
		if err != nil {
			return err
		}
		e.commands = append(e.commands, cmd)
		e.binaries[name] = c.Commands[name].Binary
	}
	return nil
}

func build(name string, cc commandConfig) (integration.Command, error) {
	if !wire.ValidName(name) {
		return integration.Command{}, fmt.Errorf("command %q: name must be lower-case letters, digits and _, starting with a letter", name)
	}
	spec := wire.CommandSpec{
		Name:        name,
		Group:       ID,
		Description: cc.Description,
		Dangerous:   cc.Dangerous,
	}
	if spec.Description == "" {
		spec.Description = strings.TrimSpace("Runs " + cc.Binary + " " + strings.Join(cc.Args, " "))
	}
	if cc.Timeout != "" {
		d, err := time.ParseDuration(cc.Timeout)
		switch {
		case err != nil:
			return integration.Command{}, fmt.Errorf("command %s: timeout %q: want a duration such as \"30s\" or \"5m\"", name, cc.Timeout)
		case d < time.Second || d%time.Second != 0:
			return integration.Command{}, fmt.Errorf("command %s: timeout %q: want a whole number of seconds, at least 1s", name, cc.Timeout)
		}
		spec.DefaultTimeoutSeconds = int(d / time.Second)
	}
	pnames := make([]string, 0, len(cc.Params))
	for n := range cc.Params {
		pnames = append(pnames, n)
	}
	sort.Strings(pnames)
	for _, pn := range pnames {
		p := cc.Params[pn]
		if p.MaxBytes < 0 {
			return integration.Command{}, fmt.Errorf("command %s: parameter %s: max_bytes must be positive", name, pn)
		}
		spec.Params = append(spec.Params, wire.ParamSpec{
			Name:        pn,
			Pattern:     p.Pattern,
			MaxBytes:    p.MaxBytes,
			Required:    p.Required,
			Description: p.Description,
		})
	}
	cmd, err := integration.NewSubprocess(spec, integration.Subprocess{
		Binary: cc.Binary,
		Args:   cc.Args,
		Env:    cc.Env,
		Dir:    cc.Dir,
	})
	if err != nil {
		return integration.Command{}, err // NewSubprocess's errors already name the command
	}
	return cmd, nil
}

// Enabled is true when at least one command is declared: an empty whitelist contributes nothing.
func (e *Exec) Enabled() bool { return len(e.commands) > 0 }

// Precondition checks that every binary exists and is executable, so a typo in a path shows on the
// dashboard at start-up instead of as a failed run later.
func (e *Exec) Precondition(context.Context) error {
	names := make([]string, 0, len(e.binaries))
	for n := range e.binaries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		bin := e.binaries[n]
		fi, err := os.Stat(bin)
		switch {
		case err != nil:
			return fmt.Errorf("command %s: %w", n, err)
		case !fi.Mode().IsRegular():
			return fmt.Errorf("command %s: binary %s is not a regular file", n, bin)
		case fi.Mode().Perm()&0o111 == 0:
			return fmt.Errorf("command %s: binary %s is not executable", n, bin)
		}
	}
	return nil
}

// Commands returns the commands built by Configure.
func (e *Exec) Commands() ([]integration.Command, error) { return e.commands, nil }
