package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/replication"
)

// Account names and passwords of the benchmark servers. They are throwaway
// servers bound to loopback; the passwords only keep the accounts from
// being passwordless.
const (
	StreamUser     = "drover_stream"
	StreamPassword = "stream-pw"
	ApplyUser      = "drover_apply"
	ApplyPassword  = "apply-pw"
)

// Server is one running MariaDB with a root pool over its socket.
type Server struct {
	*MariaDB
	Root *sql.DB
	dir  string
}

// StartServer starts a MariaDB server at address (a 127.0.0.x loopback address)
// with the given server id (also its gtid_domain_id) in a new temporary
// directory. The server starts read_only=ON, like every Drover database.
// extraArgs are added to mariadbd's command line (see TLSArgs).
func StartServer(ctx context.Context, address string, serverID uint32, extraArgs ...string) (*Server, error) {
	dir, err := TempDir(fmt.Sprintf("drvsrv%d", serverID))
	if err != nil {
		return nil, err
	}
	m, err := StartMariaDB(ctx, dir, address, serverID, extraArgs...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start mariadb %d: %w", serverID, err)
	}
	s := &Server{MariaDB: m, dir: dir}
	if s.Root, err = m.RootDB(); err != nil {
		s.Close()
		return nil, err
	}
	s.Root.SetMaxOpenConns(4)
	return s, nil
}

// Close stops the server by its PID and removes its directory.
func (s *Server) Close() {
	if s.Root != nil {
		s.Root.Close()
	}
	_ = s.MariaDB.Close()
	os.RemoveAll(s.dir)
}

// Dir is the server's private directory (data directory, socket, logs).
func (s *Server) Dir() string { return s.dir }

// Down stops the server cleanly (by PID), closing the root pool first so
// no pooled connection sees the shutdown.
func (s *Server) Down(ctx context.Context) error {
	if s.Root != nil {
		s.Root.Close()
		s.Root = nil
	}
	return s.Stop(ctx, time.Minute)
}

// Up starts the server again on the same port and data directory and
// opens a new root pool.
func (s *Server) Up(ctx context.Context) error {
	if _, _, err := s.Start(ctx, time.Minute); err != nil {
		return err
	}
	db, err := s.RootDB()
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(4)
	s.Root = db
	return nil
}

// Exec runs statements as root, stopping at the first failure.
func (s *Server) Exec(ctx context.Context, qs ...string) error {
	for _, q := range qs {
		if _, err := s.Root.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %s: %w", s.Config.Name, q, err)
		}
	}
	return nil
}

// Position is the server's @@gtid_binlog_pos.
func (s *Server) Position(ctx context.Context) (replication.Position, error) {
	return s.GTIDVar(ctx, "gtid_binlog_pos")
}

// GTIDVar reads a global GTID position variable (gtid_binlog_pos,
// gtid_slave_pos, gtid_current_pos).
func (s *Server) GTIDVar(ctx context.Context, name string) (replication.Position, error) {
	var raw string
	if err := s.Root.QueryRowContext(ctx, "SELECT @@global."+name).Scan(&raw); err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", s.Config.Name, name, err)
	}
	return replication.ParsePosition(raw)
}

// MakeSource opens the server for writes and adds Drover's streaming
// account plus any extra accounts.
func (s *Server) MakeSource(ctx context.Context, extra ...local.User) error {
	users := append([]local.User{{Name: StreamUser, Password: StreamPassword, Grants: replication.StreamGrants}}, extra...)
	if err := s.Bootstrap(ctx, nil, users); err != nil {
		return err
	}
	return s.SetReadOnly(ctx, false)
}

// MakeTarget adds Drover's applier account and the checkpoint table; the
// server stays read_only=ON (only the applier writes).
func (s *Server) MakeTarget(ctx context.Context) error {
	if err := s.Bootstrap(ctx, nil, []local.User{{Name: ApplyUser, Password: ApplyPassword, Grants: replication.ApplyGrants}}); err != nil {
		return err
	}
	return replication.Setup(ctx, s.Root)
}

// StreamConfig is a Drover stream from src into dst with the accounts made
// by MakeSource and MakeTarget.
func StreamConfig(stream string, src, dst *Server, replicaServerID uint32) replication.Config {
	return replication.Config{
		Stream:          stream,
		Source:          replication.Endpoint{Addr: src.Addr(), User: StreamUser, Password: StreamPassword},
		Target:          replication.Endpoint{Addr: dst.Addr(), User: ApplyUser, Password: ApplyPassword},
		ReplicaServerID: replicaServerID,
	}
}

// Running is a Streamer whose Run goroutine is in progress.
type Running struct {
	*replication.Streamer
	cancel context.CancelFunc
	done   chan error
}

// StartStream builds a streamer from cfg and runs it in the background
// until the test ends, when it is stopped (waiting at most 30 s).
func StartStream(tb testing.TB, cfg replication.Config) *Running {
	tb.Helper()
	s, err := replication.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	r := RunStream(s)
	tb.Cleanup(func() { _ = r.Stop(30 * time.Second) })
	return r
}

// RunStream starts s.Run in the background.
func RunStream(s *replication.Streamer) *Running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Streamer: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	return r
}

// Stop cancels the stream and returns Run's error, waiting at most timeout.
func (r *Running) Stop(timeout time.Duration) error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // Stop may be called again
		return err
	case <-time.After(timeout):
		return fmt.Errorf("stream %s did not stop within %s", r.Stats().Stream, timeout)
	}
}

// WaitApplied polls the stream's applied position every poll until it
// includes want, and returns when that was first seen. It fails when the
// stream stops with an error or timeout passes.
func (r *Running) WaitApplied(ctx context.Context, want replication.Position, poll, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		st := r.Stats()
		if got, err := replication.ParsePosition(st.Position); err == nil && got.Behind(want) == 0 {
			return time.Now(), nil
		}
		select {
		case err := <-r.done:
			r.done <- err
			return time.Time{}, fmt.Errorf("stream stopped at %s (want %s): %v; last error %q", st.Position, want, err, st.LastError)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("stream not at %s after %s: applied %s, last error %q", want, timeout, st.Position, st.LastError)
		}
	}
}

// Version is the server's @@version.
func (s *Server) Version(ctx context.Context) string {
	var v string
	if err := s.Root.QueryRowContext(ctx, "SELECT @@version").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}
