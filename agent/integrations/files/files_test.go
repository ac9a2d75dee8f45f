package files_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/atomicfile"
	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/integrations/files"
	"github.com/pulsehq/pulse/agent/wire"
)

// TestMain doubles as a helper that applies file units in a loop until it is killed, for the test
// that kills an apply half-way.
func TestMain(m *testing.M) {
	if root := os.Getenv("PULSE_FILES_TEST_WRITER"); root != "" {
		f := load(nil, root)
		units := []wire.Unit{
			fileUnit("big", filepath.Join(root, "big.bin"), bigContent(0), "0644"),
			fileUnit("big", filepath.Join(root, "big.bin"), bigContent(1), "0644"),
		}
		for i := 0; ; i++ {
			if i == 1 {
				os.Stdout.WriteString("writing\n")
			}
			if err := f.Apply(context.Background(), units[i%2]); err != nil {
				os.Exit(3)
			}
		}
	}
	os.Exit(m.Run())
}

// load builds the integration the way the agent does, from a [files] table naming roots.
func load(t *testing.T, roots ...string) integration.Reconciler {
	var rs []any
	for _, r := range roots {
		rs = append(rs, r)
	}
	s := integration.Load(context.Background(), map[string]any{"files": map[string]any{"roots": rs}}, nil)
	r, err := s.Reconciler("file")
	if err != nil {
		if t == nil {
			panic(err)
		}
		t.Fatalf("no file reconciler: %v (statuses %+v)", err, s.Statuses())
	}
	return r
}

func unit(name string, spec map[string]any) wire.Unit {
	b, _ := json.Marshal(spec)
	return wire.Unit{Name: name, Type: "file", Spec: b}
}

func fileUnit(name, path, content, mode string) wire.Unit {
	return unit(name, map[string]any{"path": path, "content": content, "mode": mode})
}

func bigContent(which int) string {
	return strings.Repeat(string(rune('a'+which)), files.MaxContent)
}

func TestConfigure(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		table map[string]any
		want  string // "" : enabled
	}{
		{"a root", map[string]any{"roots": []any{dir}}, ""},
		{"no roots", map[string]any{}, "not enabled by its configuration"},
		{"no table", nil, "not enabled by its configuration"},
		{"relative root", map[string]any{"roots": []any{"etc/app"}}, `"etc/app" is not an absolute path`},
		{"unclean root", map[string]any{"roots": []any{dir + "/../x"}}, "is not clean"},
		{"the whole host", map[string]any{"roots": []any{"/"}}, "would let plans write any file"},
		{"missing root", map[string]any{"roots": []any{filepath.Join(dir, "nope")}}, "create it, or remove it from roots"},
		{"a file as root", map[string]any{"roots": []any{writeFile(t, filepath.Join(dir, "f"), "x")}}, "is not a directory"},
		{"unknown key", map[string]any{"rots": []any{dir}}, `unknown key "rots"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tables := map[string]any{}
			if tc.table != nil {
				tables["files"] = tc.table
			}
			var st wire.IntegrationStatus
			for _, s := range integration.Load(context.Background(), tables, nil).Statuses() {
				if s.ID == files.ID {
					st = s
				}
			}
			if tc.want == "" {
				if !st.Enabled {
					t.Fatalf("status %+v, want enabled", st)
				}
				return
			}
			if st.Enabled || !strings.Contains(st.Reason, tc.want) {
				t.Fatalf("status %+v, want disabled mentioning %q", st, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckUnitRefuses(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(root, "escape"))
	os.Mkdir(filepath.Join(root, "inside"), 0o755)
	os.Symlink(filepath.Join(root, "inside"), filepath.Join(root, "alias"))
	f := load(t, root)
	me, _ := user.Current()
	cases := []struct {
		name string
		spec map[string]any
		want string // "" : accepted
	}{
		{"a file under the root", map[string]any{"path": root + "/app.conf", "content": "x", "mode": "0644"}, ""},
		{"deep, parents missing", map[string]any{"path": root + "/a/b/c.conf", "content": ""}, ""},
		{"through a symlink that stays inside", map[string]any{"path": root + "/alias/x.conf", "content": "x"}, ""},
		{"owner and group by name", map[string]any{"path": root + "/o", "content": "x", "owner": me.Username, "group": groupName(t)}, ""},
		{"owner by number", map[string]any{"path": root + "/o", "content": "x", "owner": "12345", "group": "54321"}, ""},
		{"relative path", map[string]any{"path": "app.conf", "content": "x"}, `path "app.conf" is not absolute`},
		{"unclean path", map[string]any{"path": root + "/a/../../etc/passwd", "content": "x"}, "is not clean"},
		{"outside every root", map[string]any{"path": outside + "/x", "content": "x"}, "is not under a root this agent allows"},
		{"the root itself", map[string]any{"path": root, "content": "x"}, "is not under a root"},
		{"a sibling sharing the prefix", map[string]any{"path": root + "x/f", "content": "x"}, "is not under a root"},
		{"out through a symlink", map[string]any{"path": root + "/escape/x.conf", "content": "x"}, "leads out of root"},
		{"out through a symlink, parents missing", map[string]any{"path": root + "/escape/a/b.conf", "content": "x"}, "leads out of root"},
		{"no path", map[string]any{"content": "x"}, "path is missing"},
		{"no content", map[string]any{"path": root + "/x"}, "content is missing"},
		{"too big", map[string]any{"path": root + "/x", "content": strings.Repeat("x", files.MaxContent+1)}, "more than the 1048576"},
		{"mode not octal", map[string]any{"path": root + "/x", "content": "", "mode": "rw-r--r--"}, "in octal"},
		{"mode too short", map[string]any{"path": root + "/x", "content": "", "mode": "7"}, "in octal"},
		{"setuid", map[string]any{"path": root + "/x", "content": "", "mode": "4755"}, "setuid, setgid and sticky bits are refused"},
		{"unknown owner", map[string]any{"path": root + "/x", "content": "", "owner": "no-such-user-here"}, `owner "no-such-user-here": no such owner`},
		{"unknown group", map[string]any{"path": root + "/x", "content": "", "group": "no-such-group-here"}, "no such group"},
		{"unknown key", map[string]any{"path": root + "/x", "content": "", "mdoe": "0644"}, `unknown field "mdoe"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := f.CheckUnit(unit("u", tc.spec))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckUnit = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func groupName(t *testing.T) string {
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("no name for group %d: %v", os.Getgid(), err)
	}
	return g.Name
}

func observe(t *testing.T, f integration.Reconciler, u wire.Unit) integration.Observation {
	t.Helper()
	obs, err := f.Observe(context.Background(), u)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return obs
}

func apply(t *testing.T, f integration.Reconciler, u wire.Unit) {
	t.Helper()
	if err := f.Apply(context.Background(), u); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func TestObserveAndApply(t *testing.T) {
	root := t.TempDir()
	f := load(t, root)
	path := filepath.Join(root, "etc", "app", "app.conf")
	u := fileUnit("conf", path, "port=8080\n", "0640")

	if obs := observe(t, f, u); obs.InState || obs.Detail != "missing" || obs.Digest != "" {
		t.Fatalf("before: %+v", obs)
	}
	apply(t, f, u)
	if b, _ := os.ReadFile(path); string(b) != "port=8080\n" {
		t.Fatalf("content %q", b)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %04o", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Dir(path)); fi.Mode().Perm() != 0o755 {
		t.Fatalf("created parent mode %04o", fi.Mode().Perm())
	}
	in := observe(t, f, u)
	if !in.InState || in.Detail != "" || !strings.HasPrefix(in.Digest, "sha256:") {
		t.Fatalf("after: %+v", in)
	}

	cases := []struct {
		name    string
		tamper  func()
		detail  string
		inPlace bool // Apply fixes it without replacing the file
	}{
		{"content changed", func() { os.WriteFile(path, []byte("port=1\n"), 0o640) }, "content differs", false},
		{"mode changed", func() { os.Chmod(path, 0o600) }, "mode 0600, want 0640", true},
		{"both", func() { os.WriteFile(path, []byte("x"), 0o640); os.Chmod(path, 0o666) }, "content differs; mode 0666, want 0640", false},
		{"deleted", func() { os.Remove(path) }, "missing", false},
		{"replaced by a symlink", func() { os.Remove(path); os.Symlink("/etc/hostname", path) }, "is a symbolic link, want a regular file", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.Lstat(path)
			tc.tamper()
			obs := observe(t, f, u)
			if obs.InState || obs.Detail != tc.detail {
				t.Fatalf("observed %+v, want detail %q", obs, tc.detail)
			}
			apply(t, f, u)
			if obs := observe(t, f, u); !obs.InState || obs.Digest != in.Digest {
				t.Fatalf("after repair %+v, want in state with digest %s", obs, in.Digest)
			}
			after, _ := os.Lstat(path)
			if tc.inPlace && !os.SameFile(before, after) {
				t.Fatal("a mode change replaced the file instead of fixing it")
			}
		})
	}

	// In state: Apply touches nothing.
	before, _ := os.Stat(path)
	apply(t, f, u)
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Fatal("Apply of a file in its state replaced it")
	}
}

func TestApplyRefusesWhatTheCheckWouldRefuse(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	f := load(t, root)
	// A symlink that appears after the plan was checked still does not lead out.
	u := fileUnit("conf", filepath.Join(root, "late", "x.conf"), "x", "0644")
	if err := f.CheckUnit(u); err != nil {
		t.Fatal(err)
	}
	os.Symlink(outside, filepath.Join(root, "late"))
	if err := f.Apply(context.Background(), u); err == nil || !strings.Contains(err.Error(), "leads out of root") {
		t.Fatalf("Apply through a late symlink = %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("something was written outside the root: %v", ents)
	}
	// A directory in the file's place is left alone.
	dir := filepath.Join(root, "d")
	os.MkdirAll(filepath.Join(dir, "keep"), 0o755)
	if err := f.Apply(context.Background(), fileUnit("d", dir, "x", "0644")); err == nil || !strings.Contains(err.Error(), "does not remove directories") {
		t.Fatalf("Apply over a directory = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Fatal("the directory was touched")
	}
}

func TestOwner(t *testing.T) {
	root := t.TempDir()
	f := load(t, root)
	me, _ := user.Current()
	path := filepath.Join(root, "owned")
	u := unit("owned", map[string]any{"path": path, "content": "x", "mode": "0644", "owner": me.Username, "group": strconv.Itoa(os.Getgid())})
	apply(t, f, u)
	if obs := observe(t, f, u); !obs.InState {
		t.Fatalf("observed %+v", obs)
	}
	if os.Geteuid() != 0 {
		// An unprivileged agent cannot give a file away, and says what to do.
		other := unit("owned", map[string]any{"path": path, "content": "x", "mode": "0644", "owner": "0"})
		if err := f.Apply(context.Background(), other); err == nil || !strings.Contains(err.Error(), "needs the agent to run as root") {
			t.Fatalf("chown to root as %s = %v", me.Username, err)
		}
		return
	}
	other := unit("owned", map[string]any{"path": path, "content": "x", "mode": "0644", "owner": "12345", "group": "54321"})
	if obs := observe(t, f, other); obs.InState || obs.Detail != "owner "+me.Uid+", want 12345; group "+strconv.Itoa(os.Getgid())+", want 54321" {
		t.Fatalf("observed %+v", obs)
	}
	apply(t, f, other)
	fi, _ := os.Stat(path)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 12345 || st.Gid != 54321 {
		t.Fatalf("owner %d:%d", st.Uid, st.Gid)
	}
}

// An apply killed at any moment leaves the old content or the new one, whole; the temporary file it
// may leave is removed by the next apply.
func TestKilledApplyLeavesOldOrNew(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	root := t.TempDir()
	f := load(t, root)
	path := filepath.Join(root, "big.bin")
	apply(t, f, fileUnit("big", path, bigContent(0), "0644"))
	midWrite := 0
	for round := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PULSE_FILES_TEST_WRITER="+root)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		bufio.NewReader(out).ReadString('\n') // it is writing, over and over
		time.Sleep(time.Duration(rand.IntN(20_000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
		if left, _ := atomicfile.Leftovers(path); len(left) > 0 {
			midWrite++
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !bytes.Equal(b, []byte(bigContent(0))) && !bytes.Equal(b, []byte(bigContent(1))) {
			t.Fatalf("round %d: the file is neither the old content nor the new one (%d bytes)", round, len(b))
		}
	}
	t.Logf("%d of 20 kills landed while a temporary file existed", midWrite)
	apply(t, f, fileUnit("big", path, "done", "0644"))
	if left, _ := atomicfile.Leftovers(path); len(left) != 0 {
		t.Fatalf("temporary files left after a successful apply: %v", left)
	}
}
