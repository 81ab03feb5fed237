// Package testenv starts the real servers Drover's integration tests run
// against — MariaDB, BIND9 and the Temporal dev server — on free loopback
// ports in temporary directories, and stops them by PID afterwards. A
// missing binary is a failure with the package to install, never a skip.
package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/deploy/local/devstack"
)

// FreePort returns a TCP port that is free on addr right now. Another
// process may still take it before the caller binds; the kernel hands out
// ephemeral ports round-robin, which keeps that rare.
func FreePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	// DNS needs UDP on the same port too.
	u, err := net.ListenPacket("udp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return FreePort(addr)
	}
	u.Close()
	return port, nil
}

// RepoRoot is the module root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// TempDir makes a short-named temporary directory: MariaDB's unix socket
// path must stay under 108 bytes.
func TempDir(prefix string) (string, error) {
	return os.MkdirTemp("", prefix)
}

// binaries maps the programs tests build to their packages.
var binaries = map[string]string{
	"drover": "./starter", "drover-worker": "./worker", "petclinic": "./deploy/local/petclinic",
	"bigtxn": "./tests/bench/bigtxn",
}

// Build compiles the named programs (default: drover, drover-worker and
// petclinic) into dir and returns dir. Tests exercise the same programs SREs
// run, built without the race detector whatever GOFLAGS says: they are the
// system under test, not the test.
func Build(dir string, names ...string) (string, error) {
	if len(names) == 0 {
		names = []string{"drover", "drover-worker", "petclinic"}
	}
	for _, name := range names {
		pkg, ok := binaries[name]
		if !ok {
			return "", fmt.Errorf("build: unknown program %q", name)
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "GOFLAGS="+withoutRace(os.Getenv("GOFLAGS")))
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return dir, nil
}

// withoutRace drops -race from a GOFLAGS value.
func withoutRace(goflags string) string {
	var keep []string
	for _, f := range strings.Fields(goflags) {
		if f != "-race" && f != "--race" && f != "-race=true" {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// TemporalBinary returns the temporal CLI (see devstack.TemporalBinary) or
// an error saying how to install it.
func TemporalBinary() (string, error) {
	p := devstack.TemporalBinary()
	if p == "" {
		return "", fmt.Errorf("temporal CLI not found: run `make temporal` or set DROVER_TEMPORAL_BIN")
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("temporal CLI %s: %w (run `make temporal`)", p, err)
	}
	return p, nil
}

// MariaDB is a throwaway MariaDB server for a test package.
type MariaDB struct {
	*local.MariaDB
	AdminUser, AdminPassword string
	// PasswordFile holds AdminPassword, for recipes' "file:" references.
	PasswordFile string
}

// Addr is the server's host:port.
func (m *MariaDB) Addr() string {
	return net.JoinHostPort(m.Config.Address, strconv.Itoa(m.Config.Port))
}

// StartMariaDB initialises and starts a MariaDB server at address on a free
// port under dir, with an admin account "drover" whose password is written to
// a file. extraArgs are added to mariadbd's command line. Stop it with Close.
func StartMariaDB(ctx context.Context, dir, address string, serverID uint32, extraArgs ...string) (*MariaDB, error) {
	bins, err := local.FindBinaries("")
	if err != nil {
		return nil, err
	}
	port, err := FreePort(address)
	if err != nil {
		return nil, err
	}
	m := &MariaDB{MariaDB: &local.MariaDB{Bins: bins, Config: local.MariaDBConfig{
		Name: "test" + strconv.Itoa(int(serverID)), Dir: dir, Address: address, Port: port,
		ServerID: serverID, DomainID: serverID, ExtraArgs: extraArgs}}, AdminUser: "drover", AdminPassword: local.RandomSecret()}
	if _, _, err := m.Start(ctx, 60*time.Second); err != nil {
		_ = m.Kill(context.Background())
		return nil, err
	}
	m.PasswordFile = filepath.Join(dir, "admin.pw")
	if err := os.WriteFile(m.PasswordFile, []byte(m.AdminPassword+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := m.Bootstrap(ctx, nil, []local.User{{Name: m.AdminUser, Password: m.AdminPassword,
		Grants: []string{"GRANT ALL PRIVILEGES ON *.* TO %s WITH GRANT OPTION"}}}); err != nil {
		_ = m.Kill(context.Background())
		return nil, err
	}
	return m, nil
}

// Close stops the server cleanly.
func (m *MariaDB) Close() error { return m.Stop(context.Background(), 30*time.Second) }

// StartNamed starts BIND9 for zone on a free port of address under dir.
func StartNamed(ctx context.Context, dir, address, zone string, records map[string]string) (*devstack.Named, error) {
	bin, err := local.FindBinary("named", "bind9")
	if err != nil {
		return nil, err
	}
	port, err := FreePort(address)
	if err != nil {
		return nil, err
	}
	n := &devstack.Named{Bin: bin, Config: devstack.NamedConfig{Dir: dir, Address: address, Port: port,
		Zone: zone, Records: records, KeyName: "drover-key", TTL: 30}}
	if _, err := n.Start(ctx, 30*time.Second); err != nil {
		_ = n.Process().Kill(context.Background())
		return nil, err
	}
	return n, nil
}

// ProcessesMentioning lists live processes (pid and command line) whose
// command line contains any of needles. Tests use it to prove that nothing
// was left behind.
func ProcessesMentioning(needles ...string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		line := strings.ReplaceAll(string(cmd), "\x00", " ")
		for _, n := range needles {
			if n != "" && strings.Contains(line, n) {
				out = append(out, fmt.Sprintf("%d %s", pid, line))
				break
			}
		}
	}
	return out
}

// WaitFor polls cond every 50 ms until it returns true or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartTemporal starts a Temporal dev server with the SDK's test helper from
// the locally built temporal CLI (never a download), on a free port, with
// Drover's search attributes registered. Stop it with Stop.
func StartTemporal(ctx context.Context) (*testsuite.DevServer, error) {
	bin, err := TemporalBinary()
	if err != nil {
		return nil, err
	}
	port, err := FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	var updates []temporal.SearchAttributeUpdate
	for _, name := range devstack.SearchAttributes {
		updates = append(updates, temporal.NewSearchAttributeKeyKeyword(name).ValueSet(""))
	}
	sa := temporal.NewSearchAttributes(updates...)
	return testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:     bin,
		ClientOptions:    &client.Options{HostPort: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))},
		LogLevel:         "error",
		SearchAttributes: sa,
		Stdout:           io.Discard,
		Stderr:           io.Discard,
	})
}

// TCP opens a pool on a MariaDB server over TCP as user, closed when the
// test ends. Opening never fails on a down server; the first query does.
func TCP(tb testing.TB, addr, user, password string) *sql.DB {
	tb.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, password, "tcp", addr
	cfg.Timeout = 5 * time.Second
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(8)
	tb.Cleanup(func() { db.Close() })
	return db
}
