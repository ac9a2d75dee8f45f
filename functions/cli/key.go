package cli

import (
	"context"
	"fmt"

	"github.com/pulsehq/pulse/functions/hubkey"
)

func runKey(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "show") {
		return usagef("want `pulse key show` or `pulse key rotate` [--key-file FILE] [--json]")
	}
	sub := args[0]
	fs := newFlags(env, "key "+sub, "[--key-file FILE] [--json]",
		`show: prints the hub's public signing keys.
rotate: keeps the current signing key as the previous one and makes a new current key. Restart the hubs;
they sign with the new key and publish both, and agents learn the new one at their next poll. Rotate
again only after every agent has polled, or agents that missed it must re-enroll.`)
	keyFile := fs.String("key-file", hubkey.DefaultFile, "signing key file")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	var keys *hubkey.Keys
	var err error
	if sub == "rotate" {
		keys, err = hubkey.Rotate(*keyFile)
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
