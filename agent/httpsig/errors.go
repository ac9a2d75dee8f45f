package httpsig

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Every error returned by Verify matches exactly one of these
// with errors.Is, so the hub can map failures to responses and metrics
// without parsing messages; the wrapped message adds the detail a person
// needs to fix the problem.
var (
	// ErrMissingSignature means the request carries no Signature-Input or
	// Signature header (or not the expected label): the caller is not a
	// Pulse agent, or its signing middleware is not installed.
	ErrMissingSignature = errors.New("httpsig: request is not signed")

	// ErrMalformedSignatureInput means the Signature-Input header could not
	// be parsed as an RFC 9421 signature-input dictionary, or one of its
	// parameters has the wrong type.
	ErrMalformedSignatureInput = errors.New("httpsig: malformed Signature-Input header")

	// ErrMalformedSignature means the Signature header could not be parsed
	// or does not hold a byte sequence for the selected label.
	ErrMalformedSignature = errors.New("httpsig: malformed Signature header")

	// ErrUnsupportedComponent means a component identifier is one this
	// package cannot compute (an unknown derived component, a component with
	// parameters, an upper-case or duplicated name, or @signature-params
	// itself). Rejecting is safer than guessing at a value.
	ErrUnsupportedComponent = errors.New("httpsig: unsupported component")

	// ErrComponentMissing means the signature covers a header field that the
	// request does not carry, so the signature base cannot be rebuilt.
	ErrComponentMissing = errors.New("httpsig: covered component is absent from the request")

	// ErrInvalidComponentValue means a covered value cannot appear in a
	// signature base (for example it contains a line break).
	ErrInvalidComponentValue = errors.New("httpsig: invalid component value")

	// ErrComponentNotCovered means the signature is valid RFC 9421 but does
	// not cover a component the hub's policy requires, so it would not
	// protect what the hub relies on.
	ErrComponentNotCovered = errors.New("httpsig: required component not covered by signature")

	// ErrMissingParameter means a signature parameter the verifier relies on
	// (created, keyid) is absent.
	ErrMissingParameter = errors.New("httpsig: required signature parameter missing")

	// ErrUnsupportedAlgorithm means the alg parameter names something other
	// than ed25519.
	ErrUnsupportedAlgorithm = errors.New("httpsig: unsupported signature algorithm")

	// ErrUnknownKey means the key lookup did not produce a usable key for
	// the signature's keyid. Errors of this kind are *KeyError values that
	// also wrap the lookup function's own error.
	ErrUnknownKey = errors.New("httpsig: unknown key id")

	// ErrCreatedInFuture means the created parameter is ahead of the hub's
	// clock by more than the allowed skew. Errors of this kind are
	// *SkewError values that say by how much.
	ErrCreatedInFuture = errors.New("httpsig: signature created in the future")

	// ErrCreatedTooOld means the created parameter is behind the hub's clock
	// by more than the allowed skew: a delayed or replayed request, or an
	// agent clock that is behind. Errors of this kind are *SkewError values.
	ErrCreatedTooOld = errors.New("httpsig: signature created too long ago")

	// ErrExpired means the signer's expires parameter has passed on the
	// verifier's clock.
	ErrExpired = errors.New("httpsig: signature expired")

	// ErrBadSignature means the ed25519 signature does not verify over the
	// rebuilt signature base: something covered was altered in transit, or
	// the request was signed with a different key than the one registered
	// for its keyid.
	ErrBadSignature = errors.New("httpsig: signature does not verify")

	// ErrDigestMismatch means the body does not hash to the value in its
	// Content-Digest header, i.e. the body was altered after signing.
	ErrDigestMismatch = errors.New("httpsig: content digest mismatch")

	// ErrMalformedDigest means the Content-Digest header is unparseable or
	// carries no algorithm this package accepts (sha-256, sha-512).
	ErrMalformedDigest = errors.New("httpsig: malformed Content-Digest header")

	// ErrBodyTooLarge means the body exceeds the verifier's buffering limit;
	// the body must be buffered to check its digest before the handler runs.
	ErrBodyTooLarge = errors.New("httpsig: request body too large to verify")
)

// KeyError reports that the key lookup failed for a keyid. It matches
// ErrUnknownKey with errors.Is and unwraps to the lookup function's own
// error, so the hub can still tell "agent not enrolled" from "key store
// unavailable" with errors.Is/As on its own error values.
type KeyError struct {
	// KeyID is the keyid parameter from the signature.
	KeyID string
	// Err is the error returned by the lookup function (or a description of
	// why its result was unusable).
	Err error
}

// Error explains which keyid failed and what to check.
func (e *KeyError) Error() string {
	return fmt.Sprintf("httpsig: no usable public key for keyid %q: %v — check that the agent is enrolled and that its key has not been rotated or revoked", e.KeyID, e.Err)
}

// Unwrap exposes the lookup error.
func (e *KeyError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnknownKey) true.
func (e *KeyError) Is(target error) bool { return target == ErrUnknownKey }

// SkewError reports that the created parameter lies outside the allowed
// window around the verifier's clock. It exists as a type, not only a
// sentinel, so callers can log or export the measured offset.
type SkewError struct {
	// Created is the signature's created time.
	Created time.Time
	// Now is the verifier's clock when the check was made.
	Now time.Time
	// Allowed is the configured maximum skew.
	Allowed time.Duration
}

// Offset is Created minus Now: positive when the signature claims to come
// from the future (agent clock ahead), negative when it is old.
func (e *SkewError) Offset() time.Duration { return e.Created.Sub(e.Now) }

// Error says by how much the window was missed and what to check.
func (e *SkewError) Error() string {
	off := e.Offset()
	if off > 0 {
		return fmt.Sprintf("httpsig: signature created %s in the future; allowed skew is %s — check the agent's clock (is NTP running?)",
			seconds(off), seconds(e.Allowed))
	}
	return fmt.Sprintf("httpsig: signature created %s ago; allowed skew is %s — check the agent's clock, or the request was delayed or replayed",
		seconds(-off), seconds(e.Allowed))
}

// Is makes errors.Is match ErrCreatedInFuture or ErrCreatedTooOld according
// to the direction of the offset.
func (e *SkewError) Is(target error) bool {
	if e.Offset() > 0 {
		return target == ErrCreatedInFuture
	}
	return target == ErrCreatedTooOld
}

// seconds formats a non-negative d as whole seconds, rounded up ("312s"):
// created/expires have one-second resolution, so finer units would be noise,
// and rounding up never reports a rejected offset as equal to the allowance.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int64((d+time.Second-1)/time.Second))
}
