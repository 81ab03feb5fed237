package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/webhook"
)

const (
	// maxWebhookBody is the largest --max-body accepted.
	maxWebhookBody = 64 << 20
	// shutdownGrace bounds how long requests in flight may finish after
	// SIGTERM.
	shutdownGrace = 10 * time.Second
)

// cmdWebhook runs `drover webhook`: it serves Alertmanager's webhook for
// the recipe's application at POST /alerts (and GET /healthz) until
// interrupted. Bad flags, an invalid recipe, a recipe without
// alerts.routes and secrets that cannot be resolved exit 2 before anything
// listens; an address that cannot be bound or an unreachable Temporal exit
// 1. SIGINT/SIGTERM stop it cleanly (exit 0).
func cmdWebhook(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const name = "drover webhook"
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "recipe file (YAML) with an alerts section (required)")
	listen := fs.String("listen", "", "address to serve on, e.g. 127.0.0.1:9095 (required)")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM; needs --tls-key)")
	tlsKey := fs.String("tls-key", "", "the certificate's private key (PEM; needs --tls-cert)")
	maxBody := fs.Int64("max-body", webhook.DefaultMaxBody, "largest request body, in bytes; larger ones are answered 400")
	cooldown := recipe.Duration(webhook.DefaultCooldown)
	fs.Var(durationFlag{d: &cooldown}, "cooldown", "after a runbook of the app ended, alerts start no failover or switchover for this long (0: none)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	problems := recipeArgProblems(fs, *file)
	if *listen == "" {
		problems = append(problems, "--listen: required (e.g. 127.0.0.1:9095)")
	} else if _, _, err := net.SplitHostPort(*listen); err != nil {
		problems = append(problems, fmt.Sprintf("--listen: %q is not host:port", *listen))
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		problems = append(problems, "--tls-cert and --tls-key: give both or neither")
	}
	if *maxBody < 1 || *maxBody > maxWebhookBody {
		problems = append(problems, fmt.Sprintf("--max-body: %d, want 1-%d bytes", *maxBody, maxWebhookBody))
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		problems = append(problems, "--log-level: "+err.Error())
	}
	r := loadRecipeOrReport(name, *file, problems, stderr)
	if r == nil {
		return 2
	}
	var cert []tls.Certificate
	if *tlsCert != "" {
		kp, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			fmt.Fprintf(stderr, "%s: --tls-cert/--tls-key: %v\n", name, err)
			return 2
		}
		cert = append(cert, kp)
	}
	if len(r.Alerts.Routes) == 0 {
		fmt.Fprintf(stderr, "%s: %s has no alerts.routes: the webhook would start nothing\n", name, *file)
		return 2
	}
	auth, err := webhook.NewAuth(r.Alerts.Auth)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: %v\n", name, *file, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	for i, rt := range r.Alerts.Routes {
		if rt.MovesTraffic() && !r.Policy.AutoFailover {
			log.Warn("this route will be refused while policy.auto_failover is false", zap.String("route", fmt.Sprintf("alerts.routes[%d]", i)),
				zap.Stringer("matches", rt))
		}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	defer ln.Close()
	c, err := dialTemporal(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	defer c.Close()
	cd := cooldown.D()
	if cd == 0 {
		cd = -1 // none
	}
	h, err := webhook.NewHandler(webhook.Config{Recipe: r, Auth: auth, Starter: webhook.TemporalStarter{Client: c},
		Logger: log, MaxBody: *maxBody, Cooldown: cd})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/alerts", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: zap.NewStdLog(log)}
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: cert, MinVersion: tls.VersionTLS12}
	}

	scheme := "http"
	if cert != nil {
		scheme = "https"
	} else if ip := net.ParseIP(hostOf(ln.Addr().String())); ip == nil || !ip.IsLoopback() {
		log.Warn("serving plain HTTP beyond loopback: the bearer token crosses the network in clear text; use --tls-cert/--tls-key or a TLS proxy")
	}
	url := fmt.Sprintf("%s://%s/alerts", scheme, ln.Addr())
	log.Info("serving Alertmanager's webhook", zap.String("app", r.App), zap.String("url", url), zap.Int("routes", len(r.Alerts.Routes)),
		zap.Bool("auto_failover", r.Policy.AutoFailover))
	fmt.Fprintf(stdout, "%s: serving the alerts of %s at %s\n", name, r.App, url)
	served := make(chan error, 1)
	go func() {
		if cert != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still in flight at shutdown", zap.Error(err))
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// newLogger returns a JSON zap logger writing to w at level, as Drover's
// processes log.
func newLogger(w io.Writer, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "ts", zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}

// hostOf is the host part of host:port.
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
