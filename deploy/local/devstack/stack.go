// Package devstack runs Drover's embedded local stack on one machine: the
// Temporal dev server (SQLite + Web UI), BIND9 as the authoritative server of
// the demo zone, two local sites (MariaDB + the demo app, each on its own
// loopback address) and one drover-worker per site. Every process is started
// detached with a pid file; stack.json records exactly what Up started so that
// Down stops exactly that and nothing else.
package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"gopkg.in/yaml.v3"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/recipe"
)

// SiteSpec is one local site of the dev stack.
type SiteSpec struct {
	Name    string
	Address string // loopback address of its own, e.g. 127.0.0.2
	DBPort  int
	AppPort int
}

// Options configures Up. DefaultOptions gives the documented layout.
type Options struct {
	StateDir        string
	BinDir          string // holds drover-worker and petclinic (make build puts them in bin/)
	TemporalBin     string
	TemporalAddress string
	TemporalPort    int
	UIPort          int
	// TemporalHTTPPort and TemporalMetricsPort: 0 means TemporalPort+10, +11.
	TemporalHTTPPort    int
	TemporalMetricsPort int
	DNSAddress          string
	DNSPort             int
	App                 string
	Zone                string // with trailing dot
	Sites               []SiteSpec
	Primary             string
	// AutoFailover writes policy.auto_failover: true into the recipe, so a
	// health monitor may fail over by itself (the demo; off by default).
	AutoFailover bool
	StartTimeout time.Duration
	Out          io.Writer // progress lines; nil discards
	// WorkerEnv is extra environment (KEY=VALUE) for the worker of the
	// named site, on top of the minimal one every daemon gets: e.g. the
	// chaos tests' DROVER_CHAOS_DIR. It reaches the workers this Up starts.
	WorkerEnv map[string][]string
	// DrillAddress is written into the recipe as drill.address: where an
	// isolated DR drill of a standby listens (empty: drills must be given
	// an address).
	DrillAddress string
	// Unprovisioned names sites whose database and app Up does not create:
	// `drover clone` (the CloneSite workflow) builds them from the primary.
	// Their workers run, so the clone's copy can run there, and the zone has
	// no <site> record until the clone registers it. Once a clone has created
	// such a site, Up starts it like any other.
	Unprovisioned []string
}

// DefaultOptions is the stack `drover dev up` starts when given no flags:
// east on 127.0.0.2, west on 127.0.0.3, MariaDB on 3306 and the app on 8080 at
// each, BIND9 on 127.0.0.1:5354, Temporal on 127.0.0.1:7233 with the UI on 8233.
func DefaultOptions() Options {
	return Options{
		StateDir:        "/tmp/drover-dev",
		TemporalAddress: "127.0.0.1", TemporalPort: 7233, UIPort: 8233,
		DNSAddress: "127.0.0.1", DNSPort: 5354,
		App: "petclinic", Zone: "drover.test.",
		Sites: []SiteSpec{
			{Name: "east", Address: "127.0.0.2", DBPort: 3306, AppPort: 8080},
			{Name: "west", Address: "127.0.0.3", DBPort: 3306, AppPort: 8080},
		},
		Primary:      "east",
		DrillAddress: "127.0.0.4",
		StartTimeout: 90 * time.Second,
	}
}

// Component is one process the stack started.
type Component struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	PID     int    `json:"pid"`
	Binary  string `json:"binary"`
	PIDFile string `json:"pid_file"`
	LogFile string `json:"log_file"`
	// Grace is how long a clean stop may take before SIGKILL.
	Grace time.Duration `json:"grace"`
}

// State is what stack.json records: enough to print where everything is and
// to stop exactly what was started.
type State struct {
	StateDir        string      `json:"state_dir"`
	RecipeFile      string      `json:"recipe_file"`
	TemporalAddress string      `json:"temporal_address"`
	Namespace       string      `json:"namespace"`
	UIURL           string      `json:"ui_url"`
	DNSServer       string      `json:"dns_server"`
	Components      []Component `json:"components"`
}

// StateFile is where a stack's State is kept.
func StateFile(stateDir string) string { return filepath.Join(stateDir, "stack.json") }

// Up starts the whole stack, or the parts of it not already running, and
// returns where everything is. If a step fails, everything this call
// recorded is stopped again before the error is returned.
func Up(ctx context.Context, o Options) (st *State, err error) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	bins, err := findBinaries(o)
	if err != nil {
		return nil, err
	}
	stateDir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(stateDir, "secrets"), 0o700); err != nil {
		return nil, err
	}
	st = &State{StateDir: stateDir, Namespace: "default"}
	if prev, err := Load(stateDir); err == nil {
		st.Components = prev.Components
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(out, "dev up failed, stopping what was started: %v\n", err)
			_ = Down(context.WithoutCancel(ctx), stateDir, out)
		}
	}()
	record := func(c Component) error {
		st.Components = upsert(st.Components, c)
		if c.PID == 0 {
			return st.save() // recorded so a failed start is cleaned up; printed once running
		}
		fmt.Fprintf(out, "  %-14s pid %-7d %-22s log %s\n", c.Name, c.PID, c.Address, c.LogFile)
		return st.save()
	}

	// Temporal.
	tdev := &TemporalDev{Bin: bins.temporal, Config: TemporalConfig{
		Dir: filepath.Join(stateDir, "temporal"), Address: o.TemporalAddress,
		Port: o.TemporalPort, UIPort: o.UIPort, HTTPPort: o.TemporalHTTPPort, MetricsPort: o.TemporalMetricsPort,
		Namespace: st.Namespace}}
	fmt.Fprintf(out, "starting temporal dev server at %s (UI %s)\n", tdev.HostPort(), tdev.UIURL())
	if err := record(component("temporal", tdev.HostPort(), tdev.Process(), 0, 20*time.Second)); err != nil {
		return st, err
	}
	pid, err := tdev.Start(ctx, o.StartTimeout)
	if err != nil {
		return st, err
	}
	if err := record(component("temporal", tdev.HostPort(), tdev.Process(), pid, 20*time.Second)); err != nil {
		return st, err
	}
	st.TemporalAddress, st.UIURL = tdev.HostPort(), tdev.UIURL()

	// DNS.
	prov := &local.Provider{StateDir: stateDir, StartTimeout: o.StartTimeout}
	records := map[string]string{}
	for _, s := range o.Sites {
		if o.awaitsClone(prov, s.Name) {
			continue
		}
		records[s.Name] = s.Address
		if s.Name == o.Primary {
			records["app"] = s.Address
		}
	}
	named := &Named{Bin: bins.named, Config: NamedConfig{
		Dir: filepath.Join(stateDir, "dns"), Address: o.DNSAddress, Port: o.DNSPort,
		Zone: o.Zone, Records: records, KeyName: "drover-key", TTL: 30}}
	fmt.Fprintf(out, "starting named for %s at %s\n", o.Zone, named.Addr())
	if err := record(component("named", named.Addr(), named.Process(), 0, 10*time.Second)); err != nil {
		return st, err
	}
	if pid, err = named.Start(ctx, o.StartTimeout); err != nil {
		return st, err
	}
	if err := record(component("named", named.Addr(), named.Process(), pid, 10*time.Second)); err != nil {
		return st, err
	}
	st.DNSServer = named.Addr()

	// Recipe: written before the sites start because the sites read their
	// secrets through it, exactly as the worker's activities will.
	rcp, err := o.recipe(stateDir, named)
	if err != nil {
		return st, err
	}
	st.RecipeFile = filepath.Join(stateDir, "recipe.yaml")
	if err := writeRecipe(st.RecipeFile, rcp); err != nil {
		return st, err
	}

	// Sites. The primary is the site the public name answers (see
	// currentPrimary): the recipe's on a fresh stack, the runbooks' choice
	// after a failover or switchover.
	primary, err := currentPrimary(ctx, named, rcp)
	if err != nil {
		return st, err
	}
	if primary == "" {
		fmt.Fprintf(out, "  %s names no single site: every database stays read-only until a runbook promotes one\n", rcp.DNS.Record)
	}
	prov.Bins = bins.local
	for _, s := range rcp.Sites {
		db := prov.DB(s)
		app, err := prov.AppProcess(s)
		if err != nil {
			return st, err
		}
		if o.awaitsClone(prov, s.Name) {
			// Recorded, not started: Down stops what a clone starts here.
			fmt.Fprintf(out, "site %s at %s is not provisioned: `drover clone --to %s` creates it\n", s.Name, s.Address, s.Name)
			if err := record(component(s.Name+"/db", db.Config.Address+":"+strconv.Itoa(db.Config.Port), db.Process(), 0, 60*time.Second)); err != nil {
				return st, err
			}
			if err := record(component(s.Name+"/app", "", app, 0, 10*time.Second)); err != nil {
				return st, err
			}
			continue
		}
		fmt.Fprintf(out, "starting site %s at %s\n", s.Name, s.Address)
		// Record first so that a failed start is still cleaned up.
		if err := record(component(s.Name+"/db", db.Config.Address+":"+strconv.Itoa(db.Config.Port), db.Process(), 0, 60*time.Second)); err != nil {
			return st, err
		}
		if err := record(component(s.Name+"/app", "", app, 0, 10*time.Second)); err != nil {
			return st, err
		}
		ss, err := prov.StartSite(ctx, local.SiteInput{Site: s})
		if err != nil {
			return st, err
		}
		for _, c := range ss.Components {
			p := db.Process()
			if c.Name == local.ComponentApp {
				p = app
			}
			if err := record(component(s.Name+"/"+c.Name, c.Address, p, c.PID, 0)); err != nil {
				return st, err
			}
		}
		// The primary takes writes; every other database stays
		// read_only=ON as it started. Runbooks move the role, audited.
		// A database that was running already is left as it is: Up run
		// again to restart a missing worker must not touch read_only —
		// during a switchover the public name still answers the old
		// primary after it was fenced, and unfencing it there would make
		// two sites writable.
		if s.Name == primary && dbRunning(ss) {
			fmt.Fprintf(out, "  %s's database was running: read_only left as it is\n", s.Name)
		} else if s.Name == primary {
			if err := prov.DB(s).SetReadOnly(ctx, false); err != nil {
				return st, err
			}
			if err := waitAppWritable(ctx, s.App.Endpoints[0]+"/healthz", o.StartTimeout); err != nil {
				return st, fmt.Errorf("site %s: %w", s.Name, err)
			}
			fmt.Fprintf(out, "  %s is the primary: read_only=OFF, app writable\n", s.Name)
		}
	}

	// Workers.
	for _, s := range rcp.Sites {
		w := workerProcess(o, bins, stateDir, s.Name, tdev.HostPort(), st.Namespace)
		if err := record(component(s.Name+"/worker", "", w, 0, 15*time.Second)); err != nil {
			return st, err
		}
		pid, _, err := w.Start()
		if err != nil {
			return st, err
		}
		if err := record(component(s.Name+"/worker", "", w, pid, 15*time.Second)); err != nil {
			return st, err
		}
	}
	if err := waitPollers(ctx, tdev.HostPort(), st.Namespace, rcp.Sites, o.StartTimeout, st); err != nil {
		return st, err
	}
	fmt.Fprintf(out, "stack is up: recipe %s, Temporal %s, UI %s, DNS %s\n", st.RecipeFile, st.TemporalAddress, st.UIURL, st.DNSServer)
	return st, nil
}

// Down stops, in reverse start order, every process recorded in stack.json
// and then removes stack.json. Data directories stay, so a later Up resumes
// with the same databases. Processes that are already gone are skipped.
func Down(ctx context.Context, stateDir string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	st, err := Load(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "no stack recorded in %s: nothing to stop\n", stateDir)
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for i := len(st.Components) - 1; i >= 0; i-- {
		c := st.Components[i]
		p := local.Process{Name: c.Name, Path: c.Binary, PIDFile: c.PIDFile}
		pid, running := p.PID()
		if !running {
			continue
		}
		grace := c.Grace
		if grace == 0 {
			grace = 10 * time.Second
		}
		if err := p.Stop(ctx, grace); err != nil && !errors.Is(err, local.ErrNotRunning) {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(out, "stopped %-14s pid %d\n", c.Name, pid)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return os.Remove(StateFile(stateDir))
}

// SiteAction starts, stops (clean) or kills (SIGKILL) one site of a running
// stack, or some of its components ("db", "app"). It is how an SRE or a demo
// simulates an outage and brings the site back; a restarted database comes
// back read_only=ON, as after any crash.
func SiteAction(ctx context.Context, stateDir, action, site string, components []string) (local.SiteState, error) {
	st, err := Load(stateDir)
	if err != nil {
		return local.SiteState{}, fmt.Errorf("no stack in %s: %w", stateDir, err)
	}
	r, err := recipe.Load(st.RecipeFile)
	if err != nil {
		return local.SiteState{}, err
	}
	s, ok := r.Site(site)
	if !ok {
		return local.SiteState{}, fmt.Errorf("unknown site %q", site)
	}
	appBin := ""
	for _, c := range st.Components {
		if c.Name == site+"/app" {
			appBin = c.Binary
		}
	}
	bins, err := local.FindBinaries(appBin)
	if err != nil {
		return local.SiteState{}, err
	}
	prov := &local.Provider{StateDir: st.StateDir, Bins: bins}
	in := local.SiteInput{Site: s, Components: components}
	switch action {
	case "start":
		return prov.StartSite(ctx, in)
	case "stop":
		return prov.StopSite(ctx, in)
	case "kill":
		return prov.KillSite(ctx, in)
	}
	return local.SiteState{}, fmt.Errorf("unknown action %q (want start, stop or kill)", action)
}

// Purge deletes a stopped stack's state directory. It refuses a directory
// that does not look like one `Up` made (a recipe.yaml and a secrets/
// folder) or whose stack still runs, so a mistyped --state-dir cannot erase
// anything else.
func Purge(stateDir string) error {
	if _, err := os.Stat(StateFile(stateDir)); err == nil {
		return fmt.Errorf("%s still records a running stack: run dev down first", stateDir)
	}
	for _, marker := range []string{"recipe.yaml", "secrets"} {
		if _, err := os.Stat(filepath.Join(stateDir, marker)); err != nil {
			if errors.Is(err, os.ErrNotExist) && marker == "recipe.yaml" {
				if _, err2 := os.Stat(stateDir); errors.Is(err2, os.ErrNotExist) {
					return nil // nothing to purge
				}
			}
			return fmt.Errorf("refusing to delete %s: it has no %s, so it is not a Drover dev stack directory", stateDir, marker)
		}
	}
	return os.RemoveAll(stateDir)
}

// Load reads a stack's State.
func Load(stateDir string) (*State, error) {
	b, err := os.ReadFile(StateFile(stateDir))
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", StateFile(stateDir), err)
	}
	return &st, nil
}

// ComponentStatus is one line of Status.
type ComponentStatus struct {
	Component
	Running bool `json:"running"`
}

// Status reports, for every recorded component, whether it still runs.
func Status(stateDir string) (*State, []ComponentStatus, error) {
	st, err := Load(stateDir)
	if err != nil {
		return nil, nil, err
	}
	var out []ComponentStatus
	for _, c := range st.Components {
		p := local.Process{Name: c.Name, Path: c.Binary, PIDFile: c.PIDFile}
		pid, ok := p.PID()
		c.PID = 0
		if ok {
			c.PID = pid
		}
		out = append(out, ComponentStatus{Component: c, Running: ok})
	}
	return st, out, nil
}

func (st *State) save() error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := StateFile(st.StateDir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, StateFile(st.StateDir))
}

func component(name, addr string, p local.Process, pid int, grace time.Duration) Component {
	return Component{Name: name, Address: addr, PID: pid, Binary: p.Path, PIDFile: p.PIDFile, LogFile: p.LogFile, Grace: grace}
}

// upsert replaces the component of the same name (keeping its position and a
// non-zero grace) or appends it.
func upsert(cs []Component, c Component) []Component {
	for i := range cs {
		if cs[i].Name == c.Name {
			if c.Grace == 0 {
				c.Grace = cs[i].Grace
			}
			if c.Address == "" {
				c.Address = cs[i].Address
			}
			cs[i] = c
			return cs
		}
	}
	return append(cs, c)
}

type stackBinaries struct {
	temporal, named, worker string
	local                   local.Binaries
}

func findBinaries(o Options) (stackBinaries, error) {
	var b stackBinaries
	var err error
	if b.named, err = local.FindBinary("named", "bind9"); err != nil {
		return b, err
	}
	if b.local, err = local.FindBinaries(filepath.Join(o.BinDir, "petclinic")); err != nil {
		return b, err
	}
	b.worker, err = filepath.Abs(filepath.Join(o.BinDir, "drover-worker"))
	if err != nil {
		return b, err
	}
	if _, err := os.Stat(b.worker); err != nil {
		return b, fmt.Errorf("drover-worker binary: %w (run `make build`)", err)
	}
	b.temporal = o.TemporalBin
	if b.temporal == "" {
		b.temporal = TemporalBinary()
	}
	if _, err := os.Stat(b.temporal); err != nil {
		return b, fmt.Errorf("temporal CLI not found at %q: run `make temporal` (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) or set DROVER_TEMPORAL_BIN", b.temporal)
	}
	return b, nil
}

// TemporalBinary is where Drover looks for the temporal CLI: $DROVER_TEMPORAL_BIN,
// else the Makefile's cache ($XDG_CACHE_HOME or ~/.cache)/drover/temporal-v1.5.1/temporal,
// else `temporal` on PATH.
func TemporalBinary() string {
	if p := os.Getenv("DROVER_TEMPORAL_BIN"); p != "" {
		return p
	}
	if dir, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(dir, "drover", "temporal-v1.5.1", "temporal")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := local.FindBinary("temporal", "temporal CLI"); err == nil {
		return p
	}
	return ""
}

// awaitsClone reports whether site is one of o.Unprovisioned that no
// clone has created yet (it has no data directory).
func (o Options) awaitsClone(prov *local.Provider, site string) bool {
	if !slices.Contains(o.Unprovisioned, site) {
		return false
	}
	_, err := os.Stat(filepath.Join(prov.SiteDir(site), "db", "data"))
	return errors.Is(err, os.ErrNotExist)
}

func (o Options) check() error {
	var problems []string
	if o.StateDir == "" {
		problems = append(problems, "state dir: required")
	}
	if len(o.Sites) == 0 {
		problems = append(problems, "sites: at least one")
	}
	seen := map[string]bool{}
	for _, s := range o.Sites {
		ip := net.ParseIP(s.Address)
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			problems = append(problems, fmt.Sprintf("site %s: address %q must be an IPv4 loopback address", s.Name, s.Address))
		}
		if seen[s.Name] {
			problems = append(problems, fmt.Sprintf("site %s: duplicate name", s.Name))
		}
		seen[s.Name] = true
	}
	if !seen[o.Primary] {
		problems = append(problems, fmt.Sprintf("primary %q: not one of the sites", o.Primary))
	}
	for _, s := range o.Sites {
		if o.DrillAddress != "" && s.Address == o.DrillAddress {
			problems = append(problems, fmt.Sprintf("drill address %s: it is site %s's address; a drill needs one of its own", o.DrillAddress, s.Name))
		}
	}
	for _, u := range o.Unprovisioned {
		switch {
		case !seen[u]:
			problems = append(problems, fmt.Sprintf("unprovisioned %q: not one of the sites", u))
		case u == o.Primary:
			problems = append(problems, fmt.Sprintf("unprovisioned %q: the primary must exist (it is what a clone copies)", u))
		}
	}
	if len(problems) > 0 {
		return errors.New("dev stack options: " + strings.Join(problems, "; "))
	}
	return nil
}

// recipe builds the application recipe that describes this stack. Secrets
// are files under the state directory, referenced, never inlined.
func (o Options) recipe(stateDir string, named *Named) (*recipe.Recipe, error) {
	r := &recipe.Recipe{App: o.App, Primary: o.Primary}
	for i, s := range o.Sites {
		secret := func(kind string) (recipe.SecretRef, error) {
			f := filepath.Join(stateDir, "secrets", s.Name+"-"+kind+".pw")
			if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
				if err := os.WriteFile(f, []byte(local.RandomSecret()+"\n"), 0o600); err != nil {
					return "", err
				}
			}
			return recipe.SecretRef("file:" + f), nil
		}
		adminPW, err := secret("db-admin")
		if err != nil {
			return nil, err
		}
		streamPW, err := secret("db-stream")
		if err != nil {
			return nil, err
		}
		applyPW, err := secret("db-apply")
		if err != nil {
			return nil, err
		}
		r.Sites = append(r.Sites, recipe.Site{
			Name: s.Name, Provider: "local", Region: "local", Address: s.Address,
			DB: recipe.Database{Host: s.Address, Port: s.DBPort, User: "drover",
				Password: adminPW, ServerID: uint32(i + 1), GTIDDomainID: uint32(i + 1),
				Stream: recipe.Account{User: "drover_stream", Password: streamPW},
				Apply:  recipe.Account{User: "drover_apply", Password: applyPW}},
			App: recipe.AppTier{Endpoints: []string{"http://" + net.JoinHostPort(s.Address, strconv.Itoa(s.AppPort))}, Instances: 1},
		})
	}
	for _, s := range o.Sites {
		if s.Name != o.Primary {
			r.Replication = append(r.Replication, recipe.Stream{From: o.Primary, To: s.Name})
		}
	}
	r.DNS = recipe.DNS{Zone: o.Zone, Record: "app." + o.Zone, TTL: 30, Driver: "rfc2136", Server: named.Addr(),
		TSIG: recipe.TSIG{Name: named.Config.KeyName, Algorithm: "hmac-sha256", Secret: recipe.SecretRef("file:" + named.KeySecretFile())}}
	r.Policy.AutoFailover = o.AutoFailover
	r.Drill.Address = o.DrillAddress
	// What a DR drill checks on the promoted copy: the demo app writes an
	// owner and reads it back.
	r.Smoke = []recipe.SmokeCheck{
		{Name: "create owner", Method: "POST", Path: "/api/owners", ExpectStatus: 201,
			Body: `{"first_name":"Drill","last_name":"` + recipe.RunToken + `","city":"Drill","telephone":"555-0100"}`},
		{Name: "read owner back", Path: "/api/owners?last_name=" + recipe.RunToken, ExpectBody: `"last_name":"` + recipe.RunToken + `"`},
	}
	r.Probes = []recipe.Probe{
		{Kind: "http", Target: "/healthz"},
		{Kind: "tcp", Target: "db"},
		{Kind: "mysql"},
		{Kind: "dns"},
	}
	r.ApplyDefaults()
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("generated recipe is invalid (a bug): %w", err)
	}
	return r, nil
}

func writeRecipe(path string, r *recipe.Recipe) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(r); err != nil {
		return err
	}
	b := buf.Bytes()
	head := "# Generated by `drover dev up`: the recipe of the local dev stack.\n"
	if err := os.WriteFile(path, append([]byte(head), b...), 0o600); err != nil {
		return err
	}
	// What we wrote must read back: the CLI and tests load this file.
	if _, err := recipe.Load(path); err != nil {
		return fmt.Errorf("generated recipe %s does not load (a bug): %w", path, err)
	}
	return nil
}

// dbRunning reports whether StartSite found the site's database running
// rather than starting it.
func dbRunning(ss local.SiteState) bool {
	for _, c := range ss.Components {
		if c.Name == local.ComponentDB {
			return !c.Started
		}
	}
	return false
}

func workerProcess(o Options, b stackBinaries, stateDir, site, hostPort, ns string) local.Process {
	dir := filepath.Join(stateDir, "workers", site)
	env := []string{"TEMPORAL_ADDRESS=" + hostPort, "TEMPORAL_NAMESPACE=" + ns}
	return local.Process{
		Name:    site + "/worker",
		Path:    b.worker,
		Args:    []string{"--site", site, "--state-dir", stateDir, "--app-bin", b.local.App},
		Env:     append(env, o.WorkerEnv[site]...),
		PIDFile: filepath.Join(dir, "worker.pid"),
		LogFile: filepath.Join(dir, "worker.log"),
		Dir:     dir,
	}
}

// waitAppWritable polls the demo app's health until it reports a writable
// database with its schema in place, so "stack is up" means writes work.
func waitAppWritable(ctx context.Context, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	return local.Poll(ctx, "writable app at "+url, timeout, 100*time.Millisecond, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return local.Stop(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var h struct {
			DB struct {
				Writable bool `json:"writable"`
				Schema   bool `json:"schema"`
			} `json:"db"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&h); err != nil {
			return err
		}
		if !h.DB.Writable || !h.DB.Schema {
			return fmt.Errorf("writable=%v schema=%v", h.DB.Writable, h.DB.Schema)
		}
		return nil
	})
}

// waitPollers waits until every site's worker polls its site queue and the
// shared queue, so a runbook started right after Up finds its workers.
func waitPollers(ctx context.Context, hostPort, ns string, sites []recipe.Site, timeout time.Duration, st *State) error {
	c, err := client.DialContext(ctx, client.Options{HostPort: hostPort, Namespace: ns,
		Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range sites {
		err := local.Poll(ctx, "worker "+s.Name+" polling "+s.TaskQueue(), timeout, 200*time.Millisecond, func() error {
			for _, comp := range st.Components {
				if comp.Name == s.Name+"/worker" {
					p := local.Process{Path: comp.Binary, PIDFile: comp.PIDFile}
					if _, ok := p.PID(); !ok {
						return local.Stop(fmt.Errorf("worker %s exited; log %s:\n%s", s.Name, comp.LogFile, readTail(comp.LogFile)))
					}
				}
			}
			resp, err := c.DescribeTaskQueue(ctx, s.TaskQueue(), enumspb.TASK_QUEUE_TYPE_ACTIVITY)
			if err != nil {
				return err
			}
			if len(resp.GetPollers()) == 0 {
				return errors.New("no poller yet")
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
