// Package files is the built-in integration that owns the "file" unit type of plans: a file with its
// content, mode and owner, written atomically, and only under the directories the agent's config
// names as roots. Nothing else on the host can be written through a plan, whatever the hub signs.
//
//	[files]
//	roots = ["/etc/myapp", "/srv/www"]
//
// A unit's spec:
//
//	{"path": "/etc/myapp/app.conf", "content": "port=8080\n", "mode": "0644", "owner": "app", "group": "app"}
//
// owner and group (a name or a number) are optional; without them the file belongs to whoever the
// agent runs as, and its owner is not looked at. mode defaults to 0644. Instead of content a unit may
// name an artifact pushed to the hub, for content too large for a plan (up to wire.MaxArtifactSize):
//
//	{"path": "/srv/www/site.tar", "artifact": {"digest": "sha256:…", "size": 73400320}}
//
// The agent's fetcher downloads and verifies it (integration.Artifacts); the file is then copied from
// its cache as any content is written.
package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pulsehq/pulse/agent/atomicfile"
	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// ID is the integration's id and its config table.
const ID = "files"

// UnitType is the unit type it owns.
const UnitType = "file"

// MaxContent bounds a file's content: a plan travels in one signed envelope, so large files are for
// artifacts, not inline content.
const MaxContent = 1 << 20

// defaultMode is the mode of a file whose spec names none.
const defaultMode fs.FileMode = 0o644

func init() {
	integration.Register(integration.Module{ID: ID, New: func() integration.Integration { return &Files{} }})
}

// Files is the integration instance: the roots plans may write under.
type Files struct {
	roots     []string // as configured: absolute and clean
	real      []string // the same, through symlinks (Precondition), for the containment checks
	artifacts integration.Artifacts
}

var (
	_ integration.Integration    = (*Files)(nil)
	_ integration.Preconditioner = (*Files)(nil)
	_ integration.Reconciler     = (*Files)(nil)
	_ integration.ArtifactUser   = (*Files)(nil)
)

// UseArtifacts takes the agent's fetcher, for units whose content is an artifact.
func (f *Files) UseArtifacts(a integration.Artifacts) { f.artifacts = a }

type config struct {
	Roots []string `toml:"roots"`
}

// Configure reads [files]: roots must be absolute, clean and not "/", which would let a plan write any
// file of the host.
func (f *Files) Configure(raw map[string]any) error {
	var c config
	if err := integration.DecodeConfig(raw, &c); err != nil {
		return err
	}
	f.roots = nil
	for _, r := range c.Roots {
		switch {
		case !filepath.IsAbs(r):
			return fmt.Errorf("roots: %q is not an absolute path", r)
		case filepath.Clean(r) != r:
			return fmt.Errorf("roots: %q is not clean; write %q", r, filepath.Clean(r))
		case r == "/":
			return fmt.Errorf(`roots: "/" would let plans write any file on this host; name the directories plans may manage`)
		}
		f.roots = append(f.roots, r)
	}
	return nil
}

// Enabled is true when at least one root is configured: without roots no file unit could be applied.
func (f *Files) Enabled() bool { return len(f.roots) > 0 }

// Precondition checks that every root is an existing directory and resolves it through symlinks, so
// the containment check compares real paths.
func (f *Files) Precondition(context.Context) error {
	f.real = nil
	for _, r := range f.roots {
		real, err := filepath.EvalSymlinks(r)
		if err != nil {
			return fmt.Errorf("root %s: %w (create it, or remove it from roots)", r, err)
		}
		fi, err := os.Stat(real)
		if err != nil {
			return fmt.Errorf("root %s: %w", r, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("root %s is not a directory", r)
		}
		f.real = append(f.real, real)
	}
	return nil
}

// UnitTypes: file.
func (f *Files) UnitTypes() []string { return []string{UnitType} }

// spec is a file unit's spec as the plan carries it.
type spec struct {
	Path     string            `json:"path"`
	Content  *string           `json:"content"`
	Artifact *wire.ArtifactRef `json:"artifact"`
	Mode     string            `json:"mode"`
	Owner    string            `json:"owner"`
	Group    string            `json:"group"`
}

// desired is a spec checked and resolved: the owner and group as numbers (-1: not managed).
type desired struct {
	path     string
	content  []byte
	artifact *wire.ArtifactRef // the content is this artifact instead
	mode     fs.FileMode
	uid, gid int
}

func (d desired) ownerManaged() bool { return d.uid >= 0 || d.gid >= 0 }

// parse reads and checks a unit's spec, without looking at the roots.
func parse(u wire.Unit) (desired, error) {
	var s spec
	dec := json.NewDecoder(bytes.NewReader(u.Spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return desired{}, fmt.Errorf("spec: %w (keys: path, content or artifact, mode, owner, group)", err)
	}
	d := desired{path: s.Path, mode: defaultMode, uid: -1, gid: -1}
	switch {
	case s.Path == "":
		return desired{}, errors.New("spec: path is missing")
	case !filepath.IsAbs(s.Path):
		return desired{}, fmt.Errorf("path %q is not absolute", s.Path)
	case filepath.Clean(s.Path) != s.Path:
		return desired{}, fmt.Errorf("path %q is not clean; write %q", s.Path, filepath.Clean(s.Path))
	case s.Content != nil && s.Artifact != nil:
		return desired{}, errors.New("spec: content and artifact are both set; a file has one of them")
	case s.Artifact != nil:
		if err := s.Artifact.Validate(); err != nil {
			return desired{}, fmt.Errorf("spec: artifact: %w", err)
		}
		d.artifact = s.Artifact
	case s.Content == nil:
		return desired{}, errors.New(`spec: content is missing (write "content": "" for an empty file, or name an artifact)`)
	case len(*s.Content) > MaxContent:
		return desired{}, fmt.Errorf("content is %d bytes, more than the %d a file unit may carry (push larger files with `pulse artifact push` and name the artifact)", len(*s.Content), MaxContent)
	}
	if s.Content != nil {
		d.content = []byte(*s.Content)
	}
	if s.Mode != "" {
		m, err := strconv.ParseUint(s.Mode, 8, 32)
		if err != nil || len(s.Mode) < 3 || len(s.Mode) > 4 {
			return desired{}, fmt.Errorf("mode %q: write permission bits in octal, such as \"0644\"", s.Mode)
		}
		if m > 0o777 {
			return desired{}, fmt.Errorf("mode %q: only permission bits (0000 to 0777); setuid, setgid and sticky bits are refused", s.Mode)
		}
		d.mode = fs.FileMode(m)
	}
	var err error
	if s.Owner != "" {
		if d.uid, err = lookupID(s.Owner, "owner", func(n string) (string, error) {
			usr, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return usr.Uid, nil
		}); err != nil {
			return desired{}, err
		}
	}
	if s.Group != "" {
		if d.gid, err = lookupID(s.Group, "group", func(n string) (string, error) {
			g, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		}); err != nil {
			return desired{}, err
		}
	}
	return d, nil
}

// lookupID turns a user or group given as a name or a number into its number.
func lookupID(v, what string, lookup func(string) (string, error)) (int, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%s %q: a negative id", what, v)
		}
		return n, nil
	}
	id, err := lookup(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: no such %s on this host (%v)", what, v, what, err)
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return 0, fmt.Errorf("%s %q: id %q is not a number", what, v, id)
	}
	return n, nil
}

// CheckUnit refuses a spec that is malformed or names a path outside every root, lexically or through
// a symlink among the parts of the path that exist.
func (f *Files) CheckUnit(u wire.Unit) error {
	d, err := parse(u)
	if err != nil {
		return err
	}
	if d.artifact != nil && f.artifacts == nil {
		return errors.New("the file's content is an artifact and this agent was started without an artifact fetcher")
	}
	_, err = f.rootOf(d.path)
	return err
}

// rootOf returns the real root path lies under, refusing a path that is not strictly under a root or
// whose existing parents lead out of it through a symlink.
func (f *Files) rootOf(path string) (string, error) {
	for i, root := range f.roots {
		if !strictlyUnder(path, root) {
			continue
		}
		real := f.real[i]
		parent, err := realParent(path)
		if err != nil {
			return "", fmt.Errorf("path %s: %w", path, err)
		}
		if parent != real && !strictlyUnder(parent, real) {
			return "", fmt.Errorf("path %s leads out of root %s through a symbolic link (its directory is really %s)", path, root, parent)
		}
		return real, nil
	}
	return "", fmt.Errorf("path %s is not under a root this agent allows (roots: %s); add its directory to [files] roots in the agent's config", path, strings.Join(f.roots, ", "))
}

// strictlyUnder reports whether path is inside dir (not dir itself).
func strictlyUnder(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// realParent resolves the directory of path through symlinks: the deepest part that exists, resolved,
// followed by the parts that do not exist yet.
func realParent(path string) (string, error) {
	dir := filepath.Dir(path)
	var missing []string
	for {
		real, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return filepath.Join(append([]string{real}, missing...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", err
		}
		missing = append([]string{filepath.Base(dir)}, missing...)
		dir = up
	}
}

// actual is what is on disk at a unit's path.
type actual struct {
	exists  bool
	kind    string // "" for a regular file, else what it is instead
	content []byte // for an artifact unit: not read; see sum
	sum     string // for an artifact unit: "sha256:…" of the content, read as a stream
	size    int64
	mode    fs.FileMode
	uid     int
	gid     int
}

func read(path string, d desired) (actual, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return actual{}, nil
	}
	if err != nil {
		return actual{}, err
	}
	a := actual{exists: true, mode: fi.Mode().Perm(), size: fi.Size()}
	a.uid, a.gid = ownerOf(fi)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		a.kind = "a symbolic link"
		return a, nil
	case fi.IsDir():
		a.kind = "a directory"
		return a, nil
	case !fi.Mode().IsRegular():
		a.kind = "not a regular file"
		return a, nil
	}
	file, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return actual{}, err
	}
	defer file.Close()
	if d.artifact != nil {
		if a.size != d.artifact.Size {
			return a, nil // differs: no need to hash it
		}
		if a.sum, err = wire.ContentDigest(file); err != nil {
			return actual{}, err
		}
		return a, nil
	}
	a.content, err = io.ReadAll(io.LimitReader(file, MaxContent+1))
	return a, err
}

// contentRight reports whether a regular file has the desired content.
func contentRight(d desired, a actual) bool {
	if d.artifact != nil {
		return a.size == d.artifact.Size && a.sum == d.artifact.Digest
	}
	return bytes.Equal(a.content, d.content)
}

// differences says, for a person, how the file differs from the desired one; none when it is in state.
func differences(d desired, a actual) []string {
	switch {
	case !a.exists:
		return []string{"missing"}
	case a.kind != "":
		return []string{"is " + a.kind + ", want a regular file"}
	}
	var diffs []string
	if !contentRight(d, a) {
		diffs = append(diffs, "content differs")
	}
	if a.mode != d.mode {
		diffs = append(diffs, fmt.Sprintf("mode %04o, want %04o", a.mode, d.mode))
	}
	if d.uid >= 0 && a.uid != d.uid {
		diffs = append(diffs, fmt.Sprintf("owner %d, want %d", a.uid, d.uid))
	}
	if d.gid >= 0 && a.gid != d.gid {
		diffs = append(diffs, fmt.Sprintf("group %d, want %d", a.gid, d.gid))
	}
	return diffs
}

// digest names what is on disk: content, mode and, when the unit manages it, the owner.
func digest(d desired, a actual) string {
	if !a.exists {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%04o\n", a.kind, a.mode)
	if d.ownerManaged() {
		fmt.Fprintf(h, "%d:%d\n", a.uid, a.gid)
	}
	if d.artifact != nil {
		fmt.Fprintf(h, "%s\n%d", a.sum, a.size) // its content is not read into memory
	} else {
		h.Write(a.content)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Observe reads the file at the unit's path and compares it with the spec.
func (f *Files) Observe(_ context.Context, u wire.Unit) (integration.Observation, error) {
	d, err := parse(u)
	if err != nil {
		return integration.Observation{}, err
	}
	a, err := read(d.path, d)
	if err != nil {
		return integration.Observation{}, fmt.Errorf("read %s: %w", d.path, err)
	}
	diffs := differences(d, a)
	return integration.Observation{Digest: digest(d, a), InState: len(diffs) == 0, Detail: strings.Join(diffs, "; ")}, nil
}

// Apply makes the file what the spec says, doing only what differs: a file whose content is right gets
// its mode or owner fixed in place; any other is replaced atomically (a temporary file in the same
// directory, fsync, mode and owner, rename, fsync of the directory), so an agent killed at any point
// leaves the old file or the new one. Missing directories under the root are created (0755). A
// directory in the file's place is never removed.
func (f *Files) Apply(ctx context.Context, u wire.Unit) error {
	d, err := parse(u)
	if err != nil {
		return err
	}
	if _, err := f.rootOf(d.path); err != nil { // again: the file system may have changed since the check
		return err
	}
	a, err := read(d.path, d)
	if err != nil {
		return fmt.Errorf("read %s: %w", d.path, err)
	}
	if len(differences(d, a)) == 0 {
		return nil
	}
	if a.kind == "a directory" {
		return fmt.Errorf("%s is a directory; the agent does not remove directories: remove it by hand or choose another path", d.path)
	}
	if a.exists && a.kind == "" && contentRight(d, a) {
		return fixInPlace(d, a)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(d.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if _, err := f.rootOf(d.path); err != nil { // the directories just created are real ones
		return err
	}
	if old, err := atomicfile.Leftovers(d.path); err == nil {
		for _, o := range old {
			os.Remove(o) // left by an apply that was killed before its rename
		}
	}
	opt := atomicfile.Options{Perm: d.mode}
	if d.ownerManaged() {
		opt.Owner, opt.UID, opt.GID = true, d.uid, d.gid
	}
	if d.artifact == nil {
		if err := atomicfile.Write(d.path, d.content, opt); err != nil {
			return ownerHint(err)
		}
		return nil
	}
	if f.artifacts == nil {
		return errors.New("the file's content is an artifact and this agent was started without an artifact fetcher")
	}
	src, err := f.artifacts.Fetch(ctx, *d.artifact)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("artifact %s: open the cached copy: %w", d.artifact.Digest, err)
	}
	defer in.Close()
	if err := atomicfile.WriteFrom(d.path, in, opt); err != nil {
		return ownerHint(err)
	}
	return nil
}

// fixInPlace sets the mode and owner of a file whose content is already right.
func fixInPlace(d desired, a actual) error {
	if a.mode != d.mode {
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", d.path, err)
		}
	}
	if (d.uid >= 0 && a.uid != d.uid) || (d.gid >= 0 && a.gid != d.gid) {
		if err := os.Lchown(d.path, d.uid, d.gid); err != nil {
			return ownerHint(fmt.Errorf("chown %s: %w", d.path, err))
		}
	}
	return nil
}

// ownerHint says what to do when the agent may not give files away.
func ownerHint(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (setting another owner needs the agent to run as root, or drop owner and group from the unit)", err)
	}
	return err
}
