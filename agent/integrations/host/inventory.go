package host

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

var _ integration.Inventory = (*Host)(nil)

// Thresholds of a mount's status: what is used of what non-root may use. A filesystem nearly full
// needs someone soon (degraded); one that is full breaks writes now (failed).
const (
	mountDegradedRatio = 0.90
	mountFailedRatio   = 0.98
)

// Resources reports the host's disks, mounts and network interfaces (integration.Inventory), with the
// facts that change seldom: sizes, types, addresses, up or down, and a mount's used ratio to the
// percent. What changes every second (bytes used, traffic) is in metrics, so an idle host's inventory
// stays the same between collections and costs no upload. Best effort: what could not be read is
// named in the error and the rest returned.
func (h *Host) Resources(ctx context.Context) ([]wire.Resource, error) {
	var out []wire.Resource
	var errs []error
	for _, part := range []func(context.Context) ([]wire.Resource, error){diskResources, h.mountResources, interfaceResources} {
		rs, err := part(ctx)
		out = append(out, rs...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// diskResources is one resource per whole disk: its size and model where the system says them.
func diskResources(ctx context.Context) ([]wire.Resource, error) {
	names, io, err := wholeDisks(ctx)
	if err != nil {
		err = fmt.Errorf("disks: %w", err)
	}
	out := make([]wire.Resource, 0, len(names))
	for _, n := range names {
		attrs := map[string]any{}
		d := diskDetails(n)
		if d.sizeBytes > 0 {
			attrs["sizeBytes"] = d.sizeBytes
		}
		if d.model != "" {
			attrs["model"] = d.model
		}
		if d.rotational != nil {
			attrs["rotational"] = *d.rotational
		}
		if s := io[n].SerialNumber; s != "" {
			attrs["serial"] = s
		}
		out = append(out, wire.Resource{Type: wire.ResourceDisk, ID: n, Status: wire.ResourceOK, Attributes: attrs})
	}
	return out, err
}

// mountResources is one resource per mount point that holds data: device, fstype, size, the used
// ratio, read-only; degraded when nearly full, failed when full, unknown when statfs failed.
func (h *Host) mountResources(ctx context.Context) ([]wire.Resource, error) {
	mounts, byMount, err := dataMounts(ctx)
	if err != nil {
		err = fmt.Errorf("mounts: %w", err)
	}
	out := make([]wire.Resource, 0, len(mounts))
	for _, m := range mounts {
		p := byMount[m]
		r := wire.Resource{Type: wire.ResourceMount, ID: m, Status: wire.ResourceOK, Attributes: map[string]any{
			"device": p.Device, "fstype": p.Fstype, "readOnly": slices.Contains(p.Opts, "ro"),
		}}
		u, uerr := h.sampler.usage(ctx, m)
		if uerr != nil {
			r.Status, r.Reason = wire.ResourceUnknown, wire.CapReason("statfs: "+uerr.Error())
			out = append(out, r)
			continue
		}
		r.Attributes["sizeBytes"] = u.Total
		// Used of what non-root may use (df's Use%): the part a full disk takes from the services.
		usable := u.Used + u.Free
		if usable > 0 {
			ratio := math.Round(float64(u.Used)/float64(usable)*100) / 100
			r.Attributes["usedRatio"] = ratio
			switch {
			case ratio >= mountFailedRatio:
				r.Status, r.Reason = wire.ResourceFailed, fmt.Sprintf("%.0f%% used: full", ratio*100)
			case ratio >= mountDegradedRatio:
				r.Status, r.Reason = wire.ResourceDegraded, fmt.Sprintf("%.0f%% used: nearly full", ratio*100)
			}
		}
		out = append(out, r)
	}
	return out, err
}

// interfaceResources is one resource per network interface but loopback and veth ends: MTU, MAC,
// addresses; ok when up with a link, degraded when up without one, stopped when down.
func interfaceResources(context.Context) ([]wire.Resource, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("interfaces: %w", err)
	}
	var keep []net.Interface
	for _, i := range ifs {
		if !virtualInterface.MatchString(i.Name) {
			keep = append(keep, i)
		}
	}
	sort.Slice(keep, func(a, b int) bool { return keep[a].Name < keep[b].Name })
	var errs []error
	if len(keep) > maxInterfaces {
		errs = append(errs, fmt.Errorf("interfaces: %d beyond the first %d left out", len(keep)-maxInterfaces, maxInterfaces))
		keep = keep[:maxInterfaces]
	}
	out := make([]wire.Resource, 0, len(keep))
	for _, i := range keep {
		up, link := i.Flags&net.FlagUp != 0, i.Flags&net.FlagRunning != 0
		r := wire.Resource{Type: wire.ResourceInterface, ID: i.Name, Status: wire.ResourceOK,
			Attributes: map[string]any{"mtu": i.MTU, "up": up}}
		if mac := i.HardwareAddr.String(); mac != "" {
			r.Attributes["mac"] = mac
		}
		switch {
		case !up:
			r.Status, r.Reason = wire.ResourceStopped, "down"
		case !link:
			r.Status, r.Reason = wire.ResourceDegraded, "up, but no link"
		}
		addrs, aerr := i.Addrs()
		if aerr != nil {
			errs = append(errs, fmt.Errorf("interface %s: addresses: %w", i.Name, aerr))
		}
		var list []string
		for _, a := range addrs {
			list = append(list, a.String())
		}
		sort.Strings(list)
		if s := joinCapped(list, wire.MaxAttributeBytes); s != "" {
			r.Attributes["addresses"] = s
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// diskInfo is what the system says of a disk beyond its name (zero: it does not say).
type diskInfo struct {
	sizeBytes  uint64
	model      string
	rotational *bool
}

// joinCapped joins items with commas, leaving out the last ones (marked with "…") so the result fits
// in max bytes: an interface with a hundred addresses still reports the first ones.
func joinCapped(items []string, max int) string {
	s := strings.Join(items, ",")
	for len(s) > max && len(items) > 0 {
		items = items[:len(items)-1]
		s = strings.Join(append(slices.Clone(items), "…"), ",")
	}
	return s
}
