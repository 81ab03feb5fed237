// Command drover-worker runs Drover's workflows and the activities of one
// site. It polls the shared task queue "drover" and its site's own queue
// "drover-site-<name>". It connects to Temporal with the SDK's standard
// environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API
// key variables, or a TOML profile) and defaults to the local dev server.
//
// --metrics-addr host:port serves Prometheus metrics at /metrics (package
// metrics); empty (the default) serves none.
//
// --codec-key REF (default $DROVER_CODEC_KEY) encrypts every payload the
// worker exchanges through Temporal with the AES-256-GCM key ring REF points
// at (package codec); empty (the default) encrypts nothing.
//
// DROVER_CHAOS_DIR, for chaos tests only, turns on a fault-injection hook
// that makes the worker kill itself at armed points (package chaos).
package main

import (
	"flag"
	"fmt"
	"os"

	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/drover-sre/drover/codec"
	"github.com/drover-sre/drover/worker/chaos"
	"github.com/drover-sre/drover/worker/zaplog"
)

func main() {
	var cfg Config
	flag.StringVar(&cfg.Site, "site", "", "name of the site this worker runs at (required)")
	flag.StringVar(&cfg.StateDir, "state-dir", "/tmp/drover-dev", "local provider: directory holding the site's processes and data")
	flag.StringVar(&cfg.AppBinary, "app-bin", "", "local provider: path of the demo application binary (default: petclinic next to this binary)")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	flag.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "host:port to serve Prometheus metrics at /metrics (empty: off)")
	flag.StringVar(&cfg.CodecKey, "codec-key", os.Getenv(codec.EnvKey), "secret reference (env:NAME or file:/path) of the payload encryption key ring (default $"+codec.EnvKey+"; empty: off)")
	flag.Parse()
	// Chaos tests only (see package chaos): unset in every real deployment.
	cfg.ChaosDir = os.Getenv(chaos.EnvDir)
	z := zaplog.Stderr(cfg.LogLevel)
	defer func() { _ = z.Sync() }()
	if err := run(cfg, z, worker.InterruptCh()); err != nil {
		z.Error("worker stopped", zap.Error(err))
		fmt.Fprintln(os.Stderr, "drover-worker:", err)
		os.Exit(1)
	}
}
