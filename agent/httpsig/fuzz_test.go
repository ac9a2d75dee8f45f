package httpsig

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary Signature-Input and Signature values to the
// verifier, on top of the RFC 9421 B.2 request. Verify must never panic, and
// every failure must be one of the package's typed errors (so the hub can
// always classify it).
func FuzzVerify(f *testing.F) {
	hdrs := rfcSignedHeaders(f)
	rfcIn := strings.TrimPrefix(hdrs[0], "Signature-Input: ")
	rfcSig := strings.TrimPrefix(hdrs[1], "Signature: ")
	for _, seed := range [][2]string{
		{rfcIn, rfcSig},
		{`sig1=("@method" "@target-uri" "content-digest");created=1618884473;keyid="test-key-ed25519";alg="ed25519"`, rfcSig},
		{`sig1=("@method" "@target-uri" "content-digest");created=1618884473;keyid="test-key-ed25519";expires=1`, `sig1=:` + rfcB26SigB64 + `:`},
		{`sig-b26=("date" "@query-param";name="Pet");created=1618884473;keyid="test-key-ed25519"`, rfcSig},
		{`sig-b26=("@signature-params" "@method" "@method");created=-1;keyid=""`, rfcSig},
		{`sig-b26=();created=1618884473;keyid="test-key-ed25519";nonce=?1;tag=tok;x=1.5;y=@1;z=%"a"`, rfcSig},
		{`sig-b26=("date");created=999999999999999;keyid="test-key-ed25519"`, `sig-b26=:AAAA:`},
		{`sig-b26="date"`, `sig-b26=?1`},
		{`sig-b26=("Date" "" "a b" "@path" "@query" "@request-target" "@scheme" "@target-uri" "host")`, `sig-b26=("x")`},
		{`sig-b26=(`, `sig-b26=:`},
		{"", ""},
		{"\x00\r\n", "\xff"},
	} {
		f.Add(seed[0], seed[1])
	}

	_, pub := rfcKeys(f)
	raw, err := os.ReadFile(filepath.Join("testdata", "b2-request.http"))
	if err != nil {
		f.Fatal(err)
	}
	head, body, _ := strings.Cut(string(raw), "\n\n")
	wire := strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body

	wantBase := readTestdata(f, "b26-signature-base.txt")

	lenient, err := NewVerifier(lookupOnly(rfcKeyID, pub), nil, maxSkew)
	if err != nil {
		f.Fatal(err)
	}
	lenient.Now = fixedClock(rfcCreated)
	strict, err := NewVerifier(lookupOnly(rfcKeyID, pub), DefaultComponents(), maxSkew)
	if err != nil {
		f.Fatal(err)
	}
	strict.Now = fixedClock(rfcCreated)
	anyKey := *lenient
	anyKey.lookup = func(_ context.Context, _ string) (ed25519.PublicKey, error) { return pub, nil }

	f.Fuzz(func(t *testing.T, sigInput, sig string) {
		for _, v := range []*Verifier{lenient, strict, &anyKey} {
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(wire)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header["Signature-Input"] = []string{sigInput}
			req.Header["Signature"] = []string{sig}
			res, err := v.Verify(req)
			if err != nil {
				if len(matchingSentinels(err)) != 1 && !errors.Is(err, errNotEnrolled) {
					t.Fatalf("untyped or ambiguous error %v", err)
				}
				continue
			}
			// Only the RFC's own signature is valid for this key, so anything
			// accepted must rebuild exactly the RFC's signature base.
			base, err := SignatureBase(req, res.Params)
			if err != nil {
				t.Fatalf("accepted, but base cannot be rebuilt: %v", err)
			}
			if !bytes.Equal(base, wantBase) {
				t.Fatalf("accepted a signature over an unexpected base:\n%s", base)
			}
		}
	})
}
