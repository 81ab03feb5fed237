package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateAcceptsTheExampleRecipe(t *testing.T) {
	code, out, errOut := runCLI(t, "validate", "-f", "../recipe/testdata/valid.yaml")
	if code != 0 || !strings.Contains(out, "valid (app petclinic, 2 sites, primary east)") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
}

func TestValidatePrintsEveryProblemWithItsPath(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bad.yaml")
	bad := `app: Pet Clinic
primary: east
sites:
  - name: east
    provider: local
    address: 10.0.0.1
    db: {port: 0, user: drover, password: hunter2}
    app: {endpoints: ["ftp://x"]}
  - name: east
    provider: gcp
    address: 127.0.0.3
    db: {port: 70000, user: drover, password: "env:PW"}
    app: {endpoints: ["http://127.0.0.3:8080"]}
dns: {zone: drover.test, record: app.example.com, driver: rfc2136}
replication: [{from: east, to: nowhere}]
`
	if err := os.WriteFile(f, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "validate", "-f", f)
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing on stdout", code, out)
	}
	for _, want := range []string{
		"app:", "sites[0].address:", "sites[0].db.password:", "sites[0].app.endpoints[0]:",
		"sites[1].name:", "sites[1].provider: must be one of local, aws, openstack", "sites[1].db.port: must be 1-65535",
		"dns.record:", "dns.server:", "replication[0].to:",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(errOut, "hunter2") {
		t.Error("a literal password must never be echoed")
	}
	if t.Failed() {
		t.Log(errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"validate"}, "-f RECIPE is required"},
		{[]string{"status"}, "-f RECIPE is required"},
		{[]string{"validate", "-f", "/nonexistent/recipe.yaml"}, "/nonexistent/recipe.yaml"},
		{[]string{"dev"}, "want up, down or status"},
		{[]string{"dev", "sideways"}, `unknown subcommand "sideways"`},
		{[]string{"dev", "kill"}, "want SITE"},
		{[]string{"dev", "up", "--sites", "east=127.0.0.2:3306"}, "want NAME=ADDRESS:DBPORT:APPPORT"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("drover %v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// A broken recipe stops `drover status` before it contacts Temporal: the
// address below is never dialled (nothing listens there).
func TestStatusWithBrokenRecipeStartsNothing(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	code, _, errOut := runCLI(t, "status", "-f", "../recipe/testdata/broken.yaml")
	if code != 2 || !strings.Contains(errOut, "problem(s)") || strings.Contains(errOut, "connect to temporal") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestParseSites(t *testing.T) {
	got, err := parseSites("east=127.0.0.2:3306:8080, west=127.0.0.3:3307:8081")
	if err != nil || len(got) != 2 || got[1].Name != "west" || got[1].DBPort != 3307 || got[1].AppPort != 8081 {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"east", "east=1.2.3.4:x:1", "east=a:0:1", "=a:1:1"} {
		if _, err := parseSites(bad); err == nil {
			t.Errorf("parseSites(%q) accepted", bad)
		}
	}
}
