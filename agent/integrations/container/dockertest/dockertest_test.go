package dockertest_test

import (
	"testing"

	"github.com/pulsehq/pulse/agent/integrations/container/dockertest"
)

// The private daemon comes up and loads the busybox image, and building the image twice gives the
// same archive and image ID (fixed times), so tests and plans can name it by ID.
func TestDaemonLoadsADeterministicImage(t *testing.T) {
	d := dockertest.Start(t)
	img := dockertest.BuildImage(t, t.TempDir(), "pulse-test/busybox:1")
	d.Load(t, img)
	again := dockertest.BuildImage(t, t.TempDir(), "pulse-test/busybox:1")
	if again.ID != img.ID || again.Digest != img.Digest || again.Size != img.Size {
		t.Fatalf("two builds differ: %+v, %+v", img, again)
	}
}
