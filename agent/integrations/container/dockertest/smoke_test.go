package dockertest_test

import (
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integrations/container/dockertest"
)

func TestSmoke(t *testing.T) {
	start := time.Now()
	d := dockertest.Start(t)
	t.Logf("up in %v", time.Since(start))
	img := dockertest.BuildImage(t, t.TempDir(), "pulse-test/busybox:1")
	d.Load(t, img)
	t.Logf("loaded %s in %v", img.ID, time.Since(start))
	img2 := dockertest.BuildImage(t, t.TempDir(), "pulse-test/busybox:1")
	if img2.ID != img.ID || img2.Digest != img.Digest {
		t.Fatal("not deterministic")
	}
}
