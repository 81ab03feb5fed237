// Package workflows holds Drover's deterministic workflow code: no I/O, no
// wall clock, no goroutines of its own. Every side effect is an activity that
// runs on the task queue of the site where it must happen.
package workflows

import (
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/recipe"
)

// SharedTaskQueue is polled by every worker; workflows run here.
const SharedTaskQueue = "drover"

// SiteTaskQueue is the task queue of the worker running at site name;
// activities that must act at or from that site are scheduled here.
func SiteTaskQueue(name string) string { return "drover-site-" + name }

// SiteStatusWorkflowID is the workflow ID of an application's status run;
// starting a second one while one runs attaches to the running one.
func SiteStatusWorkflowID(app string) string { return "site-status-" + app }

// SiteStatusInput is the input of SiteStatus. Sites limits the run to the
// named sites; empty means all sites of the recipe. WorkerTimeout is how
// long a probe waits for a site's worker to pick it up before the row says
// the worker is missing (default 20s).
type SiteStatusInput struct {
	Recipe        recipe.Recipe   `json:"recipe"`
	Sites         []string        `json:"sites,omitempty"`
	WorkerTimeout recipe.Duration `json:"worker_timeout,omitempty"`
}

// validRecipe returns r with defaults applied, or a non-retryable
// InvalidInput error listing every problem: a workflow started with a bad
// recipe fails at once instead of retrying.
func validRecipe(r recipe.Recipe) (recipe.Recipe, error) {
	r.ApplyDefaults()
	if err := r.Validate(); err != nil {
		return r, invalidInput("invalid recipe: " + err.Error())
	}
	return r, nil
}

// invalidInput is the non-retryable error workflows return for bad input.
func invalidInput(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, "InvalidInput", nil)
}
