// Package tests holds Drover's end-to-end tests: they build the real
// binaries, bring the local stack up (Temporal dev server, BIND9, two
// MariaDB sites with the demo app, one worker per site) on free ports, and
// drive it through the CLI and the Temporal client.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/deploy/local/devstack"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

var (
	binDir string
	stack  *devstack.State
	opts   devstack.Options
	rcp    *recipe.Recipe
)

func TestMain(m *testing.M) {
	code, err := runMain(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runMain(m *testing.M) (int, error) {
	var err error
	if binDir, err = testenv.TempDir("drve2ebin"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(binDir)
	if _, err := testenv.Build(binDir); err != nil {
		return 0, err
	}
	stateDir, err := testenv.TempDir("drve2e")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(stateDir)
	if opts, err = stackOptions(stateDir, "127.0.0.2", "127.0.0.3"); err != nil {
		return 0, err
	}
	ctx := context.Background()
	if stack, err = devstack.Up(ctx, opts); err != nil {
		return 0, err
	}
	code := m.Run()
	// The main stack ran SiteStatus and ReplicationSupervisor workflows:
	// none may hold a secret value in its history.
	if err := noSecretsIn(stack); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	if err := devstack.Down(ctx, stateDir, os.Stderr); err != nil {
		return 1, err
	}
	if left := testenv.ProcessesMentioning(stateDir); len(left) > 0 {
		return 1, fmt.Errorf("processes left after dev down: %v", left)
	}
	return code, nil
}

// noSecretsIn checks every history of a stack for its secret values.
func noSecretsIn(st *devstack.State) error {
	c, err := client.Dial(client.Options{HostPort: st.TemporalAddress, Namespace: st.Namespace})
	if err != nil {
		return err
	}
	defer c.Close()
	types, leaks, err := secretsInHistory(st, c)
	if err != nil {
		return err
	}
	if len(leaks) > 0 {
		return fmt.Errorf("secret values in the histories of %v (workflow types read: %v)", leaks, types)
	}
	fmt.Fprintf(os.Stderr, "e2e: no secret in the histories of the main stack's workflows %v\n", types)
	return nil
}

// stackOptions is a dev stack on free ports with its sites at the given
// loopback addresses, so it can run beside a developer's own stack.
func stackOptions(stateDir, eastAddr, westAddr string) (devstack.Options, error) {
	o, err := testenv.StackOptions(stateDir, binDir, eastAddr, westAddr)
	o.Out = devstack.DefaultOptions().Out
	return o, err
}

// drover runs the CLI binary against the test stack and returns its exit
// code, stdout and stderr.
func drover(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return droverAt(t, stack, args...)
}

// droverAt runs the CLI against the given stack.
func droverAt(t *testing.T, st *devstack.State, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "drover"), args...)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+st.TemporalAddress, "TEMPORAL_NAMESPACE="+st.Namespace)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func loadRecipe(t *testing.T) *recipe.Recipe {
	t.Helper()
	r, err := recipe.Load(stack.RecipeFile)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// row returns the table line of a site.
func row(t *testing.T, table, site string) string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, site+" ") {
			return l
		}
	}
	t.Fatalf("no row for %s in:\n%s", site, table)
	return ""
}

func TestStatusShowsBothSitesUp(t *testing.T) {
	code, out, errOut := drover(t, "status", "-f", stack.RecipeFile)
	if code != 0 {
		t.Fatalf("drover status exit %d\n%s\n%s", code, out, errOut)
	}
	east, west := row(t, out, "east"), row(t, out, "west")
	for _, want := range []string{"primary", "up " + opts.Sites[0].Address, " OFF ", "up 200", " yes"} {
		if !strings.Contains(east, want) {
			t.Errorf("east row %q lacks %q", east, want)
		}
	}
	for _, want := range []string{"standby", "up " + opts.Sites[1].Address, " ON ", "up 200", " no"} {
		if !strings.Contains(west, want) {
			t.Errorf("west row %q lacks %q", west, want)
		}
	}
	if !strings.Contains(errOut, "site-status-petclinic") {
		t.Errorf("the CLI should name the workflow it ran: %q", errOut)
	}
}

// The demo app writes at the primary; at the read-only standby it refuses
// writes and keeps serving health.
func TestPetclinicWritesOnlyAtThePrimary(t *testing.T) {
	r := loadRecipe(t)
	east, _ := r.Site("east")
	west, _ := r.Site("west")
	body := `{"first_name":"Ada","last_name":"Lovelace","city":"London","telephone":"0123456789"}`
	resp := post(t, east.App.Endpoints[0]+"/api/owners", body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create owner at the primary: %d %s", resp.StatusCode, readAll(resp))
	}
	resp = post(t, west.App.Endpoints[0]+"/api/owners", body)
	if got := readAll(resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(got, "read-only") {
		t.Fatalf("write at the standby: %d %s", resp.StatusCode, got)
	}
}

// A crashed database is reported in the table, the workflow still
// succeeds, and restarting the site brings it back (read-only).
func TestStatusReportsCrashedDatabase(t *testing.T) {
	if code, out, errOut := drover(t, "dev", "kill", "west", "db", "--state-dir", stack.StateDir); code != 0 {
		t.Fatalf("dev kill: %d %s %s", code, out, errOut)
	}
	code, out, errOut := drover(t, "status", "-f", stack.RecipeFile)
	if code != 3 {
		t.Fatalf("status with a dead database: exit %d, want 3\n%s\n%s", code, out, errOut)
	}
	west := row(t, out, "west")
	if !strings.Contains(west, "DOWN "+opts.Sites[1].Address) || !strings.Contains(west, "connection refused") {
		t.Fatalf("west row should say its database is down: %q", west)
	}
	if east := row(t, out, "east"); !strings.Contains(east, "up 200") {
		t.Fatalf("east must be unaffected: %q", east)
	}
	if code, out, errOut := drover(t, "dev", "start", "west", "--state-dir", stack.StateDir); code != 0 {
		t.Fatalf("dev start: %d %s %s", code, out, errOut)
	}
	code, out, errOut = drover(t, "status", "-f", stack.RecipeFile)
	if code != 0 || !strings.Contains(row(t, out, "west"), " ON ") {
		t.Fatalf("after restart: exit %d\n%s\n%s", code, out, errOut)
	}
}

// Losing a site's worker neither takes the site down nor fails the status
// run: the row says which worker is missing. Up again restores the worker
// and leaves running processes alone.
func TestMissingWorker(t *testing.T) {
	ctx := context.Background()
	worker := componentOf(t, "west/worker")
	p := local.Process{Name: worker.Name, Path: worker.Binary, PIDFile: worker.PIDFile}
	if err := p.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"west/db", "west/app"} {
		c := componentOf(t, name)
		if _, ok := (local.Process{Path: c.Binary, PIDFile: c.PIDFile}).PID(); !ok {
			t.Fatalf("%s died with the worker", name)
		}
	}
	c, err := client.Dial(client.Options{HostPort: stack.TemporalAddress, Namespace: stack.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "site-status-missing-worker-" + fmt.Sprint(time.Now().UnixNano()), TaskQueue: workflows.SharedTaskQueue,
	}, workflows.SiteStatus, workflows.SiteStatusInput{Recipe: *loadRecipe(t), WorkerTimeout: recipe.Duration(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.SiteStatusResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("status run must not fail when a worker is missing: %v", err)
	}
	if !strings.Contains(res.Table, "no answer from the worker of site west") || !strings.Contains(row(t, res.Table, "east"), "up 200") {
		t.Fatalf("table:\n%s", res.Table)
	}

	before := map[string]int{}
	for _, c := range stack.Components {
		if c.Name != "west/worker" {
			before[c.Name] = pidOf(t, c.Name)
		}
	}
	o := opts
	o.Out = io.Discard
	if _, err := devstack.Up(ctx, o); err != nil {
		t.Fatal(err)
	}
	if pidOf(t, "west/worker") == 0 {
		t.Fatal("Up did not restart the missing worker")
	}
	for name, pid := range before {
		if got := pidOf(t, name); got != pid {
			t.Errorf("Up restarted %s: pid %d → %d", name, pid, got)
		}
	}
}

// A broken recipe is rejected with field paths before anything starts.
func TestValidateRejectsBrokenRecipe(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	b, err := os.ReadFile(stack.RecipeFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "port: "+fmt.Sprint(opts.Sites[1].DBPort), "port: 70000", 1)
	text = strings.Replace(text, "primary: east", "primary: nowhere", 1)
	text = strings.Replace(text, "  ttl: 30", "  ttl: 30\n  colour: blue", 1)
	if err := os.WriteFile(broken, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := drover(t, "validate", "-f", broken)
	if code != 2 {
		t.Fatalf("validate exit %d, want 2: %s", code, errOut)
	}
	for _, want := range []string{"sites[1].db.port: must be 1-65535", "primary:", "dns.colour: unknown field"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output lacks %q:\n%s", want, errOut)
		}
	}
	code, _, errOut = drover(t, "status", "-f", broken)
	if code != 2 || !strings.Contains(errOut, "sites[1].db.port") {
		t.Fatalf("status with a broken recipe: exit %d %s", code, errOut)
	}
	if code, out, _ := drover(t, "validate", "-f", stack.RecipeFile); code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("the generated recipe must validate: %d %s", code, out)
	}
}

// sideStack prepares options for a stack of the test's own, on free ports
// with its sites at the given loopback addresses. At the end of the test,
// whatever ran is stopped (a safety net; tests stop it themselves), the test
// fails if any process is left, and the directory is deleted — in that
// order, because Down needs the stack.json inside it.
func sideStack(t *testing.T, eastAddr, westAddr string) devstack.Options {
	t.Helper()
	stateDir, err := testenv.TempDir("drvside")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stateDir) })
	o, err := stackOptions(stateDir, eastAddr, westAddr)
	if err != nil {
		t.Fatal(err)
	}
	o.Out = io.Discard
	t.Cleanup(func() {
		if err := devstack.Down(context.Background(), stateDir, io.Discard); err != nil {
			t.Errorf("dev down: %v", err)
		}
		if left := testenv.ProcessesMentioning(stateDir); len(left) > 0 {
			t.Errorf("processes left behind: %v", left)
		}
	})
	return o
}

// `drover dev up` then `drover dev down` (the CLI, on its own addresses and
// ports) leaves no process behind.
func TestDevUpDownLeavesNoProcess(t *testing.T) {
	o := sideStack(t, "127.0.0.4", "127.0.0.5")
	stateDir := o.StateDir
	args := []string{"dev", "up", "--state-dir", stateDir, "--bin-dir", binDir, "--temporal-bin", o.TemporalBin,
		"--temporal-port", fmt.Sprint(o.TemporalPort), "--ui-port", fmt.Sprint(o.UIPort), "--dns-port", fmt.Sprint(o.DNSPort),
		"--temporal-http-port", fmt.Sprint(o.TemporalHTTPPort), "--temporal-metrics-port", fmt.Sprint(o.TemporalMetricsPort),
		"--sites", fmt.Sprintf("east=%s:%d:%d,west=%s:%d:%d", o.Sites[0].Address, o.Sites[0].DBPort, o.Sites[0].AppPort,
			o.Sites[1].Address, o.Sites[1].DBPort, o.Sites[1].AppPort)}
	code, out, errOut := drover(t, args...)
	if code != 0 {
		t.Fatalf("dev up: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"Temporal UI: http://127.0.0.1:" + fmt.Sprint(o.UIPort), "east/db", "west/worker", "pid"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev up output lacks %q:\n%s", want, out)
		}
	}
	if len(testenv.ProcessesMentioning(stateDir)) < 7 {
		t.Fatalf("expected the stack's processes to be running: %v", testenv.ProcessesMentioning(stateDir))
	}
	code, out, errOut = drover(t, "dev", "status", "--state-dir", stateDir)
	if code != 0 || strings.Count(out, "running") != 8 {
		t.Fatalf("dev status: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = drover(t, "dev", "down", "--state-dir", stateDir); code != 0 {
		t.Fatalf("dev down: exit %d\n%s\n%s", code, out, errOut)
	}
	if left := testenv.ProcessesMentioning(stateDir); len(left) > 0 {
		t.Fatalf("processes left after dev down: %v", left)
	}
	if code, out, _ := drover(t, "dev", "down", "--state-dir", stateDir); code != 0 || !strings.Contains(out, "nothing to stop") {
		t.Fatalf("a second dev down must be a no-op: %d %s", code, out)
	}
	// --purge deletes a stack directory, and refuses any other directory.
	other := t.TempDir()
	if code, _, errOut := drover(t, "dev", "down", "--purge", "--state-dir", other); code != 1 || !strings.Contains(errOut, "refusing to delete") {
		t.Fatalf("purge of a foreign directory: %d %s", code, errOut)
	}
	if code, _, errOut := drover(t, "dev", "down", "--purge", "--state-dir", stateDir); code != 0 {
		t.Fatalf("purge: %d %s", code, errOut)
	}
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Fatalf("state dir still there after --purge: %v", err)
	}
}

func componentOf(t *testing.T, name string) devstack.Component {
	t.Helper()
	st, err := devstack.Load(stack.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Components {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no component %s", name)
	return devstack.Component{}
}

func pidOf(t *testing.T, name string) int {
	c := componentOf(t, name)
	pid, ok := (local.Process{Path: c.Binary, PIDFile: c.PIDFile}).PID()
	if !ok {
		return 0
	}
	return pid
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	var v any
	if json.Unmarshal(b, &v) == nil {
		return string(b)
	}
	return strings.TrimSpace(string(b))
}
