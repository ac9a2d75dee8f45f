package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/cli"
)

// scriptedHub is a fake hub for one command, c1 on agent a1 (web-1): it answers the create, the
// final status and the output as the real one does, and serves each connection to the command's
// event stream from the next of its scripts, recording what the command line asked for and when.
type scriptedHub struct {
	t       *testing.T
	streams []func(w http.ResponseWriter, r *http.Request)

	mu          sync.Mutex
	log         []string // the requests, in order: "create", "stream <Last-Event-ID>", "status", "output"
	doneSent    bool     // the stream has said every target is final
	statusEarly bool     // a status GET came before the stream said done: polling
}

const scriptedCreated = "2026-01-02T03:04:05Z"

func (h *scriptedHub) record(what string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, what)
	n := 0
	for _, l := range h.log {
		if strings.HasPrefix(l, "stream") {
			n++
		}
	}
	return n
}

func (h *scriptedHub) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.log {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (h *scriptedHub) status(state string, withResult bool) map[string]any {
	agent := map[string]any{"agent": "a1", "name": "web-1", "state": state, "chunks": 0, "outputBytes": 0}
	if withResult {
		agent["exitCode"], agent["durationMs"], agent["chunks"], agent["outputBytes"] = 0, 1500, 1, 10
	}
	return map[string]any{"$schema": "http://hub/schemas/CommandStatus.json", "id": "c1", "command": "echo",
		"params": map[string]string{"text": "hi"}, "issuer": "admin", "createdAt": scriptedCreated,
		"notAfter": scriptedCreated, "targets": []string{"a1"}, "targetExprs": []string{"web-1"},
		"agents": []any{agent}, "counts": map[string]int{state: 1}, "done": withResult, "timeoutSeconds": 60,
		"awaitingApproval": false, "cancelled": false, "denied": false, "stopped": false}
}

func (h *scriptedHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	writeJSON := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/commands":
		h.record("create")
		writeJSON(http.StatusAccepted, h.status("pending", false))
	case r.Method == http.MethodGet && r.URL.Path == "/v1/commands/c1/events":
		n := h.record("stream " + r.Header.Get("Last-Event-ID"))
		if n > len(h.streams) {
			h.t.Errorf("stream connection %d: the script has %d", n, len(h.streams))
			http.Error(w, "no more", http.StatusGone)
			return
		}
		h.streams[n-1](w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/commands/c1":
		h.record("status")
		h.mu.Lock()
		h.statusEarly = h.statusEarly || !h.doneSent
		h.mu.Unlock()
		writeJSON(http.StatusOK, h.status("succeeded", true))
	case r.Method == http.MethodGet && r.URL.Path == "/v1/commands/c1/output/a1":
		h.record("output")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Pulse-Next-Chunk", "1")
		w.Header().Set("X-Pulse-Complete", "true")
		w.Header().Set("X-Pulse-State", "succeeded")
		fmt.Fprint(w, "web-1: hi\n")
	default:
		h.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	}
}

// sse opens an event stream as the hub does and returns a function that writes one event.
func sse(w http.ResponseWriter) func(id, event, data string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": stream open\n\n")
	w.(http.Flusher).Flush()
	return func(id, event, data string) {
		if id != "" {
			fmt.Fprintf(w, "id: %s\n", id)
		}
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		w.(http.Flusher).Flush()
	}
}

const (
	runningAgent   = `{"agent":"a1","name":"web-1","state":"running","chunks":0,"outputBytes":0}`
	runningCommand = `{"id":"c1","state":"running","done":false,"awaitingApproval":false,"approvals":0,"counts":{"running":1}}`
	finalAgent     = `{"agent":"a1","name":"web-1","state":"succeeded","exitCode":0,"chunks":1,"outputBytes":10}`
	doneCommand    = `{"id":"c1","state":"done","done":true,"awaitingApproval":false,"approvals":0,"counts":{"succeeded":1}}`
)

// firstPart is the start of the command's stream: the agent runs. It returns the stream's sender.
func firstPart(w http.ResponseWriter) func(id, event, data string) {
	send := sse(w)
	send("100-a1", "agent", runningAgent)
	send("", "command", runningCommand)
	return send
}

// theEnd finishes the command's stream as the hub does after a resume (the command's state again,
// then what changed), then holds the connection open: the command line must not wait for it to close.
func (h *scriptedHub) theEnd(send func(id, event, data string), r *http.Request) {
	send("", "command", runningCommand)
	send("200-a1", "agent", finalAgent)
	h.mu.Lock()
	h.doneSent = true
	h.mu.Unlock()
	send("", "command", doneCommand)
	<-r.Context().Done()
}

// wantWaitOutput checks what `pulse run echo --target web-1 --wait` printed for the scripted command.
func wantWaitOutput(t *testing.T, stdout, stderr string) {
	t.Helper()
	created, _ := time.Parse(time.RFC3339, scriptedCreated)
	head := fmt.Sprintf("command c1: echo text=hi on 1 agent(s), issued by admin at %s\n", created.Local().Format(time.RFC3339))
	if !strings.HasPrefix(stdout, head) || !strings.Contains(stdout, "\na1     web-1  succeeded  0     1.5s      10 B") ||
		!strings.HasSuffix(stdout, "\n--- web-1 (a1) ---\nweb-1: hi\n") {
		t.Errorf("stdout:\n%s", stdout)
	}
	if stderr != "c1: 1 running\nc1: 1 succeeded\n" {
		t.Errorf("stderr %q: want each change of counts once", stderr)
	}
}

// TestRunWaitResumesDroppedStream: `pulse run --wait` follows the command's event stream, and when
// the stream drops before the end it opens it again after the last event it had (Last-Event-ID),
// prints each change of state once, and reads the command's status once at the end.
func TestRunWaitResumesDroppedStream(t *testing.T) {
	var h *scriptedHub
	for _, c := range []struct {
		name    string
		streams func() []func(http.ResponseWriter, *http.Request)
		want    []string // the stream connections, by the Last-Event-ID they carried
	}{
		{"the hub closes the stream early", func() []func(http.ResponseWriter, *http.Request) {
			return []func(http.ResponseWriter, *http.Request){
				func(w http.ResponseWriter, _ *http.Request) { firstPart(w) },
				func(w http.ResponseWriter, r *http.Request) { h.theEnd(sse(w), r) },
			}
		}, []string{"stream ", "stream 100-a1"}},
		{"the connection is cut in the middle of an event", func() []func(http.ResponseWriter, *http.Request) {
			return []func(http.ResponseWriter, *http.Request){
				func(w http.ResponseWriter, _ *http.Request) {
					firstPart(w)
					fmt.Fprint(w, "id: 150-a1\nevent: agent\ndata: {\"agent\":")
					w.(http.Flusher).Flush()
					conn, _, err := w.(http.Hijacker).Hijack()
					if err != nil {
						t.Error(err)
						return
					}
					conn.Close()
				},
				func(w http.ResponseWriter, r *http.Request) { h.theEnd(sse(w), r) },
			}
		}, []string{"stream ", "stream 100-a1"}},
		{"the hub reports an error on the stream", func() []func(http.ResponseWriter, *http.Request) {
			return []func(http.ResponseWriter, *http.Request){
				func(w http.ResponseWriter, _ *http.Request) {
					firstPart(w)("", "error", `"store unavailable"`)
				},
				func(w http.ResponseWriter, r *http.Request) { h.theEnd(sse(w), r) },
			}
		}, []string{"stream ", "stream 100-a1"}},
		{"a proxy answers 502 while the hub restarts", func() []func(http.ResponseWriter, *http.Request) {
			return []func(http.ResponseWriter, *http.Request){
				func(w http.ResponseWriter, _ *http.Request) { firstPart(w) },
				func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "bad gateway", http.StatusBadGateway) },
				func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "bad gateway", http.StatusBadGateway) },
				func(w http.ResponseWriter, r *http.Request) { h.theEnd(sse(w), r) },
			}
		}, []string{"stream ", "stream 100-a1", "stream 100-a1", "stream 100-a1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h = &scriptedHub{t: t}
			h.streams = c.streams()
			srv := httptest.NewServer(h)
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			code := cli.Main(ctx, []string{"run", "echo", "--target", "web-1", "--param", "text=hi", "--wait", "--hub", srv.URL, "--token", "x"}, &cli.Env{Stdout: &out, Stderr: &errOut})
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut.String())
			}
			wantWaitOutput(t, out.String(), errOut.String())
			h.mu.Lock()
			defer h.mu.Unlock()
			var streams []string
			for _, l := range h.log {
				if strings.HasPrefix(l, "stream") {
					streams = append(streams, l)
				}
			}
			if fmt.Sprint(streams) != fmt.Sprint(c.want) {
				t.Errorf("stream connections %q, want %q", streams, c.want)
			}
			if want := []string{"status", "output"}; fmt.Sprint(h.log[len(h.log)-2:]) != fmt.Sprint(want) {
				t.Errorf("requests %q: want the stream's end followed by one status and one output read", h.log)
			}
		})
	}
}

// TestRunWaitReturnsWhenStreamSaysDone: `run --wait` reads the command's status once, after the
// stream says every target is final, and returns without waiting for the hub to close the stream;
// with --json it prints that status as the hub sent it. A stream the hub refuses (the command is
// gone) ends the wait at once instead of being retried.
func TestRunWaitReturnsWhenStreamSaysDone(t *testing.T) {
	for _, c := range []struct {
		name     string
		json     bool
		refused  bool
		wantCode int
		wantLog  []string
	}{
		{"for a person", false, false, 0, []string{"create", "stream ", "status", "output"}},
		{"with --json", true, false, 0, []string{"create", "stream ", "status"}},
		{"the stream is refused", false, true, cli.ExitError, []string{"create", "stream "}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &scriptedHub{t: t}
			h.streams = []func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) {
				if c.refused {
					w.Header().Set("Content-Type", "application/problem+json")
					w.WriteHeader(http.StatusNotFound)
					fmt.Fprint(w, `{"title":"Not Found","status":404,"detail":"no command c1"}`)
					return
				}
				h.theEnd(firstPart(w), r)
			}}
			srv := httptest.NewServer(h)
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := []string{"run", "echo", "--target", "web-1", "--param", "text=hi", "--wait", "--hub", srv.URL, "--token", "x"}
			if c.json {
				args = append(args, "--json")
			}
			var out, errOut bytes.Buffer
			code := cli.Main(ctx, args, &cli.Env{Stdout: &out, Stderr: &errOut})
			if ctx.Err() != nil {
				t.Fatal("run --wait did not return once the stream said done")
			}
			if code != c.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.wantCode, errOut.String())
			}
			h.mu.Lock()
			log, early := h.log, h.statusEarly
			h.mu.Unlock()
			if fmt.Sprint(log) != fmt.Sprint(c.wantLog) {
				t.Errorf("requests %q, want %q", log, c.wantLog)
			}
			if early {
				t.Error("the command's status was read before the stream said done")
			}
			switch {
			case c.refused:
				if errOut.String() != "pulse run: no command c1 (HTTP 404)\n" {
					t.Errorf("stderr %q", errOut.String())
				}
			case c.json:
				var want bytes.Buffer
				b, _ := json.Marshal(h.status("succeeded", true))
				json.Indent(&want, b, "", "  ")
				var got, wantMap map[string]any
				json.Unmarshal(out.Bytes(), &got)
				json.Unmarshal(want.Bytes(), &wantMap)
				delete(wantMap, "$schema")
				if fmt.Sprint(got) != fmt.Sprint(wantMap) || strings.Contains(out.String(), "$schema") {
					t.Errorf("--json printed\n%s\nwant the final status without $schema", out.String())
				}
				if errOut.String() != "" {
					t.Errorf("--json: stderr %q, want no progress lines", errOut.String())
				}
			default:
				wantWaitOutput(t, out.String(), errOut.String())
			}
		})
	}
}

// TestOutputFollowEndsWithTheStream: `pulse output --follow` prints what is stored, then the rest
// once the command's stream says the agent's result is in, and stops.
func TestOutputFollowEndsWithTheStream(t *testing.T) {
	var mu sync.Mutex
	resultIn, outputReads := false, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/commands/c1/events":
			send := sse(w)
			send("100-a1", "agent", runningAgent)
			send("", "command", runningCommand)
			time.Sleep(50 * time.Millisecond) // the agent runs a little
			mu.Lock()
			resultIn = true
			mu.Unlock()
			send("200-a1", "agent", finalAgent)
			send("", "command", doneCommand)
		case "/v1/commands/c1/output/web-1":
			mu.Lock()
			outputReads++
			done := resultIn
			mu.Unlock()
			from := r.URL.Query().Get("from")
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("X-Pulse-State", "running")
			switch {
			case from == "0":
				w.Header().Set("X-Pulse-Next-Chunk", "1")
				fmt.Fprint(w, "first\n")
			case done:
				w.Header().Set("X-Pulse-Next-Chunk", "2")
				w.Header().Set("X-Pulse-Complete", "true")
				fmt.Fprint(w, "second\n")
			default:
				w.Header().Set("X-Pulse-Next-Chunk", "1")
			}
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := cli.Main(ctx, []string{"output", "c1", "--agent", "web-1", "--follow", "--hub", srv.URL, "--token", "x"}, &cli.Env{Stdout: &out, Stderr: &errOut})
	if code != 0 || out.String() != "first\nsecond\n" || errOut.String() != "" {
		t.Fatalf("exit %d stdout %q stderr %q", code, out.String(), errOut.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if outputReads > 10 {
		t.Errorf("%d output reads for two chunks: the stream's end should end the wait, not a busy loop", outputReads)
	}
}

// TestRunWaitPrintsOutputsInOrder: the outputs `run --wait` prints are read several at a time, but
// printed in the order of the command's agents, whichever answer comes first.
func TestRunWaitPrintsOutputsInOrder(t *testing.T) {
	const n = 20
	var agents []any
	for i := range n {
		agents = append(agents, map[string]any{"agent": fmt.Sprintf("a%02d", i), "name": fmt.Sprintf("web-%02d", i), "state": "succeeded", "exitCode": 0, "chunks": 1, "outputBytes": 3})
	}
	status := map[string]any{"id": "c1", "command": "echo", "issuer": "admin", "createdAt": scriptedCreated, "notAfter": scriptedCreated,
		"targets": []string{}, "targetExprs": []string{"all"}, "agents": agents, "counts": map[string]int{"succeeded": n}, "done": true}
	var mu sync.Mutex
	inFlight, most := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/commands" || r.URL.Path == "/v1/commands/c1":
			w.Header().Set("Content-Type", "application/json")
			if r.Method == http.MethodPost {
				w.WriteHeader(http.StatusAccepted)
			}
			json.NewEncoder(w).Encode(status)
		case r.URL.Path == "/v1/commands/c1/events":
			sse(w)("", "command", doneCommand)
		case strings.HasPrefix(r.URL.Path, "/v1/commands/c1/output/a"):
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			var i int
			fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/v1/commands/c1/output/a"), "%d", &i)
			time.Sleep(time.Duration(n-i) * time.Millisecond) // the later agents answer first
			mu.Lock()
			inFlight--
			mu.Unlock()
			w.Header().Set("Content-Type", "application/octet-stream")
			fmt.Fprintf(w, "%02d\n", i)
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	r := pulse("run", "echo", "--target", "all", "--wait", "--hub", srv.URL, "--token", "x")
	if r.code != 0 {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	var want strings.Builder
	for i := range n {
		fmt.Fprintf(&want, "\n--- web-%02d (a%02d) ---\n%02d\n", i, i, i)
	}
	if !strings.HasSuffix(r.stdout, want.String()) {
		t.Errorf("stdout:\n%s\nwant it to end with the outputs in the agents' order:%s", r.stdout, want.String())
	}
	if most < 2 || most > 8 {
		t.Errorf("at most %d output reads at once, want several and no more than 8", most)
	}
}
