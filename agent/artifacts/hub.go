package artifacts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/agent/wire"
)

// HubSource fetches manifests and chunks from the hub's agent routes
// (GET /v1/agents/{id}/artifacts/{digest} and …/chunks/{n}), each request signed by the agent's key.
type HubSource struct {
	Base    string // the hub URL, without a trailing slash
	AgentID string
	Signer  *httpsig.Signer
	HTTP    *http.Client
}

// requestTimeout bounds one manifest or chunk request (4 MiB on a slow link).
const requestTimeout = 2 * time.Minute

// HubError is an answer of the hub that was not a success, with the detail of its problem.
type HubError struct {
	Status int
	Detail string
}

// Error says the status and the hub's explanation.
func (e *HubError) Error() string { return fmt.Sprintf("hub answered %d: %s", e.Status, e.Detail) }

func (h *HubSource) get(ctx context.Context, rel string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.Base+"/v1/agents/"+url.PathEscape(h.AgentID)+"/"+rel, nil)
	if err != nil {
		return nil, err
	}
	if err := h.Signer.Sign(req); err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	client := h.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Detail string `json:"detail"`
		}
		detail := strings.TrimSpace(string(b[:min(len(b), 300)]))
		if json.Unmarshal(b, &p) == nil && p.Detail != "" {
			detail = p.Detail
		}
		return nil, &HubError{Status: resp.StatusCode, Detail: detail}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("the hub answered more than %d bytes", limit)
	}
	return b, nil
}

// Manifest asks the hub for a complete artifact's manifest.
func (h *HubSource) Manifest(ctx context.Context, digest string) (wire.ArtifactManifest, error) {
	var m wire.ArtifactManifest
	b, err := h.get(ctx, "artifacts/"+url.PathEscape(digest), 1<<20)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode the manifest: %w", err)
	}
	return m, nil
}

// Chunk asks the hub for chunk n's raw bytes.
func (h *HubSource) Chunk(ctx context.Context, digest string, n int) ([]byte, error) {
	return h.get(ctx, fmt.Sprintf("artifacts/%s/chunks/%d", url.PathEscape(digest), n), wire.MaxArtifactChunkSize)
}
