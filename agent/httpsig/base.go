package httpsig

import (
	"bytes"
	"fmt"
	"net/http"
)

// SignatureBase returns the RFC 9421 §2.5 signature base for req covering
// sp.Components, ending with the "@signature-params" line built from sp. It
// is exported so that tests, debugging tools and a hub operator chasing a
// "signature does not verify" report can see the exact bytes that were (or
// should have been) signed.
//
// The scheme for @scheme and @target-uri comes from req.URL.Scheme, else
// "https" if req.TLS is set, else "http".
func SignatureBase(req *http.Request, sp SignatureParams) ([]byte, error) {
	m, err := newMessage(req, "")
	if err != nil {
		return nil, err
	}
	return signatureBase(m, sp)
}

func signatureBase(m *message, sp SignatureParams) ([]byte, error) {
	// Serialising first also validates the component list.
	params, err := sp.Serialize()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, c := range sp.Components {
		v, err := m.value(c)
		if err != nil {
			return nil, err
		}
		// Validated identifiers contain no '"' or '\', so quoting them is
		// their exact Structured Field string serialisation.
		b.WriteByte('"')
		b.WriteString(c)
		b.WriteString(`": `)
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(params)
	if bytes.IndexByte(b.Bytes(), '\r') >= 0 {
		return nil, fmt.Errorf("%w: signature base would contain a carriage return", ErrInvalidComponentValue)
	}
	return b.Bytes(), nil
}
