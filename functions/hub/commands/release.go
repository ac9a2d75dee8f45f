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

// A release writes one wave record (which agents it released) and one delivery (their signed
// envelope); a store that fails between the two (or a hub that dies there) leaves targets queued with
// no envelope, and nothing would ever deliver it. So every release is written down first, as a small
// write-once object under releasing/<cmd>/<uuidv7>.json, and deleted once its delivery is stored. The
// tick lists releasing/ and finishes what it finds: it posts the delivery of every wave of the command
// again (create-only under the wave's delivery key, so a delivery that landed is left as it is) and
// releases the next wave if it never started. A command that was cancelled, denied or expired
// meanwhile is left as it is. The list holds only releases in progress or interrupted, never every
// command, so the tick's cost does not grow with the history.
//
// Store requests: a release costs one PUT and one DELETE of its releasing/ record, per command, not
// per agent (Create and an approval write theirs before their own record, so an interrupted create or
// approval is finished the same way). An idle tick costs one LIST of releasing/. An interrupted
// release costs, on the tick that finishes it, a fold of the command (two LISTs), one create-only PUT
// per wave, a second fold to release the rest, and one DELETE per release object.
const (
	// releaseRetryAfter is how old a release must be before the tick finishes it: the request that
	// started it is normally done within milliseconds, and finishing it twice costs a fold and a PUT
	// per wave.
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

// envelope is what a release delivers for a command; the delivery room addresses it.
func envelope(st *Status) wire.Envelope {
	body, _ := json.Marshal(wire.Command{CommandID: st.ID, Name: st.Command, Params: st.Params, TimeoutSeconds: st.TimeoutSeconds})
	return wire.Envelope{ID: st.ID, IssuedAt: time.Now().UTC(), NotAfter: st.NotAfter, Issuer: st.Issuer, Kind: wire.KindCommand, Body: body}
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

// finishRelease posts the delivery of every wave of a command again (a delivery that landed is left
// as it is) and releases what is due.
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
	// Only waves the hub wrote are delivered: a planted one fails the integrity check and reads as
	// missing, so it never makes the tick release work to an agent whose wave has not come.
	for i, k := range st.waveKeys {
		w := st.firstWave()
		if i > 0 || !st.releasesAtOnce() {
			if w, err = s.waves.Get(ctx, s.Store, k); err != nil {
				return fmt.Errorf("read wave %s: %w", k, err)
			}
		}
		if _, err := s.Delivery.Post(ctx, w.Delivery, cmd, w.Agents, envelope(st)); err != nil {
			return fmt.Errorf("deliver wave %s: %w", k, err)
		}
	}
	return s.Advance(ctx, cmd)
}
