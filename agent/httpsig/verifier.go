package httpsig

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// KeyLookup resolves a keyid to the agent's enrolled public key. It receives
// the request's context so a lookup against a database honours cancellation.
// Return an error (ideally wrapping your own "not found" error) when the key
// is unknown or revoked; Verify passes it through inside a *KeyError.
type KeyLookup func(ctx context.Context, keyID string) (ed25519.PublicKey, error)

// Verifier checks signed agent requests on the hub. Configure it once;
// it is safe for concurrent use as long as its exported fields are not
// changed while verifying.
type Verifier struct {
	lookup   KeyLookup
	required []string
	maxSkew  time.Duration

	// Label selects which signature to verify. Empty means the first member
	// of Signature-Input, which is what a Pulse agent sends.
	Label string

	// Scheme, if set, is used for @scheme and @target-uri instead of
	// inferring "https"/"http" from req.TLS. Set it to "https" when the hub
	// sits behind a TLS-terminating proxy, or every signature covering
	// @target-uri will fail.
	Scheme string

	// Now is the verifier's clock; defaults to time.Now. Injectable for tests.
	Now func() time.Time

	// MaxBodyBytes bounds the body buffered to check Content-Digest.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// NewVerifier returns a Verifier that resolves keys with lookup, rejects
// signatures that do not cover every component in required (Pulse uses
// DefaultComponents()), and rejects signatures whose created time differs
// from the hub's clock by more than maxSkew in either direction.
//
// The created and keyid parameters are always required: without created a
// captured request could be replayed forever, and without keyid there is no
// key to check against.
func NewVerifier(lookup KeyLookup, required []string, maxSkew time.Duration) (*Verifier, error) {
	if lookup == nil {
		return nil, errors.New("httpsig: NewVerifier needs a key lookup function")
	}
	if maxSkew <= 0 {
		return nil, fmt.Errorf("httpsig: max clock skew must be positive, got %s", maxSkew)
	}
	if err := checkComponents(required); err != nil {
		return nil, fmt.Errorf("httpsig: required components: %w", err)
	}
	return &Verifier{
		lookup:   lookup,
		required: append([]string(nil), required...),
		maxSkew:  maxSkew,
		Now:      time.Now,
	}, nil
}

// Verified describes a signature that passed every check. The hub uses
// KeyID to know which agent sent the request.
type Verified struct {
	// Label is the Signature-Input member that was verified.
	Label string
	// KeyID identifies the agent key that signed the request.
	KeyID string
	// Created is the signature's created time.
	Created time.Time
	// Expires is the signature's expires time, or zero if absent.
	Expires time.Time
	// Params are the covered components and parameters exactly as signed.
	Params SignatureParams
}

// Verify checks req's signature and, when content-digest is covered, its
// body. On success the body has been buffered and replaced, so the handler
// can read it normally. Checks run cheapest first and the first failure is
// returned; each failure matches one sentinel (ErrMissingSignature,
// ErrMalformedSignatureInput, ErrComponentNotCovered, ErrCreatedTooOld,
// ErrUnknownKey, ErrBadSignature, ErrDigestMismatch, ...) with errors.Is.
func (v *Verifier) Verify(req *http.Request) (*Verified, error) {
	inVals := req.Header.Values("Signature-Input")
	sigVals := req.Header.Values("Signature")
	switch {
	case len(inVals) == 0 && len(sigVals) == 0:
		return nil, fmt.Errorf("%w: no Signature-Input or Signature header — is the request coming from a Pulse agent?", ErrMissingSignature)
	case len(inVals) == 0:
		return nil, fmt.Errorf("%w: Signature header present but Signature-Input missing — a proxy may be stripping it", ErrMissingSignature)
	case len(sigVals) == 0:
		return nil, fmt.Errorf("%w: Signature-Input header present but Signature missing — a proxy may be stripping it", ErrMissingSignature)
	}

	// 1. Parse.
	inDict, err := httpsfv.UnmarshalDictionary(inVals)
	if err != nil {
		return nil, fmt.Errorf("%w: %v in %s", ErrMalformedSignatureInput, err, excerpt(inVals))
	}
	labels := inDict.Names()
	if len(labels) == 0 {
		return nil, fmt.Errorf("%w: header is empty", ErrMalformedSignatureInput)
	}
	label := v.Label
	if label == "" {
		label = labels[0]
	}
	member, ok := inDict.Get(label)
	if !ok {
		return nil, fmt.Errorf("%w: no signature labelled %q (Signature-Input has: %s)", ErrMissingSignature, label, strings.Join(labels, ", "))
	}
	sp, err := parseSignatureParams(label, member)
	if err != nil {
		return nil, err
	}
	sigDict, err := httpsfv.UnmarshalDictionary(sigVals)
	if err != nil {
		return nil, fmt.Errorf("%w: %v in %s", ErrMalformedSignature, err, excerpt(sigVals))
	}
	sigMember, ok := sigDict.Get(label)
	if !ok {
		return nil, fmt.Errorf("%w: Signature-Input has label %q but Signature does not", ErrMalformedSignature, label)
	}
	sigItem, ok := sigMember.(httpsfv.Item)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a byte sequence", ErrMalformedSignature, label)
	}
	sig, ok := sigItem.Value.([]byte)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a byte sequence (want %s=:base64:)", ErrMalformedSignature, label, label)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %q is %d bytes; an ed25519 signature is %d", ErrMalformedSignature, label, len(sig), ed25519.SignatureSize)
	}

	// 2. Policy: what must be covered and present.
	if err := checkComponents(sp.Components); err != nil {
		return nil, err
	}
	for _, r := range v.required {
		if !contains(sp.Components, r) {
			return nil, fmt.Errorf("%w: %q is not covered (covered: %s) — the agent must include it in Signature-Input",
				ErrComponentNotCovered, r, strings.Join(sp.Components, " "))
		}
	}
	res := &Verified{Label: label, Params: sp}
	if a, ok := sp.Get(ParamNameAlg); ok && a.(string) != AlgEd25519 {
		return nil, fmt.Errorf("%w: alg=%q; only %q is accepted", ErrUnsupportedAlgorithm, a, AlgEd25519)
	}
	kid, ok := sp.Get(ParamNameKeyID)
	if !ok {
		return nil, fmt.Errorf("%w: keyid is absent, so there is no key to verify with", ErrMissingParameter)
	}
	res.KeyID = kid.(string)
	cr, ok := sp.Get(ParamNameCreated)
	if !ok {
		return nil, fmt.Errorf("%w: created is absent; without it a captured request could be replayed indefinitely", ErrMissingParameter)
	}
	res.Created = time.Unix(cr.(int64), 0)

	// 3. Time.
	nowFn := v.Now
	if nowFn == nil {
		nowFn = time.Now
	}
	now := nowFn()
	if d := res.Created.Sub(now); d > v.maxSkew || -d > v.maxSkew {
		return nil, &SkewError{Created: res.Created, Now: now, Allowed: v.maxSkew}
	}
	if ex, ok := sp.Get(ParamNameExpires); ok {
		res.Expires = time.Unix(ex.(int64), 0)
		// No skew allowance here: expires is the signer's own, explicit
		// limit, and the created check already bounds clock differences.
		if now.After(res.Expires) {
			return nil, fmt.Errorf("%w: expired %s ago (expires=%d) — the request was delayed or replayed, or the agent's clock is behind and its signature TTL is shorter than the offset",
				ErrExpired, seconds(now.Sub(res.Expires)), res.Expires.Unix())
		}
	}

	// 4. Key.
	pub, err := v.lookup(req.Context(), res.KeyID)
	if err != nil {
		return nil, &KeyError{KeyID: res.KeyID, Err: err}
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, &KeyError{KeyID: res.KeyID, Err: fmt.Errorf("lookup returned a %d-byte key; an ed25519 public key is %d bytes", len(pub), ed25519.PublicKeySize)}
	}

	// 5. Signature.
	m, err := newMessage(req, v.Scheme)
	if err != nil {
		return nil, err
	}
	base, err := signatureBase(m, sp)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(pub, base, sig) {
		return nil, fmt.Errorf("%w: label %q, keyid %q — a signed component (%s) was altered in transit, or the agent signed with a key other than the one enrolled for this keyid",
			ErrBadSignature, label, res.KeyID, strings.Join(sp.Components, " "))
	}

	// 6. Body, now that the digest header is known to be authentic.
	if contains(sp.Components, ComponentContentDigest) {
		limit := v.MaxBodyBytes
		if limit <= 0 {
			limit = DefaultMaxBodyBytes
		}
		if req.ContentLength > limit {
			return nil, fmt.Errorf("%w: Content-Length %d exceeds the %d-byte limit", ErrBodyTooLarge, req.ContentLength, limit)
		}
		body, err := bufferBody(req, limit)
		if err != nil {
			return nil, err
		}
		if err := checkContentDigest(req.Header.Values("Content-Digest"), body); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// excerpt quotes header values for an error message, truncated so that a
// hostile header cannot flood the hub's logs.
func excerpt(vals []string) string {
	const max = 120
	s := strings.Join(vals, ", ")
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
