package container_test

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// TestContainerInventory, against a real private daemon: a container the integration runs for a unit
// is reported ok, managed, with its unit and image; one it did not create and that exited with code 3
// is reported too, failed, not managed; the report passes the hub's rules.
func TestContainerInventory(t *testing.T) {
	e := newEnv(t, true)
	r := e.load(t, map[string]any{"name_prefix": "inv-"})
	apply(t, r, unit("app", sleeper(e.img.ID)))

	ctx := ctxFor(t, 60*time.Second)
	other, err := e.d.Client.ContainerCreate(ctx, &container.Config{Image: e.img.ID, Cmd: []string{"/bin/sh", "-c", "exit 3"}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "someone-elses")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.Client.ContainerStart(ctx, other.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := e.d.Client.ContainerWait(ctx, other.ID, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		t.Fatal(err)
	}

	inv, ok := r.Reconciler.(integration.Inventory)
	if !ok {
		t.Fatal("the container integration is no integration.Inventory")
	}
	rs, err := inv.Resources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]wire.Resource{}
	for _, res := range rs {
		byName[res.Name] = res
	}
	app, ok := byName["inv-app"]
	if !ok || app.Status != wire.ResourceOK || app.Attributes["managed"] != true || app.Attributes["unit"] != "app" ||
		app.Attributes["image"] != e.img.ID || app.Attributes["state"] != "running" || app.Type != wire.ResourceContainer || len(app.ID) != 64 {
		t.Errorf("managed container: %+v", app)
	}
	foreign, ok := byName["someone-elses"]
	if !ok || foreign.Status != wire.ResourceFailed || foreign.Reason != "exited with code 3" || foreign.Attributes["managed"] != false {
		t.Errorf("foreign container: %+v", foreign)
	}
	rep := wire.InventoryReport{Seq: 1, At: time.Now(), Resources: rs}
	if err := rep.Validate(); err != nil {
		t.Fatalf("refused by the hub's rules: %v", err)
	}
}
