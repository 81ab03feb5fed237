package main

import (
	"bytes"
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
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- sitestatus-input -->\n```json\n")
	if !ok {
		t.Fatal("README.md lacks the SiteStatus input block")
	}
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("unterminated json block")
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(block)))
	dec.DisallowUnknownFields()
	var in workflows.SiteStatusInput
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("README SiteStatus input: %v", err)
	}
	if err := in.Recipe.Validate(); err != nil {
		t.Fatalf("README SiteStatus input recipe: %v", err)
	}
}

// The ReplicationSupervisor input documented in README.md decodes strictly
// and names a stream of its recipe.
func TestReadmeReplicationInputIsValid(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- replication-input -->\n```json\n")
	if !ok {
		t.Fatal("README.md lacks the ReplicationSupervisor input block")
	}
	block, _, _ := strings.Cut(after, "```")
	dec := json.NewDecoder(bytes.NewReader([]byte(block)))
	dec.DisallowUnknownFields()
	var in workflows.ReplicationInput
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("README replication input: %v", err)
	}
	if err := in.Recipe.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := selectStreams(&in.Recipe, in.From, in.To); err != nil {
		t.Fatal(err)
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
