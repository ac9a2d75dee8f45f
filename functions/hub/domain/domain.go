// Package domain is the vocabulary the hub's rooms share: the errors a room may answer with (not found,
// conflict, denied by a rule, invalid with the field), who a request acts for, and the request context
// that carries it. It knows nothing of HTTP: the edge maps these errors to RFC 9457 problems in one place.
package domain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pulsehq/pulse/functions/yamlsrc"
)

// Kind is what went wrong, in terms a caller can act on.
type Kind int

const (
	// KindInvalid: the input is wrong; Field says where.
	KindInvalid Kind = iota + 1
	// KindNotFound: the thing named does not exist.
	KindNotFound
	// KindConflict: the request contradicts the current state (already approved, changed concurrently).
	KindConflict
	// KindDenied: the policy or a rule of the hub refuses the caller; Rules name the policy rules.
	KindDenied
	// KindUnauthenticated: the caller's credentials were refused.
	KindUnauthenticated
	// KindTooLarge: the input is over a size limit.
	KindTooLarge
	// KindInternal: the hub itself failed (a policy that cannot be evaluated).
	KindInternal
)

// Error is a refusal a room returns. Anything that is not an *Error is an infrastructure failure
// (usually the store), which the edge reports as "unavailable, try again".
type Error struct {
	Kind    Kind
	Msg     string
	Field   string   // for KindInvalid: where in the input
	Rules   []string // for KindDenied: the policy rules that decided
	Details []Detail // several located problems (a workflow's line:column list)
	Err     error    // the cause, for errors.Is/As
}

// Detail is one located problem of an input.
type Detail struct {
	Location string
	Message  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap exposes the cause.
func (e *Error) Unwrap() error { return e.Err }

// Invalid says the input is wrong.
func Invalid(format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Msg: fmt.Sprintf(format, args...)}
}

// NotFound says the thing named does not exist.
func NotFound(format string, args ...any) *Error {
	return &Error{Kind: KindNotFound, Msg: fmt.Sprintf(format, args...)}
}

// Conflict says the request contradicts the current state.
func Conflict(format string, args ...any) *Error {
	return &Error{Kind: KindConflict, Msg: fmt.Sprintf(format, args...)}
}

// Denied says the caller may not do this.
func Denied(format string, args ...any) *Error {
	return &Error{Kind: KindDenied, Msg: fmt.Sprintf(format, args...)}
}

// Unauthenticated says the caller's credentials were refused.
func Unauthenticated(format string, args ...any) *Error {
	return &Error{Kind: KindUnauthenticated, Msg: fmt.Sprintf(format, args...)}
}

// TooLarge says an input is over its limit.
func TooLarge(format string, args ...any) *Error {
	return &Error{Kind: KindTooLarge, Msg: fmt.Sprintf(format, args...)}
}

// Internal says the hub failed in a way that is not the store's.
func Internal(format string, args ...any) *Error {
	return &Error{Kind: KindInternal, Msg: fmt.Sprintf(format, args...)}
}

// Refused is the refusal of a source an operator applied (a workflow, a plan), what naming it
// ("workflow nightly"): one message with every problem, "line:column: path: message", and each problem
// as a detail located in body.source ("body.source:4:11 units[1].type"), so a client can point at
// each. An err that is not a *yamlsrc.Error is one problem without a place.
func Refused(what string, err error) *Error {
	var ye *yamlsrc.Error
	if !errors.As(err, &ye) {
		return &Error{Kind: KindInvalid, Msg: what + " refused: " + err.Error(), Err: err,
			Details: []Detail{{Location: "body.source", Message: err.Error()}}}
	}
	parts := make([]string, len(ye.Problems))
	de := &Error{Kind: KindInvalid, Err: err}
	for i, p := range ye.Problems {
		parts[i] = p.String()
		loc := "body.source"
		if p.Line > 0 {
			loc = fmt.Sprintf("body.source:%d:%d", p.Line, p.Column)
		}
		if p.Path != "" {
			loc += " " + p.Path
		}
		de.Details = append(de.Details, Detail{Location: loc, Message: p.Message})
	}
	de.Msg = what + " refused: " + strings.Join(parts, "; ")
	return de
}

// Refusal reports whether err is a refusal of the request (anything but an infrastructure or internal
// failure): what a workflow step records as "refused" instead of retrying.
func Refusal(err error) bool {
	var de *Error
	return errors.As(err, &de) && de.Kind != KindInternal
}

// Principal is who an operator request acts for.
type Principal struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Email  string   `json:"email,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Via    string   `json:"via" doc:"How the principal authenticated: token, oidc or forward-auth."`
	// Person is who this is, namespaced by how the identity was established and in lower case, so that
	// two credentials of one person are one approver and a token named like a forward-auth user is not
	// that user: person:<name> (an API token's owner), oidc:<issuer>#<subject>, forward:<user>.
	Person string `json:"person,omitempty"`
	// Lineage are the people whose credentials made this one (an API token created by a token created
	// by …): none of them may count this credential's approval of their own command.
	Lineage []string `json:"lineage,omitempty"`
}

// PersonOf names a person in one namespace, compared case-insensitively.
func PersonOf(namespace, id string) string {
	return namespace + ":" + strings.ToLower(strings.TrimSpace(id))
}

// ActsFor reports whether the credential of p is person's or was made by person: such a principal is
// never a second pair of eyes on person's command.
func (p Principal) ActsFor(person string) bool {
	if person == "" {
		return false
	}
	return p.Person == person || slices.Contains(p.Lineage, person)
}

// InGroup reports whether p belongs to any of groups.
func (p Principal) InGroup(groups ...string) bool {
	for _, w := range groups {
		for _, g := range p.Groups {
			if g == w {
				return true
			}
		}
	}
	return false
}

type ctxKey int

const (
	principalKey ctxKey = iota
	agentKey
	requestIDKey
)

// WithPrincipal returns ctx acting for p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// PrincipalFrom returns whom a request acts for (zero when it is an agent's or the hub's own).
func PrincipalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey).(Principal)
	return p
}

// WithAgent returns ctx acting for the agent whose signature the request carried.
func WithAgent(ctx context.Context, agent string) context.Context {
	return context.WithValue(ctx, agentKey, agent)
}

// AgentFrom returns the id of the agent whose signature a request carried.
func AgentFrom(ctx context.Context) string {
	a, _ := ctx.Value(agentKey).(string)
	return a
}

// WithRequestID tags ctx with the id of the request it serves, for logs and audit records.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestIDFrom returns the id of the request ctx serves.
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}
