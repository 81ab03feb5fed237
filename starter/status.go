package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/workflows"
)

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "recipe file (YAML)")
	sites := fs.String("sites", "", "comma-separated subset of sites (default: all)")
	asJSON := fs.Bool("json", false, "print the workflow result as JSON")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the result")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "drover status: -f RECIPE is required")
		return 2
	}
	r, code := loadRecipe(*file, stderr)
	if r == nil {
		return code
	}
	in := workflows.SiteStatusInput{Recipe: *r}
	if *sites != "" {
		for _, s := range strings.Split(*sites, ",") {
			if _, ok := r.Site(strings.TrimSpace(s)); !ok {
				fmt.Fprintf(stderr, "drover status: --sites: unknown site %q\n", s)
				return 2
			}
			in.Sites = append(in.Sites, strings.TrimSpace(s))
		}
	}
	c, err := dialTemporal(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "drover status:", err)
		return 1
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        workflows.SiteStatusWorkflowID(r.App),
		TaskQueue: workflows.SharedTaskQueue,
		// A status run already in progress answers for us.
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowExecutionTimeout: 5 * time.Minute,
		StaticSummary:            "status of " + r.App,
	}, workflows.SiteStatus, in)
	if err != nil {
		fmt.Fprintln(stderr, "drover status: start workflow:", err)
		return 1
	}
	fmt.Fprintf(stderr, "SiteStatus %s run %s\n", run.GetID(), run.GetRunID())
	var res workflows.SiteStatusResult
	if err := run.Get(ctx, &res); err != nil {
		fmt.Fprintln(stderr, "drover status:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		fmt.Fprint(stdout, res.Table)
	}
	if !allUp(res) {
		return 3
	}
	return 0
}

// allUp reports whether every site's database and application answered.
func allUp(res workflows.SiteStatusResult) bool {
	for _, row := range res.Rows {
		if row.DB == nil || !row.DB.Reachable || row.App == nil || !row.App.Up() {
			return false
		}
	}
	return true
}
