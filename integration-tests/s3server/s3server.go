// Package s3server starts real S3 servers (MinIO, versitygw) on loopback ports for tests and benchmarks,
// so the store's conformance suite and the end-to-end tests run against the real thing, never a fake.
// The binaries are built and cached by integration-tests/tools/install.sh, which this package runs when
// PULSE_MINIO_BIN / PULSE_VERSITYGW_BIN are not set.
package s3server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/s3"
)

// Kind names an S3 implementation.
type Kind string

const (
	// MinIO is the reference S3 server most self-hosters run.
	MinIO Kind = "minio"
	// VersityGW is an independent S3 gateway implementation (POSIX backend), to catch MinIO-isms.
	VersityGW Kind = "versitygw"
)

// Credentials used by every test server; they never leave the machine.
const (
	AccessKey = "pulsetestaccess"
	SecretKey = "pulsetestsecret123"
)

// Server is one running S3 server.
type Server struct {
	Kind     Kind
	Endpoint string // http://127.0.0.1:PORT
	Port     int
	Dir      string
	LogPath  string

	cmd  *exec.Cmd
	done chan struct{}
}

// Options for Start. Zero values pick a free port and require Dir.
type Options struct {
	// Port to listen on; 0 picks a free one. Reusing the port of a stopped server lets a test show a
	// client recovering when "the store comes back".
	Port int
	// Dir holds the server's data and its log.
	Dir string
}

var binMu sync.Mutex

// Binary returns the path of the server binary, building and caching it on first use.
func Binary(kind Kind) (string, error) {
	env := map[Kind]string{MinIO: "PULSE_MINIO_BIN", VersityGW: "PULSE_VERSITYGW_BIN"}[kind]
	if env == "" {
		return "", fmt.Errorf("unknown S3 server kind %q", kind)
	}
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	binMu.Lock()
	defer binMu.Unlock()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "tools", "install.sh")
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script, string(kind))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("install %s: %w\n%s", kind, err, stderr.String())
	}
	p := strings.TrimSpace(string(out))
	os.Setenv(env, p) // later calls in this process skip the script
	return p, nil
}

// Start runs a server of the given kind and waits until it answers S3 requests.
func Start(ctx context.Context, kind Kind, opts Options) (*Server, error) {
	bin, err := Binary(kind)
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, errors.New("s3server: Options.Dir is required")
	}
	port := opts.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	dataDir := filepath.Join(opts.Dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	s := &Server{Kind: kind, Port: port, Dir: opts.Dir, Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port),
		LogPath: filepath.Join(opts.Dir, string(kind)+".log"), done: make(chan struct{})}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	switch kind {
	case MinIO:
		s.cmd = exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", "127.0.0.1:0", dataDir)
		s.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	case VersityGW:
		s.cmd = exec.Command(bin, "--port", addr, "posix", dataDir)
		s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	}
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	go func() {
		s.cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) client() (*minio.Client, error) {
	return minio.New(fmt.Sprintf("127.0.0.1:%d", s.Port), &minio.Options{
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Region: "us-east-1", MaxRetries: 1,
	})
}

func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = c.ListBuckets(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited during start-up:\n%s", s.Kind, s.LogTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (last error %v):\n%s", s.Kind, limit, err, s.LogTail())
		}
	}
}

// LogTail returns the last lines the server logged, for failure messages.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.LogPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop kills the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// CreateBucket makes a bucket (a no-op if it exists).
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	err = c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"})
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return nil
		}
		return fmt.Errorf("create bucket %s on %s: %w", name, s.Kind, err)
	}
	return nil
}

// EnvUnconditional, set to 1, makes URL name every store as unconditional+s3://…: the hubs under
// test then ignore conditional writes, as on Garage, and the whole end-to-end suite shows what still
// holds there (make test runs it once so; docs/garage.md).
const EnvUnconditional = "PULSE_E2E_UNCONDITIONAL"

// Unconditional reports whether the suite runs in the Garage-like mode.
func Unconditional() bool { return os.Getenv(EnvUnconditional) == "1" }

// URL returns the store URL of a bucket (and optional key prefix) on this server, with
// "unconditional+" in front in the Garage-like mode (EnvUnconditional).
func (s *Server) URL(bucket, prefix string) string {
	u := "s3://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	u += "?endpoint=" + url.QueryEscape(s.Endpoint) + "&region=us-east-1"
	if Unconditional() {
		u = "unconditional+" + u
	}
	return u
}

// Env returns the environment variables a process needs to use this server's credentials.
func Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey}
}

// Store opens a store on bucket under a fresh random key prefix, so tests sharing a server never see each
// other's objects.
func (s *Server) Store(bucket string) (store.Store, error) {
	return s3.New(s3.Config{
		Bucket: bucket, Prefix: "t-" + uuid.NewString() + "/", Endpoint: s.Endpoint, Region: "us-east-1",
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""),
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return strconv.Atoi(p)
}
