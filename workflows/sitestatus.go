package workflows

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/recipe"
)

// SiteStatusResult is the table SiteStatus returns: one row per site, always
// complete — a site whose database, app or worker is down gets a row that
// says so instead of failing the run.
type SiteStatusResult struct {
	App       string    `json:"app"`
	CheckedAt time.Time `json:"checked_at"`
	Rows      []SiteRow `json:"rows"`
	// Table is Rows rendered as aligned text, as the CLI prints it.
	Table string `json:"table"`
}

// SiteRow is the status of one site as seen from its own worker.
type SiteRow struct {
	Site string `json:"site"`
	Role string `json:"role"` // "primary" or "standby", from the recipe
	// DB and App are nil when the probe could not run at all (e.g. no worker
	// polls the site's task queue); Error then says why.
	DB    *probe.DBProbeResult  `json:"db,omitempty"`
	App   *probe.AppProbeResult `json:"app,omitempty"`
	Error string                `json:"error,omitempty"`
}

// SiteStatus probes each site's database and application through activities
// on that site's task queue and returns a status table. It fails only for
// invalid input; unreachable parts are reported in the table.
func SiteStatus(ctx workflow.Context, in SiteStatusInput) (SiteStatusResult, error) {
	logger := workflow.GetLogger(ctx)
	r, err := validRecipe(in.Recipe)
	if err != nil {
		return SiteStatusResult{}, err
	}
	sites, err := selectSites(&r, in.Sites)
	if err != nil {
		return SiteStatusResult{}, invalidInput(err.Error())
	}
	tagRun(ctx, r.App, "", "status", "running")
	workerTimeout := in.WorkerTimeout.D()
	if workerTimeout <= 0 {
		workerTimeout = 20 * time.Second
	}
	var pa *probe.Activities
	type pending struct {
		db, app workflow.Future
	}
	futures := make([]pending, len(sites))
	for i, s := range sites {
		opts := workflow.ActivityOptions{
			TaskQueue: SiteTaskQueue(s.Name),
			// Nothing polls a dead site's queue: give up quickly and say so.
			ScheduleToStartTimeout: workerTimeout,
			StartToCloseTimeout:    30 * time.Second,
			RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
			Summary:                "probe database of " + s.Name,
		}
		futures[i].db = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), pa.ProbeDB, probe.DBProbeInput{Site: s})
		opts.Summary = "probe app of " + s.Name
		futures[i].app = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), pa.ProbeApp, probe.AppProbeInput{Site: s, Path: healthPath(&r)})
	}
	res := SiteStatusResult{App: r.App, CheckedAt: workflow.Now(ctx)}
	for i, s := range sites {
		row := SiteRow{Site: s.Name, Role: "standby"}
		if s.Name == r.Primary {
			row.Role = "primary"
		}
		var db probe.DBProbeResult
		if err := futures[i].db.Get(ctx, &db); err != nil {
			row.Error = activityFailure(s.Name, err)
		} else {
			row.DB = &db
		}
		var app probe.AppProbeResult
		if err := futures[i].app.Get(ctx, &app); err != nil {
			if row.Error == "" {
				row.Error = activityFailure(s.Name, err)
			}
		} else {
			row.App = &app
		}
		logger.Info("site status", "site", s.Name, "role", row.Role, "db", dbCell(row), "app", appCell(row))
		res.Rows = append(res.Rows, row)
	}
	res.Table = RenderStatusTable(res.Rows)
	return res, nil
}

func selectSites(r *recipe.Recipe, names []string) ([]recipe.Site, error) {
	if len(names) == 0 {
		return r.Sites, nil
	}
	var out []recipe.Site
	for _, n := range names {
		s, ok := r.Site(n)
		if !ok {
			return nil, fmt.Errorf("sites: unknown site %q", n)
		}
		out = append(out, s)
	}
	return out, nil
}

// healthPath is the path of the recipe's first HTTP probe, or /healthz.
func healthPath(r *recipe.Recipe) string {
	for _, p := range r.Probes {
		if p.Kind == "http" && p.Target != "" {
			return p.Target
		}
	}
	return "/healthz"
}

// activityFailure explains why a probe could not run at a site.
func activityFailure(site string, err error) string {
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return fmt.Sprintf("no answer from the worker of site %s (%s timeout on %s): is drover-worker --site %s running?",
			site, strings.ToLower(te.TimeoutType().String()), SiteTaskQueue(site), site)
	}
	return err.Error()
}

// RenderStatusTable renders rows as an aligned text table. It is pure and
// deterministic, so it is safe inside a workflow.
func RenderStatusTable(rows []SiteRow) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tROLE\tDATABASE\tREAD_ONLY\tGTID\tAPP\tAPP_DB_WRITABLE")
	for _, r := range rows {
		ro, gtid, writable := "-", "-", "-"
		if r.DB != nil && r.DB.Reachable {
			ro = onOff(r.DB.ReadOnly)
			gtid = r.DB.GTIDBinlogPos
			if gtid == "" {
				gtid = "(empty)"
			}
		}
		if r.App != nil && len(r.App.Endpoints) > 0 && r.App.Endpoints[0].Writable != nil {
			writable = yesNo(*r.App.Endpoints[0].Writable)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Site, r.Role, dbCell(r), ro, gtid, appCell(r), writable)
	}
	tw.Flush()
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(&b, "%s: %s\n", r.Site, r.Error)
		}
	}
	return b.String()
}

func dbCell(r SiteRow) string {
	switch {
	case r.DB == nil:
		return "UNKNOWN"
	case r.DB.Reachable:
		return fmt.Sprintf("up %s (%dms)", r.DB.Address, r.DB.LatencyMS)
	default:
		return fmt.Sprintf("DOWN %s: %s", r.DB.Address, oneLine(r.DB.Error, 60))
	}
}

func appCell(r SiteRow) string {
	if r.App == nil || len(r.App.Endpoints) == 0 {
		return "UNKNOWN"
	}
	var parts []string
	for _, e := range r.App.Endpoints {
		switch {
		case e.Up:
			parts = append(parts, fmt.Sprintf("up %d (%dms)", e.StatusCode, e.LatencyMS))
		case e.StatusCode != 0:
			parts = append(parts, fmt.Sprintf("DOWN %d: %s", e.StatusCode, oneLine(e.Error, 40)))
		default:
			parts = append(parts, "DOWN: "+oneLine(e.Error, 50))
		}
	}
	return strings.Join(parts, "; ")
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
