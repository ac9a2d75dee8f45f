// Package simagent speaks the real agent protocol (RFC 9421-signed requests, signed envelopes) from
// inside a test process, so hub tests and benchmarks can drive hundreds of agents without hundreds of
// processes. It verifies what the hub sends exactly as the agent does, with agent/wire, but runs no
// commands: the caller decides what each agent answers. The real agent is tested end to end elsewhere.
package simagent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/agent/wire"
)

// Agent is one simulated agent.
type Agent struct {
	ID      string
	Name    string
	Hub     string
	Key     ed25519.PrivateKey
	HubKeys []wire.HubKey
	Labels  map[string]string
	signer  *httpsig.Signer
	HTTP    *http.Client
}

// Catalog is the catalog simulated agents advertise unless told otherwise.
var Catalog = []wire.CommandSpec{
	{Name: "host_uptime", Group: "host", Description: "uptime"},
	{Name: "echo", Group: "exec", Params: []wire.ParamSpec{{Name: "text", MaxBytes: 64, Pattern: `[a-z ]*`}}},
}

// Enroll makes a key and enrolls with token.
func Enroll(ctx context.Context, hub, token, name string, catalog []wire.CommandSpec) (*Agent, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if catalog == nil {
		catalog = Catalog
	}
	a := &Agent{Hub: hub, Name: name, Key: priv, HTTP: &http.Client{Timeout: 2 * time.Minute, Transport: ownTransport()}}
	var resp wire.EnrollResponse
	req := wire.EnrollRequest{Token: token, PublicKey: pub, Hostname: name, Version: "sim", Catalog: catalog}
	if err := a.do(ctx, "POST", "/v1/enroll", req, &resp, false); err != nil {
		return nil, err
	}
	a.ID, a.HubKeys, a.Labels = resp.AgentID, resp.HubKeys, resp.Labels
	a.signer, err = httpsig.NewSigner(priv, a.ID, nil)
	return a, err
}

// HTTPError is a non-2xx answer.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// Do sends a request signed by this agent (or unsigned), decoding a JSON answer into out (or, for a
// *[]byte, keeping the raw bytes).
func (a *Agent) do(ctx context.Context, method, path string, in, out any, sign bool) error {
	var body []byte
	var ct string
	switch v := in.(type) {
	case nil:
	case []byte:
		body, ct = v, "application/octet-stream"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body, ct = b, "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Hub+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if sign {
		if err := a.signer.Sign(req); err != nil {
			return err
		}
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return &HTTPError{Status: resp.StatusCode, Body: string(b)}
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// ownTransport is a connection pool of the agent's own, as a real agent (its own process) has: a
// thousand simulated agents sharing http.DefaultTransport, which keeps 2 idle connections per host,
// would dial the hub anew for nearly every request.
func ownTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 4
	return t
}

// Signed sends a signed request on this agent's behalf.
func (a *Agent) Signed(ctx context.Context, method, path string, in, out any) error {
	return a.do(ctx, method, path, in, out, true)
}

// Heartbeat reports the agent alive.
func (a *Agent) Heartbeat(ctx context.Context) error {
	return a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/heartbeat", wire.Heartbeat{Version: "sim", Time: time.Now()}, nil)
}

// Work is a verified envelope with its inbox key, and its body decoded: the command of a KindCommand
// envelope, the plan of a KindPlan one.
type Work struct {
	InboxKey string
	Envelope wire.Envelope
	Command  wire.Command
	Plan     wire.Plan
}

// verify checks a signed envelope as the real agent does (the hub's signature, addressed to this
// agent, valid now) and decodes its body.
func (a *Agent) verify(se wire.SignedEnvelope) (Work, error) {
	env, err := se.Verify(a.HubKeys)
	if err != nil {
		return Work{}, fmt.Errorf("envelope %s: %w", se.InboxKey, err)
	}
	if err := env.Check(a.ID, time.Now(), time.Minute); err != nil {
		return Work{}, fmt.Errorf("envelope %s: %w", se.InboxKey, err)
	}
	w := Work{InboxKey: se.InboxKey, Envelope: env}
	switch env.Kind {
	case wire.KindCommand:
		err = json.Unmarshal(env.Body, &w.Command)
	case wire.KindPlan:
		err = json.Unmarshal(env.Body, &w.Plan)
	}
	if err != nil {
		return Work{}, fmt.Errorf("envelope %s: body: %w", env.ID, err)
	}
	return w, nil
}

// Poll polls once, acknowledging ack, and verifies every envelope as the real agent does.
func (a *Agent) Poll(ctx context.Context, ack []string) ([]Work, wire.PollResponse, error) {
	var resp wire.PollResponse
	if err := a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/poll", wire.PollRequest{Ack: ack}, &resp); err != nil {
		return nil, resp, err
	}
	var out []Work
	for _, se := range resp.Envelopes {
		w, err := a.verify(se)
		if err != nil {
			return nil, resp, err
		}
		out = append(out, w)
	}
	return out, resp, nil
}

// Plans fetches the newest version of every plan that targets this agent, each verified as a polled
// envelope is (a plan signed for another agent, or by another key, is an error).
func (a *Agent) Plans(ctx context.Context) ([]Work, error) {
	var resp wire.AgentPlans
	if err := a.Signed(ctx, "GET", "/v1/agents/"+a.ID+"/plans", nil, &resp); err != nil {
		return nil, err
	}
	out := make([]Work, 0, len(resp.Plans))
	for _, se := range resp.Plans {
		w, err := a.verify(se)
		if err != nil {
			return nil, err
		}
		if w.Envelope.Kind != wire.KindPlan {
			return nil, fmt.Errorf("envelope %s: kind %s among the agent's plans", w.Envelope.ID, w.Envelope.Kind)
		}
		out = append(out, w)
	}
	return out, nil
}

// ReportPlan reports where this agent stands on a plan (st.Plan names it), as the agent does after
// every reconcile that changed something.
func (a *Agent) ReportPlan(ctx context.Context, st wire.PlanStatus) error {
	if st.At.IsZero() {
		st.At = time.Now().UTC()
	}
	return a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/plans/"+st.Plan+"/status", st, nil)
}

// Complete reports a command as the real agent reports one that finished within a second: output of
// at most wire.MaxInlineOutput bytes inline in the result, more in chunks of at most wire.MaxChunkBytes
// before it; no running notice (Running sends one, as the agent does for a longer command).
func (a *Agent) Complete(ctx context.Context, w Work, status wire.Status, exit int, output []byte) error {
	cmd := w.Command.CommandID
	now := time.Now()
	res := wire.Result{CommandID: cmd, EnvelopeID: w.Envelope.ID, Status: status, ExitCode: &exit, StartedAt: now, FinishedAt: now,
		OutputBytes: int64(len(output))}
	if len(output) <= wire.MaxInlineOutput {
		res.Output = output
	} else {
		for off := 0; off < len(output); off += wire.MaxChunkBytes {
			end := min(off+wire.MaxChunkBytes, len(output))
			if err := a.Signed(ctx, "PUT", fmt.Sprintf("/v1/agents/%s/commands/%s/output/%d", a.ID, cmd, res.OutputChunks), output[off:end], nil); err != nil {
				return err
			}
			res.OutputChunks++
		}
	}
	return a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/results", res, nil)
}

// Running tells the hub a command is still running, as the agent does a second after it started one.
func (a *Agent) Running(ctx context.Context, w Work) error {
	return a.Signed(ctx, "POST", fmt.Sprintf("/v1/agents/%s/commands/%s/running", a.ID, w.Command.CommandID), wire.Running{EnvelopeID: w.Envelope.ID, At: time.Now()}, nil)
}

// Serve polls until ctx ends, handing every envelope to handle and acknowledging it with the next
// poll, as the agent's poll loop does; acknowledgements a failed poll carried are sent again, and a
// failed poll is retried after a short pause (the hub may be restarting).
func (a *Agent) Serve(ctx context.Context, handle func(Work)) {
	var ack []string
	for ctx.Err() == nil {
		works, _, err := a.Poll(ctx, ack)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		ack = nil
		for _, w := range works {
			ack = append(ack, w.InboxKey)
			handle(w)
		}
	}
}

// UploadMetrics uploads a batch of samples as the agent does: the JSON gzip-compressed, with
// Content-Encoding: gzip, signed. The hub answers 204 for a batch it stored (or had stored).
func (a *Agent) UploadMetrics(ctx context.Context, b wire.MetricBatch) error {
	js, err := json.Marshal(b)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return err
	}
	return a.UploadMetricsBody(ctx, "gzip", buf.Bytes())
}

// UploadMetricsBody sends body as a metric upload with the given Content-Encoding ("" for none), so
// tests can send what a broken agent would.
func (a *Agent) UploadMetricsBody(ctx context.Context, encoding string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, "POST", a.Hub+"/v1/agents/"+a.ID+"/metrics", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	if err := a.signer.Sign(req); err != nil {
		return err
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return &HTTPError{Status: resp.StatusCode, Body: string(rb)}
	}
	return nil
}
