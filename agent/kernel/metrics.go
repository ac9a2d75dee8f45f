package kernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsehq/pulse/agent/atomicfile"
	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// The metrics outbox, inside the state directory:
//
//	metrics/seq                         the last batch number handed out (survives restarts; seqfile.go)
//	metrics/<seq, 20 digits>.json.gz    batches waiting for the hub, uploaded oldest first
//	metrics/refused/<seq>.json.gz       batches the hub refused for good, kept for an operator
//	metrics/refused/<seq>.reason        why
//
// It is separate from the report outbox (agent/state) on purpose: a backlog of metric batches after a
// long outage must never hold up a command's result, and a batch is already a file of its own.
const (
	metricsDir        = "metrics"
	metricsRefusedDir = "refused"
	metricsSeqFile    = "seq"
	batchExt          = ".json.gz"
)

// DefaultMetricsOutboxBytes bounds the waiting batches. At the default settings a batch of the host
// integration is ~7 KB, so 32 MiB holds about two weeks of a hub outage; beyond it the oldest batch is
// dropped (logged, and counted in pulse_agent_metrics_batches_dropped_total), because a disk filled by
// metrics would break what the agent is for.
const DefaultMetricsOutboxBytes = 32 << 20

// maxRefusedBatches is how many refused batches are kept for inspection; older ones are removed with a
// warning, so a hub that refuses everything cannot fill the disk either.
const maxRefusedBatches = 100

// flushPoints cuts a batch early when this many points accumulated (many sources, a long upload
// interval), well inside wire.MaxBatchPoints.
const flushPoints = wire.MaxBatchPoints / 2

// maxSourceSeries leaves room in a batch for the kernel's own series (ownSeries).
const maxSourceSeries = wire.MaxBatchSeries - 10

// metrics samples every integration.MetricSource, accumulates the points in memory, cuts them into
// a numbered wire.MetricBatch every upload interval (sooner while someone watches the agent live),
// writes each batch gzip-compressed and atomically into its outbox and uploads the outbox in order. The
// only disk writes are one file per batch and the sequence number: samples live in memory until then,
// so an agent on an SD card writes ~75 KB an hour of metrics (~1 MiB with ext4's journal), not one
// file per sample (docs/metrics-agent.md).
type metrics struct {
	a           *Agent
	log         *slog.Logger
	dir         string
	samplers    []integration.Sampler
	interval    int // seconds, the shortest sampling interval (wire.MetricBatch.IntervalSeconds)
	uploadEvery time.Duration
	outboxBytes int64
	health      *health
	noRoute     bool // the hub answered 404 to metrics (logged once); only the uploader touches it

	mu     sync.Mutex
	acc    map[string]*wire.Series // by name and labels
	order  []string                // keys of acc, first seen first
	points int
	warned map[string]bool // series refused once already (invalid, too many): logged once

	writeMu sync.Mutex // one batch written at a time, so seq and file names appear in order
	seq     uint64     // the last seq handed out
	seqf    seqFile    // where it is kept

	dropped atomic.Uint64 // batches dropped from a full outbox since start
	refused atomic.Uint64 // batches the hub refused since start
	directs atomic.Uint64 // live batches uploaded without touching the outbox, for tests

	wake     chan struct{}     // a batch was written: upload
	flushReq chan struct{}     // enough points for a batch: cut one now
	live     chan watchRequest // what the hub said about live watching, from each poll
	now      func() time.Time  // the clock, for tests
	onWrite  func(bytes int)   // tests and measurements: called with every batch file's size
}

// watchRequest is the hub's MetricsEverySeconds from one poll answer and how long it holds unless a
// later answer renews it.
type watchRequest struct {
	every, validFor time.Duration
}

func newMetrics(a *Agent) (*metrics, error) {
	m := &metrics{
		a:           a,
		log:         a.log.With("component", "metrics"),
		dir:         filepath.Join(a.st.Dir(), metricsDir),
		samplers:    a.set.Samplers(),
		uploadEvery: a.cfg.MetricsUpload,
		outboxBytes: a.cfg.MetricsOutboxBytes,
		acc:         map[string]*wire.Series{},
		warned:      map[string]bool{},
		wake:        make(chan struct{}, 1),
		flushReq:    make(chan struct{}, 1),
		live:        make(chan watchRequest, 1),
		now:         time.Now,
		health:      &health{log: a.log},
	}
	for _, s := range m.samplers {
		iv := max(1, int(s.Every/time.Second))
		if m.interval == 0 || iv < m.interval {
			m.interval = iv
		}
	}
	if m.interval == 0 {
		m.interval = int(wire.DefaultMetricSample / time.Second)
	}
	if err := os.MkdirAll(filepath.Join(m.dir, metricsRefusedDir), 0o700); err != nil {
		return nil, fmt.Errorf("metrics outbox: %w", err)
	}
	seq, err := m.lastSeq()
	if err != nil {
		return nil, err
	}
	m.seq = seq
	m.seqf.path = filepath.Join(m.dir, metricsSeqFile)
	return m, nil
}

// lastSeq is the highest batch number ever handed out: the seq file, or a batch file numbered higher
// (the agent stopped between writing a batch and the seq file would be a bug, but costs nothing to
// cover), so a number is never used twice for different samples.
func (m *metrics) lastSeq() (uint64, error) {
	var seq uint64
	data, err := os.ReadFile(filepath.Join(m.dir, metricsSeqFile))
	switch {
	case err == nil:
		seq, err = parseSeqRecord(data)
		if err != nil {
			// Metrics must not keep the agent from starting, nor may a number be used again (the hub
			// would take the batch for one it stored). No agent has cut more batches than seconds
			// have passed since 1970, so continuing from the current Unix time is safe.
			seq = uint64(m.now().Unix())
			m.log.Error("the metrics seq file is corrupt; numbering batches from the current Unix time, above any used before",
				"file", filepath.Join(m.dir, metricsSeqFile), "err", err, "seq", seq)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("metrics outbox: %w", err)
	}
	for _, d := range []string{m.dir, filepath.Join(m.dir, metricsRefusedDir)} {
		names, err := batchFiles(d)
		if err != nil {
			return 0, err
		}
		for _, n := range names {
			if s := seqOf(n); s > seq {
				seq = s
			}
		}
	}
	return seq, nil
}

// batchFiles lists the batch files in dir, oldest (lowest seq) first.
func batchFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("metrics outbox: %w", err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); !e.IsDir() && !atomicfile.IsTemp(n) && strings.HasSuffix(n, batchExt) && seqOf(n) > 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names) // zero-padded
	return names, nil
}

func seqOf(name string) uint64 {
	s, _ := strconv.ParseUint(strings.TrimSuffix(name, batchExt), 10, 64)
	return s
}

func batchName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, batchExt) }

// run samples until ctx ends, cutting batches on schedule, and writes what it holds to the outbox
// before it returns, so a graceful shutdown loses no sample.
func (m *metrics) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range m.samplers {
		wg.Go(func() { m.sampleLoop(ctx, s) })
	}
	if len(m.samplers) > 0 {
		m.log.Info("sampling metrics", "sources", len(m.samplers), "intervalSeconds", m.interval, "uploadEvery", m.uploadEvery)
		m.flusher(ctx)
	}
	wg.Wait()
	m.flush("shutdown")
}

// sampleLoop samples one source at once and then every interval. Errors are logged when they change,
// so a sandbox that hides one file costs one line, not one every ten seconds.
func (m *metrics) sampleLoop(ctx context.Context, s integration.Sampler) {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	var lastErr string
	for {
		sctx, cancel := context.WithTimeout(ctx, s.Every)
		series, err := s.Sample(sctx, m.now())
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && err.Error() != lastErr:
			lastErr = err.Error()
			m.log.Warn("metrics partly unavailable; sampling what can be read (logged again only when this changes)", "source", s.ID, "err", err)
		case err != nil:
			m.log.Debug("metrics partly unavailable", "source", s.ID, "err", err)
		default:
			lastErr = ""
		}
		m.add(series)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// add accumulates one sample's series. A series the hub would refuse (a bad name or label, a value that
// is not a number) is left out and logged once, so one broken series never costs a whole batch.
func (m *metrics) add(series []wire.Series) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range series {
		key := s.Key()
		cur, ok := m.acc[key]
		if !ok {
			if len(m.acc) >= maxSourceSeries {
				m.warnOnce("too many:"+s.Name, "more series than a batch may hold; left out", "series", s.Name, "max", maxSourceSeries)
				continue
			}
			if err := checkSeries(s); err != nil {
				m.warnOnce("bad:"+key, "a metric series the hub would refuse; left out", "series", s.Name, "err", err)
				continue
			}
			cur = &wire.Series{Name: s.Name, Kind: s.Kind, Labels: maps.Clone(s.Labels)}
			m.acc[key] = cur
			m.order = append(m.order, key)
		}
		for _, p := range s.Points {
			if n := len(cur.Points); n > 0 && p.T <= cur.Points[n-1].T {
				continue // the clock stepped back, or a source sampled twice in a millisecond
			}
			if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
				continue // the name and labels were checked when the series first came
			}
			cur.Points = append(cur.Points, p)
			m.points++
		}
	}
	if m.points >= flushPoints {
		select {
		case m.flushReq <- struct{}{}:
		default:
		}
	}
}

// checkSeries holds one series to the hub's rules (wire.MetricBatch.Validate) by validating a batch of
// it alone.
func checkSeries(s wire.Series) error {
	if len(s.Points) == 0 {
		s.Points = nil
	}
	from := time.UnixMilli(0)
	if len(s.Points) > 0 {
		from = time.UnixMilli(s.Points[0].T)
	}
	to := from.Add(time.Millisecond)
	if n := len(s.Points); n > 0 {
		to = time.UnixMilli(s.Points[n-1].T + 1)
	}
	b := wire.MetricBatch{Seq: 1, From: from, To: to, IntervalSeconds: 1, Series: []wire.Series{s}}
	return b.Validate()
}

func (m *metrics) warnOnce(key, msg string, args ...any) {
	if m.warned[key] || len(m.warned) >= 1000 { // a source inventing names must not grow this forever
		return
	}
	m.warned[key] = true
	m.log.Warn(msg, args...)
}

// flusher cuts a batch every upload interval, or every interval the hub asks for while someone
// watches this agent live, or when enough points accumulated.
func (m *metrics) flusher(ctx context.Context) {
	var live time.Duration // 0: nobody watches
	var liveUntil time.Time
	every := func() time.Duration {
		if live > 0 {
			return live
		}
		return m.uploadEvery
	}
	t := time.NewTimer(m.uploadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if live > 0 && m.now().After(liveUntil) {
				m.log.Info("live metrics ended (the hub stopped asking)", "uploadEvery", m.uploadEvery)
				live = 0
			}
			if live > 0 {
				m.flush("live")
			} else {
				m.flush("interval")
			}
		case <-m.flushReq:
			m.flush("full")
		case w := <-m.live:
			if w.every <= 0 {
				if live > 0 {
					m.log.Info("live metrics ended", "uploadEvery", m.uploadEvery)
					live = 0
					t.Reset(every())
				}
				continue // the timer runs on
			}
			d := min(max(w.every, time.Second), m.uploadEvery)
			liveUntil = m.now().Add(w.validFor)
			if live > 0 && d >= live {
				live = d
				continue
			}
			if live == 0 {
				m.log.Info("someone watches this agent live: uploading metrics more often", "every", d)
			}
			live = d
			m.flush("live") // what is held now, at once
		}
		t.Reset(every()) // since Go 1.23 a Reset timer never delivers a stale tick

	}
}

// watch passes on the hub's MetricsEverySeconds from a poll answer; validFor is how long it holds if no
// later answer renews it (the hub may be gone).
func (m *metrics) watch(every, validFor time.Duration) {
	w := watchRequest{every: every, validFor: validFor}
	for {
		select {
		case m.live <- w:
			return
		default:
		}
		select { // replace an older, unread request with this one
		case <-m.live:
		default:
		}
	}
}

// cut takes what accumulated as the next batch, or nil when there is nothing.
func (m *metrics) cut() *wire.MetricBatch {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.points == 0 {
		return nil
	}
	b := &wire.MetricBatch{IntervalSeconds: m.interval}
	from, to := int64(0), int64(0)
	for _, k := range m.order {
		s := m.acc[k]
		if len(s.Points) == 0 {
			continue
		}
		if first := s.Points[0].T; from == 0 || first < from {
			from = first
		}
		to = max(to, s.Points[len(s.Points)-1].T)
		b.Series = append(b.Series, *s)
	}
	m.acc, m.order, m.points = map[string]*wire.Series{}, nil, 0
	cutAt := max(m.now().UnixMilli(), to)
	b.Series = append(b.Series, m.ownSeries(cutAt)...)
	b.From, b.To = time.UnixMilli(from).UTC(), time.UnixMilli(cutAt+1).UTC()
	return b
}

// ownSeries are the kernel's own metrics about its metrics, so an operator sees in the data itself
// that batches were dropped or refused.
func (m *metrics) ownSeries(t int64) []wire.Series {
	pt := func(v float64) []wire.Point { return []wire.Point{{T: t, V: v}} }
	return []wire.Series{
		{Name: "pulse_agent_metrics_batches_dropped_total", Kind: wire.MetricCounter, Points: pt(float64(m.dropped.Load()))},
		{Name: "pulse_agent_metrics_batches_refused_total", Kind: wire.MetricCounter, Points: pt(float64(m.refused.Load()))},
		{Name: "pulse_agent_metrics_outbox_bytes", Kind: wire.MetricGauge, Points: pt(float64(m.outboxSize()))},
	}
}

func (m *metrics) outboxSize() int64 {
	names, _ := batchFiles(m.dir)
	var n int64
	for _, name := range names {
		if fi, err := os.Stat(filepath.Join(m.dir, name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// flush cuts a batch of what accumulated and writes it to the outbox, then wakes the uploader. A
// failure to write is logged and the samples are lost: keeping them in memory would only grow it while
// the disk is broken.
func (m *metrics) flush(why string) {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	b := m.cut()
	if b == nil {
		return
	}
	// While someone watches, a batch every few seconds through the outbox would cost a file write,
	// its fsyncs and a delete each: a dashboard left open all day would wear an SD card. So a live
	// batch goes to the hub straight from memory when nothing older waits, and only to the outbox if
	// the hub does not take it.
	direct := why == "live" && m.a != nil
	if err := m.write(b, direct); err != nil {
		m.log.Error("metric samples could not be written to the outbox and are lost", "why", why, "err", err)
		return
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// write numbers b, persists the number, and writes b to the outbox (split in two if it is larger
// than the hub accepts), then enforces the outbox bound.
func (m *metrics) write(b *wire.MetricBatch, direct bool) error {
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode metric batch: %w", err)
	}
	if len(body) > wire.MaxBatchBytes && len(b.Series) > 1 {
		half := len(b.Series) / 2
		first, second := *b, *b
		first.Series, second.Series = b.Series[:half], b.Series[half:]
		if err := m.write(&first, direct); err != nil {
			return err
		}
		return m.write(&second, direct)
	}
	seq := m.seq + 1
	b.Seq = seq
	body, _ = json.Marshal(b)
	// The number is durable before the batch exists, so no restart can hand it out again.
	if err := m.seqf.store(seq); err != nil {
		return fmt.Errorf("metrics outbox: store seq %d: %w", seq, err)
	}
	m.seq = seq
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(body)
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress metric batch %d: %w", seq, err)
	}
	if err := b.Validate(); err != nil {
		// add only keeps series that pass, so this is a bug: keep the batch where an operator finds it.
		m.refused.Add(1)
		m.keepRefused(batchName(seq), gz.Bytes(), "refused by the agent itself: "+err.Error())
		return fmt.Errorf("metric batch %d: %w", seq, err)
	}
	if direct {
		if names, err := batchFiles(m.dir); err == nil && len(names) == 0 && m.uploadDirect(seq, gz.Bytes()) {
			return nil
		}
	}
	if err := atomicfile.Write(filepath.Join(m.dir, batchName(seq)), gz.Bytes(), atomicfile.Options{}); err != nil {
		return fmt.Errorf("metrics outbox: batch %d: %w", seq, err)
	}
	m.log.Debug("metric batch written", "seq", seq, "series", len(b.Series), "bytes", gz.Len(), "uncompressed", len(body))
	m.bound()
	return nil
}

// uploadDirect uploads a live batch without writing it to the outbox first. It reports whether the
// batch is dealt with: stored by the hub, or refused for good (then kept in metrics/refused/). When it
// is not (the hub is unreachable), the caller writes it to the outbox.
func (m *metrics) uploadDirect(seq uint64, data []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := m.post(ctx, data)
	switch {
	case err == nil:
		m.directs.Add(1)
		m.log.Debug("live metric batch uploaded", "seq", seq, "bytes", len(data))
		return true
	case retryable(err):
		return false
	}
	n := m.refused.Add(1)
	m.log.Error("the hub refused a metric batch; kept in metrics/refused/ and not retried", "seq", seq,
		"dir", filepath.Join(m.dir, metricsRefusedDir), "err", err, "refusedSinceStart", n)
	m.keepRefused(batchName(seq), data, err.Error())
	return true
}

// post sends one compressed batch.
func (m *metrics) post(ctx context.Context, data []byte) error {
	hdr := http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}
	_, _, err := m.a.hub.doHeaders(ctx, "upload metrics", http.MethodPost, m.a.hub.agentURL("metrics"), hdr, data, uploadTimeout, true, false)
	return err
}

// bound drops the oldest waiting batches while the outbox holds more than outboxBytes (never the newest
// batch), each with a warning and a count.
func (m *metrics) bound() {
	names, err := batchFiles(m.dir)
	if err != nil {
		m.log.Warn("metrics outbox: cannot list", "err", err)
		return
	}
	sizes := make([]int64, len(names))
	var total int64
	for i, n := range names {
		if fi, err := os.Stat(filepath.Join(m.dir, n)); err == nil {
			sizes[i] = fi.Size()
			total += sizes[i]
		}
	}
	for i := 0; total > m.outboxBytes && i < len(names)-1; i++ {
		if err := os.Remove(filepath.Join(m.dir, names[i])); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("metrics outbox: cannot drop a batch", "batch", names[i], "err", err)
			continue
		}
		total -= sizes[i]
		n := m.dropped.Add(1)
		m.log.Warn("metrics outbox full: dropped the oldest batch (the hub has been unreachable or refusing for long)",
			"seq", seqOf(names[i]), "bytes", sizes[i], "outboxBytes", total, "bound", m.outboxBytes, "droppedSinceStart", n)
	}
}

// keepRefused moves (or writes) a batch to metrics/refused/ with the reason beside it, and keeps at
// most maxRefusedBatches there.
func (m *metrics) keepRefused(name string, data []byte, reason string) {
	dst := filepath.Join(m.dir, metricsRefusedDir, name)
	var err error
	if data != nil {
		err = atomicfile.Write(dst, data, atomicfile.Options{})
	} else {
		err = os.Rename(filepath.Join(m.dir, name), dst)
	}
	if err != nil {
		m.log.Error("metrics outbox: cannot keep a refused batch; removing it so it does not block the others", "batch", name, "err", err)
		os.Remove(filepath.Join(m.dir, name))
		return
	}
	reasonFile := strings.TrimSuffix(dst, batchExt) + ".reason"
	if err := atomicfile.Write(reasonFile, []byte(reason+"\n"), atomicfile.Options{NoSync: true}); err != nil {
		m.log.Warn("metrics outbox: cannot store why a batch was refused", "batch", name, "err", err)
	}
	names, _ := batchFiles(filepath.Join(m.dir, metricsRefusedDir))
	for i := 0; i < len(names)-maxRefusedBatches; i++ {
		m.log.Warn("metrics outbox: removing an old refused batch (at most 100 are kept)", "batch", names[i])
		os.Remove(filepath.Join(m.dir, metricsRefusedDir, names[i]))
		os.Remove(filepath.Join(m.dir, metricsRefusedDir, strings.TrimSuffix(names[i], batchExt)+".reason"))
	}
}

// uploader drains the outbox when a batch was written, retrying with backoff while the hub cannot take
// it, and looks again every upload interval. What a previous run left is uploaded first.
func (m *metrics) uploader(ctx context.Context) {
	b := backoff{min: m.a.cfg.RetryMin, max: m.a.cfg.RetryMax}
	for {
		err := m.drain(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if hasStatus(err, http.StatusNotFound) {
				// The poll and heartbeat say so if the hub does not know the agent; here 404 most
				// likely means a hub older than the metrics route. The batches wait, bounded.
				if !m.noRoute {
					m.noRoute = true
					m.log.Warn("the hub does not take metrics (404: a hub older than POST metrics?); batches wait in the outbox, bounded, and are retried", "err", err)
				}
			} else {
				m.health.fail("metrics upload", err)
			}
			if !sleep(ctx, b.next()) {
				return
			}
			continue
		}
		b.reset()
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-time.After(m.uploadEvery):
		}
	}
}

// drain uploads waiting batches oldest first, each removed only after the hub answered 2xx. It stops at
// the first failure that may go away (5xx, 429, a timeout, an unknown route or agent: retryable), so
// batches arrive in order; a batch the hub refuses (400, 409, 413, 422, …) is logged with the hub's
// reason and moved to metrics/refused/, never retried and never deleted unseen.
func (m *metrics) drain(ctx context.Context) error {
	names, err := batchFiles(m.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := os.ReadFile(filepath.Join(m.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // dropped by the bound meanwhile
		}
		if err != nil {
			return fmt.Errorf("metrics outbox: %w", err)
		}
		err = m.post(ctx, data)
		if err == nil {
			m.health.ok()
			if m.noRoute {
				m.noRoute = false
				m.log.Info("the hub takes metrics now")
			}
			if err := os.Remove(filepath.Join(m.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				m.log.Warn("metrics outbox: cannot remove an uploaded batch; it will be uploaded again (the hub stores it once)", "batch", name, "err", err)
			}
			m.log.Debug("metric batch uploaded", "seq", seqOf(name), "bytes", len(data))
			continue
		}
		if retryable(err) {
			return err
		}
		n := m.refused.Add(1)
		m.log.Error("the hub refused a metric batch; kept in metrics/refused/ and not retried", "seq", seqOf(name),
			"dir", filepath.Join(m.dir, metricsRefusedDir), "err", err, "refusedSinceStart", n)
		m.keepRefused(name, nil, err.Error())
	}
	return nil
}
