package kernel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse/agent/httpsig"
)

// maxResponseBytes bounds what the agent reads from the hub; a poll with many envelopes is the largest.
const maxResponseBytes = 32 << 20

// HubError is a response from the hub that was not a success. The hub sends RFC 9457 problem details;
// Detail is their "detail" (or the start of the body), which usually says what to fix.
type HubError struct {
	Op     string
	Status int
	Detail string
}

// Error names the operation, the status and the hub's own explanation, so a log line alone says what
// to fix.
func (e *HubError) Error() string {
	d := e.Detail
	if d == "" {
		d = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s: hub answered %d: %s", e.Op, e.Status, d)
}

// statusClientClosed is the non-standard 499 a hub answers when its own request context ended (it is
// shutting down, or a proxy dropped the request): nothing is wrong with the request itself.
const statusClientClosed = 499

// retryable reports whether an error may go away by itself: the hub or the network is down (5xx,
// timeouts, connection errors), it is overloaded (429), the clocks disagree (401 on a signature that is
// too old or new), or the agent is unknown for now (404 on a poll or heartbeat, e.g. behind a proxy that
// is being reconfigured). Anything else is a refusal that repeating the same request cannot fix.
func retryable(err error) bool {
	var he *HubError
	if errors.As(err, &he) {
		switch {
		case he.Status >= 500, he.Status == statusClientClosed, he.Status == http.StatusTooManyRequests, he.Status == http.StatusRequestTimeout,
			he.Status == http.StatusUnauthorized, he.Status == http.StatusNotFound:
			return true
		}
		return false
	}
	return true // transport errors
}

// hubClient sends the agent's requests. Every request except enrollment is signed with the agent key.
type hubClient struct {
	base    string // hub URL without trailing slash
	agentID string
	http    *http.Client
	signer  *httpsig.Signer
}

// agentURL builds /v1/agents/{id}/{rel}; rel is already escaped by its producer.
func (c *hubClient) agentURL(rel string) string {
	return c.base + "/v1/agents/" + url.PathEscape(c.agentID) + "/" + rel
}

// do sends one request and returns the body of a 2xx response. 409 counts as success when ok409 is set:
// for write-once objects it means "already stored", which is what the agent wanted.
func (c *hubClient) do(ctx context.Context, op, method, target, contentType string, body []byte, timeout time.Duration, sign, ok409 bool) ([]byte, int, error) {
	var hdr http.Header
	if contentType != "" {
		hdr = http.Header{"Content-Type": {contentType}}
	}
	return c.doHeaders(ctx, op, method, target, hdr, body, timeout, sign, ok409)
}

// doHeaders is do with request headers of the caller's (a metric batch's Content-Encoding: gzip). The
// signature's content digest covers the body as sent, that is compressed.
func (c *hubClient) doHeaders(ctx context.Context, op, method, target string, hdr http.Header, body []byte, timeout time.Duration, sign, ok409 bool) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	for k, v := range hdr {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if sign {
		if err := c.signer.Sign(req); err != nil {
			return nil, 0, fmt.Errorf("%s: sign request: %w", op, err)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, describeTransportError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s: read response: %w", op, err)
	}
	if resp.StatusCode/100 == 2 || (ok409 && resp.StatusCode == http.StatusConflict) {
		return data, resp.StatusCode, nil
	}
	return nil, resp.StatusCode, &HubError{Op: op, Status: resp.StatusCode, Detail: problemDetail(resp.Header.Get("Content-Type"), data)}
}

// postJSON sends v as JSON and decodes a JSON answer into out (if out is not nil).
func (c *hubClient) postJSON(ctx context.Context, op, target string, v, out any, timeout time.Duration, sign bool) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	data, _, err := c.do(ctx, op, http.MethodPost, target, "application/json", body, timeout, sign, false)
	if err != nil {
		return err
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: decode answer: %w", op, err)
		}
	}
	return nil
}

// problemDetail extracts the actionable part of an error response.
func problemDetail(contentType string, body []byte) string {
	if strings.Contains(contentType, "json") {
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(body, &p) == nil {
			if p.Detail != "" {
				return p.Detail
			}
			if p.Title != "" {
				return p.Title
			}
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func describeTransportError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no answer in time: %w", err)
	}
	return err
}

// health turns many failing requests into one warning per outage: an agent whose hub is down for an
// hour must not write a line per retry, but the operator must see when it started and when it ended.
type health struct {
	log   *slog.Logger
	mu    sync.Mutex
	down  bool
	since time.Time
	class string
}

// fail records a failed request. It warns when an outage starts or its kind changes (say from
// "connection refused" to "401"), and logs the rest at debug level.
func (h *health) fail(op string, err error) {
	class := "unreachable"
	var he *HubError
	if errors.As(err, &he) {
		class = fmt.Sprint(he.Status)
		if he.Status >= 500 || he.Status == statusClientClosed {
			class = "5xx"
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down && h.class == class {
		h.log.Debug("hub request failed; retrying", "op", op, "err", err)
		return
	}
	if !h.down {
		h.since = time.Now()
	}
	h.down, h.class = true, class
	msg := "cannot reach the hub; retrying with backoff (logged once per outage)"
	if he != nil {
		switch he.Status {
		case http.StatusUnauthorized:
			msg = "the hub refuses the agent's signature; if it says the agent is unknown, it was deleted there (remove identity.json from the state directory and enroll again), otherwise check this host's clock"
		case http.StatusNotFound:
			msg = "the hub does not know this agent; if it was deleted there, remove identity.json from the state directory and enroll again"
		default:
			if he.Status < 500 && he.Status != statusClientClosed {
				msg = "the hub refused a request"
			}
		}
	}
	h.log.Warn(msg, "op", op, "err", err)
}

// ok records a successful request, closing an outage if one was open.
func (h *health) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		h.log.Info("hub reachable again", "outage", time.Since(h.since).Round(time.Second))
		h.down, h.class = false, ""
	}
}

// backoff is exponential with full jitter: each wait is uniform in [0, min(max, min·2^n)), so a fleet
// that lost its hub at the same moment does not come back in lock-step.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	ceil := b.max
	if b.n < 30 {
		if c := b.min << b.n; c < ceil {
			ceil = c
		}
	}
	b.n++
	return time.Duration(rand.Int64N(int64(ceil))) + time.Millisecond
}

func (b *backoff) reset() { b.n = 0 }

// sleep waits d or until ctx is done; it reports whether the full wait happened.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
