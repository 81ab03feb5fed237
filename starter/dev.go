package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/drover-sre/drover/deploy/local/devstack"
)

func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "drover dev: want up, down or status")
		return 2
	}
	d := devstack.DefaultOptions()
	fs := flag.NewFlagSet("dev "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&d.StateDir, "state-dir", envOr("DROVER_STATE_DIR", d.StateDir), "directory for the stack's data, logs, pid files and recipe")
	switch args[0] {
	case "up":
		exeDir := "."
		if exe, err := os.Executable(); err == nil {
			exeDir = filepath.Dir(exe)
		}
		fs.StringVar(&d.BinDir, "bin-dir", exeDir, "directory holding drover-worker and petclinic")
		fs.StringVar(&d.TemporalBin, "temporal-bin", devstack.TemporalBinary(), "temporal CLI binary (v1.5.1)")
		fs.IntVar(&d.TemporalPort, "temporal-port", d.TemporalPort, "Temporal frontend port on 127.0.0.1")
		fs.IntVar(&d.UIPort, "ui-port", d.UIPort, "Temporal Web UI port on 127.0.0.1")
		fs.IntVar(&d.DNSPort, "dns-port", d.DNSPort, "BIND9 port on 127.0.0.1")
		fs.IntVar(&d.TemporalHTTPPort, "temporal-http-port", 0, "Temporal HTTP API port (default temporal-port+10)")
		fs.IntVar(&d.TemporalMetricsPort, "temporal-metrics-port", 0, "Temporal metrics port (default temporal-port+11)")
		fs.BoolVar(&d.AutoFailover, "auto-failover", false, "write policy.auto_failover: true into the generated recipe (a health monitor may then fail over by itself)")
		fs.StringVar(&d.DrillAddress, "drill-address", d.DrillAddress, "loopback address written into the recipe as drill.address, where isolated DR drills run (empty: none; default none with --sites)")
		unprov := fs.String("unprovisioned", "", "sites (comma-separated) left for `drover clone` to create: their workers run, their database and app do not exist yet")
		sites := fs.String("sites", "", "sites as NAME=ADDRESS:DBPORT:APPPORT,… (default east=127.0.0.2:3306:8080,west=127.0.0.3:3306:8080); the first is the primary")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if *sites != "" {
			specs, err := parseSites(*sites)
			if err != nil {
				fmt.Fprintln(stderr, "drover dev up: --sites:", err)
				return 2
			}
			d.Sites, d.Primary = specs, specs[0].Name
			drillSet := false
			fs.Visit(func(f *flag.Flag) { drillSet = drillSet || f.Name == "drill-address" })
			if !drillSet {
				d.DrillAddress = "" // the default may be one of the given sites' addresses
			}
		}
		if *unprov != "" {
			d.Unprovisioned = strings.Split(*unprov, ",")
		}
		d.Out = stdout
		st, err := devstack.Up(ctx, d)
		if err != nil {
			fmt.Fprintln(stderr, "drover dev up:", err)
			return 1
		}
		fmt.Fprintf(stdout, "\nTemporal UI: %s\nRecipe:      %s\nTry:         drover status -f %s\nStop with:   drover dev down --state-dir %s\n",
			st.UIURL, st.RecipeFile, st.RecipeFile, st.StateDir)
		return 0
	case "down":
		purge := fs.Bool("purge", false, "also delete the state directory (databases, Temporal history, secrets)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if err := devstack.Down(ctx, d.StateDir, stdout); err != nil {
			fmt.Fprintln(stderr, "drover dev down:", err)
			return 1
		}
		if *purge {
			if err := devstack.Purge(d.StateDir); err != nil {
				fmt.Fprintln(stderr, "drover dev down --purge:", err)
				return 1
			}
			fmt.Fprintf(stdout, "removed %s\n", d.StateDir)
		}
		return 0
	case "status":
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		st, comps, err := devstack.Status(d.StateDir)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stdout, "no stack recorded in %s\n", d.StateDir)
			return 3
		}
		if err != nil {
			fmt.Fprintln(stderr, "drover dev status:", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "COMPONENT\tSTATE\tPID\tADDRESS\tLOG")
		down := false
		for _, c := range comps {
			state := "running"
			if !c.Running {
				state, down = "stopped", true
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", c.Name, state, c.PID, c.Address, c.LogFile)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "Temporal %s  UI %s  DNS %s  recipe %s\n", st.TemporalAddress, st.UIURL, st.DNSServer, st.RecipeFile)
		if down {
			return 3
		}
		return 0
	case "kill", "start", "stop":
		// Outage simulation and recovery for one site: kill = SIGKILL (a
		// crash), stop = clean shutdown, start = bring back (read_only=ON).
		var site string
		var comps []string
		rest := args[1:]
		for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			if site == "" {
				site = rest[0]
			} else {
				comps = append(comps, rest[0])
			}
			rest = rest[1:]
		}
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if site == "" {
			fmt.Fprintf(stderr, "drover dev %s: want SITE [db|app]\n", args[0])
			return 2
		}
		st, err := devstack.SiteAction(ctx, d.StateDir, args[0], site, comps)
		if err != nil {
			fmt.Fprintf(stderr, "drover dev %s: %v\n", args[0], err)
			return 1
		}
		for _, c := range st.Components {
			state := "stopped"
			if c.Running {
				state = fmt.Sprintf("running (pid %d)", c.PID)
			}
			fmt.Fprintf(stdout, "%s/%s: %s\n", st.Site, c.Name, state)
		}
		return 0
	default:
		fmt.Fprintf(stderr, "drover dev: unknown subcommand %q (want up, down, status, kill, stop or start)\n", args[0])
		return 2
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// parseSites reads NAME=ADDRESS:DBPORT:APPPORT,… into site specs.
func parseSites(v string) ([]devstack.SiteSpec, error) {
	var out []devstack.SiteSpec
	for _, item := range strings.Split(v, ",") {
		name, rest, ok := strings.Cut(strings.TrimSpace(item), "=")
		parts := strings.Split(rest, ":")
		if !ok || name == "" || len(parts) != 3 {
			return nil, fmt.Errorf("%q: want NAME=ADDRESS:DBPORT:APPPORT", item)
		}
		db, err1 := strconv.Atoi(parts[1])
		app, err2 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || db < 1 || db > 65535 || app < 1 || app > 65535 {
			return nil, fmt.Errorf("%q: ports must be 1-65535", item)
		}
		out = append(out, devstack.SiteSpec{Name: name, Address: parts[0], DBPort: db, AppPort: app})
	}
	return out, nil
}
