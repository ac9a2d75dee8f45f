// Package host is the built-in integration that describes the machine the agent runs on: facts for
// enrollment and inventory, and its metrics (CPU, load, memory, filesystems, disk and network I/O,
// temperatures, processes: see docs/metrics-agent.md), sampled every 10 s by default for the kernel to
// batch and upload. It only reads; none of its commands change anything, so it is enabled everywhere by
// default.
package host

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	pshost "github.com/shirou/gopsutil/v4/host"
	psmem "github.com/shirou/gopsutil/v4/mem"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// ID is the integration's id, its config table and its command group.
const ID = "host"

func init() {
	integration.Register(integration.Module{ID: ID, New: func() integration.Integration { return &Host{} }})
}

// Host is the integration instance: how often it samples metrics (0: not at all) and the sampler's
// memory of stuck mounts.
type Host struct {
	sampleEvery time.Duration
	sampler     sampler
}

var (
	_ integration.Integration  = (*Host)(nil)
	_ integration.Commander    = (*Host)(nil)
	_ integration.Collector    = (*Host)(nil)
	_ integration.MetricSource = (*Host)(nil)
)

// config is the [host] table. Decoding it strictly makes a misspelt key an error rather than a setting
// someone believes is applied.
type config struct {
	// SampleEvery is how often metrics are sampled ("10s" by default; at least 1s, at most 1h).
	SampleEvery string `toml:"sample_every"`
	// Metrics turns sampling off when false (facts and commands stay).
	Metrics *bool `toml:"metrics"`
	// TextfileDir, when set, is a directory whose *.prom files (Prometheus text format, as
	// node_exporter's textfile collector reads them) are read at every sample.
	TextfileDir string `toml:"textfile_dir"`
}

// Configure reads [host]: sample_every, metrics and textfile_dir.
func (h *Host) Configure(raw map[string]any) error {
	var c config
	if err := integration.DecodeConfig(raw, &c); err != nil {
		return err
	}
	h.sampleEvery = wire.DefaultMetricSample
	if c.SampleEvery != "" {
		d, err := time.ParseDuration(c.SampleEvery)
		if err != nil || d < time.Second || d > time.Hour {
			return fmt.Errorf("sample_every %q: want a duration from 1s to 1h such as \"10s\"", c.SampleEvery)
		}
		h.sampleEvery = d
	}
	if c.Metrics != nil && !*c.Metrics {
		h.sampleEvery = 0
	}
	if c.TextfileDir != "" && !filepath.IsAbs(c.TextfileDir) {
		return fmt.Errorf("textfile_dir %q: want an absolute path", c.TextfileDir)
	}
	h.sampler.textfileDir = c.TextfileDir
	return nil
}

// SampleEvery is [host] sample_every, or 0 when [host] metrics = false.
func (h *Host) SampleEvery() time.Duration { return h.sampleEvery }

// Sample reads the host's metrics once (integration.MetricSource), best effort: what could not be read
// is named in the error and the rest returned.
func (h *Host) Sample(ctx context.Context, now time.Time) ([]wire.Series, error) {
	return h.sampler.sample(ctx, now)
}

// Enabled is always true: reading facts is harmless and every agent should report them.
func (h *Host) Enabled() bool { return true }

// Commands are read-only reports of the machine.
func (h *Host) Commands() ([]integration.Command, error) {
	info, err := integration.NewJob(wire.CommandSpec{
		Name:                  "host_info",
		Group:                 ID,
		Description:           "Print the host's facts and basic metrics as JSON",
		DefaultTimeoutSeconds: 30,
	}, func(ctx context.Context, _ map[string]string, out io.Writer) error {
		b, err := json.MarshalIndent(Collect(ctx), "", "  ")
		if err != nil {
			return fmt.Errorf("encode host info: %w", err)
		}
		_, err = out.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return nil, err
	}
	uptime, err := integration.NewJob(wire.CommandSpec{
		Name:                  "host_uptime",
		Group:                 ID,
		Description:           "Print how long the host has been up and when it booted",
		DefaultTimeoutSeconds: 30,
	}, func(ctx context.Context, _ map[string]string, out io.Writer) error {
		up, err := pshost.UptimeWithContext(ctx)
		if err != nil {
			return fmt.Errorf("read uptime: %w", err)
		}
		boot, err := pshost.BootTimeWithContext(ctx)
		if err != nil {
			return fmt.Errorf("read boot time: %w", err)
		}
		_, err = fmt.Fprintln(out, FormatUptime(time.Duration(up)*time.Second, time.Unix(int64(boot), 0)))
		return err
	})
	if err != nil {
		return nil, err
	}
	return []integration.Command{info, uptime}, nil
}

// Collect returns the same Info as host_info, which also earns host_refresh.
func (h *Host) Collect(ctx context.Context) (any, error) { return Collect(ctx), nil }

// Info is what the agent knows about its machine. Fields that could not be read are left empty and
// explained in Problems, because a sandboxed agent may be denied one file without that hiding the rest.
type Info struct {
	Hostname         string    `json:"hostname"`
	OS               string    `json:"os"`
	Platform         string    `json:"platform,omitempty"`
	PlatformVersion  string    `json:"platformVersion,omitempty"`
	Kernel           string    `json:"kernel,omitempty"`
	Arch             string    `json:"arch"`
	CPUs             int       `json:"cpus"`
	MemoryTotalBytes uint64    `json:"memoryTotalBytes,omitempty"`
	UptimeSeconds    uint64    `json:"uptimeSeconds,omitempty"`
	BootTime         time.Time `json:"bootTime,omitzero"`
	Problems         []string  `json:"problems,omitempty"`
}

// Collect reads the host's facts and basic metrics, best effort.
func Collect(ctx context.Context) Info {
	info := Info{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	problem := func(what string, err error) { info.Problems = append(info.Problems, what+": "+err.Error()) }

	if h, err := os.Hostname(); err != nil {
		problem("hostname", err)
	} else {
		info.Hostname = h
	}
	if platform, _, version, err := pshost.PlatformInformationWithContext(ctx); err != nil {
		problem("platform", err)
	} else {
		info.Platform, info.PlatformVersion = platform, version
	}
	if k, err := pshost.KernelVersionWithContext(ctx); err != nil {
		problem("kernel", err)
	} else {
		info.Kernel = k
	}
	if a, err := pshost.KernelArch(); err == nil && a != "" {
		info.Arch = a // the machine's own name for it (x86_64), not the agent's build target
	}
	if m, err := psmem.VirtualMemoryWithContext(ctx); err != nil {
		problem("memory", err)
	} else {
		info.MemoryTotalBytes = m.Total
	}
	if up, err := pshost.UptimeWithContext(ctx); err != nil {
		problem("uptime", err)
	} else {
		info.UptimeSeconds = up
	}
	if boot, err := pshost.BootTimeWithContext(ctx); err != nil {
		problem("boot time", err)
	} else {
		info.BootTime = time.Unix(int64(boot), 0).UTC()
	}
	return info
}

// Facts is the small, stable subset of Info an agent sends when it enrolls and in heartbeats, for
// labelling and targeting; metrics that change every second do not belong in it.
func Facts(ctx context.Context) map[string]string {
	info := Collect(ctx)
	facts := map[string]string{
		"hostname": info.Hostname,
		"os":       info.OS,
		"platform": info.Platform,
		"kernel":   info.Kernel,
		"arch":     info.Arch,
	}
	if info.PlatformVersion != "" {
		facts["platform_version"] = info.PlatformVersion
	}
	return facts
}

// FormatUptime renders an uptime for people, e.g. "up 3d 4h 12m (boot 2026-11-19T08:00:00Z)".
func FormatUptime(up time.Duration, boot time.Time) string {
	up = up.Truncate(time.Minute)
	d := int(up / (24 * time.Hour))
	h := int(up % (24 * time.Hour) / time.Hour)
	m := int(up % time.Hour / time.Minute)
	var s string
	switch {
	case d > 0:
		s = fmt.Sprintf("up %dd %dh %dm", d, h, m)
	case h > 0:
		s = fmt.Sprintf("up %dh %dm", h, m)
	default:
		s = fmt.Sprintf("up %dm", m)
	}
	return s + " (boot " + boot.UTC().Format(time.RFC3339) + ")"
}
