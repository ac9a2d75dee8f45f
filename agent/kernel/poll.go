package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/state"
	"github.com/pulsehq/pulse/agent/wire"
)

const (
	// pollMargin is added to the hub's hold so a held poll is never cut short by the agent itself.
	pollMargin = 15 * time.Second
	// maxHold caps what a confused hub can make the agent wait for.
	maxHold = 15 * time.Minute
	// minEmptyPoll keeps a hub that answers empty polls at once (and says to come back at once) from
	// turning the agent into a busy loop.
	minEmptyPoll = 200 * time.Millisecond
)

// pollLoop long-polls until ctx ends. Each poll carries the acknowledgements owed so far; they are
// dropped only when the hub has accepted the poll that carried them.
func (a *Agent) pollLoop(ctx context.Context) {
	hold := a.cfg.FirstHold
	b := backoff{min: a.cfg.RetryMin, max: a.cfg.RetryMax}
	for ctx.Err() == nil {
		acks := a.acks.list()
		start := time.Now()
		var resp wire.PollResponse
		err := a.hub.postJSON(ctx, "poll", a.hub.agentURL("poll"), wire.PollRequest{Ack: acks}, &resp, hold+pollMargin, true)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.pollHealth.fail("poll", err)
			var he *HubError
			if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
				a.log.Debug("poll signature refused", "detail", he.Detail)
			}
			sleep(ctx, b.next())
			continue
		}
		a.pollHealth.ok()
		b.reset()
		a.acks.remove(acks)
		if resp.HoldSeconds > 0 {
			hold = min(time.Duration(resp.HoldSeconds)*time.Second, maxHold)
		}
		a.updateHubKeys(resp.HubKeys, resp.HubKeySignatures)
		a.metrics.watch(time.Duration(resp.MetricsEverySeconds)*time.Second, 2*hold+pollMargin)
		for _, se := range resp.Envelopes {
			a.handle(se)
		}
		next := time.Duration(resp.NextPollMillis) * time.Millisecond
		if len(resp.Envelopes) == 0 && len(acks) == 0 {
			next = max(next, minEmptyPoll-time.Since(start))
		}
		sleep(ctx, next)
	}
}

// updateHubKeys follows a key rotation announced by the hub and makes it survive a restart. The poll
// answer itself is not signed, so a new key set is adopted only if a key the agent already trusts
// endorsed it: whoever can tamper with the connection still cannot slip in a key of their own.
func (a *Agent) updateHubKeys(keys []wire.HubKey, sigs []wire.KeySignature) {
	if len(keys) == 0 {
		return
	}
	a.idMu.Lock()
	defer a.idMu.Unlock()
	if state.SameKeys(a.id.HubKeys, usableKeys(keys)) {
		return
	}
	if _, err := wire.VerifyKeySet(a.id.HubKeys, keys, sigs); err != nil {
		fp := keyIDs(keys)
		if fp != a.refusedKeySet { // once per offered set, not once per poll
			a.refusedKeySet = fp
			a.log.Warn("the hub offered new signing keys without an endorsement by a key this agent trusts; keeping the current keys",
				"offered", fp, "err", err)
		}
		return
	}
	id := a.id
	id.HubKeys = usableKeys(keys)
	if len(id.HubKeys) == 0 {
		return
	}
	if err := a.st.SaveIdentity(id); err != nil {
		a.log.Error("storing rotated hub keys failed; using them until restart", "err", err)
	}
	a.id = id
	a.refusedKeySet = ""
	a.log.Info("hub signing keys updated", "keys", keyIDs(id.HubKeys))
}

func keyIDs(keys []wire.HubKey) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.KeyID
	}
	return strings.Join(ids, ",")
}

// handle decides about one envelope: run it, or report why not. Either way, once what it caused is on
// disk, its inbox key is queued for acknowledgement. An envelope that could not be secured (disk error)
// is not acknowledged, so the hub delivers it again.
func (a *Agent) handle(se wire.SignedEnvelope) {
	<-a.recovered
	log := a.log.With("inboxKey", se.InboxKey)
	if se.InboxKey != "" {
		// Handled already and only waiting for our acknowledgement to reach the hub: not a replay.
		if a.acks.has(se.InboxKey) {
			log.Debug("envelope delivered again before its acknowledgement arrived; skipped")
			return
		}
	}
	if err := a.decide(se, log); err != nil {
		log.Error("envelope not secured; it will be delivered again", "err", err)
		return
	}
	a.acks.add(se.InboxKey)
}

// pendingAcks are the delivery names of envelopes handled (what they caused is on disk) and not yet
// acknowledged to the hub. They live in memory, costing no disk write per envelope: an agent that
// restarts before its next poll is offered them again and acknowledges them without acting, because
// its replay record keeps each accepted envelope's digest.
type pendingAcks struct {
	mu   sync.Mutex
	keys []string
}

func (p *pendingAcks) add(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if key != "" && !slices.Contains(p.keys, key) {
		p.keys = append(p.keys, key)
	}
}

func (p *pendingAcks) has(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.keys, key)
}

// list is a copy of the pending keys, for a poll to carry.
func (p *pendingAcks) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.keys)
}

// remove drops keys the hub has confirmed (the poll carrying them succeeded).
func (p *pendingAcks) remove(keys []string) {
	if len(keys) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = slices.DeleteFunc(p.keys, func(k string) bool { return slices.Contains(keys, k) })
}

func (a *Agent) decide(se wire.SignedEnvelope, log *slog.Logger) error {
	id := a.identity()
	env, err := se.Verify(id.HubKeys)
	if err != nil {
		log.Warn("envelope refused: signature", "err", err, "keyId", se.KeyID)
		return a.reject(wire.Rejection{EnvelopeKey: se.InboxKey, Reason: err.Error()})
	}
	if !env.AddressedTo(id.AgentID) {
		err := fmt.Errorf("%w (%s)", wire.ErrWrongAgent, env.Addressees())
		log.Warn("envelope refused", "envelope", env.ID, "err", err)
		return a.reject(wire.Rejection{EnvelopeKey: se.InboxKey, EnvelopeID: env.ID, Reason: err.Error()})
	}
	if env.Kind == wire.KindPlan {
		// A plan is not run once but held and reconciled; its version, not the replay record, keeps
		// an older one from coming back.
		return a.plans.receive(se, env, log)
	}
	cmdID := commandIDOf(env)
	digest := payloadDigest(se.Payload)
	if was, seen := a.st.Seen(env.ID); seen && was == digest {
		// The very envelope this agent accepted, offered again: hubs may hand a shared envelope out more
		// than once (after a restart, from another instance). Nothing runs; it is acknowledged quietly.
		log.Debug("envelope already accepted; acknowledged again", "envelope", env.ID)
		return nil
	} else if seen {
		reason := fmt.Sprintf("replay: envelope %s was already accepted; refusing to act on it again", env.ID)
		log.Warn("envelope refused", "envelope", env.ID, "err", reason)
		return a.reject(wire.Rejection{EnvelopeKey: se.InboxKey, EnvelopeID: env.ID, CommandID: cmdID, Reason: reason})
	}
	if err := env.Check(id.AgentID, time.Now(), a.cfg.ClockSkew); err != nil {
		log.Warn("envelope refused", "envelope", env.ID, "err", err)
		// Always reported against the agent; a genuine command also gets its final state, so the
		// command does not wait forever. (A result for a command the hub does not know is parked.)
		if rerr := a.reject(wire.Rejection{EnvelopeKey: se.InboxKey, EnvelopeID: env.ID, CommandID: cmdID, Reason: err.Error()}); rerr != nil {
			return rerr
		}
		if env.Kind == wire.KindCommand && cmdID != "" {
			now := time.Now().UTC()
			return a.putResult(wire.Result{CommandID: cmdID, EnvelopeID: env.ID, Status: wire.StatusRejected, Reason: err.Error(), FinishedAt: now})
		}
		return nil
	}
	// From here on the envelope is genuine, ours and current: remember it before acting on it.
	if err := a.st.Record(env.ID, env.NotAfter, digest); err != nil {
		return err
	}
	switch env.Kind {
	case wire.KindCommand:
		var cmd wire.Command
		if err := json.Unmarshal(env.Body, &cmd); err != nil || cmd.CommandID == "" {
			reason := "malformed command body"
			if err != nil {
				reason += ": " + err.Error()
			} else {
				reason += ": no commandId"
			}
			return a.reject(wire.Rejection{EnvelopeKey: se.InboxKey, EnvelopeID: env.ID, Reason: reason})
		}
		return a.start(env, se.InboxKey, cmd)
	case wire.KindCancel:
		var c wire.Cancel
		if err := json.Unmarshal(env.Body, &c); err != nil || c.CommandID == "" {
			return a.reject(wire.Rejection{EnvelopeKey: se.InboxKey, EnvelopeID: env.ID, Reason: "malformed cancel body"})
		}
		a.cancel(env, c)
		return nil
	}
	return a.reject(wire.Rejection{EnvelopeKey: se.InboxKey, EnvelopeID: env.ID, Reason: fmt.Sprintf("unsupported kind %q", env.Kind)})
}

// payloadDigest identifies an envelope's signed bytes in the replay record.
func payloadDigest(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}

// commandIDOf reads the command id from a verified envelope's body, for reports; "" if there is none.
func commandIDOf(env wire.Envelope) string {
	var b struct {
		CommandID string `json:"commandId"`
	}
	if json.Unmarshal(env.Body, &b) != nil {
		return ""
	}
	return b.CommandID
}

func (a *Agent) reject(r wire.Rejection) error {
	r.At = time.Now().UTC()
	return a.enqueueJSON("rejection", r.CommandID, "rejections", r)
}

func (a *Agent) putResult(r wire.Result) error {
	return a.enqueueJSON("result", r.CommandID, "results", r)
}

// enqueueJSON puts one report into the outbox and wakes the uploader.
func (a *Agent) enqueueJSON(kind, commandID, path string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", kind, err)
	}
	return a.enqueue(state.Item{Kind: kind, CommandID: commandID, Method: http.MethodPost, Path: path, ContentType: "application/json", Body: body})
}

func (a *Agent) enqueue(it state.Item) error {
	if _, err := a.st.Outbox().Put(it); err != nil {
		return err
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}
