package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

// cmdClone starts CloneSite (workflow ID clone-<app>-<to>) and, unless
// --detach, follows it to its report. Exit codes as for runbooks.
func cmdClone(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const name = "drover clone"
	fs := flag.NewFlagSet("clone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "recipe file (YAML)")
	app := fs.String("app", "", "application; must equal the recipe's app (a safety check)")
	from := fs.String("from", "", "site copied (default: the recipe's primary)")
	to := fs.String("to", "", "site to create (required; a site of the recipe)")
	prov := fs.String("provider", "", "provider of the new site: local, aws or openstack (default: the recipe's; another one needs its block in the recipe)")
	asJSON := fs.Bool("json", false, "print the report as JSON (progress lines go to stderr)")
	detach := fs.Bool("detach", false, "start the clone and return without waiting")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if *file == "" {
		problems = append(problems, "-f RECIPE is required")
	}
	if *to == "" {
		problems = append(problems, "--to: required (the site to create)")
	}
	var r *recipe.Recipe
	if *file != "" {
		r, _ = loadRecipe(*file, stderr)
	}
	if printProblems(stderr, name, problems) || r == nil {
		return 2
	}
	in, problems := buildCloneInput(r, *app, *from, *to, *prov)
	c, code := checkAndDial(ctx, name, problems, stderr)
	if c == nil {
		return code
	}
	defer c.Close()
	id := workflows.CloneWorkflowID(r.App, in.To)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: workflows.SharedTaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("clone %s → %s of %s", in.From, in.To, r.App),
	}, "CloneSite", in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		fmt.Fprintf(stderr, "%s: nothing started: %s is already running (run %s)\n", name, id, started.RunId)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: start CloneSite: %v\n", name, err)
		return 1
	}
	info := stdout
	if *asJSON {
		info = stderr
	}
	fmt.Fprintf(info, "CloneSite %s (run %s) started: %s → %s of %s\n", id, run.GetRunID(), in.From, in.To, r.App)
	if *detach {
		if *asJSON {
			writeJSON(stdout, map[string]string{"workflow_id": id, "run_id": run.GetRunID(), "workflow_type": "CloneSite"})
		}
		return 0
	}
	rep, err := follow(ctx, c, run, r.App, "", info)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s (run %s): %s\n", name, id, run.GetRunID(), runErrorMessage(err))
		return 1
	}
	if *asJSON {
		writeJSON(stdout, rep)
	} else {
		fmt.Fprintln(stdout)
		renderReport(stdout, rep)
	}
	return outcomeCode(rep.Outcome)
}

// buildCloneInput checks the flags against the recipe; problems name the
// flag. A --provider other than the recipe's replaces the site's provider
// in the input, and must have its compute block in the recipe.
func buildCloneInput(r *recipe.Recipe, app, from, to, prov string) (workflows.CloneInput, []string) {
	var problems []string
	if app != "" && app != r.App {
		problems = append(problems, fmt.Sprintf("--app: %q does not match the recipe's app %q", app, r.App))
	}
	if from == "" {
		from = r.Primary
	}
	if _, ok := r.Site(from); !ok {
		problems = append(problems, fmt.Sprintf("--from: %q is not a site of the recipe (%s)", from, siteNames(r)))
	}
	in := workflows.CloneInput{Recipe: *r, From: from, To: to}
	i := -1
	for k, s := range r.Sites {
		if s.Name == to {
			i = k
		}
	}
	switch {
	case i < 0:
		problems = append(problems, fmt.Sprintf("--to: %q is not a site of the recipe (%s)", to, siteNames(r)))
	case to == from:
		problems = append(problems, fmt.Sprintf("--to: %q is the site copied (--from)", to))
	}
	if prov != "" && i >= 0 {
		switch prov {
		case recipe.ProviderLocal, recipe.ProviderAWS, recipe.ProviderOpenStack:
			sites := append([]recipe.Site(nil), r.Sites...)
			sites[i].Provider = prov
			in.Recipe.Sites = sites
			if prov != recipe.ProviderLocal {
				if err := sites[i].ValidateCompute(true); err != nil {
					problems = append(problems, "--provider "+prov+": "+err.Error())
				}
			}
		default:
			problems = append(problems, fmt.Sprintf("--provider: %q is not local, aws or openstack", prov))
		}
	}
	return in, problems
}
