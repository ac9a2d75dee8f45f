package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func testEnvelope(now time.Time) Envelope {
	body, _ := json.Marshal(Command{CommandID: "c1", Name: "host_uptime", TimeoutSeconds: 30})
	return Envelope{ID: "e1", Agent: "a1", IssuedAt: now, NotAfter: now.Add(time.Hour), Issuer: "admin", Kind: KindCommand, Body: body}
}

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	keys := []HubKey{{KeyID: KeyIDFor(pub), PublicKey: pub}}
	now := time.Now()
	se, err := Sign(testEnvelope(now), KeyIDFor(pub), priv)
	if err != nil {
		t.Fatal(err)
	}
	env, err := se.Verify(keys)
	if err != nil || env.ID != "e1" {
		t.Fatalf("verify: %+v %v", env, err)
	}
	if err := env.Check("a1", now, time.Minute); err != nil {
		t.Fatal(err)
	}

	tampered := se
	tampered.Payload = []byte(strings.Replace(string(se.Payload), "host_uptime", "host_reboot", 1))
	forged, _ := Sign(testEnvelope(now), KeyIDFor(pub), otherPriv) // claims the real key id
	unknown, _ := Sign(testEnvelope(now), KeyIDFor(otherPub), otherPriv)
	cases := []struct {
		name string
		se   SignedEnvelope
		want error
	}{
		{"tampered payload", tampered, ErrBadSignature},
		{"forged signature", forged, ErrBadSignature},
		{"unknown key", unknown, ErrUnknownKey},
	}
	for _, c := range cases {
		if _, err := c.se.Verify(keys); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}

	checks := []struct {
		name  string
		agent string
		now   time.Time
		want  error
	}{
		{"other agent", "a2", now, ErrWrongAgent},
		{"expired", "a1", now.Add(2 * time.Hour), ErrExpired},
		{"future", "a1", now.Add(-time.Hour), ErrNotYetValid},
	}
	for _, c := range checks {
		if err := env.Check(c.agent, c.now, time.Minute); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestSpecChecks(t *testing.T) {
	bad := []CommandSpec{
		{Name: "Bad-Name", Group: "g"},
		{Name: "ok", Group: ""},
		{Name: "ok", Group: "g", Params: []ParamSpec{{Name: "p"}}},                                        // neither pattern nor cap
		{Name: "ok", Group: "g", Params: []ParamSpec{{Name: "p", Pattern: "("}}},                          // bad regexp
		{Name: "ok", Group: "g", Params: []ParamSpec{{Name: "p", MaxBytes: 1}, {Name: "p", MaxBytes: 2}}}, // duplicate
	}
	for i, c := range bad {
		if c.Check() == nil {
			t.Errorf("case %d: %+v accepted", i, c)
		}
	}
	good := CommandSpec{Name: "svc_restart", Group: "svc", Params: []ParamSpec{
		{Name: "unit", Pattern: `[a-z0-9@._-]+\.service`, Required: true},
		{Name: "note", MaxBytes: 8},
	}}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		params map[string]string
		err    string
	}{
		{map[string]string{"unit": "nginx.service"}, ""},
		{map[string]string{"unit": "nginx.service", "note": "12345678"}, ""},
		{map[string]string{"unit": "nginx.service; rm -rf /"}, "does not match"}, // the pattern is anchored
		{map[string]string{"unit": "x.service", "note": "123456789"}, "more than 8"},
		{map[string]string{"note": "x"}, "unit is required"},
		{map[string]string{"unit": "x.service", "user": "root"}, `no parameter "user"`},
	}
	for _, c := range cases {
		err := good.ValidateParams(c.params)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ValidateParams(%v) = %v, want %q", c.params, err, c.err)
		}
	}
}

func TestKeySet(t *testing.T) {
	oldPub, oldPriv, _ := ed25519.GenerateKey(rand.Reader)
	newPub, newPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, evilPriv, _ := ed25519.GenerateKey(rand.Reader)
	trusted := []HubKey{{KeyID: KeyIDFor(oldPub), PublicKey: oldPub}}
	set := []HubKey{{KeyID: KeyIDFor(newPub), PublicKey: newPub}, trusted[0]}
	if got, err := VerifyKeySet(trusted, set, SignKeySet(set, newPriv, oldPriv)); err != nil || len(got) != 2 {
		t.Fatalf("rotation endorsed by the old key refused: %v", err)
	}
	if _, err := VerifyKeySet(trusted, set, SignKeySet(set, newPriv, evilPriv)); !errors.Is(err, ErrKeySetNotEndorsed) {
		t.Fatalf("set signed only by untrusted keys: %v", err)
	}
	sigs := SignKeySet(set, oldPriv)
	tampered := []HubKey{set[0]}
	if _, err := VerifyKeySet(trusted, tampered, sigs); !errors.Is(err, ErrKeySetNotEndorsed) {
		t.Fatalf("tampered set accepted: %v", err)
	}
}

func TestCapReason(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	cases := []struct {
		name, in  string
		unchanged bool
	}{
		{"empty", "", true},
		{"short", "exit status 1", true},
		{"exactly the cap", strings.Repeat("y", MaxReasonBytes), true},
		{"one byte over", strings.Repeat("y", MaxReasonBytes+1), false},
		{"a megabyte", long, false},
		{"multi-byte characters across the cut", strings.Repeat("é", MaxReasonBytes), false},
		{"emoji across the cut", strings.Repeat("🙂", MaxReasonBytes), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := CapReason(tc.in)
			if len(got) > MaxReasonBytes {
				t.Fatalf("%d bytes, want at most %d", len(got), MaxReasonBytes)
			}
			if tc.unchanged != (got == tc.in) {
				t.Fatalf("unchanged = %v, want %v", got == tc.in, tc.unchanged)
			}
			if !tc.unchanged {
				if !strings.HasSuffix(got, TruncatedMark) || !strings.HasPrefix(tc.in, strings.TrimSuffix(got, TruncatedMark)) {
					t.Fatalf("%q... is not a prefix of the input followed by the mark", got[:40])
				}
				if !utf8.ValidString(got) {
					t.Fatal("cut inside a character")
				}
			}
		})
	}
}

func TestSharedEnvelopeAddressees(t *testing.T) {
	now := time.Now()
	base := Envelope{ID: "e", IssuedAt: now, NotAfter: now.Add(time.Minute), Kind: KindCommand, Body: []byte(`{}`)}
	many := make([]string, MaxAddressees+1)
	for i := range many {
		many[i] = fmt.Sprintf("agent-%d", i)
	}
	for _, tc := range []struct {
		name   string
		agent  string
		agents []string
		check  string
		shape  string // a malformed envelope's reason; "" when it is well formed
		wrong  bool
	}{
		{name: "one addressee", agent: "a1", check: "a1"},
		{name: "one addressee, another agent", agent: "a1", check: "a2", wrong: true},
		{name: "shared, among them", agents: []string{"a1", "a2", "a3"}, check: "a2"},
		{name: "shared, not among them", agents: []string{"a1", "a2", "a3", "a4", "a5"}, check: "a9", wrong: true},
		{name: "no addressee", shape: "no agent"},
		{name: "both forms", agent: "a1", agents: []string{"a1"}, shape: "both"},
		{name: "too many", agents: many, shape: "addressees"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := base
			env.Agent, env.Agents = tc.agent, tc.agents
			_, priv, _ := ed25519.GenerateKey(nil)
			_, err := Sign(env, "k", priv)
			if tc.shape != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.shape) {
					t.Fatalf("sign: %v, want malformed (%s)", err, tc.shape)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = env.Check(tc.check, now, time.Minute)
			if tc.wrong != errors.Is(err, ErrWrongAgent) {
				t.Fatalf("check %s: %v (wrong agent expected: %v)", tc.check, err, tc.wrong)
			}
		})
	}
}
