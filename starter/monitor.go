package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

// cmdMonitor drives an application's HealthMonitor: start (a no-op that
// says so when one runs), status, stop.
func cmdMonitor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "drover monitor: want start, status or stop")
		return 2
	}
	action := args[0]
	fs := flag.NewFlagSet("monitor "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "start: recipe file (YAML)")
	app := fs.String("app", "", "status, stop: the application (start: must equal the recipe's app if given)")
	primary := fs.String("primary", "", "start: the site that is primary now (default: the recipe's)")
	var interval, cooldown recipe.Duration
	fs.Var(durationFlag{d: &interval}, "interval", "start: probe round interval (default: the recipe's shortest probe interval)")
	fs.Var(durationFlag{d: &cooldown}, "cooldown", "start: no automatic failover this long after a runbook (default 10m)")
	threshold := fs.Int("threshold", 0, "start: failed rounds before a site is down (default: the recipe's)")
	asJSON := fs.Bool("json", false, "status: print the status as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var r *recipe.Recipe
	switch action {
	case "start":
		if *file == "" {
			fmt.Fprintln(stderr, "drover monitor start: -f RECIPE is required")
			return 2
		}
		var code int
		if r, code = loadRecipe(*file, stderr); r == nil {
			return code
		}
		if *app != "" && *app != r.App {
			fmt.Fprintf(stderr, "drover monitor start: --app %q does not match the recipe's app %q\n", *app, r.App)
			return 2
		}
		if *primary != "" {
			if _, ok := r.Site(*primary); !ok {
				fmt.Fprintf(stderr, "drover monitor start: --primary %q is not a site of the recipe (%s)\n", *primary, siteNames(r))
				return 2
			}
		}
		if *threshold < 0 {
			fmt.Fprintln(stderr, "drover monitor start: --threshold must be at least 1")
			return 2
		}
		*app = r.App
	case "status", "stop":
		if *app == "" {
			fmt.Fprintf(stderr, "drover monitor %s: --app is required\n", action)
			return 2
		}
	default:
		fmt.Fprintf(stderr, "drover monitor: unknown action %q (want start, status or stop)\n", action)
		return 2
	}
	c, err := dialTemporal(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "drover monitor %s: %v\n", action, err)
		return 1
	}
	defer c.Close()
	id := workflows.HealthMonitorWorkflowID(*app)
	switch action {
	case "start":
		in := workflows.MonitorInput{Recipe: *r, Primary: *primary, Interval: interval,
			FailureThreshold: *threshold, Cooldown: cooldown}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.SharedTaskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL, WorkflowExecutionErrorWhenAlreadyStarted: true}, "HealthMonitor", in)
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			fmt.Fprintf(stdout, "%s already running (run %s): nothing started\n", id, started.RunId)
			return 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "drover monitor start: %v\n", describeTemporalErr(err))
			return 1
		}
		auto := "off: it reports, a human decides"
		if r.Policy.AutoFailover {
			auto = fmt.Sprintf("on (max_rpo %s)", r.Policy.MaxRPO)
		}
		fmt.Fprintf(stdout, "started %s (run %s); automatic failover %s\n", id, run.GetRunID(), auto)
		return 0
	case "stop":
		err := c.TerminateWorkflow(ctx, id, "", "stopped with drover monitor stop")
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			fmt.Fprintf(stdout, "%s is not running\n", id)
			return 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "drover monitor stop: %v\n", describeTemporalErr(err))
			return 1
		}
		fmt.Fprintf(stdout, "stopped %s\n", id)
		return 0
	}
	v, err := c.QueryWorkflow(ctx, id, "", workflows.HealthStatusQuery)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		fmt.Fprintf(stderr, "drover monitor status: no health monitor for %s (start one: drover monitor start -f RECIPE)\n", *app)
		return 3
	}
	if err != nil {
		fmt.Fprintf(stderr, "drover monitor status: %v\n", describeTemporalErr(err))
		return 1
	}
	var st workflows.MonitorStatus
	if err := v.Get(&st); err != nil {
		fmt.Fprintf(stderr, "drover monitor status: %v\n", err)
		return 1
	}
	if *asJSON {
		writeJSON(stdout, st)
		return 0
	}
	renderMonitor(stdout, st)
	return 0
}

// renderMonitor prints a monitor's status: one row per site, then the
// last decision about the primary.
func renderMonitor(w io.Writer, st workflows.MonitorStatus) {
	fmt.Fprintf(w, "%s: primary %s, round %d every %s, down after %d failed rounds, up after %d\n",
		st.App, st.Primary, st.Rounds, st.Interval, st.FailureThreshold, st.RecoveryThreshold)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tSTATE\tSINCE\tFAILED\tVOTES")
	for _, s := range st.Sites {
		var votes []string
		for _, v := range s.Votes {
			votes = append(votes, v.Vantage+":"+v.Verdict)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Site, s.State, s.Since.UTC().Format(time.TimeOnly), s.ConsecutiveFailures, strings.Join(votes, " "))
	}
	_ = tw.Flush()
	if !st.StandbyLagAt.IsZero() {
		fmt.Fprintf(w, "standby lag %.2fs (reported %s)\n", st.StandbyLagSeconds, st.StandbyLagAt.UTC().Format(time.TimeOnly))
	}
	if st.LastDecision != "" {
		fmt.Fprintf(w, "last decision (%s): %s\n", st.LastDecisionAt.UTC().Format(time.TimeOnly), st.LastDecision)
	}
	for _, rb := range st.Runbooks {
		fmt.Fprintln(w, "runbook:", rb)
	}
}
