package awss3_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/awss3"
	"github.com/pulsehq/pulse/functions/store/storetest"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

const bucket = "pulse-awss3"

// servers are started once for the package: one real MinIO, one real versitygw and one real SeaweedFS.
var servers = map[s3server.Kind]*s3server.Server{}

// seaweedMissing says why SeaweedFS is not in servers (its tests skip), when weed was not given by
// PULSE_SEAWEEDFS_BIN and could not be built.
var seaweedMissing error

func TestMain(m *testing.M) { os.Exit(run(m)) }

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
		dir, err := os.MkdirTemp("", "pulse-awss3-"+string(kind)+"-")
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

func static(id, secret string) *aws.Config {
	return &aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")}
}

func open(t testing.TB, kind s3server.Kind, prefix string) store.Store {
	t.Helper()
	s, err := awss3.New(context.Background(), awss3.Config{Bucket: bucket, Prefix: prefix, Endpoint: servers[kind].Endpoint, Region: "us-east-1",
		AWS: static(s3server.AccessKey, s3server.SecretKey)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The same conformance suite as the s3 backend's, through aws-sdk-go-v2: each run under a prefix of
// its own, so the two backends' suites never see each other's objects.
func TestConformanceMinIO(t *testing.T) {
	n := 0
	storetest.Run(t, storetest.Full, func(t *testing.T) store.Store { n++; return open(t, s3server.MinIO, fmt.Sprintf("c%d/", n)) })
}

func TestConformanceVersityGW(t *testing.T) {
	n := 0
	storetest.Run(t, storetest.Full, func(t *testing.T) store.Store { n++; return open(t, s3server.VersityGW, fmt.Sprintf("c%d/", n)) })
}

func TestConformanceSeaweedFS(t *testing.T) {
	if seaweedMissing != nil {
		t.Skip(seaweedMissing)
	}
	n := 0
	storetest.Run(t, storetest.Full, func(t *testing.T) store.Store { n++; return open(t, s3server.SeaweedFS, fmt.Sprintf("c%d/", n)) })
}

// TestProbeAndURL: a store opened by URL probes as conditional on every server.
func TestProbeAndURL(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", s3server.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3server.SecretKey)
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for kind, srv := range servers {
		s, err := store.Open(context.Background(), "awss3://"+bucket+"/probe?endpoint="+srv.Endpoint+"&region=us-east-1")
		if err != nil {
			t.Fatal(err)
		}
		if mode, err := store.Probe(context.Background(), s); err != nil || mode != store.ModeConditional {
			t.Errorf("%s: probe %q %v; want conditional", kind, mode, err)
		}
	}
	if _, err := store.Open(context.Background(), "awss3://Bad_Bucket"); err == nil || !strings.Contains(err.Error(), "bucket name") {
		t.Errorf("a bad bucket name: %v", err)
	}
}

// TestOperatorErrors: a missing bucket, refused credentials and an endpoint nobody listens on are
// named in the error.
func TestOperatorErrors(t *testing.T) {
	srv := servers[s3server.MinIO]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := []struct {
		name string
		cfg  awss3.Config
		want string
	}{
		{"missing bucket", awss3.Config{Bucket: "no-such-bucket", Endpoint: srv.Endpoint, AWS: static(s3server.AccessKey, s3server.SecretKey)}, `bucket "no-such-bucket" does not exist`},
		{"bad credentials", awss3.Config{Bucket: bucket, Endpoint: srv.Endpoint, AWS: static("nobody", "wrongwrongwrong")}, "refused the credentials"},
		{"unreachable", awss3.Config{Bucket: bucket, Endpoint: "http://127.0.0.1:1", AWS: static("a", "b")}, "cannot reach http://127.0.0.1:1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Region = "us-east-1"
			s, err := awss3.New(ctx, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Probe(ctx, s); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("probe: %v; want an error containing %q", err, c.want)
			}
		})
	}
}

func BenchmarkMinIO(b *testing.B) {
	storetest.Bench(b, open(b, s3server.MinIO, "bench/"))
}
