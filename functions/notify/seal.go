package notify

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/pulsehq/pulse/functions/hubkey"
)

// Mask stands for a secret wherever a channel is shown.
const Mask = "•••"

// sealInfo separates the channel-secret key from every other use of the signing key (the record
// MACs use another info), so the two derived keys are unrelated.
const sealInfo = "pulse channel secrets v1"

// Sealed is a channel's secrets encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from one
// of the hub's signing keys, which never sit in the bucket: whoever reads the bucket reads a channel's
// kind, name and the hints Redacted shows, not its secrets.
type Sealed struct {
	// Key is the id of the signing key that sealed, so a hub holding the previous key during a
	// rotation still opens what the previous key sealed.
	Key   string `json:"key"`
	Nonce []byte `json:"nonce"`
	Box   []byte `json:"box"`
}

// secrets are pointers to the fields of ch that are secrets for its kind.
func (ch *Channel) secrets() map[string]*string {
	out := map[string]*string{}
	switch ch.Kind {
	case Webhook:
		out["secret"] = &ch.Secret
	case Slack, Discord, Teams:
		out["url"] = &ch.URL // the URL is the credential: whoever has it posts to the channel
	case Ntfy, Gotify:
		out["token"] = &ch.Token
	case PagerDuty:
		out["routingKey"] = &ch.RoutingKey
	case Email:
		out["password"] = &ch.Password
	}
	for k, p := range out {
		if *p == "" {
			delete(out, k)
		}
	}
	return out
}

// SecretValues are the channel's secrets in clear, longest first: what Send scrubs from every error
// and tests look for in the bucket.
func (ch *Channel) SecretValues() []string {
	var out []string
	for _, p := range ch.secrets() {
		out = append(out, *p)
		if u, err := url.Parse(*p); err == nil && u.Host != "" {
			// The path and query of a webhook URL are what make it a credential; an error may print
			// them without the host.
			if u.EscapedPath() != "" && u.EscapedPath() != "/" {
				out = append(out, u.EscapedPath(), u.Path)
			}
			if u.RawQuery != "" {
				out = append(out, u.RawQuery)
			}
			// A receiver may echo one token of the path back (Slack's and Discord's URLs end in
			// one): segments that look like tokens are scrubbed on their own.
			for _, seg := range strings.Split(u.Path, "/") {
				if len(seg) >= 20 || len(seg) >= 8 && strings.ContainsAny(seg, "0123456789") {
					out = append(out, seg)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// Redacted is the channel as it may be shown and logged: every secret replaced by Mask, a secret URL
// by Mask and its host ("••• (hooks.slack.com)").
func (ch *Channel) Redacted() Channel {
	c := *ch
	ch = &c
	ch.To = append([]string(nil), ch.To...)
	ch.Tags = append([]string(nil), ch.Tags...)
	for field, p := range ch.secrets() {
		masked := Mask
		if u, err := url.Parse(*p); field == "url" && err == nil && u.Host != "" {
			masked += " (" + u.Host + ")"
		}
		*p = masked
	}
	return *ch
}

// Seal splits ch into what may be stored as it is (the channel with its secrets removed) and its
// secrets sealed with the current signing key. The channel's name is bound into the seal, so a
// sealed box copied to another channel does not open.
func Seal(keys *hubkey.Keys, ch Channel) (Channel, *Sealed, error) {
	plain := map[string]string{}
	for field, p := range (&ch).secrets() {
		plain[field] = *p
		*p = ""
	}
	if len(plain) == 0 {
		return ch, nil, nil
	}
	b, err := json.Marshal(plain)
	if err != nil {
		return Channel{}, nil, err
	}
	priv := keys.Private()[0]
	aead, err := sealer(priv)
	if err != nil {
		return Channel{}, nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return ch, &Sealed{Key: keys.IDOf(priv), Nonce: nonce, Box: aead.Seal(nil, nonce, b, aad(ch))}, nil
}

// Open puts the sealed secrets back into ch, with whichever held key sealed them.
func Open(keys *hubkey.Keys, ch Channel, s *Sealed) (Channel, error) {
	if s == nil {
		return ch, nil
	}
	var priv ed25519.PrivateKey
	for _, k := range keys.Private() {
		if keys.IDOf(k) == s.Key {
			priv = k
		}
	}
	if priv == nil {
		return Channel{}, fmt.Errorf("channel %s: its secrets were sealed by signing key %s, which this hub no longer holds: apply the channel again", ch.Name, s.Key)
	}
	aead, err := sealer(priv)
	if err != nil {
		return Channel{}, err
	}
	if len(s.Nonce) != aead.NonceSize() {
		return Channel{}, fmt.Errorf("channel %s: sealed secrets with a bad nonce", ch.Name)
	}
	b, err := aead.Open(nil, s.Nonce, s.Box, aad(ch))
	if err != nil {
		return Channel{}, fmt.Errorf("channel %s: its sealed secrets do not open (altered, or moved from another channel)", ch.Name)
	}
	var plain map[string]string
	if err := json.Unmarshal(b, &plain); err != nil {
		return Channel{}, fmt.Errorf("channel %s: sealed secrets: %w", ch.Name, err)
	}
	set := map[string]*string{"secret": &ch.Secret, "url": &ch.URL, "token": &ch.Token, "routingKey": &ch.RoutingKey, "password": &ch.Password}
	for field, v := range plain {
		p, ok := set[field]
		if !ok {
			return Channel{}, fmt.Errorf("channel %s: sealed secret %q is no field", ch.Name, field)
		}
		*p = v
	}
	return ch, nil
}

func aad(ch Channel) []byte { return []byte("channel\x00" + ch.Name + "\x00" + ch.Kind) }

func sealer(priv ed25519.PrivateKey) (cipher.AEAD, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("seal channel secrets: no signing key")
	}
	k, err := hkdf.Key(sha256.New, priv.Seed(), nil, sealInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// scrub replaces every secret of ch in s by Mask.
func scrub(s string, secrets []string) string {
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, Mask)
		}
	}
	return s
}
