package access

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/trail"
	"github.com/pulsehq/pulse/functions/store/local"
)

// TestPeopleAreNamespacedAndCaseBlind: forward-auth ALICE and alice are one person; a token named
// alice is not the forward-auth user alice; a token belongs to whoever made it unless made for a named
// person, and records its lineage either way.
func TestPeopleAreNamespacedAndCaseBlind(t *testing.T) {
	ctx := context.Background()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Store: st, Log: slog.New(slog.DiscardHandler), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	fwd := func(user string) domain.Principal {
		t.Helper()
		p, err := s.Authenticate(ctx, Credentials{RemoteUser: user, RemoteGroups: "admin", RemoteAddr: "127.0.0.2:5000"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok := func(secret string) domain.Principal {
		t.Helper()
		p, err := s.Authenticate(ctx, Credentials{Authorization: "Bearer " + secret, RemoteAddr: "127.0.0.9:5000"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	upper, lower := fwd("ALICE"), fwd("alice")
	if upper.Person != lower.Person || upper.Person != "forward:alice" {
		t.Errorf("forward-auth ALICE is %q and alice %q; want one person forward:alice", upper.Person, lower.Person)
	}
	secret, err := CreateAPIToken(ctx, st, "alice", []string{"admin"}, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	named := tok(secret)
	if named.Person != "person:alice" || named.Person == lower.Person {
		t.Errorf("a token named alice is %q; want person:alice, not the forward-auth user", named.Person)
	}
	if named.ActsFor(lower.Person) || lower.ActsFor(named.Person) {
		t.Error("a token named alice and the forward-auth user alice act for each other")
	}
	// alice (forward auth) makes a token for herself and one for bob.
	actx := domain.WithPrincipal(ctx, lower)
	s.Trail = &trail.Recorder{Store: st, Log: s.Log}
	for _, tc := range []struct {
		name, forPerson, person string
	}{
		{"alice-laptop", "", "forward:alice"},
		{"bobs", "Bob", "person:bob"},
	} {
		_, sec, err := s.CreateToken(actx, tc.name, []string{"admin"}, 0, tc.forPerson)
		if err != nil {
			t.Fatal(err)
		}
		p := tok(sec)
		if p.Person != tc.person || !p.ActsFor("forward:alice") {
			t.Errorf("%s: person %q lineage %v; want %s, acting for forward:alice", tc.name, p.Person, p.Lineage, tc.person)
		}
	}
}
