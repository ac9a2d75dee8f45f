package httpsig

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Values printed in RFC 9421 Appendix B (see testdata/README.md).
const (
	rfcKeyID      = "test-key-ed25519"
	rfcCreated    = 1618884473
	rfcB26Label   = "sig-b26"
	rfcB26SigB64  = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
	rfcB2Body     = `{"hello": "world"}`
	rfcB2SHA512   = "WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew=="
	bodySHA256B64 = "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=" // openssl dgst -sha256 of rfcB2Body
)

var rfcB26Components = []string{"date", "@method", "@path", "@authority", "content-type", "content-length"}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfcKeys parses the B.1.4 PEM files.
func rfcKeys(t testing.TB) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	blk, _ := pem.Decode(readTestdata(t, "test-key-ed25519.pem"))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ = pem.Decode(readTestdata(t, "test-key-ed25519.pub.pem"))
	p, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PrivateKey), p.(ed25519.PublicKey)
}

// rfcRequest parses the B.2 test-request as a server would receive it, with
// extra header lines appended to the header section.
func rfcRequest(t testing.TB, extra ...string) *http.Request {
	t.Helper()
	raw := string(readTestdata(t, "b2-request.http"))
	head, body, ok := strings.Cut(raw, "\n\n")
	if !ok {
		t.Fatal("b2-request.http: no blank line")
	}
	lines := append(strings.Split(head, "\n"), extra...)
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(strings.Join(lines, "\r\n") + "\r\n\r\n" + body)))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// rfcSignedHeaders returns the B.2.6 Signature-Input and Signature lines.
func rfcSignedHeaders(t testing.TB) []string {
	return strings.Split(strings.TrimSpace(string(readTestdata(t, "b26-signature-headers.txt"))), "\n")
}

func rfcB26Params() SignatureParams {
	return SignatureParams{
		Components: rfcB26Components,
		Params:     []Param{Created(time.Unix(rfcCreated, 0)), KeyID(rfcKeyID)},
	}
}

func fixedClock(unix int64) func() time.Time {
	return func() time.Time { return time.Unix(unix, 0) }
}

func lookupOnly(id string, pub ed25519.PublicKey) KeyLookup {
	return func(_ context.Context, keyID string) (ed25519.PublicKey, error) {
		if keyID == id {
			return pub, nil
		}
		return nil, errNotEnrolled
	}
}

var errNotEnrolled = errors.New("agent not enrolled")

// The test key pair is self-consistent (guards against a transcription error
// in either PEM file).
func TestRFC9421_B14_KeyPair(t *testing.T) {
	priv, pub := rfcKeys(t)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
		t.Fatal("B.1.4 public key does not match private key")
	}
}

// (a) Our signature base for B.2.6 is byte-identical to the RFC's.
func TestRFC9421_B26_SignatureBase(t *testing.T) {
	want := readTestdata(t, "b26-signature-base.txt")
	got, err := SignatureBase(rfcRequest(t), rfcB26Params())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("signature base differs from RFC 9421 B.2.6\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// (b) Signing the B.2 request produces exactly the RFC's Signature-Input and
// Signature field values (ed25519 is deterministic).
func TestRFC9421_B26_Sign(t *testing.T) {
	priv, _ := rfcKeys(t)
	req := rfcRequest(t)
	if err := SignRequest(req, priv, rfcB26Label, rfcB26Params()); err != nil {
		t.Fatal(err)
	}
	want := rfcSignedHeaders(t)
	for _, line := range want {
		name, val, _ := strings.Cut(line, ": ")
		if got := req.Header.Get(name); got != val {
			t.Errorf("%s:\n got %s\nwant %s", name, got, val)
		}
	}
	if got := req.Header.Get("Signature"); got != rfcB26Label+"=:"+rfcB26SigB64+":" {
		t.Errorf("Signature = %s, want the RFC value %s", got, rfcB26SigB64)
	}
}

// (c) The verifier accepts the RFC's own signature.
func TestRFC9421_B26_Verify(t *testing.T) {
	_, pub := rfcKeys(t)
	v, err := NewVerifier(lookupOnly(rfcKeyID, pub), rfcB26Components, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v.Now = fixedClock(rfcCreated + 5)
	v.Label = rfcB26Label
	res, err := v.Verify(rfcRequest(t, rfcSignedHeaders(t)...))
	if err != nil {
		t.Fatalf("RFC 9421 B.2.6 signature rejected: %v", err)
	}
	if res.KeyID != rfcKeyID || res.Created.Unix() != rfcCreated || res.Label != rfcB26Label {
		t.Errorf("Verified = %+v", res)
	}

	// The RFC signature is genuine but does not meet Pulse's policy.
	strict, _ := NewVerifier(lookupOnly(rfcKeyID, pub), DefaultComponents(), 30*time.Second)
	strict.Now = v.Now
	_, err = strict.Verify(rfcRequest(t, rfcSignedHeaders(t)...))
	if !errors.Is(err, ErrComponentNotCovered) || !strings.Contains(err.Error(), `"@target-uri"`) {
		t.Errorf("Pulse policy on B.2.6: err = %v, want ErrComponentNotCovered for @target-uri", err)
	}
}

// The B.2 Content-Digest (sha-512) verifies against the B.2 body; our sha-256
// digest of the same body is the independently computed value.
func TestRFC9421_B2_ContentDigest(t *testing.T) {
	req := rfcRequest(t)
	if got := req.Header.Get("Content-Digest"); got != "sha-512=:"+rfcB2SHA512+":" {
		t.Fatalf("testdata Content-Digest = %q", got)
	}
	sum := sha512.Sum512([]byte(rfcB2Body))
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != rfcB2SHA512 {
		t.Fatalf("sha-512 of B.2 body = %s, RFC prints %s", got, rfcB2SHA512)
	}
	if err := VerifyContentDigest(req); err != nil {
		t.Fatalf("VerifyContentDigest(B.2) = %v", err)
	}
	body, _ := io.ReadAll(req.Body)
	if string(body) != rfcB2Body {
		t.Fatalf("body after verification = %q; handlers must still be able to read it", body)
	}
	if got, want := ContentDigest([]byte(rfcB2Body)), "sha-256=:"+bodySHA256B64+":"; got != want {
		t.Errorf("ContentDigest = %s, want %s", got, want)
	}
}

// Derived component values against the examples printed in RFC 9421 §2.2.2,
// §2.2.5 and §2.2.7, plus the remaining components by their definitions.
func TestDerivedComponents(t *testing.T) {
	const post = "POST /path?param=value HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
	tests := []struct {
		source    string
		raw       string
		https     bool
		component string
		want      string
	}{
		{"RFC 9421 §2.2.2", post, true, "@target-uri", "https://www.example.com/path?param=value"},
		{"RFC 9421 §2.2.5 origin-form", post, true, "@request-target", "/path?param=value"},
		{"RFC 9421 §2.2.5 absolute-form", "GET https://www.example.com/path?param=value HTTP/1.1\r\n\r\n", false, "@request-target", "https://www.example.com/path?param=value"},
		{"RFC 9421 §2.2.5 authority-form", "CONNECT www.example.com:80 HTTP/1.1\r\nHost: www.example.com\r\n\r\n", false, "@request-target", "www.example.com:80"},
		{"RFC 9421 §2.2.5 asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: www.example.com\r\n\r\n", false, "@request-target", "*"},
		{"RFC 9421 §2.2.7", "GET /path?param=value&foo=bar&baz=bat%2Dman HTTP/1.1\r\nHost: www.example.com\r\n\r\n", true, "@query", "?param=value&foo=bar&baz=bat%2Dman"},
		{"RFC 9421 §2.2.7", "POST /path?queryString HTTP/1.1\r\nHost: www.example.com\r\n\r\n", true, "@query", "?queryString"},
		{"RFC 9421 §2.2.7 absent query", "GET /path HTTP/1.1\r\nHost: www.example.com\r\n\r\n", true, "@query", "?"},
		{"definition: @method", post, true, "@method", "POST"},
		{"definition: @path", post, true, "@path", "/path"},
		{"definition: @scheme over TLS", post, true, "@scheme", "https"},
		{"definition: @scheme plain", post, false, "@scheme", "http"},
		{"definition: @authority", post, true, "@authority", "www.example.com"},
		{"normalisation: host lower-cased, default port dropped", "GET /x HTTP/1.1\r\nHost: WWW.Example.COM:443\r\n\r\n", true, "@authority", "www.example.com"},
		{"normalisation: non-default port kept", "GET /x HTTP/1.1\r\nHost: www.example.com:8443\r\n\r\n", true, "@target-uri", "https://www.example.com:8443/x"},
		{"percent-encoding not decoded", "GET /a%2Fb%20c?q=%41 HTTP/1.1\r\nHost: h\r\n\r\n", false, "@path", "/a%2Fb%20c"},
		{"host field from Host header", post, false, "host", "www.example.com"},
		{"field: trimmed, multiple lines joined", "GET / HTTP/1.1\r\nHost: h\r\nX-Multi:  a \r\nX-Multi: b\t\r\n\r\n", false, "x-multi", "a, b"},
		{"field: empty value", "GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n", false, "x-empty", ""},
	}
	for _, tc := range tests {
		t.Run(tc.source+" "+tc.component, func(t *testing.T) {
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.raw)))
			if err != nil {
				t.Fatal(err)
			}
			if tc.https {
				req.TLS = &tls.ConnectionState{}
			}
			base, err := SignatureBase(req, SignatureParams{Components: []string{tc.component}})
			if err != nil {
				t.Fatal(err)
			}
			line, _, _ := strings.Cut(string(base), "\n")
			if want := fmt.Sprintf("%q: %s", tc.component, tc.want); line != want {
				t.Errorf("got  %s\nwant %s", line, want)
			}
		})
	}
}

// A client-side request (as built by the agent) and the same request as
// received by the hub produce the same signature base; otherwise no
// signature would ever verify.
func TestClientAndServerViewsAgree(t *testing.T) {
	comps := []string{"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query", "content-type"}
	for _, u := range []string{
		"https://Hub.Example:443/api/v1/report?x=1&y=a%20b",
		"https://hub.example/",
		"https://hub.example",
		"http://hub.example:8080/p/a%2Fb?",
		"https://hub.example/p?",
	} {
		t.Run(u, func(t *testing.T) {
			cli, err := http.NewRequest(http.MethodPut, u, strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			cli.Header.Set("Content-Type", "text/plain")
			sp := SignatureParams{Components: comps, Params: []Param{Created(time.Unix(1, 0))}}
			want, err := SignatureBase(cli, sp)
			if err != nil {
				t.Fatal(err)
			}
			srv := roundTripToServer(t, cli)
			got, err := SignatureBase(srv, sp)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("client base:\n%s\nserver base:\n%s", want, got)
			}
		})
	}
}

// roundTripToServer serialises a client request as net/http would put it on
// the wire and parses it back as the server would see it.
func roundTripToServer(t testing.TB, cli *http.Request) *http.Request {
	t.Helper()
	var wire bytes.Buffer
	if err := cli.Write(&wire); err != nil {
		t.Fatal(err)
	}
	srv, err := http.ReadRequest(bufio.NewReader(&wire))
	if err != nil {
		t.Fatal(err)
	}
	if cli.URL.Scheme == "https" {
		srv.TLS = &tls.ConnectionState{}
	}
	return srv
}
