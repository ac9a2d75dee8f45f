package hubkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/wire"
)

func TestCreateLoadRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.key")
	k, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", st.Mode().Perm())
	}
	if _, err := Create(path); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	loaded, err := Load(path)
	if err != nil || loaded.CurrentID() != k.CurrentID() || loaded.Previous != nil {
		t.Fatalf("load: %v", err)
	}
	rot, err := Rotate(path)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err = Load(path)
	if err != nil || loaded.CurrentID() != rot.CurrentID() || loaded.Previous == nil || len(loaded.Public()) != 2 || loaded.Public()[1].KeyID != k.CurrentID() {
		t.Fatalf("after rotate: %+v %v", loaded.Public(), err)
	}
	os.Chmod(path, 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	os.Chmod(path, 0o600)
	pemBytes, _ := os.ReadFile(path)
	t.Setenv(EnvVar, string(pemBytes))
	if env, err := Load("/nonexistent"); err != nil || env.CurrentID() != rot.CurrentID() {
		t.Fatalf("env PEM: %v", err)
	}
}

// TestKeySetSignaturesFollowTheKeys: the endorsement every poll answer carries is made once per key
// set, and made again when the set changes (a previous key kept for a rotation), so what an agent
// receives always verifies against the keys it is sent with.
func TestKeySetSignaturesFollowTheKeys(t *testing.T) {
	_, cur, _ := ed25519.GenerateKey(rand.Reader)
	_, prev, _ := ed25519.GenerateKey(rand.Reader)
	k := &Keys{Current: prev}
	trusted := k.Public()
	for _, step := range []string{"one key", "the same key again", "a rotation"} {
		if step == "a rotation" {
			k.Current, k.Previous = cur, prev
		}
		sigs := k.KeySetSignatures()
		if len(sigs) != len(k.Public()) {
			t.Fatalf("%s: %d signatures for %d keys", step, len(sigs), len(k.Public()))
		}
		if _, err := wire.VerifyKeySet(trusted, k.Public(), sigs); err != nil {
			t.Fatalf("%s: the endorsement does not verify: %v", step, err)
		}
	}
}

// TestParse: a secret holding the current key, or the current then the previous one, parses into
// that key set; text that is not one or two PEM private keys is refused with the reason.
func TestParse(t *testing.T) {
	dir := t.TempDir()
	k1, err := Create(filepath.Join(dir, "a.key"))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Create(filepath.Join(dir, "b.key"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.key"))
	b, _ := os.ReadFile(filepath.Join(dir, "b.key"))
	cases := []struct {
		name, text   string
		cur, prev    string
		errSubstring string
	}{
		{name: "one key", text: string(a), cur: k1.CurrentID()},
		{name: "current then previous, with blank lines", text: "\n" + string(b) + "\n\n" + string(a) + "\n", cur: k2.CurrentID(), prev: k1.CurrentID()},
		{name: "empty", text: "  \n", errSubstring: "0 keys"},
		{name: "three keys", text: string(a) + string(b) + string(a), errSubstring: "3 keys"},
		{name: "not PEM", text: "hunter2", errSubstring: "not PEM"},
		{name: "a trailing scrap", text: string(a) + "scrap", errSubstring: "not PEM"},
		{name: "a certificate", text: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", errSubstring: "PRIVATE KEY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := Parse([]byte(c.text))
			if c.errSubstring != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSubstring) {
					t.Fatalf("err %v, want one saying %q", err, c.errSubstring)
				}
				return
			}
			if err != nil || k.CurrentID() != c.cur {
				t.Fatalf("%v, %v; want current %s", k, err, c.cur)
			}
			if got := ""; k.Previous != nil {
				got = k.IDOf(k.Previous)
				if got != c.prev {
					t.Fatalf("previous %s, want %s", got, c.prev)
				}
			} else if c.prev != "" {
				t.Fatalf("no previous key, want %s", c.prev)
			}
		})
	}
}
