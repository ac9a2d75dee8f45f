package atomicfile_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pulsehq/pulse/agent/atomicfile"
)

func TestWriteReplacesWithModeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.conf")
	cases := []struct {
		name string
		data string
		opt  atomicfile.Options
		perm os.FileMode
	}{
		{"new file, default mode", "one", atomicfile.Options{}, 0o600},
		{"replaced, chosen mode", "two", atomicfile.Options{Perm: 0o644}, 0o644},
		{"replaced without sync", "three", atomicfile.Options{Perm: 0o640, NoSync: true}, 0o640},
		{"own owner", "four", atomicfile.Options{Perm: 0o644, Owner: true, UID: os.Getuid(), GID: os.Getgid()}, 0o644},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := atomicfile.Write(path, []byte(tc.data), tc.opt); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.data {
				t.Fatalf("read %q, %v; want %q", got, err, tc.data)
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != tc.perm {
				t.Fatalf("mode %04o, want %04o", fi.Mode().Perm(), tc.perm)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("directory holds %d entries, want the file alone", len(ents))
			}
		})
	}
}

func TestWriteIntoMissingDirectoryFails(t *testing.T) {
	if err := atomicfile.Write(filepath.Join(t.TempDir(), "no", "f"), []byte("x"), atomicfile.Options{}); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

func TestLeftoversNameOnlyThatFilesTemporaries(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a[1].conf")
	mine := filepath.Join(dir, atomicfile.TempPrefix+"a[1].conf-123")
	for _, p := range []string{mine, filepath.Join(dir, atomicfile.TempPrefix+"other.conf-9"), path} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := atomicfile.Leftovers(path)
	if err != nil || !slices.Equal(got, []string{mine}) {
		t.Fatalf("Leftovers = %v, %v; want %v", got, err, []string{mine})
	}
	if !atomicfile.IsTemp(filepath.Base(mine)) || atomicfile.IsTemp("a[1].conf") {
		t.Fatal("IsTemp misjudges names")
	}
}
