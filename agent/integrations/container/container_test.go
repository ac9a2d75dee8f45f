//go:build linux

package container_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/pulsehq/pulse/agent/integration"
	pc "github.com/pulsehq/pulse/agent/integrations/container"
	"github.com/pulsehq/pulse/agent/integrations/container/dockertest"
	"github.com/pulsehq/pulse/agent/wire"
)

// env is one private daemon with the test image loaded, and the image's archive.
type env struct {
	d   *dockertest.Daemon
	img dockertest.Image
	// roots is the directory the tests' [container] allow_mounts names.
	roots string
}

func newEnv(t *testing.T, load bool) *env {
	t.Helper()
	d := dockertest.Start(t)
	e := &env{d: d, img: dockertest.BuildImage(t, t.TempDir(), ""), roots: t.TempDir()}
	if load {
		d.Load(t, e.img)
	}
	return e
}

// inst is the integration as the agent loads it, with the changes its Watch reported.
type inst struct {
	integration.Reconciler
	mu      sync.Mutex
	changes []string
}

func (i *inst) changed() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.changes...)
}

// load builds the integration over the env's daemon; extra adds to or overrides its [container] table.
func (e *env) load(t *testing.T, extra map[string]any, opts ...integration.Option) *inst {
	t.Helper()
	table := map[string]any{"socket": e.d.Host, "allow_images": []any{"sha256:", "example.org/app@"}, "allow_mounts": []any{e.roots}, "stop_grace": "1s"}
	for k, v := range extra {
		table[k] = v
	}
	s := integration.Load(context.Background(), map[string]any{"container": table}, nil, opts...)
	r, err := s.Reconciler("container")
	if err != nil {
		t.Fatalf("no container reconciler: %v (%+v)", err, s.Statuses())
	}
	in := &inst{Reconciler: r}
	r.(integration.Watcher).Watch(func(unit string) {
		in.mu.Lock()
		in.changes = append(in.changes, unit)
		in.mu.Unlock()
	})
	return in
}

func unit(name string, spec map[string]any) wire.Unit {
	b, _ := json.Marshal(spec)
	return wire.Unit{Name: name, Type: "container", Spec: b}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// managed lists the daemon's containers of a unit.
func (e *env) managed(t *testing.T, unitName string) []container.Summary {
	t.Helper()
	list, err := e.d.Client.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", pc.LabelUnit+"="+unitName))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func (e *env) inspect(t *testing.T, name string) container.InspectResponse {
	t.Helper()
	info, err := e.d.Client.ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return info
}

func observe(t *testing.T, r integration.Reconciler, u wire.Unit) integration.Observation {
	t.Helper()
	o, err := r.Observe(ctxFor(t, 10*time.Second), u)
	if err != nil {
		t.Fatalf("observe %s: %v", u.Name, err)
	}
	return o
}

func apply(t *testing.T, r integration.Reconciler, u wire.Unit) {
	t.Helper()
	if err := r.Apply(ctxFor(t, 30*time.Second), u); err != nil {
		t.Fatalf("apply %s: %v", u.Name, err)
	}
	if o := observe(t, r, u); !o.InState {
		t.Fatalf("after apply, %s is not in state: %+v", u.Name, o)
	}
}

func sleeper(img string) map[string]any {
	return map[string]any{"image": img, "command": "/bin/sleep", "args": []string{"3600"}}
}

// Configurations that must not run, and a daemon that does not answer, disable the integration
// with the reason; with no allow_images it is simply off.
func TestConfigRefusals(t *testing.T) {
	for _, c := range []struct {
		table map[string]any
		want  string
	}{
		{map[string]any{}, "not enabled"},
		{map[string]any{"allow_images": []any{"sha256:"}, "socket": "tcp://10.0.0.1:2375"}, "unix://"},
		{map[string]any{"allow_images": []any{""}}, "every image"},
		{map[string]any{"allow_images": []any{"sha256:"}, "allow_mounts": []any{"/"}}, "whole host"},
		{map[string]any{"allow_images": []any{"sha256:"}, "allow_mounts": []any{"srv"}}, "absolute"},
		{map[string]any{"allow_images": []any{"sha256:"}, "name_prefix": "/x"}, "name_prefix"},
		{map[string]any{"allow_images": []any{"sha256:"}, "colour": "blue"}, "unknown key"},
		{map[string]any{"allow_images": []any{"sha256:"}, "socket": "unix:///nonexistent/docker.sock"}, "does not answer"},
	} {
		s := integration.Load(context.Background(), map[string]any{"container": c.table}, nil)
		var st wire.IntegrationStatus
		for _, x := range s.Statuses() {
			if x.ID == "container" {
				st = x
			}
		}
		if st.Enabled || !strings.Contains(st.Reason, c.want) {
			t.Errorf("%v: status %+v, want disabled with a reason containing %q", c.table, st, c.want)
		}
	}
}

// CheckUnit refuses, with a reason naming what to change, every unit this agent must not run.
func TestCheckUnitRefuses(t *testing.T) {
	e := newEnv(t, false)
	r := e.load(t, nil)
	id := e.img.ID
	outside := t.TempDir()
	for _, c := range []struct {
		name string
		spec map[string]any
		want string
	}{
		{"tag only", map[string]any{"image": "busybox:1.36"}, "not pinned"},
		{"name only", map[string]any{"image": "busybox"}, "not pinned"},
		{"tag and digest", map[string]any{"image": "example.org/app:1@sha256:" + strings.Repeat("a", 64)}, "without a tag"},
		{"short digest", map[string]any{"image": "sha256:abc"}, "not pinned"},
		{"image not allowed", map[string]any{"image": "other.org/app@sha256:" + strings.Repeat("a", 64)}, "allow_images"},
		{"no image", map[string]any{}, "image is missing"},
		{"unknown field", map[string]any{"image": id, "capAdd": []string{"SYS_ADMIN"}}, "unknown field"},
		{"privileged", map[string]any{"image": id, "privileged": true}, "privileged"},
		{"mount outside roots", map[string]any{"image": id, "mounts": []any{map[string]any{"source": outside, "target": "/data"}}}, "outside the roots"},
		{"mount not clean", map[string]any{"image": id, "mounts": []any{map[string]any{"source": e.roots + "/../etc", "target": "/data"}}}, "clean absolute"},
		{"mount over /", map[string]any{"image": id, "mounts": []any{map[string]any{"source": e.roots, "target": "/"}}}, "other than /"},
		{"ports without a network", map[string]any{"image": id, "ports": []string{"8080:80"}}, "publishes no ports"},
		{"bad port", map[string]any{"image": id, "network": "bridge", "ports": []string{"80"}}, "hostPort:containerPort"},
		{"host network", map[string]any{"image": id, "network": "host"}, "allow_host_network"},
		{"another container's network", map[string]any{"image": id, "network": "container:db"}, "not supported"},
		{"restart", map[string]any{"image": id, "restart": "sometimes"}, "restart"},
		{"relative command", map[string]any{"image": id, "command": "sleep"}, "absolute path"},
		{"health without command", map[string]any{"image": id, "health": map[string]any{"interval": "1s"}}, "command is missing"},
		{"health interval", map[string]any{"image": id, "health": map[string]any{"command": []string{"/bin/true"}, "interval": "soon"}}, "interval"},
		{"env name", map[string]any{"image": id, "env": map[string]string{"A=B": "c"}}, "variable name"},
		{"user", map[string]any{"image": id, "user": "root; rm"}, "user"},
		{"artifact without a fetcher", map[string]any{"image": id, "artifact": map[string]any{"digest": e.img.Digest, "size": e.img.Size}}, "fetches no artifacts"},
	} {
		err := r.CheckUnit(unit("app", c.spec))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: CheckUnit = %v, want a refusal containing %q", c.name, err, c.want)
		}
	}
	for _, ok := range []map[string]any{
		sleeper(id),
		{"image": "example.org/app@sha256:" + strings.Repeat("b", 64), "network": "bridge", "ports": []string{"127.0.0.1:8080:80/tcp"}, "restart": "on-failure"},
		{"image": id, "mounts": []any{map[string]any{"source": filepath.Join(e.roots, "data"), "target": "/data", "readOnly": true}}, "user": "65534:65534",
			"health": map[string]any{"command": []string{"/bin/true"}, "interval": "1s", "retries": 2}},
	} {
		if err := r.CheckUnit(unit("app", ok)); err != nil {
			t.Errorf("CheckUnit(%v) = %v, want accepted", ok, err)
		}
	}
}

// A unit converges from nothing to one running, labelled container named by the prefix and the
// unit; a second Apply changes nothing.
func TestConvergeAndIdempotent(t *testing.T) {
	e := newEnv(t, true)
	r := e.load(t, map[string]any{"name_prefix": "t1-"})
	u := unit("app", sleeper(e.img.ID))
	if o := observe(t, r, u); o.InState || o.Detail != "missing" {
		t.Fatalf("before apply: %+v, want missing", o)
	}
	apply(t, r, u)
	info := e.inspect(t, "t1-app")
	if !info.State.Running || info.Config.Labels[pc.LabelDigest] != u.Digest() || info.Config.Labels[pc.LabelManaged] != "true" || info.Config.Labels[pc.LabelUnit] != "app" {
		t.Fatalf("container: running %v, labels %v; want running with the unit's labels", info.State.Running, info.Config.Labels)
	}
	if info.HostConfig.NetworkMode != "none" || info.HostConfig.RestartPolicy.Name != "always" {
		t.Errorf("network %q, restart %q; want the defaults none and always", info.HostConfig.NetworkMode, info.HostConfig.RestartPolicy.Name)
	}
	if o := observe(t, r, u); o.Digest != u.Digest() {
		t.Errorf("observed digest %q, want %q", o.Digest, u.Digest())
	}
	apply(t, r, u)
	again := e.inspect(t, "t1-app")
	if again.ID != info.ID || again.State.StartedAt != info.State.StartedAt {
		t.Errorf("a second apply touched the container (%s started %s, then %s started %s)", info.ID[:12], info.State.StartedAt, again.ID[:12], again.State.StartedAt)
	}
	if n := len(e.managed(t, "app")); n != 1 {
		t.Errorf("%d containers of unit app, want 1", n)
	}
}

// A container removed or stopped by hand is observed as such, reported by Watch, and repaired by
// Apply; a spec change replaces the container with one of the new spec.
func TestDriftAndSpecChange(t *testing.T) {
	e := newEnv(t, true)
	r := e.load(t, nil)
	u := unit("app", sleeper(e.img.ID))
	apply(t, r, u)
	ctx := context.Background()

	if err := e.d.Client.ContainerRemove(ctx, "pulse-app", container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if o := observe(t, r, u); o.InState || o.Detail != "missing" {
		t.Fatalf("after removal: %+v, want missing", o)
	}
	waitChanged(t, r, "app")
	apply(t, r, u)

	r.mu.Lock()
	r.changes = nil
	r.mu.Unlock()
	timeout := 0
	if err := e.d.Client.ContainerStop(ctx, "pulse-app", container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if o := observe(t, r, u); o.InState || !strings.Contains(o.Detail, "not running") {
		t.Fatalf("after stop: %+v, want not running", o)
	}
	waitChanged(t, r, "app")
	before := e.inspect(t, "pulse-app").ID
	apply(t, r, u)
	if after := e.inspect(t, "pulse-app"); after.ID != before || !after.State.Running {
		t.Errorf("a stopped container should be started again, not replaced (%s → %s)", before[:12], after.ID[:12])
	}

	changed := unit("app", map[string]any{"image": e.img.ID, "command": "/bin/sleep", "args": []string{"3601"}})
	if o := observe(t, r, changed); o.InState || !strings.Contains(o.Detail, "another spec") || o.Digest != u.Digest() {
		t.Fatalf("after a spec change: %+v, want another spec (observed digest the old one)", o)
	}
	apply(t, r, changed)
	after := e.inspect(t, "pulse-app")
	if after.ID == before || strings.Join(after.Config.Cmd, " ") != "3601" {
		t.Errorf("the spec change did not replace the container (id %s, cmd %v)", after.ID[:12], after.Config.Cmd)
	}
	if n := len(e.managed(t, "app")); n != 1 {
		t.Errorf("%d containers of unit app after the replacement, want 1", n)
	}
}

func waitChanged(t *testing.T, r *inst, unit string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range r.changed() {
			if c == unit {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("Watch did not report unit %s (reported %v)", unit, r.changed())
}

// An agent killed between creating the container and starting it leaves it created: the next Apply
// starts that one. Two Applies racing (two agents' worth, one daemon, one prefix) make one container.
// A container of that name that pulse does not manage is never touched.
func TestCrashLeftoversMakeNoDuplicate(t *testing.T) {
	e := newEnv(t, true)
	r := e.load(t, nil)
	u := unit("app", sleeper(e.img.ID))
	ctx := context.Background()
	created, err := e.d.Client.ContainerCreate(ctx, &container.Config{Image: e.img.ID, Entrypoint: []string{"/bin/sleep"}, Cmd: []string{"3600"},
		Labels: map[string]string{pc.LabelManaged: "true", pc.LabelUnit: "app", pc.LabelDigest: u.Digest()}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "pulse-app")
	if err != nil {
		t.Fatal(err)
	}
	if o := observe(t, r, u); o.InState || o.Detail != "created, not started" {
		t.Fatalf("leftover: %+v, want created, not started", o)
	}
	apply(t, r, u)
	if info := e.inspect(t, "pulse-app"); info.ID != created.ID || !info.State.Running {
		t.Errorf("the leftover was not the one started (leftover %s, now %s)", created.ID[:12], info.ID[:12])
	}

	// Racing: two instances apply a new unit at once.
	other := e.load(t, nil)
	v := unit("race", sleeper(e.img.ID))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, in := range []integration.Reconciler{r, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = in.Apply(ctxFor(t, 30*time.Second), v)
		}()
	}
	wg.Wait()
	if errors.Join(errs...) != nil {
		t.Errorf("racing applies: %v", errs)
	}
	if n := len(e.managed(t, "race")); n != 1 {
		t.Errorf("%d containers after two racing applies, want 1", n)
	}

	// Not pulse's.
	if _, err := e.d.Client.ContainerCreate(ctx, &container.Config{Image: e.img.ID}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "pulse-theirs"); err != nil {
		t.Fatal(err)
	}
	w := unit("theirs", sleeper(e.img.ID))
	if o := observe(t, r, w); o.InState || !strings.Contains(o.Detail, "does not manage") {
		t.Errorf("someone else's container: %+v, want not managed", o)
	}
	if err := r.Apply(ctxFor(t, 10*time.Second), w); err == nil || !strings.Contains(err.Error(), "does not manage") {
		t.Errorf("Apply over someone else's container = %v, want refused", err)
	}
	if info := e.inspect(t, "pulse-theirs"); info.State.Running || info.Config.Labels[pc.LabelManaged] != "" {
		t.Error("someone else's container was touched")
	}
}

// A health check decides convergence: one that passes (through a bind mount under the allowed roots)
// converges; one that never passes fails Apply at the deadline, naming the check and its output.
// Restart restarts; Release leaves the container running.
func TestHealthRestartRelease(t *testing.T) {
	e := newEnv(t, true)
	r := e.load(t, nil)
	flags := filepath.Join(e.roots, "flags")
	if err := os.MkdirAll(flags, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := sleeper(e.img.ID)
	spec["mounts"] = []any{map[string]any{"source": flags, "target": "/flags", "readOnly": true}}
	spec["health"] = map[string]any{"command": []string{"/bin/test", "-e", "/flags/ok"}, "interval": "200ms", "retries": 1}
	u := unit("app", spec)

	err := r.Apply(ctxFor(t, 3*time.Second), u)
	if err == nil || !strings.Contains(err.Error(), `health check "/bin/test -e /flags/ok"`) {
		t.Fatalf("Apply with a failing health check = %v, want a failure naming the check", err)
	}
	if o := observe(t, r, u); o.InState || o.WaitingOn != "health check" || !strings.Contains(o.Detail, "health check") {
		t.Errorf("unhealthy: %+v, want not in state, waiting on the health check", o)
	}
	if err := os.WriteFile(filepath.Join(flags, "ok"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	apply(t, r, u)
	if h := e.inspect(t, "pulse-app").State.Health; h == nil || h.Status != container.Healthy {
		t.Errorf("health after apply: %+v, want healthy", h)
	}

	before := e.inspect(t, "pulse-app").State.StartedAt
	if err := r.Reconciler.(integration.Restarter).Restart(ctxFor(t, 30*time.Second), u); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if after := e.inspect(t, "pulse-app").State; after.StartedAt == before || !after.Running {
		t.Errorf("restart: started at %s then %s (running %v); want a new start", before, after.StartedAt, after.Running)
	}

	if err := r.Reconciler.(integration.Releaser).Release(ctxFor(t, 10*time.Second), u); err != nil {
		t.Fatalf("release: %v", err)
	}
	if !e.inspect(t, "pulse-app").State.Running {
		t.Error("a released container was stopped; it must be left as it is")
	}
}

// fakeArtifacts hands out local files by digest, as the agent's fetcher would after checking them.
type fakeArtifacts struct {
	files   map[string]string
	fetched int
}

func (f *fakeArtifacts) Fetch(_ context.Context, ref wire.ArtifactRef) (string, error) {
	f.fetched++
	if p, ok := f.files[ref.Digest]; ok {
		return p, nil
	}
	return "", fmt.Errorf("no artifact %s", ref.Digest)
}

// An image the daemon lacks is loaded from the unit's artifact (a docker save archive), once; an
// artifact that holds another image fails, saying so; a data root without room for the artifact
// (the min_free_mb reserve set beyond the disk) waits on free space and loads nothing.
func TestImageFromArtifactAndFreeSpace(t *testing.T) {
	e := newEnv(t, false)
	arts := &fakeArtifacts{files: map[string]string{e.img.Digest: e.img.Tar}}
	ref := map[string]any{"digest": e.img.Digest, "size": e.img.Size}

	full := e.load(t, map[string]any{"min_free_mb": int64(1) << 40}, integration.WithArtifacts(arts))
	spec := sleeper(e.img.ID)
	spec["artifact"] = ref
	u := unit("app", spec)
	if o := observe(t, full, u); o.InState || !strings.HasPrefix(o.WaitingOn, "free space: need ") || !strings.Contains(o.WaitingOn, ", have ") {
		t.Errorf("no room: %+v, want waiting on free space", o)
	}
	err := full.Apply(ctxFor(t, 10*time.Second), u)
	if err == nil || !strings.Contains(err.Error(), "free space: need ") {
		t.Fatalf("Apply with no room = %v, want a free space refusal", err)
	}
	if arts.fetched != 0 {
		t.Errorf("the artifact was fetched %d times with no room to load it", arts.fetched)
	}

	r := e.load(t, nil, integration.WithArtifacts(arts))
	wrong := sleeper("sha256:" + strings.Repeat("0", 64))
	wrong["artifact"] = ref
	if err := r.Apply(ctxFor(t, 30*time.Second), unit("wrong", wrong)); err == nil || !strings.Contains(err.Error(), "holds no image") {
		t.Errorf("Apply of an artifact holding another image = %v, want it said", err)
	}
	if err := e.d.Client.ContainerRemove(context.Background(), "pulse-wrong", container.RemoveOptions{Force: true}); err == nil {
		t.Error("a container was created for an image that is not there")
	}
	if _, err := e.d.Client.ImageRemove(context.Background(), e.img.ID, imageRemoveOpts); err != nil {
		t.Fatal(err)
	}
	arts.fetched = 0
	apply(t, r, u)
	apply(t, r, u)
	if arts.fetched != 1 {
		t.Errorf("fetched %d times, want once (the image is there the second time)", arts.fetched)
	}
}

var imageRemoveOpts = image.RemoveOptions{Force: true}

// A one-shot container under restart no is done once it exited; a mount whose source is a symlink
// under the roots pointing outside them is refused before anything is created; an image the daemon
// lacks, with no artifact, is pulled, and a registry that does not answer fails the unit saying so.
func TestOneShotSymlinkAndPull(t *testing.T) {
	e := newEnv(t, true)
	r := e.load(t, map[string]any{"allow_images": []any{"sha256:", "127.0.0.1:1/"}})

	once := unit("once", map[string]any{"image": e.img.ID, "command": "/bin/true", "restart": "no"})
	apply(t, r, once)
	if o := observe(t, r, once); !o.InState || !strings.Contains(o.Detail, "exited with code 0") {
		t.Errorf("one-shot: %+v, want in state, exited with code 0", o)
	}
	if e.inspect(t, "pulse-once").State.Running {
		t.Error("the one-shot container still runs")
	}

	link := filepath.Join(e.roots, "escape")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	esc := sleeper(e.img.ID)
	esc["mounts"] = []any{map[string]any{"source": link, "target": "/data"}}
	u := unit("esc", esc)
	if err := r.CheckUnit(u); err != nil {
		t.Fatalf("CheckUnit(%v) = %v; the path itself is under the root", esc, err)
	}
	if err := r.Apply(ctxFor(t, 10*time.Second), u); err == nil || !strings.Contains(err.Error(), "resolves to") {
		t.Errorf("Apply of a mount escaping through a symlink = %v, want refused", err)
	}
	if len(e.managed(t, "esc")) != 0 {
		t.Error("a container was created with a mount escaping the roots")
	}

	pull := unit("pull", sleeper("127.0.0.1:1/app@sha256:"+strings.Repeat("c", 64)))
	if err := r.Apply(ctxFor(t, 20*time.Second), pull); err == nil || !strings.Contains(err.Error(), "pulling it failed") {
		t.Errorf("Apply of an image no registry serves = %v, want a pull failure", err)
	}
}
