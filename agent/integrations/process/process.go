// Package process is the built-in integration that owns the "process" unit type of plans: a
// long-running program the agent starts and supervises, without a shell, in a process group of its
// own, with its output in a log file in the agent's state directory. Only binaries the agent's config
// allows can run.
//
//	[process]
//	allow = ["/usr/bin/sleep", "/opt/app/bin/*"]   # absolute paths, or filepath.Match patterns
//	stop_grace = "10s"                             # SIGTERM, then SIGKILL after this long
//
// A unit's spec:
//
//	{"command": "/opt/app/bin/server", "args": ["--port", "8080"], "env": {"MODE": "prod"},
//	 "dir": "/srv/app", "restart": "always",
//	 "health": {"http": "http://127.0.0.1:8080/healthz"}}
//
// health is one of {"command": ["/abs/binary", "args"]}, {"tcp": "127.0.0.1:8080"} and
// {"http": "http://..."}; restart is always (default), on-failure or never.
//
// The processes outlive the agent: a restarted agent finds each by the record it keeps per unit (pid,
// start time from /proc, spec digest) and never starts a second one. A process that exits is reported
// at once to the kernel (Watch), which repairs it under enforce.
package process

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/proc"
	"github.com/pulsehq/pulse/agent/wire"
)

// ID is the integration's id and its config table.
const ID = "process"

// UnitType is the unit type it owns.
const UnitType = "process"

const (
	defaultStopGrace = 10 * time.Second
	// adoptedPoll is how often a process started by an earlier run of the agent is looked at: it is
	// not this agent's child, so its exit is not reported by wait.
	adoptedPoll = time.Second
	// maxLog is the size beyond which a unit's log is moved aside (to .1) when the process starts.
	maxLog = 10 << 20
)

func init() {
	integration.Register(integration.Module{ID: ID, New: func() integration.Integration { return newProcess() }})
}

// Process is the integration instance.
type Process struct {
	allow     []string
	stopGrace time.Duration
	dir       string // the integration's state directory: units/ (records, locks) and logs/
	http      *http.Client

	mu       sync.Mutex
	children map[string]*child  // unit -> the process this run of the agent started (its parent)
	ended    map[string]*record // unit -> how the last child reaped ended, until its record says so
	watched  map[string]string  // unit -> identity of an adopted process being polled
	changed  func(unit string)
}

// child is a process this agent started and reaps.
type child struct {
	pid      int
	done     chan struct{} // closed once reaped
	stopping bool          // stopped on purpose: its exit is no news (guarded by Process.mu)
}

var (
	_ integration.Integration    = (*Process)(nil)
	_ integration.Stateful       = (*Process)(nil)
	_ integration.Preconditioner = (*Process)(nil)
	_ integration.Reconciler     = (*Process)(nil)
	_ integration.Restarter      = (*Process)(nil)
	_ integration.Releaser       = (*Process)(nil)
	_ integration.Watcher        = (*Process)(nil)
)

func newProcess() *Process {
	return &Process{stopGrace: defaultStopGrace, http: newHealthClient(), children: map[string]*child{}, ended: map[string]*record{}, watched: map[string]string{}}
}

type config struct {
	Allow     []string `toml:"allow"`
	StopGrace string   `toml:"stop_grace"`
}

// Configure reads [process]: every allow entry is an absolute path or a valid pattern.
func (p *Process) Configure(raw map[string]any) error {
	var c config
	if err := integration.DecodeConfig(raw, &c); err != nil {
		return err
	}
	p.allow = nil
	for _, a := range c.Allow {
		if !filepath.IsAbs(a) {
			return fmt.Errorf("allow: %q is not an absolute path or pattern", a)
		}
		if _, err := filepath.Match(a, ""); err != nil {
			return fmt.Errorf("allow: %q: %w", a, err)
		}
		p.allow = append(p.allow, a)
	}
	if c.StopGrace != "" {
		d, err := time.ParseDuration(c.StopGrace)
		if err != nil || d <= 0 {
			return fmt.Errorf("stop_grace %q: want a positive duration such as \"10s\"", c.StopGrace)
		}
		p.stopGrace = d
	}
	return nil
}

// Enabled is true when at least one binary is allowed.
func (p *Process) Enabled() bool { return len(p.allow) > 0 }

// UseStateDir keeps the records and logs in the directory the agent gives.
func (p *Process) UseStateDir(dir string) error {
	for _, d := range []string{filepath.Join(dir, "units"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	p.dir = dir
	return nil
}

// Precondition refuses a host where the agent could not tell its processes from reused pids.
func (p *Process) Precondition(context.Context) error {
	if proc.Boot() == "" {
		return errors.New("supervising processes needs Linux's /proc (boot id and process start times) to tell them apart from reused pids")
	}
	return nil
}

// UnitTypes: process.
func (p *Process) UnitTypes() []string { return []string{UnitType} }

func (p *Process) allowed(bin string) bool {
	for _, a := range p.allow {
		if a == bin {
			return true
		}
		if ok, _ := filepath.Match(a, bin); ok {
			return true
		}
	}
	return false
}

// CheckUnit refuses a malformed spec and any binary (the command's or the health check's) the config
// does not allow.
func (p *Process) CheckUnit(u wire.Unit) error {
	_, err := parse(u, p.allowed)
	return err
}

// Watch keeps the kernel's callback for processes that exit.
func (p *Process) Watch(changed func(unit string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.changed = changed
}

func (p *Process) notify(unit string) {
	p.mu.Lock()
	fn := p.changed
	p.mu.Unlock()
	if fn != nil {
		fn(unit)
	}
}

// running reports whether the process a record names still runs, and has the kernel told when it
// stops.
func (p *Process) running(unit string, r *record) bool {
	if r == nil || !proc.Running(r.PID, r.Identity) {
		return false
	}
	p.watch(unit, r)
	return true
}

// Observe reads the unit's record and /proc: is that very process running, with this spec, and
// healthy? A process that exited is in its state only if its restart policy says it is done.
func (p *Process) Observe(ctx context.Context, u wire.Unit) (integration.Observation, error) {
	s, err := parse(u, p.allowed)
	if err != nil {
		return integration.Observation{}, err
	}
	r, err := p.load(u.Name)
	if err != nil {
		return integration.Observation{}, err
	}
	want := u.Digest()
	if r == nil {
		return integration.Observation{Detail: "not running"}, nil
	}
	if !p.running(u.Name, r) {
		r = p.withExit(u.Name, r)
		if done(s, r, want) {
			return integration.Observation{Digest: want, InState: true, Detail: fmt.Sprintf("exited (%s); restart policy %s", exitDesc(r), s.Restart)}, nil
		}
		return integration.Observation{Detail: fmt.Sprintf("not running (%s)", exitDesc(r))}, nil
	}
	if r.Digest != want {
		return integration.Observation{Digest: r.Digest, Detail: fmt.Sprintf("pid %d runs another spec", r.PID)}, nil
	}
	if s.Health != nil {
		if err := s.Health.probe(ctx, p.http); err != nil {
			return integration.Observation{Digest: want, Detail: fmt.Sprintf("pid %d runs, but its health check fails: %v", r.PID, err), WaitingOn: "health check"}, nil
		}
	}
	return integration.Observation{Digest: want, InState: true}, nil
}

// withExit completes the record of a process that ended with how it ended, when this agent is its
// parent and the record has not been updated yet (waiting a moment for a child that exited just now
// to be reaped).
func (p *Process) withExit(unit string, r *record) *record {
	if r.Exited != "" {
		return r
	}
	p.mu.Lock()
	c := p.children[unit]
	p.mu.Unlock()
	if c != nil && c.pid == r.PID {
		select {
		case <-c.done:
		case <-time.After(time.Second):
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.ended[unit]; e.same(r) {
		return e
	}
	return r
}

// done reports whether a process of the current spec that is no longer running needs nothing more.
func done(s spec, r *record, want string) bool {
	if r.Digest != want {
		return false
	}
	switch s.Restart {
	case RestartNever:
		return true
	case RestartOnFailure:
		return r.ExitCode != nil && *r.ExitCode == 0
	}
	return false
}

func exitDesc(r *record) string {
	if r.Exited != "" {
		return r.Exited
	}
	return "ended while no agent watched; how is not known"
}

// Apply brings the unit to its spec, doing only what differs: nothing for a healthy process of this
// spec; otherwise the process of an older spec (or an unhealthy one) is stopped, SIGTERM then SIGKILL
// after stop_grace, and the process is started and waited for until its health check passes (within
// ctx, the unit's deadline). A process started by an agent that was killed before writing it down is
// found by its environment and adopted, so none is ever started twice.
func (p *Process) Apply(ctx context.Context, u wire.Unit) error {
	return p.reconcile(ctx, u, false)
}

// Restart stops the unit's process and starts it again, because a unit it depends on changed.
func (p *Process) Restart(ctx context.Context, u wire.Unit) error {
	return p.reconcile(ctx, u, true)
}

func (p *Process) reconcile(ctx context.Context, u wire.Unit, restart bool) error {
	s, err := parse(u, p.allowed)
	if err != nil {
		return err
	}
	unlock, err := lockFile(p.lockPath(u.Name))
	if err != nil {
		return err
	}
	defer unlock()
	want := u.Digest()
	r, err := p.load(u.Name)
	if err != nil {
		return err
	}
	if !p.running(u.Name, r) {
		if found, err := p.findLost(u.Name, want); err != nil {
			return err
		} else if found != nil {
			r = found
		}
	}
	if p.running(u.Name, r) {
		if r.Digest == want && !restart {
			if s.Health == nil || s.Health.probe(ctx, p.http) == nil {
				return nil
			}
		}
		if err := p.stop(u.Name, r); err != nil {
			return err
		}
	} else if r != nil && !restart && done(s, p.withExit(u.Name, r), want) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err = p.start(u, s)
	if err != nil {
		return err
	}
	return p.waitHealthy(ctx, u.Name, s, r)
}

// Release stops the unit's process (no plan manages it any more) and forgets its record; its log stays.
func (p *Process) Release(_ context.Context, u wire.Unit) error {
	unlock, err := lockFile(p.lockPath(u.Name))
	if err != nil {
		return err
	}
	defer unlock()
	r, err := p.load(u.Name)
	if err != nil {
		return err
	}
	if !p.running(u.Name, r) {
		if r, err = p.findLost(u.Name, u.Digest()); err != nil {
			return err
		}
	}
	if r != nil && p.running(u.Name, r) {
		if err := p.stop(u.Name, r); err != nil {
			return err
		}
	}
	return p.forget(u.Name)
}

// markers are the environment entries that find a unit's processes again: which agent (by its state
// directory), which unit, which spec.
func (p *Process) markers(unit, digest string) []string {
	return []string{reservedEnv + "SUPERVISOR=" + p.dir, reservedEnv + "UNIT=" + unit, reservedEnv + "UNIT_DIGEST=" + digest}
}

// findLost looks for processes of the unit that no record names (the agent was killed between
// starting one and writing it down). One of the current spec is adopted and recorded; any other is
// stopped.
func (p *Process) findLost(unit, want string) (*record, error) {
	m := p.markers(unit, want)
	current := proc.WithEnv(m...)
	var adopted *record
	for _, pid := range proc.WithEnv(m[:2]...) {
		id, ok := proc.Identity(pid)
		if !ok {
			continue
		}
		r := &record{PID: pid, Identity: id}
		if adopted == nil && slices.Contains(current, pid) {
			r.Digest, r.StartedAt = want, time.Now().UTC()
			if err := p.save(unit, r); err != nil {
				return nil, err
			}
			adopted = r
			continue
		}
		if err := p.stop(unit, r); err != nil {
			return nil, err
		}
	}
	return adopted, nil
}

// start starts the unit's process, in a group of its own, with the minimal environment plus the
// spec's, stdin from /dev/null and output appended to the unit's log, and records it before anything
// else: if the record cannot be written the process is killed at once.
func (p *Process) start(u wire.Unit, s spec) (*record, error) {
	logPath := p.logPath(u.Name)
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > maxLog {
		os.Rename(logPath, logPath+".1")
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the log of unit %s: %w", u.Name, err)
	}
	defer logFile.Close() // the process has its own descriptor
	want := u.Digest()
	cmd := exec.Command(s.Command, s.Args...)
	cmd.Env = integration.MinimalEnv(append(s.environ(), p.markers(u.Name, want)...)...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setGroup(cmd)
	fmt.Fprintf(logFile, "--- %s pulse-agent: starting %s (unit %s, spec %s)\n", time.Now().UTC().Format(time.RFC3339), s.Command, u.Name, want)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logFile, "--- pulse-agent: start failed: %v\n", err)
		return nil, fmt.Errorf("start %s: %w", s.Command, err)
	}
	pid := cmd.Process.Pid
	id, ok := proc.Identity(pid)
	r := &record{PID: pid, Identity: id, Digest: want, StartedAt: time.Now().UTC()}
	if !ok {
		err = fmt.Errorf("start %s: /proc does not say when pid %d started, so it could not be told apart later", s.Command, pid)
	} else {
		err = p.save(u.Name, r)
	}
	if err != nil {
		proc.KillGroup(pid)
		cmd.Wait()
		return nil, fmt.Errorf("%w; the process was stopped at once", err)
	}
	c := &child{pid: pid, done: make(chan struct{})}
	p.mu.Lock()
	p.children[u.Name] = c
	p.mu.Unlock()
	go p.reap(u.Name, cmd, c, r)
	return r, nil
}

// reap waits for a child to exit, writes down how, ends what is left of its group and tells the kernel
// (unless the agent stopped it on purpose).
func (p *Process) reap(unit string, cmd *exec.Cmd, c *child, started *record) {
	err := cmd.Wait()
	// What it started dies with it, as under a service manager. While any member is left the group's
	// number cannot be handed to a new process; with none left this is a no-op (ESRCH).
	proc.KillGroup(c.pid)
	ended := *started
	ended.ExitedAt = time.Now().UTC()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		code := 0
		ended.ExitCode, ended.Exited = &code, "exit status 0"
	case errors.As(err, &exitErr) && exitErr.ExitCode() >= 0:
		code := exitErr.ExitCode()
		ended.ExitCode, ended.Exited = &code, fmt.Sprintf("exit status %d", code)
	case errors.As(err, &exitErr):
		ended.Exited = exitErr.ProcessState.String()
	default:
		ended.Exited = err.Error()
	}
	p.mu.Lock()
	p.ended[unit] = &ended
	stopping := c.stopping
	if p.children[unit] == c {
		delete(p.children, unit)
	}
	p.mu.Unlock()
	close(c.done)
	if unlock, err := lockFile(p.lockPath(unit)); err == nil {
		if cur, _ := p.load(unit); cur.same(started) {
			p.save(unit, &ended)
		}
		unlock()
	}
	if !stopping {
		p.notify(unit)
	}
}

// watch polls a process this agent did not start (an earlier run did) until it ends, then tells the
// kernel. A process this run started is reaped instead.
func (p *Process) watch(unit string, r *record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.children[unit]; c != nil && c.pid == r.PID {
		return
	}
	if p.watched[unit] == r.Identity {
		return
	}
	p.watched[unit] = r.Identity
	go func() {
		t := time.NewTicker(adoptedPoll)
		defer t.Stop()
		for range t.C {
			p.mu.Lock()
			still := p.watched[unit] == r.Identity
			p.mu.Unlock()
			if !still {
				return // stopped on purpose, or replaced
			}
			if !proc.Running(r.PID, r.Identity) {
				p.mu.Lock()
				if p.watched[unit] == r.Identity {
					delete(p.watched, unit)
				}
				p.mu.Unlock()
				p.notify(unit)
				return
			}
		}
	}()
}

// stop ends the process a record names and its group: SIGTERM, then SIGKILL after stop_grace.
func (p *Process) stop(unit string, r *record) error {
	p.mu.Lock()
	c := p.children[unit]
	if c != nil && c.pid == r.PID {
		c.stopping = true
	} else {
		c = nil
	}
	if p.watched[unit] == r.Identity {
		delete(p.watched, unit)
	}
	p.mu.Unlock()
	gone := func() bool {
		if c != nil {
			select {
			case <-c.done:
				return true
			default:
				return false
			}
		}
		return !proc.Running(r.PID, r.Identity)
	}
	if err := proc.TerminateGroup(r.PID); err != nil {
		return fmt.Errorf("stop pid %d: %w", r.PID, err)
	}
	if waitFor(gone, p.stopGrace) {
		proc.KillGroup(r.PID) // members that outlived their leader
		return nil
	}
	if err := proc.KillGroup(r.PID); err != nil {
		return fmt.Errorf("stop pid %d: %w", r.PID, err)
	}
	if !waitFor(gone, 5*time.Second) {
		return fmt.Errorf("pid %d did not stop, even on SIGKILL", r.PID)
	}
	return nil
}

func waitFor(cond func() bool, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// waitHealthy waits until the health check of a just started process passes, retrying with a growing
// pause, until ctx (the unit's deadline) ends; the error then carries the check's last failure. A
// process that exits meanwhile fails at once.
func (p *Process) waitHealthy(ctx context.Context, unit string, s spec, r *record) error {
	if s.Health == nil {
		return nil
	}
	pause := 100 * time.Millisecond
	for {
		if !proc.Running(r.PID, r.Identity) {
			return fmt.Errorf("exited before its health check passed (%s)", exitDesc(p.withExit(unit, r)))
		}
		err := s.Health.probe(ctx, p.http)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("health check: %w", err)
		case <-time.After(pause):
		}
		pause = min(pause*2, 2*time.Second)
	}
}
