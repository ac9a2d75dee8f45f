// Command pulse-lambda is the hub as AWS Lambda functions (docs/functions.md): one binary, deployed
// twice. With PULSE_FUNCTION=api (the default) it serves the API and the dashboard behind a function
// URL with response streaming; with PULSE_FUNCTION=tick it is the scheduled function that does the
// hub's periodic work once a second for just under a minute per invocation. Build it with
// `-tags lambda.norpc` for the provided.al2023 runtime (`make lambda` does, into bin/lambda/bootstrap).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/pulsehq/pulse/functions/lambdahub"
	"github.com/pulsehq/pulse/site"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if err := run(context.Background()); err != nil {
		// An error before the first invocation is an init error: Lambda reports it and retries the
		// instance; the log line says why.
		slog.Error("pulse-lambda", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	role := os.Getenv("PULSE_FUNCTION")
	if role != "" && role != "api" && role != "tick" {
		return fmt.Errorf("PULSE_FUNCTION=%q: want api (the function URL's) or tick (the scheduled one)", role)
	}
	o, err := lambdahub.FromEnv()
	if err != nil {
		return err
	}
	o.Version = version
	h, err := lambdahub.New(ctx, o)
	if err != nil {
		return err
	}
	o.Log.Info("pulse-lambda ready", "function", map[bool]string{true: "tick", false: "api"}[role == "tick"],
		"store", h.Ready.URL(), "version", version, "signing_key", h.Keys.CurrentID())
	if role == "tick" {
		span, err := lambdahub.TickSpan()
		if err != nil {
			return err
		}
		lambda.Start(func(ctx context.Context, _ json.RawMessage) (lambdahub.TickReport, error) {
			return lambdahub.Tick(ctx, h, span)
		})
		return nil
	}
	lambdaurl.Start(lambdahub.API(h, site.Handler()))
	return nil
}
