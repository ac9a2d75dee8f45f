// Package container is the built-in integration that owns the "container" unit type of plans: a
// Docker container, driven through the Docker Engine API (the pinned github.com/docker/docker client,
// negotiating the API version with whatever daemon answers), from an image pinned by digest or image
// ID, loaded from an artifact when the daemon lacks it, after a free-space check. Only images the
// agent's config allows can run, and only directories it allows can be bind-mounted.
//
//	[container]
//	socket = "unix:///var/run/docker.sock"          # the default
//	allow_images = ["registry.example/app@sha256:", "sha256:"]   # prefixes of a unit's image
//	allow_mounts = ["/srv/app"]                     # host roots a unit may bind-mount
//	name_prefix = "pulse-"                          # containers are named <name_prefix><unit>
//
// A unit's spec:
//
//	{"image": "sha256:0f3e…", "artifact": {"digest": "sha256:…", "size": 2061824},
//	 "command": "/bin/server", "args": ["--port", "8080"], "env": {"MODE": "prod"},
//	 "ports": ["127.0.0.1:8080:8080/tcp"], "network": "bridge",
//	 "mounts": [{"source": "/srv/app/data", "target": "/data", "readOnly": false}],
//	 "restart": "always", "user": "65534",
//	 "health": {"command": ["/bin/wget", "-q", "-O-", "http://127.0.0.1:8080/healthz"], "interval": "5s"}}
//
// The container is found again by its name, never by a memory of the agent: <name_prefix><unit>,
// labelled pulse.managed=true, pulse.unit and pulse.digest (the unit's wire.Unit.Digest). Creating by
// a fixed name is what makes an agent killed mid-apply safe: a second create of the same name fails
// with a conflict, so there is never a duplicate; a container created but not started is started.
package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// ID is the integration's id and its config table.
const ID = "container"

// UnitType is the unit type it owns.
const UnitType = "container"

// Labels the integration puts on every container it creates, and reads back to know it.
const (
	// LabelManaged ("true") marks a container as pulse's: one without it is never touched.
	LabelManaged = "pulse.managed"
	// LabelUnit holds the unit's name.
	LabelUnit = "pulse.unit"
	// LabelDigest holds the unit's digest (wire.Unit.Digest): the spec the container was created for.
	LabelDigest = "pulse.digest"
)

const (
	// DefaultSocket is the Docker daemon's usual address.
	DefaultSocket = "unix:///var/run/docker.sock"
	// DefaultNamePrefix starts every container's name.
	DefaultNamePrefix = "pulse-"
	defaultStopGrace  = 10 * time.Second
	defaultMinFreeMB  = 256
	// spaceFactor is how many times an artifact's size the daemon's data root needs free before it is
	// loaded: the daemon keeps the uploaded archive while it unpacks the layers beside it.
	spaceFactor = 2
	pingTimeout = 5 * time.Second
	pollEvery   = 200 * time.Millisecond
	// maxTurns bounds how often one apply looks again at a container that others keep changing.
	maxTurns = 25
)

func init() {
	integration.Register(integration.Module{ID: ID, New: func() integration.Integration { return newContainer() }})
}

// Container is the integration instance.
type Container struct {
	cfg       config
	stopGrace time.Duration
	minFree   int64
	cli       *client.Client
	artifacts integration.Artifacts
	log       *slog.Logger
	// statfs returns the free bytes of the file system holding path (a variable for tests).
	statfs func(path string) (int64, error)

	mu      sync.Mutex
	locks   map[string]*sync.Mutex // unit -> serialises Apply, Restart
	busy    map[string]int         // unit -> applies under way: their own events are no news
	changed func(unit string)
}

var (
	_ integration.Integration    = (*Container)(nil)
	_ integration.Preconditioner = (*Container)(nil)
	_ integration.Reconciler     = (*Container)(nil)
	_ integration.Restarter      = (*Container)(nil)
	_ integration.Releaser       = (*Container)(nil)
	_ integration.Watcher        = (*Container)(nil)
	_ integration.ArtifactUser   = (*Container)(nil)
)

func newContainer() *Container {
	return &Container{
		stopGrace: defaultStopGrace, minFree: defaultMinFreeMB << 20, statfs: freeBytes,
		log:   slog.Default().With("integration", ID),
		locks: map[string]*sync.Mutex{}, busy: map[string]int{},
	}
}

// config is [container].
type config struct {
	Socket           string   `toml:"socket"`
	AllowImages      []string `toml:"allow_images"`
	AllowMounts      []string `toml:"allow_mounts"`
	AllowHostNetwork bool     `toml:"allow_host_network"`
	NamePrefix       string   `toml:"name_prefix"`
	StopGrace        string   `toml:"stop_grace"`
	MinFreeMB        *int64   `toml:"min_free_mb"`
}

var namePrefixRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// Configure reads [container]: a unix socket, image prefixes, clean absolute mount roots (never /),
// a name prefix Docker accepts, a positive stop grace, a non-negative free-space reserve.
func (c *Container) Configure(raw map[string]any) error {
	cfg := config{Socket: DefaultSocket, NamePrefix: DefaultNamePrefix}
	if err := integration.DecodeConfig(raw, &cfg); err != nil {
		return err
	}
	if p, ok := strings.CutPrefix(cfg.Socket, "unix://"); !ok || !filepath.IsAbs(p) {
		return fmt.Errorf("socket %q: want unix:// and an absolute path, such as %s", cfg.Socket, DefaultSocket)
	}
	for _, im := range cfg.AllowImages {
		if strings.TrimSpace(im) == "" {
			return errors.New("allow_images: an empty entry would allow every image; name prefixes such as \"sha256:\" or \"registry.example/app@sha256:\"")
		}
	}
	for _, r := range cfg.AllowMounts {
		switch {
		case !filepath.IsAbs(r) || filepath.Clean(r) != r:
			return fmt.Errorf("allow_mounts: %q is not a clean absolute path", r)
		case r == "/":
			return errors.New("allow_mounts: \"/\" would let a unit mount the whole host; name the directories it may mount")
		}
	}
	if !namePrefixRE.MatchString(cfg.NamePrefix) {
		return fmt.Errorf("name_prefix %q: want letters, digits, _, . or -, starting with a letter or digit (Docker's container names)", cfg.NamePrefix)
	}
	if cfg.StopGrace != "" {
		d, err := time.ParseDuration(cfg.StopGrace)
		if err != nil || d < time.Second {
			return fmt.Errorf("stop_grace %q: want a duration of at least 1s, such as \"10s\"", cfg.StopGrace)
		}
		c.stopGrace = d
	}
	if cfg.MinFreeMB != nil {
		if *cfg.MinFreeMB < 0 {
			return fmt.Errorf("min_free_mb %d is negative", *cfg.MinFreeMB)
		}
		c.minFree = *cfg.MinFreeMB << 20
	}
	c.cfg = cfg
	return nil
}

// Enabled is true when at least one image prefix is allowed.
func (c *Container) Enabled() bool { return len(c.cfg.AllowImages) > 0 }

// UseArtifacts keeps the agent's fetcher, for images loaded from artifacts.
func (c *Container) UseArtifacts(a integration.Artifacts) { c.artifacts = a }

// Precondition connects to the daemon and pings it, so an agent whose daemon is down or elsewhere
// says so once instead of failing every unit.
func (c *Container) Precondition(ctx context.Context) error {
	cli, err := client.NewClientWithOpts(client.WithHost(c.cfg.Socket), client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client for %s: %w", c.cfg.Socket, err)
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ping, err := cli.Ping(ctx)
	if err != nil {
		cli.Close()
		return fmt.Errorf("the docker daemon at %s does not answer: %w", c.cfg.Socket, err)
	}
	cli.NegotiateAPIVersionPing(ping)
	c.cli = cli
	c.log.Info("docker daemon answers", "socket", c.cfg.Socket, "api", cli.ClientVersion())
	return nil
}

// UnitTypes: container.
func (c *Container) UnitTypes() []string { return []string{UnitType} }

func (cfg *config) imageAllowed(image string) bool {
	for _, p := range cfg.AllowImages {
		if strings.HasPrefix(image, p) {
			return true
		}
	}
	return false
}

// CheckUnit refuses a malformed spec, an image that is not pinned or not allowed, a mount outside
// the allowed roots, a privileged container, and an artifact on an agent without a fetcher.
func (c *Container) CheckUnit(u wire.Unit) error {
	s, err := parse(u, &c.cfg)
	if err != nil {
		return err
	}
	if s.Artifact != nil && c.artifacts == nil {
		return errors.New("artifact: this agent fetches no artifacts, so it cannot load an image from one; load the image into the daemon, or run an agent that fetches artifacts")
	}
	return nil
}

// name is the container's name for a unit.
func (c *Container) name(unit string) string { return c.cfg.NamePrefix + unit }

// inspect returns the container named name, or nil when there is none. Docker also resolves a name
// as an ID prefix; a container found that way is not ours.
func (c *Container) inspect(ctx context.Context, name string) (*container.InspectResponse, error) {
	info, err := c.cli.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", name, err)
	}
	if info.Name != "/"+name {
		return nil, nil
	}
	return &info, nil
}

func managed(info *container.InspectResponse) bool {
	return info.Config != nil && info.Config.Labels[LabelManaged] == "true"
}

func digestOf(info *container.InspectResponse) string {
	if info.Config == nil {
		return ""
	}
	return info.Config.Labels[LabelDigest]
}

// Observe inspects the unit's container by name: absent, not pulse's, of another spec, not running
// (unless its restart policy says it is done), or failing its health check is not in state.
func (c *Container) Observe(ctx context.Context, u wire.Unit) (integration.Observation, error) {
	s, err := parse(u, &c.cfg)
	if err != nil {
		return integration.Observation{}, err
	}
	name, want := c.name(u.Name), u.Digest()
	info, err := c.inspect(ctx, name)
	if err != nil {
		return integration.Observation{}, err
	}
	if info == nil {
		obs := integration.Observation{Detail: "missing"}
		if s.Artifact != nil {
			if present, err := c.imagePresent(ctx, s.Image); err == nil && !present {
				if need, have, root, err := c.space(ctx, s.Artifact.Size); err == nil && have < need {
					obs.WaitingOn = fmt.Sprintf("free space: need %s on %s, have %s", mib(need), root, mib(have))
				}
			}
		}
		return obs, nil
	}
	if !managed(info) {
		return integration.Observation{Detail: fmt.Sprintf("a container named %s exists that pulse does not manage (no label %s=true)", name, LabelManaged)}, nil
	}
	if got := digestOf(info); got != want {
		return integration.Observation{Digest: got, Detail: fmt.Sprintf("container %s was created for another spec (%s)", name, got)}, nil
	}
	st := info.State
	switch {
	case st == nil:
		return integration.Observation{Digest: want, Detail: "the daemon reports no state"}, nil
	case st.Paused:
		return integration.Observation{Digest: want, Detail: "paused"}, nil
	case st.Running:
		if s.Health == nil {
			return integration.Observation{Digest: want, InState: true}, nil
		}
		switch hs := healthOf(st); hs {
		case container.Healthy:
			return integration.Observation{Digest: want, InState: true}, nil
		case container.Starting:
			return integration.Observation{Digest: want, Detail: "running; its health check has not passed yet", WaitingOn: "health check"}, nil
		default:
			return integration.Observation{Digest: want, Detail: fmt.Sprintf("running, but %s", healthDesc(s, st)), WaitingOn: "health check"}, nil
		}
	case st.Status == "removing":
		return integration.Observation{Digest: want, Detail: "being removed"}, nil
	case st.Restarting:
		return integration.Observation{Digest: want, Detail: fmt.Sprintf("restarting (it exited with code %d)", st.ExitCode)}, nil
	case st.Status == "created":
		return integration.Observation{Digest: want, Detail: "created, not started"}, nil
	case done(s, st):
		return integration.Observation{Digest: want, InState: true, Detail: fmt.Sprintf("exited with code %d; restart policy %s", st.ExitCode, s.Restart)}, nil
	default:
		return integration.Observation{Digest: want, Detail: fmt.Sprintf("not running (%s, exit code %d)", st.Status, st.ExitCode)}, nil
	}
}

// done reports whether a container of the current spec that ran and stopped needs nothing more.
func done(s spec, st *container.State) bool {
	if st.Status == "created" {
		return false
	}
	switch s.Restart {
	case RestartNo:
		return true
	case RestartOnFailure:
		return st.ExitCode == 0 && st.Error == ""
	}
	return false
}

func healthOf(st *container.State) container.HealthStatus {
	if st.Health == nil {
		return container.NoHealthcheck
	}
	return st.Health.Status
}

// healthDesc says how a container's health check stands, with its last output, for a reason.
func healthDesc(s spec, st *container.State) string {
	cmd := strings.Join(s.Health.Command, " ")
	if st.Health == nil {
		return fmt.Sprintf("health check %q: the daemon reports no health", cmd)
	}
	desc := fmt.Sprintf("health check %q: %s", cmd, st.Health.Status)
	if st.Health.FailingStreak > 0 {
		desc += fmt.Sprintf(" after %d failures in a row", st.Health.FailingStreak)
	}
	if n := len(st.Health.Log); n > 0 {
		last := st.Health.Log[n-1]
		out := strings.TrimSpace(last.Output)
		if len(out) > 200 {
			out = "…" + out[len(out)-200:]
		}
		desc += fmt.Sprintf("; last exit code %d", last.ExitCode)
		if out != "" {
			desc += ": " + out
		}
	}
	return desc
}

// Apply brings the unit to its spec, doing only what differs: nothing for a running (and healthy)
// container of this spec; one of another spec is removed; a missing image is loaded from the unit's
// artifact (or pulled) after the free-space check; the container is created by its fixed name and
// started, and waited for until its health check passes within ctx (the unit's deadline). A container
// left created but not started (an agent killed between the two) is started, not created again.
func (c *Container) Apply(ctx context.Context, u wire.Unit) error {
	return c.reconcile(ctx, u, false)
}

// Restart restarts the unit's container (SIGTERM, SIGKILL after stop_grace), because a unit it
// depends on changed, and waits for its health check; a container not there is created.
func (c *Container) Restart(ctx context.Context, u wire.Unit) error {
	return c.reconcile(ctx, u, true)
}

func (c *Container) lock(unit string) func() {
	c.mu.Lock()
	l := c.locks[unit]
	if l == nil {
		l = &sync.Mutex{}
		c.locks[unit] = l
	}
	c.mu.Unlock()
	l.Lock()
	c.mu.Lock()
	c.busy[unit]++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.busy[unit]--
		c.mu.Unlock()
		l.Unlock()
	}
}

func (c *Container) reconcile(ctx context.Context, u wire.Unit, restart bool) error {
	s, err := parse(u, &c.cfg)
	if err != nil {
		return err
	}
	defer c.lock(u.Name)()
	name, want := c.name(u.Name), u.Digest()
	// Each turn looks again at what is there; a create that conflicts (a container of that name
	// appeared meanwhile: the daemon reserves the name before it can be inspected) or a stale
	// container removed sends it round once more.
	for range maxTurns {
		info, err := c.inspect(ctx, name)
		if err != nil {
			return err
		}
		if info == nil {
			if err := c.ensureImage(ctx, s); err != nil {
				return err
			}
			if err := c.checkMountsNow(s); err != nil {
				return err
			}
			if err := c.create(ctx, u, s); errors.Is(err, errConflict) {
				select {
				case <-ctx.Done():
					return fmt.Errorf("create container %s: %w", name, err)
				case <-time.After(pollEvery):
				}
				continue
			} else if err != nil {
				return err
			}
			return c.start(ctx, name, s)
		}
		if !managed(info) {
			return fmt.Errorf("a container named %s exists that pulse does not manage (no label %s=true); rename or remove it, or set another [container] name_prefix", name, LabelManaged)
		}
		if got := digestOf(info); got != want {
			c.log.Info("replacing a container of another spec", "container", name, "had", got, "want", want)
			if err := c.cli.ContainerRemove(ctx, info.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("remove container %s of another spec: %w", name, err)
			}
			continue
		}
		st := info.State
		switch {
		case st != nil && st.Status == "removing":
			// Someone removes it (docker rm -f): it cannot be started; wait until it is gone.
			if err := c.waitGone(ctx, name); err != nil {
				return err
			}
			continue
		case st != nil && (st.Dead || st.Status == "dead"):
			if err := c.cli.ContainerRemove(ctx, info.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("remove dead container %s: %w", name, err)
			}
			continue
		case st != nil && st.Running && !st.Paused && !restart:
			if s.Health == nil || healthOf(st) == container.Healthy {
				return nil
			}
			if healthOf(st) == container.Unhealthy {
				c.log.Info("restarting an unhealthy container", "container", name, "health", healthDesc(s, st))
				return c.restart(ctx, name, s)
			}
			return c.waitHealthy(ctx, name, s)
		case st != nil && (st.Running || st.Restarting || st.Paused):
			return c.restart(ctx, name, s)
		case st != nil && !restart && done(s, st):
			return nil
		default: // created and never started, or exited
			return c.start(ctx, name, s)
		}
	}
	return fmt.Errorf("container %s keeps changing under the agent (created or removed by someone else while it applied)", name)
}

// waitGone waits until the container named name no longer exists.
func (c *Container) waitGone(ctx context.Context, name string) error {
	for {
		info, err := c.inspect(ctx, name)
		if err != nil || info == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container %s is being removed by someone else and is still there: %w", name, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

func (c *Container) start(ctx context.Context, name string, s spec) error {
	if err := c.cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", name, err)
	}
	return c.waitHealthy(ctx, name, s)
}

func (c *Container) restart(ctx context.Context, name string, s spec) error {
	secs := int(c.stopGrace / time.Second)
	if err := c.cli.ContainerRestart(ctx, name, container.StopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("restart container %s: %w", name, err)
	}
	return c.waitHealthy(ctx, name, s)
}

// waitHealthy waits until a started container runs (and, with a health check, is healthy) or ctx
// ends; the error then names the health check and its last output. A container that stopped and is
// not being restarted by the daemon fails at once, saying how it ended.
func (c *Container) waitHealthy(ctx context.Context, name string, s spec) error {
	for {
		info, err := c.inspect(ctx, name)
		if err != nil {
			if ctx.Err() != nil && s.Health != nil {
				return fmt.Errorf("health check %q: %w", strings.Join(s.Health.Command, " "), ctx.Err())
			}
			return err
		}
		if info == nil {
			return fmt.Errorf("container %s vanished while it started", name)
		}
		st := info.State
		switch {
		case st == nil:
		case st.Running && (s.Health == nil || healthOf(st) == container.Healthy):
			return nil
		case !st.Running && !st.Restarting:
			if st.Status != "created" && done(s, st) {
				return nil
			}
			msg := fmt.Sprintf("container %s exited (code %d)", name, st.ExitCode)
			if s.Health != nil {
				msg += " before its health check passed"
			}
			if st.Error != "" {
				msg += ": " + st.Error
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			if st != nil && s.Health != nil {
				return errors.New(healthDesc(s, st))
			}
			return fmt.Errorf("container %s did not come up: %w", name, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

var errConflict = errors.New("a container of that name exists")

// create creates the unit's container, labelled, by its fixed name.
func (c *Container) create(ctx context.Context, u wire.Unit, s spec) error {
	name := c.name(u.Name)
	cfg := &container.Config{
		Image:  s.Image,
		Env:    s.environ(),
		User:   s.User,
		Labels: map[string]string{LabelManaged: "true", LabelUnit: u.Name, LabelDigest: u.Digest()},
	}
	if s.Command != "" {
		cfg.Entrypoint = []string{s.Command}
	}
	if s.Args != nil {
		cfg.Cmd = s.Args
	}
	if h := s.Health; h != nil {
		cfg.Healthcheck = &container.HealthConfig{
			Test:     append([]string{"CMD"}, h.Command...),
			Interval: h.interval, Timeout: h.timeout, Retries: h.Retries, StartPeriod: h.startPeriod,
		}
	}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(s.Network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(s.Restart)},
	}
	if len(s.parsed) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		host.PortBindings = nat.PortMap{}
		for _, b := range s.parsed {
			p := nat.Port(b.Port + "/" + b.Proto)
			cfg.ExposedPorts[p] = struct{}{}
			host.PortBindings[p] = append(host.PortBindings[p], nat.PortBinding{HostIP: b.HostIP, HostPort: b.HostPort})
		}
	}
	for _, m := range s.Mounts {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	if _, err := c.cli.ContainerCreate(ctx, cfg, host, nil, nil, name); err != nil {
		if cerrdefs.IsConflict(err) {
			return errConflict
		}
		return fmt.Errorf("create container %s: %w", name, err)
	}
	c.log.Info("container created", "container", name, "unit", u.Name, "image", s.Image, "digest", u.Digest())
	return nil
}

// checkMountsNow checks again, just before the container is created, that every mount's source
// resolves (through its symlinks) to a path under an allowed root (through theirs).
func (c *Container) checkMountsNow(s spec) error {
	for _, m := range s.Mounts {
		real, err := filepath.EvalSymlinks(m.Source)
		if err != nil {
			return fmt.Errorf("mount source %s: %w", m.Source, err)
		}
		ok := false
		for _, r := range c.cfg.AllowMounts {
			if rr, err := filepath.EvalSymlinks(r); err == nil && under(real, rr) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("mount source %s resolves to %s, outside the roots this agent allows to mount (%s)", m.Source, real, strings.Join(c.cfg.AllowMounts, ", "))
		}
	}
	return nil
}

// Release leaves the container as it is (integration.Releaser: a released container is not stopped
// or removed, for it may hold data and its daemon restarts it by its own policy) and says so in the
// agent's log, naming it, so a person knows what no plan manages any more.
func (c *Container) Release(_ context.Context, u wire.Unit) error {
	c.log.Info("unit released; its container is left as it is", "unit", u.Name, "container", c.name(u.Name))
	return nil
}

// Watch subscribes to the daemon's events for pulse's containers and tells the kernel when one of
// this agent's dies, is removed or turns unhealthy, so it is repaired (or reported) at once instead
// of at the next plan period. The subscription is renewed with backoff when the daemon goes away.
func (c *Container) Watch(changed func(unit string)) {
	c.mu.Lock()
	first := c.changed == nil
	c.changed = changed
	c.mu.Unlock()
	if first && c.cli != nil {
		go c.watch()
	}
}

func (c *Container) watch() {
	pause := time.Second
	for {
		ctx, cancel := context.WithCancel(context.Background())
		msgs, errs := c.cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("label", LabelManaged+"=true"),
		)})
		err := c.consume(msgs, errs, &pause)
		cancel()
		c.log.Debug("docker events ended; subscribing again", "error", err, "in", pause)
		time.Sleep(pause)
		pause = min(pause*2, 30*time.Second)
	}
}

func (c *Container) consume(msgs <-chan events.Message, errs <-chan error, pause *time.Duration) error {
	for {
		select {
		case err := <-errs:
			return err
		case m := <-msgs:
			*pause = time.Second
			action := string(m.Action)
			if action != "die" && action != "destroy" && action != "health_status: unhealthy" {
				continue
			}
			unit := m.Actor.Attributes[LabelUnit]
			if unit == "" || m.Actor.Attributes["name"] != c.name(unit) {
				continue // another agent's, on a shared daemon
			}
			c.mu.Lock()
			fn, busy := c.changed, c.busy[unit] > 0
			c.mu.Unlock()
			if fn != nil && !busy {
				fn(unit)
			}
		}
	}
}
