package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/activities/provider/aws"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/activities/provider/openstack"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/activities/snapshot"
	"github.com/drover-sre/drover/codec"
	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/worker/chaos"
	"github.com/drover-sre/drover/worker/zaplog"
	"github.com/drover-sre/drover/workflows"
)

// Config is the worker's command-line configuration.
type Config struct {
	Site      string
	StateDir  string
	AppBinary string
	LogLevel  string
	// MetricsAddr (host:port) serves Prometheus metrics at /metrics for
	// as long as the worker runs; empty serves none.
	MetricsAddr string
	// CodecKey is the secret reference (env:NAME or file:/path) of the
	// payload encryption key ring (package codec); empty encrypts nothing.
	CodecKey string
	// ChaosDir, from DROVER_CHAOS_DIR, turns on the chaos-testing hook:
	// the worker kills itself at the points armed there (package chaos).
	// Empty (always, outside chaos tests) leaves it off.
	ChaosDir string
}

var siteName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

func (c *Config) check() error {
	var errs []error
	if c.Site == "" {
		errs = append(errs, errors.New("--site: required (the name of the site this worker runs at)"))
	} else if !siteName.MatchString(c.Site) {
		errs = append(errs, fmt.Errorf("--site: %q must match %s", c.Site, siteName))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-addr: %q is not host:port: %w", c.MetricsAddr, err))
		}
	}
	if c.CodecKey != "" {
		if err := recipe.SecretRef(c.CodecKey).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--codec-key: %w", err))
		}
	}
	if c.ChaosDir != "" {
		if err := chaos.CheckDir(c.ChaosDir); err != nil {
			errs = append(errs, err)
		}
	}
	if c.AppBinary == "" {
		if exe, err := os.Executable(); err == nil {
			c.AppBinary = filepath.Join(filepath.Dir(exe), "petclinic")
		}
	}
	return errors.Join(errs...)
}

// run runs the worker until stop receives or is closed.
func run(cfg Config, z *zap.Logger, stop <-chan interface{}) error {
	if err := cfg.check(); err != nil {
		return err
	}
	logger := zaplog.New(z)
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return fmt.Errorf("temporal client configuration: %w", err)
	}
	opts.Logger = logger
	if cfg.CodecKey != "" {
		cd, err := codec.Load(cfg.CodecKey)
		if err != nil {
			return fmt.Errorf("--codec-key: %w", err)
		}
		cd.Apply(&opts)
		z.Info("payload encryption on", zap.String("key_id", cd.KeyID()), zap.Strings("key_ids", cd.KeyIDs()))
	}
	var reg *metrics.Registry // nil: no metrics
	if cfg.MetricsAddr != "" {
		reg = metrics.New()
		opts.MetricsHandler = reg.SDKHandler()
		srv, err := reg.Listen(cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Close(ctx); err != nil {
				z.Warn("metrics endpoint did not stop cleanly", zap.Error(err))
			}
		}()
		z.Info("serving metrics", zap.String("url", srv.URL()))
	}
	c, err := client.Dial(opts)
	if err != nil {
		return fmt.Errorf("connect to temporal at %q: %w", hostPortOrDefault(opts), err)
	}
	defer c.Close()

	var interceptors []interceptor.WorkerInterceptor
	if cfg.ChaosDir != "" {
		z.Warn("chaos-testing hook on: this worker kills itself at the points armed in "+cfg.ChaosDir, zap.String("env", chaos.EnvDir))
		interceptors = append(interceptors, (&chaos.Hook{Dir: cfg.ChaosDir, Site: cfg.Site}).WorkerInterceptor())
	}
	shared := worker.New(c, workflows.SharedTaskQueue, worker.Options{
		Interceptors: interceptors,
		// A workflow's tasks stick to the worker that ran it last; if that
		// worker died with its site, a query, an update or the next task
		// waits this long before another worker takes it (SDK default 5 s)
		// — time a failover and its monitor cannot spare. Workers of
		// different sites share this queue, so a live one is always there.
		StickyScheduleToStartTimeout: time.Second,
	})
	RegisterWorkflows(shared)

	site := worker.New(c, workflows.SiteTaskQueue(cfg.Site), worker.Options{
		// Cancellation reaches a running activity only with a heartbeat
		// response: send heartbeats at least every second so a paused or
		// stopped stream stops within about a second.
		MaxHeartbeatThrottleInterval:     time.Second,
		DefaultHeartbeatThrottleInterval: time.Second,
		Interceptors:                     interceptors,
	})
	bins, err := local.FindBinaries(cfg.AppBinary)
	if err != nil {
		// A site worker for a cloud site does not need the local binaries;
		// the local provider activities then fail with this reason.
		z.Warn("local provider unavailable", zap.Error(err))
	}
	RegisterSiteActivities(site, cfg.Site, cfg.StateDir, bins, c, reg)

	z.Info("worker starting", zap.String("site", cfg.Site), zap.String("temporal", hostPortOrDefault(opts)),
		zap.String("namespace", opts.Namespace), zap.Strings("task_queues", []string{workflows.SharedTaskQueue, workflows.SiteTaskQueue(cfg.Site)}))
	if err := shared.Start(); err != nil {
		return fmt.Errorf("start worker on %s: %w", workflows.SharedTaskQueue, err)
	}
	defer shared.Stop()
	return site.Run(stop)
}

// RegisterWorkflows registers every workflow on the shared task queue.
func RegisterWorkflows(w worker.WorkflowRegistry) {
	w.RegisterWorkflowWithOptions(workflows.SiteStatus, workflow.RegisterOptions{Name: "SiteStatus"})
	w.RegisterWorkflowWithOptions(workflows.ReplicationSupervisor, workflow.RegisterOptions{Name: "ReplicationSupervisor"})
	w.RegisterWorkflowWithOptions(workflows.Switchover, workflow.RegisterOptions{Name: "Switchover"})
	w.RegisterWorkflowWithOptions(workflows.Failover, workflow.RegisterOptions{Name: "Failover"})
	w.RegisterWorkflowWithOptions(workflows.Failback, workflow.RegisterOptions{Name: "Failback"})
	w.RegisterWorkflowWithOptions(workflows.HealthMonitor, workflow.RegisterOptions{Name: "HealthMonitor"})
	w.RegisterWorkflowWithOptions(workflows.CloneSite, workflow.RegisterOptions{Name: "CloneSite"})
	w.RegisterWorkflowWithOptions(workflows.Drill, workflow.RegisterOptions{Name: "Drill"})
}

// RegisterSiteActivities registers the activities that run at a site.
// Streams and probes report to reg (nil: no metrics).
func RegisterSiteActivities(w worker.ActivityRegistry, site, stateDir string, bins local.Binaries, c client.Client, reg *metrics.Registry) {
	w.RegisterActivity(&replicate.Activities{Signaler: c, Metrics: reg})
	w.RegisterActivity(&replicate.Control{Client: c})
	w.RegisterActivity(&probe.Activities{HTTP: &http.Client{Timeout: 10 * time.Second}, Vantage: site, Metrics: reg})
	w.RegisterActivity(&dbadmin.Activities{})
	w.RegisterActivity(&snapshot.Activities{})
	w.RegisterActivity(&dns.Activities{})
	// Only the lifecycle methods (StartSite, StopSite, KillSite, SiteStatus)
	// have activity signatures; helpers such as SiteDir are skipped.
	w.RegisterActivityWithOptions(&local.Provider{StateDir: stateDir, Bins: bins},
		activity.RegisterOptions{SkipInvalidStructFunctions: true})
	// AWSCreateSite, …, OpenStackCreateSite, …: the cloud providers'
	// activities, named with their provider's prefix (provider.Names).
	provider.Register(w, &provider.Activities{Provider: recipe.ProviderAWS, Compute: &aws.Compute{}})
	provider.Register(w, &provider.Activities{Provider: recipe.ProviderOpenStack, Compute: &openstack.Compute{}})
}

func hostPortOrDefault(o client.Options) string {
	if o.HostPort == "" {
		return client.DefaultHostPort
	}
	return o.HostPort
}
