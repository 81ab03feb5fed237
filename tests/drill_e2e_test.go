package tests

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// A DR drill on the local stack, for real: it copies west (the standby,
// replicating from east under a write load) into an isolated site on
// 127.0.0.20, promotes the copy, writes and reads an owner through the
// copy's app, measures the RTO a failover would have had and the RPO
// (west's lag), passes — and leaves no process, data directory or DNS
// record behind, with production untouched: east writable and serving the
// public name, west read-only and replicating. A drill whose smoke check
// fails is reported failed and cleans up just the same. A schedule made
// with `drover schedule drill` runs the same drill when triggered. A disruptive drill
// switches over to west and back for real, losing no acknowledged write.
// The drills are found in Temporal's visibility by their search attributes, and no
// workflow of the stack has a secret value in its history.
func TestDrillIsolatedPassesFailsAndCleansUp(t *testing.T) {
	const drillAddr = "127.0.0.20"
	st, r, c := runbookStack(t, "127.0.0.18", "127.0.0.19", func(o *devstack.Options) { o.DrillAddress = drillAddr })
	east, _ := r.Site("east")
	load := startWriteLoad(r, "drill")
	t.Cleanup(load.finish)
	if !testenv.WaitFor(20*time.Second, func() bool { return load.nAcked.Load() >= 20 }) {
		t.Fatalf("the write load did not get going: %d acked", load.nAcked.Load())
	}

	rep := runDrill(t, c, workflows.DrillInput{Recipe: *r, Address: drillAddr, Reason: "e2e drill"})
	if !rep.Passed || !rep.CleanedUp || rep.Outcome != workflows.OutcomeCompleted {
		t.Fatalf("drill did not pass: %v", rep.Failures)
	}
	if len(rep.Smoke) != 2 || !rep.Smoke[0].Passed || !rep.Smoke[1].Passed {
		t.Errorf("smoke checks: %+v", rep.Smoke)
	}
	if rep.RecoverySeconds <= 0 || rep.RTOSeconds != rep.DetectionSeconds+rep.RecoverySeconds || !rep.RTOMet || !rep.RPOMet {
		t.Errorf("RTO %.2f (detection %.1f + recovery %.2f), met %t; RPO lag %.2f, met %t",
			rep.RTOSeconds, rep.DetectionSeconds, rep.RecoverySeconds, rep.RTOMet, rep.LagSeconds, rep.RPOMet)
	}
	for _, name := range []string{"undo provision", "undo dns register"} {
		if s := stepOf(t, rep.RunbookReport, name); s.Outcome != workflows.StepOK {
			t.Errorf("%s: %s %s", name, s.Outcome, s.Detail)
		}
	}
	nothingLeft(t, st, r, "drill-west", drillAddr)

	// A smoke check that cannot pass: failed, cleaned up all the same.
	bad := workflows.DrillInput{Recipe: *r, Address: drillAddr, Reason: "e2e drill, failing smoke check",
		Smoke: []recipe.SmokeCheck{{Name: "find a ghost", Path: "/api/owners?last_name=ghost", ExpectBody: `"last_name":"ghost"`}}}
	rep = runDrill(t, c, bad)
	if rep.Passed || rep.Outcome != workflows.OutcomeFailed || !rep.CleanedUp {
		t.Fatalf("a drill with a failing smoke check: passed %t, outcome %s, cleaned up %t", rep.Passed, rep.Outcome, rep.CleanedUp)
	}
	if len(rep.Failures) == 0 || !strings.Contains(strings.Join(rep.Failures, ";"), "smoke check failed") ||
		len(rep.Smoke) != 1 || !strings.Contains(rep.Smoke[0].Error, `body does not contain`) {
		t.Errorf("failures %v, smoke %+v", rep.Failures, rep.Smoke)
	}
	nothingLeft(t, st, r, "drill-west", drillAddr)

	// A schedule made with the CLI runs the same drill when triggered.
	// No --address: the recipe's drill.address says where.
	if code, out, errOut := droverAt(t, st, "schedule", "drill", "-f", st.RecipeFile, "--cron", "0 3 * * SAT"); code != 0 {
		t.Fatalf("schedule drill: exit %d: %s %s", code, out, errOut)
	}
	code, out, errOut := droverAt(t, st, "schedule", "trigger", "--id", workflows.DrillWorkflowID(r.App))
	m := regexp.MustCompile(`started Drill (\S+) \(run (\S+)\)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("schedule trigger: exit %d: %s %s", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var scheduled workflows.DrillReport
	if err := c.GetWorkflow(ctx, m[1], m[2]).Get(ctx, &scheduled); err != nil {
		t.Fatal(err)
	}
	logReport(t, scheduled.RunbookReport)
	if !scheduled.Passed || !scheduled.CleanedUp || !strings.HasPrefix(m[1], workflows.DrillWorkflowID(r.App)+"-") {
		t.Fatalf("the scheduled drill %s: passed %t, cleaned up %t: %v", m[1], scheduled.Passed, scheduled.CleanedUp, scheduled.Failures)
	}
	nothingLeft(t, st, r, "drill-west", drillAddr)
	if code, out, errOut := droverAt(t, st, "schedule", "delete", "--id", workflows.DrillWorkflowID(r.App)); code != 0 {
		t.Fatalf("schedule delete: exit %d: %s %s", code, out, errOut)
	}

	// Production was never touched.
	wantPublic(t, r, east.Address)
	if readOnly(t, siteDB(t, east)) || !readOnly(t, siteDB(t, mustSite(t, r, "west"))) {
		t.Fatal("an isolated drill changed which site is writable")
	}

	// A disruptive drill: a real switchover to west and back, under the
	// write load; east ends primary, no acknowledged write is lost.
	rep = runDrill(t, c, workflows.DrillInput{Recipe: *r, Disruptive: true, Reason: "e2e disruptive drill"})
	if !rep.Passed || rep.Outcome != workflows.OutcomeCompleted || !rep.Disruptive || rep.RecoverySeconds <= 0 {
		t.Fatalf("disruptive drill: passed %t, outcome %s, recovery %.2f s: %v", rep.Passed, rep.Outcome, rep.RecoverySeconds, rep.Failures)
	}
	if got := stepShape(rep.RunbookReport); got != "completed: measure rpo/to/ok, switchover/to/ok, switchover/from/ok" {
		t.Errorf("disruptive drill steps: %s", got)
	}
	waitStream(t, c, "east", "west", 60*time.Second)
	load.finish()
	if missing := load.missingOn(t, siteDB(t, east)); len(missing) > 0 || load.nAcked.Load() == 0 {
		t.Errorf("%d acknowledged writes missing at east (%d acked)", len(missing), load.nAcked.Load())
	}
	if readOnly(t, siteDB(t, east)) || !readOnly(t, siteDB(t, mustSite(t, r, "west"))) {
		t.Error("after the drills east is not the only writable site")
	}
	wantPublic(t, r, east.Address)

	// The UI's filter finds both drills by their search attributes.
	var n int
	if !testenv.WaitFor(30*time.Second, func() bool {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Namespace: st.Namespace,
			Query: `DroverApp = "petclinic" AND DroverRunbook = "drill" AND DroverState IN ("passed", "failed")`})
		if err != nil {
			return false
		}
		n = len(resp.Executions)
		return n == 4
	}) {
		t.Errorf("a search for the app's drills found %d, want 4", n)
	}
}

func runDrill(t *testing.T, c client.Client, in workflows.DrillInput) workflows.DrillReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.DrillWorkflowID(in.Recipe.App),
		TaskQueue: workflows.SharedTaskQueue}, "Drill", in)
	if err != nil {
		t.Fatal(err)
	}
	var rep workflows.DrillReport
	if err := run.Get(ctx, &rep); err != nil {
		t.Fatal(err)
	}
	logReport(t, rep.RunbookReport)
	t.Logf("drill %s in %s: passed %t, RTO %.2f s (detection %.1f + recovery %.2f), RPO lag %.2f s, failures %v",
		rep.Reason, time.Since(start).Round(time.Millisecond), rep.Passed, rep.RTOSeconds, rep.DetectionSeconds,
		rep.RecoverySeconds, rep.LagSeconds, rep.Failures)
	return rep
}

// nothingLeft fails the test if the drill site left a process, a
// directory or a DNS name behind.
func nothingLeft(t *testing.T, st *devstack.State, r *recipe.Recipe, site, addr string) {
	t.Helper()
	dir := filepath.Join(st.StateDir, "sites", site)
	if left := testenv.ProcessesMentioning(dir); len(left) > 0 {
		t.Errorf("processes of %s left behind: %v", site, left)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists (%v)", dir, err)
	}
	zone := strings.TrimSuffix(r.DNS.Zone, ".")
	if got, err := testenv.PublicAddrs(r.DNS.Server, site+"."+zone); err != nil || len(got) != 0 {
		t.Errorf("%s.%s answers %v (%v)", site, zone, got, err)
	}
	if local := testenv.ProcessesMentioning(addr); len(local) > 0 {
		t.Errorf("processes still mention %s: %v", addr, local)
	}
}

func mustSite(t *testing.T, r *recipe.Recipe, name string) recipe.Site {
	t.Helper()
	s, ok := r.Site(name)
	if !ok {
		t.Fatalf("no site %s", name)
	}
	return s
}
