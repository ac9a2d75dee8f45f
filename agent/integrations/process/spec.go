package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pulsehq/pulse/agent/wire"
)

// Restart policies: what keeps a process of the current spec in its state once it exited.
const (
	// RestartAlways: a process that is not running is never in its state (the default).
	RestartAlways = "always"
	// RestartOnFailure: a process that exited 0 is done; one that failed is started again.
	RestartOnFailure = "on-failure"
	// RestartNever: a process that ran once under this spec is done, however it ended.
	RestartNever = "never"
)

// spec is a process unit's spec as the plan carries it.
type spec struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
	Dir     string            `json:"dir"`
	Restart string            `json:"restart"`
	Health  *health           `json:"health"`
}

// health is how the agent knows the process does its job: exactly one of a command that exits 0, a
// TCP port that accepts, an HTTP URL that answers 2xx or 3xx.
type health struct {
	Command []string `json:"command"`
	TCP     string   `json:"tcp"`
	HTTP    string   `json:"http"`
}

// reservedEnv starts the names of the variables the integration sets itself, to find its processes.
const reservedEnv = "PULSE_AGENT_"

// parse reads a unit's spec strictly and checks its shape; allowed says whether a binary may run.
func parse(u wire.Unit, allowed func(string) bool) (spec, error) {
	var s spec
	dec := json.NewDecoder(bytes.NewReader(u.Spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return spec{}, fmt.Errorf("spec: %w (keys: command, args, env, dir, restart, health)", err)
	}
	if err := checkBinary("command", s.Command, allowed); err != nil {
		return spec{}, err
	}
	for i, a := range s.Args {
		if strings.ContainsRune(a, 0) {
			return spec{}, fmt.Errorf("args[%d] holds a NUL byte", i)
		}
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			return spec{}, fmt.Errorf("env: %q is not a variable name", k)
		case strings.HasPrefix(k, reservedEnv):
			return spec{}, fmt.Errorf("env: %s: names starting with %s are the agent's own", k, reservedEnv)
		case strings.ContainsRune(s.Env[k], 0):
			return spec{}, fmt.Errorf("env: %s holds a NUL byte", k)
		}
	}
	if s.Dir != "" && (!filepath.IsAbs(s.Dir) || filepath.Clean(s.Dir) != s.Dir) {
		return spec{}, fmt.Errorf("dir %q is not a clean absolute path", s.Dir)
	}
	switch s.Restart {
	case "":
		s.Restart = RestartAlways
	case RestartAlways, RestartOnFailure, RestartNever:
	default:
		return spec{}, fmt.Errorf("restart %q: want %s, %s or %s", s.Restart, RestartAlways, RestartOnFailure, RestartNever)
	}
	if s.Health != nil {
		if err := s.Health.check(allowed); err != nil {
			return spec{}, fmt.Errorf("health: %w", err)
		}
	}
	return s, nil
}

func checkBinary(what, bin string, allowed func(string) bool) error {
	switch {
	case bin == "":
		return fmt.Errorf("%s is missing", what)
	case !filepath.IsAbs(bin):
		return fmt.Errorf("%s %q is not an absolute path: the agent runs no shell and searches no $PATH", what, bin)
	case filepath.Clean(bin) != bin:
		return fmt.Errorf("%s %q is not clean; write %q", what, bin, filepath.Clean(bin))
	case !allowed(bin):
		return fmt.Errorf("%s %s is not allowed on this agent; add it (or a pattern matching it) to [process] allow in the agent's config", what, bin)
	}
	return nil
}

func (h *health) check(allowed func(string) bool) error {
	n := 0
	if len(h.Command) > 0 {
		n++
		if err := checkBinary("command", h.Command[0], allowed); err != nil {
			return err
		}
	}
	if h.TCP != "" {
		n++
		host, port, err := net.SplitHostPort(h.TCP)
		if err != nil || host == "" {
			return fmt.Errorf("tcp %q: want host:port, such as 127.0.0.1:8080", h.TCP)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("tcp %q: port %q is not a number from 1 to 65535", h.TCP, port)
		}
	}
	if h.HTTP != "" {
		n++
		u, err := url.Parse(h.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("http %q: want an http:// or https:// URL", h.HTTP)
		}
	}
	if n != 1 {
		return errors.New("name exactly one of command, tcp and http")
	}
	return nil
}

// environ is the spec's environment as KEY=value, sorted, for a stable process environment.
func (s spec) environ() []string {
	out := make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
