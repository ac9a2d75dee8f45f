package httpsig

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/dunglas/httpsfv"
)

// DefaultMaxBodyBytes bounds how much of a request body VerifyContentDigest
// and the Verifier buffer. Checking a digest means holding the whole body
// before the handler runs, so an unbounded read would let any client
// exhaust the hub's memory.
const DefaultMaxBodyBytes = 10 << 20

// ContentDigest returns the RFC 9530 Content-Digest field value for body
// using sha-256, e.g. "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:".
// Signing this header (component "content-digest") is what makes the body
// tamper-evident: the signature covers the digest, the digest covers the
// body.
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// digestAlgs are the algorithms accepted on verification. Both are in the
// RFC 9530 registry as "standard"; sha-512 is accepted because peers and the
// RFC 9421 examples use it. Insecure registry entries (md5, sha, unixsum...)
// are deliberately ignored.
var digestAlgs = map[string]func([]byte) []byte{
	"sha-256": func(b []byte) []byte { s := sha256.Sum256(b); return s[:] },
	"sha-512": func(b []byte) []byte { s := sha512.Sum512(b); return s[:] },
}

// VerifyContentDigest checks req's Content-Digest header against its body.
// The body is read (at most DefaultMaxBodyBytes) and replaced with an
// equivalent reader, so handlers can still read it afterwards. Every
// sha-256 or sha-512 digest present must match; other algorithms are
// ignored, and a header with none of these is rejected with
// ErrMalformedDigest.
func VerifyContentDigest(req *http.Request) error {
	body, err := bufferBody(req, DefaultMaxBodyBytes)
	if err != nil {
		return err
	}
	return checkContentDigest(req.Header.Values("Content-Digest"), body)
}

// checkContentDigest is the I/O-free core of VerifyContentDigest.
func checkContentDigest(values []string, body []byte) error {
	if len(values) == 0 {
		return fmt.Errorf("%w: the request has no Content-Digest header", ErrComponentMissing)
	}
	d, err := httpsfv.UnmarshalDictionary(values)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedDigest, err)
	}
	names := d.Names()
	checked := 0
	for _, alg := range names {
		sum, known := digestAlgs[alg]
		if !known {
			continue
		}
		m, _ := d.Get(alg)
		it, ok := m.(httpsfv.Item)
		if !ok {
			return fmt.Errorf("%w: %s is not a byte sequence", ErrMalformedDigest, alg)
		}
		want, ok := it.Value.([]byte)
		if !ok {
			return fmt.Errorf("%w: %s is not a byte sequence (want %s=:base64:)", ErrMalformedDigest, alg, alg)
		}
		if subtle.ConstantTimeCompare(want, sum(body)) != 1 {
			return fmt.Errorf("%w: %s of the %d-byte body does not match the Content-Digest header — the body was changed after signing, or the sender digested different bytes (e.g. before compression)",
				ErrDigestMismatch, alg, len(body))
		}
		checked++
	}
	if checked == 0 {
		got := append([]string(nil), names...)
		sort.Strings(got)
		return fmt.Errorf("%w: no sha-256 or sha-512 digest (got: %s) — the sender must use sha-256 or sha-512",
			ErrMalformedDigest, strings.Join(got, ", "))
	}
	return nil
}

// bufferBody reads req.Body fully (failing with ErrBodyTooLarge beyond
// limit, if limit > 0) and replaces it with an in-memory copy so it can be
// read again by the next handler or, for client requests, resent on retry.
func bufferBody(req *http.Request, limit int64) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	r := io.Reader(req.Body)
	if limit > 0 {
		r = io.LimitReader(req.Body, limit+1)
	}
	body, err := io.ReadAll(r)
	_ = req.Body.Close() // fully read or failed: a close error adds nothing
	if err != nil {
		return nil, fmt.Errorf("httpsig: reading request body: %w", err)
	}
	if limit > 0 && int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, nil
}
