package hub_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/store"
)

// flakyStore fails every call while down is set, as an unreachable S3 endpoint does.
type flakyStore struct {
	store.Store
	down atomic.Bool
}

var errUnreachable = errors.New("dial tcp 127.0.0.1:9: connect: connection refused")

func (f *flakyStore) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	if f.down.Load() {
		return nil, errUnreachable
	}
	return f.Store.Get(ctx, k, o)
}

func (f *flakyStore) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	if f.down.Load() {
		return store.ObjectInfo{}, errUnreachable
	}
	return f.Store.Put(ctx, k, r, n, o)
}

func (f *flakyStore) List(ctx context.Context, p, after string, limit int) (store.Page, error) {
	if f.down.Load() {
		return store.Page{}, errUnreachable
	}
	return f.Store.List(ctx, p, after, limit)
}

// TestStoreDownIsAProblem: with the store unreachable, every room's failure reaches the caller as a 503
// problem that names the store and its cause (never a 500, never a 404 that would lie), a result
// upload is refused so the agent keeps it, and nothing is half-done when the store returns.
func TestStoreDownIsAProblem(t *testing.T) {
	var fs *flakyStore
	th := newTestHubOn(t, func(s store.Store) store.Store { fs = &flakyStore{Store: s}; return fs })
	a := th.agent("web-1", nil, nil)
	var cmd commandView
	if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{"all"}}, &cmd); st != 202 {
		t.Fatalf("create: %d %s", st, cmd.Detail)
	}
	work, _, err := a.Poll(context.Background(), nil)
	if err != nil || len(work) != 1 {
		t.Fatalf("poll: %v %d", err, len(work))
	}
	// The token was checked once and is cached for a few seconds; the store goes away now.
	th.call(th.admin, "GET", "/v1/agents", nil, nil)
	fs.down.Store(true)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/commands"},
		{"GET", "/v1/commands/" + cmd.ID},
		{"GET", "/v1/agents/" + a.ID},
		{"GET", "/v1/executions"},
		{"GET", "/v1/approvals"},
		{"GET", "/v1/enroll-tokens"},
		{"GET", "/v1/integrity?scan=true"},
		{"POST", "/v1/audit/verify"},
	} {
		var p struct {
			Status int
			Detail string
		}
		st := th.call(th.admin, c.method, c.path, nil, &p)
		if st != 503 || !strings.Contains(p.Detail, "store unavailable") || !strings.Contains(p.Detail, "connection refused") {
			t.Errorf("%s %s with the store down: %d %q, want 503 naming the store and its cause", c.method, c.path, st, p.Detail)
		}
	}
	if err := a.Complete(context.Background(), work[0], wire.StatusSucceeded, 0, nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("result upload with the store down: %v, want a 503 so the agent keeps it", err)
	}
	fs.down.Store(false)
	if err := a.Complete(context.Background(), work[0], wire.StatusSucceeded, 0, nil); err != nil {
		t.Fatalf("result upload once the store is back: %v", err)
	}
	if st := th.call(th.admin, "GET", "/v1/commands/"+cmd.ID, nil, &cmd); st != 200 || !cmd.Done || cmd.Counts["succeeded"] != 1 {
		t.Fatalf("after the store came back: %d %+v", st, cmd)
	}
}
