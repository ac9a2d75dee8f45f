// Command pulse is the Pulse hub and operator CLI. See `pulse help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pulsehq/pulse/functions/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], &cli.Env{Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
