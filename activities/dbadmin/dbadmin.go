// Package dbadmin holds the database administration activities of the
// switchover, failover and failback runbooks: fence a primary (DBFence),
// promote a standby (DBPromote), read a server's replication state
// (DBState), wait until a standby has applied a position (DBWaitApplied)
// and find errant transactions (DBErrant).
//
// Every activity connects with the site's admin account from the recipe;
// the password is resolved here, at the worker, and never appears in an
// input, a result or an error. Every activity is idempotent: running it
// again after a crash or a retry converges to the same state and reports
// what it found (Changed is false when there was nothing to do).
//
// Errors name the operation, the site and its address ("promote west
// (127.0.0.3:3306): ..."). Wrong credentials or missing privileges are
// non-retryable ApplicationErrors of type DBAuth; unresolvable secrets and
// malformed input or server state are DBConfig; a wait that runs out is
// DBWaitTimeout; network problems and restarts are plain errors, retried by
// the caller's retry policy.
//
// What MariaDB 10.11 does when a primary is fenced (checked on the real
// server; the runbook relies on it):
//   - SET GLOBAL read_only=ON does not wait for idle open transactions. Their
//     later COMMIT fails with ERROR 1290 and the transaction is rolled back
//     (the session is left with no transaction), so it can never commit,
//     not even after read_only is turned OFF again.
//   - It does wait for write statements in progress, and for commits in
//     progress, to finish — and an autocommit statement that finishes then
//     commits. So the gtid_binlog_pos read after read_only=ON includes every
//     transaction that will ever commit from a client without READ_ONLY
//     ADMIN. The wait is bounded by the session's lock_wait_timeout (the
//     server default is a day): DBFence sets it, kills the clients whose
//     statements hold it up and tries again.
//   - Since 10.11 SUPER no longer bypasses read_only; READ_ONLY ADMIN does
//     (and ALL PRIVILEGES includes it). Such accounts can still write after
//     the fence: DBFence kills their sessions, but only the application's
//     accounts lacking READ_ONLY ADMIN are kept out for good.
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
)

// Error types of the non-retryable ApplicationErrors these activities return.
const (
	// ErrAuth: credentials or privileges are wrong.
	ErrAuth = sitedb.ErrTypeAuth
	// ErrConfig: a secret cannot be resolved, an input or a server's GTID
	// state is malformed, or the server lacks a variable Drover needs.
	ErrConfig = sitedb.ErrTypeConfig
	// ErrWaitTimeout: DBWaitApplied's timeout passed before the target
	// applied the position. Its details hold the last WaitProgress.
	ErrWaitTimeout = "DBWaitTimeout"
)

// Defaults used when the activity struct or an input leaves them zero.
const (
	// DefaultDialTimeout bounds connecting to a database.
	DefaultDialTimeout = 5 * time.Second
	// DefaultLockWaitTimeout bounds how long SET GLOBAL read_only=ON waits
	// for write statements in progress before DBFence kills their clients.
	DefaultLockWaitTimeout = 5 * time.Second
	// DefaultDrainTimeout bounds how long DBFence waits for killed sessions
	// to finish rolling back before it reads the final position.
	DefaultDrainTimeout = 10 * time.Second
	// DefaultWaitTimeout is DBWaitApplied's timeout when the input has none.
	DefaultWaitTimeout = 5 * time.Minute
	// DefaultPollInterval is how often DBWaitApplied reads the target.
	DefaultPollInterval = 250 * time.Millisecond
)

// ioTimeout bounds every read and write on a connection. It must exceed
// the longest statement these activities run: SET GLOBAL read_only=ON,
// which lock_wait_timeout (at most a minute, see fenceLockWait) bounds.
const ioTimeout = 90 * time.Second

// Activities are the database administration activities. They hold no
// clients: every call opens its own connection from the site in its input,
// so a worker needs no database configuration of its own. DialTimeout
// bounds connecting (DefaultDialTimeout when zero).
type Activities struct {
	DialTimeout time.Duration
}

// session is one admin connection to one site for one operation; its
// methods build errors that name both.
type session struct {
	op, site, addr string
	db             *sql.DB
	conn           *sql.Conn
}

// open connects to s with its admin account over a single session (fencing
// must know its own connection id to spare it). A network failure to
// connect is reported as what ("connect" when empty).
func (a *Activities) open(ctx context.Context, op, what string, s recipe.Site) (*session, error) {
	ss := &session{op: op, site: s.Name, addr: sitedb.Addr(s)}
	dial := a.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	db, err := sitedb.Open(s, sitedb.Admin(s), dial, ioTimeout)
	if err != nil {
		return nil, ss.fail("", err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err == nil {
		err = conn.PingContext(ctx)
	}
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		db.Close()
		if what == "" || sitedb.KindOf(err) != sitedb.Transient {
			what = "connect" // reachable, but refused us
		}
		return nil, ss.fail(what, err)
	}
	ss.db, ss.conn = db, conn
	return ss, nil
}

func (s *session) close() {
	s.conn.Close()
	s.db.Close()
}

// fail wraps err with the operation, site and address, and classifies it
// for Temporal's retry policy.
func (s *session) fail(what string, err error) error {
	return classify(s.prefix(what), err)
}

func (s *session) prefix(what string) string {
	p := fmt.Sprintf("%s %s (%s)", s.op, s.site, s.addr)
	if what != "" {
		p += ": " + what
	}
	return p
}

// classify turns err into a non-retryable ApplicationError for what a retry
// cannot fix, and a plain (retryable) error otherwise.
func classify(prefix string, err error) error {
	msg := prefix + ": " + err.Error()
	if typ := sitedb.KindOf(err).ErrType(); typ != "" {
		return temporal.NewNonRetryableApplicationError(msg, typ, err)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// configError is a non-retryable DBConfig error with the given message.
func configError(msg string, cause error) error {
	return temporal.NewNonRetryableApplicationError(msg, ErrConfig, cause)
}

// readOnly reads @@global.read_only.
func (s *session) readOnly(ctx context.Context) (bool, error) {
	var ro int
	if err := s.conn.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro); err != nil {
		return false, s.fail("read read_only", err)
	}
	return ro != 0, nil
}

// binlogPos reads @@global.gtid_binlog_pos as it is.
func (s *session) binlogPos(ctx context.Context) (string, error) {
	var pos string
	if err := s.conn.QueryRowContext(ctx, "SELECT @@global.gtid_binlog_pos").Scan(&pos); err != nil {
		return "", s.fail("read gtid_binlog_pos", err)
	}
	return pos, nil
}

// PromoteInput names the site whose database is made writable.
type PromoteInput struct {
	Site recipe.Site `json:"site"`
}

// PromoteResult says what DBPromote found and did.
type PromoteResult struct {
	Site    string `json:"site"`
	Address string `json:"address"`
	// Changed is true when this call turned read_only OFF; false when the
	// server was already writable.
	Changed bool `json:"changed"`
	// GTIDBinlogPos is the server's position when it became writable: the
	// point from which its new writes count.
	GTIDBinlogPos string    `json:"gtid_binlog_pos"`
	PromotedAt    time.Time `json:"promoted_at"`
}

// promoteProgress is DBPromote's heartbeat, recorded before it changes
// anything.
type promoteProgress struct {
	WasReadOnly bool `json:"was_read_only"`
}

// DBPromote makes the site's database writable (SET GLOBAL read_only=OFF).
// An already writable server is left alone, so a retry after a lost
// response is harmless. Changed says whether this activity turned read_only
// OFF: it heartbeats what it found before changing it, so a retry after a
// change that went through (its answer lost with a crashed worker) still
// reports Changed=true; a separate call on a writable server reports false.
// It does not check that the server has caught up: the runbook does that
// first with DBWaitApplied.
func (a *Activities) DBPromote(ctx context.Context, in PromoteInput) (PromoteResult, error) {
	s, err := a.open(ctx, "promote", "", in.Site)
	if err != nil {
		return PromoteResult{}, err
	}
	defer s.close()
	res := PromoteResult{Site: s.site, Address: s.addr}
	ro, err := s.readOnly(ctx)
	if err != nil {
		return res, err
	}
	if ro {
		activity.RecordHeartbeat(ctx, promoteProgress{WasReadOnly: true})
		if _, err := s.conn.ExecContext(ctx, "SET GLOBAL read_only=OFF"); err != nil {
			return res, s.fail("set read_only=OFF", err)
		}
		res.Changed = true
	} else if activity.HasHeartbeatDetails(ctx) {
		var p promoteProgress
		res.Changed = activity.GetHeartbeatDetails(ctx, &p) == nil && p.WasReadOnly
	}
	if res.GTIDBinlogPos, err = s.binlogPos(ctx); err != nil {
		return res, err
	}
	res.PromotedAt = time.Now().UTC()
	return res, nil
}

// StateInput names the site whose database state is read.
type StateInput struct {
	Site recipe.Site `json:"site"`
}

// Checkpoint is one row of drover.replication_checkpoint (UTC times).
type Checkpoint = sitedb.Checkpoint

// StateResult is a database's replication-relevant state, read at one
// moment (ServerTime, the server's UTC clock).
type StateResult struct {
	Site           string `json:"site"`
	Address        string `json:"address"`
	ReadOnly       bool   `json:"read_only"`
	GTIDBinlogPos  string `json:"gtid_binlog_pos"`
	GTIDCurrentPos string `json:"gtid_current_pos"`
	GTIDSlavePos   string `json:"gtid_slave_pos"`
	ServerID       uint32 `json:"server_id"`
	GTIDDomainID   uint32 `json:"gtid_domain_id"`
	Version        string `json:"version"`
	// Checkpoints lists every stream applied into this server, by stream
	// name; empty when the server was never a Drover replication target.
	Checkpoints []Checkpoint `json:"checkpoints,omitempty"`
	ServerTime  time.Time    `json:"server_time"`
}

// DBState reads the site database's read_only flag, GTID positions,
// identity and the checkpoint of every stream applied into it. It changes
// nothing. An unreachable server is an error (retryable): the runbook
// cannot decide without this state.
func (a *Activities) DBState(ctx context.Context, in StateInput) (StateResult, error) {
	s, err := a.open(ctx, "state", "", in.Site)
	if err != nil {
		return StateResult{}, err
	}
	defer s.close()
	res := StateResult{Site: s.site, Address: s.addr}
	var ro int
	var now string
	err = s.conn.QueryRowContext(ctx, `SELECT @@global.read_only, @@global.gtid_binlog_pos, @@global.gtid_current_pos,
		@@global.gtid_slave_pos, @@global.server_id, @@global.gtid_domain_id, @@version, UTC_TIMESTAMP(6)`).
		Scan(&ro, &res.GTIDBinlogPos, &res.GTIDCurrentPos, &res.GTIDSlavePos, &res.ServerID, &res.GTIDDomainID, &res.Version, &now)
	if err != nil {
		return res, s.fail("read state", err)
	}
	res.ReadOnly = ro != 0
	if res.ServerTime, err = sitedb.ParseDatetime(now); err != nil {
		return res, s.fail("read state", err)
	}
	if res.Checkpoints, _, err = sitedb.Checkpoints(ctx, s.conn, ""); err != nil {
		return res, s.fail("read checkpoints", err)
	}
	return res, nil
}
