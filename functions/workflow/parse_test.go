package workflow

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSeedExamplesLoad(t *testing.T) {
	isu := loadFile(t, "interactive-system-update.json")
	if len(isu.Steps) != 5 || isu.Steps[1].Type != TypePrompt || isu.Steps[2].Condition != "promptResponse === 'Yes'" {
		t.Fatalf("interactive update: %+v", isu.Steps)
	}
	if got := isu.Steps[2].Params; got["assume_yes"] != "true" || isu.Steps[0].Targets[0] != "all" {
		t.Fatalf("params/targets: %v %v", got, isu.Steps[0].Targets)
	}
	backup := loadFile(t, "backup-with-verification.json")
	if d := backup.Steps[1].Duration.Std(); d != 5*time.Second {
		t.Fatalf("the seed's duration 5000 is milliseconds: got %s", d)
	}
	loadFile(t, "simple-command-execution.json") // tab-indented JSON

	y := loadFile(t, "interactive-system-update.yaml")
	if y.Schedule == nil || y.Schedule.Location().String() != "Europe/Paris" || y.Schedule.Overlap != OverlapSkip {
		t.Fatalf("schedule: %+v", y.Schedule)
	}
	hc, _ := y.Step("Health checks")
	if len(hc.Branches) != 2 || hc.Branches[0].Name != "disks" || hc.Branches[1].Steps[0].Name != "Check uptime" {
		t.Fatalf("branches: %+v", hc.Branches)
	}
	up, _ := y.Step("Upgrade packages")
	if up.OnFailure.Action != FailRun || up.OnFailure.Steps[0] != "Report failure" || up.MaxErrors != 2 || up.Timeout.Std() != 30*time.Minute {
		t.Fatalf("upgrade: %+v", up)
	}
	if in := y.Inputs["reboot_delay"]; in.Type != InputInt || in.Default != int64(1) {
		t.Fatalf("inputs: %+v", in)
	}
}

// TestRefused: every way a definition is refused names the place (line:column, path) and the reason.
func TestRefused(t *testing.T) {
	const prompt = `
steps:
  - name: Ask
    type: prompt
    message: Go?
    options: ["Yes", "No"]
`
	cases := []struct {
		name       string
		src        string
		line, col  int
		path, want string
	}{
		{"yaml syntax error", "steps:\n  - name: a\n    type: wait\n   duration: 5s\n", 4, 4, "", "syntax error"},
		{"json syntax error", "{\n  \"steps\": [\n    {\"name\": \"a\" \"type\": \"wait\"}\n  ]\n}\n", 3, 18, "", "syntax error"},
		{"unknown step type", "steps:\n  - name: a\n    type: shell\n    command: rm -rf /\n", 3, 11, "steps[0].type", `unknown step type "shell"`},
		{"no type", "steps:\n  - name: a\n", 2, 5, "steps[0].type", "no type"},
		{"unknown field", "steps:\n  - name: a\n    type: wait\n    duration: 5s\n    comand: x\n", 5, 5, "steps[0].comand", `unknown field "comand"`},
		{"field of another type", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: apt_update\n    duration: 5s\n", 6, 5, "steps[0].duration", `an execute step has no field "duration"`},
		{"duplicate name", "steps:\n  - name: a\n    type: wait\n    duration: 1s\n  - name: a\n    type: wait\n    duration: 1s\n", 5, 11, "steps[1].name", `step name "a" is already used at steps[0]`},
		{"bad duration", "steps:\n  - name: a\n    type: wait\n    duration: 5 minutes\n", 4, 15, "steps[0].duration", "want a duration"},
		{"negative max_errors", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: apt_update\n    max_errors: -1\n", 6, 17, "steps[0].max_errors", "whole number"},
		{"bad cron", "schedule: {cron: \"61 * * * *\"}\nsteps:\n  - {name: a, type: wait, duration: 1s}\n", 1, 18, "schedule.cron", "cron"},
		{"bad timezone", "schedule: {cron: \"0 3 * * *\", timezone: Mars/Olympus}\nsteps:\n  - {name: a, type: wait, duration: 1s}\n", 1, 41, "schedule.timezone", "IANA"},
		{"missing command", "steps:\n  - name: a\n    type: execute\n    targets: all\n", 2, 5, "steps[0].command", "needs a command"},
		{"retry attempts", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: apt_update\n    retry: {attempts: 50}\n", 6, 23, "steps[0].retry.attempts", "1 to 20"},
		{"unknown command", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: rm_rf\n", 5, 14, "steps[0].command", `unknown command "rm_rf"`},
		{"bad param", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: disk_usage\n    params: {path: \"/; rm -rf /\"}\n", 6, 20, "steps[0].params.path", "does not match"},
		{"unknown param", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: disk_usage\n    params: {path: /, depth: 3}\n", 6, 30, "steps[0].params.depth", `no parameter "depth"`},
		{"missing param", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: disk_usage\n", 2, 5, "steps[0].params", "needs parameter path"},
		{"unknown input in params", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: disk_usage\n    params: {path: \"${inputs.dir}\"}\n", 6, 20, "steps[0].params.path", "no such input"},
		{"non-boolean condition", prompt + "  - name: b\n    type: wait\n    duration: 1s\n    condition: promptResponse\n", 10, 16, "steps[1].condition", "must be true or false"},
		{"condition syntax error", prompt + "  - name: b\n    type: wait\n    duration: 1s\n    condition: \"promptResponse == \"\n", 10, 35, "steps[1].condition", "Syntax error"},
		{"condition over the cost limit", prompt + "  - name: b\n    type: wait\n    duration: 1s\n    condition: \"[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30].all(x, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30].all(y, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30].all(z, x + y + z > 0)))\"\n", 10, 17, "steps[1].condition", "too expensive"},
		{"nested loop over results", prompt + "  - name: b\n    type: wait\n    duration: 1s\n    condition: steps.Ask.results.all(a, steps.Ask.results.all(b, a.agent == b.agent || a.status != b.status))\n", 10, 16, "steps[1].condition", "too expensive"},
		{"undefined variable", prompt + "  - name: b\n    type: wait\n    duration: 1s\n    condition: 'response == \"Yes\"'\n", 10, 17, "steps[1].condition", "undeclared reference to 'response'"},
		{"undefined input", prompt + "  - name: b\n    type: wait\n    duration: 1s\n    condition: inputs.force\n", 10, 16, "steps[1].condition", "no such input"},
		{"unknown step in condition", prompt + "  - name: b\n    type: wait\n    duration: 1s\n    condition: prompt.Asks == 'Yes'\n", 10, 16, "steps[1].condition", `no step named "Asks"`},
		{"unknown step in on_failure", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: apt_update\n    on_failure: [cleanup]\nhandlers:\n  - {name: clean up, type: wait, duration: 1s}\n", 6, 18, "steps[0].on_failure[0]", `no step named "cleanup"`},
		{"on_failure names a normal step", "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: apt_update\n    on_failure: [b]\n  - {name: b, type: wait, duration: 1s}\n", 6, 18, "steps[0].on_failure[0]", "normal sequence"},
		{"default not an option", "steps:\n  - name: a\n    type: prompt\n    message: Go?\n    options: [Yes, No]\n    timeout: 1h\n    default: Maybe\n", 7, 14, "steps[0].default", "not one of the options"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load([]byte(c.src), testCatalog)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			for _, p := range ve.Problems {
				if p.Line == c.line && p.Column == c.col && p.Path == c.path && strings.Contains(p.Message, c.want) {
					return
				}
			}
			t.Fatalf("want %d:%d: %s: ...%s..., got:\n%v", c.line, c.col, c.path, c.want, err)
		})
	}
}

func TestAllProblemsReported(t *testing.T) {
	src := "steps:\n  - name: a\n    type: execute\n    targets: all\n    command: nope\n    condition: promptResponse\n  - name: b\n    type: wait\n    duration: 1s\n    on_failure: [x]\n"
	_, err := Load([]byte(src), testCatalog)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"5:14: steps[0].command:", "6:16: steps[0].condition:", "10:18: steps[1].on_failure[0]:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestJSCompat(t *testing.T) {
	for in, want := range map[string]string{
		`promptResponse === 'Yes'`:           `promptResponse ==  'Yes'`,
		`promptResponse !== "a === b"`:       `promptResponse !=  "a === b"`,
		`x == 'it\'s === here' && y !== 'z'`: `x == 'it\'s === here' && y !=  'z'`,
	} {
		if got := jsCompat(in); got != want {
			t.Errorf("jsCompat(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInterpolate(t *testing.T) {
	in := map[string]any{"v": "1.2.3", "n": int64(3), "b": true}
	for src, want := range map[string]string{
		"pkg-${inputs.v}":           "pkg-1.2.3",
		"${inputs.n}x${ inputs.b }": "3xtrue",
		"$${inputs.v} and $5":       "${inputs.v} and $5",
		"plain":                     "plain",
	} {
		if got, err := interpolate(src, in); err != nil || got != want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", src, got, err, want)
		}
	}
	for _, bad := range []string{"${inputs.v", "${env.HOME}", "${inputs.}"} {
		if _, err := interpolate(bad, in); err == nil {
			t.Errorf("interpolate(%q) accepted", bad)
		}
	}
}

func TestResolveInputs(t *testing.T) {
	d := mustLoad(t, "inputs:\n  version: {type: string, required: true}\n  count: {type: int, default: 2}\n  force: {type: bool}\nsteps:\n  - {name: a, type: wait, duration: 1s}\n")
	got, err := d.ResolveInputs(map[string]any{"version": "1.0", "count": float64(5)})
	if err != nil || got["version"] != "1.0" || got["count"] != int64(5) || got["force"] != false {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := d.ResolveInputs(map[string]any{"version": "1.0", "force": "true"}); err != nil || got["count"] != int64(2) || got["force"] != true {
		t.Fatalf("defaults and text: %v %v", got, err)
	}
	_, err = d.ResolveInputs(map[string]any{"count": 1.5, "extra": 1})
	for _, want := range []string{"input count: want a whole number", "input version is required", `unknown input "extra"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
