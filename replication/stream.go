// Package replication streams committed transactions from a MariaDB
// primary's binlog into a standby, exactly once and in commit order. It is a
// plain Go library with no knowledge of Temporal: the StreamBinlog activity
// is a thin wrapper around Streamer.Run.
//
// Data flow: go-mysql's BinlogSyncer (GTID start position, heartbeats, read
// timeout) → this package's transaction assembly (GTID event … XID, DDL
// standalone) → the applier, which writes each source transaction into the
// target with its origin GTID, together with the checkpoint row
// drover.replication_checkpoint in the same target transaction. Every start
// resumes from the target (checkpoint, or the target's GTID state when a DDL
// came after the last checkpoint), never from memory. go-mysql's own
// reconnect is disabled: after any break the streamer rolls back the open
// target transaction and resumes from the target, so a partially received
// transaction is never applied twice or half.
package replication

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"
)

// Endpoint is how to reach one database.
type Endpoint struct {
	Addr     string // host:port
	User     string
	Password string
	// TLS secures both the binlog connection and the SQL pool to this
	// endpoint; nil is plain TCP. It must name the server (ServerName)
	// unless it skips verification: go-mysql does not fill it in.
	TLS *tls.Config
}

// Logger is the logging the library needs; the Temporal SDK's logger and
// *slog.Logger both satisfy it.
type Logger interface {
	Info(msg string, keyvals ...any)
	Warn(msg string, keyvals ...any)
}

// GroupLimits bound how many consecutive source transactions may share one
// target commit when the applier is behind. When caught up, every source
// transaction commits on its own.
type GroupLimits struct {
	MaxTxns  int           // default 256
	MaxBytes int           // binlog bytes; default 4 MiB
	MaxDelay time.Duration // age of the open group; default 200ms
}

// Config configures a Streamer.
type Config struct {
	Stream string // stream name, the checkpoint's key, e.g. "petclinic-east-west"
	Source Endpoint
	Target Endpoint
	// ReplicaServerID is the server id the streamer registers with on the
	// source; it must differ from every real server's id.
	ReplicaServerID uint32
	// StartPosition is where to start when the target has no checkpoint and
	// no GTID of the source's domains (empty: the source's oldest binlog).
	StartPosition string
	Group         GroupLimits
	// HeartbeatPeriod is how often an idle source sends a heartbeat; the
	// connection is declared dead after ReadTimeout without any event.
	HeartbeatPeriod time.Duration
	ReadTimeout     time.Duration
	// MaxReconnects bounds consecutive failed reconnects inside Run before it
	// returns a transient error (progress resets the count). Default 5.
	MaxReconnects int
	// StopGrace is how long Run keeps reading after cancellation to finish
	// the transaction in progress. Default 10s.
	StopGrace time.Duration
	// SkipSchemas are never replicated. Default: mysql, information_schema,
	// performance_schema, sys and drover (Drover's own bookkeeping).
	SkipSchemas []string
	Logger      Logger
}

func (c *Config) defaults() error {
	var problems []string
	if c.Stream == "" {
		problems = append(problems, "stream: required")
	}
	if c.Source.Addr == "" || c.Target.Addr == "" {
		problems = append(problems, "source and target addresses: required")
	}
	if c.ReplicaServerID == 0 {
		problems = append(problems, "replica server id: must be non-zero")
	}
	if len(problems) > 0 {
		return &Error{Kind: KindConfig, Op: "config", Err: errors.New(strings.Join(problems, "; "))}
	}
	if c.Group.MaxTxns <= 0 {
		c.Group.MaxTxns = 256
	}
	if c.Group.MaxBytes <= 0 {
		c.Group.MaxBytes = 4 << 20
	}
	if c.Group.MaxDelay <= 0 {
		c.Group.MaxDelay = 200 * time.Millisecond
	}
	if c.HeartbeatPeriod <= 0 {
		c.HeartbeatPeriod = time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * c.HeartbeatPeriod
	}
	if c.MaxReconnects <= 0 {
		c.MaxReconnects = 5
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.SkipSchemas == nil {
		c.SkipSchemas = []string{"mysql", "information_schema", "performance_schema", "sys", "drover"}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Stats are the stream's measurements. Rates are per second over the last
// few seconds.
type Stats struct {
	Stream            string    `json:"stream"`
	State             string    `json:"state"` // connecting, streaming, stopped
	Position          string    `json:"position"`
	LastGTID          string    `json:"last_gtid,omitempty"`
	LastSourceCommit  time.Time `json:"last_source_commit,omitempty"`
	LastAppliedAt     time.Time `json:"last_applied_at,omitempty"`
	SourcePosition    string    `json:"source_position,omitempty"`
	LagSeconds        float64   `json:"lag_seconds"`
	LagTransactions   uint64    `json:"lag_transactions"`
	Transactions      uint64    `json:"transactions"`
	Commits           uint64    `json:"commits"`
	Rows              uint64    `json:"rows"`
	Events            uint64    `json:"events"`
	BytesRead         uint64    `json:"bytes_read"`
	TxnsPerSec        float64   `json:"txns_per_sec"`
	RowsPerSec        float64   `json:"rows_per_sec"`
	EventsPerSec      float64   `json:"events_per_sec"`
	Reconnects        int       `json:"reconnects"`
	SkippedStatements uint64    `json:"skipped_statements"`
	NoPKTables        []string  `json:"no_pk_tables,omitempty"`
	ErrantGTIDs       string    `json:"errant_gtids,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
}

// Streamer runs one replication stream. Run may be called again after it
// returns; Stats is safe to call concurrently.
type Streamer struct {
	cfg Config

	mu    sync.Mutex
	stats Stats
	rate  rateWindow
}

// New checks cfg and returns a Streamer.
func New(cfg Config) (*Streamer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Streamer{cfg: cfg, stats: Stats{Stream: cfg.Stream, State: "stopped"}}, nil
}

// Stats returns a snapshot of the measurements.
func (s *Streamer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.NoPKTables = append([]string(nil), s.stats.NoPKTables...)
	return st
}

func (s *Streamer) update(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// Run streams until ctx is cancelled or a permanent error occurs. On
// cancellation it finishes the source transaction in progress (within
// StopGrace), commits, and returns nil. Transient failures (network,
// restarts) are retried inside Run from the target's checkpoint, up to
// MaxReconnects consecutive failures; then the transient error is returned.
func (s *Streamer) Run(ctx context.Context) error {
	failures := 0
	backoff := 200 * time.Millisecond
	for {
		progressed, err := s.runOnce(ctx)
		if err == nil || ctx.Err() != nil {
			s.update(func(st *Stats) { st.State = "stopped" })
			return nil
		}
		s.update(func(st *Stats) { st.LastError = err.Error() })
		if KindOf(err) != KindTransient {
			s.update(func(st *Stats) { st.State = "stopped" })
			return err
		}
		if progressed {
			failures, backoff = 0, 200*time.Millisecond
		}
		failures++
		if failures > s.cfg.MaxReconnects {
			s.update(func(st *Stats) { st.State = "stopped" })
			return err
		}
		s.cfg.Logger.Warn("replication stream interrupted; resuming from the target's checkpoint",
			"stream", s.cfg.Stream, "error", err.Error(), "attempt", failures, "backoff", backoff.String())
		s.update(func(st *Stats) { st.Reconnects++; st.State = "connecting" })
		select {
		case <-ctx.Done():
			s.update(func(st *Stats) { st.State = "stopped" })
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// ResumePosition is where a stream continues: the checkpoint merged with
// targetPos (the target's gtid_binlog_pos) in the source's domains, which
// covers a DDL applied after the last checkpoint; or start when there is
// neither.
func ResumePosition(ctx context.Context, target *sql.Conn, stream string, targetPos Position, sourceDomains []uint32, start Position) (Position, error) {
	cp, ok, err := ReadCheckpoint(ctx, target, stream)
	if err != nil {
		return nil, err
	}
	pos := targetPos.Only(sourceDomains)
	if ok {
		pos = pos.Merge(cp.Position)
	}
	if len(pos) == 0 {
		return start.Clone(), nil
	}
	return pos, nil
}

// appliedOnSource is what the source has applied as the target of Drover
// streams: the merge of its checkpoints (none when it never was a target).
func appliedOnSource(ctx context.Context, source *sql.DB) (Position, error) {
	rows, err := source.QueryContext(ctx, "SELECT gtid FROM drover.replication_checkpoint")
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049) {
			return Position{}, nil
		}
		return nil, classify("read the source's checkpoints", err)
	}
	defer rows.Close()
	seen := Position{}
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, classify("read the source's checkpoints", err)
		}
		p, err := ParsePosition(g)
		if err != nil {
			return nil, &Error{Kind: KindConfig, Op: "read the source's checkpoints", Err: err}
		}
		seen = seen.Merge(p)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read the source's checkpoints", err)
	}
	return seen, nil
}

// clampToSource handles a source that was itself a Drover target — the new
// primary after a switchover, streaming back to the old one. It applied
// its inbound streams in groups, each written to its binlog under the
// group's first GTID, so its binlog may end at 1-1-90 in a domain where the
// target is at 1-1-100 and the source's checkpoint says it has all of them.
// Asking the source for "after 1-1-100" would fail (not in its binlog); in
// such a domain, where the target is ahead of the source's binlog but not of
// what the source applied, the stream asks for "after the source's last
// GTID", which holds nothing the target lacks. A target ahead of what the
// source ever had is left alone: those are transactions only the target
// has (errant), and the source refuses the position.
func clampToSource(resume, srcBinlog, srcApplied Position) Position {
	out := resume.Clone()
	for d, g := range resume {
		last, ok := srcBinlog[d]
		if ok && g.Seq > last.Seq && srcApplied.Contains(g) {
			out[d] = last
		}
	}
	return out
}

type event struct {
	ev  *replication.BinlogEvent
	err error
}

// handler hands events from go-mysql's goroutine to the applier.
type handler struct {
	ctx context.Context
	out chan<- event
}

// HandleEvent copies what go-mysql may still mutate and queues the event,
// blocking while the applier is behind.
func (h handler) HandleEvent(e *replication.BinlogEvent) error {
	if g, ok := e.Event.(*replication.MariadbGTIDEvent); ok {
		cp, ce := *g, *e
		ce.Event = &cp
		e = &ce
	}
	select {
	case h.out <- event{ev: e}:
		return nil
	case <-h.ctx.Done():
		return h.ctx.Err()
	}
}

// runOnce connects, streams until error or stop, and reports whether any
// transaction was committed.
func (s *Streamer) runOnce(ctx context.Context) (progressed bool, err error) {
	cfg := s.cfg
	s.update(func(st *Stats) { st.State = "connecting" })

	target, err := openDB(cfg.Target, true)
	if err != nil {
		return false, err
	}
	defer target.Close()
	conn, err := target.Conn(ctx)
	if err != nil {
		return false, classify("connect target "+cfg.Target.Addr, err)
	}
	defer conn.Close()
	source, err := openDB(cfg.Source, false)
	if err != nil {
		return false, err
	}
	defer source.Close()

	srcPos, err := serverPosition(ctx, source)
	if err != nil {
		return false, classify("read source position "+cfg.Source.Addr, err)
	}
	if err := checkSource(ctx, source); err != nil {
		return false, err
	}
	start, err := ParsePosition(cfg.StartPosition)
	if err != nil {
		return false, &Error{Kind: KindConfig, Op: "start position", Err: err}
	}
	sourceDomains := srcPos.Merge(start).Domains()
	targetPos, err := serverPosition(ctx, conn)
	if err != nil {
		return false, classify("read target position "+cfg.Target.Addr, err)
	}
	resume, err := ResumePosition(ctx, conn, cfg.Stream, targetPos, sourceDomains, start)
	if err != nil {
		return false, err
	}
	if seen, err := appliedOnSource(ctx, source); err != nil {
		return false, err
	} else if clamped := clampToSource(resume, srcPos, seen); !clamped.Equal(resume) {
		cfg.Logger.Info("resume position clamped to the source's binlog: the source received these transactions in groups",
			"stream", cfg.Stream, "target_has", resume.String(), "resume_from", clamped.String())
		resume = clamped
	}
	s.recordErrant(targetPos, sourceDomains)

	ap := newApplier(conn, cfg.Stream)
	if warning, err := ap.session(ctx); err != nil {
		return false, err
	} else if warning != "" {
		cfg.Logger.Warn(warning, "stream", cfg.Stream, "target", cfg.Target.Addr)
	}
	defer ap.rollback(context.WithoutCancel(ctx))

	host, portStr, err := net.SplitHostPort(cfg.Source.Addr)
	if err != nil {
		return false, &Error{Kind: KindConfig, Op: "source address", Err: err}
	}
	port, _ := strconv.Atoi(portStr)
	// Events reach the applier through a synchronous handler: go-mysql calls
	// it from its reading goroutine, which then blocks until the applier has
	// room (bounded memory). The handler copies each GTID at once: the
	// syncer's own GTID-set bookkeeping keeps a pointer into the event and
	// updates it in place as later events arrive.
	readCtx, cancelRead := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRead()
	events := make(chan event, 64)
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: cfg.ReplicaServerID, Flavor: gomysql.MariaDBFlavor,
		Host: host, Port: uint16(port), User: cfg.Source.User, Password: cfg.Source.Password, TLSConfig: cfg.Source.TLS,
		HeartbeatPeriod: cfg.HeartbeatPeriod, ReadTimeout: cfg.ReadTimeout,
		UseDecimal: true, ParseTime: false, TimestampStringLocation: time.UTC,
		// No reconnect inside go-mysql: after a break Drover resumes from the
		// target, so a partial transaction is never applied.
		DisableRetrySync: true, MaxReconnectAttempts: 1,
		DiscardGTIDSet:          true,
		SynchronousEventHandler: handler{ctx: readCtx, out: events},
		Logger:                  slog.New(slog.DiscardHandler),
	})
	// Stop the handler before closing the syncer: Close waits for go-mysql's
	// goroutine, which may be blocked handing an event to the applier.
	defer func() { cancelRead(); syncer.Close() }()
	if err := checkNotPurged(ctx, source, resume, sourceDomains); err != nil {
		return false, err
	}
	gset, err := gomysql.ParseMariadbGTIDSet(resume.String())
	if err != nil {
		return false, &Error{Kind: KindConfig, Op: "resume position", Err: err}
	}
	streamer, err := syncer.StartSyncGTID(gset)
	if err != nil {
		return false, classify("start binlog stream from "+resume.String(), err)
	}
	cfg.Logger.Info("replication stream started", "stream", cfg.Stream, "source", cfg.Source.Addr,
		"target", cfg.Target.Addr, "resume_from", resume.String(), "source_position", srcPos.String())
	s.update(func(st *Stats) {
		st.State, st.Position, st.SourcePosition, st.LastError = "streaming", resume.String(), srcPos.String(), ""
	})
	// With a synchronous handler GetEvent only ever returns the stream's error.
	go func() {
		_, err := streamer.GetEvent(readCtx)
		if err == nil {
			err = errors.New("binlog stream ended")
		}
		select {
		case events <- event{err: err}:
		case <-readCtx.Done():
		}
	}()

	skip := map[string]bool{}
	for _, sc := range cfg.SkipSchemas {
		skip[sc] = true
	}
	var (
		applied    = resume.Clone()
		cur        *GTID // transaction in progress
		standalone bool
		curBytes   int
		curTS      time.Time
		groupTxns  int
		groupBytes int
		groupStart time.Time
		lastTS     time.Time
		lastGTID   string
		stopping   <-chan time.Time
		tick       = time.NewTicker(time.Second)
		ctxDone    = ctx.Done()
	)
	defer tick.Stop()

	commitGroup := func() error {
		if groupTxns == 0 {
			return nil
		}
		if err := ap.commit(ctx, applied, lastTS, groupTxns); err != nil {
			return err
		}
		progressed = true
		now := time.Now()
		s.update(func(st *Stats) {
			st.Position, st.LastGTID = applied.String(), lastGTID
			st.LastSourceCommit, st.LastAppliedAt = lastTS, now
			st.Transactions += uint64(groupTxns)
			st.Commits++
			st.Rows = ap.rowsTotal
			if len(ap.noPK) != len(st.NoPKTables) {
				st.NoPKTables = st.NoPKTables[:0]
				for t := range ap.noPK {
					st.NoPKTables = append(st.NoPKTables, t)
				}
			}
		})
		groupTxns, groupBytes = 0, 0
		return nil
	}
	finishTxn := func() error {
		g := *cur
		applied.Advance(g)
		lastTS, lastGTID = curTS, g.String()
		cur = nil
		if standalone {
			return nil // DDL committed on its own
		}
		groupTxns++
		groupBytes += curBytes
		// Commit when caught up, or when the group reaches its limits.
		if len(events) == 0 || groupTxns >= cfg.Group.MaxTxns || groupBytes >= cfg.Group.MaxBytes ||
			time.Since(groupStart) >= cfg.Group.MaxDelay || stopping != nil {
			return commitGroup()
		}
		return nil
	}

	for {
		var e event
		select {
		case e = <-events:
		case <-tick.C:
			s.refreshLag(ctx, source, applied, sourceDomains)
			if cur == nil && groupTxns > 0 && time.Since(groupStart) >= cfg.Group.MaxDelay {
				if err := commitGroup(); err != nil {
					return progressed, err
				}
			}
			continue
		case <-ctxDone:
			ctxDone = nil
			if cur == nil {
				return progressed, commitGroup()
			}
			stopping = time.After(cfg.StopGrace)
			continue
		case <-stopping:
			cfg.Logger.Warn("stop grace expired mid-transaction; rolling it back (it will be applied on resume)",
				"stream", cfg.Stream, "gtid", cur.String())
			ap.rollback(ctx)
			return progressed, nil
		}
		if e.err != nil {
			return progressed, classify("read binlog from "+cfg.Source.Addr, e.err)
		}
		ev := e.ev
		s.update(func(st *Stats) {
			st.Events++
			st.BytesRead += uint64(ev.Header.EventSize)
		})
		curBytes += int(ev.Header.EventSize)
		switch b := ev.Event.(type) {
		case *replication.MariadbGTIDEvent:
			if cur != nil {
				// A new transaction began before the last one ended: the
				// stream restarted mid-transaction. Resume from the target.
				return progressed, classify("binlog stream", fmt.Errorf("transaction %s interrupted by %s", cur, b.GTID.String()))
			}
			g := GTID{Domain: b.GTID.DomainID, ServerID: b.GTID.ServerID, Seq: b.GTID.SequenceNumber}
			if applied.Contains(g) {
				return progressed, &Error{Kind: KindSchemaMismatch, Op: "binlog stream",
					Err: fmt.Errorf("source sent %s, already applied (position %s)", g, applied)}
			}
			cur, curBytes = &g, int(ev.Header.EventSize)
			curTS = time.Unix(int64(ev.Header.Timestamp), 0)
			standalone = b.IsStandalone() || b.IsDDL()
			if !standalone && groupTxns > 0 && ap.domain != g.Domain {
				if err := commitGroup(); err != nil { // one domain per group
					return progressed, err
				}
			}
			if !standalone && groupTxns == 0 && !ap.inTx {
				ap.begin(g)
				groupStart = time.Now()
			}
			if standalone {
				if err := commitGroup(); err != nil {
					return progressed, err
				}
			}
		case *replication.FormatDescriptionEvent:
			if err := ap.formatDescription(ctx, ev.RawData); err != nil {
				return progressed, err
			}
		case *replication.TableMapEvent:
			ap.tableMap(b, ev.RawData)
		case *replication.RowsEvent:
			if cur == nil || standalone {
				continue
			}
			if skip[string(b.Table.Schema)] {
				continue
			}
			if _, err := ap.rows(ctx, b, ev.RawData); err != nil {
				return progressed, err
			}
		case *replication.QueryEvent:
			q := strings.TrimSpace(string(b.Query))
			if cur == nil {
				continue
			}
			switch {
			case strings.EqualFold(q, "BEGIN"):
			case strings.EqualFold(q, "COMMIT"): // non-transactional engines
				if err := finishTxn(); err != nil {
					return progressed, err
				}
			case standalone:
				if skipStatement(string(b.Schema), q, skip) {
					s.update(func(st *Stats) { st.SkippedStatements++ })
					cfg.Logger.Info("statement not replicated", "stream", cfg.Stream, "gtid", cur.String(), "statement", firstWords(q))
				} else if err := ap.ddl(ctx, *cur, string(b.Schema), q); err != nil {
					return progressed, err
				}
				if err := finishTxn(); err != nil {
					return progressed, err
				}
				progressed = true
				s.update(func(st *Stats) { st.Position, st.LastGTID = applied.String(), lastGTID; st.Transactions++ })
			case strings.HasPrefix(strings.ToUpper(q), "SAVEPOINT"), strings.HasPrefix(strings.ToUpper(q), "ROLLBACK TO"):
			default:
				return progressed, &Error{Kind: KindConfig, Op: "binlog stream", Err: fmt.Errorf(
					"statement-based event in transaction %s (%s): the source must run binlog_format=ROW", cur, firstWords(q))}
			}
		case *replication.XIDEvent:
			if cur == nil {
				continue
			}
			if err := finishTxn(); err != nil {
				return progressed, err
			}
			if stopping != nil && groupTxns == 0 {
				return progressed, nil
			}
		}
		if stopping != nil && cur == nil && groupTxns == 0 {
			return progressed, nil
		}
	}
}

// skipStatement decides which standalone statements stay on the source:
// anything on a skipped schema, and account management (accounts are local
// to each site).
func skipStatement(schema, q string, skip map[string]bool) bool {
	u := strings.ToUpper(q)
	for _, p := range []string{"CREATE USER", "DROP USER", "ALTER USER", "RENAME USER", "GRANT ", "REVOKE ", "SET PASSWORD",
		"CREATE ROLE", "DROP ROLE", "FLUSH ", "ANALYZE ", "OPTIMIZE ", "REPAIR ", "CHECK "} {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	for sc := range skip {
		if strings.EqualFold(schema, sc) && !mentionsOtherSchema(u) {
			return true
		}
		if strings.Contains(u, "`"+strings.ToUpper(sc)+"`.") || strings.Contains(u, " "+strings.ToUpper(sc)+".") ||
			strings.HasSuffix(u, " "+strings.ToUpper(sc)) || strings.Contains(u, "DATABASE "+strings.ToUpper(sc)) ||
			strings.Contains(u, "DATABASE IF NOT EXISTS "+strings.ToUpper(sc)) || strings.Contains(u, "DATABASE `"+strings.ToUpper(sc)+"`") {
			return true
		}
	}
	return false
}

func mentionsOtherSchema(u string) bool { return strings.Contains(u, ".") }

func (s *Streamer) refreshLag(ctx context.Context, source *sql.DB, applied Position, domains []uint32) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pos, err := serverPosition(qctx, source)
	if err != nil {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	st.SourcePosition = pos.Only(domains).String()
	st.LagTransactions = applied.Behind(pos.Only(domains))
	if st.LagTransactions == 0 {
		st.LagSeconds = 0
	} else if !st.LastSourceCommit.IsZero() {
		st.LagSeconds = now.Sub(st.LastSourceCommit).Seconds()
	}
	st.TxnsPerSec, st.RowsPerSec, st.EventsPerSec = s.rate.add(now, st.Transactions, st.Rows, st.Events)
}

// recordErrant records the target's GTIDs outside the source's domains:
// transactions written locally on the standby, which the source never had.
func (s *Streamer) recordErrant(targetPos Position, sourceDomains []uint32) {
	errant := targetPos.Except(sourceDomains)
	if len(errant) > 0 {
		s.cfg.Logger.Warn("errant transactions on the target: written there, never on the source",
			"stream", s.cfg.Stream, "errant_gtids", errant.String())
	}
	s.update(func(st *Stats) { st.ErrantGTIDs = errant.String() })
}

// rateWindow turns counters into per-second rates over ~5 s.
type rateWindow struct {
	samples []rateSample
}

type rateSample struct {
	at                 time.Time
	txns, rows, events uint64
}

func (w *rateWindow) add(now time.Time, txns, rows, events uint64) (float64, float64, float64) {
	w.samples = append(w.samples, rateSample{now, txns, rows, events})
	for len(w.samples) > 1 && now.Sub(w.samples[0].at) > 5*time.Second {
		w.samples = w.samples[1:]
	}
	first := w.samples[0]
	dt := now.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0, 0, 0
	}
	return float64(txns-first.txns) / dt, float64(rows-first.rows) / dt, float64(events-first.events) / dt
}

func openDB(e Endpoint, applier bool) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = e.User, e.Password, "tcp", e.Addr
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 60*time.Second, 60*time.Second
	cfg.ClientFoundRows = applier // RowsAffected = rows matched: detects divergence
	cfg.MultiStatements = applier // a group's statements travel in few round trips
	cfg.InterpolateParams = false
	cfg.Loc = time.UTC
	cfg.ParseTime = true
	cfg.TLS = e.TLS // set directly: no entry in the driver's global registry
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Op: "dsn " + e.Addr, Err: err}
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(2)
	return db, nil
}

// checkNotPurged fails with KindBinlogPurged when the source's oldest binlog
// starts after pos in some domain: the transactions in between are gone. A
// MariaDB source silently starts from its oldest binlog when asked for a
// domain it has no position for, so this is checked here, before streaming.
func checkNotPurged(ctx context.Context, source *sql.DB, pos Position, domains []uint32) error {
	var first string
	rows, err := source.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return classify("list source binlogs", err)
	}
	for rows.Next() && first == "" {
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			rows.Close()
			return classify("list source binlogs", err)
		}
		first = string(*vals[0].(*sql.RawBytes))
	}
	rows.Close()
	if first == "" {
		return nil
	}
	// The Gtid_list event at the head of a binlog is the GTID state before it.
	evs, err := source.QueryContext(ctx, "SHOW BINLOG EVENTS IN '"+strings.ReplaceAll(first, "'", "")+"' LIMIT 4")
	if err != nil {
		return classify("read head of "+first, err)
	}
	defer evs.Close()
	for evs.Next() {
		var file, typ, info string
		var p, sid, end int64
		if err := evs.Scan(&file, &p, &typ, &sid, &end, &info); err != nil {
			return classify("read head of "+first, err)
		}
		if typ != "Gtid_list" {
			continue
		}
		before, err := ParsePosition(strings.Trim(info, "[] "))
		if err != nil {
			return &Error{Kind: KindConfig, Op: "gtid list of " + first, Err: err}
		}
		for _, d := range domains {
			if g, ok := before[d]; ok && pos[d].Seq < g.Seq {
				return &Error{Kind: KindBinlogPurged, Op: "resume from " + pos.String(),
					Err: fmt.Errorf("the oldest binlog on the source (%s) starts after %s", first, g)}
			}
		}
		return nil
	}
	return classify("read head of "+first, evs.Err())
}

// serverPosition reads a server's gtid_binlog_pos through a pool or a
// pinned connection.
func serverPosition(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (Position, error) {
	var raw string
	if err := q.QueryRowContext(ctx, "SELECT @@global.gtid_binlog_pos").Scan(&raw); err != nil {
		return nil, err
	}
	p, err := ParsePosition(raw)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Op: "gtid_binlog_pos", Err: err}
	}
	return p, nil
}

// checkSource refuses sources whose binlog lacks what the applier needs.
func checkSource(ctx context.Context, db *sql.DB) error {
	var format, image, metadata string
	err := db.QueryRowContext(ctx, "SELECT @@global.binlog_format, @@global.binlog_row_image, @@global.binlog_row_metadata").
		Scan(&format, &image, &metadata)
	if err != nil {
		return classify("check source settings", err)
	}
	var bad []string
	if format != "ROW" {
		bad = append(bad, "binlog_format="+format+" (want ROW)")
	}
	if image != "FULL" {
		bad = append(bad, "binlog_row_image="+image+" (want FULL)")
	}
	if metadata != "FULL" {
		bad = append(bad, "binlog_row_metadata="+metadata+" (want FULL)")
	}
	if len(bad) > 0 {
		return &Error{Kind: KindConfig, Op: "check source settings", Err: errors.New(strings.Join(bad, ", "))}
	}
	return nil
}
