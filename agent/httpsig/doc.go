// Package httpsig implements the part of HTTP Message Signatures (RFC 9421)
// and Digest Fields (RFC 9530) that Pulse agents use to authenticate every
// request they send to the hub.
//
// Why this shape: an agent holds one ed25519 key, enrolled at the hub under a
// key id. Each request carries a Content-Digest of its body and a signature
// over the method, the full target URI and that digest, stamped with a
// creation time. The hub looks up the key by id, checks the time against its
// own clock, checks the signature, and finally checks the body against the
// signed digest. Anything that changes the method, URL or body in transit, or
// replays a request after the skew window, is rejected with an error that
// says which of those happened.
//
// Only the subset of RFC 9421 that Pulse needs is implemented: request
// signatures, the derived components @method, @target-uri, @authority,
// @scheme, @request-target, @path and @query, plain header fields, and the
// ed25519 algorithm. Component parameters (;sf, ;key, ;bs, ;req, ;tr,
// @query-param;name=...) and responses are not supported and are rejected
// rather than silently mis-verified.
//
// The package deliberately depends only on the standard library and
// github.com/dunglas/httpsfv so that the agent binary stays small.
package httpsig
