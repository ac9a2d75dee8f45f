// Package s3server starts real S3 servers (MinIO, versitygw, SeaweedFS) on loopback ports for tests and
// benchmarks, so the store's conformance suite and the end-to-end tests run against the real thing, never
// a fake. The binaries are built and cached by integration-tests/tools/install.sh, which this package runs
// when PULSE_MINIO_BIN / PULSE_VERSITYGW_BIN / PULSE_SEAWEEDFS_BIN are not set.
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
	// SeaweedFS is `weed server -s3`: a master, a volume server, a filer and the S3 gateway in one
	// process, each on a loopback port of its own.
	SeaweedFS Kind = "seaweedfs"
)

// binaryEnv names the variable that gives each kind's binary.
var binaryEnv = map[Kind]string{MinIO: "PULSE_MINIO_BIN", VersityGW: "PULSE_VERSITYGW_BIN", SeaweedFS: "PULSE_SEAWEEDFS_BIN"}

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
	// sockets are files the server leaves behind when killed (SeaweedFS's gRPC sockets in /tmp).
	sockets []string
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
	env := binaryEnv[kind]
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

// ErrUnavailable marks a server binary that was not given and could not be built (see Available).
var ErrUnavailable = errors.New("s3server: binary not given and could not be built")

// Available says whether a kind's binary can be had: given by its variable (then an error is never
// ErrUnavailable, as a binary named but missing is a broken set-up, not an absent tool), or built by
// install.sh. Tests of an optional server skip on ErrUnavailable and fail on anything else.
func Available(kind Kind) (string, error) {
	given := os.Getenv(binaryEnv[kind]) != ""
	p, err := Binary(kind)
	if err != nil && !given {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return p, err
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
	case SeaweedFS:
		if s.cmd, s.sockets, err = seaweedCommand(bin, opts.Dir, dataDir, port); err != nil {
			return nil, err
		}
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
	limit := 60 * time.Second
	if kind == SeaweedFS {
		limit = 90 * time.Second // four servers in one process, started one after another
	}
	if err := s.waitReady(ctx, limit); err != nil {
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
		if err == nil && s.Kind == SeaweedFS {
			err = s.writable(ctx)
		}
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

// Stop kills the server's process group and waits for it to exit. SIGKILL, not SIGTERM: SeaweedFS takes
// about 15 s to shut down gracefully, and a test server's data is thrown away anyway; what a killed
// SeaweedFS leaves in /tmp (its gRPC sockets) is removed here.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	for _, p := range s.sockets {
		os.Remove(p)
	}
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

// freePorts picks n distinct free loopback ports other than not, holding each open until all are chosen
// so none is picked twice.
func freePorts(n, not int) ([]int, error) {
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		if p := l.Addr().(*net.TCPAddr).Port; p != not {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// writable reports whether SeaweedFS accepts writes. Its gateway answers listings about 2 s after start,
// but every write waits for the master to hand out the filers' lock ring, some 10 s after start (each
// write takes a per-key lock; before the ring the gateway retries "no lock server found" once a second):
// a bucket of its own takes one object, which is then removed with the bucket.
func (s *Server) writable(ctx context.Context) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	const probe = "s3server-ready"
	if err := s.CreateBucket(ctx, probe); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.PutObject(cctx, probe, "probe", strings.NewReader("ok"), 2, minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := c.RemoveObject(cctx, probe, "probe", minio.RemoveObjectOptions{}); err != nil {
		return err
	}
	return c.RemoveBucket(cctx, probe)
}

// seaweedIdentities is the -s3.config file: one identity with the test credentials and every action.
const seaweedIdentities = `{"identities": [{"name": "pulse-test",
  "credentials": [{"accessKey": %q, "secretKey": %q}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
`

// seaweedCommand is `weed server -s3` with the S3 gateway on s3Port and the master, volume server and
// filer (and each one's gRPC port, which weed would otherwise put at port+10000) on other free loopback
// ports; data under dataDir, the identities file and local sockets under dir. It returns the socket
// files weed makes in /tmp, which a killed weed leaves behind.
func seaweedCommand(bin, dir, dataDir string, s3Port int) (*exec.Cmd, []string, error) {
	p, err := freePorts(7, s3Port)
	if err != nil {
		return nil, nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil { // weed runs in dir: its paths must not be relative
		return nil, nil, err
	}
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return nil, nil, err
	}
	cfg := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, seaweedIdentities, AccessKey, SecretKey), 0o600); err != nil {
		return nil, nil, err
	}
	args := []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + dataDir,
		"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64",
		"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
		"-volume.max=0", "-volume.preStopSeconds=0",
		"-filer", "-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
		"-s3", "-s3.port=" + strconv.Itoa(s3Port), "-s3.port.grpc=" + strconv.Itoa(p[6]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + cfg}
	// Each bucket is a collection that grows volumes on its first write, and with the default
	// -volume.max of 8 a third bucket's first write fails (InternalError): -volume.max=0 sizes the limit
	// by free disk space, counted in 64 MiB volumes. -volume.preStopSeconds=0: no 10 s pause before the volume server stops. The
	// Iceberg and Lance catalogue ports (fixed 8181 and 9101 by default) are off; so is telemetry.
	// The filer's and the gateway's local sockets default to /tmp; keep them with the data when the
	// path fits a socket address.
	var sockets []string
	if len(dir) < 80 {
		args = append(args, "-filer.localSocket="+filepath.Join(dir, "filer.sock"), "-s3.localSocket="+filepath.Join(dir, "s3.sock"))
	} else {
		sockets = append(sockets, fmt.Sprintf("/tmp/seaweedfs-filer-%d.sock", p[4]), fmt.Sprintf("/tmp/seaweedfs-s3-%d.sock", s3Port))
	}
	// The gRPC sockets' paths are fixed by weed.
	for name, port := range map[string]int{"master": p[1], "volume": p[3], "filer": p[5], "s3": p[6]} {
		sockets = append(sockets, fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", name, port))
	}
	cmd := exec.Command(bin, args...)
	// weed reads master.toml, security.toml and the like from the working directory and ~/.seaweedfs
	// (then /etc/seaweedfs): a test server runs in its own directory and home, with the defaults.
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	return cmd, sockets, nil
}
