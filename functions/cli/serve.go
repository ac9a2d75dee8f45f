package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
	_ "github.com/pulsehq/pulse/functions/store/backends"
	"github.com/pulsehq/pulse/site"
)

var openAPIDocuments = hub.OpenAPIDocuments

func runServe(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "serve", "[--addr HOST:PORT] [--store URL] [--config FILE]",
		`Runs the Pulse hub. All state lives in the store; the hub keeps nothing that matters in memory,
so any number of hubs may serve one store.

With no flags it listens on 127.0.0.1:8080 and keeps its state in ./pulse-data.
Store URLs:
  file:///var/lib/pulse                         a local directory (the default is file:pulse-data)
  s3://BUCKET?endpoint=http://HOST:9000&region=us-east-1
                                                any S3-compatible server; credentials from
                                                AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
  unconditional+s3://...                        as s3://, ignoring conditional writes (Garage mode)

Settings are read from the config file, then PULSE_ADDR, PULSE_STORE, PULSE_LOG_LEVEL,
PULSE_LOG_FORMAT, then flags; later ones win. The hub starts even when the store is down:
GET /readyz says why it is not ready until it is. SIGINT or SIGTERM shut it down gracefully.`)
	addr := fs.String("addr", "", "listen address (default 127.0.0.1:8080)")
	storeURL := fs.String("store", "", "store URL (default file:pulse-data)")
	cfgPath := fs.String("config", "", "TOML config file")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
	logFormat := fs.String("log-format", "", "text or json (default text)")
	keyFile := fs.String("key-file", hubkey.DefaultFile, "the hub's signing key file, made by `pulse init` (or set $PULSE_SIGNING_KEY)")
	pollHold := fs.Duration("poll-hold", 30*time.Second, "how long an agent's poll waits for work; short for cloud functions")
	policyDir := fs.String("policy", "", "directory of .rego files extending or replacing the default policy")
	var corsOrigins listFlag
	fs.Var(&corsOrigins, "cors-origin", "an origin (https://dash.example.com) whose pages may call the API from a browser, e.g. the dashboard served from a bucket; repeatable, adds to cors_origins")
	liveness := fs.Duration("agent-liveness", 0, "how often the agents send an unchanged heartbeat ([agent] liveness, 2m by default); three missed make an agent offline (default: offline after 5m)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return usageError{err}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "addr":
			cfg.Addr = *addr
		case "store":
			cfg.Store = *storeURL
		case "log-level":
			cfg.Log.Level = *logLevel
		case "log-format":
			cfg.Log.Format = *logFormat
		case "policy":
			cfg.Policy = *policyDir
		case "cors-origin":
			cfg.CORSOrigins = append(cfg.CORSOrigins, corsOrigins...)
		}
	})
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	log := cfg.Log.Logger()
	h, err := hub.New(ctx, hub.Config{Settings: cfg, KeyFile: *keyFile, CreateKey: true, Log: log, Version: Version, PollHold: *pollHold, HeartbeatInterval: *liveness})
	if err != nil {
		return usageError{err}
	}
	mux := http.NewServeMux()
	hub.NewAPI(mux, h)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           h.HandlerWithSite(mux, site.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("pulse hub listening", "addr", ln.Addr().String(), "store", h.Ready.URL(), "version", Version,
		"docs", "http://"+ln.Addr().String()+"/docs", "dashboard", "http://"+ln.Addr().String()+"/", "dashboard_built", site.Built(),
		"signing_key", h.Keys.CurrentID())

	// Background work stops before the hub says it stopped, so nothing it does happens after that line.
	wctx, stopWatch := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() { stopWatch(); background.Wait(); h.Close() }()
	background.Go(func() { h.Run(wctx) })
	srv.RegisterOnShutdown(h.Drain)

	err = hub.Serve(ctx, srv, ln, log, cfg.ShutdownGrace.Duration)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopWatch()
	background.Wait()
	h.Close()
	log.Info("pulse hub stopped")
	return nil
}
