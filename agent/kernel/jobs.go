package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/proc"
	"github.com/pulsehq/pulse/agent/state"
	"github.com/pulsehq/pulse/agent/wire"
)

// job is a command running on this agent.
type job struct {
	commandID  string
	envelopeID string
	cancel     context.CancelCauseFunc

	// The running notice waits RunningAfter: a command done by then says so with its result alone.
	mu       sync.Mutex
	finished bool
	notice   *time.Timer
}

// finish stops the pending running notice; from here on only the result speaks for the job.
func (j *job) finish() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.finished = true
	if j.notice != nil {
		j.notice.Stop()
	}
}

// rememberCancel is how long a cancel for a command that has not arrived yet is kept: the command's
// envelope may reach the agent after the cancel.
const rememberCancel = time.Hour

func commandPath(commandID, rest string) string {
	return "commands/" + url.PathEscape(commandID) + "/" + rest
}

// start launches an accepted command. The whitelist, the parameters and the hatch are checked here by
// the runner's own Admit, so a refused command sends no "running" notice. Like every refusal it is
// reported to the agent's rejections, and it also gets a "rejected" result so a genuine command does not
// wait forever; the rejection comes first because the result of a command the hub does not know is
// refused and parked, and the refusal must be seen all the same.
func (a *Agent) start(env wire.Envelope, inboxKey string, cmd wire.Command) error {
	log := a.log.With("envelope", env.ID, "commandId", cmd.CommandID, "command", cmd.Name)
	if err := a.set.Admit(cmd); err != nil {
		log.Warn("command rejected", "reason", err.Error())
		if rerr := a.reject(wire.Rejection{EnvelopeKey: inboxKey, EnvelopeID: env.ID, CommandID: cmd.CommandID, Reason: err.Error()}); rerr != nil {
			return rerr
		}
		return a.putResult(wire.Result{CommandID: cmd.CommandID, EnvelopeID: env.ID, Status: wire.StatusRejected,
			Reason: err.Error(), FinishedAt: time.Now().UTC()})
	}

	a.jobsMu.Lock()
	if _, running := a.jobs[cmd.CommandID]; running {
		a.jobsMu.Unlock()
		reason := fmt.Sprintf("command %s is already running on this agent", cmd.CommandID)
		log.Warn("envelope refused", "reason", reason)
		return a.reject(wire.Rejection{EnvelopeKey: inboxKey, EnvelopeID: env.ID, CommandID: cmd.CommandID, Reason: reason})
	}
	if _, ok := a.cancelled[cmd.CommandID]; ok {
		delete(a.cancelled, cmd.CommandID)
		a.jobsMu.Unlock()
		log.Info("command cancelled before it started")
		return a.putResult(wire.Result{CommandID: cmd.CommandID, EnvelopeID: env.ID, Status: wire.StatusCancelled,
			Reason: "cancelled before it started", FinishedAt: time.Now().UTC()})
	}
	ctx, cancel := context.WithCancelCause(a.jobsCtx)
	j := &job{commandID: cmd.CommandID, envelopeID: env.ID, cancel: cancel}
	a.jobs[cmd.CommandID] = j
	a.jobsWG.Add(1)
	a.jobsMu.Unlock()

	started := time.Now().UTC()
	marker := state.Job{CommandID: cmd.CommandID, EnvelopeID: env.ID, StartedAt: started}
	if err := a.st.SaveJob(marker); err != nil {
		a.forget(j)
		cancel(nil)
		a.jobsWG.Done()
		return fmt.Errorf("start command %s: %w", cmd.CommandID, err)
	}
	a.announceRunning(j, started, log)
	log.Info("command started", "issuer", env.Issuer)
	go a.runJob(ctx, j, cmd, marker, log)
	return nil
}

// announceRunning tells the hub the job runs, once it has run for RunningAfter: most commands finish
// sooner, and their result alone says everything (one store write on the hub instead of two). The job
// marker on disk, written before, is what makes a crash report the command either way.
func (a *Agent) announceRunning(j *job, started time.Time, log *slog.Logger) {
	notice := func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.finished {
			return
		}
		if err := a.enqueueJSON("running", j.commandID, commandPath(j.commandID, "running"), wire.Running{EnvelopeID: j.envelopeID, At: started}); err != nil {
			log.Warn("queueing the running notice; the result will say it ran", "err", err)
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.notice = time.AfterFunc(a.cfg.RunningAfter, notice)
}

func (a *Agent) forget(j *job) {
	a.jobsMu.Lock()
	if a.jobs[j.commandID] == j {
		delete(a.jobs, j.commandID)
	}
	a.jobsMu.Unlock()
}

// runJob runs the command, then queues its result. The job marker is removed only once the result is in
// the outbox; if that fails, the next start reports the command as failed.
func (a *Agent) runJob(ctx context.Context, j *job, cmd wire.Command, marker state.Job, log *slog.Logger) {
	defer a.jobsWG.Done()
	defer a.forget(j)
	defer j.cancel(nil)

	out := newChunker(a, marker, a.cfg.OutputFlush)
	res := a.set.Run(ctx, cmd, out, integration.OnProcessGroup(out.recordGroup))
	j.finish()
	marker, inline, outErr := out.close()

	reason := res.Reason
	if res.Status == wire.StatusCancelled {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			reason = cause.Error()
		}
	}
	if outErr != nil {
		reason = joinReason(reason, "output could not be stored: "+outErr.Error())
	}
	started := res.StartedAt
	if started.IsZero() {
		started = marker.StartedAt
	}
	r := wire.Result{
		CommandID: cmd.CommandID, EnvelopeID: j.envelopeID, Status: res.Status, ExitCode: res.ExitCode,
		Reason: reason, StartedAt: started.UTC(), FinishedAt: res.FinishedAt.UTC(),
		OutputBytes: marker.OutputBytes + int64(len(inline)), OutputChunks: marker.OutputChunks, Output: inline,
	}
	if r.FinishedAt.IsZero() {
		r.FinishedAt = time.Now().UTC()
	}
	if err := a.putResult(r); err != nil {
		log.Error("the result could not be stored; the next start reports the command as failed", "err", err)
		return
	}
	if err := a.st.EndJob(cmd.CommandID); err != nil {
		log.Error("removing the job marker", "err", err)
	}
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// cancel stops a running command with the issuer as the reason. A cancel for a command that has not
// arrived yet is remembered, so the command ends cancelled without running when it does.
func (a *Agent) cancel(env wire.Envelope, c wire.Cancel) {
	by := env.Issuer
	if by == "" {
		by = "the hub"
	}
	a.jobsMu.Lock()
	j, ok := a.jobs[c.CommandID]
	if !ok {
		a.cancelled[c.CommandID] = time.Now().Add(rememberCancel)
	}
	a.jobsMu.Unlock()
	if !ok {
		a.log.Info("cancel for a command that is not running (finished, or not arrived yet)", "commandId", c.CommandID, "by", by)
		return
	}
	a.log.Info("cancelling command", "commandId", c.CommandID, "by", by)
	j.cancel(fmt.Errorf("cancelled by %s", by))
}

// recoverJobs reports commands that a previous run started and never finished (crash, kill -9, power
// loss) as failed, so every command still ends in exactly one state. A subprocess outlives the agent
// that started it, so what is left of its process group is killed first: nothing keeps running that
// nobody supervises, and the result says what was done.
func (a *Agent) recoverJobs() {
	jobs, err := a.st.Jobs()
	if err != nil {
		a.log.Error("reading unfinished commands", "err", err)
		return
	}
	for _, j := range jobs {
		reason, killed := reapLeftover(j)
		if killed {
			a.log.Warn("killed the process group of a command the previous run did not finish", "commandId", j.CommandID, "pgid", j.ProcessGroup)
		}
		r := wire.Result{
			CommandID: j.CommandID, EnvelopeID: j.EnvelopeID, Status: wire.StatusFailed,
			Reason: reason, StartedAt: j.StartedAt, FinishedAt: time.Now().UTC(),
			OutputBytes: j.OutputBytes, OutputChunks: j.OutputChunks,
		}
		if err := a.putResult(r); err != nil {
			a.log.Error("reporting an unfinished command", "commandId", j.CommandID, "err", err)
			continue
		}
		a.st.EndJob(j.CommandID)
		a.log.Warn("reported a command the previous run did not finish as failed", "commandId", j.CommandID, "reason", reason)
	}
}

// reapLeftover kills what is left of the process group of a command a previous run did not finish and
// says what happened, in the words of the command's result. A group is killed only if it still exists
// and nothing shows that its number now belongs to someone else: a different boot, or a leader with
// the same pid but another start time.
func reapLeftover(j state.Job) (reason string, killed bool) {
	const incomplete = "; its output may be incomplete"
	pg := j.ProcessGroup
	if pg <= 1 || pg == proc.OwnGroup() { // no subprocess recorded (in-process job, or killed before it started)
		return "the agent stopped while the command was running (crash, kill or power loss)" + incomplete, false
	}
	if j.Leader != "" {
		boot, _, _ := strings.Cut(j.Leader, "/")
		if cur := proc.Boot(); cur != "" && cur != boot {
			return fmt.Sprintf("the host restarted while this ran; its process group %d ended with it", pg) + incomplete, false
		}
		if now, ok := proc.Identity(pg); ok && now != j.Leader {
			return fmt.Sprintf("the agent restarted while this ran; its process group %d had already ended (the number now belongs to another process, left alone)", pg) + incomplete, false
		}
	}
	if !proc.GroupExists(pg) {
		return fmt.Sprintf("the agent restarted while this ran; its process group %d had already ended, how is not known", pg) + incomplete, false
	}
	if err := proc.KillGroup(pg); err != nil {
		return fmt.Sprintf("the agent restarted while this ran; its process group %d could not be killed: %v", pg, err), false
	}
	return fmt.Sprintf("the agent restarted while this ran; its process group %d was killed", pg), true
}

// chunker cuts a command's output into chunks of at most wire.MaxChunkBytes and puts each into the
// outbox as soon as it is full, or after flushEvery while the command is quiet, so output can be watched
// live and a command of any output size never holds more than one chunk in memory.
type chunker struct {
	a      *Agent
	every  time.Duration
	mu     sync.Mutex
	buf    []byte
	marker state.Job
	err    error
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

var errChunkerClosed = errors.New("command output closed")

func newChunker(a *Agent, marker state.Job, every time.Duration) *chunker {
	c := &chunker{a: a, every: every, marker: marker, stop: make(chan struct{}), done: make(chan struct{})}
	go c.ticker()
	return c
}

func (c *chunker) ticker() {
	defer close(c.done)
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			if !c.closed && c.err == nil {
				c.flushLocked()
			}
			c.mu.Unlock()
		}
	}
}

// Write buffers p, flushing full chunks to the outbox. A full disk fails the write; the runner then
// discards the rest of the output and says so in the result.
func (c *chunker) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errChunkerClosed
	}
	if c.err != nil {
		return 0, c.err
	}
	written := 0
	for len(p) > 0 {
		k := min(wire.MaxChunkBytes-len(c.buf), len(p))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		written += k
		if len(c.buf) >= wire.MaxChunkBytes {
			if err := c.flushLocked(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (c *chunker) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	seq := c.marker.OutputChunks
	err := c.a.enqueue(state.Item{
		Kind: "output", CommandID: c.marker.CommandID, Method: http.MethodPut,
		Path:        commandPath(c.marker.CommandID, "output/"+strconv.Itoa(seq)),
		ContentType: "application/octet-stream", Body: c.buf,
	})
	if err != nil {
		c.err = err
		return err
	}
	c.marker.OutputChunks++
	c.marker.OutputBytes += int64(len(c.buf))
	c.buf = c.buf[:0]
	// The marker lets a result written after a crash say how many chunks exist; losing this update
	// only makes that count short, so it is logged, not fatal.
	if err := c.a.st.SaveJob(c.marker); err != nil {
		c.a.log.Warn("updating the job marker", "commandId", c.marker.CommandID, "err", err)
	}
	return nil
}

// recordGroup writes the command's process group into its job marker, before anything waits for the
// command (integration.OnProcessGroup): if the agent is killed from here on, the next start finds the
// group and kills it. An error makes the runner kill the group at once.
func (c *chunker) recordGroup(pgid int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.marker.ProcessGroup = pgid
	c.marker.Leader, _ = proc.Identity(pgid)
	return c.a.st.SaveJob(c.marker)
}

// close flushes what is left and returns the final counts and the first storage error, if any. Output
// of a command that ended before its first chunk was cut, and is small, is returned instead (inline),
// for the result to carry.
func (c *chunker) close() (_ state.Job, inline []byte, _ error) {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.marker.OutputChunks == 0 && len(c.buf) <= wire.MaxInlineOutput {
		inline = c.buf
		if len(inline) == 0 {
			inline = nil
		}
	} else if c.err == nil {
		c.flushLocked()
	}
	c.closed = true
	c.buf = nil
	return c.marker, inline, c.err
}
