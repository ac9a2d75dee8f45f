package integration

import (
	"context"

	"github.com/pulsehq/pulse/agent/wire"
)

// Artifacts is how an integration gets the content a unit names by digest (wire.ArtifactRef): a file's
// content, a container image, the agent's own new binary. The kernel implements it once, fetching
// through the hub, so no integration speaks to the hub or checks digests itself.
type Artifacts interface {
	// Fetch returns the path of a local copy of the artifact whose SHA-256 has been checked against
	// ref, downloading only what is missing (a download interrupted by a crash or a lost connection
	// resumes where it stopped), after checking that the disk has room for it. The file is the cache's:
	// callers read or copy it and must not change or remove it.
	Fetch(ctx context.Context, ref wire.ArtifactRef) (path string, err error)
}

// ArtifactUser is implemented by integrations whose units name artifacts. Load hands them the agent's
// Artifacts (WithArtifacts) before Precondition runs; without that option they get none, and should
// refuse (CheckUnit) a unit that names an artifact.
type ArtifactUser interface {
	UseArtifacts(a Artifacts)
}

// WithArtifacts gives Load the agent's artifact fetcher for the integrations that use one.
func WithArtifacts(a Artifacts) Option {
	return func(s *Set) { s.artifacts = a }
}
