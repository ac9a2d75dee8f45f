// Package telemetry is what the hub says about itself to Prometheus: requests by route and status with
// their latency, store operations by kind and outcome with theirs, and gauges and counters the rooms
// feed (polls waiting, executions active, results stored). Each hub has its own registry, which the
// edge serves at GET /metrics to a reader's token, so two hubs in one process (tests) never share a
// series. Like every room it knows nothing of HTTP.
package telemetry

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pulsehq/pulse/functions/store"
)

// Metrics holds one hub's registry and the series the edge and the store wrapper record.
type Metrics struct {
	// Registry holds every series; rooms register their own gauges and counters on it (Gauge, Counter).
	Registry *prometheus.Registry

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	storeOps *prometheus.CounterVec
	storeLat *prometheus.HistogramVec
}

// New makes a registry with the Go runtime's and the process's collectors and the hub's own series.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pulse_http_requests_total", Help: "HTTP requests the hub answered, by route (the pattern, not the path), method and status.",
	}, []string{"route", "method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pulse_http_request_duration_seconds", Help: "How long the hub took to answer, by route and method (held polls and streams included).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"route", "method"})
	m.storeOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pulse_store_operations_total", Help: "Requests to the object store, by operation (get, put, list, delete) and outcome (ok, not_found, not_modified, exists, precondition_failed, error).",
	}, []string{"op", "outcome"})
	m.storeLat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pulse_store_operation_duration_seconds", Help: "How long the object store took, by operation.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"op"})
	m.Registry.MustRegister(m.requests, m.latency, m.storeOps, m.storeLat,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRequest records one answered request. route is the mux pattern that matched ("" for none:
// it is recorded as "unmatched", so scanners cannot grow the series without bound).
func (m *Metrics) ObserveRequest(route, method string, status int, took time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(took.Seconds())
}

// Gauge registers a gauge read when Prometheus scrapes (polls waiting now, executions active).
func (m *Metrics) Gauge(name, help string, value func() float64) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value))
}

// Counter registers a counter with labels for a room to count what happened (results by status).
func (m *Metrics) Counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	if m != nil {
		m.Registry.MustRegister(c)
	}
	return c
}

// Store wraps s so every operation is counted and timed.
func (m *Metrics) Store(s store.Store) store.Store {
	if m == nil {
		return s
	}
	return &timedStore{Store: s, m: m}
}

type timedStore struct {
	store.Store
	m *Metrics
}

func (t *timedStore) observe(op string, start time.Time, err error) {
	t.m.storeOps.WithLabelValues(op, outcome(err)).Inc()
	t.m.storeLat.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// outcome names a store error as the store's own kinds of answer, so a 404 is not an "error".
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, store.ErrNotModified):
		return "not_modified"
	case errors.Is(err, store.ErrExists):
		return "exists"
	case errors.Is(err, store.ErrPreconditionFailed):
		return "precondition_failed"
	}
	return "error"
}

func (t *timedStore) Get(ctx context.Context, key string, opts store.GetOptions) (*store.Object, error) {
	start := time.Now()
	o, err := t.Store.Get(ctx, key, opts)
	t.observe("get", start, err)
	return o, err
}

func (t *timedStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	start := time.Now()
	info, err := t.Store.Put(ctx, key, body, size, opts)
	t.observe("put", start, err)
	return info, err
}

func (t *timedStore) List(ctx context.Context, prefix, startAfter string, limit int) (store.Page, error) {
	start := time.Now()
	p, err := t.Store.List(ctx, prefix, startAfter, limit)
	t.observe("list", start, err)
	return p, err
}

func (t *timedStore) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := t.Store.Delete(ctx, key)
	t.observe("delete", start, err)
	return err
}
