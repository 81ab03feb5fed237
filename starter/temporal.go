package main

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	tlog "go.temporal.io/sdk/log"
)

// dialTemporal connects with the SDK's standard environment configuration;
// without any, that is the local dev server at 127.0.0.1:7233.
func dialTemporal(ctx context.Context) (client.Client, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return nil, fmt.Errorf("temporal client configuration: %w", err)
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
