package local

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/functions/store"
)

// FuzzFileURL feeds arbitrary file URLs to the check the file backend runs before it creates anything.
// Properties: nothing panics; a URL is either refused with store.ErrInvalidURL or names a non-empty
// directory; a refusal never repeats the URL's password (store URLs end up in logs).
func FuzzFileURL(f *testing.F) {
	for _, s := range []string{
		"file:///var/lib/pulse", "file:relative/dir", "file://localhost/srv/pulse", "file://host/dir",
		"file:///dir?x=1", "file:///dir?", "file://", "file:", "file://user:s3cret-pass@host/dir",
		"file://user:s3cret-pass@/dir", "file:///%2e%2e/%00", "file:///dir#frag",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return // store.Open refuses it before the backend sees it
		}
		dir, err := dirOf(u)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidURL) {
				t.Fatalf("refusal without ErrInvalidURL: %v", err)
			}
			if pw, ok := withPassword(u); ok {
				if _, err := dirOf(pw); err == nil || strings.Contains(err.Error(), sentinel) {
					t.Fatalf("with a password, the refusal %v repeats it", err)
				}
			}
			return
		}
		if dir == "" {
			t.Fatal("accepted with no directory")
		}
		if u.User != nil || (u.Host != "" && u.Host != "localhost") || u.RawQuery != "" {
			t.Fatalf("accepted %q, which has a user, a host or parameters", raw)
		}
	})
}

// sentinel is a password no message could contain by chance.
const sentinel = "Sentinel-Password-4f1c"

// withPassword is u with its password, if it has one, replaced by sentinel.
func withPassword(u *url.URL) (*url.URL, bool) {
	if _, ok := u.User.Password(); !ok {
		return nil, false
	}
	c := *u
	c.User = url.UserPassword(u.User.Username(), sentinel)
	return &c, true
}
