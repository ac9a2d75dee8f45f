package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/pulsehq/pulse/agent/integrations/container/dockertest"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// TestContainerImageFromArtifact: real `pulse serve` on MinIO, a real pulse-agent and a real dockerd
// that has never seen the image. The image's `docker save` archive is pushed with `pulse artifact
// push`; a plan's container unit names the image by ID and the archive by digest, and the agent
// fetches the archive through the hub, loads it into the daemon and runs the container.
func TestContainerImageFromArtifact(t *testing.T) {
	docker, why := dockertest.TryStart(t)
	if docker == nil {
		t.Skipf("no Docker daemon: %s", why)
	}
	ctx := context.Background()
	dir := t.TempDir()
	img := dockertest.BuildImage(t, dir, "")
	if _, _, err := docker.Client.ImageInspectWithRaw(ctx, img.ID); err == nil {
		t.Fatalf("the daemon has image %s before the plan", img.ID)
	}
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	ref := pushArtifact(t, h.url, token, img.Tar)
	if ref.Digest != img.Digest || ref.Size != img.Size {
		t.Fatalf("pushed %+v, want the archive's %s (%d bytes)", ref, img.Digest, img.Size)
	}
	tokOut, tokErr, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--uses", "1", "--labels", "role=box")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", tokErr)
	}
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nplan_period = \"1s\"\n", 1) + fmt.Sprintf(`
[container]
socket = %q
allow_images = ["sha256:"]
name_prefix = "pulse-art-"
stop_grace = "1s"
`, docker.Host)
	a := startAgent(t, h.url, filepath.Join(dir, "agent"), cfg, "--enroll-token", strings.TrimSpace(tokOut))
	a.id()
	source := fmt.Sprintf(`targets: [role=box]
units:
  - name: box
    type: container
    deadline: 60s
    spec:
      image: %q
      artifact: {digest: %q, size: %d}
      command: /bin/sleep
      args: ["100000"]
`, img.ID, ref.Digest, ref.Size)
	if out, code := applyPlan(t, h.url, token, "box", dir, source); code != 0 {
		t.Fatalf("pulse plan apply: exit %d: %s", code, out)
	}
	var v planView
	waitFor(t, "the container unit converged", 90*time.Second, func() bool {
		v = planStatus(t, h.url, token, "box")
		return v.every(1, "converged")
	})
	if _, _, err := docker.Client.ImageInspectWithRaw(ctx, img.ID); err != nil {
		t.Fatalf("the daemon lacks image %s after the plan converged: %v", img.ID, err)
	}
	list, err := docker.Client.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("name", "pulse-art-box"))})
	if err != nil || len(list) != 1 || list[0].ImageID != img.ID || list[0].State != "running" {
		t.Fatalf("containers: %+v, %v; want pulse-art-box running image %s", list, err, img.ID)
	}
}
