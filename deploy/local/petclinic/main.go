// Command petclinic is the demo application that Drover protects: a tiny
// pet-clinic JSON API (owners, pets, visits) plus a health endpoint, backed by
// the MariaDB database of the site it runs in.
//
// It knows nothing about Drover, replication or sites. Failover happens
// underneath it: another database is promoted and DNS is switched, and the
// application simply reconnects. It therefore starts and keeps serving
// /healthz while its database is down or read-only, reports which of the two
// it is, and answers writes against a read-only database with 503.
//
// Usage:
//
//	petclinic [--listen 127.0.0.1:8080] [--dsn-file PATH]
//
// The DSN (go-sql-driver/mysql format, e.g.
// "petclinic:pw@tcp(127.0.0.2:3306)/petclinic") is read from --dsn-file or,
// without the flag, from the PETCLINIC_DSN environment variable.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

const (
	// dsnEnv is the environment variable consulted when --dsn-file is not given.
	dsnEnv = "PETCLINIC_DSN"
	// schemaRetryInterval is the pause between two attempts to create the schema.
	schemaRetryInterval = 2 * time.Second
	// shutdownTimeout bounds the graceful shutdown of the HTTP server.
	shutdownTimeout = 5 * time.Second
)

// errNoDSN reports that neither --dsn-file nor PETCLINIC_DSN supplied a DSN.
var errNoDSN = errors.New("no database DSN: pass --dsn-file PATH or set " + dsnEnv)

// config is the validated command line.
type config struct {
	listen string
	db     *mysql.Config
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Getenv, os.Stderr))
}

// runMain parses the command line, runs the server until SIGTERM or SIGINT and
// returns the process exit code: 0 on a clean stop, 1 on a runtime failure,
// 2 on a usage or configuration error.
func runMain(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "petclinic: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("petclinic stopped", "error", err)
		return 1
	}
	return 0
}

// parseConfig reads flags from args and, when --dsn-file is absent, the DSN
// from getenv(PETCLINIC_DSN). Every error it returns is a usage error.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("petclinic", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address")
	dsnFile := fs.String("dsn-file", "", "file holding the go-sql-driver/mysql DSN (default: $"+dsnEnv+")")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	dsn := getenv(dsnEnv)
	if *dsnFile != "" {
		b, err := os.ReadFile(*dsnFile)
		if err != nil {
			return config{}, fmt.Errorf("read --dsn-file: %w", err)
		}
		dsn = strings.TrimRight(string(b), "\r\n")
	}
	if strings.TrimSpace(dsn) == "" {
		return config{}, errNoDSN
	}
	db, err := normalizeDSN(dsn)
	if err != nil {
		return config{}, err
	}
	return config{listen: *listen, db: db}, nil
}

// normalizeDSN parses dsn and fills in what the application relies on:
// parseTime is always enabled (the store scans DATE and DATETIME columns into
// time.Time), and the dial, read and write timeouts default to 2s, 5s and 5s
// when the DSN does not set them, so a dead server is noticed quickly. The DSN
// must name a database.
func normalizeDSN(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's message never contains the password.
		return nil, fmt.Errorf("parse DSN: %w", err)
	}
	if cfg.DBName == "" {
		return nil, errors.New("parse DSN: no database name (…/petclinic)")
	}
	cfg.ParseTime = true
	if cfg.Loc == nil {
		cfg.Loc = time.UTC
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	return cfg, nil
}

// openDB builds a small connection pool for cfg without connecting. Connections
// are recycled every minute so that, after a failover moves the DNS name of
// the database, the pool drifts to the new primary even if the old one still
// answers.
func openDB(cfg *mysql.Config, logger *slog.Logger) (*sql.DB, error) {
	cfg = cfg.Clone()
	cfg.Logger = slog.NewLogLogger(logger.With("component", "mysql-driver").Handler(), slog.LevelWarn)
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(10)
	db.SetMaxIdleConns(10)
	db.SetConnMaxLifetime(time.Minute)
	db.SetConnMaxIdleTime(30 * time.Second)
	return db, nil
}

// run serves HTTP on cfg.listen until ctx is cancelled, creating the schema in
// the background, then shuts down gracefully.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	db, err := openDB(cfg.db, logger)
	if err != nil {
		return err
	}
	defer db.Close()

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.listen, err)
	}
	srv := &http.Server{
		Handler:           newServer(db, logger),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}

	schemaCtx, cancelSchema := context.WithCancel(ctx)
	defer cancelSchema()
	var wg sync.WaitGroup
	wg.Go(func() { ensureSchemaLoop(schemaCtx, NewStore(db), logger, schemaRetryInterval) })

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "db_addr", cfg.db.Addr, "db_name", cfg.db.DBName)

	select {
	case err := <-serveErr:
		cancelSchema()
		wg.Wait()
		return fmt.Errorf("serve %s: %w", cfg.listen, err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	cancelSchema()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}
