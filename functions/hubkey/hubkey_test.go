package hubkey

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
