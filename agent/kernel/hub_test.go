package kernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/agent/wire"
)

// fakeHub is a small stand-in for the hub's agent API: it checks every agent request's RFC 9421
// signature with the real verifier, signs envelopes with wire.Sign, and records what the agent uploads.
type fakeHub struct {
	t   *testing.T
	srv *httptest.Server

	priv  ed25519.PrivateKey
	keyID string

	mu         sync.Mutex
	token      string
	enrolls    []wire.EnrollRequest
	agents     map[string]ed25519.PublicKey
	inbox      []inboxEntry
	bell       chan struct{} // closed and replaced on every enqueue, to wake a held poll
	hold       int
	extraKeys  []wire.HubKey        // announced in poll responses when set
	endorsers  []ed25519.PrivateKey // sign the announced key set; nil means the hub's own key
	polls      int
	acks       []string
	heartbeats []wire.Heartbeat
	running    map[string]wire.Running
	chunks     map[string]map[int][]byte
	results    map[string]wire.Result
	rejections []wire.Rejection
	events     map[string][]string // per command: "running", "output/N", "result", in arrival order
	failUpload bool                // 503 for running/output/results/rejections
	failAll    bool                // 503 for every agent request
	failAcks   bool                // 503 for polls carrying acknowledgements
	refused    int                 // requests answered 503
	gone       map[string]bool     // command ids the hub answers 404 for
	badSigs    []string

	metricBatches []wire.MetricBatch // every batch stored, in arrival order (a batch uploaded again is stored once)
	metricPosts   []uint64           // the seq of every metrics request that reached the handler
	metricBodies  map[uint64]int     // the compressed size of each batch stored, by seq
	failMetrics   bool               // 503 for metrics
	refuseMetrics int                // answer metrics with this 4xx status (0: store them)
	watchEvery    int                // PollResponse.MetricsEverySeconds

	servePlans   bool                  // answer GET plans (an older hub answers 404)
	plans        []wire.SignedEnvelope // what GET plans answers
	planFetches  int
	planStatuses []wire.PlanStatus // every status posted, in arrival order

	inventories     []wire.InventoryReport // every inventory report taken, in arrival order
	inventoryPuts   int                    // every inventory request that reached the handler
	failInventory   bool                   // 503 for inventory reports
	refuseInventory int                    // answer inventory reports with this 4xx status (0: take them)
}

type inboxEntry struct {
	key string
	env wire.SignedEnvelope
}

func newFakeHub(t *testing.T) *fakeHub {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHub{
		t: t, priv: priv, keyID: wire.KeyIDFor(priv.Public().(ed25519.PublicKey)),
		token: "good-token", agents: map[string]ed25519.PublicKey{}, bell: make(chan struct{}), hold: 1,
		running: map[string]wire.Running{}, chunks: map[string]map[int][]byte{},
		results: map[string]wire.Result{}, events: map[string][]string{},
	}
	verifier, err := httpsig.NewVerifier(func(_ context.Context, keyID string) (ed25519.PublicKey, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if k, ok := h.agents[keyID]; ok {
			return k, nil
		}
		return nil, errors.New("unknown agent")
	}, httpsig.DefaultComponents(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/enroll", h.enroll)
	agentRoute := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, body []byte)) {
		upload := pattern != "POST /v1/agents/{id}/poll" && pattern != "POST /v1/agents/{id}/heartbeat"
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			v, err := verifier.Verify(r)
			if err != nil {
				h.mu.Lock()
				h.badSigs = append(h.badSigs, err.Error())
				h.mu.Unlock()
				problem(w, http.StatusUnauthorized, err.Error())
				return
			}
			if v.KeyID != r.PathValue("id") {
				problem(w, http.StatusUnauthorized, "signed by another agent")
				return
			}
			h.mu.Lock()
			fail := h.failAll || (upload && h.failUpload)
			if fail {
				h.refused++
			}
			h.mu.Unlock()
			if fail {
				problem(w, http.StatusServiceUnavailable, "store unavailable")
				return
			}
			body, _ := io.ReadAll(r.Body)
			fn(w, r, body)
		})
	}
	agentRoute("POST /v1/agents/{id}/poll", h.poll)
	agentRoute("POST /v1/agents/{id}/heartbeat", func(w http.ResponseWriter, r *http.Request, body []byte) {
		var hb wire.Heartbeat
		mustJSON(t, body, &hb)
		h.mu.Lock()
		h.heartbeats = append(h.heartbeats, hb)
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	agentRoute("POST /v1/agents/{id}/commands/{cmd}/running", func(w http.ResponseWriter, r *http.Request, body []byte) {
		var run wire.Running
		mustJSON(t, body, &run)
		h.mu.Lock()
		cmd := r.PathValue("cmd")
		h.running[cmd] = run
		h.events[cmd] = append(h.events[cmd], "running")
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	agentRoute("PUT /v1/agents/{id}/commands/{cmd}/output/{seq}", func(w http.ResponseWriter, r *http.Request, body []byte) {
		seq, err := strconv.Atoi(r.PathValue("seq"))
		if err != nil || r.Header.Get("Content-Type") != "application/octet-stream" || len(body) > wire.MaxChunkBytes {
			problem(w, http.StatusBadRequest, "bad chunk")
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		cmd := r.PathValue("cmd")
		if h.chunks[cmd] == nil {
			h.chunks[cmd] = map[int][]byte{}
		}
		if _, dup := h.chunks[cmd][seq]; dup {
			problem(w, http.StatusConflict, "chunk exists")
			return
		}
		h.chunks[cmd][seq] = body
		h.events[cmd] = append(h.events[cmd], "output/"+strconv.Itoa(seq))
		w.WriteHeader(http.StatusNoContent)
	})
	agentRoute("POST /v1/agents/{id}/results", func(w http.ResponseWriter, r *http.Request, body []byte) {
		var res wire.Result
		mustJSON(t, body, &res)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.gone[res.CommandID] {
			problem(w, http.StatusNotFound, "no command "+res.CommandID)
			return
		}
		if _, dup := h.results[res.CommandID]; dup {
			problem(w, http.StatusConflict, "result exists")
			return
		}
		h.results[res.CommandID] = res
		h.events[res.CommandID] = append(h.events[res.CommandID], "result")
		w.WriteHeader(http.StatusNoContent)
	})
	agentRoute("POST /v1/agents/{id}/rejections", func(w http.ResponseWriter, r *http.Request, body []byte) {
		var rej wire.Rejection
		mustJSON(t, body, &rej)
		h.mu.Lock()
		h.rejections = append(h.rejections, rej)
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	agentRoute("POST /v1/agents/{id}/metrics", h.metrics)
	agentRoute("GET /v1/agents/{id}/plans", func(w http.ResponseWriter, r *http.Request, body []byte) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.servePlans {
			problem(w, http.StatusNotFound, "no such route")
			return
		}
		h.planFetches++
		writeJSON(w, wire.AgentPlans{Plans: append([]wire.SignedEnvelope{}, h.plans...)})
	})
	agentRoute("POST /v1/agents/{id}/plans/{name}/status", func(w http.ResponseWriter, r *http.Request, body []byte) {
		var st wire.PlanStatus
		mustJSON(t, body, &st)
		h.mu.Lock()
		defer h.mu.Unlock()
		if st.Plan != r.PathValue("name") {
			problem(w, http.StatusBadRequest, "plan name differs from the path")
			return
		}
		h.planStatuses = append(h.planStatuses, st)
		w.WriteHeader(http.StatusNoContent)
	})
	agentRoute("PUT /v1/agents/{id}/resources", func(w http.ResponseWriter, r *http.Request, body []byte) {
		var rep wire.InventoryReport
		mustJSON(t, body, &rep)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.inventoryPuts++
		switch {
		case h.failInventory:
			problem(w, http.StatusServiceUnavailable, "store unavailable")
		case h.refuseInventory != 0:
			problem(w, h.refuseInventory, "refused by the test")
		case rep.Validate() != nil:
			problem(w, http.StatusUnprocessableEntity, rep.Validate().Error())
		default:
			h.inventories = append(h.inventories, rep)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
}

func mustJSON(t *testing.T, body []byte, v any) {
	if err := json.Unmarshal(body, v); err != nil {
		t.Errorf("hub: bad JSON from agent: %v: %s", err, body)
	}
}

func (h *fakeHub) enroll(w http.ResponseWriter, r *http.Request) {
	var req wire.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.Token != h.token {
		problem(w, http.StatusForbidden, "enrollment token unknown or expired")
		return
	}
	h.enrolls = append(h.enrolls, req)
	id := "agent-" + uuid.NewString()[:8]
	h.agents[id] = ed25519.PublicKey(req.PublicKey)
	writeJSON(w, wire.EnrollResponse{AgentID: id, Labels: map[string]string{"env": "test"}, HubKeys: h.hubKeys()})
}

func (h *fakeHub) hubKeys() []wire.HubKey {
	keys := []wire.HubKey{{KeyID: h.keyID, PublicKey: h.priv.Public().(ed25519.PublicKey)}}
	return append(keys, h.extraKeys...)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (h *fakeHub) poll(w http.ResponseWriter, r *http.Request, body []byte) {
	var req wire.PollRequest
	mustJSON(h.t, body, &req)
	deadline := time.After(time.Duration(h.hold) * time.Second)
	h.mu.Lock()
	if h.failAcks && len(req.Ack) > 0 {
		h.refused++
		h.mu.Unlock()
		problem(w, http.StatusServiceUnavailable, "acknowledgements refused by the test")
		return
	}
	h.polls++
	h.acks = append(h.acks, req.Ack...)
	h.inbox = slices.DeleteFunc(h.inbox, func(e inboxEntry) bool { return slices.Contains(req.Ack, e.key) })
wait:
	for len(h.inbox) == 0 {
		bell := h.bell
		h.mu.Unlock()
		select {
		case <-bell:
		case <-deadline:
			h.mu.Lock()
			break wait
		case <-r.Context().Done():
			return
		}
		h.mu.Lock()
	}
	endorsers := h.endorsers
	if endorsers == nil {
		endorsers = []ed25519.PrivateKey{h.priv}
	}
	resp := wire.PollResponse{HoldSeconds: h.hold, MetricsEverySeconds: h.watchEvery, HubKeys: h.hubKeys(), HubKeySignatures: wire.SignKeySet(h.hubKeys(), endorsers...)}
	for _, e := range h.inbox {
		se := e.env
		se.InboxKey = e.key
		resp.Envelopes = append(resp.Envelopes, se)
	}
	h.mu.Unlock()
	writeJSON(w, resp)
}

// metrics stores a batch as the contract says the hub does: JSON, gzip-compressed (Content-Encoding:
// gzip), valid by wire.MetricBatch.Validate, stored once per seq, 204.
func (h *fakeHub) metrics(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Content-Encoding") != "gzip" {
		h.t.Errorf("hub: metrics with Content-Type %q, Content-Encoding %q", r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
		problem(w, http.StatusUnsupportedMediaType, "want gzip-compressed JSON")
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		h.t.Errorf("hub: metrics body is not gzip: %v", err)
		problem(w, http.StatusBadRequest, "not gzip")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(zr, wire.MaxBatchBytes+1))
	if err != nil || len(raw) > wire.MaxBatchBytes {
		h.t.Errorf("hub: metrics body: %v (%d bytes)", err, len(raw))
		problem(w, http.StatusBadRequest, "bad gzip")
		return
	}
	var b wire.MetricBatch
	mustJSON(h.t, raw, &b)
	if err := b.Validate(); err != nil {
		h.t.Errorf("hub: the agent uploaded an invalid batch: %v", err)
		problem(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.metricPosts = append(h.metricPosts, b.Seq)
	switch {
	case h.failMetrics:
		h.refused++
		problem(w, http.StatusServiceUnavailable, "store unavailable")
		return
	case h.refuseMetrics != 0:
		problem(w, h.refuseMetrics, fmt.Sprintf("batch %d refused by the test hub", b.Seq))
		return
	}
	if !slices.ContainsFunc(h.metricBatches, func(o wire.MetricBatch) bool { return o.Seq == b.Seq }) {
		h.metricBatches = append(h.metricBatches, b)
		if h.metricBodies == nil {
			h.metricBodies = map[uint64]int{}
		}
		h.metricBodies[b.Seq] = len(body)
	}
	w.WriteHeader(http.StatusNoContent)
}

// metricPoints counts the points the hub stored of series name (any labels), and the seqs it stored.
func (h *fakeHub) metricPoints(name string) (points int, seqs []uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.metricBatches {
		seqs = append(seqs, b.Seq)
		for _, s := range b.Series {
			if s.Name == name {
				points += len(s.Points)
			}
		}
	}
	return points, seqs
}

// put places a signed envelope in the inbox under a fresh key and wakes a held poll.
func (h *fakeHub) put(se wire.SignedEnvelope) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := "inbox/" + uuid.NewString()
	h.inbox = append(h.inbox, inboxEntry{key: key, env: se})
	close(h.bell)
	h.bell = make(chan struct{})
	return key
}

// envelope builds a command envelope for agent, valid for a minute.
func (h *fakeHub) envelope(agent, cmdID, name string, params map[string]string) wire.Envelope {
	body, _ := json.Marshal(wire.Command{CommandID: cmdID, Name: name, Params: params, TimeoutSeconds: 30})
	now := time.Now()
	return wire.Envelope{ID: uuid.NewString(), Agent: agent, IssuedAt: now, NotAfter: now.Add(time.Minute),
		Issuer: "alice", Kind: wire.KindCommand, Body: body}
}

// planEnvelope signs a plan version for agent, as the hub delivers it and lists it.
func (h *fakeHub) planEnvelope(agent string, p wire.Plan) wire.SignedEnvelope {
	body, err := json.Marshal(p)
	if err != nil {
		h.t.Fatal(err)
	}
	now := time.Now()
	return h.sign(wire.Envelope{ID: fmt.Sprintf("plan-%s-v%d-%s", p.Name, p.Version, uuid.NewString()[:8]), Agent: agent,
		IssuedAt: now, NotAfter: now.Add(time.Hour), Issuer: "alice", Kind: wire.KindPlan, Body: body})
}

// setPlans makes GET plans answer these envelopes (and answer at all).
func (h *fakeHub) setPlans(envs ...wire.SignedEnvelope) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servePlans = true
	h.plans = envs
}

// planStatus is the last status the agent reported for a plan.
func (h *fakeHub) planStatus(name string) (wire.PlanStatus, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.planStatuses) - 1; i >= 0; i-- {
		if h.planStatuses[i].Plan == name {
			return h.planStatuses[i], true
		}
	}
	return wire.PlanStatus{}, false
}

func (h *fakeHub) sign(env wire.Envelope) wire.SignedEnvelope {
	se, err := wire.Sign(env, h.keyID, h.priv)
	if err != nil {
		h.t.Fatal(err)
	}
	return se
}

// send signs and enqueues a command, returning its command id.
func (h *fakeHub) send(agent, name string, params map[string]string) string {
	cmdID := "cmd-" + uuid.NewString()[:8]
	h.put(h.sign(h.envelope(agent, cmdID, name, params)))
	return cmdID
}

func (h *fakeHub) result(cmdID string) (wire.Result, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.results[cmdID]
	return r, ok
}

// output is a command's output as the hub would serve it: the chunks, or what the result carries inline.
func (h *fakeHub) output(cmdID string) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.results[cmdID]; ok && len(h.chunks[cmdID]) == 0 {
		return r.Output
	}
	var out []byte
	for i := 0; ; i++ {
		c, ok := h.chunks[cmdID][i]
		if !ok {
			return out
		}
		out = append(out, c...)
	}
}

func (h *fakeHub) with(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn()
}

// waitResult waits for the result of cmdID.
func (h *fakeHub) waitResult(cmdID string) wire.Result {
	h.t.Helper()
	var r wire.Result
	eventually(h.t, 10*time.Second, func() bool {
		var ok bool
		r, ok = h.result(cmdID)
		return ok
	}, "result of "+cmdID)
	return r
}

func eventually(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *fakeHub) String() string { return fmt.Sprintf("fakeHub(%s)", h.srv.URL) }
