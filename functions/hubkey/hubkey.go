// Package hubkey keeps the hub's ed25519 signing key: the one secret that lets the hub command agents.
// It lives in a file with mode 0600 beside the hub (or in PULSE_SIGNING_KEY), never in the bucket, so a
// leaked bucket cannot forge work. A previous key may be kept during a rotation: the hub signs with the
// current key and publishes both, and agents accept both until the previous one is dropped.
package hubkey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pulsehq/pulse/agent/wire"
)

// DefaultFile is where `pulse init` writes the key and `pulse serve` looks for it, relative to the
// working directory.
const DefaultFile = "pulse-hub.key"

// PreviousSuffix names the file holding the key being rotated out.
const PreviousSuffix = ".previous"

// EnvVar may hold the key itself (PEM) or the path of its file, for deployments without a writable disk.
const EnvVar = "PULSE_SIGNING_KEY"

// ErrExists is returned when creating a key would replace one.
var ErrExists = errors.New("signing key already exists")

// Keys is the hub's key set.
type Keys struct {
	Current  ed25519.PrivateKey
	Previous ed25519.PrivateKey // nil outside a rotation
	Path     string             // where Current came from ("" for the environment)

	// endorsed caches KeySetSignatures for the key set it was made for: every poll answer carries
	// them, and signing them anew for each would cost two ed25519 signatures a poll.
	endorsed struct {
		sync.Mutex
		set  string
		sigs []wire.KeySignature
	}
}

// CurrentID is the key id agents see on envelopes.
func (k *Keys) CurrentID() string { return wire.KeyIDFor(k.Current.Public().(ed25519.PublicKey)) }

// Sign signs an envelope with the current key.
func (k *Keys) Sign(env wire.Envelope) (wire.SignedEnvelope, error) {
	return wire.Sign(env, k.CurrentID(), k.Current)
}

// Public lists the keys agents should trust: current first, then previous.
func (k *Keys) Public() []wire.HubKey {
	out := []wire.HubKey{pub(k.Current)}
	if k.Previous != nil {
		out = append(out, pub(k.Previous))
	}
	return out
}

// KeySetSignatures endorses Public() with every private key held, so agents trusting either key adopt
// the set (see wire.VerifyKeySet).
func (k *Keys) KeySetSignatures() []wire.KeySignature {
	public := k.Public()
	var set strings.Builder
	for _, p := range public {
		set.Write(p.PublicKey)
	}
	k.endorsed.Lock()
	defer k.endorsed.Unlock()
	if k.endorsed.sigs == nil || k.endorsed.set != set.String() {
		k.endorsed.set, k.endorsed.sigs = set.String(), wire.SignKeySet(public, k.Private()...)
	}
	return k.endorsed.sigs
}

// Private lists the private keys held, current first: the record MACs (functions/signed) and audit
// seals are made with the current one and accepted from any.
func (k *Keys) Private() []ed25519.PrivateKey {
	if k.Previous != nil {
		return []ed25519.PrivateKey{k.Current, k.Previous}
	}
	return []ed25519.PrivateKey{k.Current}
}

// IDOf is the key id of one of the held keys.
func (k *Keys) IDOf(priv ed25519.PrivateKey) string {
	return wire.KeyIDFor(priv.Public().(ed25519.PublicKey))
}

func pub(priv ed25519.PrivateKey) wire.HubKey {
	p := priv.Public().(ed25519.PublicKey)
	return wire.HubKey{KeyID: wire.KeyIDFor(p), PublicKey: p}
}

// Load finds the key: PULSE_SIGNING_KEY (PEM or a path) if set, else path (DefaultFile if empty). A key
// file readable by group or others is refused, because anyone who reads it commands the fleet.
func Load(path string) (*Keys, error) {
	if v := os.Getenv(EnvVar); v != "" {
		if strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
			k, err := parse([]byte(v))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", EnvVar, err)
			}
			return &Keys{Current: k}, nil
		}
		path = v
	}
	if path == "" {
		path = DefaultFile
	}
	cur, err := readFile(path)
	if err != nil {
		return nil, err
	}
	keys := &Keys{Current: cur, Path: path}
	if prev, err := readFile(path + PreviousSuffix); err == nil {
		keys.Previous = prev
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return keys, nil
}

// Parse reads a key set from PEM text, as a secret store holds it: the current key, then optionally
// the previous one (mid-rotation). Anything else in the text is refused, so a secret pasted wrong is an
// error at start, not a hub signing with the wrong key.
func Parse(b []byte) (*Keys, error) {
	var ks []ed25519.PrivateKey
	rest := bytes.TrimSpace(b)
	for len(rest) > 0 {
		blk, r := pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("not PEM: want one or two \"PRIVATE KEY\" blocks (current, then previous)")
		}
		k, err := parse(pem.EncodeToMemory(blk))
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", len(ks)+1, err)
		}
		ks = append(ks, k)
		rest = bytes.TrimSpace(r)
	}
	switch len(ks) {
	case 1:
		return &Keys{Current: ks[0]}, nil
	case 2:
		return &Keys{Current: ks[0], Previous: ks[1]}, nil
	}
	return nil, fmt.Errorf("%d keys: want one or two \"PRIVATE KEY\" blocks (current, then previous)", len(ks))
}

func readFile(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("signing key %s: %w (run `pulse init` first, or set %s)", path, fs.ErrNotExist, EnvVar)
		}
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s has mode %o; it must be readable by its owner only (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	k, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

func parse(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ed25519", k)
	}
	return ek, nil
}

// Create generates a key at path, refusing to replace an existing one (ErrExists).
func Create(path string) (*Keys, error) {
	if path == "" {
		path = DefaultFile
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeNew(path, priv); err != nil {
		return nil, err
	}
	return &Keys{Current: priv, Path: path}, nil
}

// Rotate keeps the current key as the previous one and makes a new current key. An older previous key
// is dropped: agents that were offline through two rotations must re-enroll.
func Rotate(path string) (*Keys, error) {
	if path == "" {
		path = DefaultFile
	}
	old, err := readFile(path)
	if err != nil {
		return nil, err
	}
	prevPath := path + PreviousSuffix
	os.Remove(prevPath)
	if err := writeNew(prevPath, old); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	tmp := path + ".new"
	os.Remove(tmp)
	if err := writeNew(tmp, priv); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	return &Keys{Current: priv, Previous: old, Path: path}, nil
}

func writeNew(path string, priv ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("signing key dir: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w at %s; it was kept (use `pulse key rotate` to replace it deliberately)", ErrExists, path)
		}
		return fmt.Errorf("signing key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
