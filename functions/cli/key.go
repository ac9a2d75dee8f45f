package cli

import (
	"context"
	"fmt"

	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store"
)

func runKey(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "show") {
		return usagef("want `pulse key show` or `pulse key rotate` [--key-file FILE] [--json]")
	}
	sub := args[0]
	fs := newFlags(env, "key "+sub, "[--key-file FILE] [--json]",
		`show: prints the hub's public signing keys.
rotate: keeps the current signing key as the previous one and makes a new current key, and writes an
audit record of it to the hub's store (--store, default $PULSE_STORE, else file:pulse-data). Restart the
hubs; they sign with the new key and publish both, and agents learn the new one at their next poll.
Rotate again only after every agent has polled, or agents that missed it must re-enroll.`)
	keyFile := fs.String("key-file", hubkey.DefaultFile, "signing key file")
	storeURL := fs.String("store", "", "rotate: the hub's store, for the audit record (default $PULSE_STORE, else file:pulse-data)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	var keys *hubkey.Keys
	var err error
	if sub == "rotate" {
		keys, err = rotateKey(ctx, *keyFile, *storeURL)
	} else {
		keys, err = hubkey.Load(*keyFile)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, keys.Public())
	}
	for i, k := range keys.Public() {
		role := "current"
		if i > 0 {
			role = "previous"
		}
		fmt.Fprintf(env.Stdout, "%-8s %s\n", role, k.KeyID)
	}
	return nil
}

// rotateKey rotates the signing key in keyFile and audits it in the hub's store. The store is opened
// and probed first, so an unreachable store stops the rotation before anything changes; a rotation
// whose record then fails to be written says so, since the key has changed by then.
func rotateKey(ctx context.Context, keyFile, storeURL string) (*hubkey.Keys, error) {
	cfg, _ := config.Load("")
	if storeURL != "" {
		cfg.Store = storeURL
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, usageError{err}
	}
	if _, err := store.Probe(ctx, st); err != nil {
		return nil, fmt.Errorf("store %s (for the audit record; nothing was rotated): %w", store.Redact(cfg.Store), err)
	}
	old, err := hubkey.Load(keyFile)
	if err != nil {
		return nil, err
	}
	keys, err := hubkey.Rotate(keyFile)
	if err != nil {
		return nil, err
	}
	if err := auditLocal(ctx, st, keys, "pulse key rotate", "rotate-key", map[string]any{
		"keyId": keys.CurrentID(), "previousKeyId": old.CurrentID(), "keyFile": keyFile}); err != nil {
		return nil, fmt.Errorf("the key was rotated to %s, but %w", keys.CurrentID(), err)
	}
	return keys, nil
}
