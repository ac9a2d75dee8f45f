// Package shell is the built-in integration behind the sealed hatch: one command, shell_run, that runs an
// opaque script with /bin/sh. No parameter rule can make an arbitrary script safe, so the command is
// marked RequireHatch: it is always in the catalog (the hub can offer it and explain why it is refused),
// but it runs only while an operator on the host itself has opened the hatch with `pulse-agent unseal`.
// The hatch is the kernel's: it lives in the state directory, lasts at most an hour, is reported in
// every heartbeat and is closed again whenever the agent starts. This package never reads it.
//
// An operator who wants the command gone from the catalog altogether sets
//
//	[shell]
//	enabled = false
package shell

import (
	"context"
	"fmt"
	"os"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// ID is the integration's id, its config table and its command group.
const ID = "shell"

const (
	// Interpreter runs the script: an absolute path, like the binary of every subprocess of the agent.
	Interpreter = "/bin/sh"
	// MaxScriptBytes caps the script; it also keeps it well below the kernel's limit for one argument.
	MaxScriptBytes = 64 << 10
	// defaultTimeoutSeconds applies when the request sets no timeout.
	defaultTimeoutSeconds = 60
)

func init() {
	integration.Register(integration.Module{ID: ID, New: func() integration.Integration { return &Shell{enabled: true} }})
}

// Shell is the integration instance.
type Shell struct {
	enabled bool
}

var (
	_ integration.Integration    = (*Shell)(nil)
	_ integration.Preconditioner = (*Shell)(nil)
	_ integration.Commander      = (*Shell)(nil)
)

type config struct {
	Enabled *bool `toml:"enabled"`
}

// Configure reads [shell]; its only key is enabled (default true: the command ships, sealed).
func (s *Shell) Configure(raw map[string]any) error {
	var c config
	if err := integration.DecodeConfig(raw, &c); err != nil {
		return err
	}
	s.enabled = c.Enabled == nil || *c.Enabled
	return nil
}

// Enabled is true unless the config turned the integration off.
func (s *Shell) Enabled() bool { return s.enabled }

// Precondition refuses a host without /bin/sh, rather than failing every run.
func (s *Shell) Precondition(context.Context) error {
	fi, err := os.Stat(Interpreter)
	if err != nil {
		return fmt.Errorf("no shell: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", Interpreter)
	}
	return nil
}

// Commands is shell_run, behind the hatch.
func (s *Shell) Commands() ([]integration.Command, error) {
	run, err := integration.NewSubprocess(wire.CommandSpec{
		Name:  "shell_run",
		Group: ID,
		Description: "Run a shell script with " + Interpreter + " -c. Sealed: it runs only while the hatch is open, " +
			"which is done on the host with `pulse-agent unseal`",
		Params: []wire.ParamSpec{{
			Name:        "script",
			MaxBytes:    MaxScriptBytes,
			Required:    true,
			Description: "The script, passed to " + Interpreter + " -c as one argument",
		}},
		Dangerous:             true,
		DefaultTimeoutSeconds: defaultTimeoutSeconds,
	}, integration.Subprocess{Binary: Interpreter, Args: []string{"-c", "{{script}}"}})
	if err != nil {
		return nil, err
	}
	return []integration.Command{run.RequireHatch()}, nil
}
