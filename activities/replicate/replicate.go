// Package replicate is the Temporal face of the replication library: the
// long-lived StreamBinlog activity, which runs at the target site, applies the
// source's binlog into it, heartbeats progress, reports it to its supervisor
// workflow, and turns the library's error kinds into retryable or
// non-retryable Temporal errors.
package replicate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/metrics"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
)

// ProgressSignal is the signal StreamBinlog sends its supervisor workflow
// with the latest Progress.
const ProgressSignal = "replication-progress"

// Signaler delivers progress to the supervising workflow; a Temporal
// client satisfies it.
type Signaler interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg interface{}) error
}

// Activities holds what StreamBinlog needs: a client to signal progress to
// the supervisor (nil disables progress signals; heartbeats still carry it)
// and a recorder for the worker's metrics (nil records nothing).
type Activities struct {
	Signaler Signaler
	Metrics  metrics.StreamRecorder
}

// StreamInput describes one stream run. Sites carry secret references only;
// secrets are resolved here, at the target site.
type StreamInput struct {
	App    string      `json:"app"`
	Source recipe.Site `json:"source"`
	Target recipe.Site `json:"target"`
	// StartPosition is used only when the target has never applied anything
	// from this source (e.g. the GTID a clone ends at).
	StartPosition string `json:"start_position,omitempty"`
	// MaxRun bounds one activity run; the supervisor starts the next one.
	// Default 1h.
	MaxRun recipe.Duration `json:"max_run,omitempty"`
	// ProgressEvery is how often progress is signalled while nothing changes
	// (default 30s); a change is signalled within 2s, and a change of state
	// or of lag across LagAlarm at once.
	ProgressEvery recipe.Duration `json:"progress_every,omitempty"`
	LagAlarm      recipe.Duration `json:"lag_alarm,omitempty"`
}

// Progress is what a stream reports: the library's measurements.
type Progress struct {
	replication.Stats
	At time.Time `json:"at"`
}

// StreamResult is returned when a run ends without error (cancelled,
// paused, or MaxRun reached): the final measurements and checkpoint.
type StreamResult struct {
	Progress Progress `json:"progress"`
	Reason   string   `json:"reason"` // "cancelled" or "max-run"
}

// DefaultMaxRun bounds an activity run when StreamInput.MaxRun is zero.
const DefaultMaxRun = time.Hour

// StreamName is the checkpoint key of the stream from → to of app.
func StreamName(app, from, to string) string { return app + "-" + from + "-" + to }

// ReplicaServerID derives the server id the streamer registers with on the
// source: stable per stream, and far above the small ids sites use.
func ReplicaServerID(stream string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(stream))
	return 0x40000000 | (h.Sum32() & 0x3FFFFFFF)
}

// StreamBinlog applies the source's binlog into the target until it is
// cancelled or MaxRun passes. It heartbeats every few seconds with Progress.
// Errors: BinlogPurged, SchemaMismatch, Auth and Config are non-retryable
// (a retry cannot fix them); network and restarts are retryable.
func (a *Activities) StreamBinlog(ctx context.Context, in StreamInput) (StreamResult, error) {
	logger := activity.GetLogger(ctx)
	stream := StreamName(in.App, in.Source.Name, in.Target.Name)
	src, err := endpoint(in.Source, in.Source.DB.StreamAccount())
	if err != nil {
		return StreamResult{}, nonRetryable("Config", "source "+in.Source.Name, err)
	}
	dst, err := endpoint(in.Target, in.Target.DB.ApplyAccount())
	if err != nil {
		return StreamResult{}, nonRetryable("Config", "target "+in.Target.Name, err)
	}
	admin, err := endpoint(in.Target, recipe.Account{User: in.Target.DB.User, Password: in.Target.DB.Password})
	if err != nil {
		return StreamResult{}, nonRetryable("Config", "target "+in.Target.Name, err)
	}
	if err := setupTarget(ctx, admin); err != nil {
		return StreamResult{}, toTemporal(err)
	}
	s, err := replication.New(replication.Config{
		Stream: stream, Source: src, Target: dst, ReplicaServerID: ReplicaServerID(stream),
		StartPosition: in.StartPosition, Logger: logger,
	})
	if err != nil {
		return StreamResult{}, toTemporal(err)
	}

	maxRun := in.MaxRun.D()
	if maxRun <= 0 {
		maxRun = DefaultMaxRun
	}
	every := in.ProgressEvery.D()
	if every <= 0 {
		every = 30 * time.Second
	}
	runCtx, cancel := context.WithTimeout(ctx, maxRun)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()

	info := activity.GetInfo(ctx)
	m := &meter{rec: a.Metrics, app: in.App, stream: stream, sla: in.LagAlarm.D().Seconds()}
	m.report(s.Stats(), true, false)
	beat := time.NewTicker(time.Second)
	defer beat.Stop()
	var lastSignal time.Time
	var lastState, lastPos string
	lagging := false
	for {
		select {
		case err := <-done:
			p := Progress{Stats: s.Stats(), At: time.Now()}
			a.signal(ctx, info.WorkflowExecution.ID, p)
			// A retryable failure ends the run; the supervisor starts the next.
			m.report(p.Stats, false, err != nil && !isPermanent(err))
			if err != nil {
				return StreamResult{Progress: p}, toTemporal(err)
			}
			reason := "max-run"
			if ctx.Err() != nil {
				reason = "cancelled"
			}
			logger.Info("stream run ended", "stream", stream, "reason", reason, "position", p.Position)
			return StreamResult{Progress: p, Reason: reason}, nil
		case <-beat.C:
			p := Progress{Stats: s.Stats(), At: time.Now()}
			activity.RecordHeartbeat(ctx, p)
			m.report(p.Stats, true, false)
			nowLagging := in.LagAlarm > 0 && p.LagSeconds > in.LagAlarm.D().Seconds()
			since := time.Since(lastSignal)
			if p.State != lastState || nowLagging != lagging || since >= every ||
				(p.Position != lastPos && since >= 2*time.Second) {
				a.signal(ctx, info.WorkflowExecution.ID, p)
				lastSignal, lastState, lastPos, lagging = time.Now(), p.State, p.Position, nowLagging
			}
		}
	}
}

func (a *Activities) signal(ctx context.Context, workflowID string, p Progress) {
	if a.Signaler == nil || workflowID == "" {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// Progress is advisory: a lost signal is replaced by the next one.
	_ = a.Signaler.SignalWorkflow(sctx, workflowID, "", ProgressSignal, p)
}

// setupTarget creates the checkpoint table with the target's admin account.
func setupTarget(ctx context.Context, admin replication.Endpoint) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = admin.User, admin.Password, "tcp", admin.Addr
	cfg.Timeout = 5 * time.Second
	cfg.TLS = admin.TLS
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	err = replication.Setup(ctx, db)
	if sitedb.TLSRefused(err) {
		return &replication.Error{Kind: replication.KindConfig, Op: "tls to target " + admin.Addr, Err: err}
	}
	return err
}

func endpoint(s recipe.Site, acct recipe.Account) (replication.Endpoint, error) {
	pw, err := acct.Password.Resolve()
	if err != nil {
		return replication.Endpoint{}, fmt.Errorf("site %s: db password of %s: %w", s.Name, acct.User, err)
	}
	tlsCfg, err := sitedb.TLSConfig(s)
	if err != nil {
		return replication.Endpoint{}, err
	}
	host := s.DB.Host
	if host == "" {
		host = s.Address
	}
	return replication.Endpoint{Addr: net.JoinHostPort(host, strconv.Itoa(s.DB.Port)), User: acct.User, Password: pw, TLS: tlsCfg}, nil
}

// toTemporal maps library error kinds onto Temporal's retry semantics.
func toTemporal(err error) error {
	var re *replication.Error
	if isPermanent(err) && errors.As(err, &re) {
		return temporal.NewNonRetryableApplicationError(err.Error(), string(re.Kind), err)
	}
	return err
}

// isPermanent reports whether err is a library error a retry cannot fix.
func isPermanent(err error) bool {
	var re *replication.Error
	return errors.As(err, &re) && re.Permanent()
}

// meter reports a run's measurements to the worker's metrics. The library's
// counters are totals of this run; meter sends what changed since its
// previous report, so the metrics stay monotonic across runs.
type meter struct {
	rec         metrics.StreamRecorder
	app, stream string
	sla         float64
	txns, rows  uint64
	reconnects  int
}

// report sends st. running says the activity run goes on (it is streaming
// when the library says so too); restarted counts one more restart: the run
// ends with a failure the supervisor retries.
func (m *meter) report(st replication.Stats, running, restarted bool) {
	if m.rec == nil {
		return
	}
	restarts := uint64(max(st.Reconnects-m.reconnects, 0))
	if restarted {
		restarts++
	}
	m.rec.ObserveStream(metrics.StreamSample{
		App: m.app, Stream: m.stream, Streaming: running && st.State == "streaming",
		LagSeconds: st.LagSeconds, BehindTransactions: st.LagTransactions, RPOSLASeconds: m.sla,
		AppliedTransactions: st.Transactions - min(m.txns, st.Transactions), AppliedRows: st.Rows - min(m.rows, st.Rows),
		Restarts: restarts,
	})
	m.txns, m.rows, m.reconnects = st.Transactions, st.Rows, st.Reconnects
}

func nonRetryable(kind, what string, err error) error {
	return temporal.NewNonRetryableApplicationError(what+": "+err.Error(), kind, err)
}
