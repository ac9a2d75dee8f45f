package container

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// imagePresent reports whether the daemon has the image (by ID, or by a repository digest it pulled).
func (c *Container) imagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := c.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
}

// space says how much the daemon's data root needs free for an image of size bytes (spaceFactor
// times it, plus the min_free_mb reserve), how much it has, and where that root is.
func (c *Container) space(ctx context.Context, size int64) (need, have int64, root string, err error) {
	info, err := c.cli.Info(ctx)
	if err != nil {
		return 0, 0, "", fmt.Errorf("free space: ask the daemon for its data root: %w", err)
	}
	root = info.DockerRootDir
	if root == "" {
		return 0, 0, "", errors.New("free space: the daemon does not say where its data root is")
	}
	have, err = c.statfs(root)
	if err != nil {
		return 0, 0, root, fmt.Errorf("free space: the daemon's data root %s: %w (the agent must see the daemon's file system)", root, err)
	}
	return spaceFactor*size + c.minFree, have, root, nil
}

// mib is a byte count for a person.
func mib(n int64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// ensureImage makes the unit's image present: nothing when the daemon has it; otherwise, after
// checking the data root's free space, it loads the unit's artifact (a `docker save` archive, fetched
// and checked against its digest by the agent's Artifacts) or, without one, pulls the image by digest.
func (c *Container) ensureImage(ctx context.Context, s spec) error {
	present, err := c.imagePresent(ctx, s.Image)
	if err != nil || present {
		return err
	}
	var size int64
	if s.Artifact != nil {
		size = s.Artifact.Size
	}
	need, have, root, err := c.space(ctx, size)
	if err != nil {
		return err
	}
	if have < need {
		return fmt.Errorf("free space: need %s on %s (the daemon's data root) to load image %s, have %s", mib(need), root, s.Image, mib(have))
	}
	if s.Artifact == nil {
		return c.pull(ctx, s.Image)
	}
	if c.artifacts == nil {
		return errors.New("artifact: this agent fetches no artifacts")
	}
	path, err := c.artifacts.Fetch(ctx, *s.Artifact)
	if err != nil {
		return fmt.Errorf("fetch artifact %s for image %s: %w", s.Artifact.Digest, s.Image, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", s.Artifact.Digest, err)
	}
	defer f.Close()
	resp, err := c.cli.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("load artifact %s into the daemon: %w", s.Artifact.Digest, err)
	}
	said, err := readStream(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("load artifact %s into the daemon: %w", s.Artifact.Digest, err)
	}
	if present, err := c.imagePresent(ctx, s.Image); err != nil {
		return err
	} else if !present {
		return fmt.Errorf("artifact %s was loaded, but it holds no image %s (the daemon said: %s); an image loaded from an archive is known by its image ID (sha256:…), not by a registry digest", s.Artifact.Digest, s.Image, said)
	}
	c.log.Info("image loaded from artifact", "image", s.Image, "artifact", s.Artifact.Digest)
	return nil
}

// pull pulls an image by digest from its registry.
func (c *Container) pull(ctx context.Context, ref string) error {
	if !strings.Contains(ref, "@") {
		return fmt.Errorf("image %s is not in the daemon, and an image ID cannot be pulled: name an artifact that holds it, or load it into the daemon", ref)
	}
	body, err := c.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("image %s is not in the daemon and pulling it failed (no artifact names it): %w", ref, err)
	}
	defer body.Close()
	if _, err := readStream(body); err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	c.log.Info("image pulled", "image", ref)
	return nil
}

// readStream reads a daemon's JSON message stream to its end and returns what it said, or the first
// error it reported.
func readStream(r io.Reader) (string, error) {
	var said []string
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var m struct {
			Stream, Status string
			Error          string `json:"error"`
			ErrorDetail    *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return strings.Join(said, " "), fmt.Errorf("read the daemon's answer: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return "", errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return "", errors.New(m.Error)
		}
		if t := strings.TrimSpace(m.Stream + m.Status); t != "" && len(said) < 20 {
			said = append(said, t)
		}
	}
	return strings.Join(said, " "), nil
}
