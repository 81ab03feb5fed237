package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/recipe"
)

// runFile is the file in a site directory that records the run that
// created the site (SiteInput.Run).
const runFile = "created-by-run"

// ScaleInput asks for a local site's app tier to run exactly Instances
// demo application processes.
type ScaleInput struct {
	Site recipe.Site `json:"site"`
	// Instances is the wanted number of app processes, 0 to the number of
	// app endpoints the site lists: app process k listens on endpoint k.
	Instances int `json:"instances"`
}

// DestroySite removes a local site: it kills its processes (its data is
// about to go, so there is nothing to shut down cleanly), checks that none
// survived, and deletes its state directory StateDir/sites/<name> — and
// never anything else: it refuses a site name that is not a plain name, a
// state directory that is not absolute, and a site directory that is a
// symbolic link. With in.Run set it removes the site only if that run
// created it (see SiteInput.Run) and otherwise changes nothing. Destroying
// a site that does not exist is a no-op; Destroyed says whether this call
// removed it.
func (p *Provider) DestroySite(ctx context.Context, in SiteInput) (SiteState, error) {
	s := in.Site
	if err := checkLocal(s); err != nil {
		return SiteState{}, err
	}
	dir, err := p.ownedSiteDir(s.Name)
	if err != nil {
		return SiteState{}, err
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return p.state(s), nil
	case err != nil:
		return SiteState{}, fmt.Errorf("destroy site %s: %w", s.Name, err)
	case fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir():
		return SiteState{}, fmt.Errorf("destroy site %s: %s is not a plain directory; refusing to remove it", s.Name, dir)
	}
	if in.Run != "" {
		if by := p.createdBy(s.Name); by != in.Run {
			st := p.state(s)
			return st, nil // not this run's site: leave it alone
		}
	}
	if _, err := p.halt(ctx, SiteInput{Site: s}, true); err != nil {
		return SiteState{}, fmt.Errorf("destroy site %s: %w", s.Name, err)
	}
	for _, c := range p.state(s).Components {
		if c.Running {
			return SiteState{}, fmt.Errorf("destroy site %s: %s still runs (pid %d); not removing %s", s.Name, c.Name, c.PID, dir)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return SiteState{}, fmt.Errorf("destroy site %s: %w", s.Name, err)
	}
	st := p.state(s)
	st.Destroyed = true
	return st, nil
}

// ScaleSite makes a started local site run exactly in.Instances demo
// application processes: process k (from 0) listens on app endpoint k, so
// a local site can run as many as it lists endpoints (each endpoint of a
// local site is unique across sites, so extra processes never collide).
// Process 0 is the one StartSite runs. It starts the missing processes,
// waits until each answers, and stops the surplus; the database is never
// touched. Asking for more processes than endpoints is a non-retryable
// ProviderConfig error.
func (p *Provider) ScaleSite(ctx context.Context, in ScaleInput) (SiteState, error) {
	s := in.Site
	if err := checkLocal(s); err != nil {
		return SiteState{}, err
	}
	if in.Instances < 0 || in.Instances > len(s.App.Endpoints) {
		return SiteState{}, provider.ActivityError(ctx, &provider.Error{Op: "local scale", Site: s.Name, Kind: provider.Config,
			Msg: fmt.Sprintf("instances: %d is not 0-%d: a local site runs one app process per app endpoint; list more endpoints", in.Instances, len(s.App.Endpoints))})
	}
	if in.Instances > 0 {
		if _, ok := p.DB(s).Process().PID(); !ok {
			return SiteState{}, fmt.Errorf("scale site %s: its database is not running; start the site first (StartSite)", s.Name)
		}
		if _, err := os.Stat(filepath.Join(p.SiteDir(s.Name), "app", "dsn")); err != nil {
			return SiteState{}, fmt.Errorf("scale site %s: the site was never started (no app configuration); start it first (StartSite)", s.Name)
		}
	}
	timeout := p.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	started := map[string]bool{}
	for k := range s.App.Endpoints {
		app, err := p.appProcessN(s, k)
		if err != nil {
			return SiteState{}, err
		}
		if k >= in.Instances {
			if err := app.Stop(ctx, 10*time.Second); err != nil && !errors.Is(err, ErrNotRunning) {
				return SiteState{}, fmt.Errorf("scale site %s: %w", s.Name, err)
			}
			continue
		}
		_, ok, err := app.Start()
		if err != nil {
			return SiteState{}, fmt.Errorf("scale site %s: %w", s.Name, err)
		}
		started[appComponent(k)] = ok
		if err := waitHTTP(ctx, app, strings.TrimSuffix(s.App.Endpoints[k], "/")+"/healthz", timeout); err != nil {
			return SiteState{}, fmt.Errorf("scale site %s: %w", s.Name, err)
		}
	}
	st := p.state(s)
	for i := range st.Components {
		st.Components[i].Started = started[st.Components[i].Name]
	}
	return st, nil
}

// appComponent names app process k: "app" for the first, then "app-2", …
func appComponent(k int) string {
	if k == 0 {
		return ComponentApp
	}
	return ComponentApp + "-" + strconv.Itoa(k+1)
}

// appProcessN returns app process k of a site: AppProcess for k = 0, else a
// process listening on endpoint k with its own pid and log files.
func (p *Provider) appProcessN(s recipe.Site, k int) (Process, error) {
	app, err := p.AppProcess(s)
	if err != nil || k == 0 {
		return app, err
	}
	listen, err := endpointListenAddr(s, k)
	if err != nil {
		return Process{}, err
	}
	name := appComponent(k)
	app.Name = s.Name + "/" + name
	app.Args = []string{"--listen", listen, "--dsn-file", filepath.Join(app.Dir, "dsn")}
	app.PIDFile = filepath.Join(app.Dir, name+".pid")
	app.LogFile = filepath.Join(app.Dir, name+".log")
	return app, nil
}

// appProcesses returns every app process a site may run: one per endpoint.
func (p *Provider) appProcesses(s recipe.Site) ([]Process, error) {
	var out []Process
	for k := range max(len(s.App.Endpoints), 1) {
		app, err := p.appProcessN(s, k)
		if err != nil {
			return nil, err
		}
		out = append(out, app)
	}
	return out, nil
}

// ownedSiteDir returns StateDir/sites/<name> after checking that it is
// exactly that: an absolute state directory and a plain site name, so that
// removing it can never reach outside the state directory.
func (p *Provider) ownedSiteDir(name string) (string, error) {
	if !recipe.ValidName(name) {
		return "", fmt.Errorf("site %q: not a valid site name; refusing to touch its directory", name)
	}
	if p.StateDir == "" || !filepath.IsAbs(p.StateDir) {
		return "", fmt.Errorf("site %s: state directory %q is not an absolute path; refusing to remove anything", name, p.StateDir)
	}
	root := filepath.Join(filepath.Clean(p.StateDir), "sites")
	dir := p.SiteDir(name)
	if rel, err := filepath.Rel(root, dir); err != nil || rel != name {
		return "", fmt.Errorf("site %s: %s is not directly under %s; refusing to remove it", name, dir, root)
	}
	return dir, nil
}

// recordRun records run as the creator of a site whose directory does not
// exist yet; an existing site keeps what it has.
func (p *Provider) recordRun(s recipe.Site, run string) error {
	if run == "" {
		return nil
	}
	dir, err := p.ownedSiteDir(s.Name)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		return err // exists (nil) or unreadable
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, runFile), []byte(run+"\n"), 0o600)
}

// createdBy returns the run recorded as the creator of a site, or "".
func (p *Provider) createdBy(name string) string {
	b, err := os.ReadFile(filepath.Join(p.SiteDir(name), runFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SetAsideInput names a local site whose data is to be kept but no longer
// used: Tag (the run that decides it) names the kept copy.
type SetAsideInput struct {
	Site recipe.Site `json:"site"`
	Tag  string      `json:"tag"`
}

// SetAsideResult says where the site's directory went; Moved is false when
// there was nothing to move (no site, or an earlier call moved it).
type SetAsideResult struct {
	Dir   string `json:"dir,omitempty"`
	Moved bool   `json:"moved"`
}

// SetAsideSite stops a local site cleanly and renames its directory to
// StateDir/sites/<name>.aside-<tag>, so that the site can be built afresh
// (CloneSite) while its old data — e.g. transactions no other site has —
// stays on disk for an operator. Nothing is deleted. Calling it again
// after it succeeded finds the moved directory and changes nothing.
func (p *Provider) SetAsideSite(ctx context.Context, in SetAsideInput) (SetAsideResult, error) {
	s := in.Site
	if err := checkLocal(s); err != nil {
		return SetAsideResult{}, err
	}
	if !validTag(in.Tag) {
		return SetAsideResult{}, fmt.Errorf("set aside site %s: tag %q: letters, digits and dashes only", s.Name, in.Tag)
	}
	dir, err := p.ownedSiteDir(s.Name)
	if err != nil {
		return SetAsideResult{}, err
	}
	aside := dir + ".aside-" + in.Tag
	if _, err := os.Lstat(aside); err == nil {
		return SetAsideResult{Dir: aside}, nil // moved by an earlier call
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return SetAsideResult{}, nil
	case err != nil:
		return SetAsideResult{}, fmt.Errorf("set aside site %s: %w", s.Name, err)
	case fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir():
		return SetAsideResult{}, fmt.Errorf("set aside site %s: %s is not a plain directory", s.Name, dir)
	}
	if _, err := p.halt(ctx, SiteInput{Site: s}, false); err != nil {
		return SetAsideResult{}, fmt.Errorf("set aside site %s: %w", s.Name, err)
	}
	for _, c := range p.state(s).Components {
		if c.Running {
			return SetAsideResult{}, fmt.Errorf("set aside site %s: %s still runs (pid %d)", s.Name, c.Name, c.PID)
		}
	}
	if err := os.Rename(dir, aside); err != nil {
		return SetAsideResult{}, fmt.Errorf("set aside site %s: %w", s.Name, err)
	}
	return SetAsideResult{Dir: aside, Moved: true}, nil
}

// validTag accepts run ids (UUIDs): letters, digits and dashes.
func validTag(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
