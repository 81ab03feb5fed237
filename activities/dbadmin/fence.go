package dbadmin

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"

	"github.com/drover-sre/drover/activities/internal/cloud"
	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/recipe"
)

// FenceInput names the primary to fence.
type FenceInput struct {
	Site recipe.Site `json:"site"`
	// LockWaitTimeout bounds each attempt of SET GLOBAL read_only=ON while
	// write statements in progress hold it up (default 5s, 1s-60s). After a
	// timed-out attempt DBFence kills the clients and tries again, at most
	// fenceAttempts times in all.
	LockWaitTimeout recipe.Duration `json:"lock_wait_timeout,omitempty"`
	// DrainTimeout bounds the wait for killed sessions to end (default 10s).
	DrainTimeout recipe.Duration `json:"drain_timeout,omitempty"`
}

// Connection is one server session as the process list showed it.
type Connection struct {
	ID      uint64 `json:"id"`
	User    string `json:"user"`
	Host    string `json:"host"`
	DB      string `json:"db,omitempty"`
	Command string `json:"command"`
	Seconds int64  `json:"seconds"` // time in the current command
	State   string `json:"state,omitempty"`
	// InTransaction is true when the session had an InnoDB transaction
	// open: killing it rolled that transaction back.
	InTransaction bool `json:"in_transaction"`
}

// FenceResult says what DBFence found and did.
type FenceResult struct {
	Site    string `json:"site"`
	Address string `json:"address"`
	// FinalGTID is the server's gtid_binlog_pos after read_only=ON took
	// effect and the clients were killed: every transaction a client
	// without READ_ONLY ADMIN will ever commit there. The standby must
	// reach it before it is promoted.
	FinalGTID string `json:"final_gtid"`
	// Changed is true when this call turned read_only ON or killed a
	// session; false when the server was fenced already and nobody was
	// connected.
	Changed     bool `json:"changed"`
	WasReadOnly bool `json:"was_read_only"`
	// Killed lists the sessions this call killed.
	Killed []Connection `json:"killed,omitempty"`
	// StillClosing lists killed sessions that had not ended when
	// DrainTimeout passed (a long rollback); they cannot commit.
	StillClosing []uint64  `json:"still_closing,omitempty"`
	FencedAt     time.Time `json:"fenced_at"`
}

// fenceAttempts bounds the attempts of SET GLOBAL read_only=ON.
const fenceAttempts = 3

// DBFence stops a primary from taking writes: SET GLOBAL read_only=ON, then
// it kills every client session except system and replication threads, the
// site's stream and apply accounts and its own (see KillClients), waits
// (bounded) for the killed sessions to end, and reads the final GTID
// position. An open transaction of a killed session is rolled back, never
// committed.
//
// It is safe to run again: on a fenced server it sets nothing, still kills
// any client that has connected since (a retry after a crash between the
// two steps must finish the job) and returns the same FinalGTID. If
// read_only is found OFF again at the end — someone promoted the server
// meanwhile — it fails (retryable) rather than report a position that is
// not final.
//
// It blocks for at most fenceAttempts lock waits plus DrainTimeout (25 s
// with the defaults) after connecting: give the activity a StartToClose
// timeout above that. It heartbeats every FenceHeartbeat throughout (also
// while a statement blocks), so a heartbeat timeout of a few times that
// notices a dead worker long before StartToClose.
func (a *Activities) DBFence(ctx context.Context, in FenceInput) (res FenceResult, err error) {
	err = cloud.Heartbeating(ctx, FenceHeartbeat, func() error {
		var ferr error
		res, ferr = a.fence(ctx, in)
		return ferr
	}, "fencing "+in.Site.Name)
	return res, err
}

// fence is DBFence without its heartbeat.
func (a *Activities) fence(ctx context.Context, in FenceInput) (FenceResult, error) {
	logger := activity.GetLogger(ctx)
	s, err := a.open(ctx, "fence", "", in.Site)
	if err != nil {
		return FenceResult{}, err
	}
	defer s.close()
	res := FenceResult{Site: s.site, Address: s.addr}

	wait := fenceLockWait(in.LockWaitTimeout.D())
	// Bounds this session's wait for the global read lock that read_only
	// takes; the server default is a day.
	if _, err := s.conn.ExecContext(ctx, "SET SESSION lock_wait_timeout="+strconv.Itoa(wait)); err != nil {
		return res, s.fail("set lock_wait_timeout", err)
	}
	if res.WasReadOnly, err = s.readOnly(ctx); err != nil {
		return res, err
	}
	keep := keepUsers(in.Site)
	if !res.WasReadOnly {
		for attempt := 1; ; attempt++ {
			_, err := s.conn.ExecContext(ctx, "SET GLOBAL read_only=ON")
			if err == nil {
				break
			}
			if sitedb.ErrNumber(err) != 1205 || attempt == fenceAttempts {
				return res, s.fail(fmt.Sprintf("set read_only=ON (attempt %d of %d, lock wait %ds)", attempt, fenceAttempts, wait), err)
			}
			// Write statements in progress hold the global read lock up:
			// end them, then try again.
			logger.Warn("read_only=ON waited for statements in progress; killing client sessions",
				"site", s.site, "attempt", attempt, "lock_wait_timeout_s", wait)
			killed, err := KillClients(ctx, s.conn, keep, logger)
			res.Killed = append(res.Killed, killed...)
			if err != nil {
				return res, s.fail("kill clients", err)
			}
		}
	}
	killed, err := KillClients(ctx, s.conn, keep, logger)
	res.Killed = append(res.Killed, killed...)
	if err != nil {
		return res, s.fail("kill clients", err)
	}
	drain := in.DrainTimeout.D()
	if drain <= 0 {
		drain = DefaultDrainTimeout
	}
	if res.StillClosing, err = waitGone(ctx, s.conn, res.Killed, drain); err != nil {
		return res, s.fail("wait for killed sessions", err)
	}
	if len(res.StillClosing) > 0 {
		logger.Warn("killed sessions still rolling back; they cannot commit under read_only",
			"site", s.site, "ids", res.StillClosing)
	}
	var ro int
	if err := s.conn.QueryRowContext(ctx, "SELECT @@global.read_only, @@global.gtid_binlog_pos").Scan(&ro, &res.FinalGTID); err != nil {
		return res, s.fail("read final position", err)
	}
	if ro == 0 {
		return res, fmt.Errorf("%s: read_only was turned OFF by someone else while fencing", s.prefix(""))
	}
	res.Changed = !res.WasReadOnly || len(res.Killed) > 0
	res.FencedAt = time.Now().UTC()
	logger.Info("fenced", "site", s.site, "final_gtid", res.FinalGTID, "was_read_only", res.WasReadOnly,
		"killed", len(res.Killed), "changed", res.Changed)
	return res, nil
}

// fenceLockWait returns lock_wait_timeout in whole seconds, 1-60.
func fenceLockWait(d time.Duration) int {
	if d <= 0 {
		d = DefaultLockWaitTimeout
	}
	return int(min(max(math.Ceil(d.Seconds()), 1), 60))
}

// keepUsers are the accounts whose sessions a fence spares: the site's
// stream account (peers reading its binlog must get the last transactions)
// and apply account (a reverse stream writing into it is Drover's, not a
// client). When the recipe gives no separate accounts these are the admin
// account, and admin sessions are then spared too.
func keepUsers(s recipe.Site) []string {
	return []string{s.DB.StreamAccount().User, s.DB.ApplyAccount().User}
}

// systemUsers own the server's own threads.
var systemUsers = map[string]bool{"system user": true, "event_scheduler": true}

// spared reports whether KillClients leaves c alone: server threads,
// replication threads (a Binlog Dump serves a replica — Drover's streamer
// included — and Slave_* are native replica threads), sessions already
// being killed, and the keep accounts.
func spared(c Connection, keep []string) bool {
	if systemUsers[c.User] || c.Command == "Daemon" || c.Command == "Killed" ||
		strings.HasPrefix(c.Command, "Binlog Dump") || strings.HasPrefix(c.Command, "Slave_") {
		return true
	}
	for _, u := range keep {
		if u != "" && c.User == u {
			return true
		}
	}
	return false
}

// KillClients kills every client session of the server conn is connected
// to, except conn's own, server and replication threads, and sessions of
// the keepUsers accounts. It logs each kill with the session's user, host,
// command and whether a transaction was open (killing rolls it back), and
// returns the sessions it killed; a session that ended by itself before its
// KILL is not listed. conn must hold CONNECTION ADMIN (or SUPER) and
// PROCESS; without them it fails with the server's access error.
func KillClients(ctx context.Context, conn *sql.Conn, keepUsers []string, logger log.Logger) ([]Connection, error) {
	sessions, err := listSessions(ctx, conn)
	if err != nil {
		return nil, err
	}
	var killed []Connection
	for _, c := range sessions {
		if spared(c, keepUsers) {
			continue
		}
		if _, err := conn.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatUint(c.ID, 10)); err != nil {
			if sitedb.ErrNumber(err) == 1094 { // unknown thread: it ended by itself
				continue
			}
			return killed, fmt.Errorf("kill session %d of %s@%s: %w", c.ID, c.User, c.Host, err)
		}
		logger.Info("killed client session", "id", c.ID, "user", c.User, "host", c.Host, "db", c.DB,
			"command", c.Command, "seconds", c.Seconds, "state", c.State, "in_transaction", c.InTransaction)
		killed = append(killed, c)
	}
	return killed, nil
}

// listSessions reads the process list (every session but conn's own) with
// whether each has an InnoDB transaction open.
func listSessions(ctx context.Context, conn *sql.Conn) ([]Connection, error) {
	rows, err := conn.QueryContext(ctx, `SELECT p.ID, IFNULL(p.USER,''), IFNULL(p.HOST,''), IFNULL(p.DB,''),
		IFNULL(p.COMMAND,''), IFNULL(p.TIME,0), IFNULL(p.STATE,''),
		EXISTS(SELECT 1 FROM information_schema.INNODB_TRX t WHERE t.trx_mysql_thread_id = p.ID)
		FROM information_schema.PROCESSLIST p
		WHERE p.ID <> CONNECTION_ID() ORDER BY p.ID`)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []Connection
	for rows.Next() {
		var c Connection
		if err := rows.Scan(&c.ID, &c.User, &c.Host, &c.DB, &c.Command, &c.Seconds, &c.State, &c.InTransaction); err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// waitGone polls the process list every 50 ms until none of killed is left
// or timeout passes, and returns the ids still present.
func waitGone(ctx context.Context, conn *sql.Conn, killed []Connection, timeout time.Duration) ([]uint64, error) {
	if len(killed) == 0 {
		return nil, nil
	}
	want := map[uint64]bool{}
	for _, c := range killed {
		want[c.ID] = true
	}
	deadline := time.Now().Add(timeout)
	for {
		sessions, err := listSessions(ctx, conn)
		if err != nil {
			return nil, err
		}
		var left []uint64
		for _, c := range sessions {
			if want[c.ID] {
				left = append(left, c.ID)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left, nil
		}
		select {
		case <-ctx.Done():
			return left, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FenceHeartbeat is how often DBFence heartbeats.
const FenceHeartbeat = time.Second
