package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/drover-sre/drover/tests/testenv"
)

// appUser is the application's database account: DML and DDL on petclinic.*
// only, so read_only applies to it as it does in production.
const appUser = "petclinic"

// The package's two real MariaDB servers, started by TestMain.
var (
	// shared serves every test that keeps its server up.
	shared *dbServer
	// spare is the server that tests kill, restart and strip of its schema,
	// so that shared keeps running.
	spare *dbServer
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests starts both servers, runs the tests and stops the servers again,
// returning the exit code. A server that cannot start fails the run.
func runTests(m *testing.M) (code int) {
	var servers []*dbServer
	defer func() {
		for _, s := range servers {
			if err := s.close(); err != nil {
				fmt.Fprintln(os.Stderr, "petclinic tests:", err)
				code = max(code, 1)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for id := uint32(1); id <= 2; id++ {
		s, err := startServer(ctx, id)
		if err != nil {
			fmt.Fprintln(os.Stderr, "petclinic tests:", err)
			return 1
		}
		servers = append(servers, s)
	}
	shared, spare = servers[0], servers[1]
	return m.Run()
}

// dbServer is a real MariaDB with the petclinic database, the application
// account and the schema, writable.
type dbServer struct {
	*testenv.MariaDB
	dir  string
	root *sql.DB       // root over the unix socket: set-up and inspection only
	app  *mysql.Config // the application account's DSN, as normalizeDSN returns it
}

// startServer starts and provisions a server in a fresh temporary directory.
func startServer(ctx context.Context, id uint32) (*dbServer, error) {
	dir, err := testenv.TempDir("pclinic")
	if err != nil {
		return nil, err
	}
	m, err := testenv.StartMariaDB(ctx, dir, "127.0.0.1", id)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start mariadb %d in %s: %w", id, dir, err)
	}
	s := &dbServer{MariaDB: m, dir: dir}
	if err := s.provision(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("provision mariadb %d: %w", id, err), s.close())
	}
	return s, nil
}

// provision creates the database and the application account, makes the
// server writable and lets the application create its schema with its own
// account.
func (s *dbServer) provision(ctx context.Context) error {
	root, err := s.RootDB()
	if err != nil {
		return err
	}
	s.root = root
	password := rand.Text()
	for _, stmt := range []string{
		"CREATE DATABASE petclinic",
		"CREATE USER '" + appUser + "'@'%' IDENTIFIED BY '" + password + "'",
		"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES ON petclinic.* TO '" + appUser + "'@'%'",
	} {
		if _, err := root.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", strings.Replace(stmt, password, "…", 1), err)
		}
	}
	if err := s.SetReadOnly(ctx, false); err != nil {
		return err
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = appUser, password, "tcp", s.Addr(), "petclinic"
	if s.app, err = normalizeDSN(cfg.FormatDSN()); err != nil {
		return err
	}
	return s.ensureSchema(ctx)
}

// ensureSchema runs the application's EnsureSchema with its own account.
func (s *dbServer) ensureSchema(ctx context.Context) error {
	db, err := openDB(s.app, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = NewStore(db).EnsureSchema(ctx)
	return err
}

// close stops the server (SIGKILL if it will not stop) and removes its
// directory.
func (s *dbServer) close() error {
	if s.root != nil {
		_ = s.root.Close()
	}
	err := s.Close()
	if err != nil {
		err = errors.Join(err, s.Kill(context.Background()))
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

// up makes sure s runs, is writable and has the schema (a failed test may have
// left it down or bare).
func (s *dbServer) up(t *testing.T) {
	t.Helper()
	if _, running := s.Process().PID(); !running {
		_, _, err := s.Start(t.Context(), time.Minute)
		require.NoError(t, err)
	}
	require.NoError(t, s.SetReadOnly(t.Context(), false))
	require.NoError(t, s.ensureSchema(t.Context()))
}

// fresh empties the petclinic tables and makes s writable.
func (s *dbServer) fresh(t *testing.T) {
	t.Helper()
	require.NoError(t, s.SetReadOnly(t.Context(), false))
	for _, table := range []string{"visits", "pets", "owners"} {
		s.exec(t, "DELETE FROM petclinic."+table)
	}
}

// setReadOnly sets read_only and turns it off again when t ends.
func (s *dbServer) setReadOnly(t *testing.T, on bool) {
	t.Helper()
	require.NoError(t, s.SetReadOnly(t.Context(), on))
	t.Cleanup(func() {
		if err := s.SetReadOnly(context.Background(), false); err != nil {
			t.Errorf("restore read_only=OFF: %v", err)
		}
	})
}

// exec runs stmt as root.
func (s *dbServer) exec(t *testing.T, stmt string, args ...any) {
	t.Helper()
	_, err := s.root.ExecContext(t.Context(), stmt, args...)
	require.NoError(t, err, stmt)
}

// rows counts the rows of every application table.
func (s *dbServer) rows(t *testing.T) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, table := range []string{"owners", "pets", "visits"} {
		var c int
		require.NoError(t, s.root.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM petclinic."+table).Scan(&c))
		n[table] = c
	}
	return n
}

// gtidPos is @@global.gtid_binlog_pos: it moves with every transaction
// written to the binlog, DDL included.
func (s *dbServer) gtidPos(t *testing.T) string {
	t.Helper()
	var pos string
	require.NoError(t, s.root.QueryRowContext(t.Context(), "SELECT @@global.gtid_binlog_pos").Scan(&pos))
	return pos
}

// traceApp turns the server's general query log on (as the table
// mysql.general_log) until t ends and returns a function that lists the
// statements the application account has sent since, in order. The general
// log records statements as they arrive, refused ones included; with
// server-side prepared statements, Execute holds the statement with its
// arguments.
func (s *dbServer) traceApp(t *testing.T) func() []string {
	t.Helper()
	var since time.Time
	require.NoError(t, s.root.QueryRowContext(t.Context(), "SELECT NOW(6)").Scan(&since))
	s.exec(t, "SET GLOBAL log_output = 'TABLE'")
	s.exec(t, "SET GLOBAL general_log = ON")
	t.Cleanup(func() {
		if _, err := s.root.ExecContext(context.Background(), "SET GLOBAL general_log = OFF"); err != nil {
			t.Errorf("general_log=OFF: %v", err)
		}
	})
	return func() []string {
		t.Helper()
		rows, err := s.root.QueryContext(t.Context(), `SELECT argument FROM mysql.general_log
WHERE event_time >= ? AND user_host LIKE ? AND command_type IN ('Query', 'Execute')
ORDER BY event_time`, since, appUser+"[%")
		require.NoError(t, err)
		defer rows.Close()
		stmts := []string{}
		for rows.Next() {
			var stmt string
			require.NoError(t, rows.Scan(&stmt))
			stmts = append(stmts, stmt)
		}
		require.NoError(t, rows.Err())
		return stmts
	}
}

// writes returns the statements of stmts that would change data or schema.
func writes(stmts []string) []string {
	var w []string
	for _, stmt := range stmts {
		verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(stmt)), " ")
		switch verb {
		case "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME":
			w = append(w, stmt)
		}
	}
	return w
}

// tables lists the tables of the petclinic database in name order.
func (s *dbServer) tables(t *testing.T) []string {
	t.Helper()
	rows, err := s.root.QueryContext(t.Context(),
		"SELECT table_name FROM information_schema.tables WHERE table_schema = 'petclinic' ORDER BY table_name")
	require.NoError(t, err)
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		names = append(names, name)
	}
	require.NoError(t, rows.Err())
	return names
}

// app is the application's real handler served over HTTP on loopback, with a
// connection pool of the application account built by the app's own openDB.
type app struct {
	url    string
	client *http.Client
	db     *sql.DB
	logs   *logBuffer
}

// newApp starts the application against s; it is stopped when t ends.
func newApp(t *testing.T, s *dbServer) *app {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	db, err := openDB(s.app, logger)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	srv := httptest.NewServer(newServer(db, logger))
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.Timeout = 30 * time.Second
	return &app{url: srv.URL, client: client, db: db, logs: logs}
}

// reply is a complete HTTP response.
type reply struct {
	code   int
	header http.Header
	body   string
}

// send makes one request; it is safe to call from any goroutine.
func (a *app) send(ctx context.Context, method, path, body string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// do makes one request from the test goroutine.
func (a *app) do(t *testing.T, method, path, body string) reply {
	t.Helper()
	r, err := a.send(t.Context(), method, path, body)
	require.NoError(t, err, "%s %s", method, path)
	return r
}

// logBuffer collects the application's log; the server writes it from its
// request goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
