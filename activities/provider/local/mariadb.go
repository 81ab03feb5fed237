package local

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBConfig describes one MariaDB server of a local site.
type MariaDBConfig struct {
	Name     string // used in messages, e.g. "east"
	Dir      string // everything of this server lives here: data/, socket, pid, log
	Address  string // loopback address to bind
	Port     int
	ServerID uint32
	DomainID uint32 // gtid_domain_id: one per site so local writes are visible as errant
	// ExtraArgs are appended to mariadbd's command line (e.g. --ssl-cert=…),
	// after Drover's own options, so they can override them.
	ExtraArgs []string
}

// MariaDB manages one mariadbd process started from Debian's binaries in a
// private data directory. The server always starts with read_only=ON: a
// database that comes back after a crash must never take writes until a
// runbook decides it is the primary (no split brain by default).
type MariaDB struct {
	Config MariaDBConfig
	Bins   Binaries
}

// User is a database account that Bootstrap creates or updates.
type User struct {
	Name     string
	Host     string // default "%"
	Password string
	Grants   []string // full GRANT statements with %s for the quoted account, e.g. "GRANT SELECT ON *.* TO %s"
}

// DataDir is the server's data directory.
func (m *MariaDB) DataDir() string { return filepath.Join(m.Config.Dir, "data") }

// Socket is the server's unix socket, used only for root administration.
func (m *MariaDB) Socket() string { return filepath.Join(m.Config.Dir, "mysqld.sock") }

// LogFile is the server's error log.
func (m *MariaDB) LogFile() string { return filepath.Join(m.Config.Dir, "mariadbd.err") }

// Process is the detached mariadbd process of this server.
func (m *MariaDB) Process() Process {
	c := m.Config
	args := []string{
		"--no-defaults",
		"--datadir=" + m.DataDir(),
		"--socket=" + m.Socket(),
		"--port=" + strconv.Itoa(c.Port),
		"--bind-address=" + c.Address,
		"--pid-file=" + filepath.Join(c.Dir, "mariadbd.pid.server"),
		"--log-error=" + m.LogFile(),
		"--tmpdir=" + filepath.Join(c.Dir, "tmp"),
		"--server-id=" + strconv.FormatUint(uint64(c.ServerID), 10),
		"--gtid-domain-id=" + strconv.FormatUint(uint64(c.DomainID), 10),
		"--log-bin=" + filepath.Join(m.DataDir(), "binlog"),
		"--binlog-format=ROW",
		"--binlog-row-image=FULL",
		"--binlog-row-metadata=FULL",
		"--log-slave-updates=ON",
		// Drover's applier replays row events with BINLOG statements; an
		// annotation would copy each statement's whole text into the binlog.
		"--binlog-annotate-row-events=OFF",
		"--gtid-strict-mode=ON",
		"--binlog-expire-logs-seconds=604800",
		"--read-only=ON",
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_unicode_ci",
		"--innodb-buffer-pool-size=128M",
		"--max-connections=200",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	args = append(args, c.ExtraArgs...)
	return Process{
		Name:    c.Name + "/mariadbd",
		Path:    m.Bins.MariaDBD,
		Args:    args,
		PIDFile: filepath.Join(c.Dir, "mariadbd.pid"),
		LogFile: filepath.Join(c.Dir, "mariadbd.out"),
		Dir:     c.Dir,
	}
}

// Init creates the data directory with mariadb-install-db and a random root
// password file, unless the data directory already exists. It is idempotent.
func (m *MariaDB) Init(ctx context.Context) error {
	if err := os.MkdirAll(m.Config.Dir, 0o700); err != nil {
		return fmt.Errorf("init %s database: %w", m.Config.Name, err)
	}
	if _, err := os.Stat(m.rootPasswordFile()); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(m.rootPasswordFile(), []byte(RandomSecret()+"\n"), 0o600); err != nil {
			return fmt.Errorf("init %s database: root password: %w", m.Config.Name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(m.DataDir(), "mysql")); err == nil {
		return nil
	}
	// A half-made data directory from an interrupted init is discarded.
	if err := os.RemoveAll(m.DataDir()); err != nil {
		return fmt.Errorf("init %s database: %w", m.Config.Name, err)
	}
	// A private tmpdir: the bootstrap server's temporary tables in a shared
	// /tmp collided when several servers were initialised at once.
	tmp := filepath.Join(m.Config.Dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("init %s database: %w", m.Config.Name, err)
	}
	args := []string{"--no-defaults", "--datadir=" + m.DataDir(),
		"--auth-root-authentication-method=normal", "--skip-test-db", "--tmpdir=" + tmp}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.CommandContext(ctx, m.Bins.MariaDBInstal, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(m.DataDir())
		return fmt.Errorf("init %s database: mariadb-install-db: %w\n%s", m.Config.Name, err, tail(string(out), 2000))
	}
	return nil
}

// Start initialises the data directory if needed, starts mariadbd unless it
// already runs, and waits until it accepts connections on its socket.
func (m *MariaDB) Start(ctx context.Context, timeout time.Duration) (pid int, started bool, err error) {
	if err := m.Init(ctx); err != nil {
		return 0, false, err
	}
	if err := os.MkdirAll(filepath.Join(m.Config.Dir, "tmp"), 0o700); err != nil {
		return 0, false, err
	}
	p := m.Process()
	pid, started, err = p.Start()
	if err != nil {
		return 0, false, err
	}
	if err := m.WaitReady(ctx, timeout); err != nil {
		return pid, started, err
	}
	return pid, started, nil
}

// WaitReady polls until the server answers a ping as root over its socket,
// failing early with the error log's tail if the process has died.
func (m *MariaDB) WaitReady(ctx context.Context, timeout time.Duration) error {
	return Poll(ctx, m.Config.Name+" mariadbd", timeout, 100*time.Millisecond, func() error {
		if _, ok := m.Process().PID(); !ok {
			return Stop(fmt.Errorf("%s mariadbd exited during start; error log %s:\n%s", m.Config.Name, m.LogFile(), tailFile(m.LogFile(), 2000)))
		}
		db, err := m.RootDB()
		if err != nil {
			return err
		}
		defer db.Close()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return db.PingContext(pctx)
	})
}

// Stop shuts the server down cleanly (SIGTERM, which makes mariadbd flush and
// exit), waiting up to grace before SIGKILL. Stopping a stopped server is a no-op.
func (m *MariaDB) Stop(ctx context.Context, grace time.Duration) error {
	if err := m.Process().Stop(ctx, grace); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return nil
}

// Kill crashes the server with SIGKILL; InnoDB recovers at the next start.
func (m *MariaDB) Kill(ctx context.Context) error {
	if err := m.Process().Kill(ctx); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return nil
}

func (m *MariaDB) rootPasswordFile() string { return filepath.Join(m.Config.Dir, "root.pw") }

// RootDB opens a connection pool as root over the unix socket. Root has no
// network account: after Bootstrap it exists only as root@localhost with a
// random password kept in a 0600 file in the server's directory.
func (m *MariaDB) RootDB() (*sql.DB, error) {
	pw, err := os.ReadFile(m.rootPasswordFile())
	if err != nil {
		return nil, fmt.Errorf("%s root password: %w", m.Config.Name, err)
	}
	db, err := m.openSocket(strings.TrimSpace(string(pw)))
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1045 { // access denied: password not set yet
			db.Close()
			return m.openSocket("")
		}
	}
	return db, nil
}

func (m *MariaDB) openSocket(password string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Passwd = password
	cfg.Net = "unix"
	cfg.Addr = m.Socket()
	cfg.Timeout = 2 * time.Second
	cfg.ReadTimeout = 30 * time.Second
	cfg.WriteTimeout = 30 * time.Second
	cfg.ParseTime = true
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(2)
	return db, nil
}

// Bootstrap secures root and creates or updates the given users. Every
// statement runs with sql_log_bin=0: accounts are local to a site and must
// neither replicate nor consume a GTID that would later look like an errant
// transaction. Running it again converges to the same state.
func (m *MariaDB) Bootstrap(ctx context.Context, databases []string, users []User) error {
	db, err := m.RootDB()
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", m.Config.Name, err)
	}
	defer conn.Close()
	pw, err := os.ReadFile(m.rootPasswordFile())
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", m.Config.Name, err)
	}
	stmts := []string{
		"SET SESSION sql_log_bin=0",
		// Root only over the socket; no passwordless TCP accounts.
		"DELETE FROM mysql.global_priv WHERE User='root' AND Host<>'localhost'",
		"DELETE FROM mysql.global_priv WHERE User=''",
		"FLUSH PRIVILEGES",
		"ALTER USER root@localhost IDENTIFIED BY " + quote(strings.TrimSpace(string(pw))),
	}
	for _, d := range databases {
		stmts = append(stmts, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(d))
	}
	for _, u := range users {
		host := u.Host
		if host == "" {
			host = "%"
		}
		acct := quote(u.Name) + "@" + quote(host)
		stmts = append(stmts,
			"CREATE USER IF NOT EXISTS "+acct+" IDENTIFIED BY "+quote(u.Password),
			"ALTER USER "+acct+" IDENTIFIED BY "+quote(u.Password))
		for _, g := range u.Grants {
			stmts = append(stmts, fmt.Sprintf(g, acct))
		}
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("bootstrap %s: %s: %w", m.Config.Name, redact(s), err)
		}
	}
	return nil
}

// SetReadOnly sets the global read_only flag through the root socket.
func (m *MariaDB) SetReadOnly(ctx context.Context, on bool) error {
	db, err := m.RootDB()
	if err != nil {
		return err
	}
	defer db.Close()
	v := "OFF"
	if on {
		v = "ON"
	}
	if _, err := db.ExecContext(ctx, "SET GLOBAL read_only="+v); err != nil {
		return fmt.Errorf("set read_only=%s on %s: %w", v, m.Config.Name, err)
	}
	return nil
}

// RandomSecret returns 32 hex characters from crypto/rand.
func RandomSecret() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// redact hides passwords in a statement before it goes into an error.
func redact(stmt string) string {
	if i := strings.Index(stmt, "IDENTIFIED BY"); i >= 0 {
		return stmt[:i] + "IDENTIFIED BY <redacted>"
	}
	return stmt
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return tail(string(b), n)
}

// PortOpen reports whether something accepts TCP connections at addr.
func PortOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
