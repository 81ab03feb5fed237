package recipe

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// FuzzParse checks that Parse never panics, that a failure is always a
// non-empty Problems, and that a recipe it accepts is valid, complete and
// survives JSON and YAML round trips unchanged.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(f, err)
	require.NotEmpty(f, files)
	for _, name := range files {
		b, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			require.Nil(t, r)
			var ps Problems
			require.True(t, errors.As(err, &ps), "error is %T, not Problems", err)
			require.NotEmpty(t, ps)
			for _, p := range ps {
				require.NotEmpty(t, p.Msg, "problem at %q has no message", p.Path)
				require.NotContains(t, p.Msg, "\n", "problem at %q spans lines", p.Path)
			}
			return
		}
		require.NoError(t, r.Validate(), "Parse returned an invalid recipe")

		again := cloneRecipe(t, r)
		again.ApplyDefaults()
		require.Equal(t, r, again, "defaults were not fully applied")

		b, err := json.Marshal(r)
		require.NoError(t, err)
		var back Recipe
		require.NoError(t, json.Unmarshal(b, &back))
		require.Equal(t, *r, back, "JSON round trip changed the recipe: %s", b)

		y, err := yaml.Marshal(r)
		require.NoError(t, err)
		reparsed, err := Parse(y)
		require.NoError(t, err, "re-marshalled YAML does not parse:\n%s", y)
		require.Equal(t, r, reparsed, "YAML round trip changed the recipe")
		require.False(t, strings.Contains(string(b), "<invalid secret reference>"))
	})
}

// cloneRecipe deep-copies r through JSON.
func cloneRecipe(t *testing.T, r *Recipe) *Recipe {
	t.Helper()
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var c Recipe
	require.NoError(t, json.Unmarshal(b, &c))
	return &c
}
