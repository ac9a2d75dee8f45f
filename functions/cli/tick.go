package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
)

// runTick is the periodic work of a hub without a resident process: a cloud deployment schedules it
// (every minute, say) beside the request-handling functions.
func runTick(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "tick", "[--store URL] [--key-file FILE] [--policy DIR] [--config FILE] [--json]",
		"Runs the hub's periodic work once and exits: drives every active workflow execution (timers due,\nwork a crashed hub left half done) and starts the scheduled runs that are due. `pulse serve` does this\nevery second by itself; run `pulse tick` from a scheduler when the hub runs as cloud functions.")
	storeURL := fs.String("store", "", "store URL (default: the config's, else file:pulse-data)")
	keyFile := fs.String("key-file", hubkey.DefaultFile, "the hub's signing key file (or $PULSE_SIGNING_KEY)")
	policyDir := fs.String("policy", "", "directory of .rego files extending or replacing the default policy")
	cfgPath := fs.String("config", "", "TOML config file")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return usageError{err}
	}
	if *storeURL != "" {
		cfg.Store = *storeURL
	}
	if *policyDir != "" {
		cfg.Policy = *policyDir
	}
	h, err := hub.New(ctx, hub.Config{Settings: cfg, KeyFile: *keyFile, Log: cfg.Log.Logger(), Version: Version})
	if err != nil {
		return usageError{err}
	}
	defer h.Close()
	start := time.Now()
	n := h.Tick(ctx)
	if *asJSON {
		return printJSON(env.Stdout, map[string]any{"activeExecutions": n, "durationMs": time.Since(start).Milliseconds()})
	}
	fmt.Fprintf(env.Stdout, "tick: %d active execution(s) driven in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
