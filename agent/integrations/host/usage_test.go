package host

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	psdisk "github.com/shirou/gopsutil/v4/disk"
)

// TestUsageSharesAndSkipsStuckCalls: the metrics sample and the inventory asking about one mount at
// once share one statfs and both get its answer (neither is told the other's call is "stuck"); a call
// that outlives the timeout fails, and the mount is then skipped at once until the call returns.
func TestUsageSharesAndSkipsStuckCalls(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	sm := &sampler{timeout: time.Second, statfs: func(ctx context.Context, path string) (*psdisk.UsageStat, error) {
		calls.Add(1)
		<-release
		return &psdisk.UsageStat{Path: path, Total: 100}, nil
	}}
	ctx := context.Background()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			u, err := sm.usage(ctx, "/")
			if err == nil && u.Total != 100 {
				err = fmt.Errorf("usage %+v", u)
			}
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a concurrent caller: %v", err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d statfs calls for two concurrent callers; want 1", calls.Load())
	}

	hang := make(chan struct{})
	sm.statfs = func(ctx context.Context, path string) (*psdisk.UsageStat, error) {
		<-hang
		return &psdisk.UsageStat{}, nil
	}
	if _, err := sm.usage(ctx, "/nfs"); err == nil || !strings.Contains(err.Error(), "did not return within") {
		t.Fatalf("a hung statfs: %v", err)
	}
	if _, err := sm.usage(ctx, "/nfs"); err == nil || !strings.Contains(err.Error(), "skipped") {
		t.Fatalf("the hung mount asked again: %v", err)
	}
	close(hang)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := sm.usage(ctx, "/nfs"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the mount after its statfs returned: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
