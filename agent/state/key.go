package state

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// KeyFile is the name of the agent's private key inside the state directory.
const KeyFile = "agent.key"

// ErrKeyPermissions is returned when the key file can be read by someone other than its owner: a key
// that others could have copied no longer proves who is talking, so the agent refuses to use it.
var ErrKeyPermissions = errors.New("private key is readable or writable by group or others")

// Key returns the agent's ed25519 private key, generating and storing it (PEM, PKCS#8, mode 0600) on
// first use. The key never leaves this directory: the hub only ever sees the public half.
func (s *State) Key() (ed25519.PrivateKey, error) {
	path := filepath.Join(s.dir, KeyFile)
	key, err := readKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("state: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("state: encode key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := createExclusive(path, data); err != nil {
		if errors.Is(err, fs.ErrExist) { // someone else won the race; use theirs
			return readKey(path)
		}
		return nil, fmt.Errorf("state: store key: %w", err)
	}
	return priv, nil
}

func readKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("state: key %s: %w", path, err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("state: %s has mode %04o: %w; run chmod 600 %s (and consider rotating the key if others had access)",
			path, fi.Mode().Perm(), ErrKeyPermissions, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("state: key %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("state: key %s: not a PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("state: key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("state: key %s: a %T, want ed25519", path, k)
	}
	return priv, nil
}

// createExclusive writes data to path only if path does not exist, durably and without ever exposing
// a partly written file under the final name.
func createExclusive(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(fileMode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}
