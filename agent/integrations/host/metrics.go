package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	pscpu "github.com/shirou/gopsutil/v4/cpu"
	psdisk "github.com/shirou/gopsutil/v4/disk"
	pshost "github.com/shirou/gopsutil/v4/host"
	psload "github.com/shirou/gopsutil/v4/load"
	psmem "github.com/shirou/gopsutil/v4/mem"
	psnet "github.com/shirou/gopsutil/v4/net"
	pssensors "github.com/shirou/gopsutil/v4/sensors"

	"github.com/pulsehq/pulse/agent/wire"
)

// Caps on the series of one kind, so a host with hundreds of containers (veth pairs, overlay mounts)
// or a storage box with a hundred disks cannot make the agent upload thousands of series every batch.
// What lies beyond a cap is named in Sample's error (logged once) rather than dropped silently.
const (
	maxFilesystems = 64
	maxDisks       = 32
	maxInterfaces  = 32
	maxSensors     = 64
)

// statfsTimeout bounds one filesystem's statfs: a dead NFS server would otherwise hang the sampler.
const statfsTimeout = 2 * time.Second

// cpuModes are the modes of node_cpu_seconds_total, as node_exporter names them. Guest time is
// already counted in user on Linux, so it is not a mode of its own here.
var cpuModes = []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

// pseudoFS are filesystem types that hold no data of their own (kernel views, memory-backed scratch
// space, read-only images): their sizes say nothing an operator acts on, and a host has dozens of them.
var pseudoFS = map[string]bool{
	"autofs": true, "binfmt_misc": true, "bpf": true, "cgroup": true, "cgroup2": true, "configfs": true,
	"debugfs": true, "devpts": true, "devtmpfs": true, "efivarfs": true, "fusectl": true, "hugetlbfs": true,
	"mqueue": true, "nsfs": true, "proc": true, "procfs": true, "pstore": true, "ramfs": true,
	"rpc_pipefs": true, "securityfs": true, "selinuxfs": true, "squashfs": true, "erofs": true,
	"sysfs": true, "tracefs": true, "tmpfs": true, "iso9660": true, "fuse.lxcfs": true, "fuse.portal": true,
	"nfsd": true,
	// overlay is not here: it is the root of a container, the one filesystem that agent has; docker's
	// own overlay layers are left out by mount point (pseudoMount).
}

// pseudoMount are mount points under which nothing is a filesystem an operator sizes (kernel views,
// per-container layers that docker and podman already account for).
var pseudoMount = regexp.MustCompile(`^/(dev|proc|sys|run/credentials/.+|var/lib/docker/.+|var/lib/containers/storage/.+|snap/.+)($|/)`)

// partitionDisk matches what node_exporter leaves out of disk I/O: partitions (their I/O is their
// disk's), loop and RAM devices.
var partitionDisk = regexp.MustCompile(`^(z?ram|loop|fd|(h|s|v|xv)d[a-z]+|nvme\d+n\d+p|mmcblk\d+p)\d+$`)

// virtualInterface matches loopback and per-container veth ends, which double-count traffic.
var virtualInterface = regexp.MustCompile(`^(lo|veth.*)$`)

// sampler reads the host's metrics. It remembers statfs calls that did not return, so a stuck mount
// costs one goroutine, not one more every sample; callers asking about one mount at the same time
// (the metrics sample and the inventory) share one call.
type sampler struct {
	mu       sync.Mutex
	inflight map[string]*statfsCall // mount points whose statfs has not returned yet
	// statfs and timeout replace psdisk.UsageWithContext and statfsTimeout in tests.
	statfs  func(ctx context.Context, path string) (*psdisk.UsageStat, error)
	timeout time.Duration
	// textfileDir is [host] textfile_dir: scripts' metrics read at every sample (textfile.go).
	textfileDir string
}

// series builds the points of one sample; ts is the sample time in Unix milliseconds.
type series struct {
	ts   int64
	out  []wire.Series
	errs []error
}

func (s *series) add(name, kind string, v float64, labels ...string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	var l map[string]string
	if len(labels) > 0 {
		l = make(map[string]string, len(labels)/2)
		for i := 0; i+1 < len(labels); i += 2 {
			l[labels[i]] = labels[i+1]
		}
	}
	s.out = append(s.out, wire.Series{Name: name, Kind: kind, Labels: l, Points: []wire.Point{{T: s.ts, V: v}}})
}

func (s *series) gauge(name string, v float64, labels ...string) {
	s.add(name, wire.MetricGauge, v, labels...)
}
func (s *series) counter(name string, v float64, labels ...string) {
	s.add(name, wire.MetricCounter, v, labels...)
}

func (s *series) fail(what string, err error) {
	s.errs = append(s.errs, fmt.Errorf("%s: %w", what, err))
}

// sample reads every metric best effort: a part that fails (a sandbox denies /proc/1/mountinfo, the
// host has no sensors driver) is reported in the error and the rest is returned.
func (sm *sampler) sample(ctx context.Context, now time.Time) ([]wire.Series, error) {
	s := &series{ts: now.UnixMilli()}

	if t, err := pscpu.TimesWithContext(ctx, false); err != nil || len(t) == 0 {
		s.fail("cpu times", orNoData(err))
	} else {
		c := t[0]
		for i, v := range []float64{c.User, c.Nice, c.System, c.Idle, c.Iowait, c.Irq, c.Softirq, c.Steal} {
			s.counter("node_cpu_seconds_total", v, "mode", cpuModes[i])
		}
	}

	if l, err := psload.AvgWithContext(ctx); err != nil {
		s.fail("load average", err)
	} else {
		s.gauge("node_load1", l.Load1)
		s.gauge("node_load5", l.Load5)
		s.gauge("node_load15", l.Load15)
	}

	if m, err := psmem.VirtualMemoryWithContext(ctx); err != nil {
		s.fail("memory", err)
	} else {
		s.gauge("node_memory_MemTotal_bytes", float64(m.Total))
		s.gauge("node_memory_MemAvailable_bytes", float64(m.Available))
		s.gauge("node_memory_MemFree_bytes", float64(m.Free))
		s.gauge("node_memory_Buffers_bytes", float64(m.Buffers))
		s.gauge("node_memory_Cached_bytes", float64(m.Cached))
	}
	if m, err := psmem.SwapMemoryWithContext(ctx); err != nil {
		s.fail("swap", err)
	} else {
		s.gauge("node_memory_SwapTotal_bytes", float64(m.Total))
		s.gauge("node_memory_SwapFree_bytes", float64(m.Free))
	}

	sm.filesystems(ctx, s)
	sm.disks(ctx, s)
	sm.network(ctx, s)
	sm.temperatures(ctx, s)
	s.textfiles(sm.textfileDir)

	if boot, err := pshost.BootTimeWithContext(ctx); err != nil {
		s.fail("boot time", err)
	} else {
		s.gauge("node_boot_time_seconds", float64(boot))
	}
	if m, err := psload.MiscWithContext(ctx); err != nil {
		s.fail("processes", err)
	} else {
		s.gauge("node_procs", float64(m.ProcsTotal))
		s.gauge("node_procs_running", float64(m.ProcsRunning))
		s.gauge("node_procs_blocked", float64(m.ProcsBlocked))
		if m.ProcsCreated > 0 { // Linux only; elsewhere 0 would look like a counter reset
			s.counter("node_forks_total", float64(m.ProcsCreated))
		}
		if m.Ctxt > 0 {
			s.counter("node_context_switches_total", float64(m.Ctxt))
		}
	}
	return s.out, errors.Join(s.errs...)
}

func orNoData(err error) error {
	if err == nil {
		return errors.New("no data")
	}
	return err
}

func (sm *sampler) filesystems(ctx context.Context, s *series) {
	mounts, byMount, err := dataMounts(ctx)
	if err != nil {
		s.fail("filesystems", err)
		if len(mounts) == 0 {
			return
		}
	}
	for _, m := range mounts {
		p := byMount[m]
		u, err := sm.usage(ctx, m)
		if err != nil {
			s.fail("filesystem "+m, err)
			continue
		}
		l := []string{"mountpoint", m, "device", p.Device, "fstype", p.Fstype}
		s.gauge("node_filesystem_size_bytes", float64(u.Total), l...)
		s.gauge("node_filesystem_avail_bytes", float64(u.Free), l...) // gopsutil's Free is Bavail: what non-root may use
		s.gauge("node_filesystem_free_bytes", float64(u.Total-min(u.Used, u.Total)), l...)
		if u.InodesTotal > 0 { // btrfs, ZFS and others have no fixed inode table
			s.gauge("node_filesystem_files", float64(u.InodesTotal), l...)
			s.gauge("node_filesystem_files_free", float64(u.InodesFree), l...)
		}
	}
}

// dataMounts lists the mount points that hold data of their own (no pseudo filesystems, no container
// layers), sorted and capped at maxFilesystems, with the partition visible at each: what metrics
// sample and the inventory reports. The error names what was left out or could not be read; the
// mounts returned beside it are still good.
func dataMounts(ctx context.Context) ([]string, map[string]psdisk.PartitionStat, error) {
	parts, err := psdisk.PartitionsWithContext(ctx, true)
	if err != nil && len(parts) == 0 {
		return nil, nil, err
	}
	byMount := map[string]psdisk.PartitionStat{}
	for _, p := range parts {
		if pseudoFS[p.Fstype] || pseudoMount.MatchString(p.Mountpoint) || !strings.HasPrefix(p.Mountpoint, "/") {
			continue
		}
		byMount[p.Mountpoint] = p // the last mount on a mount point is the one visible there
	}
	mounts := make([]string, 0, len(byMount))
	for m := range byMount {
		mounts = append(mounts, m)
	}
	sort.Strings(mounts)
	if len(mounts) > maxFilesystems {
		err := fmt.Errorf("%d beyond the first %d left out (%s, …)", len(mounts)-maxFilesystems, maxFilesystems, mounts[maxFilesystems])
		return mounts[:maxFilesystems], byMount, err
	}
	return mounts, byMount, nil
}

// statfsCall is one statfs under way.
type statfsCall struct {
	started time.Time
	done    chan struct{}
	u       *psdisk.UsageStat
	err     error
}

// usage is statfs with a deadline. A call that does not return in time keeps its mount point marked
// stuck until it does, and the mount point is skipped meanwhile; a call still within its deadline is
// waited for by whoever else asks about the same mount.
func (sm *sampler) usage(ctx context.Context, mount string) (*psdisk.UsageStat, error) {
	timeout := cmp.Or(sm.timeout, statfsTimeout)
	sm.mu.Lock()
	c := sm.inflight[mount]
	if c != nil && time.Since(c.started) >= timeout {
		sm.mu.Unlock()
		return nil, errors.New("an earlier statfs has not returned (a hung network filesystem?); skipped")
	}
	if c == nil {
		if sm.inflight == nil {
			sm.inflight = map[string]*statfsCall{}
		}
		c = &statfsCall{started: time.Now(), done: make(chan struct{})}
		sm.inflight[mount] = c
		statfs := sm.statfs
		if statfs == nil {
			statfs = psdisk.UsageWithContext
		}
		go func() {
			c.u, c.err = statfs(context.WithoutCancel(ctx), mount)
			sm.mu.Lock()
			delete(sm.inflight, mount)
			sm.mu.Unlock()
			close(c.done)
		}()
	}
	sm.mu.Unlock()
	t := time.NewTimer(timeout - time.Since(c.started))
	defer t.Stop()
	select {
	case <-c.done:
		return c.u, c.err
	case <-t.C:
		return nil, fmt.Errorf("statfs did not return within %s", timeout)
	}
}

func (sm *sampler) disks(ctx context.Context, s *series) {
	names, io, err := wholeDisks(ctx)
	if err != nil {
		s.fail("disk I/O", err)
		if len(names) == 0 {
			return
		}
	}
	for _, n := range names {
		d := io[n]
		s.counter("node_disk_read_bytes_total", float64(d.ReadBytes), "device", n)
		s.counter("node_disk_written_bytes_total", float64(d.WriteBytes), "device", n)
		s.counter("node_disk_reads_completed_total", float64(d.ReadCount), "device", n)
		s.counter("node_disk_writes_completed_total", float64(d.WriteCount), "device", n)
		s.counter("node_disk_io_time_seconds_total", float64(d.IoTime)/1000, "device", n)
	}
}

// wholeDisks lists the disks themselves (no partitions, loop or RAM devices), sorted and capped at
// maxDisks, with their I/O counters: what metrics sample and the inventory reports. The error names
// what was left out or could not be read; the disks returned beside it are still good.
func wholeDisks(ctx context.Context) ([]string, map[string]psdisk.IOCountersStat, error) {
	io, err := psdisk.IOCountersWithContext(ctx)
	if err != nil && len(io) == 0 {
		return nil, nil, err
	}
	names := make([]string, 0, len(io))
	for n := range io {
		if !partitionDisk.MatchString(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) > maxDisks {
		return names[:maxDisks], io, fmt.Errorf("%d disks beyond the first %d left out", len(names)-maxDisks, maxDisks)
	}
	return names, io, nil
}

func (sm *sampler) network(ctx context.Context, s *series) {
	ifs, err := psnet.IOCountersWithContext(ctx, true)
	if err != nil && len(ifs) == 0 {
		s.fail("network", err)
		return
	}
	var keep []psnet.IOCountersStat
	for _, i := range ifs {
		if !virtualInterface.MatchString(i.Name) {
			keep = append(keep, i)
		}
	}
	sort.Slice(keep, func(a, b int) bool { return keep[a].Name < keep[b].Name })
	if len(keep) > maxInterfaces {
		s.fail("network", fmt.Errorf("%d interfaces beyond the first %d not sampled", len(keep)-maxInterfaces, maxInterfaces))
		keep = keep[:maxInterfaces]
	}
	for _, i := range keep {
		s.counter("node_network_receive_bytes_total", float64(i.BytesRecv), "device", i.Name)
		s.counter("node_network_transmit_bytes_total", float64(i.BytesSent), "device", i.Name)
		s.counter("node_network_receive_errs_total", float64(i.Errin), "device", i.Name)
		s.counter("node_network_transmit_errs_total", float64(i.Errout), "device", i.Name)
		s.counter("node_network_receive_drop_total", float64(i.Dropin), "device", i.Name)
		s.counter("node_network_transmit_drop_total", float64(i.Dropout), "device", i.Name)
	}
}

func (sm *sampler) temperatures(ctx context.Context, s *series) {
	temps, err := pssensors.TemperaturesWithContext(ctx)
	var warn *pssensors.Warnings
	if err != nil && !errors.As(err, &warn) && len(temps) == 0 {
		// Most VMs and containers have no sensors; that is not worth a log line every start.
		return
	}
	seen := map[string]bool{}
	n := 0
	for _, t := range temps {
		if t.SensorKey == "" || seen[t.SensorKey] || t.Temperature <= -273 || t.Temperature > 1000 {
			continue
		}
		seen[t.SensorKey] = true
		if n++; n > maxSensors {
			s.fail("temperatures", fmt.Errorf("sensors beyond the first %d not sampled", maxSensors))
			break
		}
		s.gauge("node_hwmon_temp_celsius", t.Temperature, "sensor", t.SensorKey)
	}
}
