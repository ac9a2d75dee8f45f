package workflow

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary workflow definitions, YAML or JSON, through what the hub does when one is
// applied: Parse, then Validate against a catalog. Properties: nothing panics (CEL compilation
// included); a definition comes back exactly when there is no error; parsing is deterministic, so
// every hub reads a stored version the same way; an accepted definition can be folded and planned
// from an empty history without panicking.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed definitions in testdata (%v)", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, seed := range []string{
		"",
		"steps: []",
		"name: x\nsteps:\n  - name: a\n    type: command\n    command: host_uptime\n",
		"{\"name\": \"x\", \"steps\": [{\"name\": \"a\", \"type\": \"command\", \"command\": \"host_uptime\", \"if\": \"1 +\"}]}",
		"name: x\nschedule:\n  cron: \"*/61 * * * *\"\n  timezone: Mars/Olympus\nsteps:\n  - name: a\n    type: wait\n    duration: -1s\n",
		"name: x\nsteps:\n  - name: a\n    type: prompt\n    options: [a, b]\n    default: c\n  - name: a\n    type: unknown\n",
		"&a [*a, *a]",
		"name: \"\\u0000🙂\"\nsteps: {a: 1}\n",
		"\t{\"name\":\t\"t\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := Parse(src)
		if (d == nil) == (err == nil) {
			t.Fatalf("Parse returned definition %v with error %v; want exactly one", d != nil, err)
		}
		d2, err2 := Parse(src)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(d, d2) {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			return
		}
		verr := d.Validate(testCatalog)
		if _, lerr := Load(src, testCatalog); (lerr == nil) != (verr == nil) {
			t.Fatalf("Load says %v, Parse+Validate says %v", lerr, verr)
		}
		if verr != nil {
			return
		}
		st, err := Fold(d, "ex-fuzz", nil)
		if err != nil {
			return
		}
		Next(d, st, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	})
}
