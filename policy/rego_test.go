package policy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestRegoUnitTests runs the Rego tests shipped in default/*_test.rego against the embedded
// bundle, with the same capabilities the Engine grants, so `go test` (and `make test`) fails
// when a Rego test fails, when none ran, or when a line of the default policy goes untested.
func TestRegoUnitTests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sources, err := DefaultSources()
	if err != nil {
		t.Fatal(err)
	}
	modules, err := parseModules(sources)
	if err != nil {
		t.Fatal(err)
	}

	coverage := cover.New()
	runner := tester.NewRunner().
		SetCompiler(newCompiler().WithEnablePrintStatements(true)).
		SetModules(modules).
		SetCoverageQueryTracer(coverage).
		SetTimeout(30 * time.Second)
	results, err := runner.RunTests(ctx, nil)
	if err != nil {
		t.Fatalf("compile the Rego tests: %v", err)
	}

	var passed, failed int
	for r := range results {
		where := ""
		if r.Location != nil {
			where = fmt.Sprintf("%s:%d: ", r.Location.File, r.Location.Row)
		}
		switch {
		case r.Error != nil:
			failed++
			t.Errorf("%s%s.%s: error: %v", where, r.Package, r.Name, r.Error)
		case r.Fail:
			failed++
			t.Errorf("%s%s.%s: FAIL%s", where, r.Package, r.Name, printed(r.Output))
		case r.Skip:
			t.Logf("%s%s.%s: skipped", where, r.Package, r.Name)
		default:
			passed++
		}
	}
	t.Logf("Rego tests: %d passed, %d failed", passed, failed)
	if passed+failed == 0 {
		t.Fatal("no Rego test ran: are the default/*_test.rego files embedded and named test_*?")
	}

	// Every line of the policy itself (not of its tests) must be evaluated by some test.
	report := coverage.Report(modules)
	for _, name := range slices.Sorted(maps.Keys(report.Files)) {
		if isTest(name) {
			continue
		}
		file := report.Files[name]
		for _, rng := range file.NotCovered {
			t.Errorf("%s:%d-%d: not covered by any Rego test", name, rng.Start.Row, rng.End.Row)
		}
		t.Logf("%s: %.1f%% of lines covered", name, file.Coverage)
	}
}

// TestDefaultPolicyFormatted keeps the default bundle in `opa fmt` style, so a diff of a
// policy change shows only the change.
func TestDefaultPolicyFormatted(t *testing.T) {
	sources, err := DefaultSources()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(sources)) {
		out, err := format.SourceWithOpts(name, []byte(sources[name]), format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Errorf("format %s: %v", name, err)
			continue
		}
		if string(out) != sources[name] {
			t.Errorf("%s is not formatted; run `opa fmt -w policy/default`", name)
		}
	}
}

func printed(out []byte) string {
	if len(out) == 0 {
		return ""
	}
	return "\n" + strings.TrimRight(string(out), "\n")
}
