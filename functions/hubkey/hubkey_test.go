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
