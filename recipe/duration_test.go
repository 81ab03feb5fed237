package recipe

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestDurationJSON(t *testing.T) {
	for _, d := range []Duration{0, Duration(90 * time.Second), Duration(1500 * time.Millisecond), Duration(-time.Hour), Duration(1)} {
		b, err := json.Marshal(d)
		require.NoError(t, err)
		assert.Equal(t, `"`+d.D().String()+`"`, string(b))
		var back Duration
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, d, back)
	}

	tests := []struct {
		in   string
		want Duration
	}{
		{`"1m30s"`, Duration(90 * time.Second)},
		{`"0"`, 0},
		{`5000000000`, Duration(5 * time.Second)},
		{`-1`, -1},
		{`1e9`, Duration(time.Second)},
		{` "2s" `, Duration(2 * time.Second)},
	}
	for _, tt := range tests {
		var d Duration
		require.NoError(t, json.Unmarshal([]byte(tt.in), &d), tt.in)
		assert.Equal(t, tt.want, d, tt.in)
	}

	d := Duration(time.Second)
	require.NoError(t, json.Unmarshal([]byte(`null`), &d))
	assert.Equal(t, Duration(time.Second), d, "null leaves the value alone")

	for _, in := range []string{`"5x"`, `"5"`, `1.5`, `1e30`, `true`, `{}`, `[]`} {
		assert.Error(t, json.Unmarshal([]byte(in), &d), in)
	}
	err := json.Unmarshal([]byte(`"5x"`), &d)
	assert.ErrorContains(t, err, `invalid duration "5x"`)
}

func TestDurationYAML(t *testing.T) {
	type doc struct {
		D Duration `yaml:"d"`
	}
	in := doc{Duration(90 * time.Second)}
	b, err := yaml.Marshal(in)
	require.NoError(t, err)
	assert.Equal(t, "d: 1m30s\n", string(b))
	var out doc
	require.NoError(t, yaml.Unmarshal(b, &out))
	assert.Equal(t, in, out)

	out = doc{Duration(time.Second)}
	require.NoError(t, yaml.Unmarshal([]byte("d: ~\n"), &out))
	assert.Equal(t, Duration(time.Second), out.D)

	assert.ErrorContains(t, yaml.Unmarshal([]byte("d: 5x\n"), &out), `invalid duration "5x"`)
	assert.ErrorContains(t, yaml.Unmarshal([]byte("d: [5s]\n"), &out), `must be a duration`)
	assert.ErrorContains(t, yaml.Unmarshal([]byte("d: "+strings.Repeat("9", 100)+"x\n"), &out), `invalid duration "9999999999999999999999999999999999999999"...`)
}

func TestDurationMethods(t *testing.T) {
	d := Duration(1500 * time.Millisecond)
	assert.Equal(t, 1500*time.Millisecond, d.D())
	assert.Equal(t, "1.5s", d.String())
	assert.Equal(t, "0s", Duration(0).String())
}
