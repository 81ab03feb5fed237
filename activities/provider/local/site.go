// Package local is Drover's embedded "cloud": a site is a set of real
// processes on its own loopback address (a MariaDB server from Debian's
// mariadbd and the demo application), started detached with pid files under
// a state directory. Start, stop and status are idempotent; Kill simulates a
// crash. The Provider's methods are Temporal activities that run on the
// site's own task queue, and the dev stack calls them directly.
package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
)

// Component names accepted by StopSite and KillSite.
const (
	ComponentDB  = "db"
	ComponentApp = "app"
)

// AppDatabase is the schema the demo application uses. It is created empty
// on every site without binary logging; its tables arrive from the app on the
// primary and reach standbys by replication.
const AppDatabase = "petclinic"

// AppUser is the demo application's database account on every local site.
const AppUser = "petclinic"

// Provider starts, stops, crashes and inspects local sites. All state lives
// under StateDir/sites/<name>, so a worker restart finds running sites again.
type Provider struct {
	StateDir string
	Bins     Binaries
	// StartTimeout bounds how long a component may take to become ready.
	StartTimeout time.Duration
}

// SiteInput names the site to act on and, for stop and kill, which
// components ("db", "app"; empty means all).
type SiteInput struct {
	Site       recipe.Site `json:"site"`
	Components []string    `json:"components,omitempty"`
	// Run identifies a runbook run. StartSite records it in a site it
	// creates (a site directory that did not exist), and DestroySite with
	// Run set removes only a site that this run created, so a failed
	// clone removes what it made and never a site that was there before.
	Run string `json:"run,omitempty"`
}

// ComponentState is what the provider knows about one process of a site.
type ComponentState struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	PID     int    `json:"pid,omitempty"`
	Address string `json:"address"`
	Started bool   `json:"started,omitempty"` // this call started it
	LogFile string `json:"log_file"`
}

// SiteState is the observed state of a local site's processes.
type SiteState struct {
	Site       string           `json:"site"`
	Dir        string           `json:"dir"`
	Components []ComponentState `json:"components"`
	// Run is the run recorded when the site was created, if any.
	Run string `json:"run,omitempty"`
	// Destroyed is set by DestroySite when this call removed the site.
	Destroyed bool `json:"destroyed,omitempty"`
}

// Running reports whether every component runs.
func (s SiteState) Running() bool {
	for _, c := range s.Components {
		if !c.Running {
			return false
		}
	}
	return len(s.Components) > 0
}

// SiteDir is where a site's processes keep their state.
func (p *Provider) SiteDir(name string) string { return filepath.Join(p.StateDir, "sites", name) }

// DB returns the manager of a site's MariaDB server.
func (p *Provider) DB(s recipe.Site) *MariaDB {
	host := s.DB.Host
	if host == "" {
		host = s.Address
	}
	return &MariaDB{
		Config: MariaDBConfig{
			Name: s.Name, Dir: filepath.Join(p.SiteDir(s.Name), "db"),
			Address: host, Port: s.DB.Port, ServerID: s.DB.ServerID, DomainID: s.DB.GTIDDomainID,
		},
		Bins: p.Bins,
	}
}

// AppProcess returns the detached demo application process of a site.
func (p *Provider) AppProcess(s recipe.Site) (Process, error) {
	listen, err := appListenAddr(s)
	if err != nil {
		return Process{}, err
	}
	dir := filepath.Join(p.SiteDir(s.Name), "app")
	return Process{
		Name:    s.Name + "/app",
		Path:    p.Bins.App,
		Args:    []string{"--listen", listen, "--dsn-file", filepath.Join(dir, "dsn")},
		PIDFile: filepath.Join(dir, "app.pid"),
		LogFile: filepath.Join(dir, "app.log"),
		Dir:     dir,
	}, nil
}

// StartSite brings a site up: database (initialised on first start, always
// read_only=ON until promoted), accounts, then the demo application. Calling
// it on a running site changes nothing and reports the running processes.
func (p *Provider) StartSite(ctx context.Context, in SiteInput) (SiteState, error) {
	s := in.Site
	if err := checkLocal(s); err != nil {
		return SiteState{}, err
	}
	if p.Bins.App == "" {
		return SiteState{}, errors.New("local provider: demo application binary not configured")
	}
	timeout := p.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	adminPW, err := s.DB.Password.Resolve()
	if err != nil {
		return SiteState{}, fmt.Errorf("start site %s: db.password: %w", s.Name, err)
	}
	if err := p.recordRun(s, in.Run); err != nil {
		return SiteState{}, fmt.Errorf("start site %s: %w", s.Name, err)
	}
	db := p.DB(s)
	dbPID, dbStarted, err := db.Start(ctx, timeout)
	if err != nil {
		return SiteState{}, fmt.Errorf("start site %s: %w", s.Name, err)
	}
	appDir := filepath.Join(p.SiteDir(s.Name), "app")
	if err := os.MkdirAll(appDir, 0o700); err != nil {
		return SiteState{}, fmt.Errorf("start site %s: %w", s.Name, err)
	}
	appPW, err := readOrCreateSecret(filepath.Join(appDir, "db.pw"))
	if err != nil {
		return SiteState{}, fmt.Errorf("start site %s: app password: %w", s.Name, err)
	}
	users := []User{
		{Name: s.DB.User, Password: adminPW, Grants: []string{"GRANT ALL PRIVILEGES ON *.* TO %s WITH GRANT OPTION"}},
		{Name: AppUser, Password: appPW, Grants: []string{"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES ON `" + AppDatabase + "`.* TO %s"}},
	}
	// Replication accounts, when the recipe names them.
	for _, acct := range []struct {
		a      recipe.Account
		grants []string
	}{{s.DB.Stream, replication.StreamGrants}, {s.DB.Apply, replication.ApplyGrants}} {
		if acct.a.User == "" {
			continue
		}
		pw, err := acct.a.Password.Resolve()
		if err != nil {
			return SiteState{}, fmt.Errorf("start site %s: account %s: %w", s.Name, acct.a.User, err)
		}
		users = append(users, User{Name: acct.a.User, Password: pw, Grants: acct.grants})
	}
	if err := db.Bootstrap(ctx, []string{AppDatabase}, users); err != nil {
		return SiteState{}, fmt.Errorf("start site %s: %w", s.Name, err)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net = AppUser, appPW, "tcp"
	cfg.Addr = net.JoinHostPort(db.Config.Address, fmt.Sprint(db.Config.Port))
	cfg.DBName = AppDatabase
	if err := writeFileAtomic(filepath.Join(appDir, "dsn"), []byte(cfg.FormatDSN()+"\n"), 0o600); err != nil {
		return SiteState{}, fmt.Errorf("start site %s: %w", s.Name, err)
	}
	app, err := p.AppProcess(s)
	if err != nil {
		return SiteState{}, err
	}
	_, appStarted, err := app.Start()
	if err != nil {
		return SiteState{}, fmt.Errorf("start site %s: %w", s.Name, err)
	}
	if err := waitHTTP(ctx, app, s.App.Endpoints[0]+"/healthz", timeout); err != nil {
		return SiteState{}, fmt.Errorf("start site %s: %w", s.Name, err)
	}
	st := p.state(s)
	for i := range st.Components {
		switch st.Components[i].Name {
		case ComponentDB:
			st.Components[i].Started = dbStarted
			st.Components[i].PID = dbPID
		case ComponentApp:
			st.Components[i].Started = appStarted
		}
	}
	return st, nil
}

// StopSite shuts the chosen components down cleanly (app first, so it does
// not see its database vanish mid-request). Stopping what is stopped is a no-op.
func (p *Provider) StopSite(ctx context.Context, in SiteInput) (SiteState, error) {
	return p.halt(ctx, in, false)
}

// KillSite crashes the chosen components with SIGKILL: the way tests and
// drills simulate an outage. Killing what is not running is a no-op.
func (p *Provider) KillSite(ctx context.Context, in SiteInput) (SiteState, error) {
	return p.halt(ctx, in, true)
}

// SiteStatus reports which of a site's processes run, without changing anything.
func (p *Provider) SiteStatus(_ context.Context, in SiteInput) (SiteState, error) {
	if err := checkLocal(in.Site); err != nil {
		return SiteState{}, err
	}
	return p.state(in.Site), nil
}

func (p *Provider) halt(ctx context.Context, in SiteInput, kill bool) (SiteState, error) {
	s := in.Site
	if err := checkLocal(s); err != nil {
		return SiteState{}, err
	}
	want := map[string]bool{}
	for _, c := range in.Components {
		if c != ComponentDB && c != ComponentApp {
			return SiteState{}, fmt.Errorf("components: unknown component %q (want %q or %q)", c, ComponentDB, ComponentApp)
		}
		want[c] = true
	}
	all := len(want) == 0
	if all || want[ComponentApp] {
		// Every app instance: the first, and those ScaleSite started.
		apps, err := p.appProcesses(s)
		if err != nil {
			return SiteState{}, err
		}
		for _, app := range apps {
			if kill {
				err = app.Kill(ctx)
			} else {
				err = app.Stop(ctx, 10*time.Second)
			}
			if err != nil && !errors.Is(err, ErrNotRunning) {
				return SiteState{}, fmt.Errorf("site %s: %w", s.Name, err)
			}
		}
	}
	if all || want[ComponentDB] {
		var err error
		if kill {
			err = p.DB(s).Kill(ctx)
		} else {
			err = p.DB(s).Stop(ctx, 60*time.Second)
		}
		if err != nil {
			return SiteState{}, fmt.Errorf("site %s: %w", s.Name, err)
		}
	}
	return p.state(s), nil
}

func (p *Provider) state(s recipe.Site) SiteState {
	st := SiteState{Site: s.Name, Dir: p.SiteDir(s.Name)}
	db := p.DB(s)
	dbProc := db.Process()
	pid, ok := dbProc.PID()
	st.Components = append(st.Components, ComponentState{
		Name: ComponentDB, Running: ok, PID: pidIf(pid, ok),
		Address: net.JoinHostPort(db.Config.Address, fmt.Sprint(db.Config.Port)), LogFile: db.LogFile(),
	})
	if app, err := p.AppProcess(s); err == nil {
		pid, ok := app.PID()
		addr, _ := appListenAddr(s)
		st.Components = append(st.Components, ComponentState{
			Name: ComponentApp, Running: ok, PID: pidIf(pid, ok), Address: addr, LogFile: app.LogFile,
		})
	}
	// Extra app instances appear while ScaleSite keeps them (their pid
	// file exists: running, or crashed).
	for k := 1; k < len(s.App.Endpoints); k++ {
		app, err := p.appProcessN(s, k)
		if err != nil {
			break
		}
		if _, err := os.Stat(app.PIDFile); err != nil {
			continue
		}
		pid, ok := app.PID()
		addr, _ := endpointListenAddr(s, k)
		st.Components = append(st.Components, ComponentState{
			Name: appComponent(k), Running: ok, PID: pidIf(pid, ok), Address: addr, LogFile: app.LogFile,
		})
	}
	st.Run = p.createdBy(s.Name)
	return st
}

func pidIf(pid int, ok bool) int {
	if ok {
		return pid
	}
	return 0
}

// checkLocal refuses sites of other providers: a local activity must never
// act on a cloud site by mistake.
func checkLocal(s recipe.Site) error {
	if s.Provider != "local" {
		return fmt.Errorf("site %s: provider is %q, the local provider only manages provider \"local\"", s.Name, s.Provider)
	}
	if len(s.App.Endpoints) == 0 {
		return fmt.Errorf("site %s: app.endpoints: required", s.Name)
	}
	return nil
}

// appListenAddr derives the app's listen address from its first endpoint.
func appListenAddr(s recipe.Site) (string, error) {
	return endpointListenAddr(s, 0)
}

// endpointListenAddr derives a listen address from endpoint k.
func endpointListenAddr(s recipe.Site, k int) (string, error) {
	if len(s.App.Endpoints) <= k {
		return "", fmt.Errorf("site %s: app.endpoints: required", s.Name)
	}
	u, err := url.Parse(s.App.Endpoints[k])
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("site %s: app.endpoints[%d]: not an absolute URL", s.Name, k)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80"), nil
	}
	return u.Host, nil
}

// waitHTTP polls url until it answers (any status: a standby's app answers
// 200 with writable=false, an app whose database is down answers 503).
func waitHTTP(ctx context.Context, proc Process, rawURL string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return Poll(ctx, proc.Name+" at "+rawURL, timeout, 100*time.Millisecond, func() error {
		if _, ok := proc.PID(); !ok {
			return Stop(fmt.Errorf("%s exited during start; log %s:\n%s", proc.Name, proc.LogFile, tailFile(proc.LogFile, 2000)))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return Stop(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

func readOrCreateSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	}
	s := RandomSecret()
	if err := writeFileAtomic(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	return s, nil
}
