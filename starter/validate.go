package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/drover-sre/drover/recipe"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "recipe file (YAML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "drover validate: -f RECIPE is required")
		return 2
	}
	r, code := loadRecipe(*file, stderr)
	if r == nil {
		return code
	}
	fmt.Fprintf(stdout, "%s: valid (app %s, %d sites, primary %s)\n", *file, r.App, len(r.Sites), r.Primary)
	return 0
}

// loadRecipe loads and validates a recipe, printing every problem. It
// returns nil and the exit code when the recipe is unusable.
func loadRecipe(path string, stderr io.Writer) (*recipe.Recipe, int) {
	r, err := recipe.Load(path)
	if err == nil {
		return r, 0
	}
	var ps recipe.Problems
	if errors.As(err, &ps) {
		fmt.Fprintf(stderr, "%s: %d problem(s):\n", path, len(ps))
		for _, p := range ps {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return nil, 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", path, err)
	return nil, 2
}
