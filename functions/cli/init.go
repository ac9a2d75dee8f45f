package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
)

// bucketMaker is implemented by stores that can create their bucket (S3).
type bucketMaker interface {
	EnsureBucket(ctx context.Context) (created bool, err error)
}

// InitResult is what `pulse init --json` prints.
type InitResult struct {
	Initialized bool   `json:"initialized" doc:"false when the hub was already initialised; nothing changed"`
	Store       string `json:"store"`
	BucketMade  bool   `json:"bucketCreated"`
	KeyFile     string `json:"keyFile"`
	KeyID       string `json:"keyId"`
	PublicKey   []byte `json:"publicKey"`
	AdminToken  string `json:"adminToken,omitempty" doc:"Shown once; only its hash is stored."`
}

func runInit(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "init", "[--store URL] [--key-file FILE] [--json]",
		`Prepares a hub: creates the bucket if it is missing, the hub's ed25519 signing key (a file with
mode 0600 outside the bucket; `+"`pulse serve`"+` in the same directory finds it) and a bootstrap admin
API token, printed once. Running it again changes nothing and never replaces the key.`)
	storeURL := fs.String("store", "", "store URL (default $PULSE_STORE, else file:pulse-data)")
	keyFile := fs.String("key-file", hubkey.DefaultFile, "signing key file")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, _ := config.Load("")
	if *storeURL != "" {
		cfg.Store = *storeURL
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return usageError{err}
	}
	res := InitResult{Store: store.Redact(cfg.Store), KeyFile: *keyFile}
	if bm, ok := st.(bucketMaker); ok {
		if res.BucketMade, err = bm.EnsureBucket(ctx); err != nil {
			return err
		}
	}
	if _, err := store.Probe(ctx, st); err != nil {
		return fmt.Errorf("store %s: %w", res.Store, err)
	}
	keys, err := hubkey.Create(*keyFile)
	switch {
	case errors.Is(err, hubkey.ErrExists):
		if keys, err = hubkey.Load(*keyFile); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		res.Initialized = true
		if err := auditLocal(ctx, st, keys, "pulse init", "create-signing-key", map[string]any{"keyId": keys.CurrentID(), "keyFile": *keyFile}); err != nil {
			return err
		}
	}
	// The token is MACed with the key like everything the hub writes, or the hub would refuse it.
	sst, err := signed.Wrap(st, keys, nil)
	if err != nil {
		return err
	}
	// The bootstrap token is made once per store: when no operator token exists yet.
	hasTokens, err := hub.HasAPITokens(ctx, sst)
	if err != nil {
		return err
	}
	if !hasTokens {
		res.Initialized = true
		if res.AdminToken, err = hub.CreateAPIToken(ctx, sst, "admin", []string{"admin"}, 0, "pulse init"); err != nil {
			return err
		}
		if err := auditLocal(ctx, st, keys, "pulse init", "create-token", map[string]any{
			"tokenId": access.TokenID(res.AdminToken), "name": "admin", "groups": []string{"admin"}}); err != nil {
			return err
		}
	}
	res.KeyID = keys.CurrentID()
	res.PublicKey = keys.Public()[0].PublicKey
	if *asJSON {
		return printJSON(env.Stdout, res)
	}
	if !res.Initialized {
		fmt.Fprintf(env.Stdout, "already initialised: kept signing key %s (%s); nothing changed\n", res.KeyID, res.KeyFile)
		return nil
	}
	fmt.Fprintf(env.Stdout, "initialised store %s\nsigning key %s in %s (keep it safe; it never goes into the bucket)\n", res.Store, res.KeyID, res.KeyFile)
	if res.AdminToken != "" {
		fmt.Fprintf(env.Stdout, "\nadmin token (shown once):\n\n  export PULSE_TOKEN=%s\n", res.AdminToken)
	}
	return nil
}
