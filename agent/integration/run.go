package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// RunResult is how one command ended, in the terms the agent reports to the hub.
type RunResult struct {
	Status wire.Status
	// ExitCode is set when a subprocess exited on its own (0 on success).
	ExitCode *int
	// Reason says why the command did not succeed, or notes something the operator should know.
	Reason string
	// StartedAt is zero when nothing ran (rejected, or cancelled before start).
	StartedAt, FinishedAt time.Time
}

// DefaultTimeout bounds a command when neither the request nor its spec sets a timeout, so no command
// runs forever by omission.
const DefaultTimeout = 300 * time.Second

// killGrace is how long a stopped command gets between SIGTERM and SIGKILL, and how long Run waits for
// output still held open. A variable so tests can shorten it.
var killGrace = 3 * time.Second

// errTimeout is the cause of a run's context when the command's own timeout fired, which tells a
// timeout apart from the caller cancelling.
var errTimeout = errors.New("command timed out")

// errOutputClosed is what a job that outlived its Run gets when it writes.
var errOutputClosed = errors.New("command output closed: Run has returned")

// minimalEnvKeys are copied from the agent's environment into every subprocess; nothing else is, so
// credentials the agent holds in its environment never reach operator commands.
var minimalEnvKeys = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR"}

const fallbackPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// RunOption adjusts one Run.
type RunOption func(*runOptions)

type runOptions struct {
	onGroup func(pgid int) error
}

// OnProcessGroup has Run hand record the process group of a subprocess as soon as it has started, before
// anything waits for it. The agent writes the group down so that, if the agent itself is killed, its
// next start can kill what is left instead of letting it run unsupervised. If record fails, the group is
// killed at once and the command fails: a group nobody wrote down could outlive a crash unseen.
func OnProcessGroup(record func(pgid int) error) RunOption {
	return func(o *runOptions) { o.onGroup = record }
}

// Run runs one command of the catalog, streaming its output to out. It validates the name and the
// parameters again even though the hub already did (the agent trusts no one's validation but its own),
// and nothing runs unless both pass. The timeout is cmd.TimeoutSeconds, else the spec's default, else
// DefaultTimeout. Run always returns: a stopped subprocess's whole process group gets SIGTERM, then
// SIGKILL after a grace period, and output that something keeps open is abandoned after that grace.
// Once Run returns, nothing more is written to out.
func (s *Set) Run(ctx context.Context, cmd wire.Command, out io.Writer, opts ...RunOption) RunResult {
	var o runOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := s.Admit(cmd); err != nil {
		return s.finish(cmd, RunResult{Status: wire.StatusRejected, Reason: err.Error()})
	}
	c := s.commands[cmd.Name]
	timeout := DefaultTimeout
	switch {
	case cmd.TimeoutSeconds > 0:
		timeout = time.Duration(cmd.TimeoutSeconds) * time.Second
	case c.spec.DefaultTimeoutSeconds > 0:
		timeout = time.Duration(c.spec.DefaultTimeoutSeconds) * time.Second
	}
	if ctx.Err() != nil {
		return s.finish(cmd, RunResult{Status: wire.StatusCancelled, Reason: "cancelled before it started"})
	}
	if out == nil {
		out = io.Discard
	}

	w := &runOutput{w: out}
	runCtx, cancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancel()
	params := maps.Clone(cmd.Params)
	if params == nil {
		params = map[string]string{}
	}

	started := time.Now()
	var res RunResult
	if c.job != nil {
		res = runJob(runCtx, timeout, c.job, params, w)
	} else {
		res = runSubprocess(runCtx, timeout, c.sub, params, w, o.onGroup)
	}
	if written, lost := w.close(); lost != nil {
		res.Reason = joinReason(res.Reason, fmt.Sprintf("output lost after %d bytes: %v", written, lost))
	}
	res.StartedAt = started
	return s.finish(cmd, res)
}

// ErrSealed is the reason a command behind the hatch is rejected while the hatch is closed.
var ErrSealed = errors.New("sealed: the shell hatch is closed on this host; open it there with `pulse-agent unseal`")

// Admit says why Run would reject cmd without running anything, or nil if Run would start it: the
// command is not in the catalog, its parameters do not validate, its timeout is negative, or it requires
// the hatch and the hatch is closed. The kernel asks before it announces a command as running; Run asks
// again, so nothing depends on the caller having asked.
func (s *Set) Admit(cmd wire.Command) error {
	c, ok := s.commands[cmd.Name]
	if !ok {
		return fmt.Errorf("unknown command %q: not in this agent's catalog", cmd.Name)
	}
	if err := c.spec.ValidateParams(cmd.Params); err != nil {
		return err
	}
	if cmd.TimeoutSeconds < 0 {
		return fmt.Errorf("negative timeout %ds", cmd.TimeoutSeconds)
	}
	if c.hatch {
		if s.hatch == nil {
			return ErrSealed
		}
		if err := s.hatch(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Set) finish(cmd wire.Command, res RunResult) RunResult {
	res.FinishedAt = time.Now()
	if s.log == nil { // a Set not made by Load
		return res
	}
	attrs := []any{"command", cmd.Name, "commandId", cmd.CommandID, "status", res.Status}
	if res.ExitCode != nil {
		attrs = append(attrs, "exitCode", *res.ExitCode)
	}
	if res.Reason != "" {
		attrs = append(attrs, "reason", res.Reason)
	}
	if !res.StartedAt.IsZero() {
		attrs = append(attrs, "duration", res.FinishedAt.Sub(res.StartedAt).Round(time.Millisecond))
	}
	s.log.Info("command finished", attrs...)
	return res
}

// stopped reports a command the runner stopped, telling its own timeout apart from the caller.
func stopped(ctx context.Context, timeout time.Duration) RunResult {
	if errors.Is(context.Cause(ctx), errTimeout) {
		return RunResult{Status: wire.StatusTimedOut, Reason: fmt.Sprintf("timed out after %s", timeout)}
	}
	return RunResult{Status: wire.StatusCancelled, Reason: "cancelled"}
}

func runJob(ctx context.Context, timeout time.Duration, fn JobFunc, params map[string]string, w io.Writer) RunResult {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("job panicked: %v", r)
			}
		}()
		done <- fn(ctx, params, w)
	}()
	select {
	case err := <-done:
		switch {
		case err == nil:
			return RunResult{Status: wire.StatusSucceeded}
		case ctx.Err() != nil:
			return stopped(ctx, timeout)
		default:
			return RunResult{Status: wire.StatusFailed, Reason: err.Error()}
		}
	case <-ctx.Done():
		t := time.NewTimer(killGrace)
		defer t.Stop()
		res := stopped(ctx, timeout)
		select {
		case <-done:
		case <-t.C:
			// A goroutine cannot be killed; its output is closed so it can no longer reach the caller.
			res.Reason = joinReason(res.Reason, fmt.Sprintf("the job did not stop within %s and was abandoned", killGrace))
		}
		return res
	}
}

func runSubprocess(ctx context.Context, timeout time.Duration, sp *subprocess, params map[string]string, w io.Writer, onGroup func(int) error) RunResult {
	c := exec.CommandContext(ctx, sp.binary, sp.argv(params)...)
	c.Env = commandEnv(sp.env)
	c.Dir = sp.dir
	c.Stdout = w // the same writer for both, so exec copies them through one pipe in order
	c.Stderr = w
	setProcessGroup(c)

	var stopAt atomic.Int64 // unix nanos of SIGTERM; 0 while not stopped
	c.Cancel = func() error {
		stopAt.Store(time.Now().UnixNano())
		return terminateGroup(c.Process)
	}
	// After a stop (or after the command exits), wait at most this long for the output to close; then
	// exec kills the command and closes the pipes itself, so Run returns even if a grandchild that left
	// the group keeps them open.
	c.WaitDelay = killGrace

	if err := c.Start(); err != nil {
		if ctx.Err() != nil {
			return stopped(ctx, timeout)
		}
		return RunResult{Status: wire.StatusFailed, Reason: fmt.Sprintf("start %s: %v", sp.binary, err)}
	}
	pgid := c.Process.Pid
	if onGroup != nil && processGroups {
		if err := onGroup(pgid); err != nil {
			killGroup(pgid)
			c.Wait()
			return RunResult{Status: wire.StatusFailed, Reason: fmt.Sprintf("stopped at once: its process group could not be recorded: %v", err)}
		}
	}
	err := c.Wait()

	if t := stopAt.Load(); t != 0 {
		// The leader is gone; members of its group that ignored SIGTERM get SIGKILL once the grace
		// period is over.
		deadline := time.Unix(0, t).Add(killGrace)
		for groupAlive(pgid) && time.Now().Before(deadline) {
			time.Sleep(25 * time.Millisecond)
		}
		killGroup(pgid)
		return stopped(ctx, timeout)
	}

	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return exited(0)
	case errors.As(err, &exitErr):
		if code := exitErr.ExitCode(); code >= 0 {
			r := exited(code)
			r.Status, r.Reason = wire.StatusFailed, fmt.Sprintf("exit status %d", code)
			return r
		}
		return RunResult{Status: wire.StatusFailed, Reason: "terminated: " + exitErr.ProcessState.String()}
	case errors.Is(err, exec.ErrWaitDelay):
		r := exited(0)
		r.Reason = fmt.Sprintf("exited 0, but processes it started kept its output open; stopped reading after %s", killGrace)
		return r
	default:
		return RunResult{Status: wire.StatusFailed, Reason: fmt.Sprintf("run %s: %v", sp.binary, err)}
	}
}

func exited(code int) RunResult {
	return RunResult{Status: wire.StatusSucceeded, ExitCode: &code}
}

// MinimalEnv is the environment of every program the agent starts, a command or a process a plan
// supervises: PATH, HOME, LANG, LC_ALL, TZ, USER, LOGNAME and TMPDIR copied from the agent, then
// extra ("KEY=value", a later key wins), so credentials in the agent's environment reach nobody.
func MinimalEnv(extra ...string) []string { return commandEnv(extra) }

func commandEnv(extra []string) []string {
	env := make([]string, 0, len(minimalEnvKeys)+len(extra))
	for _, k := range minimalEnvKeys {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		} else if k == "PATH" {
			env = append(env, "PATH="+fallbackPath)
		}
	}
	return append(env, extra...) // exec keeps the last value of a duplicate key
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// runOutput serialises writes to the caller's writer, splits them into pieces of at most
// wire.MaxChunkBytes (the largest chunk the agent uploads), and refuses writes once Run has returned.
// A failing writer does not fail the command: the command's effect on the host happened regardless, so
// the rest of its output is discarded and the loss is reported in the result's reason.
type runOutput struct {
	mu      sync.Mutex
	w       io.Writer
	closed  bool
	lost    error
	written int64
}

func (o *runOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, errOutputClosed
	}
	n := len(p)
	for len(p) > 0 && o.lost == nil {
		chunk := p[:min(len(p), wire.MaxChunkBytes)]
		m, err := o.w.Write(chunk)
		o.written += int64(m)
		if err == nil && m < len(chunk) {
			err = io.ErrShortWrite
		}
		if err != nil {
			o.lost = err
		}
		p = p[len(chunk):]
	}
	return n, nil
}

// close refuses further writes and reports how much reached the caller and why the rest did not.
func (o *runOutput) close() (written int64, lost error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	return o.written, o.lost
}
