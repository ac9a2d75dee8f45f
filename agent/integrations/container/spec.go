package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// Restart policies, Docker's own: what the daemon does when the container exits, and what keeps a
// container of the current spec in its state once it exited.
const (
	// RestartAlways: the daemon starts it again, and a container that is not running is never in its
	// state (the default).
	RestartAlways = "always"
	// RestartUnlessStopped: as always, except that the daemon leaves one stopped by hand after its own
	// restart; the agent still starts it again.
	RestartUnlessStopped = "unless-stopped"
	// RestartOnFailure: the daemon starts one that failed again; one that exited 0 is done.
	RestartOnFailure = "on-failure"
	// RestartNo: the daemon never starts it again; one that ran under this spec is done however it ended.
	RestartNo = "no"
)

// Networks a unit may name; any other name is a user-defined network that must exist on the daemon.
const (
	// NetworkNone: a loopback interface only (the default: a container reaches nothing unless its unit
	// says so).
	NetworkNone = "none"
	// NetworkBridge: Docker's default bridge.
	NetworkBridge = "bridge"
	// NetworkHost: the host's own network stack; refused unless [container] allow_host_network is set.
	NetworkHost = "host"
)

// spec is a container unit's spec as the plan carries it.
type spec struct {
	Image    string            `json:"image"`
	Artifact *wire.ArtifactRef `json:"artifact"`
	Command  string            `json:"command"`
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	Ports    []string          `json:"ports"`
	Mounts   []mountSpec       `json:"mounts"`
	Restart  string            `json:"restart"`
	Network  string            `json:"network"`
	Health   *health           `json:"health"`
	User     string            `json:"user"`
	// Privileged is read only to refuse it with its reason rather than as an unknown key.
	Privileged bool `json:"privileged"`

	parsed []portBinding
}

// mountSpec is one bind mount: a host directory or file under an allowed root.
type mountSpec struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
}

// health is a check the daemon runs inside the container (Docker's HEALTHCHECK, exec form: no shell
// unless the command is one).
type health struct {
	Command     []string `json:"command"`
	Interval    string   `json:"interval"`
	Timeout     string   `json:"timeout"`
	Retries     int      `json:"retries"`
	StartPeriod string   `json:"startPeriod"`

	interval, timeout, startPeriod time.Duration
}

// portBinding is one parsed entry of ports: [hostIP:]hostPort:containerPort[/proto].
type portBinding struct {
	HostIP   string
	HostPort string
	Port     string
	Proto    string
}

const (
	defaultHealthInterval = 5 * time.Second
	defaultHealthTimeout  = 5 * time.Second
	defaultHealthRetries  = 3
)

var (
	// imageNameRE is a repository name as Docker spells one: lower-case components, an optional
	// registry host with a port.
	imageNameRE = regexp.MustCompile(`^([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$`)
	digestRE    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	userRE      = regexp.MustCompile(`^[a-zA-Z0-9_.-]+(:[a-zA-Z0-9_.-]+)?$`)
	networkRE   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

// specKeys lists what a spec may hold, for the message that refuses an unknown one.
const specKeys = "image, artifact, command, args, env, ports, mounts, restart, network, health, user"

// checkImage refuses an image that is not pinned: a tag can be moved to other content, a digest or an
// image ID cannot.
func checkImage(ref string) error {
	if ref == "" {
		return errors.New("image is missing: name it by digest (name@sha256:…) or by image ID (sha256:…)")
	}
	if digestRE.MatchString(ref) {
		return nil
	}
	name, dg, ok := strings.Cut(ref, "@")
	if !ok {
		return fmt.Errorf("image %q is not pinned: a tag can be moved to other content; name it by digest (%s@sha256:…) or by image ID (sha256:…)", ref, strings.SplitN(ref, ":", 2)[0])
	}
	if !digestRE.MatchString(dg) {
		return fmt.Errorf("image %q: the digest after @ must be sha256: and 64 lower-case hex digits", ref)
	}
	if last := name[strings.LastIndex(name, "/")+1:]; strings.Contains(last, ":") {
		return fmt.Errorf("image %q: write the digest without a tag (%s@%s): the daemon ignores the tag, which only misleads a reader", ref, name[:strings.LastIndex(name, ":")], dg)
	}
	if !imageNameRE.MatchString(name) {
		return fmt.Errorf("image %q: %q is not a repository name", ref, name)
	}
	return nil
}

// parse reads a unit's spec strictly and checks its shape; c says what this agent allows.
func parse(u wire.Unit, c *config) (spec, error) {
	var s spec
	dec := json.NewDecoder(bytes.NewReader(u.Spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return spec{}, fmt.Errorf("spec: %w (keys: %s)", err, specKeys)
	}
	if s.Privileged {
		return spec{}, errors.New("privileged: a privileged container is root on the host, and pulse never runs one")
	}
	if err := checkImage(s.Image); err != nil {
		return spec{}, err
	}
	if !c.imageAllowed(s.Image) {
		return spec{}, fmt.Errorf("image %s is not allowed on this agent; add it, or a prefix of it, to [container] allow_images in the agent's config", s.Image)
	}
	if s.Artifact != nil {
		if err := s.Artifact.Validate(); err != nil {
			return spec{}, fmt.Errorf("artifact: %w", err)
		}
	}
	if s.Command != "" && (!strings.HasPrefix(s.Command, "/") || strings.ContainsRune(s.Command, 0)) {
		return spec{}, fmt.Errorf("command %q: want an absolute path inside the image (it replaces the image's entrypoint; no shell)", s.Command)
	}
	for i, a := range s.Args {
		if strings.ContainsRune(a, 0) {
			return spec{}, fmt.Errorf("args[%d] holds a NUL byte", i)
		}
	}
	for _, k := range sortedKeys(s.Env) {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			return spec{}, fmt.Errorf("env: %q is not a variable name", k)
		case strings.ContainsRune(s.Env[k], 0):
			return spec{}, fmt.Errorf("env: %s holds a NUL byte", k)
		}
	}
	switch s.Restart {
	case "":
		s.Restart = RestartAlways
	case RestartAlways, RestartUnlessStopped, RestartOnFailure, RestartNo:
	default:
		return spec{}, fmt.Errorf("restart %q: want %s, %s, %s or %s", s.Restart, RestartAlways, RestartUnlessStopped, RestartOnFailure, RestartNo)
	}
	switch {
	case s.Network == "":
		s.Network = NetworkNone
	case s.Network == NetworkHost && !c.AllowHostNetwork:
		return spec{}, errors.New("network host: the host's network stack is refused unless [container] allow_host_network = true in the agent's config")
	case s.Network == "container" || strings.HasPrefix(s.Network, "container:"):
		return spec{}, fmt.Errorf("network %q: joining another container's network is not supported", s.Network)
	case !networkRE.MatchString(s.Network):
		return spec{}, fmt.Errorf("network %q: want none, bridge, host or the name of a network on the daemon", s.Network)
	}
	for i, p := range s.Ports {
		b, err := parsePort(p)
		if err != nil {
			return spec{}, fmt.Errorf("ports[%d]: %w", i, err)
		}
		s.parsed = append(s.parsed, b)
	}
	if len(s.Ports) > 0 && (s.Network == NetworkNone || s.Network == NetworkHost) {
		return spec{}, fmt.Errorf("ports: a container on network %s publishes no ports; name a network such as bridge", s.Network)
	}
	targets := map[string]bool{}
	for i, m := range s.Mounts {
		if err := c.checkMount(m); err != nil {
			return spec{}, fmt.Errorf("mounts[%d]: %w", i, err)
		}
		if targets[m.Target] {
			return spec{}, fmt.Errorf("mounts[%d]: target %s is mounted twice", i, m.Target)
		}
		targets[m.Target] = true
	}
	if s.User != "" && !userRE.MatchString(s.User) {
		return spec{}, fmt.Errorf("user %q: want a name or number, optionally :group", s.User)
	}
	if s.Health != nil {
		if err := s.Health.check(); err != nil {
			return spec{}, fmt.Errorf("health: %w", err)
		}
	}
	return s, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parsePort reads [hostIP:]hostPort:containerPort[/tcp|/udp]; a host port is always named, so the
// port a container is reached at does not change from one start to the next.
func parsePort(p string) (portBinding, error) {
	var b portBinding
	rest, proto, hasProto := strings.Cut(p, "/")
	b.Proto = "tcp"
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return b, fmt.Errorf("%q: protocol %q: want tcp or udp", p, proto)
		}
		b.Proto = proto
	}
	parts := strings.Split(rest, ":")
	switch len(parts) {
	case 2:
		b.HostPort, b.Port = parts[0], parts[1]
	case 3:
		b.HostIP, b.HostPort, b.Port = parts[0], parts[1], parts[2]
		if b.HostIP == "" {
			return b, fmt.Errorf("%q: empty host address", p)
		}
	default:
		return b, fmt.Errorf("%q: want [hostIP:]hostPort:containerPort[/tcp|/udp], such as 127.0.0.1:8080:80/tcp", p)
	}
	for _, n := range []string{b.HostPort, b.Port} {
		if v, err := strconv.Atoi(n); err != nil || v < 1 || v > 65535 {
			return b, fmt.Errorf("%q: port %q is not a number from 1 to 65535", p, n)
		}
	}
	return b, nil
}

// checkMount refuses a bind mount whose source is not a clean absolute path under an allowed root, or
// whose target is not a clean absolute path.
func (c *config) checkMount(m mountSpec) error {
	switch {
	case m.Source == "" || !filepath.IsAbs(m.Source) || filepath.Clean(m.Source) != m.Source:
		return fmt.Errorf("source %q is not a clean absolute path", m.Source)
	case m.Target == "" || !filepath.IsAbs(m.Target) || filepath.Clean(m.Target) != m.Target || m.Target == "/":
		return fmt.Errorf("target %q is not a clean absolute path other than /", m.Target)
	case strings.ContainsAny(m.Source+m.Target, ",:\x00"):
		return fmt.Errorf("source %q or target %q holds a comma, colon or NUL byte", m.Source, m.Target)
	}
	for _, r := range c.AllowMounts {
		if under(m.Source, r) {
			return nil
		}
	}
	if len(c.AllowMounts) == 0 {
		return fmt.Errorf("source %s: this agent allows no bind mounts; add a root holding it to [container] allow_mounts in the agent's config", m.Source)
	}
	return fmt.Errorf("source %s is outside the roots this agent allows to mount (%s); add a root holding it to [container] allow_mounts", m.Source, strings.Join(c.AllowMounts, ", "))
}

// under reports whether path is root or inside it (both clean and absolute).
func under(path, root string) bool {
	return path == root || strings.HasPrefix(path, strings.TrimSuffix(root, "/")+"/")
}

func (h *health) check() error {
	if len(h.Command) == 0 {
		return errors.New("command is missing: the argv the daemon runs inside the container, such as [\"/bin/sh\", \"-c\", \"wget -q -O- http://127.0.0.1:8080/healthz\"]")
	}
	if h.Command[0] == "" || strings.ContainsRune(strings.Join(h.Command, ""), 0) {
		return errors.New("command: an empty program or a NUL byte")
	}
	var err error
	dur := func(name, v string, def time.Duration) time.Duration {
		if v == "" || err != nil {
			return def
		}
		d, e := time.ParseDuration(v)
		if e != nil || d < time.Millisecond {
			err = fmt.Errorf("%s %q: want a duration of at least 1ms, such as \"5s\"", name, v)
		}
		return d
	}
	h.interval = dur("interval", h.Interval, defaultHealthInterval)
	h.timeout = dur("timeout", h.Timeout, defaultHealthTimeout)
	h.startPeriod = dur("startPeriod", h.StartPeriod, 0)
	if err != nil {
		return err
	}
	switch {
	case h.Retries < 0:
		return fmt.Errorf("retries %d is negative", h.Retries)
	case h.Retries == 0:
		h.Retries = defaultHealthRetries
	}
	return nil
}

// environ is the spec's environment as KEY=value, sorted.
func (s spec) environ() []string {
	out := make([]string, 0, len(s.Env))
	for _, k := range sortedKeys(s.Env) {
		out = append(out, k+"="+s.Env[k])
	}
	return out
}
