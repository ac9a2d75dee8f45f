package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"testing"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// grace is the SIGTERM-to-SIGKILL grace the tests run with.
const grace = 400 * time.Millisecond

// TestMain doubles as the helper program that subprocess tests run (the test binary itself, re-executed
// with PULSE_TEST_HELPER set), so argv and environment are observed by a real process, not a mock.
func TestMain(m *testing.M) {
	switch os.Getenv("PULSE_TEST_HELPER") {
	case "argv":
		_ = json.NewEncoder(os.Stdout).Encode(os.Args[1:])
		os.Exit(0)
	case "env":
		_ = json.NewEncoder(os.Stdout).Encode(os.Environ())
		os.Exit(0)
	}
	integration.SetKillGrace(grace)
	os.Exit(m.Run())
}

// Test modules are registered globally, like real ones, so every Load in this binary sees them. Each is
// off unless its table is present, so a test turns on exactly the modules it is about.
func init() {
	for _, id := range []string{"test_a", "test_b"} {
		integration.Register(integration.Module{ID: id, New: func() integration.Integration { return &probe{id: id} }})
	}
	integration.Register(integration.Module{ID: "test_newnil", New: func() integration.Integration { return nil }})
	integration.Register(integration.Module{ID: "test_newpanic", New: func() integration.Integration { panic("constructor exploded") }})
	integration.Register(integration.Module{ID: "test_run", New: func() integration.Integration { return &runner{} }})
}

// probe is a test integration whose behaviour its config table chooses.
type probe struct {
	id  string
	cfg probeConfig
}

type probeConfig struct {
	Enabled           bool   `toml:"enabled"`
	ConfigureError    string `toml:"configure_error"`
	PreconditionError string `toml:"precondition_error"`
	PanicIn           string `toml:"panic_in"` // configure, enabled, precondition, commands, collect
	Command           string `toml:"command"`  // its command's name; default <id>_echo
	Group             string `toml:"group"`    // its command's group; default its id
	ZeroCommand       bool   `toml:"zero_command"`
	DeclareRefresh    bool   `toml:"declare_refresh"`
	CommandsError     string `toml:"commands_error"`
}

var (
	_ integration.Preconditioner = (*probe)(nil)
	_ integration.Commander      = (*probe)(nil)
	_ integration.Collector      = (*probe)(nil)
)

func (p *probe) Configure(raw map[string]any) error {
	if err := integration.DecodeConfig(raw, &p.cfg); err != nil {
		return err
	}
	if p.cfg.PanicIn == "configure" {
		panic("configure exploded")
	}
	if p.cfg.ConfigureError != "" {
		return errors.New(p.cfg.ConfigureError)
	}
	return nil
}

func (p *probe) Enabled() bool {
	if p.cfg.PanicIn == "enabled" {
		panic("enabled exploded")
	}
	return p.cfg.Enabled
}

func (p *probe) Precondition(context.Context) error {
	if p.cfg.PanicIn == "precondition" {
		panic("precondition exploded")
	}
	if p.cfg.PreconditionError != "" {
		return errors.New(p.cfg.PreconditionError)
	}
	return nil
}

func (p *probe) Commands() ([]integration.Command, error) {
	if p.cfg.PanicIn == "commands" {
		var m map[string]int
		m["boom"]++ // a genuine runtime panic
	}
	if p.cfg.CommandsError != "" {
		return nil, errors.New(p.cfg.CommandsError)
	}
	if p.cfg.ZeroCommand {
		return []integration.Command{{}}, nil
	}
	name, group := p.id+"_echo", p.id
	if p.cfg.Command != "" {
		name = p.cfg.Command
	}
	if p.cfg.Group != "" {
		group = p.cfg.Group
	}
	cmds := []integration.Command{mustJob(wire.CommandSpec{Name: name, Group: group}, func(_ context.Context, _ map[string]string, out io.Writer) error {
		_, err := fmt.Fprintf(out, "hello from %s\n", p.id)
		return err
	})}
	if p.cfg.DeclareRefresh {
		cmds = append(cmds, mustJob(wire.CommandSpec{Name: p.id + "_refresh", Group: p.id}, func(context.Context, map[string]string, io.Writer) error { return nil }))
	}
	return cmds, nil
}

// probeState is what a probe collects.
type probeState struct {
	ID     string   `json:"id"`
	Answer int      `json:"answer"`
	Tags   []string `json:"tags"`
}

func (p *probe) Collect(context.Context) (any, error) {
	if p.cfg.PanicIn == "collect" {
		panic("collect exploded")
	}
	return probeState{ID: p.id, Answer: 42, Tags: []string{"x", "y"}}, nil
}

func mustJob(spec wire.CommandSpec, fn integration.JobFunc) integration.Command {
	c, err := integration.NewJob(spec, fn)
	if err != nil {
		panic(err)
	}
	return c
}

func mustSub(spec wire.CommandSpec, sp integration.Subprocess) integration.Command {
	c, err := integration.NewSubprocess(spec, sp)
	if err != nil {
		panic(err)
	}
	return c
}

// runner is the test integration the Run tests drive: real subprocesses and jobs.
type runner struct{ enabled bool }

func (r *runner) Configure(raw map[string]any) error { r.enabled = raw != nil; return nil }
func (r *runner) Enabled() bool                      { return r.enabled }

var (
	pathParam = wire.ParamSpec{Name: "path", Pattern: `/[A-Za-z0-9/._-]+`, MaxBytes: 512, Required: true}
	// lateWrite receives the error a stubborn job got when it wrote after Run returned.
	lateWrite = make(chan error, 1)
)

func (r *runner) Commands() ([]integration.Command, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find test binary: %w", err)
	}
	spec := func(name string, params ...wire.ParamSpec) wire.CommandSpec {
		return wire.CommandSpec{Name: "test_run_" + name, Group: "test_run", Params: params}
	}
	sh := func(script string, params ...wire.ParamSpec) integration.Subprocess {
		args := []string{"-c", script, "sh"}
		for _, p := range params {
			args = append(args, "{{"+p.Name+"}}")
		}
		return integration.Subprocess{Binary: "/bin/sh", Args: args}
	}
	job := func(name string, fn integration.JobFunc) integration.Command { return mustJob(spec(name), fn) }
	value := wire.ParamSpec{Name: "value", MaxBytes: 200, Required: true}
	opt := wire.ParamSpec{Name: "opt", Pattern: `[a-z]+`}

	return []integration.Command{
		mustSub(spec("argv", value, opt), integration.Subprocess{
			Binary: self,
			Args:   []string{"--value", "{{value}}", "--opt={{opt}}", "{{opt}}", "--format={{.Names}}"},
			Env:    []string{"PULSE_TEST_HELPER=argv"},
		}),
		mustSub(spec("env"), integration.Subprocess{Binary: self, Env: []string{"PULSE_TEST_HELPER=env", "EXTRA=1"}}),
		mustSub(spec("exit"), sh(`echo to-stdout; echo to-stderr >&2; exit 3`)),
		mustSub(spec("touch", pathParam), sh(`: > "$1"`, pathParam)),
		mustSub(spec("sleep", pathParam), sh(`sleep 300 & echo $! > "$1"; wait`, pathParam)),
		mustSub(spec("stubborn", pathParam), sh(`trap "" TERM; sleep 300 & echo $! > "$1"; wait`, pathParam)),
		mustSub(spec("escape", pathParam), sh(`/usr/bin/setsid /bin/sh -c 'echo $$ > "$0"; exec sleep 300' "$1" & wait`, pathParam)),
		mustSub(wire.CommandSpec{Name: "test_run_default_timeout", Group: "test_run", DefaultTimeoutSeconds: 1},
			integration.Subprocess{Binary: "/bin/sleep", Args: []string{"300"}}),
		job("job_ok", func(_ context.Context, _ map[string]string, out io.Writer) error {
			_, err := io.WriteString(out, "job done\n")
			return err
		}),
		job("job_fail", func(context.Context, map[string]string, io.Writer) error {
			return errors.New("disk full")
		}),
		job("job_panic", func(context.Context, map[string]string, io.Writer) error {
			panic("handler exploded")
		}),
		job("job_wait", func(ctx context.Context, _ map[string]string, _ io.Writer) error {
			<-ctx.Done()
			return ctx.Err()
		}),
		job("job_stubborn", func(_ context.Context, _ map[string]string, out io.Writer) error {
			time.Sleep(time.Second + 3*grace) // outlives a 1s timeout and the grace after it
			_, err := io.WriteString(out, "too late\n")
			lateWrite <- err
			return nil
		}),
		job("job_big", func(_ context.Context, _ map[string]string, out io.Writer) error {
			_, err := out.Write(make([]byte, 5*wire.MaxChunkBytes/2+7))
			return err
		}),
	}, nil
}
