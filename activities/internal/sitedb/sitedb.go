// Package sitedb is what the activities that talk to a site's MariaDB share:
// opening a pool from a recipe.Site (the secret resolved here, at the
// worker, never carried in workflow history), sorting driver errors into
// what a retry can and cannot fix, and reading Drover's checkpoint table.
// It knows nothing of Temporal: dbadmin turns its kinds into Temporal
// errors, probe into reported results.
package sitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/drover-sre/drover/recipe"
)

// Addr is the site's database as host:port. The host defaults to the site
// address, as recipe.ApplyDefaults does, so a site taken from a recipe
// without defaults still dials the right server.
func Addr(s recipe.Site) string {
	host := s.DB.Host
	if host == "" {
		host = s.Address
	}
	port := s.DB.Port
	if port == 0 {
		port = recipe.DefaultDBPort
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Admin is the site's admin account (DB.User / DB.Password).
func Admin(s recipe.Site) recipe.Account {
	return recipe.Account{User: s.DB.User, Password: s.DB.Password}
}

// ConfigError is a problem no retry fixes and no server error shows: a
// secret that cannot be resolved, or a malformed value in a server's state.
// What names the thing (for a secret: the account and the reference, never
// a value). Field, when set, is the recipe field at fault relative to the
// site ("db.password", "db.tls.ca", …).
type ConfigError struct {
	What  string
	Field string
	Err   error
}

// Error is "what: cause".
func (e *ConfigError) Error() string { return e.What + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// Open resolves acct's password and returns a pool on the site's database
// over TCP, with TLS as the site's db.tls says (TLSConfig). It does not connect: the first query does. dial bounds
// connecting, io bounds every read and write on the wire (so a silent
// network cannot hang a call forever even without a context deadline).
// Times are read as strings; callers parse them in UTC.
func Open(s recipe.Site, acct recipe.Account, dial, io time.Duration) (*sql.DB, error) {
	pw, err := acct.Password.Resolve()
	if err != nil {
		return nil, &ConfigError{What: "password of db account " + acct.User, Field: "db.password", Err: err}
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = acct.User, pw, "tcp", Addr(s)
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = dial, io, io
	if cfg.TLS, err = TLSConfig(s); err != nil {
		return nil, err
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// Kind says what can fix a database error.
type Kind int

// Kinds of database errors.
const (
	// Transient: network, restart, lock wait — a retry may succeed.
	Transient Kind = iota
	// Auth: wrong credentials or a missing privilege; a human must act.
	Auth
	// Config: an unresolvable secret, an unknown variable, a malformed
	// value in the server's state or a TLS handshake that cannot succeed
	// (certificate not verified, TLS not offered); a human must act.
	Config
)

// The application error types of the non-retryable errors the database
// activities (dbadmin, snapshot) return for Auth and Config failures.
const (
	ErrTypeAuth   = "DBAuth"
	ErrTypeConfig = "DBConfig"
)

// ErrType is the application error type of kind k: ErrTypeAuth,
// ErrTypeConfig, or "" for Transient (retryable, no type).
func (k Kind) ErrType() string {
	switch k {
	case Auth:
		return ErrTypeAuth
	case Config:
		return ErrTypeConfig
	}
	return ""
}

// KindOf classifies err. Anything unknown is Transient: Temporal's retry
// policy bounds how often it is tried again.
func KindOf(err error) Kind {
	var ce *ConfigError
	if errors.As(err, &ce) || TLSRefused(err) {
		return Config
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1095, 1142, 1143, 1227, 1370, 1698, 1819:
			// access denied, not the thread's owner, missing privilege
			return Auth
		case 1193, 1231, 1232, 1238:
			// unknown / invalid / read-only variable: wrong server or version
			return Config
		}
	}
	return Transient
}

// ErrNumber returns the MariaDB error number of err, or 0.
func ErrNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// Querier is what reads need: *sql.DB, *sql.Conn and *sql.Tx all fit.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Checkpoint is one row of drover.replication_checkpoint: what a stream has
// applied into this server, with the source commit time of its last
// transaction. Times are UTC.
type Checkpoint struct {
	Stream    string    `json:"stream"`
	GTID      string    `json:"gtid"`
	SourceTS  time.Time `json:"source_ts,omitzero"` // zero when the stream has only applied DDL
	AppliedAt time.Time `json:"applied_at"`
	Txns      uint64    `json:"txns"`
}

// datetime is how MariaDB prints DATETIME(6) as text.
const datetime = "2006-01-02 15:04:05.999999"

// Checkpoints reads the checkpoint rows of stream ("" = every stream), sorted
// by stream, and the server's UTC clock at the same instant (so lag is
// measured on one clock, not across the worker's and the server's). A server
// without the table — never a replication target — has no rows, not an
// error.
func Checkpoints(ctx context.Context, q Querier, stream string) (rows []Checkpoint, serverNow time.Time, err error) {
	query := `SELECT stream, gtid, source_ts, applied_at, txns, UTC_TIMESTAMP(6) FROM drover.replication_checkpoint`
	var args []any
	if stream != "" {
		query += ` WHERE stream=?`
		args = append(args, stream)
	}
	query += ` ORDER BY stream`
	rs, err := q.QueryContext(ctx, query, args...)
	if n := ErrNumber(err); n == 1146 || n == 1049 { // no such table / schema
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rs.Close()
	for rs.Next() {
		var c Checkpoint
		var src sql.NullString
		var applied, now string
		if err := rs.Scan(&c.Stream, &c.GTID, &src, &applied, &c.Txns, &now); err != nil {
			return nil, time.Time{}, err
		}
		if src.Valid {
			if c.SourceTS, err = ParseDatetime(src.String); err != nil {
				return nil, time.Time{}, err
			}
		}
		if c.AppliedAt, err = ParseDatetime(applied); err != nil {
			return nil, time.Time{}, err
		}
		if serverNow, err = ParseDatetime(now); err != nil {
			return nil, time.Time{}, err
		}
		rows = append(rows, c)
	}
	if err := rs.Err(); err != nil {
		return nil, time.Time{}, err
	}
	return rows, serverNow, nil
}

// ParseDatetime reads a MariaDB DATETIME text value as UTC (Drover writes
// its checkpoint times in UTC).
func ParseDatetime(s string) (time.Time, error) {
	t, err := time.ParseInLocation(datetime, s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("datetime %q: %w", s, err)
	}
	return t, nil
}
