package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/events"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
)

// What agents report about the commands they were given: start (for a command still running after a
// second), output chunks and the final result, which carries a short command's whole output. Each is a
// write-once object under a key derived from the command and the agent, so a report repeated after a
// lost answer changes nothing. Delivery itself writes nothing: the agent's first report says it.

// Running records that an agent started a command released to it.
func (s *Service) Running(ctx context.Context, agent, cmd string, r wire.Running) error {
	rec, err := s.releasedTo(ctx, cmd, agent)
	if err != nil {
		return err
	}
	if err := s.lateReport(ctx, rec, agent); err != nil {
		return err
	}
	s.Delivery.Done(agent, cmd)
	created, err := store.CreateJSON(ctx, s.Store, layout.Running(cmd, agent), r)
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
	if len(res.Output) > wire.MaxInlineOutput || len(res.Output) > 0 && res.OutputChunks > 0 {
		return domain.Invalid("inline output of %d bytes beside %d chunks: at most %d bytes, and only without chunks", len(res.Output), res.OutputChunks, wire.MaxInlineOutput)
	}
	s.Delivery.Done(agent, res.CommandID)
	created, err := store.CreateJSON(ctx, s.Store, layout.Result(res.CommandID, agent), res)
	if err != nil {
		return err
	}
	stored := &res
	if created {
		s.Log.Info("result", "command", res.CommandID, "agent", agent, "status", res.Status, "exit", res.ExitCode)
		s.keepResult(res.CommandID, agent, stored)
	} else if stored, err = s.result(ctx, res.CommandID, agent); err != nil {
		return err // a repeat: what counts is the result stored first
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

// Output reads up to max chunks of an agent's output (by id or name) from chunk from on. A finished
// agent's output costs a read of its result (and of the chunks): only an agent still at work costs a
// fold of the command, for its state.
func (s *Service) Output(ctx context.Context, cmd, agent string, from, max int) (*Output, error) {
	rec, err := s.Get(ctx, cmd)
	if err != nil {
		return nil, err
	}
	id := ""
	for _, t := range rec.Targets {
		if t == agent || s.Fleet.Name(ctx, t) == agent {
			id = t
			break
		}
	}
	if id == "" {
		return nil, domain.NotFound("agent %q is not a target of command %s", agent, cmd)
	}
	if max == 0 {
		max = 16
	}
	out := &Output{NextChunk: from}
	res, err := s.readResult(ctx, cmd, id)
	switch {
	case errors.Is(err, signed.ErrTampered):
		return nil, domain.Conflict("the result of %s for command %s was tampered with: it fails the hub's integrity check, so its output cannot be trusted (see pulse doctor)", id, cmd)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	case err == nil:
		out.State = string(res.Status)
		if res.OutputChunks == 0 { // done before its first chunk: the whole output is in the result, as chunk 0
			if from == 0 && len(res.Output) > 0 {
				out.Bytes, out.NextChunk = res.Output, 1
			}
			out.Complete = true
			return out, nil
		}
	default:
		st, err := s.Status(ctx, cmd, false)
		if err != nil {
			return nil, err
		}
		out.State = st.state(id)
	}
	as := &AgentState{Agent: id, State: out.State}
	stored := err == nil
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
	switch {
	case stored && out.NextChunk >= res.OutputChunks:
		out.Complete = true
	case !stored && FinalState(as.State):
		out.Complete = true // expired or never released: no output will come
	}
	return out, nil
}
