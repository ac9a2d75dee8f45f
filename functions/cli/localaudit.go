package cli

import (
	"context"
	"fmt"
	"os"
	"os/user"

	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
)

// auditLocal writes the audit record of something the command line did to a hub's store or key
// directly, with no hub in between (pulse init, pulse key rotate): these change who can act and what
// agents trust, so they belong in the trail as much as any API call. The actor is the local account
// that ran the command, marked via "cli", with the host it ran on. The record is MACed with keys like
// everything the hub writes, or the hub would refuse it as forged.
func auditLocal(ctx context.Context, st store.Store, keys *hubkey.Keys, command, action string, detail map[string]any) error {
	sst, err := signed.Wrap(st, keys, nil)
	if err != nil {
		return err
	}
	if detail == nil {
		detail = map[string]any{}
	}
	detail["command"] = command
	if host, err := os.Hostname(); err == nil {
		detail["host"] = host
	}
	rec := audit.Record{Principal: audit.Actor{ID: localAccount(), Via: "cli"}, Action: action, Outcome: "ok", Detail: detail}
	if _, err := audit.Write(ctx, sst, rec); err != nil {
		return fmt.Errorf("%s: write its audit record: %w", command, err)
	}
	return nil
}

// localAccount names the account running the command line, for audit records.
func localAccount() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return "unknown"
}
