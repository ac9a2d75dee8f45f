// Package selfupdate is the integration that owns the "agent" unit type: the agent's own binary,
// updated safely. A plan names the new binary as an artifact (pushed with `pulse artifact push`, so
// its SHA-256 travels in the plan the hub signed) and, optionally, the version it must report:
//
//	[agent_update]
//	enabled = true            # off by default: replacing its own binary is a right an operator grants
//	confirm_within = "2m"     # the new binary must be heard by the hub within this long, or it is rolled back
//	selftest_timeout = "30s"
//
//	{"artifact": {"digest": "sha256:…", "size": 15728640}, "version": "v2"}
//
// Apply, in order: fetch and verify the artifact; copy it beside the running binary (same directory,
// so the rename is atomic); run its self-test (`<new> selftest` with this agent's flags: load the
// config and key, sign one request to the hub, say its version) and refuse it, removing it, if it
// fails — the running binary was never touched; keep the running binary as <exe>.prev; write a marker
// (from, to, deadline) in the state directory; rename the new binary over <exe>; and exec it (same
// pid, same arguments and environment, so a service manager sees no exit).
//
// The new binary finds the marker at start (integration.Starter). Its first heartbeat the hub accepts
// (integration.HeartbeatListener) commits the update: the marker goes, <exe>.prev stays for one more
// update. If instead the deadline passes, or it was started more than MaxStarts times without
// committing, it puts <exe>.prev back, records why, and execs the previous binary, which then reports
// the unit failed with that reason (and does not try that digest again until a plan names another).
package selfupdate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pulsehq/pulse/agent/atomicfile"
	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// ID is the integration's id and its config table.
const ID = "agent_update"

// UnitType is the unit type it owns.
const UnitType = "agent"

// MaxStarts is how often a new binary may start without its update being committed before it is
// rolled back (a binary that crashes after its first heartbeat was sent but before it was accepted,
// and is restarted by its service manager, must not loop for ever).
const MaxStarts = 3

// Defaults of the config.
const (
	DefaultConfirmWithin   = 2 * time.Minute
	DefaultSelfTestTimeout = 30 * time.Second
)

func init() {
	integration.Register(integration.Module{ID: ID, New: func() integration.Integration { return New() }})
}

// Updater is the integration instance.
type Updater struct {
	enabled         bool
	confirmWithin   time.Duration
	selfTestTimeout time.Duration

	dir       string // its state directory: marker.json, failed.json
	artifacts integration.Artifacts
	log       *slog.Logger

	// exe is the running binary's path; args and env are what it was started with; exec replaces
	// the process (syscall.Exec). Tests set them.
	exe  string
	args []string
	env  []string
	exec func(path string, args, env []string) error

	mu        sync.Mutex
	sum       fileSum
	version   map[string]string // digest -> version its `version` command printed
	committed bool
	stopWatch context.CancelFunc
}

// fileSum caches the digest of the binary by its size and modification time.
type fileSum struct {
	size   int64
	mod    time.Time
	digest string
}

var (
	_ integration.Reconciler        = (*Updater)(nil)
	_ integration.Preconditioner    = (*Updater)(nil)
	_ integration.Stateful          = (*Updater)(nil)
	_ integration.ArtifactUser      = (*Updater)(nil)
	_ integration.Starter           = (*Updater)(nil)
	_ integration.HeartbeatListener = (*Updater)(nil)
)

// New is an Updater for the running process.
func New() *Updater {
	return &Updater{args: os.Args, env: os.Environ(), exec: syscall.Exec, version: map[string]string{},
		log: slog.Default().With("integration", ID)}
}

type config struct {
	Enabled         bool   `toml:"enabled"`
	ConfirmWithin   string `toml:"confirm_within"`
	SelfTestTimeout string `toml:"selftest_timeout"`
}

// Configure reads [agent_update].
func (u *Updater) Configure(raw map[string]any) error {
	var c config
	if err := integration.DecodeConfig(raw, &c); err != nil {
		return err
	}
	u.enabled, u.confirmWithin, u.selfTestTimeout = c.Enabled, DefaultConfirmWithin, DefaultSelfTestTimeout
	for _, d := range []struct {
		name, v string
		to      *time.Duration
	}{{"confirm_within", c.ConfirmWithin, &u.confirmWithin}, {"selftest_timeout", c.SelfTestTimeout, &u.selfTestTimeout}} {
		if d.v == "" {
			continue
		}
		p, err := time.ParseDuration(d.v)
		if err != nil || p < time.Second {
			return fmt.Errorf("%s %q: want a duration of at least 1s, such as \"2m\"", d.name, d.v)
		}
		*d.to = p
	}
	return nil
}

// Enabled only when the config says so: replacing the agent's own binary is a right an operator
// grants the plans of a host, not a default.
func (u *Updater) Enabled() bool { return u.enabled }

// UseStateDir keeps the marker of an update under way and the record of updates rolled back.
func (u *Updater) UseStateDir(dir string) error { u.dir = dir; return nil }

// UseArtifacts takes the agent's fetcher: the new binary is an artifact.
func (u *Updater) UseArtifacts(a integration.Artifacts) { u.artifacts = a }

// Precondition finds the running binary and checks that its directory takes a new file, so an agent
// that could never swap its binary says so at start, not at its first update.
func (u *Updater) Precondition(context.Context) error {
	if u.exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("cannot find the running binary: %w", err)
		}
		if exe, err = filepath.EvalSymlinks(exe); err != nil {
			return fmt.Errorf("cannot find the running binary: %w", err)
		}
		u.exe = exe
	}
	probe, err := os.CreateTemp(filepath.Dir(u.exe), ".pulse-agent-probe-*")
	if err != nil {
		return fmt.Errorf("the agent cannot replace its binary: %w (make %s writable for the agent; under the systemd unit of infra/, add it to ReadWritePaths=)", err, filepath.Dir(u.exe))
	}
	probe.Close()
	os.Remove(probe.Name())
	if u.artifacts == nil {
		return errors.New("the agent gave it no artifact fetcher")
	}
	return nil
}

// UnitTypes: agent.
func (u *Updater) UnitTypes() []string { return []string{UnitType} }

type spec struct {
	Artifact *wire.ArtifactRef `json:"artifact"`
	Version  string            `json:"version"`
}

func parse(un wire.Unit) (spec, error) {
	var s spec
	dec := json.NewDecoder(bytes.NewReader(un.Spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("spec: %w (keys: artifact, version)", err)
	}
	if s.Artifact == nil {
		return s, errors.New("spec: artifact is missing: push the new binary with `pulse artifact push` and name it {digest, size}")
	}
	if err := s.Artifact.Validate(); err != nil {
		return s, fmt.Errorf("spec: artifact: %w", err)
	}
	if len(s.Version) > 100 {
		return s, errors.New("spec: version: at most 100 characters")
	}
	return s, nil
}

// CheckUnit refuses a malformed spec.
func (u *Updater) CheckUnit(un wire.Unit) error {
	_, err := parse(un)
	return err
}

// running is the digest of the running binary's file.
func (u *Updater) running() (string, error) {
	fi, err := os.Stat(u.exe)
	if err != nil {
		return "", fmt.Errorf("the running binary %s: %w", u.exe, err)
	}
	u.mu.Lock()
	c := u.sum
	u.mu.Unlock()
	if c.digest != "" && c.size == fi.Size() && c.mod.Equal(fi.ModTime()) {
		return c.digest, nil
	}
	d, err := fileDigest(u.exe)
	if err != nil {
		return "", err
	}
	u.mu.Lock()
	u.sum = fileSum{size: fi.Size(), mod: fi.ModTime(), digest: d}
	u.mu.Unlock()
	return d, nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d, err := wire.ContentDigest(f)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return d, nil
}

// versionOf asks a binary its version (`<bin> version`), once per digest.
func (u *Updater) versionOf(path, digest string) string {
	u.mu.Lock()
	v, ok := u.version[digest]
	u.mu.Unlock()
	if ok {
		return v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").Output()
	v = "an unknown version"
	if f := strings.Fields(string(out)); err == nil && len(f) > 0 {
		v = f[len(f)-1]
	}
	u.mu.Lock()
	u.version[digest] = v
	u.mu.Unlock()
	return v
}

// Observe: in state when the running binary's file is the artifact. An update of this digest that was
// rolled back is reported with its reason.
func (u *Updater) Observe(_ context.Context, un wire.Unit) (integration.Observation, error) {
	s, err := parse(un)
	if err != nil {
		return integration.Observation{}, err
	}
	cur, err := u.running()
	if err != nil {
		return integration.Observation{}, err
	}
	o := integration.Observation{Digest: short(cur), InState: cur == s.Artifact.Digest}
	if o.InState {
		return o, nil
	}
	if why := u.failed()[s.Artifact.Digest]; why != "" {
		o.Detail = why
		return o, nil
	}
	o.Detail = fmt.Sprintf("running %s (%s), want %s", short(cur), u.versionOf(u.exe, cur), short(s.Artifact.Digest))
	if s.Version != "" {
		o.Detail += " (" + s.Version + ")"
	}
	return o, nil
}

func short(d string) string {
	if len(d) > len("sha256:")+16 {
		return d[:len("sha256:")+16]
	}
	return d
}

// Marker is the record of an update under way: written before the swap, removed when the new binary
// commits or is rolled back.
type Marker struct {
	FromDigest  string    `json:"fromDigest"`
	FromVersion string    `json:"fromVersion"`
	ToDigest    string    `json:"toDigest"`
	ToVersion   string    `json:"toVersion"`
	Deadline    time.Time `json:"deadline"`
	// Starts counts the starts of the new binary that found the marker.
	Starts int `json:"starts"`
}

func (u *Updater) markerPath() string { return filepath.Join(u.dir, "marker.json") }
func (u *Updater) failedPath() string { return filepath.Join(u.dir, "failed.json") }

func (u *Updater) readMarker() (*Marker, error) {
	b, err := os.ReadFile(u.markerPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", u.markerPath(), err)
	}
	return &m, nil
}

func (u *Updater) writeMarker(m Marker) error {
	b, _ := json.Marshal(m)
	return atomicfile.Write(u.markerPath(), b, atomicfile.Options{})
}

// failed is the reason of every update rolled back, by the digest of the binary rolled back.
func (u *Updater) failed() map[string]string {
	out := map[string]string{}
	if b, err := os.ReadFile(u.failedPath()); err == nil {
		json.Unmarshal(b, &out)
	}
	return out
}

func (u *Updater) recordFailure(digest, why string) error {
	f := u.failed()
	f[digest] = why
	b, _ := json.Marshal(f)
	return atomicfile.Write(u.failedPath(), b, atomicfile.Options{})
}

// Apply swaps in the artifact as the agent's binary, after its self-test, and restarts into it. On
// success it does not return: the process becomes the new binary.
func (u *Updater) Apply(ctx context.Context, un wire.Unit) error {
	s, err := parse(un)
	if err != nil {
		return err
	}
	want := s.Artifact.Digest
	if why := u.failed()[want]; why != "" {
		return errors.New(why)
	}
	cur, err := u.running()
	if err != nil {
		return err
	}
	if cur == want {
		return nil
	}
	curVersion := u.versionOf(u.exe, cur)
	src, err := u.artifacts.Fetch(ctx, *s.Artifact)
	if err != nil {
		return err
	}
	next := filepath.Join(filepath.Dir(u.exe), ".pulse-agent-update-"+s.Artifact.Hex()[:12])
	if err := copyExecutable(src, next); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(next)
		}
	}()
	got, err := u.selfTest(ctx, next)
	if err != nil {
		return fmt.Errorf("new binary %s %v; rolled back, still running %s", short(want), err, curVersion)
	}
	if s.Version != "" && got != s.Version {
		return fmt.Errorf("new binary %s reports version %q in its self-test, the unit wants %q; rolled back, still running %s", short(want), got, s.Version, curVersion)
	}
	prev := u.exe + ".prev"
	os.Remove(prev)
	if err := os.Link(u.exe, prev); err != nil {
		if err := copyExecutable(u.exe, prev); err != nil {
			return fmt.Errorf("keep the running binary as %s: %w", prev, err)
		}
	}
	m := Marker{FromDigest: cur, FromVersion: curVersion, ToDigest: want, ToVersion: got, Deadline: time.Now().Add(u.confirmWithin).UTC()}
	if err := u.writeMarker(m); err != nil {
		return fmt.Errorf("write the update marker: %w", err)
	}
	if err := os.Rename(next, u.exe); err != nil {
		os.Remove(u.markerPath())
		return fmt.Errorf("swap in the new binary: %w", err)
	}
	ok = true
	if err := atomicfile.SyncDir(filepath.Dir(u.exe)); err != nil {
		u.log.Warn("sync the binary's directory", "err", err)
	}
	u.log.Info("new agent binary swapped in after its self-test; restarting into it", "from", curVersion, "to", got, "digest", want)
	if err := u.exec(u.exe, u.args, u.env); err != nil {
		// exec failed (a real one only ever returns then): put the previous binary back at once.
		u.restorePrev()
		os.Remove(u.markerPath())
		return fmt.Errorf("restart into the new binary %s: %w; rolled back, still running %s", short(want), err, curVersion)
	}
	return nil
}

// selfTest runs `<bin> selftest` with this agent's flags and returns the version it reports.
func (u *Updater) selfTest(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, u.selfTestTimeout)
	defer cancel()
	args := []string{"selftest"}
	if len(u.args) > 2 && u.args[1] == "run" {
		args = append(args, u.args[2:]...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = u.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	tail := strings.TrimSpace(stderr.String())
	if len(tail) > 500 {
		tail = "…" + tail[len(tail)-500:]
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return "", fmt.Errorf("did not finish its self-test within %v: %s", u.selfTestTimeout, tail)
	case errors.As(err, &ee):
		return "", fmt.Errorf("exited with status %d in its self-test: %s", ee.ExitCode(), tail)
	case err != nil:
		return "", fmt.Errorf("could not run its self-test: %w", err)
	}
	var res struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || res.Version == "" {
		return "", fmt.Errorf("passed its self-test but printed no version (%q)", strings.TrimSpace(stdout.String()))
	}
	return res.Version, nil
}

// copyExecutable copies src to dst, mode 0755, fsynced.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("copy the binary to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy the binary to %s: %w", dst, err)
	}
	if err := out.Chmod(0o755); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// restorePrev puts <exe>.prev back as <exe>.
func (u *Updater) restorePrev() error {
	prev := u.exe + ".prev"
	if err := os.Rename(prev, u.exe); err != nil {
		return fmt.Errorf("restore %s: %w", prev, err)
	}
	return atomicfile.SyncDir(filepath.Dir(u.exe))
}

// Start finishes an update under way: the new binary waits for the hub to hear from it (or rolls back
// at once, past its deadline or its starts); the previous binary, back after a rollback, forgets the
// marker. Without a marker it does nothing.
func (u *Updater) Start(ctx context.Context) {
	m, err := u.readMarker()
	if err != nil || m == nil {
		if err != nil {
			u.log.Error("unreadable update marker; removing it", "err", err)
			os.Remove(u.markerPath())
		}
		return
	}
	cur, err := u.running()
	if err != nil {
		u.log.Error("cannot hash the running binary; the update marker is left for the next start", "err", err)
		return
	}
	if cur != m.ToDigest {
		// The previous binary runs again (rolled back by an operator, or by us before the exec):
		// the update did not happen.
		if _, known := u.failed()[m.ToDigest]; !known {
			u.recordFailure(m.ToDigest, fmt.Sprintf("new binary %s (%s) did not stay: the agent runs %s again; rolled back", short(m.ToDigest), m.ToVersion, short(cur)))
		}
		os.Remove(u.markerPath())
		return
	}
	m.Starts++
	switch {
	case m.Starts > MaxStarts:
		u.rollback(*m, fmt.Sprintf("it started %d times without the hub hearing from it", m.Starts-1))
		return
	case time.Now().After(m.Deadline):
		u.rollback(*m, fmt.Sprintf("the hub did not hear from it within %v of the swap", u.confirmWithin))
		return
	}
	if err := u.writeMarker(*m); err != nil {
		u.log.Error("update the marker's starts", "err", err)
	}
	u.log.Info("running a new agent binary; it is committed once the hub accepts its heartbeat", "version", m.ToVersion, "deadline", m.Deadline)
	wctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), m.Deadline)
	u.mu.Lock()
	u.stopWatch = cancel
	u.mu.Unlock()
	go func() {
		<-wctx.Done()
		u.mu.Lock()
		done := u.committed
		u.mu.Unlock()
		if !done && errors.Is(wctx.Err(), context.DeadlineExceeded) {
			u.rollback(*m, fmt.Sprintf("the hub did not hear from it within %v of the swap", u.confirmWithin))
		}
	}()
}

// HeartbeatAccepted commits an update under way: the hub shows the new version.
func (u *Updater) HeartbeatAccepted(context.Context) {
	m, err := u.readMarker()
	if err != nil || m == nil {
		return
	}
	if cur, err := u.running(); err != nil || cur != m.ToDigest {
		return
	}
	u.mu.Lock()
	u.committed = true
	if u.stopWatch != nil {
		u.stopWatch()
	}
	u.mu.Unlock()
	if err := os.Remove(u.markerPath()); err != nil {
		u.log.Error("remove the update marker", "err", err)
		return
	}
	u.log.Info("agent update committed: the hub accepted the new binary's heartbeat", "from", m.FromVersion, "to", m.ToVersion)
}

// rollback restores the previous binary, records why, and execs it.
func (u *Updater) rollback(m Marker, why string) {
	reason := fmt.Sprintf("new binary %s (%s) was rolled back to %s (%s): %s", short(m.ToDigest), m.ToVersion, short(m.FromDigest), m.FromVersion, why)
	u.log.Error("rolling back the agent update", "reason", reason)
	if err := u.recordFailure(m.ToDigest, reason); err != nil {
		u.log.Error("record the rollback", "err", err)
	}
	if err := u.restorePrev(); err != nil {
		u.log.Error("cannot restore the previous binary; the new one keeps running", "err", err)
		return
	}
	os.Remove(u.markerPath())
	if err := u.exec(u.exe, u.args, u.env); err != nil {
		u.log.Error("restart into the previous binary failed; it runs at the next start", "err", err)
	}
}
