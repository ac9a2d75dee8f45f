package selfupdate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// script is a stand-in agent binary: `version` prints its version, `selftest` prints it as JSON (or
// fails as told), anything else exits 0.
func script(version, selftest string) []byte {
	if selftest == "" {
		selftest = fmt.Sprintf(`echo '{"version":"%s"}'`, version)
	}
	return []byte(fmt.Sprintf("#!/bin/sh\ncase \"$1\" in\nversion) echo \"pulse-agent %s\";;\nselftest) %s;;\nesac\n", version, selftest))
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// dirArtifacts is a fetcher that has every artifact it was given, already verified.
type dirArtifacts struct {
	dir   string
	blobs map[string][]byte
}

func (d *dirArtifacts) Fetch(_ context.Context, ref wire.ArtifactRef) (string, error) {
	b, ok := d.blobs[ref.Digest]
	if !ok {
		return "", fmt.Errorf("no artifact %s", ref.Digest)
	}
	p := filepath.Join(d.dir, ref.Hex())
	return p, os.WriteFile(p, b, 0o400)
}

// rig is an Updater on a real binary file in a temporary directory, whose exec is recorded instead
// of replacing the test process.
type rig struct {
	t      *testing.T
	u      *Updater
	arts   *dirArtifacts
	execs  []string
	binDir string
	state  string
}

func newRig(t *testing.T, running []byte) *rig {
	r := &rig{t: t, binDir: t.TempDir(), state: t.TempDir(), arts: &dirArtifacts{dir: t.TempDir(), blobs: map[string][]byte{}}}
	exe := filepath.Join(r.binDir, "pulse-agent")
	if err := os.WriteFile(exe, running, 0o755); err != nil {
		t.Fatal(err)
	}
	r.u = r.updater()
	return r
}

// updater is a fresh Updater, as a (re)started agent process has.
func (r *rig) updater() *Updater {
	u := New()
	u.log = slog.New(slog.DiscardHandler)
	u.exe = filepath.Join(r.binDir, "pulse-agent")
	u.args = []string{u.exe, "run", "--state-dir", "/nowhere"}
	u.exec = func(path string, args, _ []string) error {
		r.execs = append(r.execs, path+" "+strings.Join(args[1:], " "))
		return nil
	}
	if err := u.Configure(map[string]any{"enabled": true, "confirm_within": "1m"}); err != nil {
		r.t.Fatal(err)
	}
	u.UseStateDir(r.state)
	u.UseArtifacts(r.arts)
	if err := u.Precondition(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	return u
}

func (r *rig) unit(bin []byte, version string) wire.Unit {
	d := digestOf(bin)
	r.arts.blobs[d] = bin
	spec, _ := json.Marshal(map[string]any{"artifact": map[string]any{"digest": d, "size": len(bin)}, "version": version})
	return wire.Unit{Name: "agent", Type: UnitType, Spec: spec}
}

func (r *rig) exe() []byte {
	b, err := os.ReadFile(r.u.exe)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *rig) leftovers() []string {
	m, _ := filepath.Glob(filepath.Join(r.binDir, ".pulse-agent-update-*"))
	return m
}

// TestUpdateSwapsCommitsAndRestarts: a binary that passes its self-test replaces the running one
// (kept as .prev), the agent execs it with its own arguments, and the new process commits the update
// once the hub accepts its heartbeat; the unit is then in state.
func TestUpdateSwapsCommitsAndRestarts(t *testing.T) {
	v1, v2 := script("v1", ""), script("v2", "")
	r := newRig(t, v1)
	u := r.unit(v2, "v2")
	ctx := context.Background()
	if o, _ := r.u.Observe(ctx, u); o.InState || !strings.Contains(o.Detail, "(v1), want") {
		t.Fatalf("before: %+v", o)
	}
	if err := r.u.Apply(ctx, u); err != nil {
		t.Fatal(err)
	}
	if string(r.exe()) != string(v2) {
		t.Fatal("the binary was not replaced")
	}
	if prev, _ := os.ReadFile(r.u.exe + ".prev"); string(prev) != string(v1) {
		t.Error("the previous binary was not kept as .prev")
	}
	if len(r.execs) != 1 || r.execs[0] != r.u.exe+" run --state-dir /nowhere" {
		t.Errorf("execs %q, want one of the binary with the same arguments", r.execs)
	}
	m, err := r.u.readMarker()
	if err != nil || m == nil || m.FromVersion != "v1" || m.ToVersion != "v2" || m.ToDigest != digestOf(v2) {
		t.Fatalf("marker %+v, %v", m, err)
	}
	// The new process.
	n := r.updater()
	n.Start(ctx)
	n.HeartbeatAccepted(ctx)
	if m, _ := n.readMarker(); m != nil {
		t.Errorf("marker after the accepted heartbeat: %+v, want it removed", m)
	}
	if o, _ := n.Observe(ctx, u); !o.InState {
		t.Errorf("after commit: %+v", o)
	}
	if len(r.execs) != 1 || len(r.leftovers()) != 0 {
		t.Errorf("execs %q, leftovers %v; want no more restarts and no temporary binary", r.execs, r.leftovers())
	}
}

// TestUpdateRefusedBeforeTheSwap: a new binary that fails its self-test, or reports another version
// than the unit wants, is removed and the running binary never touched; the reason says what happened.
func TestUpdateRefusedBeforeTheSwap(t *testing.T) {
	cases := []struct {
		name, version string
		bin           []byte
		want          string
	}{
		{"exits at once", "v2", []byte("#!/bin/sh\necho 'cannot load config' >&2\nexit 3\n"), "exited with status 3 in its self-test: cannot load config; rolled back, still running v1"},
		{"another version", "v3", script("v2", ""), `reports version "v2" in its self-test, the unit wants "v3"; rolled back, still running v1`},
		{"no version", "", script("v2", "echo hello"), "printed no version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v1 := script("v1", "")
			r := newRig(t, v1)
			err := r.u.Apply(context.Background(), r.unit(tc.bin, tc.version))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "new binary sha256:") {
				t.Fatalf("Apply: %v, want %q", err, tc.want)
			}
			if string(r.exe()) != string(v1) || len(r.execs) != 0 || len(r.leftovers()) != 0 {
				t.Errorf("running binary changed %v, execs %q, leftovers %v", string(r.exe()) != string(v1), r.execs, r.leftovers())
			}
			if m, _ := r.u.readMarker(); m != nil {
				t.Errorf("marker %+v, want none", m)
			}
		})
	}
}

// TestUpdateRolledBackUnlessConfirmed: a swapped-in binary that the hub does not hear from within the
// deadline, or that keeps restarting without committing, restores the previous binary and execs it;
// the previous binary then reports the unit failed with the reason and does not try it again.
func TestUpdateRolledBackUnlessConfirmed(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Marker)
		wait  bool // the deadline passes while the new binary runs
		wants string
	}{
		{"deadline passed before the start", func(m *Marker) { m.Deadline = time.Now().Add(-time.Second) }, false, "the hub did not hear from it within 1m0s of the swap"},
		{"too many starts", func(m *Marker) { m.Starts = MaxStarts }, false, fmt.Sprintf("it started %d times without the hub hearing from it", MaxStarts)},
		{"deadline passes while it runs", func(m *Marker) { m.Deadline = time.Now().Add(300 * time.Millisecond) }, true, "the hub did not hear from it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v1, v2 := script("v1", ""), script("v2", "")
			r := newRig(t, v1)
			u := r.unit(v2, "v2")
			ctx := context.Background()
			if err := r.u.Apply(ctx, u); err != nil {
				t.Fatal(err)
			}
			m, _ := r.u.readMarker()
			tc.edit(m)
			r.u.writeMarker(*m)
			n := r.updater()
			n.Start(ctx)
			if tc.wait {
				deadline := time.Now().Add(5 * time.Second)
				for len(r.execs) < 2 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
			}
			if string(r.exe()) != string(v1) || len(r.execs) != 2 {
				t.Fatalf("after the rollback: binary is v1 %v, execs %q; want v1 back and exec'd", string(r.exe()) == string(v1), r.execs)
			}
			if m, _ := n.readMarker(); m != nil {
				t.Errorf("marker after the rollback: %+v", m)
			}
			// The previous binary, started again.
			p := r.updater()
			p.Start(ctx)
			o, err := p.Observe(ctx, u)
			if err != nil || o.InState || !strings.Contains(o.Detail, "was rolled back to") || !strings.Contains(o.Detail, tc.wants) || !strings.Contains(o.Detail, "(v1)") {
				t.Errorf("Observe after the rollback: %+v, %v; want the reason %q", o, err, tc.wants)
			}
			if err := p.Apply(ctx, u); err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Errorf("Apply after the rollback: %v, want the recorded reason, not another try", err)
			}
			if len(r.execs) != 2 {
				t.Errorf("execs %q: the rolled-back digest was tried again", r.execs)
			}
		})
	}
}
