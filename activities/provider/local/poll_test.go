package local

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := Poll(ctx, "thing", time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("ready on the third try: n=%d err=%v", n, err)
	}

	err := Poll(ctx, "thing", 20*time.Millisecond, time.Millisecond, func() error { return errors.New("port closed") })
	if err == nil || !strings.Contains(err.Error(), "thing: not ready after 20ms: port closed") {
		t.Fatalf("timeout error should name what and why: %v", err)
	}

	calls := 0
	dead := errors.New("process exited")
	err = Poll(ctx, "thing", time.Minute, time.Millisecond, func() error { calls++; return Stop(dead) })
	if !errors.Is(err, dead) || calls != 1 {
		t.Fatalf("Stop must end the wait at once: calls=%d err=%v", calls, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = Poll(cctx, "thing", time.Minute, time.Millisecond, func() error { return errors.New("no") })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}
