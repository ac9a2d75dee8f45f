package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/integration-tests/funcurl"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// buildLambda builds the function binary (functions/cmd/pulse-lambda) as it is deployed: with the
// lambda.norpc tag, as bootstrap.
func buildLambda(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, "./functions/cmd/pulse-lambda")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pulse-lambda: %v\n%s", err, out)
	}
	return bin
}

// TestFunctionMode: the hub as cloud functions, with no AWS. The real function binary runs as
// processes behind an emulated Lambda Runtime API and function URL (funcurl: one process per
// concurrent invocation, as Lambda runs one instance per concurrent request; responses streamed),
// on MinIO. Real pulse-agent processes enroll, poll (each poll a function invocation reading its
// agent's doorbell), run a command and upload its output through the function, and the CLI follows
// the command's event stream live through it; the periodic tick is its own function, invoked as a
// schedule does, and it alone drives a workflow through its wait step to the end. A forward-auth
// header is refused.
func TestFunctionMode(t *testing.T) {
	if s3server.Unconditional() {
		t.Skip("function mode refuses a store without conditional writes (its doorbells need If-Match; lambdahub's TestNewRefusesAStoreWithoutConditionalWrites); docs/garage.md")
	}
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	key, err := os.ReadFile(filepath.Join(dir, "pulse-hub.key"))
	if err != nil {
		t.Fatal(err)
	}
	bin := buildLambda(t)
	env := append(s3server.Env(), "PULSE_STORE="+storeURL, "PULSE_SIGNING_KEY="+string(key), "PULSE_POLL_EVERY=1s", "PULSE_LOG_LEVEL=debug")
	api := funcurl.Start(t, bin, funcurl.Options{Name: "pulse-api", Env: env, URL: true, Timeout: 2 * time.Minute})
	tick := funcurl.Start(t, bin, funcurl.Options{Name: "pulse-tick", Env: append(env, "PULSE_FUNCTION=tick", "PULSE_TICK_FOR=3s"), MaxInstances: 1})
	t.Setenv("SSL_CERT_FILE", api.CAFile) // the agents and the CLI trust the function URL's certificate

	// The schedule: EventBridge Scheduler fires the tick function once a minute and each invocation
	// ticks for just under a minute; here each ticks for 3 s and the next is fired when it returns.
	// Holding schedule stops the schedule once the invocation under way has returned.
	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan error, 1)
	var schedule sync.Mutex
	go func() {
		defer close(ticks)
		ev := []byte(`{"version":"0","id":"e2e","detail-type":"Scheduled Event","source":"aws.scheduler","time":"` + time.Now().UTC().Format(time.RFC3339) + `","detail":{}}`)
		for ctx.Err() == nil {
			schedule.Lock()
			out, err := tick.Invoke(ctx, ev)
			schedule.Unlock()
			var rep struct {
				Ticks int `json:"ticks"`
			}
			if err == nil && (json.Unmarshal(out, &rep) != nil || rep.Ticks < 2) {
				err = fmt.Errorf("tick invocation answered %s", out)
			}
			if err != nil && ctx.Err() == nil {
				ticks <- err
				return
			}
		}
	}()
	defer func() {
		cancel()
		for range ticks {
		}
	}()

	tokOut, tokErr, code := pulseCLI(t, api.URL, admin, "enroll-token", "create", "--uses", "3", "--labels", "env=fn")
	if code != 0 {
		t.Fatalf("enroll-token create through the function: %d %s", code, tokErr)
	}
	var agents []*agentProc
	for i := range 3 {
		agents = append(agents, startAgent(t, api.URL, filepath.Join(dir, fmt.Sprintf("agent-%d", i)), agentConfig, "--enroll-token", strings.TrimSpace(tokOut)))
	}
	for _, a := range agents {
		a.id()
	}
	waitFor(t, "three agents online through the function", 60*time.Second, func() bool {
		n := 0
		for _, a := range listAgents(t, api.URL, admin).Agents {
			if a.Online {
				n++
			}
		}
		return n == 3
	})

	t.Run("a command runs on every agent and its output comes back", func(t *testing.T) {
		st, errOut, code := runJSON(t, api.URL, admin, "count_to", "--target", "env=fn", "--param", "n=20000", "--wait")
		if code != 0 || st.Counts["succeeded"] != 3 {
			t.Fatalf("pulse run --wait through the function: exit %d %s: %+v", code, errOut, st)
		}
		out, errOut, code := pulseCLI(t, api.URL, admin, "output", st.ID, "--agent", st.Agents[0].Agent)
		want := seq(20000)
		if code != 0 || out != want {
			t.Fatalf("pulse output: exit %d %s; %d bytes, want %d", code, errOut, len(out), len(want))
		}
	})

	client := tlsClient(t, api.CAFile)
	t.Run("a command's event stream arrives while the command runs", func(t *testing.T) {
		st, errOut, code := runJSON(t, api.URL, admin, "nap", "--target", "env=fn", "--param", "seconds=3")
		if code != 0 || st.ID == "" {
			t.Fatalf("pulse run nap: exit %d %s", code, errOut)
		}
		req, _ := http.NewRequest("GET", api.URL+"/v1/commands/"+st.ID+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("events: %v %v", err, resp)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		start := time.Now()
		var firstEvent, running time.Duration
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "event:") && firstEvent == 0 {
				firstEvent = time.Since(start)
			}
			if strings.HasPrefix(line, "data:") && strings.Contains(line, `"running"`) && running == 0 {
				running = time.Since(start)
			}
			if strings.HasPrefix(line, "data:") && strings.Contains(line, `"succeeded"`) {
				break
			}
		}
		total := time.Since(start)
		// The nap lasts 3 s: an event seen as "running" before the stream's end shows it streamed
		// rather than arriving in one piece when the invocation ended.
		if running == 0 || total-running < time.Second {
			t.Fatalf("events not streamed: running seen at %s, the command's end at %s", running, total)
		}
		t.Logf("first event after %s, running after %s, succeeded after %s", firstEvent, running, total)
	})

	t.Run("a workflow's wait step is driven to the end by the tick function alone", func(t *testing.T) {
		h := &hubProc{t: t, url: api.URL}
		applyWorkflow(t, h, admin, dir, "fn.yaml", "name: fn\nsteps:\n  - {name: first, type: execute, targets: [env=fn], command: host_uptime}\n  - {name: pause, type: wait, duration: 4s}\n  - {name: second, type: execute, targets: [env=fn], command: host_uptime}\n")
		// Without the schedule the execution goes as far as the agents' results take it, and stops
		// at the wait step: nothing else in function mode can end a timer.
		schedule.Lock()
		id := runWorkflow(t, h, admin, "fn")
		var v executionView
		waitFor(t, "the wait step to begin", 30*time.Second, func() bool {
			v = executionView{}
			getJSON(t, client, api.URL+"/v1/executions/"+id, admin, &v)
			return v.State.Steps["first"].Status == "succeeded" && v.State.Steps["pause"].Status != ""
		})
		time.Sleep(6 * time.Second) // the 4 s wait is over by now
		getJSON(t, client, api.URL+"/v1/executions/"+id, admin, &v)
		if v.State.Steps["pause"].Status == "succeeded" || v.State.Status != "running" {
			schedule.Unlock()
			t.Fatalf("with no tick the wait step ended anyway: %+v", v.State)
		}
		schedule.Unlock()
		waitFor(t, "the execution to end", 90*time.Second, func() bool {
			v = executionView{}
			getJSON(t, client, api.URL+"/v1/executions/"+id, admin, &v)
			return v.State.Status == "succeeded" || v.State.Status == "failed"
		})
		if v.State.Status != "succeeded" || v.State.Steps["pause"].Status != "succeeded" || v.State.Steps["second"].Status != "succeeded" {
			t.Fatalf("execution: %+v", v.State)
		}
	})

	t.Run("forward-auth headers are refused", func(t *testing.T) {
		req, _ := http.NewRequest("GET", api.URL+"/v1/agents", nil)
		req.Header.Set("Remote-User", "mallory")
		req.Header.Set("Remote-Groups", "admins")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(p.Detail, "Remote-User") {
			t.Fatalf("forward auth through the function: %d %s %+v", resp.StatusCode, resp.Header.Get("Content-Type"), p)
		}
	})

	select {
	case err := <-ticks:
		if err != nil {
			t.Fatalf("the tick function: %v", err)
		}
	default:
	}
	t.Logf("api function: %d invocations on %d instances; tick function: %d invocations", api.Invocations.Load(), api.Instances(), tick.Invocations.Load())
}

// seq is what /usr/bin/seq 1 n prints.
func seq(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

// tlsClient trusts the certificate in caFile only.
func tlsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// getJSON GETs url with the token and decodes the answer into out.
func getJSON(t *testing.T, c *http.Client, url, token string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
