package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/s3"
	"github.com/pulsehq/pulse/integration-tests/s3server"
	"github.com/pulsehq/pulse/integration-tests/simagent"
	"github.com/pulsehq/pulse/openapi/client"
)

// initStore runs `pulse init --json` for a fresh prefix of the shared MinIO bucket and returns the store
// URL and the admin token.
func initStore(t testing.TB, dir string) (storeURL, token string) {
	t.Helper()
	storeURL = minio.URL(bucket, "t"+strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	return storeURL, initAt(t, dir, storeURL)
}

// initAt runs `pulse init --json` in dir for storeURL and returns the admin token.
func initAt(t testing.TB, dir, storeURL string) string {
	t.Helper()
	cmd := exec.Command(pulseBin, "init", "--json", "--store", storeURL)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), s3server.Env()...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pulse init: %v\n%s", err, out)
	}
	var res struct {
		AdminToken string `json:"adminToken"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.AdminToken == "" {
		t.Fatalf("pulse init --json printed %s (%v)", out, err)
	}
	return res.AdminToken
}

// bucketStore opens, in the test process, the store a hub under test uses (a store URL on the shared
// MinIO), to count or tamper with objects directly.
func bucketStore(t testing.TB, storeURL string) store.Store {
	t.Helper()
	u, err := url.Parse(strings.TrimPrefix(storeURL, "unconditional+"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s3.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Creds = credentials.NewStaticV4(s3server.AccessKey, s3server.SecretKey, "")
	s, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// operator is the generated API client for a hub under test, sending token as the bearer.
func operator(t testing.TB, h *hubProc, token string) *client.Client {
	t.Helper()
	c, err := client.NewClient(h.url, client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// op calls an operation of the operator API through the generated client, named by its method and
// path as the tests and benchmarks write them, sends in as the JSON body (a generated request type,
// or a map for a body the types would not allow) and decodes the answer into out; it returns the
// status code.
func op(t testing.TB, h *hubProc, token, method, path string, in, out any) int {
	t.Helper()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	resp, err := operation(context.Background(), operator(t, h, token), method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(b, out)
	}
	if resp.StatusCode >= 300 && out == nil {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// operations are the operator API calls op knows, by method and path pattern ("{}" is one path
// segment, handed to call in order).
var operations = []struct {
	method, pattern string
	call            func(ctx context.Context, c *client.Client, args []string, body io.Reader) (*http.Response, error)
}{
	{"GET", "/v1/agents", func(ctx context.Context, c *client.Client, _ []string, _ io.Reader) (*http.Response, error) {
		return c.ListAgents(ctx, nil)
	}},
	{"GET", "/v1/agents/{}/resources", func(ctx context.Context, c *client.Client, args []string, _ io.Reader) (*http.Response, error) {
		return c.GetAgentResources(ctx, args[0])
	}},
	{"GET", "/v1/resources", func(ctx context.Context, c *client.Client, _ []string, _ io.Reader) (*http.Response, error) {
		return c.ListResources(ctx, nil)
	}},
	{"GET", "/v1/agents/{}/rejections", func(ctx context.Context, c *client.Client, args []string, _ io.Reader) (*http.Response, error) {
		return c.ListAgentRejections(ctx, args[0])
	}},
	{"PUT", "/v1/alert-rules", func(ctx context.Context, c *client.Client, _ []string, body io.Reader) (*http.Response, error) {
		return c.ApplyAlertRulesWithBody(ctx, jsonType, body)
	}},
	{"GET", "/v1/alerts", func(ctx context.Context, c *client.Client, _ []string, _ io.Reader) (*http.Response, error) {
		return c.ListAlerts(ctx, nil)
	}},
	{"PUT", "/v1/channels/{}", func(ctx context.Context, c *client.Client, args []string, body io.Reader) (*http.Response, error) {
		return c.SetChannelWithBody(ctx, args[0], jsonType, body)
	}},
	{"GET", "/v1/channels", func(ctx context.Context, c *client.Client, _ []string, _ io.Reader) (*http.Response, error) {
		return c.ListChannels(ctx)
	}},
	{"POST", "/v1/channels/{}/test", func(ctx context.Context, c *client.Client, args []string, _ io.Reader) (*http.Response, error) {
		return c.TestChannel(ctx, args[0])
	}},
	{"GET", "/v1/notifications", func(ctx context.Context, c *client.Client, _ []string, _ io.Reader) (*http.Response, error) {
		return c.ListNotifications(ctx, nil)
	}},
	{"POST", "/v1/enroll-tokens", func(ctx context.Context, c *client.Client, _ []string, body io.Reader) (*http.Response, error) {
		return c.CreateEnrollTokenWithBody(ctx, jsonType, body)
	}},
	{"POST", "/v1/commands", func(ctx context.Context, c *client.Client, _ []string, body io.Reader) (*http.Response, error) {
		return c.CreateCommandWithBody(ctx, jsonType, body)
	}},
	{"GET", "/v1/commands/{}", func(ctx context.Context, c *client.Client, args []string, _ io.Reader) (*http.Response, error) {
		return c.GetCommand(ctx, args[0], nil)
	}},
	{"GET", "/v1/integrity", func(ctx context.Context, c *client.Client, _ []string, _ io.Reader) (*http.Response, error) {
		scan := true
		return c.GetIntegrity(ctx, &client.GetIntegrityParams{Scan: &scan})
	}},
	{"GET", "/v1/audit", func(ctx context.Context, c *client.Client, _ []string, _ io.Reader) (*http.Response, error) {
		return c.GetAudit(ctx, nil)
	}},
	{"PUT", "/v1/workflows/{}", func(ctx context.Context, c *client.Client, args []string, body io.Reader) (*http.Response, error) {
		return c.ApplyWorkflowWithBody(ctx, args[0], jsonType, body)
	}},
	{"POST", "/v1/executions", func(ctx context.Context, c *client.Client, _ []string, body io.Reader) (*http.Response, error) {
		return c.StartExecutionWithBody(ctx, jsonType, body)
	}},
	{"GET", "/v1/executions", func(ctx context.Context, c *client.Client, _ []string, _ io.Reader) (*http.Response, error) {
		return c.ListExecutions(ctx, nil)
	}},
	{"GET", "/v1/executions/{}", func(ctx context.Context, c *client.Client, args []string, _ io.Reader) (*http.Response, error) {
		return c.GetExecution(ctx, args[0])
	}},
	{"POST", "/v1/executions/{}/respond", func(ctx context.Context, c *client.Client, args []string, body io.Reader) (*http.Response, error) {
		return c.RespondPromptWithBody(ctx, args[0], jsonType, body)
	}},
	{"PUT", "/v1/plans/{}", func(ctx context.Context, c *client.Client, args []string, body io.Reader) (*http.Response, error) {
		return c.ApplyPlanWithBody(ctx, args[0], jsonType, body)
	}},
	{"GET", "/v1/plans/{}/status", func(ctx context.Context, c *client.Client, args []string, _ io.Reader) (*http.Response, error) {
		return c.GetPlanStatus(ctx, args[0])
	}},
}

const jsonType = "application/json"

// operation finds the generated call for method and path and makes it.
func operation(ctx context.Context, c *client.Client, method, path string, body []byte) (*http.Response, error) {
	for _, o := range operations {
		if args, ok := match(o.pattern, path); ok && o.method == method {
			return o.call(ctx, c, args, bytes.NewReader(body))
		}
	}
	return nil, fmt.Errorf("op: %s %s is not an operation op knows; add it to operations", method, path)
}

// match reports whether path fits pattern and returns the segments that stand for its "{}"s.
func match(pattern, path string) ([]string, bool) {
	pat, segs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(pat) != len(segs) {
		return nil, false
	}
	var args []string
	for i, p := range pat {
		switch {
		case p == "{}":
			args = append(args, segs[i])
		case p != segs[i]:
			return nil, false
		}
	}
	return args, true
}

type commandStatus struct {
	ID     string         `json:"id"`
	Done   bool           `json:"done"`
	Counts map[string]int `json:"counts"`
	Agents []struct {
		Agent  string `json:"agent"`
		State  string `json:"state"`
		Reason string `json:"reason"`
	} `json:"agents"`
	Detail string `json:"detail"`
}

func (c commandStatus) states() map[string]string {
	m := map[string]string{}
	for _, a := range c.Agents {
		m[a.Agent] = a.State
	}
	return m
}

// serveLoop answers every command the agent receives with fn until ctx ends.
func serveLoop(ctx context.Context, t *testing.T, a *simagent.Agent, fn func(w simagent.Work) (wire.Status, []byte)) {
	var ack []string
	for ctx.Err() == nil {
		works, _, err := a.Poll(ctx, ack)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("agent %s poll: %v", a.Name, err)
			}
			return
		}
		ack = nil
		for _, w := range works {
			ack = append(ack, w.InboxKey)
			if w.Envelope.Kind != wire.KindCommand {
				continue
			}
			st, out := fn(w)
			if err := a.Complete(ctx, w, st, 0, out); err != nil && ctx.Err() == nil {
				t.Errorf("agent %s complete: %v", a.Name, err)
			}
		}
	}
}

func waitDone(t *testing.T, h *hubProc, token, id string) commandStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st commandStatus
		if code := op(t, h, token, "GET", "/v1/commands/"+id, nil, &st); code != 200 {
			t.Fatalf("get command: %d %s", code, st.Detail)
		}
		if st.Done {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s not done: %+v", id, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProtocolWithSimulatedAgents drives the hub through the real agent protocol against MinIO:
// enrollment with a limited token, signed polls, commands with validation, selectors, waves, output and
// results, and refusal of unsigned or misdirected requests.
func TestProtocolWithSimulatedAgents(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "2s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var tok struct {
		Token string `json:"token"`
	}
	if code := op(t, h, token, "POST", "/v1/enroll-tokens", client.EnrollTokenInputBody{Uses: 3, Labels: map[string]string{"env": "prod"}}, &tok); code != 201 {
		t.Fatalf("create enroll token: %d", code)
	}
	var agents []*simagent.Agent
	for i := range 3 {
		a, err := simagent.Enroll(ctx, h.url, tok.Token, fmt.Sprintf("web-%d", i), nil)
		if err != nil {
			t.Fatalf("enroll %d: %v", i, err)
		}
		if a.Labels["env"] != "prod" {
			t.Fatalf("agent labels %v", a.Labels)
		}
		agents = append(agents, a)
	}
	var herr *simagent.HTTPError
	if _, err := simagent.Enroll(ctx, h.url, tok.Token, "web-extra", nil); !errors.As(err, &herr) || herr.Status != 403 || !strings.Contains(herr.Body, "used up") {
		t.Fatalf("fourth enrollment: %v, want 403 used up", err)
	}
	// A second token with other labels, for the selector.
	op(t, h, token, "POST", "/v1/enroll-tokens", client.EnrollTokenInputBody{Labels: map[string]string{"env": "staging"}}, &tok)
	staging, err := simagent.Enroll(ctx, h.url, tok.Token, "db-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	agents = append(agents, staging)
	for _, a := range agents {
		if err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var list struct {
		Agents []struct {
			ID     string `json:"id"`
			Online bool   `json:"online"`
		} `json:"agents"`
	}
	op(t, h, token, "GET", "/v1/agents", nil, &list)
	if len(list.Agents) != 4 || !list.Agents[0].Online {
		t.Fatalf("agents: %+v", list.Agents)
	}

	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() {
			serveLoop(ctx, t, a, func(w simagent.Work) (wire.Status, []byte) {
				return wire.StatusSucceeded, []byte(a.Name + ": " + w.Command.Name + " " + w.Command.Params["text"] + "\n")
			})
		})
	}

	// All four, then only the staging one by selector.
	var st commandStatus
	if code := op(t, h, token, "POST", "/v1/commands", client.CreateCommandBody{Command: "host_uptime", Targets: []string{"all"}}, &st); code != 202 {
		t.Fatalf("create command: %d %s", code, st.Detail)
	}
	if done := waitDone(t, h, token, st.ID); done.Counts["succeeded"] != 4 {
		t.Fatalf("all: %+v", done.Counts)
	}
	op(t, h, token, "POST", "/v1/commands", client.CreateCommandBody{Command: "echo", Params: map[string]string{"text": "hi"}, Targets: []string{"env=staging"}}, &st)
	done := waitDone(t, h, token, st.ID)
	if len(done.Agents) != 1 || done.Agents[0].Agent != staging.ID || done.Agents[0].State != "succeeded" {
		t.Fatalf("selector env=staging reached %+v", done.Agents)
	}
	r, err := operator(t, h, token).GetCommandOutput(ctx, st.ID, "db-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(out) != "db-0: echo hi\n" || r.Header.Get("X-Pulse-Complete") != "true" {
		t.Fatalf("output %q complete=%s", out, r.Header.Get("X-Pulse-Complete"))
	}

	// Refused before anything is enqueued.
	for _, c := range []struct {
		body client.CreateCommandBody
		want string
	}{
		{client.CreateCommandBody{Command: "rm_rf", Targets: []string{"all"}}, `no command "rm_rf"`},
		{client.CreateCommandBody{Command: "echo", Params: map[string]string{"text": "HI; reboot"}, Targets: []string{"all"}}, "does not match"},
		{client.CreateCommandBody{Command: "echo", Params: map[string]string{"user": "root"}, Targets: []string{"all"}}, `no parameter "user"`},
		{client.CreateCommandBody{Command: "host_uptime", Targets: []string{"env=nowhere"}}, "matches no agent"},
	} {
		var p struct {
			Detail string `json:"detail"`
		}
		if code := op(t, h, token, "POST", "/v1/commands", c.body, &p); code != 422 || !strings.Contains(p.Detail, c.want) {
			t.Errorf("%v: %d %q, want 422 containing %q", c.body, code, p.Detail, c.want)
		}
	}

	// Waves: with maxConcurrency 1 the hub never has two agents in flight at once.
	op(t, h, token, "POST", "/v1/commands", client.CreateCommandBody{Command: "host_uptime", Targets: []string{"env=prod"}, MaxConcurrency: 1}, &st)
	if inflight := countInflight(st); inflight > 1 {
		t.Fatalf("first wave released %d agents", inflight)
	}
	if done := waitDone(t, h, token, st.ID); done.Counts["succeeded"] != 3 {
		t.Fatalf("waves: %+v", done.Counts)
	}

	// Requests the hub must refuse: unsigned, and signed by one agent for another.
	a0, a1 := agents[0], agents[1]
	unsigned, _ := client.NewClient(h.url)
	if r, err = unsigned.AgentHeartbeatWithBody(ctx, a0.ID, jsonType, strings.NewReader(`{}`)); err != nil {
		t.Fatal(err)
	}
	if r.StatusCode != 401 {
		t.Errorf("unsigned heartbeat: %d", r.StatusCode)
	}
	r.Body.Close()
	err = a1.Signed(ctx, "POST", "/v1/agents/"+a0.ID+"/heartbeat", wire.Heartbeat{}, nil)
	if !errors.As(err, &herr) || herr.Status != 403 {
		t.Errorf("heartbeat for another agent: %v, want 403", err)
	}
	cancel()
	wg.Wait()
}

func countInflight(st commandStatus) int {
	n := 0
	for _, a := range st.Agents {
		if a.State != "pending" {
			n++
		}
	}
	return n
}

// TestSecondHubWakesPoll: an agent's poll held by one hub instance receives work enqueued through
// another instance on the same bucket (the bell feed), within the same held poll.
func TestSecondHubWakesPoll(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	hubA := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "25s")
	hubB := startHub(t, dir, s3server.Env(), "--store", storeURL)
	ctx := context.Background()
	var tok struct {
		Token string `json:"token"`
	}
	op(t, hubB, token, "POST", "/v1/enroll-tokens", client.EnrollTokenInputBody{}, &tok)
	a, err := simagent.Enroll(ctx, hubA.url, tok.Token, "edge-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	type polled struct {
		works []simagent.Work
		took  time.Duration
		err   error
	}
	got := make(chan polled, 1)
	go func() {
		start := time.Now()
		w, _, err := a.Poll(ctx, nil)
		got <- polled{w, time.Since(start), err}
	}()
	time.Sleep(500 * time.Millisecond) // let the poll settle into its hold on hub A
	var st commandStatus
	if code := op(t, hubB, token, "POST", "/v1/commands", client.CreateCommandBody{Command: "host_uptime", Targets: []string{"edge-0"}}, &st); code != 202 {
		t.Fatalf("create on hub B: %d", code)
	}
	p := <-got
	if p.err != nil || len(p.works) != 1 || p.works[0].Command.CommandID != st.ID {
		t.Fatalf("poll on hub A returned %+v after %s (err %v); want the command sent through hub B within the same hold", p.works, p.took, p.err)
	}
	t.Logf("poll on hub A woke %s after the command was sent to hub B", p.took-500*time.Millisecond)
}

// TestLongHoldKeepsConnectionUsable: a poll held longer than huma's 5s body-read deadline must not
// poison the keep-alive connection for the requests that follow it (they came back 499 before the fix).
func TestLongHoldKeepsConnectionUsable(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "6s")
	ctx := context.Background()
	var tok struct {
		Token string `json:"token"`
	}
	op(t, h, token, "POST", "/v1/enroll-tokens", client.EnrollTokenInputBody{}, &tok)
	a, err := simagent.Enroll(ctx, h.url, tok.Token, "holder", nil)
	if err != nil {
		t.Fatal(err)
	}
	if works, _, err := a.Poll(ctx, nil); err != nil || len(works) != 0 {
		t.Fatalf("held poll: %v %v", works, err)
	}
	for i := range 3 {
		if err := a.Heartbeat(ctx); err != nil {
			t.Fatalf("request %d after a long hold: %v", i, err)
		}
	}
}
