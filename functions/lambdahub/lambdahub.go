// Package lambdahub runs the hub as AWS Lambda functions: the API behind a function URL with response
// streaming (so long polls, output streams and server-sent events work), and the periodic tick as a
// function of its own, fired once a minute by EventBridge Scheduler. Both build the same hub with
// hub.New, in function mode: nothing resident, polls that read their agent's doorbell and answer at
// once, no forward auth, the signing key from the environment or a secret (docs/functions.md).
//
// The package adapts three things the function URL's writer and runtime differ in from net/http: the
// writer lacks Flush and deadlines (Writer gives it both), the invocation ends when the handler
// returns (Handler waits for the work a request left running), and an invocation has a deadline
// (Handler ends every request a little before it, so a stream closes cleanly and its client resumes
// with Last-Event-ID).
package lambdahub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store"
)

// Env names the function's settings, beside the hub's own (PULSE_STORE, PULSE_LOG_LEVEL, … which
// config.Load reads).
const (
	// EnvConfig is a TOML file in the function's package (optional).
	EnvConfig = "PULSE_CONFIG"
	// EnvPollEvery is how soon agents poll again (a Go duration; default 5s).
	EnvPollEvery = "PULSE_POLL_EVERY"
	// EnvKeySecret names an AWS Secrets Manager secret (name or ARN) holding the signing key in PEM.
	EnvKeySecret = "PULSE_SIGNING_KEY_SECRET"
	// EnvKeyParameter names an SSM Parameter Store SecureString holding the signing key in PEM.
	EnvKeyParameter = "PULSE_SIGNING_KEY_PARAMETER"
	// EnvTickFor is how long one tick invocation goes on ticking (default 58s, and always ending
	// before the invocation's deadline).
	EnvTickFor = "PULSE_TICK_FOR"
)

// Options are what New builds a function's hub from.
type Options struct {
	Settings config.Hub
	// Keys, when set, are the signing keys (tests; else LoadKeys finds them).
	Keys      *hubkey.Keys
	PollEvery time.Duration
	Log       *slog.Logger
	Version   string
}

// FromEnv reads a function's options from its environment: the hub's settings (PULSE_CONFIG, then
// PULSE_STORE and the other variables config.Load reads) and PULSE_POLL_EVERY. The keys are found
// later, by New, through LoadKeys.
func FromEnv() (Options, error) {
	cfg, err := config.Load(os.Getenv(EnvConfig))
	if err != nil {
		return Options{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Options{}, err
	}
	o := Options{Settings: cfg, Log: cfg.Log.Logger()}
	if v := os.Getenv(EnvPollEvery); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return Options{}, fmt.Errorf("%s=%q: want a duration such as 5s", EnvPollEvery, v)
		}
		o.PollEvery = d
	}
	return o, nil
}

// New builds the hub of a function in function mode, finding its signing keys through LoadKeys when
// o.Keys is not set.
func New(ctx context.Context, o Options) (*hub.Hub, error) {
	keys := o.Keys
	if keys == nil {
		var err error
		if keys, err = LoadKeys(ctx, nil); err != nil {
			return nil, err
		}
	}
	h, err := hub.New(ctx, hub.Config{Settings: o.Settings, Keys: keys, Log: o.Log, Version: o.Version,
		Function: true, PollEvery: o.PollEvery, PublicScheme: "https"})
	if err != nil {
		return nil, err
	}
	// Doorbells are read-modify-writes: on a store that ignores If-Match two posts for one agent at
	// once could each drop the other's delivery. One probe per cold start says which store this is; an
	// unreachable store is left to the requests (and /readyz) to report.
	if st := h.Ready.Check(ctx); st.Err == nil && st.Mode == store.ModeLastWriterWins {
		return nil, fmt.Errorf("store %s ignores conditional writes (Garage, unconditional+): function mode needs them for its agents' doorbells; run `pulse serve` beside this store instead (docs/garage.md)", h.Ready.URL())
	}
	return h, nil
}

// API is the function URL's handler for h: the hub's API and dashboard, behind Handler.
func API(h *hub.Hub, site http.Handler) http.Handler {
	mux := http.NewServeMux()
	hub.NewAPI(mux, h)
	return Handler(h, h.HandlerWithSite(mux, site))
}

// deadlineMargin is how long before the invocation's deadline every request ends: time for a stream
// to close cleanly and for the work it left running to finish.
const deadlineMargin = 5 * time.Second

// forwardHeaders are the identity headers a forward-auth proxy sets.
var forwardHeaders = []string{"Remote-User", "Remote-Groups", "Remote-Name", "Remote-Email"}

// Handler adapts next to a function URL invocation. A request carrying forward-auth identity headers
// is refused (nothing in front of a function URL could have set them truthfully); the request's
// context ends deadlineMargin before the invocation's; the writer gets Flush and deadlines; and the
// invocation lasts until the work the request started outside itself (a release's store writes,
// driving a workflow after a result) has finished, because a function instance is frozen once its
// invocation ends.
func Handler(h *hub.Hub, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range forwardHeaders {
			if r.Header.Get(k) != "" {
				writeProblem(w, http.StatusBadRequest, "The "+k+" header is refused: the hub runs as cloud functions, with no trusted proxy in front to set forward-auth headers. Sign in with an API token or OIDC.", r.URL.Path)
				return
			}
		}
		ctx := r.Context()
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-deadlineMargin))
			defer cancel()
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(&Writer{ResponseWriter: w}, r)
		h.Bus.Wait()
	})
}

// writeProblem answers an RFC 9457 problem before the hub's own handler runs.
func writeProblem(w http.ResponseWriter, status int, detail, instance string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail, "instance": instance})
}

// Writer gives a function URL's response writer what net/http's has and the hub's streams use. Its
// writes go straight into the response stream (lambdaurl's writer is unbuffered), so Flush only
// passes the call on when the writer underneath can flush; deadlines are the invocation's, so setting
// one is accepted and changes nothing.
type Writer struct {
	http.ResponseWriter
}

// Flush sends what was written; for lambdaurl's writer it already was.
func (w *Writer) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// SetWriteDeadline is accepted: the invocation's deadline bounds the response.
func (w *Writer) SetWriteDeadline(time.Time) error { return nil }

// SetReadDeadline is accepted: the body arrived with the invocation.
func (w *Writer) SetReadDeadline(time.Time) error { return nil }

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TickReport is what one tick invocation did.
type TickReport struct {
	Ticks            int   `json:"ticks"`
	ActiveExecutions int   `json:"activeExecutions"`
	DurationMs       int64 `json:"durationMs"`
}

// Tick runs h's periodic work once a second for span (EnvTickFor; default 58s), ending at least
// deadlineMargin before the invocation's deadline: EventBridge Scheduler fires at most once a
// minute, so one invocation covers the minute and timers stay within about a second.
func Tick(ctx context.Context, h *hub.Hub, span time.Duration) (TickReport, error) {
	start := time.Now()
	end := start.Add(span)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-deadlineMargin).Before(end) {
		end = dl.Add(-deadlineMargin)
	}
	var rep TickReport
	for {
		rep.ActiveExecutions = h.Tick(ctx)
		rep.Ticks++
		next := start.Add(time.Duration(rep.Ticks) * time.Second)
		if !next.Before(end) {
			break
		}
		select {
		case <-ctx.Done():
			rep.DurationMs = time.Since(start).Milliseconds()
			return rep, ctx.Err()
		case <-time.After(time.Until(next)):
		}
	}
	h.Bus.Wait()
	rep.DurationMs = time.Since(start).Milliseconds()
	return rep, nil
}

// TickSpan reads EnvTickFor.
func TickSpan() (time.Duration, error) {
	v := os.Getenv(EnvTickFor)
	if v == "" {
		return 58 * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 58s", EnvTickFor, v)
	}
	return d, nil
}

// errNoKey is LoadKeys' answer when nothing names a key.
var errNoKey = errors.New("no signing key: set " + hubkey.EnvVar + " (PEM), " + EnvKeySecret + " (a Secrets Manager secret) or " + EnvKeyParameter + " (an SSM SecureString parameter)")
