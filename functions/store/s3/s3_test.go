package s3_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/s3"
	"github.com/pulsehq/pulse/functions/store/storetest"
	"github.com/pulsehq/pulse/functions/store/unconditional"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

const bucket = "pulse-test"

// servers are started once for the package: one real MinIO, one real versitygw and one real SeaweedFS.
var servers = map[s3server.Kind]*s3server.Server{}

// seaweedMissing says why SeaweedFS is not in servers (its tests skip), when weed was not given by
// PULSE_SEAWEEDFS_BIN and could not be built.
var seaweedMissing error

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	for _, kind := range []s3server.Kind{s3server.MinIO, s3server.VersityGW, s3server.SeaweedFS} {
		if kind == s3server.SeaweedFS {
			// Optional where weed can be neither given nor built; PULSE_SEAWEEDFS_BIN makes it required.
			if _, err := s3server.Available(kind); errors.Is(err, s3server.ErrUnavailable) {
				seaweedMissing = err
				continue
			}
		}
		dir, err := os.MkdirTemp("", "pulse-"+string(kind)+"-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		srv, err := s3server.Start(ctx, kind, s3server.Options{Dir: dir})
		if err != nil {
			fmt.Fprintf(os.Stderr, "start %s: %v\n", kind, err)
			return 1
		}
		defer srv.Stop()
		if err := srv.CreateBucket(ctx, bucket); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		servers[kind] = srv
	}
	return m.Run()
}

func factory(kind s3server.Kind) storetest.Factory {
	return func(t *testing.T) store.Store {
		s, err := servers[kind].Store(bucket)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestConformanceMinIO(t *testing.T) {
	storetest.Run(t, storetest.Full, factory(s3server.MinIO))
}

func TestConformanceVersityGW(t *testing.T) {
	storetest.Run(t, storetest.Full, factory(s3server.VersityGW))
}

func TestConformanceSeaweedFS(t *testing.T) {
	if seaweedMissing != nil {
		t.Skip(seaweedMissing)
	}
	storetest.Run(t, storetest.Full, factory(s3server.SeaweedFS))
}

func TestConformanceMinIOUnconditional(t *testing.T) {
	f := factory(s3server.MinIO)
	storetest.Run(t, storetest.Caps{}, func(t *testing.T) store.Store { return unconditional.Wrap(f(t)) })
}

func TestProbe(t *testing.T) {
	for kind := range servers {
		s := factory(kind)(t)
		mode, err := store.Probe(context.Background(), s)
		if err != nil || mode != store.ModeConditional {
			t.Errorf("%s: probe = %q, %v; want conditional", kind, mode, err)
		}
		mode, err = store.Probe(context.Background(), unconditional.Wrap(s))
		if err != nil || mode != store.ModeLastWriterWins {
			t.Errorf("%s unconditional: probe = %q, %v; want last-writer-wins", kind, mode, err)
		}
	}
}

// TestOperatorErrors checks that what an operator can get wrong is named in the error: a missing bucket,
// refused credentials, an endpoint nobody listens on.
func TestOperatorErrors(t *testing.T) {
	srv := servers[s3server.MinIO]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := []struct {
		name string
		cfg  s3.Config
		want string
	}{
		{"missing bucket", s3.Config{Bucket: "no-such-bucket", Endpoint: srv.Endpoint, Creds: credentials.NewStaticV4(s3server.AccessKey, s3server.SecretKey, "")}, `bucket "no-such-bucket" does not exist`},
		{"bad credentials", s3.Config{Bucket: bucket, Endpoint: srv.Endpoint, Creds: credentials.NewStaticV4("nobody", "wrongwrongwrong", "")}, "refused the credentials"},
		{"unreachable", s3.Config{Bucket: bucket, Endpoint: "http://127.0.0.1:1", Creds: credentials.NewStaticV4("a", "b", "")}, "cannot reach S3 endpoint http://127.0.0.1:1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Region = "us-east-1"
			s, err := s3.New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = store.Probe(ctx, s)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("probe: %v; want an error containing %q", err, c.want)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	cases := []struct {
		url  string
		want s3.Config
		err  string
	}{
		{url: "s3://bkt?endpoint=http://127.0.0.1:9000&region=eu-west-1", want: s3.Config{Bucket: "bkt", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1"}},
		{url: "s3://bkt/some/prefix", want: s3.Config{Bucket: "bkt", Prefix: "some/prefix/", Region: "us-east-1"}},
		{url: "s3://", err: "no bucket"},
		{url: "s3://Bad_Bucket", err: "bucket name"},
		{url: "s3://bkt?endpoint=ftp://x", err: "must be an http:// or https:// URL"},
		{url: "s3://bkt?endpoint=http://x/path", err: "must not have a path"},
		{url: "s3://bkt?regoin=x", err: `unknown parameter "regoin"`},
		{url: "s3://bkt?path_style=maybe", err: "path_style"},
		{url: "s3://user:secret@bkt", err: "do not put credentials in the URL"},
	}
	for _, c := range cases {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s3.ParseURL(u)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, store.ErrInvalidURL) {
				t.Errorf("ParseURL(%q) = %v; want ErrInvalidURL containing %q", c.url, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseURL(%q) leaks the password: %v", c.url, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", c.url, got, err, c.want)
		}
	}
}

func BenchmarkMinIO(b *testing.B) {
	s, err := servers[s3server.MinIO].Store(bucket)
	if err != nil {
		b.Fatal(err)
	}
	storetest.Bench(b, s)
}
