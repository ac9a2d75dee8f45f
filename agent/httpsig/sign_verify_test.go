package httpsig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	agentKeyID = "agent-7f3a"
	signedAt   = 1_750_000_000
	maxSkew    = 30 * time.Second
	reportURL  = "https://hub.example/api/v1/agents/7f3a/report?full=1"
	reportBody = `{"cpu":0.42,"mem":0.71}`
)

func agentKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// allSentinels lists every sentinel Verify can return; each failure must
// match exactly one of them.
var allSentinels = []error{
	ErrMissingSignature, ErrMalformedSignatureInput, ErrMalformedSignature,
	ErrUnsupportedComponent, ErrComponentMissing, ErrInvalidComponentValue,
	ErrComponentNotCovered, ErrMissingParameter, ErrUnsupportedAlgorithm,
	ErrUnknownKey, ErrCreatedInFuture, ErrCreatedTooOld, ErrExpired,
	ErrBadSignature, ErrDigestMismatch, ErrMalformedDigest, ErrBodyTooLarge,
}

func matchingSentinels(err error) []error {
	var out []error
	for _, s := range allSentinels {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}

func newTestSigner(t testing.TB, key ed25519.PrivateKey, keyID string, comps []string) *Signer {
	t.Helper()
	s, err := NewSigner(key, keyID, comps)
	if err != nil {
		t.Fatal(err)
	}
	s.Now = fixedClock(signedAt)
	return s
}

func newTestVerifier(t testing.TB) *Verifier {
	t.Helper()
	v, err := NewVerifier(lookupOnly(agentKeyID, agentKey(1).Public().(ed25519.PublicKey)), DefaultComponents(), maxSkew)
	if err != nil {
		t.Fatal(err)
	}
	v.Now = fixedClock(signedAt + 2)
	return v
}

func newReport(t testing.TB) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, reportURL, strings.NewReader(reportBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func TestSignerHeaders(t *testing.T) {
	req := newReport(t)
	if err := newTestSigner(t, agentKey(1), agentKeyID, nil).Sign(req); err != nil {
		t.Fatal(err)
	}
	wantIn := fmt.Sprintf(`sig1=("@method" "@target-uri" "content-digest");created=%d;keyid=%q;alg="ed25519"`, signedAt, agentKeyID)
	if got := req.Header.Get("Signature-Input"); got != wantIn {
		t.Errorf("Signature-Input = %s\nwant %s", got, wantIn)
	}
	if got, want := req.Header.Get("Content-Digest"), ContentDigest([]byte(reportBody)); got != want {
		t.Errorf("Content-Digest = %s, want %s", got, want)
	}
	if got := req.Header.Get("Signature"); !strings.HasPrefix(got, "sig1=:") || !strings.HasSuffix(got, ":") {
		t.Errorf("Signature = %s", got)
	}
	// The body must still be sendable and re-sendable.
	if b, _ := io.ReadAll(req.Body); string(b) != reportBody {
		t.Errorf("body after Sign = %q", b)
	}
	rc, _ := req.GetBody()
	if b, _ := io.ReadAll(rc); string(b) != reportBody {
		t.Errorf("GetBody after Sign = %q", b)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		body   io.Reader
	}{
		{"post with body", http.MethodPost, strings.NewReader(reportBody)},
		{"get without body", http.MethodGet, nil},
		{"put with unknown length", http.MethodPut, io.MultiReader(strings.NewReader(reportBody))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, err := http.NewRequest(tc.method, reportURL, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if err := newTestSigner(t, agentKey(1), agentKeyID, nil).Sign(cli); err != nil {
				t.Fatal(err)
			}
			srv := roundTripToServer(t, cli)
			res, err := newTestVerifier(t).Verify(srv)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.KeyID != agentKeyID || res.Created.Unix() != signedAt {
				t.Errorf("Verified = %+v", res)
			}
			if tc.body != nil {
				if b, _ := io.ReadAll(srv.Body); string(b) != reportBody {
					t.Errorf("handler sees body %q", b)
				}
			}
		})
	}
}

// TestVerifyFailures shows that each failure produces its own error, that it
// matches exactly one sentinel, and that the message says what to fix.
func TestVerifyFailures(t *testing.T) {
	other := agentKey(2)
	tests := []struct {
		name     string
		signer   func(t *testing.T) *Signer    // nil: the enrolled agent, default components
		sign     func(req *http.Request) error // overrides signer
		tamper   func(req *http.Request)       // applied to the server-side request
		verifier func(v *Verifier)
		want     error
		wantMsg  string
	}{
		{
			name:    "tampered body",
			tamper:  func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(`{"cpu":0.01,"mem":0.01}`)) },
			want:    ErrDigestMismatch,
			wantMsg: "sha-256 of the 23-byte body does not match",
		},
		{
			name:    "tampered path",
			tamper:  func(r *http.Request) { r.RequestURI = "/api/v1/agents/0000/report?full=1" },
			want:    ErrBadSignature,
			wantMsg: "altered in transit",
		},
		{
			name:    "tampered query",
			tamper:  func(r *http.Request) { r.RequestURI = "/api/v1/agents/7f3a/report?full=0" },
			want:    ErrBadSignature,
			wantMsg: `keyid "agent-7f3a"`,
		},
		{
			name:   "tampered method",
			tamper: func(r *http.Request) { r.Method = http.MethodDelete },
			want:   ErrBadSignature,
		},
		{
			name:   "tampered host",
			tamper: func(r *http.Request) { r.Host = "evil.example" },
			want:   ErrBadSignature,
		},
		{
			name:   "tampered content-digest header",
			tamper: func(r *http.Request) { r.Header.Set("Content-Digest", ContentDigest([]byte("other"))) },
			want:   ErrBadSignature,
		},
		{
			name:    "wrong key for keyid",
			signer:  func(t *testing.T) *Signer { return newTestSigner(t, other, agentKeyID, nil) },
			want:    ErrBadSignature,
			wantMsg: "signed with a key other than the one enrolled",
		},
		{
			name:    "unknown key id",
			signer:  func(t *testing.T) *Signer { return newTestSigner(t, other, "agent-ghost", nil) },
			want:    ErrUnknownKey,
			wantMsg: `keyid "agent-ghost": agent not enrolled`,
		},
		{
			name:     "created in the future",
			verifier: func(v *Verifier) { v.Now = fixedClock(signedAt - 312) },
			want:     ErrCreatedInFuture,
			wantMsg:  "signature created 312s in the future; allowed skew is 30s — check the agent's clock",
		},
		{
			name:     "created too long ago",
			verifier: func(v *Verifier) { v.Now = fixedClock(signedAt + 95) },
			want:     ErrCreatedTooOld,
			wantMsg:  "signature created 95s ago; allowed skew is 30s",
		},
		{
			name: "expired",
			signer: func(t *testing.T) *Signer {
				s := newTestSigner(t, agentKey(1), agentKeyID, nil)
				s.TTL = 5 * time.Second
				return s
			},
			verifier: func(v *Verifier) { v.Now = fixedClock(signedAt + 12) },
			want:     ErrExpired,
			wantMsg:  "expired 7s ago",
		},
		{
			name:    "missing both headers",
			tamper:  func(r *http.Request) { r.Header.Del("Signature"); r.Header.Del("Signature-Input") },
			want:    ErrMissingSignature,
			wantMsg: "no Signature-Input or Signature header",
		},
		{
			name:    "missing Signature header",
			tamper:  func(r *http.Request) { r.Header.Del("Signature") },
			want:    ErrMissingSignature,
			wantMsg: "Signature missing",
		},
		{
			name:    "missing Signature-Input header",
			tamper:  func(r *http.Request) { r.Header.Del("Signature-Input") },
			want:    ErrMissingSignature,
			wantMsg: "Signature-Input missing",
		},
		{
			name:     "label not present",
			verifier: func(v *Verifier) { v.Label = "pulse" },
			want:     ErrMissingSignature,
			wantMsg:  `no signature labelled "pulse" (Signature-Input has: sig1)`,
		},
		{
			name:   "malformed Signature-Input: unterminated list",
			tamper: func(r *http.Request) { r.Header.Set("Signature-Input", `sig1=("@method" "@target-uri"`) },
			want:   ErrMalformedSignatureInput,
		},
		{
			name: "malformed Signature-Input: created is a string",
			tamper: func(r *http.Request) {
				r.Header.Set("Signature-Input", `sig1=("@method" "@target-uri" "content-digest");created="now";keyid="agent-7f3a"`)
			},
			want:    ErrMalformedSignatureInput,
			wantMsg: `"created" must be an integer`,
		},
		{
			name:   "malformed Signature-Input: member is not a list",
			tamper: func(r *http.Request) { r.Header.Set("Signature-Input", `sig1="@method"`) },
			want:   ErrMalformedSignatureInput,
		},
		{
			name:   "malformed Signature: not a byte sequence",
			tamper: func(r *http.Request) { r.Header.Set("Signature", `sig1="abc"`) },
			want:   ErrMalformedSignature,
		},
		{
			name:    "malformed Signature: wrong length",
			tamper:  func(r *http.Request) { r.Header.Set("Signature", `sig1=:AAAA:`) },
			want:    ErrMalformedSignature,
			wantMsg: "is 3 bytes; an ed25519 signature is 64",
		},
		{
			name: "required component not covered",
			signer: func(t *testing.T) *Signer {
				return newTestSigner(t, agentKey(1), agentKeyID, []string{"@method", "@path", "content-digest"})
			},
			want:    ErrComponentNotCovered,
			wantMsg: `"@target-uri" is not covered (covered: @method @path content-digest)`,
		},
		{
			name: "created not covered",
			sign: func(r *http.Request) error {
				r.Header.Set("Content-Digest", ContentDigest([]byte(reportBody)))
				return SignRequest(r, agentKey(1), "sig1", SignatureParams{Components: DefaultComponents(), Params: []Param{KeyID(agentKeyID)}})
			},
			want:    ErrMissingParameter,
			wantMsg: "created is absent",
		},
		{
			name: "wrong alg",
			sign: func(r *http.Request) error {
				r.Header.Set("Content-Digest", ContentDigest([]byte(reportBody)))
				return SignRequest(r, agentKey(1), "sig1", SignatureParams{Components: DefaultComponents(),
					Params: []Param{Created(time.Unix(signedAt, 0)), KeyID(agentKeyID), Alg("rsa-pss-sha512")}})
			},
			want: ErrUnsupportedAlgorithm,
		},
		{
			name: "unsupported component parameter",
			tamper: func(r *http.Request) {
				r.Header.Set("Signature-Input", `sig1=("@method" "@target-uri" "content-digest" "@query-param";name="full");created=1750000000;keyid="agent-7f3a"`)
			},
			want:    ErrUnsupportedComponent,
			wantMsg: "component parameters are not supported",
		},
		{
			name: "covered header stripped in transit",
			signer: func(t *testing.T) *Signer {
				return newTestSigner(t, agentKey(1), agentKeyID, append(DefaultComponents(), "x-pulse-agent-version"))
			},
			tamper:  func(r *http.Request) { r.Header.Del("X-Pulse-Agent-Version") },
			want:    ErrComponentMissing,
			wantMsg: `covers "x-pulse-agent-version" but the request has no x-pulse-agent-version header`,
		},
		{
			name:     "body over limit",
			verifier: func(v *Verifier) { v.MaxBodyBytes = 8 },
			want:     ErrBodyTooLarge,
		},
		{
			name: "lookup returns unusable key",
			verifier: func(v *Verifier) {
				v.lookup = func(context.Context, string) (ed25519.PublicKey, error) { return ed25519.PublicKey{1, 2, 3}, nil }
			},
			want:    ErrUnknownKey,
			wantMsg: "3-byte key",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cli := newReport(t)
			cli.Header.Set("X-Pulse-Agent-Version", "1.4.2")
			var err error
			switch {
			case tc.sign != nil:
				err = tc.sign(cli)
			case tc.signer != nil:
				err = tc.signer(t).Sign(cli)
			default:
				err = newTestSigner(t, agentKey(1), agentKeyID, nil).Sign(cli)
			}
			if err != nil {
				t.Fatal(err)
			}
			srv := roundTripToServer(t, cli)
			if tc.tamper != nil {
				tc.tamper(srv)
			}
			v := newTestVerifier(t)
			if tc.verifier != nil {
				tc.verifier(v)
			}
			_, err = v.Verify(srv)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v\nwant errors.Is(err, %v)", err, tc.want)
			}
			if m := matchingSentinels(err); len(m) != 1 {
				t.Errorf("error matches %d sentinels %v, want exactly one", len(m), m)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("message %q\ndoes not contain %q", err, tc.wantMsg)
			}
		})
	}
}

// Typed errors carry the details programmatically, and the lookup error is
// passed through.
func TestErrorTypes(t *testing.T) {
	cli := newReport(t)
	if err := newTestSigner(t, agentKey(1), agentKeyID, nil).Sign(cli); err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t)
	v.Now = fixedClock(signedAt - 312)
	_, err := v.Verify(roundTripToServer(t, cli))
	var se *SkewError
	if !errors.As(err, &se) || se.Offset() != 312*time.Second || se.Allowed != maxSkew {
		t.Errorf("SkewError = %+v (err %v)", se, err)
	}

	cli = newReport(t)
	if err := newTestSigner(t, agentKey(1), "agent-ghost", nil).Sign(cli); err != nil {
		t.Fatal(err)
	}
	_, err = newTestVerifier(t).Verify(roundTripToServer(t, cli))
	var ke *KeyError
	if !errors.As(err, &ke) || ke.KeyID != "agent-ghost" || !errors.Is(err, errNotEnrolled) {
		t.Errorf("KeyError = %+v (err %v); want keyid and the lookup's own error", ke, err)
	}
}

// Exactly at the skew boundary is accepted in both directions.
func TestSkewBoundary(t *testing.T) {
	for _, now := range []int64{signedAt - 30, signedAt + 30} {
		cli := newReport(t)
		if err := newTestSigner(t, agentKey(1), agentKeyID, nil).Sign(cli); err != nil {
			t.Fatal(err)
		}
		v := newTestVerifier(t)
		v.Now = fixedClock(now)
		if _, err := v.Verify(roundTripToServer(t, cli)); err != nil {
			t.Errorf("now=created%+ds: %v", now-signedAt, err)
		}
	}
}

// Over real net/http, TLS and a connection: nothing the client or server
// stack does to the request breaks the signature.
func TestEndToEndOverHTTPS(t *testing.T) {
	var v *Verifier
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := v.Verify(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", res.KeyID, body)
	}))
	defer ts.Close()

	pub := agentKey(1).Public().(ed25519.PublicKey)
	var err error
	if v, err = NewVerifier(lookupOnly(agentKeyID, pub), DefaultComponents(), maxSkew); err != nil {
		t.Fatal(err)
	}
	signer, err := NewSigner(agentKey(1), agentKeyID, nil) // real clock on both sides
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/report?full=1&tag=a%20b", reportBody},
		{http.MethodGet, "/api/v1/config", ""},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req, err := http.NewRequest(tc.method, ts.URL+tc.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if err := signer.Sign(req); err != nil {
			t.Fatal(err)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != agentKeyID+":"+tc.body {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, got)
		}
	}
}

func TestConstructorValidation(t *testing.T) {
	key := agentKey(1)
	for _, tc := range []struct {
		name  string
		keyID string
		key   ed25519.PrivateKey
		comps []string
		want  error
	}{
		{"short key", agentKeyID, key[:10], nil, nil},
		{"empty key id", "", key, nil, nil},
		{"non-ASCII key id", "agent-é", key, nil, nil},
		{"unknown derived component", agentKeyID, key, []string{"@status"}, ErrUnsupportedComponent},
		{"duplicate component", agentKeyID, key, []string{"@method", "@METHOD"}, ErrUnsupportedComponent},
		{"signature-params listed", agentKeyID, key, []string{"@signature-params"}, ErrUnsupportedComponent},
		{"bad field name", agentKeyID, key, []string{"x y"}, ErrUnsupportedComponent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSigner(tc.key, tc.keyID, tc.comps)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("NewSigner err = %v, want %v", err, tc.want)
			}
		})
	}
	if s, err := NewSigner(key, agentKeyID, []string{"@Method", "Content-Digest"}); err != nil || s.components[1] != "content-digest" {
		t.Errorf("field names should be lower-cased: %v %v", s, err)
	}

	lookup := lookupOnly(agentKeyID, key.Public().(ed25519.PublicKey))
	if _, err := NewVerifier(nil, nil, maxSkew); err == nil {
		t.Error("NewVerifier accepted nil lookup")
	}
	if _, err := NewVerifier(lookup, nil, 0); err == nil {
		t.Error("NewVerifier accepted zero skew")
	}
	if _, err := NewVerifier(lookup, []string{"Content-Digest"}, maxSkew); !errors.Is(err, ErrUnsupportedComponent) {
		t.Errorf("NewVerifier with upper-case required component: %v", err)
	}
}

func TestSignatureParamsSerialize(t *testing.T) {
	sp := SignatureParams{
		Components: []string{"@method", "content-digest"},
		Params:     []Param{Created(time.Unix(1, 0)), Expires(time.Unix(2, 0)), Nonce(`n"\`), Alg(AlgEd25519), KeyID("k"), Tag("t")},
	}
	got, err := sp.Serialize()
	want := `("@method" "content-digest");created=1;expires=2;nonce="n\"\\";alg="ed25519";keyid="k";tag="t"`
	if err != nil || got != want {
		t.Errorf("Serialize = %s, %v\nwant %s", got, err, want)
	}
	// Order is the caller's.
	sp.Params = []Param{Tag("t"), KeyID("k"), Created(time.Unix(1, 0))}
	if got, _ := sp.Serialize(); got != `("@method" "content-digest");tag="t";keyid="k";created=1` {
		t.Errorf("order not preserved: %s", got)
	}
	for _, bad := range [][]Param{
		{{ParamNameCreated, "1"}},
		{{ParamNameKeyID, 7}},
		{{"x", struct{}{}}},
		{KeyID("a"), KeyID("b")},
		{{"Bad-Key", "v"}},
	} {
		if _, err := (SignatureParams{Params: bad}).Serialize(); err == nil {
			t.Errorf("Serialize(%v) succeeded", bad)
		}
	}
}

func TestContentDigestChecks(t *testing.T) {
	body := []byte(rfcB2Body)
	sha256v := "sha-256=:" + bodySHA256B64 + ":"
	sha512v := "sha-512=:" + rfcB2SHA512 + ":"
	tests := []struct {
		name   string
		values []string
		want   error
	}{
		{"sha-256", []string{sha256v}, nil},
		{"sha-512 (RFC 9421 B.2)", []string{sha512v}, nil},
		{"both", []string{sha256v + ", " + sha512v}, nil},
		{"both, split over field lines", []string{sha512v, sha256v}, nil},
		{"unknown algorithm ignored beside a good one", []string{"md5=:AAAA:, " + sha256v}, nil},
		{"sha-256 wrong", []string{"sha-256=:" + rfcB2SHA512 + ":"}, ErrDigestMismatch},
		{"one of two wrong", []string{sha512v + ", sha-256=:AAAA:"}, ErrDigestMismatch},
		{"only unknown algorithms", []string{"md5=:AAAA:, unixsum=:AAAA:"}, ErrMalformedDigest},
		{"not a dictionary", []string{"sha-256 = abc"}, ErrMalformedDigest},
		{"digest as string", []string{`sha-256="` + bodySHA256B64 + `"`}, ErrMalformedDigest},
		{"absent", nil, ErrComponentMissing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkContentDigest(tc.values, body)
			if (tc.want == nil && err != nil) || !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUnfold(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\n b":         "a b",
		"a  \r\n\t  b":    "a b",
		"a\n b":           "a b",
		"plain":           "plain",
		"a\r\nb":          "a\r\nb", // not a fold: rejected later
		"x\r\n y\r\n\tz ": "x y z ",
	} {
		if got := unfold(in); got != want {
			t.Errorf("unfold(%q) = %q, want %q", in, got, want)
		}
	}
	m := &message{header: http.Header{"X-Bad": {"a\r\nb"}}}
	if _, err := m.field("x-bad"); !errors.Is(err, ErrInvalidComponentValue) {
		t.Errorf("field with bare CRLF: %v", err)
	}
}
