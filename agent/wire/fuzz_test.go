package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// fuzzKeys is a fixed hub key (so seeds signed with it stay valid between runs) and the agent's trust.
func fuzzKeys() (ed25519.PrivateKey, []HubKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	return priv, []HubKey{{KeyID: KeyIDFor(pub), PublicKey: pub}}
}

// FuzzVerifyEnvelope feeds arbitrary signed envelopes to Verify and Check, as the agent receives them.
// Properties: nothing panics; only a genuine signature of the trusted key is accepted, and what it
// accepts has a valid shape; any payload that decodes to a valid envelope survives Sign then Verify
// unchanged (the round trip the hub and the agent depend on).
func FuzzVerifyEnvelope(f *testing.F) {
	priv, keys := fuzzKeys()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	good := testEnvelope(now)
	se, err := Sign(good, keys[0].KeyID, priv)
	if err != nil {
		f.Fatal(err)
	}
	cancel := good
	cancel.Kind, cancel.Body = KindCancel, json.RawMessage(`{"commandId":"c1"}`)
	sc, _ := Sign(cancel, keys[0].KeyID, priv)
	f.Add(se.Payload, se.KeyID, se.Signature)
	f.Add(sc.Payload, sc.KeyID, sc.Signature)
	f.Add(se.Payload, "ed25519:0000000000000000", se.Signature)
	f.Add(bytes.Replace(se.Payload, []byte("host_uptime"), []byte("host_reboot"), 1), se.KeyID, se.Signature)
	f.Add([]byte(`{"id":"","agent":"a1","kind":"command"}`), se.KeyID, []byte{})
	f.Add([]byte(`{"id":"e1","agent":"a1","issuedAt":"2026-01-02T03:04:05Z","notAfter":"2026-01-01T00:00:00Z","kind":"command","body":null}`), se.KeyID, se.Signature)
	f.Add([]byte(`not json`), "", []byte(nil))
	f.Add([]byte(`{"id":"e1","agent":"a1","issuedAt":"2026-01-02T03:04:05Z","notAfter":"2026-01-03T00:00:00Z","kind":"reboot","body":{}}`), se.KeyID, bytes.Repeat([]byte{0}, 64))

	f.Fuzz(func(t *testing.T, payload []byte, keyID string, sig []byte) {
		in := SignedEnvelope{Payload: payload, KeyID: keyID, Signature: sig}
		env, err := in.Verify(keys)
		if err == nil {
			if !ed25519.Verify(keys[0].PublicKey, append([]byte(signingContext), payload...), sig) || keyID != keys[0].KeyID {
				t.Fatalf("accepted an envelope the trusted key did not sign: %q", payload)
			}
			if serr := env.validShape(); serr != nil {
				t.Fatalf("accepted an envelope of invalid shape: %v", serr)
			}
			_ = env.Check("a1", now, time.Minute)
		} else if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("refusal with an untyped error: %v", err)
		}

		var dec Envelope
		if json.Unmarshal(payload, &dec) != nil || dec.validShape() != nil {
			if _, err := Sign(dec, keys[0].KeyID, priv); err == nil && dec.validShape() != nil {
				t.Fatal("Sign accepted an envelope of invalid shape")
			}
			return
		}
		resigned, err := Sign(dec, keys[0].KeyID, priv)
		if err != nil {
			t.Fatalf("Sign refused a valid envelope: %v", err)
		}
		back, err := resigned.Verify(keys)
		if err != nil {
			t.Fatalf("a freshly signed envelope does not verify: %v", err)
		}
		if !sameEnvelope(dec, back) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", dec, back)
		}
	})
}

// sameEnvelope compares envelopes as the agent does: instants, not their representation, and the
// body as JSON (Marshal compacts it, and writes an absent body as null).
func sameEnvelope(a, b Envelope) bool {
	body := func(m json.RawMessage) []byte {
		if len(m) == 0 {
			return []byte("null")
		}
		return m
	}
	var ab, bb bytes.Buffer
	if json.Compact(&ab, body(a.Body)) != nil || json.Compact(&bb, body(b.Body)) != nil {
		return false
	}
	return a.ID == b.ID && a.Agent == b.Agent && a.IssuedAt.Equal(b.IssuedAt) && a.NotAfter.Equal(b.NotAfter) &&
		a.Issuer == b.Issuer && a.Kind == b.Kind && bytes.Equal(ab.Bytes(), bb.Bytes())
}

// FuzzPollResponse decodes arbitrary poll answers as the agent does and runs the key-set check on them.
// Properties: nothing panics; a key set is adopted only with a signature a trusted key really made over
// exactly that set; an endorsed set signed with SignKeySet always verifies (round trip).
func FuzzPollResponse(f *testing.F) {
	priv, trusted := fuzzKeys()
	newPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	newPub := newPriv.Public().(ed25519.PublicKey)
	rotated := []HubKey{{KeyID: KeyIDFor(newPub), PublicKey: newPub}, trusted[0]}
	se, _ := Sign(testEnvelope(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), trusted[0].KeyID, priv)
	se.InboxKey = "c1.json"
	for _, resp := range []PollResponse{
		{Envelopes: []SignedEnvelope{se}, HoldSeconds: 30, HubKeys: rotated, HubKeySignatures: SignKeySet(rotated, newPriv, priv)},
		{HubKeys: rotated, HubKeySignatures: SignKeySet(rotated, newPriv)}, // endorsed only by an untrusted key
		{HubKeys: trusted, HubKeySignatures: SignKeySet(rotated, priv)},    // signature over another set
		{NextPollMillis: -1, HoldSeconds: 1 << 40},
	} {
		b, _ := json.Marshal(resp)
		f.Add(b)
	}
	f.Add([]byte(`{"envelopes":[{"payload":"!!","keyId":1}]}`))
	f.Add([]byte(`{"hubKeys":[{"keyId":"x","publicKey":"AAAA"}],"hubKeySignatures":[{"keyId":"x","signature":null}]}`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var resp PollResponse
		if err := json.Unmarshal(data, &resp); err != nil {
			return // the agent's client refuses the answer; nothing more to check
		}
		for _, e := range resp.Envelopes {
			if env, err := e.Verify(trusted); err == nil && !ed25519.Verify(trusted[0].PublicKey, append([]byte(signingContext), e.Payload...), e.Signature) {
				t.Fatalf("accepted an unsigned envelope %+v", env)
			}
		}
		got, err := VerifyKeySet(trusted, resp.HubKeys, resp.HubKeySignatures)
		if err != nil {
			if !errors.Is(err, ErrKeySetNotEndorsed) {
				t.Fatalf("untyped refusal: %v", err)
			}
		} else {
			if !reflect.DeepEqual(got, resp.HubKeys) {
				t.Fatal("VerifyKeySet returned another set than it was given")
			}
			endorsed := false
			for _, s := range resp.HubKeySignatures {
				if s.KeyID == trusted[0].KeyID && ed25519.Verify(trusted[0].PublicKey, keySetBytes(resp.HubKeys), s.Signature) {
					endorsed = true
				}
			}
			if !endorsed {
				t.Fatal("adopted a key set no trusted key signed")
			}
		}
		if len(resp.HubKeys) > 0 {
			if _, err := VerifyKeySet(trusted, resp.HubKeys, SignKeySet(resp.HubKeys, priv)); err != nil {
				t.Fatalf("a set the trusted key endorsed is refused: %v", err)
			}
		}
	})
}
