package hub

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pulsehq/pulse/functions/store"
)

// Readiness tracks whether the store answers and which mode it runs in. The hub starts even when the
// store is down (a missing bucket or wrong credentials can be fixed without a restart); Readiness keeps
// checking, logs every change, and /readyz reports its latest finding.
type Readiness struct {
	store    store.Store
	url      string
	log      *slog.Logger
	maxAge   time.Duration
	mu       sync.Mutex
	last     ReadyState
	mode     store.Mode    // found by the first successful probe; the store's nature does not change
	checking chan struct{} // non-nil while a check runs; closed when it ends
}

// ReadyState is one readiness finding.
type ReadyState struct {
	Mode      store.Mode
	Err       error
	CheckedAt time.Time
}

// NewReadiness watches s, known to operators as url (already redacted).
func NewReadiness(s store.Store, url string, log *slog.Logger) *Readiness {
	return &Readiness{store: s, url: url, log: log, maxAge: time.Second}
}

// URL is the store URL shown in reports.
func (r *Readiness) URL() string { return r.url }

// Check returns a finding at most maxAge old, probing the store if needed. Concurrent callers share one
// probe, so a burst of /readyz requests costs the store one round of requests.
func (r *Readiness) Check(ctx context.Context) ReadyState {
	r.mu.Lock()
	if !r.last.CheckedAt.IsZero() && time.Since(r.last.CheckedAt) < r.maxAge {
		st := r.last
		r.mu.Unlock()
		return st
	}
	if r.checking != nil {
		wait := r.checking
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ReadyState{Err: ctx.Err(), CheckedAt: time.Now()}
		}
		r.mu.Lock()
		st := r.last
		r.mu.Unlock()
		return st
	}
	done := make(chan struct{})
	r.checking = done
	r.mu.Unlock()

	// The probe is not tied to one request: a client hanging up must not record a failure.
	// Once the mode is known, a one-key listing proves reachability, bucket and credentials without
	// writing anything, so frequent checks cost one cheap request.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	r.mu.Lock()
	mode := r.mode
	r.mu.Unlock()
	var err error
	if mode == "" {
		mode, err = store.Probe(pctx, r.store)
	} else {
		_, err = r.store.List(pctx, store.ProbePrefix, "", 1)
	}
	cancel()
	st := ReadyState{Mode: mode, Err: err, CheckedAt: time.Now()}

	r.mu.Lock()
	if err == nil {
		r.mode = mode
	}
	prev := r.last
	r.last = st
	r.checking = nil
	r.mu.Unlock()
	close(done)
	r.logChange(prev, st)
	return st
}

func (r *Readiness) logChange(prev, st ReadyState) {
	first := prev.CheckedAt.IsZero()
	switch {
	case st.Err == nil && (first || prev.Err != nil || prev.Mode != st.Mode):
		msg := "store ready"
		if !first {
			msg = "store ready again"
		}
		r.log.Info(msg, "store", r.url, "mode", st.Mode)
		if st.Mode == store.ModeLastWriterWins {
			r.log.Warn("store ignores conditional writes; running on deterministic keys alone", "store", r.url)
		}
	case st.Err != nil && (first || prev.Err == nil || prev.Err.Error() != st.Err.Error()):
		r.log.Error("store not ready", "store", r.url, "err", st.Err)
	}
}

// Watch re-checks the store every interval until ctx ends, so the log shows the store going away and
// coming back even when nobody asks /readyz.
func (r *Readiness) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
