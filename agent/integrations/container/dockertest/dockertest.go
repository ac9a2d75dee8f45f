// Package dockertest starts a real, private Docker daemon for tests and builds a tiny image for it
// from Debian's static busybox, so the container integration is proven against the Engine API itself,
// not a mock. It is imported by tests only (the container package's and the end-to-end suite).
//
// The daemon gets its own data root, exec root, pid file and socket under a short temporary
// directory, the vfs storage driver and no bridge or iptables rules, so it neither needs nor touches
// the machine's own daemon or network. PULSE_DOCKERD_BIN names the dockerd binary (`make test` sets
// it from integration-tests/tools/install.sh docker); without it dockerd is looked up in $PATH and a
// test that finds none, or is not root, is skipped with the reason. When PULSE_DOCKERD_BIN is set, a
// daemon that does not come up fails the test instead: under `make test` these tests must run.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// Daemon is a running private dockerd.
type Daemon struct {
	// Host is the daemon's address for a client: unix://<dir>/d.sock.
	Host string
	// Client talks to it, with API version negotiation.
	Client *client.Client
	// Dir holds the socket, data root and exec root.
	Dir string
	cmd *exec.Cmd
	log *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Binary finds dockerd: PULSE_DOCKERD_BIN, else $PATH. required says whether the environment asked
// for it (a missing daemon is then a failure, not a skip).
func Binary() (path string, required bool, err error) {
	if p := os.Getenv("PULSE_DOCKERD_BIN"); p != "" {
		return p, true, nil
	}
	p, err := exec.LookPath("dockerd")
	if err != nil {
		return "", false, fmt.Errorf("no dockerd in $PATH and PULSE_DOCKERD_BIN not set (integration-tests/tools/install.sh docker installs it)")
	}
	return p, false, nil
}

// Start runs a private dockerd until the test ends, then stops it and removes its directories. A
// daemon that cannot run skips the test, or fails it when PULSE_DOCKERD_BIN is set.
func Start(t testing.TB) *Daemon {
	t.Helper()
	d, why := TryStart(t)
	if d == nil {
		t.Skip(why)
	}
	return d
}

// TryStart is Start for a test that can do without a daemon: it returns nil and why there is none
// (it still fails the test when PULSE_DOCKERD_BIN is set and the daemon does not come up).
func TryStart(t testing.TB) (d *Daemon, why string) {
	t.Helper()
	bin, required, err := Binary()
	var reason string
	skip := func(format string, a ...any) {
		t.Helper()
		if required {
			t.Fatalf(format, a...)
		}
		reason = fmt.Sprintf(format, a...)
	}
	if err != nil {
		skip("docker tests: %v", err)
		return nil, reason
	}
	if os.Geteuid() != 0 {
		skip("docker tests: dockerd needs root; running as uid %d", os.Geteuid())
		return nil, reason
	}
	// Short: a unix socket path is limited to ~108 bytes, and t.TempDir() names can be long.
	dir, err := os.MkdirTemp("", "pd")
	if err != nil {
		t.Fatal(err)
	}
	d = &Daemon{Host: "unix://" + filepath.Join(dir, "d.sock"), Dir: dir, log: &lockedBuffer{}}
	d.cmd = exec.Command(bin,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "d.pid"),
		"-H", d.Host,
		"--storage-driver=vfs", "--iptables=false", "--ip-masq=false", "--bridge=none",
		"--containerd-namespace", "pulse-"+filepath.Base(dir),
		"--containerd-plugins-namespace", "pulse-"+filepath.Base(dir)+"-plugins",
	)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		skip("docker tests: start %s: %v", bin, err)
		return nil, reason
	}
	exited := make(chan struct{})
	go func() { d.cmd.Wait(); close(exited) }()
	t.Cleanup(func() { d.stop(t, exited) })

	d.Client, err = client.NewClientWithOpts(client.WithHost(d.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.Client.Ping(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			skip("docker tests: dockerd exited at start: %v\n%s", d.cmd.ProcessState, tail(d.log.String()))
			return nil, reason
		default:
		}
		if time.Now().After(deadline) {
			skip("docker tests: dockerd did not answer within 60s: %v\n%s", err, tail(d.log.String()))
			return nil, reason
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d, ""
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// Log is what the daemon printed, for a failing test's message.
func (d *Daemon) Log() string { return tail(d.log.String()) }

// stop removes every container, ends the daemon (SIGTERM; SIGKILL after 20s), then unmounts what it
// may have left mounted under its directory and removes it.
func (d *Daemon) stop(t testing.TB, exited chan struct{}) {
	if d.Client != nil {
		// Killed and removed first: a daemon stopping waits out each container's stop timeout, and
		// a sleep running as pid 1 ignores SIGTERM.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if list, err := d.Client.ContainerList(ctx, container.ListOptions{All: true}); err == nil {
			for _, c := range list {
				d.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
		}
		cancel()
		d.Client.Close()
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL) // its containerd and shims, if any outlived it
	unmountUnder(d.Dir)
	if err := os.RemoveAll(d.Dir); err != nil {
		unmountUnder(d.Dir)
		if err := os.RemoveAll(d.Dir); err != nil {
			t.Errorf("remove the test daemon's directory: %v", err)
		}
	}
}

// unmountUnder lazily unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// Busybox returns the path of Debian's static busybox (PULSE_BUSYBOX_BIN overrides /usr/bin/busybox),
// or why it cannot be used: a dynamically linked one would not run in an image without a libc.
func Busybox() (string, error) {
	p := os.Getenv("PULSE_BUSYBOX_BIN")
	if p == "" {
		p = "/usr/bin/busybox"
	}
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("busybox %s: %v (apt-get install busybox-static)", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return "", fmt.Errorf("busybox %s is dynamically linked; the test image needs busybox-static", p)
		}
	}
	return p, nil
}

// Image is a test image: a `docker save` archive and the image ID it loads as.
type Image struct {
	// Tar is the path of the archive (the legacy `docker save` layout: manifest.json, the config, one
	// layer), which ImageLoad accepts.
	Tar string
	// ID is the image ID, "sha256:" and the hex SHA-256 of its config.
	ID string
	// Digest and Size are the archive's SHA-256 ("sha256:…") and length, as an artifact names it.
	Digest string
	Size   int64
}

// BusyboxApplets are the commands the test image has in /bin.
var BusyboxApplets = []string{"sh", "sleep", "echo", "cat", "test", "true", "false", "ls", "touch", "rm", "nc", "wget", "id"}

// BuildImage writes a `docker save` archive of a one-layer image holding /bin/busybox and its
// applets into dir. Everything in it has fixed times, so the same busybox always gives the same image
// ID: tag names a repository tag for it (such as "pulse-test/busybox:1"), or "" for none.
func BuildImage(t testing.TB, dir, tag string) Image {
	t.Helper()
	bb, err := Busybox()
	if err != nil {
		if _, required, _ := Binary(); required {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(0, 0).UTC()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	add := func(h *tar.Header, body []byte) {
		h.ModTime, h.Format = epoch, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "tmp/", "etc/", "proc/", "sys/", "dev/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		add(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: mode}, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))}, bin)
	for _, a := range BusyboxApplets {
		add(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	passwd := []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
	add(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(passwd))}, passwd)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layerSum := sha256.Sum256(layer.Bytes())
	layerHex := hex.EncodeToString(layerSum[:])
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Env": []string{"PATH=/bin"},
			"Cmd": []string{"/bin/sleep", "3600"},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerHex}},
		"history": []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "pulse dockertest busybox"}},
	})
	configSum := sha256.Sum256(config)
	configHex := hex.EncodeToString(configSum[:])
	entry := map[string]any{"Config": configHex + ".json", "Layers": []string{layerHex + "/layer.tar"}, "RepoTags": nil}
	if tag != "" {
		entry["RepoTags"] = []string{tag}
	}
	manifest, _ := json.Marshal([]any{entry})

	var out bytes.Buffer
	ow := tar.NewWriter(&out)
	put := func(name string, body []byte) {
		h := &tar.Header{Name: name, Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Size: int64(len(body))}
		if body == nil {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := ow.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		ow.Write(body)
	}
	put(layerHex+"/", nil)
	put(layerHex+"/layer.tar", layer.Bytes())
	put(configHex+".json", config)
	put("manifest.json", manifest)
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "busybox-image.tar")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out.Bytes())
	return Image{Tar: path, ID: "sha256:" + configHex, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(out.Len())}
}

// Load loads an image archive into the daemon and fails the test if the daemon reports an error.
func (d *Daemon) Load(t testing.TB, img Image) {
	t.Helper()
	f, err := os.Open(img.Tar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := d.Client.ImageLoad(context.Background(), f, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("load %s: %v", img.Tar, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if bytes.Contains(body, []byte(`"error"`)) {
		t.Fatalf("load %s: %s", img.Tar, body)
	}
	if _, err := d.Client.ImageInspect(context.Background(), img.ID); err != nil {
		t.Fatalf("image %s not there after loading %s: %v (%s)", img.ID, img.Tar, err, body)
	}
}
