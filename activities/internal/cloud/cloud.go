// Package cloud holds what Drover's activities that call cloud and DNS
// APIs share: the classification of a failed call by what can fix it
// (Kind), the text of such an error (Text), its translation into the
// Temporal application error a workflow sees (ActivityError), and
// heartbeating while a call waits (Heartbeating, on Every, which the
// snapshot activities' progress reports use too). Packages provider and dns
// build their own error types and error type names on it.
package cloud

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Kind classifies a failed call by what can fix it. Kinds are ordered from
// the least to the most final, so max of two kinds keeps the worse one.
type Kind int

const (
	// Transient errors may go away by themselves: network failures,
	// timeouts, server errors, a concurrent change, a wait that ran out.
	// Retrying later is right.
	Transient Kind = iota
	// Throttled means the service asked the caller to slow down. Retrying
	// with backoff is right.
	Throttled
	// Quota means the account or project cannot hold more. Retrying cannot
	// help until a person raises the quota or asks for less.
	Quota
	// Auth means the credentials or the permissions were refused. Retrying
	// cannot help until a person fixes the credentials or the policy.
	Auth
	// Config means the request can never succeed as given. Retrying cannot
	// help.
	Config
	// Failed means what was created broke on its way up. Retrying cannot
	// repair it.
	Failed
)

// String names the kind: "transient", "throttled", "quota", "auth",
// "config" or "failed".
func (k Kind) String() string {
	switch k {
	case Throttled:
		return "throttled"
	case Quota:
		return "quota"
	case Auth:
		return "auth"
	case Config:
		return "config"
	case Failed:
		return "failed"
	default:
		return "transient"
	}
}

// Retryable reports whether retrying may help: Transient and Throttled.
func (k Kind) Retryable() bool { return k == Transient || k == Throttled }

// ErrType returns the Temporal application error type of k for the
// activities whose types start with prefix: prefix followed by
// "Transient", "Throttled", "Quota", "Auth", "Config" or "InstanceFailed".
func (k Kind) ErrType(prefix string) string {
	switch k {
	case Throttled:
		return prefix + "Throttled"
	case Quota:
		return prefix + "Quota"
	case Auth:
		return prefix + "Auth"
	case Config:
		return prefix + "Config"
	case Failed:
		return prefix + "InstanceFailed"
	default:
		return prefix + "Transient"
	}
}

// KindOf returns the Kind that kind reads from the first error of type E in
// err's chain, and Transient when there is none (context cancellation and
// nil included).
func KindOf[E error](err error, kind func(E) Kind) Kind {
	var e E
	if errors.As(err, &e) {
		return kind(e)
	}
	return Transient
}

// Text is the message of a failed operation: op; then, for each pair of
// label and value in where whose value is not empty, the label (unless
// empty) and the value, each after a space; then ": " and msg, or err's
// text when msg is empty. For example Text("aws create", "boom", nil,
// "site", "west", "in", "eu-west-1") is "aws create site west in eu-west-1:
// boom".
func Text(op, msg string, err error, where ...string) string {
	var b strings.Builder
	b.WriteString(op)
	for i := 0; i+1 < len(where); i += 2 {
		if label, value := where[i], where[i+1]; value != "" {
			if label != "" {
				b.WriteString(" " + label)
			}
			b.WriteString(" " + value)
		}
	}
	if msg == "" && err != nil {
		msg = err.Error()
	}
	if msg != "" {
		b.WriteString(": " + msg)
	}
	return b.String()
}

// ActivityError turns err, a failure of kind k, into the error a workflow
// sees: a Temporal application error of type k.ErrType(prefix), retryable
// only when k is. The message is err's whole text; its cause chain is not
// attached, since Temporal would only repeat each wrapped message as a
// typeless failure in the UI. A nil err stays nil, and a cancelled activity
// returns its context's error.
func ActivityError(ctx context.Context, err error, k Kind, prefix string) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if k.Retryable() {
		return temporal.NewApplicationError(err.Error(), k.ErrType(prefix))
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), k.ErrType(prefix), nil)
}

// Heartbeating runs fn inside an activity, recording a heartbeat with
// details every interval until fn returns, so a long wait on a cloud keeps
// the activity alive and lets a cancellation through. interval must be
// positive. Outside an activity it just runs fn.
func Heartbeating(ctx context.Context, interval time.Duration, fn func() error, details ...any) error {
	if !activity.IsActivity(ctx) {
		return fn()
	}
	stop := Every(ctx, interval, func() { activity.RecordHeartbeat(ctx, details...) })
	defer stop()
	return fn()
}

// Every calls tick every interval (first after one interval) in a
// goroutine of its own until ctx ends or the returned stop is called; stop
// returns once no tick runs any more. interval must be positive.
func Every(ctx context.Context, interval time.Duration, tick func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				tick()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
