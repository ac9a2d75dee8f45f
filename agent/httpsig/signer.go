package httpsig

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// DefaultLabel is the Signature-Input/Signature dictionary key the Signer
// uses unless told otherwise. The hub's Verifier takes the first label when
// none is configured, so agents and hub need not agree on it.
const DefaultLabel = "sig1"

// Signer signs outgoing agent requests. It is built once at agent start-up
// (so configuration mistakes surface there, not on the first request) and is
// safe for concurrent use as long as its exported fields are not changed
// while signing.
type Signer struct {
	key        ed25519.PrivateKey
	keyID      string
	components []string

	// Label is the dictionary key used in Signature-Input and Signature.
	// Defaults to DefaultLabel.
	Label string

	// Now supplies the created timestamp. It defaults to time.Now and exists
	// so tests can pin the clock.
	Now func() time.Time

	// TTL, if positive, adds expires = created + TTL, bounding how long a
	// captured request stays replayable independently of the hub's skew
	// window. The hub checks expires strictly against its own clock, so an
	// agent whose clock is behind by more than TTL will see ErrExpired.
	TTL time.Duration

	// Tag, if non-empty, adds a tag parameter naming the application profile.
	Tag string
}

// NewSigner returns a Signer that signs with key under keyID, covering
// components in the given order. A nil or empty components uses
// DefaultComponents(). Field names are lower-cased for convenience; unknown
// derived components and duplicates are rejected now rather than producing
// signatures the hub cannot verify.
func NewSigner(key ed25519.PrivateKey, keyID string, components []string) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("httpsig: ed25519 private key must be %d bytes, got %d", ed25519.PrivateKeySize, len(key))
	}
	if keyID == "" {
		return nil, errors.New("httpsig: empty key id: the hub needs it to find the agent's public key")
	}
	if len(components) == 0 {
		components = DefaultComponents()
	}
	cs := make([]string, len(components))
	for i, c := range components {
		cs[i] = strings.ToLower(c)
	}
	if err := checkComponents(cs); err != nil {
		return nil, err
	}
	// Catch a key id that cannot be serialised (non-ASCII, control chars).
	if _, err := (SignatureParams{Components: cs, Params: []Param{KeyID(keyID)}}).Serialize(); err != nil {
		return nil, fmt.Errorf("httpsig: key id %q cannot be sent in Signature-Input: %w", keyID, err)
	}
	return &Signer{key: key, keyID: keyID, components: cs, Label: DefaultLabel, Now: time.Now}, nil
}

// Sign adds Signature-Input and Signature headers to req, replacing any from
// an earlier attempt so that a retried request is re-signed with a fresh
// created time.
//
// If the covered components include content-digest and req has no
// Content-Digest header, Sign computes one (sha-256) from the body. The body
// is buffered and restored, and req.GetBody and req.ContentLength are set, so
// the request can still be sent and retried.
//
// Sign must be the last thing to modify req before it is sent: any later
// change to a covered header, the method or the URL breaks the signature.
func (s *Signer) Sign(req *http.Request) error {
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if s.covers(ComponentContentDigest) && req.Header.Get("Content-Digest") == "" {
		body, err := bufferBody(req, 0)
		if err != nil {
			return err
		}
		if req.RequestURI == "" { // client request: make the length explicit
			req.ContentLength = int64(len(body))
			if len(body) == 0 {
				req.Body, req.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
			}
		}
		req.Header.Set("Content-Digest", ContentDigest(body))
	}

	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	created := now()
	params := []Param{Created(created)}
	if s.TTL > 0 {
		params = append(params, Expires(created.Add(s.TTL)))
	}
	params = append(params, KeyID(s.keyID), Alg(AlgEd25519))
	if s.Tag != "" {
		params = append(params, Tag(s.Tag))
	}
	sp := SignatureParams{Components: s.components, Params: params}
	return SignRequest(req, s.key, s.Label, sp)
}

// SignRequest signs req with key over exactly sp and sets the
// Signature-Input and Signature headers under label (DefaultLabel if
// empty), replacing earlier ones. Unlike Signer it adds no parameters and
// computes no Content-Digest: it exists for callers that need full control
// of the parameters (a nonce, a different order, reproducing the RFC 9421
// test vectors). Any later change to a covered part of req breaks the
// signature.
func SignRequest(req *http.Request, key ed25519.PrivateKey, label string, sp SignatureParams) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("httpsig: ed25519 private key must be %d bytes, got %d", ed25519.PrivateKeySize, len(key))
	}
	if label == "" {
		label = DefaultLabel
	}
	m, err := newMessage(req, "")
	if err != nil {
		return fmt.Errorf("httpsig: signing %s %s: %w", req.Method, req.URL, err)
	}
	base, err := signatureBase(m, sp)
	if err != nil {
		return fmt.Errorf("httpsig: signing %s %s: %w", req.Method, req.URL, err)
	}
	sig := ed25519.Sign(key, base)

	il, err := sp.innerList()
	if err != nil {
		return err
	}
	in := httpsfv.NewDictionary()
	in.Add(label, il)
	inStr, err := httpsfv.Marshal(in)
	if err != nil {
		return fmt.Errorf("httpsig: label %q cannot be used in Signature-Input: %w", label, err)
	}
	sd := httpsfv.NewDictionary()
	sd.Add(label, httpsfv.Item{Value: sig, Params: httpsfv.NewParams()})
	sigStr, err := httpsfv.Marshal(sd)
	if err != nil {
		return fmt.Errorf("httpsig: serialising Signature: %w", err)
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	req.Header.Set("Signature-Input", inStr)
	req.Header.Set("Signature", sigStr)
	return nil
}

func (s *Signer) covers(c string) bool {
	for _, x := range s.components {
		if x == c {
			return true
		}
	}
	return false
}
