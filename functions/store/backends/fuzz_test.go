package backends_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/functions/store"
	_ "github.com/pulsehq/pulse/functions/store/backends"
)

// FuzzOpen feeds arbitrary store URLs to store.Open with every standard backend linked in, as `pulse
// serve --store` does. Properties: nothing panics; every refusal is store.ErrInvalidURL (opening must
// never depend on the store being reachable); neither a refusal nor Redact repeats the URL's password.
// URLs of the file backend are left out because opening one creates its directory; FuzzFileURL in
// functions/store/local checks them without touching the disk.
func FuzzOpen(f *testing.F) {
	for _, s := range []string{
		"s3://bucket?endpoint=http://127.0.0.1:9000&region=us-east-1",
		"s3://bucket/prefix/a?endpoint=https://minio.example&path_style=true",
		"s3://Bad_Bucket", "s3://", "s3://b?endpoint=ftp://x", "s3://b?endpoint=http://h/path", "s3://b?region=",
		"s3://b?path_style=maybe", "s3://b?colour=blue", "s3://user:s3cret-pass@bucket", "s3://bucket/../x",
		"unconditional+s3://bucket?endpoint=http://127.0.0.1:9000", "unconditional+s3://user:s3cret-pass@b",
		"gcs://bucket", "garage://x", "", " ", "://", "s3:opaque", "unconditional+gcs://x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, perr := url.Parse(raw)
		if perr == nil && strings.Contains(u.Scheme, "file") {
			return
		}
		s, err := store.Open(context.Background(), raw)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidURL) {
				t.Fatalf("refusal without ErrInvalidURL: %v", err)
			}
		} else if s == nil {
			t.Fatal("no error and no store")
		}
		if perr != nil {
			return
		}
		if _, ok := u.User.Password(); ok {
			c := *u
			c.User = url.UserPassword(u.User.Username(), sentinel)
			_, err := store.Open(context.Background(), c.String())
			if err != nil && strings.Contains(err.Error(), sentinel) {
				t.Fatalf("with a password, the refusal %v repeats it", err)
			}
			if strings.Contains(store.Redact(c.String()), sentinel) {
				t.Fatalf("Redact(%q) repeats the password", c.String())
			}
		}
	})
}

// sentinel is a password no message could contain by chance.
const sentinel = "Sentinel-Password-4f1c"
