package benchenv

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// Run runs a benchmark's body with a context cancelled on SIGINT/SIGTERM
// or after timeout, and exits 1 with "name: error" when it fails. Every
// benchmark cleans up through its own defers before run returns, so the
// process exits only after its servers are stopped.
func Run(name string, timeout time.Duration, run func(context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	err := run(ctx)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// WriteSummary writes a benchmark's Markdown summary to path (creating its
// directory) and says so on stderr; an empty path writes nothing.
func WriteSummary(path, markdown string) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(markdown), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "summary written to %s\n", path)
	return nil
}
