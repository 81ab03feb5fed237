package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalizeDSN(t *testing.T) {
	tests := []struct {
		name    string
		dsn     string
		want    string
		wantErr string
	}{
		{
			name: "defaults added",
			dsn:  "petclinic:pw@tcp(127.0.0.2:3306)/petclinic",
			want: "petclinic:pw@tcp(127.0.0.2:3306)/petclinic?parseTime=true&readTimeout=5s&timeout=2s&writeTimeout=5s",
		},
		{
			name: "explicit timeouts kept",
			dsn:  "u:p@tcp(db:3306)/petclinic?timeout=10s&readTimeout=30s&writeTimeout=1s",
			want: "u:p@tcp(db:3306)/petclinic?parseTime=true&readTimeout=30s&timeout=10s&writeTimeout=1s",
		},
		{
			name: "parseTime forced, other params kept",
			dsn:  "u:p@tcp(db)/petclinic?parseTime=false&tls=false&time_zone=%27%2B00%3A00%27",
			want: "u:p@tcp(db:3306)/petclinic?parseTime=true&readTimeout=5s&timeout=2s&tls=false&writeTimeout=5s&time_zone=%27%2B00%3A00%27",
		},
		{name: "no database", dsn: "u:p@tcp(db:3306)/", wantErr: "no database name"},
		{name: "garbage", dsn: "not a dsn", wantErr: "parse DSN"},
		{name: "bad timeout", dsn: "u:p@tcp(db:3306)/x?timeout=soon", wantErr: "parse DSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := normalizeDSN(tt.dsn)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg.FormatDSN())
			assert.True(t, cfg.ParseTime)
			assert.Equal(t, time.UTC, cfg.Loc)
		})
	}
}

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "dsn")
	require.NoError(t, os.WriteFile(dsnFile, []byte("file:pw@tcp(127.0.0.2:3306)/petclinic\n"), 0o600))
	emptyFile := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(emptyFile, []byte("\n"), 0o600))
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == dsnEnv {
				return v
			}
			return ""
		}
	}

	tests := []struct {
		name       string
		args       []string
		env        string
		wantListen string
		wantUser   string
		wantErr    error
		wantErrMsg string
	}{
		{name: "file, newline trimmed", args: []string{"--dsn-file", dsnFile}, wantListen: "127.0.0.1:8080", wantUser: "file"},
		{name: "file wins over env", args: []string{"--dsn-file", dsnFile, "--listen", "127.0.0.9:18080"}, env: "env:pw@tcp(h)/db", wantListen: "127.0.0.9:18080", wantUser: "file"},
		{name: "env", env: "env:pw@tcp(h)/db", wantListen: "127.0.0.1:8080", wantUser: "env"},
		{name: "missing", wantErr: errNoDSN},
		{name: "empty file", args: []string{"--dsn-file", emptyFile}, env: "env:pw@tcp(h)/db", wantErr: errNoDSN},
		{name: "unreadable file", args: []string{"--dsn-file", filepath.Join(dir, "nope")}, wantErrMsg: "read --dsn-file"},
		{name: "bad flag", args: []string{"--bogus"}, wantErrMsg: "bogus"},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp},
		{name: "stray argument", args: []string{"--dsn-file", dsnFile, "extra"}, wantErrMsg: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, err := parseConfig(tt.args, env(tt.env), &stderr)
			switch {
			case tt.wantErr != nil:
				require.ErrorIs(t, err, tt.wantErr)
			case tt.wantErrMsg != "":
				require.ErrorContains(t, err, tt.wantErrMsg)
			default:
				require.NoError(t, err)
				assert.Equal(t, tt.wantListen, cfg.listen)
				assert.Equal(t, tt.wantUser, cfg.db.User)
				assert.Equal(t, 2*time.Second, cfg.db.Timeout)
			}
		})
	}
}

func TestRunMainMissingDSNExits2(t *testing.T) {
	var stderr bytes.Buffer
	code := runMain(nil, func(string) string { return "" }, &stderr)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr.String(), "petclinic: no database DSN: pass --dsn-file PATH or set PETCLINIC_DSN")
}

// The driver must be able to build a connector from what normalizeDSN returns.
func TestNormalizedConfigMakesConnector(t *testing.T) {
	cfg, err := normalizeDSN("u:p@tcp(127.0.0.1:1)/petclinic")
	require.NoError(t, err)
	_, err = mysql.NewConnector(cfg)
	require.NoError(t, err)
}
