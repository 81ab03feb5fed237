package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	tlog "go.temporal.io/sdk/log"

	"github.com/drover-sre/drover/codec"
)

// dialTemporal connects with the SDK's standard environment configuration
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
// or a TOML profile); without any, that is the local dev server at
// 127.0.0.1:7233. With DROVER_CODEC_KEY set, every payload is encrypted and
// decrypted with that key ring (package codec), as the workers do.
func dialTemporal(ctx context.Context) (client.Client, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return nil, fmt.Errorf("temporal client configuration: %w", err)
	}
	if ref := os.Getenv(codec.EnvKey); ref != "" {
		cd, err := codec.Load(ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", codec.EnvKey, err)
		}
		cd.Apply(&opts)
	}
	// The CLI prints what matters itself; SDK chatter would bury it.
	opts.Logger = tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		hp := opts.HostPort
		if hp == "" {
			hp = client.DefaultHostPort
		}
		return nil, fmt.Errorf("connect to temporal at %s: %w (is the dev server up? `drover dev up`)", hp, err)
	}
	return c, nil
}

// checkAndDial prints the usage problems of the command called name and
// returns exit code 2 if there are any; else it dials Temporal, or says
// why it cannot and returns exit code 1. The client is nil unless both
// went well.
func checkAndDial(ctx context.Context, name string, problems []string, stderr io.Writer) (client.Client, int) {
	if printProblems(stderr, name, problems) {
		return nil, 2
	}
	c, ok := dialFor(ctx, name, stderr)
	if !ok {
		return nil, 1
	}
	return c, 0
}

// dialFor dials Temporal for the command called name; when it cannot, it
// prints why under that name and reports false (the command exits 1).
func dialFor(ctx context.Context, name string, stderr io.Writer) (client.Client, bool) {
	c, err := dialTemporal(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return nil, false
	}
	return c, true
}
