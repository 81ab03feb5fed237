// Command drover-worker runs Drover's workflows and the activities of one
// site. It polls the shared task queue "drover" and its site's own queue
// "drover-site-<name>". It connects to Temporal with the SDK's standard
// environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API
// key variables, or a TOML profile) and defaults to the local dev server.
//
// DROVER_CHAOS_DIR, for chaos tests only, turns on a fault-injection hook
// that makes the worker kill itself at armed points (package chaos).
package main

import (
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/drover-sre/drover/worker/chaos"
	"github.com/drover-sre/drover/worker/zaplog"
)

func main() {
	var cfg Config
	flag.StringVar(&cfg.Site, "site", "", "name of the site this worker runs at (required)")
	flag.StringVar(&cfg.StateDir, "state-dir", "/tmp/drover-dev", "local provider: directory holding the site's processes and data")
	flag.StringVar(&cfg.AppBinary, "app-bin", "", "local provider: path of the demo application binary (default: petclinic next to this binary)")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	flag.Parse()
	// Chaos tests only (see package chaos): unset in every real deployment.
	cfg.ChaosDir = os.Getenv(chaos.EnvDir)
	z := zaplog.Stderr(cfg.LogLevel)
	defer func() { _ = z.Sync() }()
	if err := run(cfg, z); err != nil {
		z.Error("worker stopped", zap.Error(err))
		fmt.Fprintln(os.Stderr, "drover-worker:", err)
		os.Exit(1)
	}
}
