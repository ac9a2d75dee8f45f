package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/cli"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

const cliPlan = "targets: [role=web]\nunits:\n  - name: conf\n    type: file\n    notify: [app]\n    spec: {path: /etc/app.conf, content: \"port=8080\"}\n" +
	"  - name: app\n    type: process\n    requires: [conf]\n    spec: {command: /usr/bin/sleep, args: [\"1000\"]}\n"

// TestPlanCommands drives pulse plan and pulse plans against a real hub: a refused file shows every
// problem as FILE:line:col, an apply says what it did, and status shows every target and unit.
func TestPlanCommands(t *testing.T) {
	url, admin := startHub(t)
	useHub(t, url, admin)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var agents []*simagent.Agent
	for _, name := range []string{"web-1", "web-2"} {
		tok := strings.TrimSpace(pulse("enroll-token", "create", "--labels", "role=web").stdout)
		a, err := simagent.Enroll(ctx, url, tok, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
	}

	t.Run("a refused plan shows each problem at its place", func(t *testing.T) {
		broken := write("broken.yaml", "targets: [role=web]\nunits:\n  - name: a\n    type: file\n    requires: [b]\n    spec: {}\n    color: red\n")
		r := pulse("plan", "apply", "web", "-f", broken)
		want := broken + ":5:16: units[0].requires[0]: no unit named \"b\" in this plan (its units: a)\n" +
			broken + ":7:5: units[0].color: unknown field \"color\" (known: name, type, requires, notify, deadline, spec)\n" +
			"pulse plan: plan web refused: 2 problem(s) in " + broken + " (HTTP 422)\n"
		if r.code != cli.ExitError || r.stderr != want || r.stdout != "" {
			t.Errorf("exit %d\nstdout %q\nstderr %s\nwant\n%s", r.code, r.stdout, r.stderr, want)
		}
		syntax := write("syntax.yaml", "targets: [role=web]\nunits:\n  - name: a\n   type: file\n")
		r = pulse("plan", "apply", "web", "-f", syntax)
		if r.code != cli.ExitError || !strings.HasPrefix(r.stderr, syntax+":4:4: syntax error") {
			t.Errorf("syntax error: exit %d stderr %q", r.code, r.stderr)
		}
		if r := pulse("plans"); r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("refused applies left plans: %q", r.stdout)
		}
	})

	good := write("web.yaml", cliPlan)
	t.Run("apply, again, list, show", func(t *testing.T) {
		r := pulse("plan", "apply", "web", "-f", good)
		if r.code != 0 || r.stdout != "plan web version 1 applied: sent to 2 agent(s)\n" {
			t.Fatalf("apply: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		r = pulse("plan", "apply", "web", "-f", good)
		if r.code != 0 || r.stdout != "plan web unchanged at version 1\n" {
			t.Errorf("apply again: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		r = pulse("plan", "apply", "web", "-f", good, "--json")
		if keys := jsonKeys(t, r.stdout); r.code != 0 || !slices.Equal(keys, []string{"agents", "appliedAt", "appliedBy", "name", "plan", "rules", "source", "targets", "unchanged", "version"}) {
			t.Errorf("apply --json: exit %d keys %v", r.code, keys)
		}
		r = pulse("plans")
		if r.code != 0 || !regexp.MustCompile(`(?m)^NAME\s+VERSION\s+MODE\s+UNITS\s+TARGETS\s+APPLIED\s+BY\nweb\s+1\s+enforce\s+2\s+role=web\s+\S+\s+admin$`).MatchString(r.stdout) {
			t.Errorf("plans: exit %d\n%s", r.code, r.stdout)
		}
		r = pulse("plans", "--json")
		var list struct{ Plans []map[string]any }
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Plans) != 1 || list.Plans[0]["name"] != "web" {
			t.Errorf("plans --json: %v %s", err, r.stdout)
		}
		r = pulse("plan", "show", "web")
		if r.code != 0 || r.stdout != cliPlan || !strings.HasPrefix(r.stderr, "# plan web version 1, applied by admin at ") {
			t.Errorf("show: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("status per agent and unit", func(t *testing.T) {
		works, err := agents[0].Plans(ctx)
		if err != nil || len(works) != 1 {
			t.Fatalf("web-1 fetches its plans: %v %d", err, len(works))
		}
		st := wire.PlanStatus{Plan: "web", Version: 1}
		for _, u := range works[0].Plan.Units {
			us := wire.UnitStatus{Unit: u.Name, Type: u.Type, State: wire.UnitConverged, Desired: u.Digest(), ChangedAt: time.Now().UTC()}
			if u.Name == "app" {
				us.State, us.Reason, us.WaitingOn = wire.UnitPending, "health check not passed yet", "tcp :8080"
			}
			st.Units = append(st.Units, us)
		}
		if err := agents[0].ReportPlan(ctx, st); err != nil {
			t.Fatal(err)
		}
		r := pulse("plan", "status", "web")
		lines := []string{
			`^plan web version 1 \(enforce\): 0 of 2 agent\(s\) converged$`,
			`^AGENT\s+NAME\s+ONLINE\s+VERSION\s+UNIT\s+STATE\s+REASON$`,
			`^` + agents[0].ID + `\s+web-1\s+no\s+1\s+conf\s+converged\s*$`,
			`^\s+app\s+pending\s+health check not passed yet \(waiting on tcp :8080\)$`,
			`^` + agents[1].ID + `\s+web-2\s+no\s+-\s+conf\s+unknown\s+no report yet$`,
			`^\s+app\s+unknown\s+no report yet$`,
		}
		got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if r.code != 0 || len(got) != len(lines) {
			t.Fatalf("status: exit %d stderr %q\n%s", r.code, r.stderr, r.stdout)
		}
		for i, l := range lines {
			// web-1 or web-2 may come first: the hub lists agents by id.
			if !slices.ContainsFunc(got, regexp.MustCompile(l).MatchString) {
				t.Errorf("status lacks a line like %s (line %d):\n%s", l, i, r.stdout)
			}
		}
		r = pulse("plan", "status", "web", "--json")
		if keys := jsonKeys(t, r.stdout); r.code != 0 || !slices.Contains(keys, "agents") || !slices.Contains(keys, "converged") {
			t.Errorf("status --json: exit %d keys %v", r.code, keys)
		}
		r = pulse("plan", "status", "nothing")
		if r.code != cli.ExitError || r.stderr != "pulse plan: no plan \"nothing\" (see pulse plans) (HTTP 404)\n" {
			t.Errorf("status of no plan: exit %d stderr %q", r.code, r.stderr)
		}
	})

	t.Run("delete", func(t *testing.T) {
		r := pulse("plan", "delete", "web")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "plan web deleted (version 2); ") {
			t.Errorf("delete: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		r = pulse("plan", "show", "web")
		if r.code != cli.ExitError || !strings.Contains(r.stderr, "was deleted (version 2)") {
			t.Errorf("show after delete: exit %d stderr %q", r.code, r.stderr)
		}
		if r = pulse("plan", "delete", "web"); r.code != cli.ExitError || !strings.Contains(r.stderr, "HTTP 404") {
			t.Errorf("delete again: exit %d stderr %q", r.code, r.stderr)
		}
	})
}

// TestPlanUsage: mistakes on the command line are one line and exit 2; --help explains what a plan is.
func TestPlanUsage(t *testing.T) {
	useHub(t, "http://127.0.0.1:1", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plan"}, "pulse plan: want `pulse plan apply|status|show|rollout|rollback|delete|proposals|approve|deny NAME`"},
		{[]string{"plan", "teleport"}, "pulse plan: unknown `pulse plan teleport`"},
		{[]string{"plan", "apply", "web", "--token", "x"}, "pulse plan: want `pulse plan apply NAME -f FILE`"},
		{[]string{"plan", "apply", "-f", "web.yaml", "--token", "x"}, "pulse plan: want `pulse plan apply NAME -f FILE`"},
		{[]string{"plan", "apply", "web", "-f", "/nonexistent/web.yaml", "--token", "x"}, "pulse plan: open /nonexistent/web.yaml"},
		{[]string{"plan", "status", "--token", "x"}, "pulse plan: want `pulse plan status NAME`"},
		{[]string{"plan", "show", "web", "stray", "--token", "x"}, `pulse plan: unexpected argument "stray"`},
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
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"plan", "--help"}, []string{"Usage: pulse plan apply|status|show|rollout|rollback|delete|proposals|approve|deny NAME", "requires: [conf]", "mode report only says what differs", "rollout:", "maxFailed"}},
		{[]string{"help", "plan"}, []string{"Usage: pulse plan apply|status|show|rollout|rollback|delete|proposals|approve|deny NAME"}},
		{[]string{"plan", "apply", "--help"}, []string{"Usage: pulse plan apply NAME -f FILE [--json]", "FILE:line:column", "-hub"}},
		{[]string{"plan", "status", "-h"}, []string{"Usage: pulse plan status NAME [--json]", "unknown before the agent reported"}},
		{[]string{"plans", "--help"}, []string{"Usage: pulse plans [--json]"}},
		{[]string{"--help"}, []string{"  plan          apply a plan", "  plans         list plans"}},
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

// TestPlanProposalCommands: on env=prod agents, `pulse plan apply` says the apply awaits approval and
// how to give it; `pulse plan proposals` lists it; its proposer's approval is refused; another
// admin's `pulse plan approve` applies it.
func TestPlanProposalCommands(t *testing.T) {
	url, admin := startHub(t)
	useHub(t, url, admin)
	ctx := context.Background()
	tok := strings.TrimSpace(pulse("enroll-token", "create", "--labels", "role=web,env=prod").stdout)
	if _, err := simagent.Enroll(ctx, url, tok, "web-1", nil); err != nil {
		t.Fatal(err)
	}
	newToken := func(name string) string {
		r := pulse("token", "create", "--name", name, "--groups", "admin", "--for", name, "--json")
		var out struct{ Token string }
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Token == "" {
			t.Fatalf("token create %s: %d %s %s", name, r.code, r.stdout, r.stderr)
		}
		return out.Token
	}
	alice, bob := newToken("alice"), newToken("bob")
	file := filepath.Join(t.TempDir(), "web.yaml")
	os.WriteFile(file, []byte(cliPlan), 0o600)

	t.Setenv("PULSE_TOKEN", alice)
	r := pulse("plan", "apply", "web", "-f", file)
	m := regexp.MustCompile(`pulse plan approve web (pp-[0-9a-f-]+)`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || !strings.Contains(r.stdout, "awaits 1 approval(s) from admin") || !strings.Contains(r.stdout, "nothing was done yet") {
		t.Fatalf("apply on prod: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id := m[1]
	if r := pulse("plan", "proposals", "web"); r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "awaiting") || !strings.Contains(r.stdout, "0/1") {
		t.Errorf("proposals: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := pulse("plan", "approve", "web", id); r.code == 0 || !strings.Contains(r.stderr, "someone else must approve it") {
		t.Errorf("the proposer approves: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Setenv("PULSE_TOKEN", bob)
	if r := pulse("plan", "approve", "web", id, "--comment", "ok"); r.code != 0 || !strings.Contains(r.stdout, "proposal "+id+" done: applied as version 1, sent to 1 agent(s)") {
		t.Errorf("bob approves: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := pulse("plan", "show", "web", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"proposal": "`+id+`"`) {
		t.Errorf("show: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
