package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

// The SiteStatus input documented in README.md must decode strictly into
// the workflow's input type and carry a valid recipe, so an SRE can paste it
// into the Temporal UI.
func TestReadmeSiteStatusInputIsValid(t *testing.T) {
	var in workflows.SiteStatusInput
	readmeJSON(t, "sitestatus-input", &in)
	if err := in.Recipe.Validate(); err != nil {
		t.Fatalf("README SiteStatus input recipe: %v", err)
	}
}

// The ReplicationSupervisor input documented in README.md decodes strictly
// and names a stream of its recipe.
func TestReadmeReplicationInputIsValid(t *testing.T) {
	var in workflows.ReplicationInput
	readmeJSON(t, "replication-input", &in)
	if err := in.Recipe.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := selectStreams(&in.Recipe, in.From, in.To); err != nil {
		t.Fatal(err)
	}
}

// The Switchover, Failover and Failback inputs documented in README.md
// decode strictly into RunbookInput, carry exactly the example recipe
// deploy/recipes/petclinic.yaml (defaults filled in), name sites of it as
// the workflow requires, and sit under a summary naming the workflow type
// the worker registers, the task queue and the workflow ID to use.
func TestReadmeRunbookInputsAreValid(t *testing.T) {
	want, err := recipe.Load(exampleRecipe)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{workflows.RunbookSwitchover, workflows.RunbookFailover, workflows.RunbookFailback} {
		var in workflows.RunbookInput
		readmeJSON(t, kind+"-input", &in)
		if err := in.Recipe.Validate(); err != nil {
			t.Fatalf("README %s input recipe: %v", kind, err)
		}
		if !reflect.DeepEqual(in.Recipe, *want) {
			t.Errorf("README %s input: the recipe is not %s", kind, exampleRecipe)
		}
		if in.From == "" || in.To == "" {
			t.Errorf("README %s input: name both from and to", kind)
		}
		if problems := runbookInputProblems(&in); len(problems) > 0 {
			t.Errorf("README %s input: %v", kind, problems)
		}
		if in.ApprovalTimeout != 0 && in.ApproveBy == "" {
			t.Errorf("README %s input: approval_timeout without approve_by", kind)
		}
		checkReadmeSummary(t, kind+"-input", runbookTypes[kind], workflows.RunbookWorkflowID(in.Recipe.App))
	}
}

// readmeBefore returns the README text between the last start before
// <!-- marker --> and the marker.
func readmeBefore(t *testing.T, marker, start string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	before, _, ok := strings.Cut(string(b), "<!-- "+marker+" -->")
	if !ok {
		t.Fatalf("README.md lacks the %s block", marker)
	}
	i := strings.LastIndex(before, start)
	if i < 0 {
		t.Fatalf("README.md: no %s before the %s block", start, marker)
	}
	return before[i:]
}

// checkReadmeSummary checks that the <summary> line before the block
// <!-- marker --> names the workflow type, the task queue and the workflow
// ID to use in the Temporal UI.
func checkReadmeSummary(t *testing.T, marker, wfType, wfID string) {
	t.Helper()
	summary := readmeBefore(t, marker, "<summary>")
	for _, w := range []string{"workflow type <code>" + wfType + "</code>", "task queue <code>" + workflows.SharedTaskQueue + "</code>",
		"workflow ID <code>" + wfID + "</code>"} {
		if !strings.Contains(summary, w) {
			t.Errorf("README %s: its summary lacks %q", marker, w)
		}
	}
}

// readmeJSON decodes, rejecting unknown fields, the ```json block that
// follows <!-- marker --> in README.md.
func readmeJSON(t *testing.T, marker string, v any) {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- "+marker+" -->\n```json\n")
	if !ok {
		t.Fatalf("README.md lacks the %s block", marker)
	}
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatalf("README.md: unterminated %s block", marker)
	}
	dec := json.NewDecoder(strings.NewReader(block))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("README %s: %v", marker, err)
	}
}

// Every example recipe shipped in deploy/recipes validates.
func TestExampleRecipesValidate(t *testing.T) {
	files, err := filepath.Glob("../deploy/recipes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example recipes: %v", err)
	}
	for _, f := range files {
		if _, err := recipe.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The HealthMonitor input documented in README.md decodes strictly, carries
// the example recipe and a primary the monitor accepts.
func TestReadmeMonitorInputIsValid(t *testing.T) {
	want, err := recipe.Load(exampleRecipe)
	if err != nil {
		t.Fatal(err)
	}
	var in workflows.MonitorInput
	readmeJSON(t, "monitor-input", &in)
	if !reflect.DeepEqual(in.Recipe, *want) {
		t.Errorf("README HealthMonitor input: the recipe is not %s", exampleRecipe)
	}
	if in.Interval.D() <= 0 || in.FailureThreshold < 1 || in.RecoveryThreshold < 1 {
		t.Errorf("README HealthMonitor input: %+v", in)
	}
}

// The CloneSite input documented in README.md decodes strictly, carries
// the example recipe, names two different sites of it, and sits under a
// summary naming the workflow type, task queue and workflow ID.
func TestReadmeCloneInputIsValid(t *testing.T) {
	want, err := recipe.Load(exampleRecipe)
	if err != nil {
		t.Fatal(err)
	}
	var in workflows.CloneInput
	readmeJSON(t, "clone-input", &in)
	if !reflect.DeepEqual(in.Recipe, *want) {
		t.Errorf("README CloneSite input: the recipe is not %s", exampleRecipe)
	}
	_, okF := in.Recipe.Site(in.From)
	_, okT := in.Recipe.Site(in.To)
	if !okF || !okT || in.From == in.To {
		t.Errorf("README CloneSite input: from %q, to %q", in.From, in.To)
	}
	checkReadmeSummary(t, "clone-input", "CloneSite", workflows.CloneWorkflowID(in.Recipe.App, in.To))
}

// The Drill input documented in README.md decodes strictly, carries the
// example recipe, passes the checks the Drill workflow makes before it runs
// anything, and sits under a summary naming the workflow type, task queue
// and workflow ID.
func TestReadmeDrillInputIsValid(t *testing.T) {
	want, err := recipe.Load(exampleRecipe)
	if err != nil {
		t.Fatal(err)
	}
	var in workflows.DrillInput
	readmeJSON(t, "drill-input", &in)
	if !reflect.DeepEqual(in.Recipe, *want) {
		t.Errorf("README Drill input: the recipe is not %s", exampleRecipe)
	}
	if err := workflows.ValidateDrillInput(in); err != nil {
		t.Errorf("README Drill input: %v", err)
	}
	checkReadmeSummary(t, "drill-input", "Drill", workflows.DrillWorkflowID(in.Recipe.App))
}
