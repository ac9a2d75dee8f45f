package cli

import (
	"context"
	"fmt"
	"os"
	"os/user"

	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/store"
)

// auditLocal writes the audit record of something the command line did to a hub's store or key
// directly, with no hub in between (pulse init, pulse key rotate): these change who can act and what
// agents trust, so they belong in the trail as much as any API call. The actor is the local account
// that ran the command, marked via "cli", with the host it ran on.
func auditLocal(ctx context.Context, st store.Store, command, action string, detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["command"] = command
	if host, err := os.Hostname(); err == nil {
		detail["host"] = host
	}
	rec := audit.Record{Principal: audit.Actor{ID: localAccount(), Via: "cli"}, Action: action, Outcome: "ok", Detail: detail}
	if _, err := audit.Write(ctx, st, rec); err != nil {
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
