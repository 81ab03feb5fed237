package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
