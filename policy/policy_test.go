package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// defaultEngine is compiled once for the whole package: compiling is the slow part.
var defaultEngine = sync.OnceValues(func() (*Engine, error) {
	return New(context.Background(), "")
})

func engine(t testing.TB) *Engine {
	t.Helper()
	e, err := defaultEngine()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var when = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // a Monday

func who(groups ...string) Principal {
	return Principal{ID: "u-1", Name: "Ada", Groups: groups, Via: "oidc"}
}

// targets returns n agents in env=staging, the last one in env if env is not "".
// Labels mix 3 roles and 4 regions, as a real fleet repeats a few label sets.
func targets(n int, env string) []Target {
	roles := []string{"web", "cache", "worker"}
	regions := []string{"eu-west", "eu-central", "us-east", "ap-south"}
	ts := make([]Target, n)
	for i := range ts {
		ts[i] = Target{
			ID:     fmt.Sprintf("agent-%04d", i),
			Name:   fmt.Sprintf("%s-%04d", roles[i%3], i),
			Labels: map[string]string{"env": "staging", "role": roles[i%3], "region": regions[i%4]},
		}
	}
	if env != "" {
		ts[n-1].Labels = map[string]string{"env": env, "role": "db"}
	}
	return ts
}

func runInput(p Principal, command string, dangerous bool, ts []Target) Input {
	return Input{
		Principal: p,
		Action:    "create-command",
		Command:   command,
		Params:    map[string]string{"unit": "nginx"},
		Dangerous: dangerous,
		Targets:   ts,
		Time:      when,
	}
}

func TestDecide(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	admins := &Approvals{Count: 2, Groups: []string{"admin"},
		Reason: "shell_run opens a raw shell on the agent: 2 admins other than the requester must approve"}
	prodApproval := &Approvals{Count: 1, Groups: []string{"admin"},
		Reason: "dangerous command on an env=prod agent: 1 admin other than the requester must approve"}

	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{
			name: "viewer reads",
			in:   Input{Principal: who("viewer"), Action: "list-agents", Time: when},
			want: Decision{Allow: true, Rules: []string{"viewer_read"}},
		},
		{
			name: "viewer denied create-command, the rule named in the reason",
			in:   runInput(who("viewer"), "uptime", false, targets(3, "")),
			want: Decision{
				Reasons: []string{"viewers may only read (rule: viewer_read_only)"},
				Rules:   []string{"viewer_read_only"},
			},
		},
		{
			name: "viewer denied the audit trail",
			in:   Input{Principal: who("viewer"), Action: "get-audit", Time: when},
			want: Decision{
				Reasons: []string{"get-audit is reserved to admins (rule: admin_only)"},
				Rules:   []string{"admin_only"},
			},
		},
		{
			name: "operator runs a command that is not dangerous",
			in:   runInput(who("operator"), "service.restart", false, targets(3, "prod")),
			want: Decision{Allow: true, Rules: []string{"operator_run"}},
		},
		{
			name: "operator denied a dangerous command",
			in:   runInput(who("operator"), "host.reboot", true, targets(3, "")),
			want: Decision{
				Reasons: []string{"operators may not run commands marked dangerous; ask an admin (rule: operator_no_dangerous)"},
				Rules:   []string{"operator_no_dangerous"},
			},
		},
		{
			name: "operator denied shell_run even when no catalog marks it dangerous",
			in:   runInput(who("operator"), "shell_run", false, targets(1, "")),
			want: Decision{
				Reasons: []string{"only admins may run shell_run, and only after 2 other admins approve (rule: shell_run_admin_only)"},
				Rules:   []string{"shell_run_admin_only"},
			},
		},
		{
			name: "operator cancels",
			in:   Input{Principal: who("operator"), Action: "cancel-command", Time: when},
			want: Decision{Allow: true, Rules: []string{"operator_manage"}},
		},
		{
			name: "operator denied token management",
			in:   Input{Principal: who("operator"), Action: "create-token", Time: when},
			want: Decision{
				Reasons: []string{"create-token is reserved to admins (rule: admin_only)"},
				Rules:   []string{"admin_only"},
			},
		},
		{
			name: "admin allowed a dangerous command outside prod",
			in:   runInput(who("admin"), "host.reboot", true, targets(3, "")),
			want: Decision{Allow: true, Rules: []string{"admin_all"}},
		},
		{
			name: "admin allowed token management",
			in:   Input{Principal: who("admin"), Action: "revoke-token", Time: when},
			want: Decision{Allow: true, Rules: []string{"admin_all"}},
		},
		{
			name: "shell_run needs 2 admin approvals",
			in:   runInput(who("admin"), "shell_run", true, targets(1, "")),
			want: Decision{Allow: true, Approvals: admins, Rules: []string{"admin_all", "shell_run_two_admins"}},
		},
		{
			name: "dangerous on one env=prod target out of 1,000 needs 1 admin approval",
			in:   runInput(who("admin"), "host.reboot", true, targets(1000, "prod")),
			want: Decision{Allow: true, Approvals: prodApproval, Rules: []string{"admin_all", "prod_dangerous_one_approval"}},
		},
		{
			name: "shell_run on prod: the stricter requirement wins",
			in:   runInput(who("admin"), "shell_run", true, targets(2, "prod")),
			want: Decision{Allow: true, Approvals: admins,
				Rules: []string{"admin_all", "prod_dangerous_one_approval", "shell_run_two_admins"}},
		},
		{
			name: "unknown groups get nothing",
			in:   Input{Principal: who("guests", "contractors"), Action: "list-agents", Time: when},
			want: Decision{
				Reasons: []string{"no rule allows list-agents for groups [contractors, guests] (rule: default_deny)"},
				Rules:   []string{"default_deny"},
			},
		},
		{
			name: "no groups at all get nothing",
			in:   Input{Principal: Principal{ID: "u-2", Via: "token"}, Action: "list-agents"},
			want: Decision{
				Reasons: []string{"no rule allows list-agents for groups [] (rule: default_deny)"},
				Rules:   []string{"default_deny"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Decide(ctx, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %s\nwant %s", jsonOf(got), jsonOf(tc.want))
			}
		})
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDecideRejectsInputWithoutAction(t *testing.T) {
	_, err := engine(t).Decide(context.Background(), Input{Principal: who("admin")})
	if err == nil || !strings.Contains(err.Error(), "no action") {
		t.Fatalf("want an error about the missing action, got %v", err)
	}
}

func TestDecideHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := engine(t).Decide(ctx, runInput(who("admin"), "uptime", false, targets(1000, "")))
	if err == nil {
		t.Fatal("want an error from a cancelled context")
	}
}

func TestDecideConcurrently(t *testing.T) {
	e := engine(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				in := runInput(who("operator"), "uptime", i%2 == 1, targets(20, ""))
				d, err := e.Decide(context.Background(), in)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allow != (i%2 == 0) {
					t.Errorf("goroutine %d: allow = %v", i, d.Allow)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestInputValueMatchesJSON pins the fast input conversion to what the JSON tags promise,
// which is what an operator testing with `opa eval -i input.json` sees.
func TestInputValueMatchesJSON(t *testing.T) {
	for _, in := range []Input{
		runInput(who("admin", "operator"), "shell_run", true, targets(3, "prod")),
		{Principal: Principal{ID: "u"}, Action: "list-agents", Time: when},
		{Principal: Principal{ID: "u", Groups: []string{}}, Action: "x", Params: map[string]string{},
			Targets: []Target{{ID: "a"}}, Time: when.Add(123456789 * time.Nanosecond).In(time.FixedZone("X", 3600))},
	} {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ast.ValueFromReader(strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		if got := inputValue(in); got.Compare(want) != 0 {
			t.Errorf("inputValue differs from JSON\n got: %v\nwant: %v", got, want)
		}
	}
}

func writePolicy(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCustomPolicyAddsRules: files in the policy dir change outcomes with no rebuild, both
// restricting (a refusal beats every grant) and extending (a grant lifts a default refusal).
func TestCustomPolicyAddsRules(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writePolicy(t, dir, "freeze.rego", `package pulse.authz

# rule: friday_freeze — no commands on Fridays, not even from admins.
deny contains "no commands on Fridays (rule: friday_freeze)" if {
	input.action == "create-command"
	time.weekday(time.parse_rfc3339_ns(input.time)) == "Friday"
}
`)
	writePolicy(t, dir, "sre.rego", `package pulse.authz

# rule: sre_dangerous — SREs may run dangerous commands, except the shell hatch.
allow contains "sre_dangerous" if {
	"sre" in groups
	input.action == "create-command"
	not is_shell_run
}
`)
	writePolicy(t, dir, "db.rego", `package pulse.authz

# rule: db_team_approval
approval contains {
	"rule": "db_team_approval",
	"count": 1,
	"groups": ["dba", "admin"],
	"reason": "commands on database hosts need a DBA or an admin",
} if {
	input.action == "create-command"
	some target in input.targets
	target.labels.role == "db"
}
`)
	writePolicy(t, dir, "notes.txt", "not a policy")
	writePolicy(t, dir, "sre_test.rego", "this is not even Rego, and tests are not loaded")

	friday := time.Date(2026, 3, 6, 10, 0, 0, 0, time.UTC)
	adminRun := runInput(who("admin"), "uptime", false, targets(2, ""))
	adminFriday := adminRun
	adminFriday.Time = friday
	sreDangerous := runInput(who("operator", "sre"), "host.reboot", true, targets(2, ""))

	// The default alone: the admin runs on Friday, the operator-SRE may not reboot.
	if d, err := engine(t).Decide(ctx, adminFriday); err != nil || !d.Allow {
		t.Fatalf("default: admin on Friday: %+v, %v", d, err)
	}
	if d, err := engine(t).Decide(ctx, sreDangerous); err != nil || d.Allow {
		t.Fatalf("default: operator-SRE reboot: %+v, %v", d, err)
	}

	e, err := New(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(ctx, adminFriday)
	if err != nil {
		t.Fatal(err)
	}
	want := Decision{Reasons: []string{"no commands on Fridays (rule: friday_freeze)"}, Rules: []string{"admin_all", "friday_freeze"}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("admin on Friday: got %s, want %s", jsonOf(d), jsonOf(want))
	}
	if d, err := e.Decide(ctx, adminRun); err != nil || !d.Allow {
		t.Errorf("admin on Monday: %+v, %v", d, err)
	}
	d, err = e.Decide(ctx, sreDangerous)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Decision{Allow: true, Rules: []string{"sre_dangerous"}}); !reflect.DeepEqual(d, want) {
		t.Errorf("operator-SRE reboot: got %s, want %s", jsonOf(d), jsonOf(want))
	}
	// The default approval rules still hold for the new grant.
	d, err = e.Decide(ctx, runInput(who("sre"), "host.reboot", true, targets(5, "prod")))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.Approvals == nil || d.Approvals.Count != 1 {
		t.Errorf("SRE reboot on prod: want allowed after 1 approval, got %s", jsonOf(d))
	}

	// An approval of one's own; the stricter shell_run requirement still wins over it.
	d, err = e.Decide(ctx, runInput(who("operator"), "uptime", false, targets(3, "staging")))
	if err != nil {
		t.Fatal(err)
	}
	wantDB := Decision{Allow: true, Rules: []string{"db_team_approval", "operator_run"}, Approvals: &Approvals{
		Count: 1, Groups: []string{"dba", "admin"}, Reason: "commands on database hosts need a DBA or an admin"}}
	if !reflect.DeepEqual(d, wantDB) {
		t.Errorf("operator on a db host: got %s, want %s", jsonOf(d), jsonOf(wantDB))
	}
	d, err = e.Decide(ctx, runInput(who("admin"), "shell_run", false, targets(3, "staging")))
	if err != nil {
		t.Fatal(err)
	}
	if d.Approvals == nil || d.Approvals.Count != 2 || !slices.Equal(d.Approvals.Groups, []string{"admin"}) {
		t.Errorf("admin shell_run on a db host: want 2 admin approvals, got %s", jsonOf(d))
	}

	src := e.Sources()
	names := slices.Sorted(maps.Keys(src))
	wantNames := []string{"default/decision.rego", "default/rules.rego",
		filepath.Join(dir, "db.rego"), filepath.Join(dir, "freeze.rego"), filepath.Join(dir, "sre.rego")}
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("Sources: got %v, want %v", names, wantNames)
	}
	if !strings.Contains(src[filepath.Join(dir, "freeze.rego")], "friday_freeze") {
		t.Error("Sources does not return the file's text")
	}
}

// TestCustomPolicyReplacesDefault: a file named like a default file takes its place.
func TestCustomPolicyReplacesDefault(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writePolicy(t, dir, "rules.rego", `package pulse.authz

# Only the on-call group may do anything, and it needs nothing else.
allow contains "on_call" if "on-call" in input.principal.groups
`)
	e, err := New(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Sources()["default/rules.rego"]; ok {
		t.Error("default/rules.rego still loaded")
	}
	d, err := e.Decide(ctx, Input{Principal: who("admin"), Action: "list-agents", Time: when})
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || !slices.Equal(d.Rules, []string{"default_deny"}) {
		t.Errorf("admin under the replacement: got %s, want default_deny", jsonOf(d))
	}
	d, err = e.Decide(ctx, runInput(who("on-call"), "shell_run", true, targets(3, "prod")))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Decision{Allow: true, Rules: []string{"on_call"}}); !reflect.DeepEqual(d, want) {
		t.Errorf("on-call shell_run: got %s, want %s", jsonOf(d), jsonOf(want))
	}
}

func TestCustomPolicyErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, file, text string
		want             []string
	}{
		{
			name: "syntax error",
			file: "broken.rego",
			text: "package pulse.authz\n\nallow contains \"x\" if {\n\tinput.action ==\n}\n",
			want: []string{"broken.rego:5", "rego_parse_error"},
		},
		{
			name: "unknown function",
			file: "typo.rego",
			text: "package pulse.authz\n\nallow contains \"x\" if {\n\tstartswith_typo(input.action, \"get-\")\n}\n",
			want: []string{"typo.rego:4", "startswith_typo"},
		},
		{
			name: "non-deterministic builtin",
			file: "remote.rego",
			text: "package pulse.authz\n\nallow contains \"x\" if {\n\thttp.send({\"method\": \"GET\", \"url\": \"http://x\"}).status_code == 200\n}\n",
			want: []string{"remote.rego:4", "http.send"},
		},
		{
			name: "allow as a boolean, as other OPA policies write it",
			file: "bool.rego",
			text: "package pulse.authz\n\nallow if input.action == \"list-agents\"\n",
			want: []string{"bool.rego:3", "allow"},
		},
		{
			name: "conflicting decision",
			file: "decision2.rego",
			text: "package pulse.authz\n\ndecision := {\"allow\": true}\n",
			want: []string{"decision2.rego:3", "decision"},
		},
		{
			name: "replacement without a decision",
			file: "decision.rego",
			text: "package pulse.authz\n\nverdict := true\n",
			want: []string{"undefined"},
		},
		{
			name: "malformed decision",
			file: "decision.rego",
			text: "package pulse.authz\n\ndecision := {\"allow\": \"yes\"}\n",
			want: []string{"allow: want a boolean"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writePolicy(t, dir, tc.file, tc.text)
			_, err := New(context.Background(), dir)
			if err == nil {
				t.Fatal("want an error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestNewReportsMissingDir(t *testing.T) {
	_, err := New(context.Background(), filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("want an error naming the missing dir, got %v", err)
	}
}

// BenchmarkDecide measures one decision the way the hub makes it: an admin's dangerous
// command on 1,000 agents, the env=prod one last so the policy scans them all.
func BenchmarkDecide(b *testing.B) {
	e := engine(b)
	ctx := context.Background()
	in := runInput(who("admin", "operator"), "host.reboot", true, targets(1000, "prod"))
	durations := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		d, err := e.Decide(ctx, in)
		durations = append(durations, time.Since(start))
		if err != nil || d.Approvals == nil {
			b.Fatalf("unexpected decision %+v, %v", d, err)
		}
	}
	slices.Sort(durations)
	pct := func(p float64) float64 {
		i := int(p * float64(len(durations)-1))
		return float64(durations[i].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkInputValue isolates the Go-to-Rego conversion of 1,000 targets.
func BenchmarkInputValue(b *testing.B) {
	in := runInput(who("admin", "operator"), "host.reboot", true, targets(1000, "prod"))
	b.ReportAllocs()
	for b.Loop() {
		_ = inputValue(in)
	}
}
