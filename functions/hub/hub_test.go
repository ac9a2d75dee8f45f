package hub_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// testHub is a hub built by hub.New on the local store, served in-process.
type testHub struct {
	t     testing.TB
	h     *hub.Hub
	url   string
	admin string
}

func newTestHub(t testing.TB) *testHub { return newTestHubOn(t, nil) }

// newTestHubOn is newTestHub on a store wrapped by wrap (nil: the local store as it is).
func newTestHubOn(t testing.TB, wrap func(store.Store) store.Store) *testHub {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return startTestHub(t, "file:"+t.TempDir(), priv, wrap)
}

// startTestHub serves a hub on the store at url with the signing key priv: two of them on one url
// and key are two instances of one hub, as replicas behind a load balancer are.
func startTestHub(t testing.TB, url string, priv ed25519.PrivateKey, wrap func(store.Store) store.Store) *testHub {
	t.Helper()
	settings := config.Defaults()
	settings.Store = url
	ctx, cancel := context.WithCancel(context.Background())
	var st store.Store
	if wrap != nil {
		local, err := store.Open(ctx, settings.Store)
		if err != nil {
			t.Fatal(err)
		}
		st = wrap(local)
	}
	h, err := hub.New(ctx, hub.Config{Settings: settings, Store: st, Keys: &hubkey.Keys{Current: priv}, PollHold: 2 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	hub.NewAPI(mux, h)
	srv := httptest.NewServer(h.Handler(mux))
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; h.Close(); srv.Close() })
	admin, err := hub.CreateAPIToken(ctx, h.Store, "root", []string{"admin"}, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	return &testHub{t: t, h: h, url: srv.URL, admin: admin}
}

// call sends an operator request and decodes the answer into out; it returns the status.
func (th *testHub) call(token, method, path string, in, out any) int {
	th.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, th.url+path, body)
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		th.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(b, out)
	}
	return resp.StatusCode
}

// token is the root admin onboarding a person called name: the token is theirs, made by root.
func (th *testHub) token(name, groups string) string {
	th.t.Helper()
	var out struct{ Token string }
	if st := th.call(th.admin, "POST", "/v1/tokens", map[string]any{"name": name, "groups": strings.Split(groups, ","), "for": name}, &out); st != 201 {
		th.t.Fatalf("create token %s: %d", name, st)
	}
	return out.Token
}

func (th *testHub) agent(name string, labels map[string]string, catalog []wire.CommandSpec) *simagent.Agent {
	th.t.Helper()
	var tok struct{ Token string }
	if st := th.call(th.admin, "POST", "/v1/enroll-tokens", map[string]any{"labels": labels}, &tok); st != 201 {
		th.t.Fatalf("enroll token: %d", st)
	}
	a, err := simagent.Enroll(context.Background(), th.url, tok.Token, name, catalog)
	if err != nil {
		th.t.Fatal(err)
	}
	return a
}

// event is one server-sent event.
type event struct {
	ID, Event string
	Data      map[string]any
}

// stream reads a server-sent event stream into a channel until it ends.
func (th *testHub) stream(ctx context.Context, token, path, lastID string) <-chan event {
	th.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", th.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		th.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		th.t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	ch := make(chan event, 100)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var e event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.Event != "" {
					ch <- e
				}
				e = event{}
			case strings.HasPrefix(line, "id: "):
				e.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				e.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e.Data)
			}
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan event, want string) event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended before a %q event", want)
			}
			if e.Event == want {
				return e
			}
		case <-timeout:
			t.Fatalf("no %q event within 20s", want)
		}
	}
}

// rest returns what a stream sends until it ends by itself, failing if it has not ended in 20s.
func rest(t *testing.T, ch <-chan event) []event {
	t.Helper()
	var out []event
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, e)
		case <-timeout:
			t.Fatalf("the stream did not end within 20s (got %d events)", len(out))
		}
	}
}

// serve runs one poll round on a simulated agent and completes what it got.
func serve(t *testing.T, a *simagent.Agent, exit int) int {
	t.Helper()
	ctx := context.Background()
	work, _, err := a.Poll(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range work {
		status := wire.StatusSucceeded
		if exit != 0 {
			status = wire.StatusFailed
		}
		if err := a.Complete(ctx, w, status, exit, []byte("up 3 days\n")); err != nil {
			t.Fatal(err)
		}
	}
	var acks []string
	for _, w := range work {
		acks = append(acks, w.InboxKey)
	}
	if len(acks) > 0 {
		go a.Poll(context.Background(), acks) // acknowledge; the answer does not matter here
	}
	return len(work)
}
