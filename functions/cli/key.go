package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/signed"
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
Rotate again only after every agent has polled, or agents that missed it must re-enroll. A rotation
that drops the previous key first MACs again, with the current key, every record the previous key
MACed (one read and one write each, with progress on stderr), so no record becomes unreadable.`)
	keyFile := fs.String("key-file", hubkey.DefaultFile, "signing key file")
	storeURL := fs.String("store", "", "rotate: the hub's store, for the audit record (default $PULSE_STORE, else file:pulse-data)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	var keys *hubkey.Keys
	var err error
	if sub == "rotate" {
		keys, err = rotateKey(ctx, *keyFile, *storeURL, env.Stderr)
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
func rotateKey(ctx context.Context, keyFile, storeURL string, progress io.Writer) (*hubkey.Keys, error) {
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
	if old.Previous != nil {
		// This rotation drops old.Previous: what it MACed is MACed again with old.Current first, which
		// stays in the set (and is held by the hubs still running), so nothing becomes unreadable.
		n, bad, err := signed.Reseal(ctx, st, old, func(checked int) {
			fmt.Fprintf(progress, "resealing: %d objects checked\n", checked)
		})
		if err != nil {
			return nil, fmt.Errorf("reseal the records of the key being dropped (nothing was rotated; run it again): %w", err)
		}
		fmt.Fprintf(progress, "resealed %d objects with %s before dropping %s", n, old.CurrentID(), old.IDOf(old.Previous))
		if bad > 0 {
			fmt.Fprintf(progress, "; %d objects failed the integrity check and were left (pulse doctor --scan lists them)", bad)
		}
		fmt.Fprintln(progress)
	}
	keys, err := hubkey.Rotate(keyFile)
	if err != nil {
		return nil, err
	}
	// MACed with the key that was current: it stays in the new set, and the hubs still running until
	// their restart hold it, so none of them refuses the record as forged.
	if err := auditLocal(ctx, st, old, "pulse key rotate", "rotate-key", map[string]any{
		"keyId": keys.CurrentID(), "previousKeyId": old.CurrentID(), "keyFile": keyFile}); err != nil {
		return nil, fmt.Errorf("the key was rotated to %s, but %w", keys.CurrentID(), err)
	}
	return keys, nil
}
