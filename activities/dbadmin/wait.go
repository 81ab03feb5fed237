package dbadmin

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
)

// WaitAppliedInput asks DBWaitApplied to wait until Target has applied Want.
type WaitAppliedInput struct {
	Target recipe.Site `json:"target"`
	// Stream is the checkpoint key of the stream feeding Target
	// (replicate.StreamName). Empty: only Target's GTID state is read.
	Stream string `json:"stream,omitempty"`
	// Want is the GTID position to reach, typically DBFence's FinalGTID.
	// Empty: nothing to wait for.
	Want string `json:"want"`
	// Timeout bounds the wait (default 5m). The activity's StartToClose
	// timeout must be longer, and its HeartbeatTimeout longer than a few
	// PollIntervals.
	Timeout recipe.Duration `json:"timeout,omitempty"`
	// PollInterval is how often Target is read (default 250ms, min 10ms).
	PollInterval recipe.Duration `json:"poll_interval,omitempty"`
}

// WaitProgress is DBWaitApplied's heartbeat, and the details of its
// DBWaitTimeout error.
type WaitProgress struct {
	Applied string `json:"applied"`
	Want    string `json:"want"`
	// Behind counts the transactions of Want not yet applied.
	Behind    uint64          `json:"behind"`
	Waited    recipe.Duration `json:"waited"`
	LastError string          `json:"last_error,omitempty"`
}

// WaitAppliedResult is returned once Target has applied Want.
type WaitAppliedResult struct {
	Site   string `json:"site"`
	Stream string `json:"stream,omitempty"`
	Want   string `json:"want"`
	// Applied is what Target had applied when the wait ended (in Want's
	// domains and the stream's checkpoint); it covers Want.
	Applied string `json:"applied"`
	// Waited is how long the wait took.
	Waited recipe.Duration `json:"waited"`
}

// DBWaitApplied waits inside the activity until the target site has applied
// every transaction of Want, and returns how long that took. "Applied" is
// what a stream resumes from: the stream's checkpoint merged with the
// target's gtid_binlog_pos in Want's domains (a DDL is recorded by the
// latter only).
//
// It heartbeats a WaitProgress after every poll and returns promptly when
// the activity is cancelled. A connection failure while waiting is retried
// at the next poll (the target may be restarting); credentials or
// privileges refused are a DBAuth error at once.
//
// When Timeout passes first it returns a non-retryable DBWaitTimeout error
// whose details are the last WaitProgress. Non-retryable on purpose: the
// wait is already a retry loop, and what to do next — extend the wait, roll
// the fence back, or fail over accepting the loss — is the runbook's
// decision, which a silent Temporal retry would only delay.
func (a *Activities) DBWaitApplied(ctx context.Context, in WaitAppliedInput) (WaitAppliedResult, error) {
	start := time.Now()
	addr := sitedb.Addr(in.Target)
	prefix := fmt.Sprintf("wait-applied %s (%s)", in.Target.Name, addr)
	res := WaitAppliedResult{Site: in.Target.Name, Stream: in.Stream, Want: in.Want}
	want, err := replication.ParsePosition(in.Want)
	if err != nil {
		return res, configError(prefix+": want: "+err.Error(), err)
	}
	res.Want = want.String()
	timeout := in.Timeout.D()
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}
	poll := max(in.PollInterval.D(), 10*time.Millisecond)
	if in.PollInterval <= 0 {
		poll = DefaultPollInterval
	}
	dial := a.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	db, err := sitedb.Open(in.Target, sitedb.Admin(in.Target), dial, ioTimeout)
	if err != nil {
		return res, classify(prefix, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	deadline := start.Add(timeout)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var p WaitProgress
	p.Want = res.Want
	for polls := 0; ; polls++ {
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%s: stopped after %s at %s: %w", prefix, time.Since(start).Round(time.Millisecond), p.Applied, ctx.Err())
		case <-timer.C:
		}
		// One poll may not outlast the wait (a silent network would
		// otherwise hold it for ioTimeout).
		qctx, cancel := context.WithTimeout(ctx, min(max(time.Until(deadline), time.Second), 30*time.Second))
		applied, err := appliedPosition(qctx, db, in.Stream, want.Domains())
		cancel()
		p.Waited = recipe.Duration(time.Since(start))
		switch {
		case err != nil && sitedb.KindOf(err) != sitedb.Transient:
			return res, classify(prefix, err)
		case err != nil:
			p.LastError = err.Error()
		default:
			p.LastError = ""
			p.Applied, p.Behind = applied.String(), applied.Behind(want)
			if p.Behind == 0 {
				res.Applied, res.Waited = p.Applied, p.Waited
				activity.GetLogger(ctx).Info("target applied the wanted position", "site", in.Target.Name,
					"stream", in.Stream, "want", res.Want, "applied", res.Applied, "waited", res.Waited.String(), "polls", polls+1)
				return res, nil
			}
		}
		activity.RecordHeartbeat(ctx, p)
		if !time.Now().Before(deadline) {
			msg := fmt.Sprintf("%s: stream %q has not applied %s after %s: applied %q, %d transactions behind",
				prefix, in.Stream, res.Want, timeout, p.Applied, p.Behind)
			if p.LastError != "" {
				msg += "; last error: " + p.LastError
			}
			return res, temporal.NewNonRetryableApplicationError(msg, ErrWaitTimeout, nil, p)
		}
		timer.Reset(min(poll, time.Until(deadline)))
	}
}

// appliedPosition is what the target has applied of a stream: its
// gtid_binlog_pos in the given domains merged with the stream's checkpoint,
// as replication.ResumePosition computes the point a stream resumes from.
func appliedPosition(ctx context.Context, db *sql.DB, stream string, domains []uint32) (replication.Position, error) {
	var raw string
	if err := db.QueryRowContext(ctx, "SELECT @@global.gtid_binlog_pos").Scan(&raw); err != nil {
		return nil, err
	}
	pos, err := replication.ParsePosition(raw)
	if err != nil {
		return nil, &sitedb.ConfigError{What: "target gtid_binlog_pos", Err: err}
	}
	pos = pos.Only(domains)
	if stream == "" {
		return pos, nil
	}
	cps, _, err := sitedb.Checkpoints(ctx, db, stream)
	if err != nil {
		return nil, err
	}
	for _, cp := range cps {
		cpPos, err := replication.ParsePosition(cp.GTID)
		if err != nil {
			return nil, &sitedb.ConfigError{What: "checkpoint of stream " + stream, Err: err}
		}
		pos = pos.Merge(cpPos)
	}
	return pos, nil
}
