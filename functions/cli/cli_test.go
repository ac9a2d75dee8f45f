package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/cli"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store/local"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// startHub serves a fresh in-process hub on a local store over httptest and returns its URL and an
// admin token. It is the one place these tests build a Hub, so a change in how hubs are constructed
// is made here alone.
func startHub(t *testing.T) (url, admin string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := local.New(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := hubkey.Create(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(ctx, hub.Config{Store: st, Keys: keys, Log: log, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	mux := http.NewServeMux()
	hub.NewAPI(mux, h)
	srv := httptest.NewServer(hub.Handler(mux, log))
	t.Cleanup(srv.Close)
	admin, err = hub.CreateAPIToken(ctx, h.Store, "admin", []string{"admin"}, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, admin
}

// result is what one run of the command line left behind.
type result struct {
	code           int
	stdout, stderr string
}

// pulse runs the command line in-process, as the binary would with args.
func pulse(args ...string) result {
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), args, &cli.Env{Stdout: &out, Stderr: &errOut})
	return result{code, out.String(), errOut.String()}
}

// oneLine fails unless s is exactly one line.
func oneLine(t *testing.T, what, s string) {
	t.Helper()
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("%s: want exactly one line, got %q", what, s)
	}
}

// jsonKeys returns the sorted top-level keys of a JSON object.
func jsonKeys(t *testing.T, s string) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// useHub points PULSE_HUB and PULSE_TOKEN at a hub, as an operator's shell would.
func useHub(t *testing.T, url, token string) {
	t.Setenv("PULSE_HUB", url)
	t.Setenv("PULSE_TOKEN", token)
}

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	useHub(t, "http://127.0.0.1:1", "") // no token anywhere, and nothing listening
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `pulse: unknown command "frobnicate"`},
		{[]string{"agents", "--bogus"}, "pulse agents: flag provided but not defined: -bogus"},
		{[]string{"agents", "stray"}, `pulse agents: unexpected argument "stray"`},
		{[]string{"agents"}, "pulse agents: no operator token: pass --token or set PULSE_TOKEN"},
		{[]string{"run", "echo", "--token", "x"}, "pulse run: --target is required"},
		{[]string{"token"}, "pulse token: want `pulse token create|list|revoke`"},
		{[]string{"token", "create", "--groups", "admin", "--token", "x"}, "pulse token: --name and --groups are required"},
		{[]string{"token", "revoke", "--token", "x"}, "pulse token: want `pulse token revoke ID`"},
		{[]string{"enroll-token", "create", "--labels", "nokey", "--token", "x"}, `pulse enroll-token: --labels "nokey": want key=value`},
		{[]string{"token", "create", "--name", "n", "--groups", "viewer", "--ttl", "500ms", "--token", "x"}, "pulse token: --ttl 500ms: at least 1s"},
		{[]string{"token", "create", "--name", "n", "--groups", "viewer", "--ttl", "-1h", "--token", "x"}, "pulse token: --ttl -1h0m0s: at least 1s"},
		{[]string{"token", "create", "--name", "n", "--groups", "viewer", "--ttl", "8761h", "--token", "x"}, "pulse token: --ttl 8761h0m0s: at most 8760h0m0s"},
		{[]string{"enroll-token", "create", "--ttl", "0s", "--token", "x"}, "pulse enroll-token: --ttl 0s: at least 1s"},
		{[]string{"enroll-token", "create", "--ttl", "-5m", "--token", "x"}, "pulse enroll-token: --ttl -5m0s: at least 1s"},
		{[]string{"enroll-token", "create", "--ttl", "721h", "--token", "x"}, "pulse enroll-token: --ttl 721h0m0s: at most 720h0m0s"},
		{[]string{"workflow", "apply", "--token", "x"}, "pulse workflow: -f FILE is required"},
		{[]string{"workflow", "apply", "-f", "/nonexistent/wf.yaml", "--token", "x"}, "pulse workflow: open /nonexistent/wf.yaml"},
		{[]string{"workflow", "teleport"}, "pulse workflow: unknown `pulse workflow teleport`"},
		{[]string{"respond", "E1", "--token", "x"}, "pulse respond: want `pulse respond ID --step S OPTION`"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := pulse(c.args...)
			if r.code != cli.ExitUsage {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, cli.ExitUsage, r.stderr)
			}
			oneLine(t, "stderr", r.stderr)
			if !strings.HasPrefix(r.stderr, c.want) {
				t.Errorf("stderr %q, want it to start with %q", r.stderr, c.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Usage: pulse COMMAND [flags]", "  workflow      apply, list, show, delete, run and watch workflows"}},
		{[]string{"help", "agents"}, []string{"Usage: pulse agents [--selector S] [--json]", "-selector", "-hub", "-token"}},
		{[]string{"token", "create", "--help"}, []string{"Usage: pulse token create --name N --groups g1,g2 [--for PERSON] [--ttl D] [--json]", "-groups"}},
		{[]string{"enroll-token", "--help"}, []string{"Usage: pulse enroll-token create"}},
		{[]string{"workflow", "apply", "-h"}, []string{"Usage: pulse workflow apply -f FILE [--name NAME] [--json]", "default: the definition's name, else the file name"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := pulse(c.args...)
			if r.code != cli.ExitOK || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

// TestOperatorCommands drives the client commands against a real hub: what they print, their --json
// shape, and problems from the hub as one line.
func TestOperatorCommands(t *testing.T) {
	url, admin := startHub(t)
	useHub(t, url, admin)
	dir := t.TempDir()

	t.Run("agents on an empty fleet", func(t *testing.T) {
		r := pulse("agents", "--json")
		if r.code != 0 || r.stdout != "{\n  \"agents\": []\n}\n" {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		r = pulse("agents")
		if r.code != 0 || r.stdout != "ID  NAME  STATE  LAST SEEN  VERSION  LABELS  DISABLED\n" || !strings.Contains(r.stderr, "no agents yet") {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("enroll-token create --json", func(t *testing.T) {
		r := pulse("enroll-token", "create", "--labels", "env=prod,role=web", "--uses", "2", "--ttl", "1h", "--json")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		if keys := jsonKeys(t, r.stdout); !slices.Equal(keys, []string{"expiresAt", "id", "labels", "token", "uses"}) {
			t.Errorf("keys %v", keys)
		}
		var out struct {
			Token  string
			Uses   int
			Labels map[string]string
		}
		json.Unmarshal([]byte(r.stdout), &out)
		if !strings.HasPrefix(out.Token, "pet_") || out.Uses != 2 || out.Labels["env"] != "prod" || out.Labels["role"] != "web" {
			t.Errorf("%+v", out)
		}
		// Without --json: the token alone on stdout, how to use it on stderr.
		r = pulse("enroll-token", "create")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "pet_") || strings.Count(r.stdout, "\n") != 1 ||
			!strings.Contains(r.stderr, "pulse-agent run --hub "+url+" --enroll-token "+strings.TrimSpace(r.stdout)) {
			t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("token create, list, revoke", func(t *testing.T) {
		r := pulse("token", "create", "--name", "ci", "--groups", "operator,viewer", "--json")
		if r.code != 0 {
			t.Fatalf("create: exit %d stderr %q", r.code, r.stderr)
		}
		if keys := jsonKeys(t, r.stdout); !slices.Equal(keys, []string{"createdAt", "createdBy", "groups", "id", "name", "owner", "revoked", "token"}) {
			t.Errorf("create keys %v", keys)
		}
		var made struct{ ID, Token string }
		json.Unmarshal([]byte(r.stdout), &made)

		r = pulse("token", "list", "--json")
		if r.code != 0 || !strings.Contains(r.stdout, `"id": "`+made.ID+`"`) || strings.Contains(r.stdout, made.Token) {
			t.Fatalf("list: exit %d stdout %s", r.code, r.stdout)
		}
		if keys := jsonKeys(t, r.stdout); !slices.Equal(keys, []string{"tokens"}) {
			t.Errorf("list keys %v", keys)
		}
		r = pulse("token", "list")
		if r.code != 0 || !regexp.MustCompile(`(?m)^`+made.ID+`\s+ci\s+operator,viewer\s+\S+\s+never\s+active$`).MatchString(r.stdout) {
			t.Errorf("list table:\n%s", r.stdout)
		}

		// The new token works until it is revoked.
		if r := pulse("agents", "--token", made.Token); r.code != 0 {
			t.Fatalf("new token refused: %q", r.stderr)
		}
		r = pulse("token", "revoke", made.ID)
		if r.code != 0 || r.stderr != "token "+made.ID+" revoked\n" || r.stdout != "" {
			t.Fatalf("revoke: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		r = pulse("token", "list")
		if !regexp.MustCompile(`(?m)^` + made.ID + `\s+ci\s.*\srevoked$`).MatchString(r.stdout) {
			t.Errorf("list after revoke:\n%s", r.stdout)
		}
		r = pulse("agents", "--token", made.Token)
		if r.code != cli.ExitError || !strings.HasPrefix(r.stderr, "pulse agents: ") || !strings.HasSuffix(r.stderr, "(HTTP 401)\n") {
			t.Errorf("revoked token: exit %d stderr %q", r.code, r.stderr)
		}
		oneLine(t, "revoked token", r.stderr)
	})

	t.Run("workflow apply then list", func(t *testing.T) {
		p := filepath.Join(dir, "ask.yaml")
		os.WriteFile(p, []byte("description: asks once\nsteps:\n  - name: ask\n    type: prompt\n    message: Go?\n    options: [\"Yes\", \"No\"]\n"), 0o600)
		r := pulse("workflow", "apply", "-f", p)
		if r.code != 0 || r.stdout != "workflow ask version 1 applied\n" {
			t.Fatalf("apply: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		r = pulse("workflow", "apply", "-f", p, "--json")
		if r.code != 0 {
			t.Fatalf("apply again: exit %d stderr %q", r.code, r.stderr)
		}
		if keys := jsonKeys(t, r.stdout); !slices.Equal(keys, []string{"appliedAt", "appliedBy", "appliedByPrincipal", "definition", "name", "source", "version"}) {
			t.Errorf("apply --json keys %v", keys)
		}
		r = pulse("workflow", "list")
		if r.code != 0 || !regexp.MustCompile(`(?m)^NAME\s+VERSION\s+STEPS\s+SCHEDULE\s+APPLIED\s+BY\s+DESCRIPTION\nask\s+2\s+1\s+\S+\s+admin\s+asks once$`).MatchString(r.stdout) {
			t.Errorf("list: exit %d\n%s", r.code, r.stdout)
		}
		r = pulse("workflow", "list", "--json")
		var list struct {
			Workflows []map[string]any `json:"workflows"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Workflows) != 1 || list.Workflows[0]["name"] != "ask" {
			t.Errorf("list --json: %v %s", err, r.stdout)
		}
		r = pulse("workflow", "show", "ask")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "description: asks once\n") || !strings.HasPrefix(r.stderr, "# workflow ask version 2, applied by admin at ") {
			t.Errorf("show: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("run --wait, command, output with one agent", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tok := strings.TrimSpace(pulse("enroll-token", "create").stdout)
		a, err := simagent.Enroll(ctx, url, tok, "web-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		defer func() { cancel(); <-done }()
		go func() {
			defer close(done)
			var ack []string
			for ctx.Err() == nil {
				works, _, err := a.Poll(ctx, ack)
				if err != nil {
					return
				}
				ack = nil
				for _, w := range works {
					ack = append(ack, w.InboxKey)
					if w.Envelope.Kind == wire.KindCommand {
						a.Complete(ctx, w, wire.StatusSucceeded, 0, []byte(a.Name+": "+w.Command.Params["text"]+"\n"))
					}
				}
			}
		}()

		r := pulse("run", "echo", "--target", "web-1", "--param", "text=hi", "--wait")
		if r.code != 0 {
			t.Fatalf("run --wait: exit %d stderr %q", r.code, r.stderr)
		}
		id := regexp.MustCompile(`^command (\S+): echo text=hi on 1 agent\(s\), issued by admin at `).FindStringSubmatch(r.stdout)
		if id == nil || !regexp.MustCompile(`(?m)^`+a.ID+`\s+web-1\s+succeeded\s+0\s+10 B\s*$`).MatchString(r.stdout) ||
			!strings.HasSuffix(r.stdout, "\n--- web-1 ("+a.ID+") ---\nweb-1: hi\n") || !strings.HasSuffix(r.stderr, ": 1 succeeded\n") {
			t.Fatalf("run --wait:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		}
		r = pulse("output", id[1], "--agent", "web-1")
		if r.code != 0 || r.stdout != "web-1: hi\n" || r.stderr != "" {
			t.Errorf("output: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		r = pulse("command", id[1], "--json")
		if keys := jsonKeys(t, r.stdout); r.code != 0 || !slices.Contains(keys, "agents") || slices.Contains(keys, "$schema") {
			t.Errorf("command --json: exit %d keys %v", r.code, keys)
		}
		if !strings.Contains(r.stdout, `"exitCode": 0,`) {
			t.Errorf("command --json lost the exit code 0:\n%s", r.stdout)
		}
		// A failure on any target is the command's failure.
		r = pulse("run", "echo", "--target", "all", "--param", "text=NO", "--wait")
		if r.code != cli.ExitError || !strings.Contains(r.stderr, "does not match") {
			t.Errorf("refused run: exit %d stderr %q", r.code, r.stderr)
		}
	})

	t.Run("a problem from the hub is one line", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"command", "no-such-command"}, "pulse command: "},
			{[]string{"workflow", "show", "nowhere"}, `pulse workflow: no workflow "nowhere" (see pulse workflow list) (HTTP 404)`},
			{[]string{"workflow", "run", "nowhere"}, "pulse workflow: "},
			{[]string{"run", "echo", "--target", "nowhere=at-all"}, "pulse run: "},
			{[]string{"token", "create", "--name", "two words", "--groups", "admin"}, "pulse token: token name: letters, digits, - and _ only (HTTP 422)"},
			{[]string{"enroll-token", "create", "--uses", "-1"}, "pulse enroll-token: validation failed; body.uses: expected number >= 0 (HTTP 422)"},
			{[]string{"agents", "--hub", "http://127.0.0.1:1"}, "pulse agents: cannot reach the hub at http://127.0.0.1:1: "},
		} {
			t.Run(strings.Join(c.args, " "), func(t *testing.T) {
				r := pulse(c.args...)
				if r.code != cli.ExitError {
					t.Errorf("exit %d, want %d", r.code, cli.ExitError)
				}
				oneLine(t, "stderr", r.stderr)
				if !strings.HasPrefix(r.stderr, c.want) {
					t.Errorf("stderr %q, want it to start with %q", r.stderr, c.want)
				}
				if !strings.Contains(c.want, "cannot reach") && !regexp.MustCompile(`\(HTTP 4\d\d\)\n$`).MatchString(r.stderr) {
					t.Errorf("stderr %q does not end with the HTTP status", r.stderr)
				}
			})
		}
	})
}

// TestBrokenAnswers: a hub (or a proxy in front of it) that answers what the API does not document
// still gives one line that says what happened.
func TestBrokenAnswers(t *testing.T) {
	for _, c := range []struct {
		name, contentType, body string
		status                  int
		want                    string
	}{
		{"undecodable", "application/json", `{"agents": [`, 200, "pulse agents: GET /v1/agents?selector=all: decode answer: unexpected end of JSON input\n"},
		{"not JSON", "text/plain", "fine", 200, "pulse agents: GET /v1/agents?selector=all: unexpected answer (HTTP 200) that the API does not document\n"},
		{"proxy error page", "text/html", "<h1>502 Bad Gateway</h1>\n", 502, "pulse agents: <h1>502 Bad Gateway</h1> (HTTP 502)\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", c.contentType)
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			r := pulse("agents", "--hub", srv.URL, "--token", "x", "--selector", "all")
			if r.code != cli.ExitError || r.stderr != c.want {
				t.Errorf("exit %d stderr %q, want %q", r.code, r.stderr, c.want)
			}
		})
	}
}

// TestWorkflowApplyName: a definition is stored under its own name unless --name says otherwise, and
// under its file's name only when it has none, so `workflow run` finds it by the name it declares.
func TestWorkflowApplyName(t *testing.T) {
	url, admin := startHub(t)
	useHub(t, url, admin)
	const steps = "steps:\n  - name: ask\n    type: prompt\n    message: Go?\n    options: [\"Yes\", \"No\"]\n"
	for _, c := range []struct {
		name, file, src string
		flags           []string
		want            string
	}{
		{"the definition's name", "wf.yaml", "name: nightly-update\n" + steps, nil, "nightly-update"},
		{"in JSON", "wf.json", `{"name": "from-json", "steps": [{"name": "ask", "type": "prompt", "message": "Go?", "options": ["Yes", "No"]}]}`, nil, "from-json"},
		{"in JSON indented with tabs", "tabs.json", "{\n\t\"name\": \"tabbed\",\n\t\"steps\": [{\"name\": \"ask\", \"type\": \"prompt\", \"message\": \"Go?\", \"options\": [\"Yes\"]}]\n}\n", nil, "tabbed"},
		{"a name made usable", "x.yaml", "name: Weekly Reboot\n" + steps, nil, "weekly-reboot"},
		{"no name: the file's", "Ask Once.v2.yaml", steps, nil, "ask-once-v2"},
		{"--name wins", "wf.yaml", "name: nightly-update\n" + steps, []string{"--name", "chosen"}, "chosen"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), c.file)
			if err := os.WriteFile(p, []byte(c.src), 0o600); err != nil {
				t.Fatal(err)
			}
			r := pulse(append([]string{"workflow", "apply", "-f", p}, c.flags...)...)
			if r.code != 0 || r.stdout != "workflow "+c.want+" version 1 applied\n" {
				t.Fatalf("apply: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			if r := pulse("workflow", "run", c.want); r.code != 0 {
				t.Errorf("run %s: exit %d stderr %q", c.want, r.code, r.stderr)
			}
		})
	}
}

// TestRunWaitSaysItAwaitsApproval: a command that needs approvals makes `run --wait` say so on
// stderr and keep waiting, instead of printing nothing.
func TestRunWaitSaysItAwaitsApproval(t *testing.T) {
	url, admin := startHub(t)
	useHub(t, url, admin)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tok := strings.TrimSpace(pulse("enroll-token", "create").stdout)
	catalog := []wire.CommandSpec{{Name: "shell_run", Group: "shell", Dangerous: true, Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}}
	if _, err := simagent.Enroll(ctx, url, tok, "box", catalog); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := cli.Main(ctx, []string{"run", "shell_run", "--target", "all", "--param", "script=id", "--wait"}, &cli.Env{Stdout: &out, Stderr: &errOut})
	if code == 0 {
		t.Fatalf("run --wait returned 0 while the command awaits approval: %q", out.String())
	}
	if !strings.Contains(errOut.String(), "awaiting approval: 0 of 2") {
		t.Errorf("stderr %q does not say the command awaits approval", errOut.String())
	}
}

// TestListsAndOneAgent: the command line's side of the lists and the per-agent endpoints, as an
// operator uses them: what awaits my approval, the commands list, one agent, its labels, retiring it,
// and enrollment tokens listed and revoked.
func TestListsAndOneAgent(t *testing.T) {
	url, admin := startHub(t)
	useHub(t, url, admin)
	ctx := context.Background()
	tok := strings.TrimSpace(pulse("enroll-token", "create", "--labels", "env=lab").stdout)
	catalog := []wire.CommandSpec{{Name: "host_uptime", Group: "host"}, {Name: "shell_run", Group: "shell", Dangerous: true, Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}}
	a, err := simagent.Enroll(ctx, url, tok, "box", catalog)
	if err != nil {
		t.Fatal(err)
	}
	// Two people onboarded by the bootstrap admin: alice requests, bob may approve.
	alice := strings.TrimSpace(pulse("token", "create", "--name", "alice", "--groups", "admin", "--for", "alice").stdout)
	bob := strings.TrimSpace(pulse("token", "create", "--name", "bob", "--groups", "admin", "--for", "bob").stdout)
	useHub(t, url, alice)
	var made struct{ ID string }
	json.Unmarshal([]byte(pulse("run", "shell_run", "--target", "all", "--param", "script=id", "--json").stdout), &made)
	if made.ID == "" {
		t.Fatal("shell_run was not created")
	}
	steps := []struct {
		name  string
		token string
		args  []string
		want  []string // regular expressions the output must match
		code  int
	}{
		{"my own command is not mine to approve", alice, []string{"approvals"}, []string{`^nothing awaits your approval\n$`}, 0},
		{"the bootstrap admin, another person, may approve it", admin, []string{"approvals"}, []string{made.ID + `\s+shell_run\s+alice\s+1\s+0 of 2`}, 0},
		{"bob sees it", bob, []string{"approvals"}, []string{`(?m)^ID\s+COMMAND\s+REQUESTED BY\s+TARGETS\s+APPROVALS\s+WHY$`, made.ID + `\s+shell_run\s+alice\s+1\s+0 of 2`}, 0},
		{"the commands list", admin, []string{"commands", "--state", "awaiting_approval"}, []string{made.ID + `\s+\S+\s+awaiting_approval\s+shell_run\s+alice\s+1`}, 0},
		{"a bad state is refused with the reason", admin, []string{"commands", "--state", "sideways"}, nil, 1},
		{"one agent", admin, []string{"agent", "show", a.ID}, []string{`^` + a.ID + `\s+box\s+`, `(?m)^labels\s+env=lab$`}, 0},
		{"new labels", admin, []string{"agent", "labels", a.ID, "env=prod,role=web"}, []string{`labels env=prod,role=web\n$`}, 0},
		{"the selection follows them", admin, []string{"agents", "--selector", "role=web"}, []string{a.ID}, 0},
		{"enrollment tokens", admin, []string{"enroll-token", "list"}, []string{`(?m)^ID\s+CREATED\s+BY\s+USED\s+EXPIRES\s+STATE\s+LABELS$`, `1 of 1\s+\S+\s+used up\s+env=lab`}, 0},
		{"retire", admin, []string{"agent", "retire", a.ID, "--reason", "decommissioned"}, []string{`^retired ` + a.ID + ` \(box\)\n$`}, 0},
		{"retired shows", admin, []string{"agent", "show", a.ID}, []string{`retired \d{4}-`}, 0},
		{"an unknown agent", admin, []string{"agent", "show", "ag-nope"}, nil, 1},
		{"doctor on an untouched bucket", admin, []string{"doctor", "--scan"}, []string{`^scanned \d+ objects\nintegrity: every object read was written by this hub\n$`}, 0},
	}
	for _, s := range steps {
		useHub(t, url, s.token)
		r := pulse(s.args...)
		if r.code != s.code {
			t.Errorf("%s: pulse %s: exit %d, want %d\nstdout %q\nstderr %q", s.name, strings.Join(s.args, " "), r.code, s.code, r.stdout, r.stderr)
			continue
		}
		for _, re := range s.want {
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("%s: pulse %s: stdout lacks /%s/:\n%s", s.name, strings.Join(s.args, " "), re, r.stdout)
			}
		}
		if s.code != 0 {
			oneLine(t, s.name, r.stderr)
		}
	}
	useHub(t, url, admin)
	var list struct {
		Tokens []struct{ ID string } `json:"tokens"`
	}
	json.Unmarshal([]byte(pulse("enroll-token", "list", "--json").stdout), &list)
	if len(list.Tokens) != 1 {
		t.Fatalf("enroll-token list --json: %+v", list)
	}
	if r := pulse("enroll-token", "revoke", list.Tokens[0].ID); r.code != 0 || !strings.Contains(r.stdout, "revoked enrollment token") {
		t.Fatalf("revoke: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := pulse("enroll-token", "list"); !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("list after revoke: %q", r.stdout)
	}
}
