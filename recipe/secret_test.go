package recipe

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecretRefValidate(t *testing.T) {
	tests := []struct {
		ref  SecretRef
		want error
	}{
		{"env:DB_PASSWORD", nil},
		{"env:_x1", nil},
		{"file:/run/secrets/db", nil},
		{"file:/", nil},
		{"", errSecretEmpty},
		{"hunter2", errSecretLiteral},
		{"ENV:DB_PASSWORD", errSecretLiteral},
		{" env:DB_PASSWORD", errSecretLiteral},
		{"vault:secret/db", errSecretLiteral},
		{"env:", errSecretEnv},
		{"env:1ABC", errSecretEnv},
		{"env:DB-PASSWORD", errSecretEnv},
		{"env:DB PASSWORD", errSecretEnv},
		{"file:", errSecretFile},
		{"file:relative/path", errSecretFile},
		{"file:/run/../etc/shadow", errSecretFile},
		{"file:/run/secrets/", errSecretFile},
		{"file://run/secrets", errSecretFile},
		{"file:/run/\x00", errSecretFile},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", string(tt.ref)), func(t *testing.T) {
			err := tt.ref.Validate()
			assert.Equal(t, tt.want, err)
			if err != nil && tt.ref != "" {
				assert.NotContains(t, err.Error(), string(tt.ref))
			}
		})
	}
}

func TestSecretRefString(t *testing.T) {
	assert.Equal(t, "env:DB_PASSWORD", SecretRef("env:DB_PASSWORD").String())
	assert.Equal(t, "<invalid secret reference>", SecretRef("hunter2").String())
	assert.Equal(t, "<invalid secret reference>", fmt.Sprintf("%v", SecretRef("hunter2")))
}

func TestSecretRefResolveEnv(t *testing.T) {
	t.Setenv("DROVER_TEST_SECRET", "s3cret-env\n")
	t.Setenv("DROVER_TEST_EMPTY", "")
	t.Setenv("DROVER_TEST_NEWLINE", "\n")

	v, err := SecretRef("env:DROVER_TEST_SECRET").Resolve()
	require.NoError(t, err)
	assert.Equal(t, "s3cret-env", v)

	_, err = SecretRef("env:DROVER_TEST_UNSET_VARIABLE").Resolve()
	assert.EqualError(t, err, "resolve env:DROVER_TEST_UNSET_VARIABLE: environment variable is not set")
	_, err = SecretRef("env:DROVER_TEST_EMPTY").Resolve()
	assert.EqualError(t, err, "resolve env:DROVER_TEST_EMPTY: secret is empty")
	_, err = SecretRef("env:DROVER_TEST_NEWLINE").Resolve()
	assert.EqualError(t, err, "resolve env:DROVER_TEST_NEWLINE: secret is empty")
}

func TestSecretRefResolveFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) SecretRef {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return SecretRef("file:" + p)
	}
	tests := []struct {
		name, content, want string
	}{
		{"plain", "s3cret-file", "s3cret-file"},
		{"newline", "s3cret-file\n", "s3cret-file"},
		{"crlf", "s3cret-file\r\n", "s3cret-file"},
		{"only one newline trimmed", "s3cret-file\n\n", "s3cret-file\n"},
		{"inner spaces kept", " s3cret file ", " s3cret file "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := write(tt.name, tt.content).Resolve()
			require.NoError(t, err)
			assert.Equal(t, tt.want, v)
		})
	}

	t.Run("empty", func(t *testing.T) {
		ref := write("empty", "\n")
		_, err := ref.Resolve()
		assert.EqualError(t, err, "resolve "+string(ref)+": secret is empty")
	})
	t.Run("missing", func(t *testing.T) {
		ref := SecretRef("file:" + filepath.Join(dir, "missing"))
		_, err := ref.Resolve()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "resolve "+string(ref)+": ")
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("too large", func(t *testing.T) {
		ref := write("large", string(make([]byte, maxSecretSize+1)))
		_, err := ref.Resolve()
		assert.EqualError(t, err, "resolve "+string(ref)+": file is larger than 64 KiB")
	})
	t.Run("directory", func(t *testing.T) {
		_, err := SecretRef("file:" + dir).Resolve()
		assert.Error(t, err)
	})
}

func TestSecretRefResolveNeverLeaks(t *testing.T) {
	const value = "pa55-w0rd-do-not-print"
	dir := t.TempDir()
	p := filepath.Join(dir, "s")
	require.NoError(t, os.WriteFile(p, []byte(value), 0o600))
	t.Setenv("DROVER_TEST_LEAK", value)

	for _, ref := range []SecretRef{value, "env:" + value, "file:" + value, SecretRef("file:" + dir + "/../" + value)} {
		_, err := ref.Resolve()
		require.Error(t, err)
		assert.NotContains(t, err.Error(), value)
		assert.Contains(t, err.Error(), "resolve secret: ")
	}
	// Valid references resolve, and their errors show the reference only.
	v, err := SecretRef("file:" + p).Resolve()
	require.NoError(t, err)
	assert.Equal(t, value, v)
	require.NoError(t, os.Chmod(p, 0))
	if _, err := os.ReadFile(p); err == nil {
		return // running as root: an unreadable file cannot be made
	}
	_, err = SecretRef("file:" + p).Resolve()
	require.Error(t, err)
	assert.NotContains(t, err.Error(), value)
}
