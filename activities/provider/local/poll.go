package local

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// stopError marks an error after which Poll gives up at once.
type stopError struct{ err error }

// Error returns the wrapped error's message.
func (e stopError) Error() string { return e.err.Error() }

// Unwrap exposes the wrapped error to errors.Is and errors.As.
func (e stopError) Unwrap() error { return e.err }

// Stop wraps err so that Poll returns it immediately instead of retrying:
// for conditions that waiting cannot fix, such as the process having died.
func Stop(err error) error { return stopError{err} }

// Poll calls check every interval until it returns nil, returns an error
// wrapped by Stop, ctx ends, or timeout passes. On timeout the error names
// what was awaited and wraps check's last error. Every wait for a server to
// come up goes through here: bounded in time, never a fixed sleep.
func Poll(ctx context.Context, what string, timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %s: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}
