package httpsig

import (
	"fmt"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// Names of the signature parameters defined by RFC 9421 §2.3. They are
// exported so that callers building SignatureParams by hand, and code reading
// a Verified result, do not have to repeat string literals.
const (
	ParamNameCreated = "created"
	ParamNameExpires = "expires"
	ParamNameNonce   = "nonce"
	ParamNameAlg     = "alg"
	ParamNameKeyID   = "keyid"
	ParamNameTag     = "tag"
)

// AlgEd25519 is the RFC 9421 §3.3.6 algorithm name, the only one Pulse uses.
const AlgEd25519 = "ed25519"

// Param is one signature parameter. Parameters are kept as an ordered list,
// not a struct, because their order is part of the signed bytes: a verifier
// must reproduce the signer's order exactly.
type Param struct {
	// Name is the parameter key, e.g. "created".
	Name string
	// Value is int64 for created and expires, string for nonce, alg, keyid
	// and tag. Parameters parsed from a peer that this package does not know
	// keep whatever Structured Field type they had.
	Value any
}

// Created returns a created parameter for t, truncated to whole seconds as
// RFC 9421 requires. The verifier uses it to bound replay and clock skew.
func Created(t time.Time) Param { return Param{ParamNameCreated, t.Unix()} }

// Expires returns an expires parameter for t (whole seconds). It lets a
// signer limit a signature's lifetime below the verifier's skew window.
func Expires(t time.Time) Param { return Param{ParamNameExpires, t.Unix()} }

// Nonce returns a nonce parameter, for verifiers that track nonces to reject
// exact replays within the skew window.
func Nonce(s string) Param { return Param{ParamNameNonce, s} }

// Alg returns an alg parameter. Pulse sets it to AlgEd25519 so that a
// verifier can reject signatures made for another algorithm outright.
func Alg(s string) Param { return Param{ParamNameAlg, s} }

// KeyID returns a keyid parameter: the name under which the hub finds the
// agent's public key.
func KeyID(s string) Param { return Param{ParamNameKeyID, s} }

// Tag returns a tag parameter, which scopes a signature to an application
// profile so it cannot be confused with signatures made for another purpose.
func Tag(s string) Param { return Param{ParamNameTag, s} }

// SignatureParams is the content of one Signature-Input member: the ordered
// covered components and the ordered signature parameters. Its serialisation
// is both the Signature-Input member value and the last line of the
// signature base, which is why it is a single type.
type SignatureParams struct {
	// Components are the covered component identifiers in signing order,
	// e.g. "@method", "@target-uri", "content-digest".
	Components []string
	// Params are the signature parameters in serialisation order.
	Params []Param
}

// Get returns the value of the named parameter, so callers do not have to
// scan Params themselves.
func (sp SignatureParams) Get(name string) (any, bool) {
	for _, p := range sp.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return nil, false
}

// Serialize returns the RFC 9421 §2.3 serialisation, e.g.
// ("@method" "@target-uri");created=1618884473;keyid="k". It is produced by
// httpsfv so that escaping matches what any other RFC 8941/9651 parser
// expects, and it fails rather than emitting something a verifier could read
// differently.
func (sp SignatureParams) Serialize() (string, error) {
	il, err := sp.innerList()
	if err != nil {
		return "", err
	}
	s, err := httpsfv.Marshal(il)
	if err != nil {
		return "", fmt.Errorf("httpsig: serialising signature parameters: %w", err)
	}
	return s, nil
}

func (sp SignatureParams) innerList() (httpsfv.InnerList, error) {
	if err := checkComponents(sp.Components); err != nil {
		return httpsfv.InnerList{}, err
	}
	il := httpsfv.InnerList{Params: httpsfv.NewParams()}
	for _, c := range sp.Components {
		il.Items = append(il.Items, httpsfv.Item{Value: c, Params: httpsfv.NewParams()})
	}
	seen := make(map[string]bool, len(sp.Params))
	for _, p := range sp.Params {
		if seen[p.Name] {
			return httpsfv.InnerList{}, fmt.Errorf("httpsig: signature parameter %q given twice", p.Name)
		}
		seen[p.Name] = true
		if err := checkParamValue(p); err != nil {
			return httpsfv.InnerList{}, err
		}
		il.Params.Add(p.Name, p.Value)
	}
	return il, nil
}

// checkParamValue enforces the RFC 9421 types of the known parameters and
// keeps unknown ones to types httpsfv can serialise (httpsfv panics on
// others, and a panic must never be reachable from caller data).
func checkParamValue(p Param) error {
	switch p.Name {
	case ParamNameCreated, ParamNameExpires:
		if _, ok := p.Value.(int64); !ok {
			return fmt.Errorf("httpsig: signature parameter %q must be an integer (got %T)", p.Name, p.Value)
		}
	case ParamNameNonce, ParamNameAlg, ParamNameKeyID, ParamNameTag:
		if _, ok := p.Value.(string); !ok {
			return fmt.Errorf("httpsig: signature parameter %q must be a string (got %T)", p.Name, p.Value)
		}
	default:
		switch p.Value.(type) {
		case int64, string, bool, float64, []byte, httpsfv.Token, httpsfv.DisplayString, time.Time:
		default:
			return fmt.Errorf("httpsig: signature parameter %q has unsupported type %T", p.Name, p.Value)
		}
	}
	return nil
}

// parseSignatureParams converts one parsed Signature-Input member into
// SignatureParams, rejecting anything whose meaning this package would have
// to guess.
func parseSignatureParams(label string, m httpsfv.Member) (SignatureParams, error) {
	il, ok := m.(httpsfv.InnerList)
	if !ok {
		return SignatureParams{}, fmt.Errorf("%w: member %q is not an inner list of components", ErrMalformedSignatureInput, label)
	}
	var sp SignatureParams
	for _, it := range il.Items {
		name, ok := it.Value.(string)
		if !ok {
			return SignatureParams{}, fmt.Errorf("%w: member %q lists a component that is not a string (%T)", ErrMalformedSignatureInput, label, it.Value)
		}
		if it.Params != nil && len(it.Params.Names()) > 0 {
			return SignatureParams{}, fmt.Errorf("%w: component %q has parameters (;%s); component parameters are not supported",
				ErrUnsupportedComponent, name, strings.Join(it.Params.Names(), ";"))
		}
		sp.Components = append(sp.Components, name)
	}
	if il.Params != nil {
		for _, k := range il.Params.Names() {
			v, _ := il.Params.Get(k)
			p := Param{Name: k, Value: v}
			if err := checkParamValue(p); err != nil {
				return SignatureParams{}, fmt.Errorf("%w: %w", ErrMalformedSignatureInput, err)
			}
			sp.Params = append(sp.Params, p)
		}
	}
	return sp, nil
}
