package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	api "github.com/pulsehq/pulse/openapi/client"
)

// artifactHelp is what `pulse artifact --help` says artifacts are.
const artifactHelp = `An artifact is a file's content kept by the hub under its SHA-256: what a plan names, instead of
inline content, for anything large (up to 8 GiB) — a site's tarball, a binary, the agent's own new
version. Push it once; the command prints its reference, which a unit's spec names:

  units:
    - name: site
      type: file
      spec: {path: /srv/www/site.tar, artifact: {digest: "sha256:…", size: 73400320}}

Agents download it through the hub one chunk at a time, resume an interrupted download, check free
space first, and check every chunk and the whole against the digest the (signed) plan names, so
nothing but that content is ever used.`

func runArtifact(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("want `pulse artifact push FILE` (see pulse artifact --help)")
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(env.Stdout, "Usage: pulse artifact push FILE [--name N] [--json]\n\n%s\n\nRun 'pulse artifact push --help' for its flags; 'pulse artifacts' lists the artifacts.\n", artifactHelp)
		return nil
	}
	switch args[0] {
	case "push":
		return runArtifactPush(ctx, env, args[1:])
	}
	return usagef("unknown `pulse artifact %s`; want push (or `pulse artifacts`)", args[0])
}

// fileChunks is a file's digest and the SHA-256 of each of its chunks.
type fileChunks struct {
	digest string
	size   int64
	sums   []string
}

// hashFile reads path once, hashing the whole and each chunk of chunkSize bytes.
func hashFile(path string, chunkSize int64) (fileChunks, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileChunks{}, err
	}
	defer f.Close()
	whole := sha256.New()
	fc := fileChunks{}
	buf := make([]byte, chunkSize)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			sum := sha256.Sum256(buf[:n])
			fc.sums = append(fc.sums, hex.EncodeToString(sum[:]))
			whole.Write(buf[:n])
			fc.size += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fileChunks{}, fmt.Errorf("read %s: %w", path, err)
		}
	}
	fc.digest = "sha256:" + hex.EncodeToString(whole.Sum(nil))
	return fc, nil
}

func runArtifactPush(ctx context.Context, env *Env, args []string) error {
	file, rest := splitID(args)
	fs := newFlags(env, "artifact push", "FILE [--name N] [--json]",
		"Pushes FILE to the hub as an artifact and prints the reference a plan names it by ({digest, size}).\n"+
			"It hashes the file, asks the hub which chunks it already has (a push that was interrupted, or the\n"+
			"same file pushed before, uploads only what is missing), uploads the rest in chunks with progress on\n"+
			"stderr, and has the hub check the whole. Needs the policy's push-artifact (admins).\n\n"+artifactHelp)
	name := fs.String("name", "", "a name for people (default: the file's base name)")
	asJSON := fs.Bool("json", false, "print JSON")
	connect := clientFlags(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if file == "" {
		return usagef("want `pulse artifact push FILE`")
	}
	fi, err := os.Stat(file)
	if err != nil {
		return usageError{err}
	}
	if !fi.Mode().IsRegular() {
		return usagef("%s is not a regular file", file)
	}
	if fi.Size() > wire.MaxArtifactSize {
		return usagef("%s is %d bytes; an artifact is at most %d", file, fi.Size(), wire.MaxArtifactSize)
	}
	if *name == "" {
		*name = filepath.Base(file)
	}
	c, err := connect()
	if err != nil {
		return err
	}
	// The chunk size is the hub's; ask it with a digest first computed at the default size, and hash
	// again only if the hub wants another (a test hub).
	fc, err := hashFile(file, wire.ArtifactChunkSize)
	if err != nil {
		return err
	}
	stResp, err := c.api.GetArtifactWithResponse(ctx, fc.digest)
	st, err := answer(c, stResp, err, (*api.GetArtifactResponse).GetJSON200)
	if err != nil {
		return err
	}
	chunkSize := wire.ArtifactChunkSize
	if !st.Complete && st.ChunkSize > 0 && st.ChunkSize != chunkSize {
		chunkSize = st.ChunkSize
		if fc, err = hashFile(file, chunkSize); err != nil {
			return err
		}
	}
	if fc.size != fi.Size() {
		return fmt.Errorf("%s changed while it was read (%d bytes, then %d): push it again once it is still", file, fi.Size(), fc.size)
	}
	if !st.Complete {
		if err := uploadChunks(ctx, env, c, file, fc, chunkSize, st.Present); err != nil {
			return err
		}
	}
	body := api.PushArtifactJSONRequestBody{Size: fc.size, Name: *name}
	resp, err := c.api.PushArtifactWithResponse(ctx, fc.digest, body)
	var ae *apiError
	if _, err2 := answer(c, resp, err, (*api.PushArtifactResponse).GetJSON200); errors.As(err2, &ae) && ae.Status == 409 {
		// A chunk the listing showed failed the hub's integrity check (or vanished): upload them all.
		fmt.Fprintf(env.Stderr, "the hub misses chunks it listed (%s); uploading every chunk again\n", ae.Detail)
		if err := uploadChunks(ctx, env, c, file, fc, chunkSize, nil); err != nil {
			return err
		}
		resp, err = c.api.PushArtifactWithResponse(ctx, fc.digest, body)
	}
	p, err := answer(c, resp, err, (*api.PushArtifactResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	ref, _ := json.Marshal(wire.ArtifactRef{Digest: p.Ref.Digest, Size: p.Ref.Size})
	what := "pushed"
	if p.Unchanged {
		what = "already on the hub"
	}
	fmt.Fprintf(env.Stderr, "artifact %s (%s) %s; name it in a unit's spec as:\n", *name, humanBytes(p.Ref.Size), what)
	fmt.Fprintf(env.Stdout, "artifact: %s\n", ref)
	return nil
}

// uploadChunks uploads every chunk not in present, one at a time, with progress on stderr.
func uploadChunks(ctx context.Context, env *Env, c *client, file string, fc fileChunks, chunkSize int64, present []int64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var todo []int
	for n := range fc.sums {
		if !slices.Contains(present, int64(n)) {
			todo = append(todo, n)
		}
	}
	if len(present) > 0 && len(todo) > 0 {
		fmt.Fprintf(env.Stderr, "resuming: the hub has %d of %d chunks\n", len(fc.sums)-len(todo), len(fc.sums))
	}
	start, sent := time.Now(), int64(0)
	for i, n := range todo {
		l := min(chunkSize, fc.size-int64(n)*chunkSize)
		sec := io.NewSectionReader(f, int64(n)*chunkSize, l)
		resp, err := c.api.PushArtifactChunkWithBodyWithResponse(ctx, fc.digest, int64(n),
			&api.PushArtifactChunkParams{XPulseChunkSha256: fc.sums[n]}, "application/octet-stream", sec)
		if err := c.check(resp, err); err != nil {
			return fmt.Errorf("chunk %d of %d: %w (run the same command again to resume)", n+1, len(fc.sums), err)
		}
		sent += l
		rate := float64(sent) / max(time.Since(start).Seconds(), 0.001)
		fmt.Fprintf(env.Stderr, "uploaded chunk %d/%d (%s of %s, %s/s)\n", i+1, len(todo), humanBytes(sent), humanBytes(fc.size), humanBytes(int64(rate)))
	}
	return nil
}

// humanBytes is a size for a person: 512 B, 4.0 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func runArtifacts(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "artifacts", "[--json]", "Lists the artifacts the hub holds complete: digest, size, name, who pushed it and when.\nSee `pulse artifact --help` for what an artifact is.")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	resp, err := c.api.ListArtifactsWithResponse(ctx)
	out, err := answer(c, resp, err, (*api.ListArtifactsResponse).GetJSON200)
	if err != nil {
		return err
	}
	if *asJSON {
		return printAnswer(env.Stdout, resp.Body)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DIGEST\tSIZE\tNAME\tPUSHED\tBY")
	for _, a := range out.Artifacts {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", a.Digest, a.Size, a.Name, a.PushedAt.Local().Format(time.RFC3339), a.PushedBy)
	}
	if len(out.Artifacts) == 0 {
		fmt.Fprintln(env.Stderr, "no artifacts yet: `pulse artifact push FILE` pushes one")
	}
	return tw.Flush()
}
