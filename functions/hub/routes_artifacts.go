package hub

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/artifacts"
)

const digestDoc = "sha256: and 64 lower-case hex digits: the SHA-256 of the artifact's whole content."

// ArtifactChunkInput is one chunk of an artifact being pushed.
type ArtifactChunkInput struct {
	Digest  string `path:"digest" doc:"sha256: and 64 lower-case hex digits: the SHA-256 of the artifact's whole content."`
	N       int    `path:"n" minimum:"0" maximum:"999999" doc:"The chunk's number, from 0."`
	Sha256  string `header:"X-Pulse-Chunk-Sha256" required:"true" doc:"The chunk's own SHA-256 in hex, as the client computed it: a body damaged on the way is refused."`
	RawBody []byte `contentType:"application/octet-stream"`
}

// ArtifactDigestInput names an artifact.
type ArtifactDigestInput struct {
	Digest string `path:"digest" doc:"sha256: and 64 lower-case hex digits: the SHA-256 of the artifact's whole content."`
}

// FinishArtifactInput completes a push.
type FinishArtifactInput struct {
	Digest string `path:"digest" doc:"sha256: and 64 lower-case hex digits: the SHA-256 of the artifact's whole content."`
	Body   struct {
		Size int64  `json:"size" minimum:"0" doc:"The content's length in bytes."`
		Name string `json:"name,omitempty" maxLength:"200" doc:"A name for people (the file's name); informational."`
	}
}

// ArtifactPushedOutput is a completed push.
type ArtifactPushedOutput struct {
	Body *artifacts.Pushed
}

// ArtifactStateOutput is what the hub holds of an artifact.
type ArtifactStateOutput struct {
	Body *artifacts.State
}

// ArtifactsOutput lists the complete artifacts.
type ArtifactsOutput struct {
	Body struct {
		Artifacts []artifacts.Summary `json:"artifacts"`
	}
}

// AgentArtifactInput is an agent asking for an artifact.
type AgentArtifactInput struct {
	ID     string `path:"id"`
	Digest string `path:"digest" doc:"sha256: and 64 lower-case hex digits: the SHA-256 of the artifact's whole content."`
}

// AgentArtifactChunkInput is an agent asking for one chunk of an artifact.
type AgentArtifactChunkInput struct {
	ID     string `path:"id"`
	Digest string `path:"digest" doc:"sha256: and 64 lower-case hex digits: the SHA-256 of the artifact's whole content."`
	N      int    `path:"n" minimum:"0" maximum:"999999" doc:"The chunk's number, from 0."`
}

// AgentArtifactOutput is an artifact's manifest.
type AgentArtifactOutput struct {
	Body *wire.ArtifactManifest
}

// AgentArtifactChunkOutput is one chunk's raw bytes.
type AgentArtifactChunkOutput struct {
	ContentType string `header:"Content-Type"`
	Body        []byte
}

// registerArtifacts is the artifacts room's operator side: push (chunks, then finish), state, list.
func registerArtifacts(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "push-artifact-chunk", Method: http.MethodPut, Path: "/v1/artifacts/{digest}/chunks/{n}",
		Summary: "Upload one chunk of an artifact",
		Description: "The raw bytes of chunk n (every chunk but the last has the chunkSize GET /v1/artifacts/{digest} answers, 4 MiB), with their SHA-256 in X-Pulse-Chunk-Sha256. " +
			"Uploading a chunk again is harmless. Nothing is usable until POST /v1/artifacts/{digest} checked the whole. Policy action push-artifact.",
		Metadata: map[string]any{"action": artifacts.ActionPush}, DefaultStatus: http.StatusNoContent,
		MaxBodyBytes: wire.MaxArtifactChunkSize + 1, Errors: []int{413, 422}},
		func(ctx context.Context, in *ArtifactChunkInput) (*struct{}, error) {
			return nil, h.Artifacts.PutChunk(ctx, in.Digest, in.N, in.Sha256, in.RawBody)
		})
	register(api, h, huma.Operation{OperationID: artifacts.ActionPush, Method: http.MethodPost, Path: "/v1/artifacts/{digest}",
		Summary: "Finish pushing an artifact",
		Description: "Reads the chunks back in order, checks their lengths and that the whole content hashes to the digest, then writes the manifest (create-only) and audits the push. " +
			"409 names the chunks still missing; 422 when the chunks are other content (they are removed: push again). An artifact already complete answers unchanged: true.",
		Errors: []int{409, 422}},
		func(ctx context.Context, in *FinishArtifactInput) (*ArtifactPushedOutput, error) {
			p, err := h.Artifacts.Finish(ctx, in.Digest, in.Body.Size, in.Body.Name)
			if err != nil {
				return nil, err
			}
			return &ArtifactPushedOutput{Body: p}, nil
		})
	register(api, h, huma.Operation{OperationID: "get-artifact", Method: http.MethodGet, Path: "/v1/artifacts/{digest}",
		Summary:     "What the hub holds of an artifact",
		Description: "The manifest of a complete artifact; otherwise the chunk size to push with and the chunks already stored, so an interrupted push uploads only the rest.",
		Errors:      []int{422}},
		func(ctx context.Context, in *ArtifactDigestInput) (*ArtifactStateOutput, error) {
			st, err := h.Artifacts.Status(ctx, in.Digest)
			if err != nil {
				return nil, err
			}
			return &ArtifactStateOutput{Body: st}, nil
		})
	register(api, h, huma.Operation{OperationID: "list-artifacts", Method: http.MethodGet, Path: "/v1/artifacts",
		Summary: "List artifacts", Description: "Every complete artifact: digest, size, name, who pushed it and when, by digest."},
		func(ctx context.Context, _ *struct{}) (*ArtifactsOutput, error) {
			list, err := h.Artifacts.List(ctx)
			if err != nil {
				return nil, err
			}
			out := &ArtifactsOutput{}
			out.Body.Artifacts = list
			return out, nil
		})
}

// registerAgentArtifacts is what an agent asks of the artifacts room: a manifest, and one chunk at a time.
func registerAgentArtifacts(api huma.API, h *Hub) {
	register(api, h, huma.Operation{OperationID: "agent-artifact", Method: http.MethodGet, Path: "/v1/agents/{id}/artifacts/{digest}",
		Summary:     "An artifact's manifest",
		Description: "Size, chunk size and every chunk's SHA-256 of a complete artifact. The agent checks each chunk against it and the whole against the digest its signed plan names.",
		Errors:      []int{404, 422}},
		func(ctx context.Context, in *AgentArtifactInput) (*AgentArtifactOutput, error) {
			m, err := h.Artifacts.Manifest(ctx, in.Digest)
			if err != nil {
				return nil, err
			}
			return &AgentArtifactOutput{Body: m}, nil
		})
	register(api, h, huma.Operation{OperationID: "agent-artifact-chunk", Method: http.MethodGet, Path: "/v1/agents/{id}/artifacts/{digest}/chunks/{n}",
		Summary:     "One chunk of an artifact",
		Description: "The raw bytes of chunk n of a complete artifact (at most 4 MiB).",
		Errors:      []int{404, 422}},
		func(ctx context.Context, in *AgentArtifactChunkInput) (*AgentArtifactChunkOutput, error) {
			b, err := h.Artifacts.Chunk(ctx, in.Digest, in.N)
			if err != nil {
				return nil, err
			}
			return &AgentArtifactChunkOutput{ContentType: "application/octet-stream", Body: b}, nil
		})
}
