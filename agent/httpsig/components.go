package httpsig

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// Derived component identifiers supported by this package (RFC 9421 §2.2).
// Exported so that signer and verifier configuration can refer to them
// without typos that would only show up as verification failures.
const (
	ComponentMethod        = "@method"
	ComponentTargetURI     = "@target-uri"
	ComponentAuthority     = "@authority"
	ComponentScheme        = "@scheme"
	ComponentRequestTarget = "@request-target"
	ComponentPath          = "@path"
	ComponentQuery         = "@query"

	// ComponentContentDigest is the Content-Digest header field (RFC 9530).
	// Covering it is what binds the body to the signature.
	ComponentContentDigest = "content-digest"
)

// DefaultComponents returns the components Pulse agents sign and the hub
// requires: the method and full URL (so a request cannot be replayed against
// another endpoint or host) and the body digest (so the body cannot be
// changed). A fresh slice is returned so callers may append to it.
func DefaultComponents() []string {
	return []string{ComponentMethod, ComponentTargetURI, ComponentContentDigest}
}

var derivedComponents = map[string]bool{
	ComponentMethod:        true,
	ComponentTargetURI:     true,
	ComponentAuthority:     true,
	ComponentScheme:        true,
	ComponentRequestTarget: true,
	ComponentPath:          true,
	ComponentQuery:         true,
}

// checkComponents rejects component lists this package cannot sign or verify
// faithfully: unknown derived components, non-lower-case or non-token field
// names, duplicates, and @signature-params (which is implicit).
func checkComponents(cs []string) error {
	seen := make(map[string]bool, len(cs))
	for _, c := range cs {
		if err := checkComponent(c); err != nil {
			return err
		}
		if seen[c] {
			return fmt.Errorf("%w: %q is listed twice; each component may be covered only once", ErrUnsupportedComponent, c)
		}
		seen[c] = true
	}
	return nil
}

func checkComponent(c string) error {
	if c == "@signature-params" {
		return fmt.Errorf("%w: @signature-params is always the last line of the base and must not be listed", ErrUnsupportedComponent)
	}
	if strings.HasPrefix(c, "@") {
		if !derivedComponents[c] {
			return fmt.Errorf("%w: derived component %q is not implemented (supported: @method, @target-uri, @authority, @scheme, @request-target, @path, @query)", ErrUnsupportedComponent, c)
		}
		return nil
	}
	if c == "" {
		return fmt.Errorf("%w: empty component name", ErrUnsupportedComponent)
	}
	for i := 0; i < len(c); i++ {
		if !isLowerTchar(c[i]) {
			return fmt.Errorf("%w: %q is not a lower-case HTTP field name (RFC 9421 §2.1 requires lower-case)", ErrUnsupportedComponent, c)
		}
	}
	return nil
}

// isLowerTchar reports whether b is an RFC 9110 tchar other than an
// upper-case letter.
func isLowerTchar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// message is the view of a request that component derivation needs. It is
// built once per signature so that the signer (client-side request) and the
// verifier (server-side request) derive every component from the same kind
// of data: the request-target string as it appears on the wire.
type message struct {
	method    string
	scheme    string
	authority string // normalised: lower-case, default port removed
	target    string // request-target as on the request line
	path      string
	query     string // without '?'
	hasQuery  bool
	pathErr   error // set when path/query cannot be derived from target
	header    http.Header
	host      string // Host as sent, for a covered "host" field
}

// newMessage derives component inputs from req. A client-side request (empty
// RequestURI) uses req.URL.RequestURI(), which is exactly what net/http writes
// on the request line; a server-side request uses req.RequestURI, the line as
// received. scheme, if non-empty, overrides the scheme that would otherwise
// come from req.URL.Scheme or req.TLS (needed behind TLS-terminating proxies).
func newMessage(req *http.Request, scheme string) (*message, error) {
	if req.URL == nil {
		return nil, fmt.Errorf("%w: request has no URL", ErrComponentMissing)
	}
	m := &message{method: req.Method, header: req.Header}
	if m.method == "" {
		m.method = http.MethodGet // net/http's meaning of an empty method
	}

	switch {
	case scheme != "":
		m.scheme = strings.ToLower(scheme)
	case req.URL.Scheme != "":
		m.scheme = strings.ToLower(req.URL.Scheme)
	case req.TLS != nil:
		m.scheme = "https"
	default:
		m.scheme = "http"
	}

	m.host = req.Host
	if m.host == "" {
		m.host = req.URL.Host
	}
	m.authority = normaliseAuthority(m.host, m.scheme)

	if req.RequestURI != "" {
		m.target = req.RequestURI
	} else {
		m.target = req.URL.RequestURI()
	}
	if strings.HasPrefix(m.target, "/") {
		m.path, m.query, m.hasQuery = strings.Cut(m.target, "?")
	} else {
		// absolute-form, authority-form (CONNECT) or asterisk-form: rare.
		// Derive path and query from the parsed form where there is one;
		// otherwise fail only if a signature actually covers them.
		u, err := url.Parse(m.target)
		switch {
		case err == nil && u.IsAbs():
			m.path, m.query, m.hasQuery = u.EscapedPath(), u.RawQuery, u.ForceQuery || u.RawQuery != ""
		default:
			m.pathErr = fmt.Errorf("%w: request target %q has no path or query", ErrInvalidComponentValue, m.target)
		}
	}
	if m.path == "" {
		m.path = "/"
	}
	return m, nil
}

// normaliseAuthority applies RFC 9110 §4.2.3 normalisation, as RFC 9421
// §2.2.3 requires for @authority: lower-case host and no default port.
func normaliseAuthority(host, scheme string) string {
	h := strings.ToLower(host)
	switch {
	case scheme == "https" && strings.HasSuffix(h, ":443"):
		h = strings.TrimSuffix(h, ":443")
	case scheme == "http" && strings.HasSuffix(h, ":80"):
		h = strings.TrimSuffix(h, ":80")
	}
	return h
}

// value returns the component value for identifier c (RFC 9421 §2.1, §2.2).
func (m *message) value(c string) (string, error) {
	switch c {
	case ComponentMethod:
		return m.method, nil
	case ComponentScheme:
		return m.scheme, nil
	case ComponentAuthority:
		if m.authority == "" {
			return "", fmt.Errorf("%w: @authority: request has no Host", ErrComponentMissing)
		}
		return m.authority, nil
	case ComponentTargetURI:
		if !strings.HasPrefix(m.target, "/") {
			if u, err := url.Parse(m.target); err == nil && u.IsAbs() {
				return m.target, nil // absolute-form already is the target URI
			}
		}
		if m.authority == "" {
			return "", fmt.Errorf("%w: @target-uri: request has no Host", ErrComponentMissing)
		}
		if m.pathErr != nil {
			return "", m.pathErr
		}
		t := m.path
		if m.hasQuery {
			t += "?" + m.query
		}
		return m.scheme + "://" + m.authority + t, nil
	case ComponentRequestTarget:
		return m.target, nil
	case ComponentPath:
		return m.path, m.pathErr
	case ComponentQuery:
		return "?" + m.query, m.pathErr
	}
	if strings.HasPrefix(c, "@") {
		return "", checkComponent(c)
	}
	return m.field(c)
}

// field returns the RFC 9421 §2.1 canonical value of a header field: each
// field line trimmed, obsolete line folding replaced by a space, lines joined
// with ", ".
func (m *message) field(name string) (string, error) {
	vals := m.header.Values(textproto.CanonicalMIMEHeaderKey(name))
	if len(vals) == 0 {
		// net/http moves Host out of the header map; read it back.
		if name == "host" && m.host != "" {
			vals = []string{m.host}
		} else {
			return "", fmt.Errorf("%w: the signature covers %q but the request has no %s header", ErrComponentMissing, name, name)
		}
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		v = unfold(v)
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("%w: header %q contains a line break", ErrInvalidComponentValue, name)
		}
		out[i] = strings.Trim(v, " \t")
	}
	return strings.Join(out, ", "), nil
}

// unfold replaces each obsolete line fold (CRLF or LF followed by spaces or
// tabs) with a single space, as RFC 9421 §2.1 requires.
func unfold(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); {
		j := i
		if v[j] == '\r' && j+1 < len(v) && v[j+1] == '\n' {
			j++
		}
		if v[j] == '\n' && j+1 < len(v) && (v[j+1] == ' ' || v[j+1] == '\t') {
			j++
			for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
				j++
			}
			// also absorb whitespace already written before the fold
			s := strings.TrimRight(b.String(), " \t")
			b.Reset()
			b.WriteString(s)
			b.WriteByte(' ')
			i = j
			continue
		}
		b.WriteByte(v[i])
		i++
	}
	return b.String()
}
