package container

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

var _ integration.Inventory = (*Container)(nil)

// maxContainers bounds the containers one report lists, well inside wire.MaxResources: a host running
// more is reported with the first ones (by name) and an error saying how many were left out.
const maxContainers = 1000

// exitCode finds the code in the daemon's "Exited (137) 2 minutes ago".
var exitCode = regexp.MustCompile(`^Exited \((-?\d+)\)`)

// Resources reports every container the daemon has, the ones this integration manages (labelled
// pulse.managed, with their unit) and the others it only sees (integration.Inventory): name, image,
// Docker's state, and a status from it: running ok (degraded while its health check fails),
// restarting degraded, exited with 0 or created or paused stopped, exited otherwise or dead failed.
// The daemon's "Up 3 minutes" is left out: it changes every minute and would cost an upload each time.
func (c *Container) Resources(ctx context.Context) ([]wire.Resource, error) {
	list, err := c.cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	sort.Slice(list, func(i, j int) bool { return nameOf(list[i]) < nameOf(list[j]) })
	var capErr error
	if len(list) > maxContainers {
		capErr = fmt.Errorf("%d containers beyond the first %d left out", len(list)-maxContainers, maxContainers)
		list = list[:maxContainers]
	}
	out := make([]wire.Resource, 0, len(list))
	for _, s := range list {
		status, reason := statusOf(s)
		attrs := map[string]any{"image": truncate(s.Image), "state": string(s.State), "managed": s.Labels[LabelManaged] == "true"}
		if u := s.Labels[LabelUnit]; u != "" && s.Labels[LabelManaged] == "true" {
			attrs["unit"] = truncate(u)
		}
		out = append(out, wire.Resource{Type: wire.ResourceContainer, ID: s.ID, Name: truncate(nameOf(s)), Status: status,
			Reason: wire.CapReason(reason), Attributes: attrs})
	}
	return out, capErr
}

// statusOf maps Docker's state (and the health and exit code in its status text) onto the
// inventory's statuses.
func statusOf(s container.Summary) (status, reason string) {
	switch s.State {
	case container.StateRunning:
		if strings.Contains(s.Status, "(unhealthy)") {
			return wire.ResourceDegraded, "running, but its health check fails"
		}
		return wire.ResourceOK, ""
	case container.StateRestarting:
		return wire.ResourceDegraded, "restarting"
	case container.StateExited:
		if m := exitCode.FindStringSubmatch(s.Status); m != nil && m[1] != "0" {
			return wire.ResourceFailed, "exited with code " + m[1]
		}
		return wire.ResourceStopped, "exited"
	case container.StateCreated, container.StatePaused, container.StateRemoving:
		return wire.ResourceStopped, string(s.State)
	case container.StateDead:
		return wire.ResourceFailed, "dead"
	}
	return wire.ResourceUnknown, "state " + string(s.State)
}

func nameOf(s container.Summary) string {
	if len(s.Names) == 0 {
		return ""
	}
	return strings.TrimPrefix(s.Names[0], "/")
}

// truncate keeps a value the daemon gives (an image reference, a name) within the wire's bounds.
func truncate(s string) string {
	if len(s) <= wire.MaxResourceIDBytes {
		return s
	}
	return s[:wire.MaxResourceIDBytes]
}
