package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/drover-sre/drover/activities/provider/local"
)

// SearchAttributes are the typed search attributes Drover's workflows set;
// the dev server registers them at start.
var SearchAttributes = []string{"DroverApp", "DroverSite", "DroverRunbook", "DroverState"}

// TemporalConfig describes the local Temporal dev server.
type TemporalConfig struct {
	Dir     string // SQLite file and log
	Address string // e.g. 127.0.0.1
	Port    int    // frontend gRPC port
	UIPort  int    // Web UI port
	// HTTPPort and MetricsPort default to Port+10 and Port+11; set them
	// explicitly when several dev servers share a machine.
	HTTPPort    int
	MetricsPort int
	Namespace   string
}

// TemporalDev is the `temporal server start-dev` process with a SQLite file
// (state survives restarts) and the Web UI.
type TemporalDev struct {
	Config TemporalConfig
	Bin    string
}

// HostPort is the frontend address clients dial.
func (t *TemporalDev) HostPort() string {
	return net.JoinHostPort(t.Config.Address, strconv.Itoa(t.Config.Port))
}

// UIURL is the Web UI's address.
func (t *TemporalDev) UIURL() string {
	return "http://" + net.JoinHostPort(t.Config.Address, strconv.Itoa(t.Config.UIPort))
}

// Process is the detached dev server process.
func (t *TemporalDev) Process() local.Process {
	c := t.Config
	if c.HTTPPort == 0 {
		c.HTTPPort = c.Port + 10
	}
	if c.MetricsPort == 0 {
		c.MetricsPort = c.Port + 11
	}
	args := []string{"server", "start-dev",
		"--ip", c.Address, "--port", strconv.Itoa(c.Port), "--ui-port", strconv.Itoa(c.UIPort),
		"--http-port", strconv.Itoa(c.HTTPPort),
		"--metrics-port", strconv.Itoa(c.MetricsPort),
		"--db-filename", filepath.Join(c.Dir, "temporal.db"),
		"--namespace", c.Namespace, "--log-level", "warn"}
	for _, sa := range SearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	return local.Process{
		Name:    "temporal",
		Path:    t.Bin,
		Args:    args,
		PIDFile: filepath.Join(c.Dir, "temporal.pid"),
		LogFile: filepath.Join(c.Dir, "temporal.log"),
		Dir:     c.Dir,
	}
}

// Start starts the dev server unless it runs and waits until its frontend
// answers a health check.
func (t *TemporalDev) Start(ctx context.Context, timeout time.Duration) (int, error) {
	if err := os.MkdirAll(t.Config.Dir, 0o700); err != nil {
		return 0, err
	}
	p := t.Process()
	pid, _, err := p.Start()
	if err != nil {
		return 0, err
	}
	err = local.Poll(ctx, "temporal dev server at "+t.HostPort(), timeout, 200*time.Millisecond, func() error {
		if _, ok := p.PID(); !ok {
			return local.Stop(fmt.Errorf("temporal dev server exited during start; log %s:\n%s", p.LogFile, readTail(p.LogFile)))
		}
		return t.ping(ctx)
	})
	if err != nil {
		return 0, err
	}
	return pid, nil
}

func (t *TemporalDev) ping(ctx context.Context) error {
	if !local.PortOpen(t.HostPort()) {
		return fmt.Errorf("port %s closed", t.HostPort())
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := client.DialContext(cctx, client.Options{HostPort: t.HostPort(), Namespace: t.Config.Namespace, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(cctx, &client.CheckHealthRequest{})
	return err
}
