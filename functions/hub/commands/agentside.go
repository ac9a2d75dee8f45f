package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/events"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
)

// What agents report about the commands they were given: delivery (recorded by the poll), start,
// output chunks and the final result. Each is a write-once object under a key derived from the command
// and the agent, so a report repeated after a lost answer changes nothing.

// MarkDelivered records that command envelopes reached the agent. It is the delivery room's Delivered
// hook; envelopes that are not commands of this hub are left for the agent to reject and report. The
// inbox is the one part of the bucket the hub does not MAC (the agent checks the envelope's signature
// itself), so a bucket writer can copy an envelope into another agent's inbox: a delivery is recorded
// only for an envelope the hub signed for this agent and command, and only when the command was
// released to the agent (releasedTo). Anything else writes nothing; the agent refuses it and says so.
func (s *Service) MarkDelivered(ctx context.Context, agent string, envs []wire.SignedEnvelope) {
	for _, se := range envs {
		cmd := strings.TrimSuffix(se.InboxKey, ".json")
		if !layout.ValidID(cmd) || strings.HasSuffix(cmd, "-cancel") {
			continue
		}
		rec, err := s.Get(ctx, cmd)
		if err != nil {
			continue // not ours: the agent will reject and report it
		}
		if time.Now().After(rec.NotAfter) {
			continue // too late to deliver: the agent refuses it, and the target stays as it was (or expired)
		}
		if env, err := se.Verify(s.Keys.Public()); err != nil || env.Agent != agent || env.ID != cmd || env.Kind != wire.KindCommand {
			s.Log.Warn("delivery not recorded: the envelope is not the hub's for this agent and command", "command", cmd, "agent", agent, "addressee", env.Agent, "err", err)
			continue
		}
		if _, err := s.releasedTo(ctx, cmd, agent); err != nil {
			continue // not a target, or not released to it (releasedTo logs why)
		}
		created, err := store.CreateJSON(context.WithoutCancel(ctx), s.Store, layout.Marker(cmd, agent, "delivered"), map[string]any{"at": time.Now().UTC()})
		if err != nil {
			s.Log.Warn("record delivery", "command", cmd, "agent", agent, "err", err)
			continue
		}
		if created { // a redelivery before the agent's ack changes nothing watchers need to see
			s.changed(ctx, cmd)
		}
	}
}

// Running records that an agent started a command released to it.
func (s *Service) Running(ctx context.Context, agent, cmd string, r wire.Running) error {
	rec, err := s.releasedTo(ctx, cmd, agent)
	if err != nil {
		return err
	}
	if err := s.lateReport(ctx, rec, agent); err != nil {
		return err
	}
	created, err := store.CreateJSON(ctx, s.Store, layout.Marker(cmd, agent, "running"), r)
	if created {
		s.changed(ctx, cmd)
	}
	return err
}

// Chunk stores one chunk of an agent's output of a command released to it; a chunk uploaded again is
// harmless.
func (s *Service) Chunk(ctx context.Context, agent, cmd string, seq int, b []byte) error {
	if len(b) > wire.MaxChunkBytes {
		return domain.TooLarge("chunk of %d bytes; at most %d", len(b), wire.MaxChunkBytes)
	}
	if _, err := s.releasedTo(ctx, cmd, agent); err != nil {
		return err
	}
	_, err := store.PutBytes(ctx, s.Store, layout.Chunk(cmd, agent, seq), b, store.PutOptions{CreateOnly: true, ContentType: "application/octet-stream"})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return nil
}

// Result stores an agent's final result of a command released to it, then tells whoever listens (the workflow runtime) and
// releases the next wave. It returns once the result is stored; follow-up work of other rooms runs
// outside the request.
func (s *Service) Result(ctx context.Context, agent string, res wire.Result) error {
	if !res.Status.Final() {
		return &domain.Error{Kind: domain.KindInvalid, Field: "body.status", Msg: fmt.Sprintf("status %q is not a final state", res.Status)}
	}
	rec, err := s.releasedTo(ctx, res.CommandID, agent)
	if err != nil {
		return err
	}
	if err := s.lateReport(ctx, rec, agent); err != nil {
		return err
	}
	if res.OutputChunks < 0 || res.OutputBytes < 0 {
		return domain.Invalid("output counts must not be negative")
	}
	res.Reason = wire.CapReason(res.Reason) // one sentence, not a megabyte in the bucket
	created, err := store.CreateJSON(ctx, s.Store, layout.Result(res.CommandID, agent), res)
	if err != nil {
		return err
	}
	if created {
		s.Log.Info("result", "command", res.CommandID, "agent", agent, "status", res.Status, "exit", res.ExitCode)
	}
	// The marker lets a listing tell the state without reading the result. Written (and the wave
	// advanced) on every upload, repeats included: the first attempt may have died in between.
	stored := res
	if !created { // a repeat: the marker must name the status that was stored first
		if _, err := store.ReadJSON(ctx, s.Store, layout.Result(res.CommandID, agent), &stored); err != nil {
			return err
		}
	}
	if _, err := store.CreateJSON(ctx, s.Store, layout.Marker(res.CommandID, agent, "final-"+string(stored.Status)), map[string]any{"at": time.Now().UTC()}); err != nil {
		return err
	}
	s.changed(ctx, res.CommandID)
	s.Bus.Results.Publish(ctx, events.ResultStored{Command: rec.ID, Agent: agent, Status: string(stored.Status), ExitCode: stored.ExitCode,
		Execution: rec.Execution, Step: rec.Step, Attempt: rec.Attempt})
	if rec.MaxConcurrency > 0 && len(rec.Targets) > rec.MaxConcurrency {
		if err := s.Advance(ctx, res.CommandID); err != nil {
			return err
		}
	}
	return nil
}

// Output is raw output bytes of one agent from a chunk on, with where to continue.
type Output struct {
	Bytes     []byte
	NextChunk int
	// Complete is true when the result is stored and every chunk has been returned.
	Complete bool
	State    string
}

// Output reads up to max chunks of an agent's output (by id or name) from chunk from on.
func (s *Service) Output(ctx context.Context, cmd, agent string, from, max int) (*Output, error) {
	st, err := s.Status(ctx, cmd, false)
	if err != nil {
		return nil, err
	}
	var as *AgentState
	for i := range st.Agents {
		if st.Agents[i].Agent == agent || st.Agents[i].Name == agent {
			as = &st.Agents[i]
		}
	}
	if as == nil {
		return nil, domain.NotFound("agent %q is not a target of command %s", agent, cmd)
	}
	if max == 0 {
		max = 16
	}
	out := &Output{NextChunk: from, State: as.State}
	for seq := from; seq < from+max; seq++ {
		b, _, err := store.ReadAll(ctx, s.Store, layout.Chunk(cmd, as.Agent, seq))
		if errors.Is(err, signed.ErrTampered) {
			return nil, domain.Conflict("chunk %d of %s's output of command %s was tampered with: it fails the hub's integrity check (edited or planted in the bucket; see pulse doctor)", seq, as.Agent, cmd)
		}
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		out.Bytes = append(out.Bytes, b...)
		out.NextChunk = seq + 1
	}
	var res wire.Result
	_, err = store.ReadJSON(ctx, s.Store, layout.Result(cmd, as.Agent), &res)
	switch {
	case err == nil && out.NextChunk >= res.OutputChunks:
		out.Complete = true
	case errors.Is(err, store.ErrNotFound) && FinalState(as.State):
		out.Complete = true // expired or never released: no output will come
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return out, nil
}
