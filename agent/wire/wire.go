// Package wire defines what travels between the hub and the agent: signed work envelopes, the command
// catalog an agent advertises, enrollment, polls, heartbeats and results. It lives on the agent's side
// because the agent is the party that must refuse anything malformed; the hub imports it to produce
// exactly what the agent will accept, and both validate parameters with the same code.
package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind says what an envelope asks for.
type Kind string

const (
	// KindCommand runs a command from the agent's catalog.
	KindCommand Kind = "command"
	// KindCancel cancels a running command.
	KindCancel Kind = "cancel"
)

// Envelope is one unit of work for one agent, or for many: the same command released to a thousand
// agents is signed and stored once, naming them all in Agents, instead of once per agent. Every field is
// covered by the hub's signature, so an addressee list cannot be extended without the hub's key.
type Envelope struct {
	// ID is unique per envelope; the agent records every ID it accepts until NotAfter, so a replayed
	// envelope is refused.
	ID string `json:"id"`
	// Agent is the one addressee of a single-agent envelope; Agents the addressees of a shared one.
	// Exactly one of the two is set.
	Agent    string          `json:"agent,omitempty"`
	Agents   []string        `json:"agents,omitempty"`
	IssuedAt time.Time       `json:"issuedAt"`
	NotAfter time.Time       `json:"notAfter"`
	Issuer   string          `json:"issuer"`
	Kind     Kind            `json:"kind"`
	Body     json.RawMessage `json:"body"`
}

// SignedEnvelope carries the exact bytes that were signed, so no canonical JSON form is needed: the agent
// verifies Payload, then decodes it.
type SignedEnvelope struct {
	Payload   []byte `json:"payload"`
	KeyID     string `json:"keyId"`
	Signature []byte `json:"signature"`
	// InboxKey names the delivery the envelope came in, so the agent can acknowledge it and report a
	// forged one (the name is kept from when deliveries were per-agent inboxes). It is transport
	// information and is not signed.
	InboxKey string `json:"inboxKey,omitempty"`
}

// signingContext separates envelope signatures from anything else the hub key might ever sign.
const signingContext = "pulse-envelope-v1\n"

// HubKey is a public key the hub signs envelopes with. During a rotation the agent holds two.
type HubKey struct {
	KeyID     string `json:"keyId"`
	PublicKey []byte `json:"publicKey" doc:"ed25519 public key, 32 bytes"`
}

// KeyIDFor derives a short, stable key id from a public key, so ids never collide across rotations.
func KeyIDFor(pub ed25519.PublicKey) string {
	return fmt.Sprintf("ed25519:%x", []byte(pub)[:8])
}

// Sign signs env with the hub's private key.
func Sign(env Envelope, keyID string, priv ed25519.PrivateKey) (SignedEnvelope, error) {
	if err := env.validShape(); err != nil {
		return SignedEnvelope{}, err
	}
	// Without HTML escaping, the body is signed as it was given but for white space: Marshal would
	// turn "&" into "\u0026" (found by FuzzVerifyEnvelope), the same JSON in other bytes.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		return SignedEnvelope{}, fmt.Errorf("sign envelope %s: %w", env.ID, err)
	}
	payload := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	sig := ed25519.Sign(priv, append([]byte(signingContext), payload...))
	return SignedEnvelope{Payload: payload, KeyID: keyID, Signature: sig}, nil
}

// Rejection reasons an agent reports. They are stable strings the hub and dashboard show.
var (
	ErrBadSignature = errors.New("bad signature")
	ErrUnknownKey   = errors.New("signed with an unknown hub key")
	ErrMalformed    = errors.New("malformed envelope")
	ErrWrongAgent   = errors.New("addressed to another agent")
	ErrExpired      = errors.New("expired")
	ErrNotYetValid  = errors.New("issued in the future")
)

// Verify checks the signature against the hub keys the agent trusts and decodes the envelope. It checks
// nothing else; Envelope.Check does the rest.
func (s SignedEnvelope) Verify(keys []HubKey) (Envelope, error) {
	var key ed25519.PublicKey
	for _, k := range keys {
		if k.KeyID == s.KeyID && len(k.PublicKey) == ed25519.PublicKeySize {
			key = k.PublicKey
		}
	}
	if key == nil {
		return Envelope{}, fmt.Errorf("%w %q", ErrUnknownKey, s.KeyID)
	}
	if !ed25519.Verify(key, append([]byte(signingContext), s.Payload...), s.Signature) {
		return Envelope{}, ErrBadSignature
	}
	var env Envelope
	if err := json.Unmarshal(s.Payload, &env); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := env.validShape(); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

func (e Envelope) validShape() error {
	switch {
	case e.ID == "" || len(e.ID) > 128:
		return fmt.Errorf("%w: id must be 1-128 characters", ErrMalformed)
	case e.Agent == "" && len(e.Agents) == 0:
		return fmt.Errorf("%w: no agent", ErrMalformed)
	case e.Agent != "" && len(e.Agents) > 0:
		return fmt.Errorf("%w: both agent and agents are set", ErrMalformed)
	case len(e.Agents) > MaxAddressees:
		return fmt.Errorf("%w: %d addressees; at most %d", ErrMalformed, len(e.Agents), MaxAddressees)
	case e.IssuedAt.IsZero() || e.NotAfter.IsZero() || !e.NotAfter.After(e.IssuedAt):
		return fmt.Errorf("%w: issuedAt and notAfter must be set, notAfter after issuedAt", ErrMalformed)
	case e.Kind != KindCommand && e.Kind != KindCancel && e.Kind != KindPlan:
		return fmt.Errorf("%w: unknown kind %q", ErrMalformed, e.Kind)
	}
	return nil
}

// Check verifies that a signed envelope is for this agent and valid now. skew tolerates clocks that
// disagree a little about IssuedAt; NotAfter is strict, since the hub marks unexecuted work expired then.
func (e Envelope) Check(agentID string, now time.Time, skew time.Duration) error {
	switch {
	case !e.AddressedTo(agentID):
		return fmt.Errorf("%w (%s)", ErrWrongAgent, e.Addressees())
	case now.After(e.NotAfter):
		return fmt.Errorf("%w at %s", ErrExpired, e.NotAfter.UTC().Format(time.RFC3339))
	case e.IssuedAt.After(now.Add(skew)):
		return fmt.Errorf("%w (%s ahead; check the clocks)", ErrNotYetValid, e.IssuedAt.Sub(now).Round(time.Second))
	}
	return nil
}

// MaxAddressees bounds a shared envelope, so the bytes every addressee downloads stay small (about
// 30 bytes per addressee): a release to more agents is cut into several envelopes.
const MaxAddressees = 256

// AddressedTo reports whether the envelope names agentID among its addressees.
func (e Envelope) AddressedTo(agentID string) bool {
	if e.Agent != "" {
		return e.Agent == agentID
	}
	for _, a := range e.Agents {
		if a == agentID {
			return true
		}
	}
	return false
}

// Addressees names who the envelope is for, for messages: the agent, or the first addressees and how
// many more.
func (e Envelope) Addressees() string {
	if e.Agent != "" || len(e.Agents) == 0 {
		return e.Agent
	}
	if len(e.Agents) <= 3 {
		return strings.Join(e.Agents, ",")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(e.Agents[:3], ","), len(e.Agents)-3)
}

// Command is the body of a KindCommand envelope.
type Command struct {
	CommandID      string            `json:"commandId"`
	Name           string            `json:"name"`
	Params         map[string]string `json:"params,omitempty"`
	TimeoutSeconds int               `json:"timeoutSeconds"`
}

// Cancel is the body of a KindCancel envelope.
type Cancel struct {
	CommandID string `json:"commandId"`
}

// CommandSpec is how an agent advertises one command of its whitelist. The hub refuses to enqueue a
// command that is not in a target's catalog or whose parameters do not validate against it.
type CommandSpec struct {
	Name        string      `json:"name"`
	Group       string      `json:"group" doc:"The integration that owns the command."`
	Description string      `json:"description,omitempty"`
	Params      []ParamSpec `json:"params,omitempty"`
	// Dangerous marks commands the default policy keeps from non-admins.
	Dangerous             bool `json:"dangerous,omitempty"`
	DefaultTimeoutSeconds int  `json:"defaultTimeoutSeconds,omitempty"`
}

// ParamSpec constrains one parameter. Every parameter has a pattern, a byte cap, or both: an
// unconstrained string is how shell injection starts.
type ParamSpec struct {
	Name        string `json:"name"`
	Pattern     string `json:"pattern,omitempty" doc:"RE2 regular expression the whole value must match."`
	MaxBytes    int    `json:"maxBytes,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Description string `json:"description,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ValidName reports whether s may name a command, parameter or integration.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Check refuses a spec that could not be enforced.
func (p ParamSpec) Check() error {
	if !ValidName(p.Name) {
		return fmt.Errorf("parameter name %q: want lower-case letters, digits and _", p.Name)
	}
	if p.Pattern == "" && p.MaxBytes <= 0 {
		return fmt.Errorf("parameter %s has neither a pattern nor a byte cap", p.Name)
	}
	if p.Pattern != "" {
		if _, err := regexp.Compile(anchor(p.Pattern)); err != nil {
			return fmt.Errorf("parameter %s: pattern: %w", p.Name, err)
		}
	}
	return nil
}

func anchor(pattern string) string { return `^(?:` + pattern + `)$` }

// Check refuses a spec with a bad name, a duplicate parameter or an unenforceable parameter.
func (c CommandSpec) Check() error {
	if !ValidName(c.Name) {
		return fmt.Errorf("command name %q: want lower-case letters, digits and _", c.Name)
	}
	if !ValidName(c.Group) {
		return fmt.Errorf("command %s: group %q: want lower-case letters, digits and _", c.Name, c.Group)
	}
	seen := map[string]bool{}
	for _, p := range c.Params {
		if err := p.Check(); err != nil {
			return fmt.Errorf("command %s: %w", c.Name, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("command %s: parameter %s declared twice", c.Name, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// ValidateParams checks params against the spec: no unknown parameter, every required one present,
// every value within its cap and matching its pattern. The hub calls it before enqueueing and the agent
// again before running, with this same code.
func (c CommandSpec) ValidateParams(params map[string]string) error {
	specs := map[string]ParamSpec{}
	for _, p := range c.Params {
		specs[p.Name] = p
	}
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p, ok := specs[n]
		if !ok {
			known := make([]string, 0, len(specs))
			for k := range specs {
				known = append(known, k)
			}
			sort.Strings(known)
			if len(known) == 0 {
				return fmt.Errorf("command %s takes no parameters, got %q", c.Name, n)
			}
			return fmt.Errorf("command %s has no parameter %q (known: %s)", c.Name, n, strings.Join(known, ", "))
		}
		v := params[n]
		if p.MaxBytes > 0 && len(v) > p.MaxBytes {
			return fmt.Errorf("parameter %s: %d bytes, more than %d", n, len(v), p.MaxBytes)
		}
		if p.Pattern != "" {
			re, err := regexp.Compile(anchor(p.Pattern))
			if err != nil {
				return fmt.Errorf("parameter %s: pattern: %w", n, err)
			}
			if !re.MatchString(v) {
				return fmt.Errorf("parameter %s: %q does not match %s", n, v, p.Pattern)
			}
		}
	}
	for _, p := range c.Params {
		if _, ok := params[p.Name]; p.Required && !ok {
			return fmt.Errorf("command %s: parameter %s is required", c.Name, p.Name)
		}
	}
	return nil
}

// IntegrationStatus reports whether an integration runs on an agent, and if not, why.
type IntegrationStatus struct {
	ID      string `json:"id"`
	Enabled bool   `json:"enabled"`
	Reason  string `json:"reason,omitempty" doc:"Why the integration is disabled, in words an operator can act on."`
}

// EnrollRequest is sent once, with an enrollment token, by an agent without an identity.
type EnrollRequest struct {
	Token        string              `json:"token"`
	PublicKey    []byte              `json:"publicKey" doc:"The agent's ed25519 public key, 32 bytes."`
	Hostname     string              `json:"hostname"`
	Version      string              `json:"version"`
	Facts        map[string]string   `json:"facts,omitempty"`
	Catalog      []CommandSpec       `json:"catalog"`
	Integrations []IntegrationStatus `json:"integrations,omitempty"`
}

// EnrollResponse gives the agent its id and the keys to trust.
type EnrollResponse struct {
	AgentID string            `json:"agentId"`
	Labels  map[string]string `json:"labels,omitempty"`
	HubKeys []HubKey          `json:"hubKeys"`
}

// PollRequest acknowledges envelopes the agent has durably recorded (by InboxKey), so the hub stops
// offering them.
type PollRequest struct {
	Ack []string `json:"ack,omitempty"`
}

// PollResponse carries waiting work and tells the agent how to poll next: the hub decides how long it
// holds a poll (short for cloud functions, long for a resident hub).
type PollResponse struct {
	Envelopes []SignedEnvelope `json:"envelopes"`
	// HoldSeconds is how long the hub may hold the next poll; the agent's request timeout must exceed it.
	HoldSeconds int `json:"holdSeconds"`
	// NextPollMillis is how long to wait before polling again (0: at once).
	NextPollMillis int `json:"nextPollMillis"`
	// HubKeys is the current set of hub keys, so rotation reaches agents without re-enrollment. The
	// agent adopts it only through VerifyKeySet: the poll answer itself is not signed.
	HubKeys []HubKey `json:"hubKeys,omitempty"`
	// HubKeySignatures endorse HubKeys, one signature per hub key, so an agent that trusts any of them
	// can adopt the set.
	HubKeySignatures []KeySignature `json:"hubKeySignatures,omitempty"`
	// MetricsEverySeconds, when set, asks the agent to upload its metric samples at least this often
	// (at once when it first appears): the hub sets it while someone watches the agent live, so the
	// dashboard need not wait for the next batch (5 minutes by default). An answer without it ends the
	// watch; so does silence (no answer renews it within twice the hold). The agent clamps it to
	// between 1 second and its own upload interval. A hub that never sets it changes nothing.
	MetricsEverySeconds int `json:"metricsEverySeconds,omitempty"`
}

// KeySignature is one hub key's signature over a key set.
type KeySignature struct {
	KeyID     string `json:"keyId"`
	Signature []byte `json:"signature"`
}

const keySetContext = "pulse-keyset-v1\n"

func keySetBytes(keys []HubKey) []byte {
	b, _ := json.Marshal(keys)
	return append([]byte(keySetContext), b...)
}

// SignKeySet endorses keys with each private key the hub holds.
func SignKeySet(keys []HubKey, privs ...ed25519.PrivateKey) []KeySignature {
	msg := keySetBytes(keys)
	out := make([]KeySignature, 0, len(privs))
	for _, p := range privs {
		out = append(out, KeySignature{KeyID: KeyIDFor(p.Public().(ed25519.PublicKey)), Signature: ed25519.Sign(p, msg)})
	}
	return out
}

// ErrKeySetNotEndorsed: a new key set carried no signature by a key the agent trusts.
var ErrKeySetNotEndorsed = errors.New("hub key set is not signed by a trusted key")

// VerifyKeySet returns keys if a key in trusted signed them; an agent uses it to follow a rotation
// without trusting an unauthenticated poll answer.
func VerifyKeySet(trusted, keys []HubKey, sigs []KeySignature) ([]HubKey, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrKeySetNotEndorsed)
	}
	msg := keySetBytes(keys)
	for _, sig := range sigs {
		for _, k := range trusted {
			if k.KeyID == sig.KeyID && len(k.PublicKey) == ed25519.PublicKeySize && ed25519.Verify(k.PublicKey, msg, sig.Signature) {
				return keys, nil
			}
		}
	}
	return nil, ErrKeySetNotEndorsed
}

// Heartbeat is small and frequent; it refreshes what the hub shows about the agent.
type Heartbeat struct {
	Version      string              `json:"version"`
	Time         time.Time           `json:"time"`
	Integrations []IntegrationStatus `json:"integrations,omitempty"`
	Catalog      []CommandSpec       `json:"catalog,omitempty"`
	Facts        map[string]string   `json:"facts,omitempty"`
	// Hatch is the state of the agent's sealed shell hatch, so the hub can warn while it is open. Agents
	// that predate the hatch omit it.
	Hatch *HatchStatus `json:"hatch,omitempty"`
	// UnitTypes are the plan unit types this agent applies (its enabled integrations own them), so the
	// hub refuses at apply a plan with a unit its targets would all refuse. Never null from an agent
	// that knows plans (empty: none); null from one that predates them, whose types are unknown.
	UnitTypes []string `json:"unitTypes" required:"false"`
}

// HatchStatus reports the sealed hatch: the one built-in command that runs opaque shell, which an
// operator can open only on the host itself (pulse-agent unseal), for at most an hour.
type HatchStatus struct {
	// Open is true while commands behind the hatch may run on the agent.
	Open bool `json:"open"`
	// OpenedAt and ExpiresAt bound the window the hatch was opened for. When Open is false they describe
	// the last window if the agent still knows it (it expired but was not closed), and are zero otherwise.
	OpenedAt  time.Time `json:"openedAt,omitzero"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// By is the local account that opened the hatch, with the account it came from through sudo, if any
	// (e.g. "root (sudo from alice)").
	By string `json:"by,omitempty"`
}

// Status is the final state of a command on one agent.
type Status string

// Final states an agent reports. "expired" is decided by the hub (never delivered before NotAfter).
const (
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusTimedOut  Status = "timed_out"
	StatusCancelled Status = "cancelled"
	StatusRejected  Status = "rejected"
)

// Final reports whether s is a state a command ends in.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusTimedOut, StatusCancelled, StatusRejected:
		return true
	}
	return false
}

// Result is uploaded once per command per agent. Uploading it again is harmless: the hub keeps the first.
type Result struct {
	CommandID    string    `json:"commandId"`
	EnvelopeID   string    `json:"envelopeId"`
	Status       Status    `json:"status"`
	ExitCode     *int      `json:"exitCode,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt"`
	OutputBytes  int64     `json:"outputBytes"`
	OutputChunks int       `json:"outputChunks"`
	// Output is the whole output of a command that finished before its first chunk was cut (at most
	// MaxInlineOutput bytes), so a short command costs the hub one write, not a chunk and a result.
	// OutputChunks is 0 then; chunks and inline output never mix.
	Output []byte `json:"output,omitempty"`
}

// MaxInlineOutput is the most output a result carries inline; more goes in chunks.
const MaxInlineOutput = 64 << 10

// Running tells the hub a command has started on the agent.
type Running struct {
	EnvelopeID string    `json:"envelopeId"`
	At         time.Time `json:"at"`
}

// Rejection reports an envelope the agent refused, whatever the reason: a bad signature, another
// agent's envelope, a replay, an expired one, a command outside the whitelist or a parameter that does
// not validate. The hub records it against the agent, so every refusal is seen even when no command of
// the hub's can carry it. A genuine command refused also gets a "rejected" result.
type Rejection struct {
	EnvelopeKey string    `json:"envelopeKey,omitempty" doc:"Where the envelope was found, if known."`
	EnvelopeID  string    `json:"envelopeId,omitempty"`
	CommandID   string    `json:"commandId,omitempty"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}

// MaxChunkBytes is the largest output chunk an agent uploads; below the store's create-only limit so
// every chunk is written atomically once.
const MaxChunkBytes = 1 << 20

// MaxReasonBytes bounds every reason an agent reports that the hub stores or logs (a rejection's
// reason and ids, a result's reason, an integration's status): an agent must not be able to write
// megabytes into the bucket and the hub's log through a field meant for one sentence.
const MaxReasonBytes = 1024

// TruncatedMark ends a text CapReason cut, so whoever reads it knows there was more.
const TruncatedMark = "…(truncated)"

// CapReason returns s unchanged if it fits in MaxReasonBytes, else as much of its start as fits before
// TruncatedMark, cut at a character boundary; the result never exceeds MaxReasonBytes.
func CapReason(s string) string {
	if len(s) <= MaxReasonBytes {
		return s
	}
	cut := MaxReasonBytes - len(TruncatedMark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncatedMark
}
