package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// A release writes one queued marker and one envelope per agent; a store that fails between the two
// (or a hub that dies there) leaves a target queued with nothing in its inbox, and nothing would ever
// deliver it. So every release is written down first, as a small write-once object under
// releasing/<cmd>/<uuidv7>.json, and deleted once every envelope of it is written. The tick lists
// releasing/ and finishes what it finds: it writes the missing envelopes of queued targets (the
// envelope's key is the inbox entry named after the command, so writing it again is harmless) and
// releases the wave if it never started. A command that was cancelled, denied or expired meanwhile is
// left as it is. The list holds only releases in progress or interrupted, never every command, so the
// tick's cost does not grow with the history.
//
// Store requests: a release costs one PUT and one DELETE more than before (Create and an approval
// write theirs before their own record, so an interrupted create or approval is finished the same
// way). An idle tick costs one LIST of releasing/. An interrupted release costs, on the tick that
// finishes it, a fold of the command (two LISTs, plus one GET per approval), per queued target one
// GET of its queued marker and one of its inbox entry (plus, when that is missing, one GET of its
// delivered marker and one PUT),
// a second fold to release the rest of the wave, and one DELETE per release object.
const (
	// releaseRetryAfter is how old a release must be before the tick finishes it: the request that
	// started it is normally done within milliseconds, and finishing it twice costs a GET per target.
	releaseRetryAfter = 10 * time.Second
	// maxReleasesPerTick bounds one tick's listing (one page); the rest wait for the next ticks.
	maxReleasesPerTick = 1000
)

// intend writes down that a release of cmd is under way, before anything of it is written.
func (s *Service) intend(ctx context.Context, cmd string) (string, error) {
	key := layout.Release(cmd, uuid.Must(uuid.NewV7()).String())
	if _, err := store.CreateJSON(ctx, s.Store, key, map[string]any{"at": time.Now().UTC()}); err != nil {
		return "", fmt.Errorf("record release of command %s: %w", cmd, err)
	}
	return key, nil
}

// settle deletes a release that landed; one left behind is only finished (again) by the tick.
func (s *Service) settle(ctx context.Context, key string) {
	if key == "" {
		return
	}
	if err := s.Store.Delete(context.WithoutCancel(ctx), key); err != nil {
		s.Log.Warn("delete a finished release; the tick deletes it later", "key", key, "err", err)
	}
}

// envelope is what a release puts in an agent's inbox for a command.
func envelope(st *Status, agent string) wire.Envelope {
	body, _ := json.Marshal(wire.Command{CommandID: st.ID, Name: st.Command, Params: st.Params, TimeoutSeconds: st.TimeoutSeconds})
	return wire.Envelope{ID: st.ID, Agent: agent, IssuedAt: time.Now().UTC(), NotAfter: st.NotAfter, Issuer: st.Issuer, Kind: wire.KindCommand, Body: body}
}

// Tick finishes the releases that the requests which started them did not (a failed envelope write,
// a hub that died mid-release). The hub runs it every second, beside the workflow tick.
func (s *Service) Tick(ctx context.Context) { s.RetryReleases(ctx, releaseRetryAfter) }

// RetryReleases finishes every release in progress older than olderThan and returns how many
// commands it finished. A release that fails again stays listed for the next tick. Tick calls it; a
// test calls it with 0 so as not to wait.
func (s *Service) RetryReleases(ctx context.Context, olderThan time.Duration) int {
	page, err := s.Store.List(ctx, layout.Releasing, "", maxReleasesPerTick)
	if err != nil {
		s.Log.Warn("tick: list releases in progress", "err", err)
		return 0
	}
	now := time.Now()
	byCmd := map[string][]string{}
	var order []string
	for _, o := range page.Objects {
		if now.Sub(o.LastModified) < olderThan {
			continue
		}
		cmd, _, ok := strings.Cut(strings.TrimPrefix(o.Key, layout.Releasing), "/")
		if !ok || !layout.ValidID(cmd) {
			s.Store.Delete(ctx, o.Key) // not a key the hub writes
			continue
		}
		// Only a release the hub wrote down is finished: a planted one fails the integrity check.
		if _, err := store.ReadJSON(ctx, s.Store, o.Key, &struct{}{}); isNotFound(err) {
			s.Store.Delete(ctx, o.Key)
			continue
		} else if err != nil {
			s.Log.Warn("tick: read a release in progress", "key", o.Key, "err", err)
			continue
		}
		if byCmd[cmd] == nil {
			order = append(order, cmd)
		}
		byCmd[cmd] = append(byCmd[cmd], o.Key)
	}
	done := 0
	for _, cmd := range order {
		if err := s.finishRelease(ctx, cmd); err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("tick: finish the release of a command; retried at the next tick", "command", cmd, "err", err)
			}
			continue
		}
		for _, k := range byCmd[cmd] {
			s.settle(ctx, k)
		}
		done++
	}
	return done
}

// finishRelease writes the missing envelopes of a command's queued targets and releases what is due.
func (s *Service) finishRelease(ctx context.Context, cmd string) error {
	st, err := s.Status(ctx, cmd, false)
	var de *domain.Error
	if errors.As(err, &de) && de.Kind == domain.KindNotFound {
		return nil // a create that failed before its record (or a planted key): nothing to release
	} else if err != nil {
		return err
	}
	if st.Cancelled || st.Denied || st.Awaiting || time.Now().After(st.NotAfter) {
		return nil // nothing is delivered (yet, or any more): the fold says so, and an approval releases it
	}
	var written []string
	for _, a := range st.Agents {
		if a.State != "queued" {
			continue
		}
		ok, err := s.ensureEnvelope(ctx, st, a.Agent)
		if err != nil {
			return err
		}
		if ok {
			written = append(written, a.Agent)
		}
	}
	if len(written) > 0 {
		s.Log.Info("release finished by the tick", "command", cmd, "agents", len(written))
		s.Delivery.Ring(ctx, written)
		s.changed(ctx, cmd)
	}
	return s.Advance(ctx, cmd)
}

// ensureEnvelope writes a queued target's envelope unless it is in the inbox or was delivered: an
// envelope that is gone because the agent acknowledged it must not come back (the agent would refuse
// it as a replay). The poll records the delivery before it answers, and the agent acknowledges only
// after that answer, so the inbox is read first and the delivered marker second.
//
// The fold's "queued" comes from a listing, which a bucket writer can fake with any object under the
// marker's key; the hub signs an envelope only for a target whose queued marker it wrote itself (read
// through the integrity check), so a planted marker never makes the tick release work to an agent
// whose wave has not come or whose command awaits approval.
func (s *Service) ensureEnvelope(ctx context.Context, st *Status, agent string) (bool, error) {
	if _, err := store.ReadJSON(ctx, s.Store, layout.Marker(st.ID, agent, "queued"), &struct{}{}); isNotFound(err) {
		s.Log.Warn("tick: a queued marker the hub did not write; no envelope", "command", st.ID, "agent", agent)
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("read the queued marker of command %s on %s: %w", st.ID, agent, err)
	}
	if _, _, err := store.ReadAll(ctx, s.Store, layout.InboxEntry(agent, st.ID)); err == nil {
		return false, nil
	} else if !isNotFound(err) {
		return false, fmt.Errorf("read the inbox entry of command %s for %s: %w", st.ID, agent, err)
	}
	if _, err := store.ReadJSON(ctx, s.Store, layout.Marker(st.ID, agent, "delivered"), &struct{}{}); err == nil {
		return false, nil
	} else if !isNotFound(err) {
		return false, fmt.Errorf("read the delivered marker of command %s on %s: %w", st.ID, agent, err)
	}
	if err := s.Delivery.Enqueue(ctx, agent, st.ID, envelope(st, agent)); err != nil {
		return false, fmt.Errorf("enqueue command %s for %s: %w", st.ID, agent, err)
	}
	return true, nil
}
