package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.uber.org/zap"

	"github.com/drover-sre/drover/codec"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// The worker as drover-worker runs it (run()) with --codec-key and the
// SDK's TLS variables: it reaches Temporal only through a TLS proxy that
// demands a client certificate, and serves SiteStatus end to end for a
// client set up the same way. The history as the server stores it, read
// with a client without the codec, holds no trace of the recipe's secret
// reference (input, probe activity arguments and results, result), and
// the codec client reads the result back.
func TestWorkerWithCodecAndTemporalTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	_, proxy := testenv.TemporalTLS(t, "127.0.0.43", temporalAddr)
	key := make([]byte, codec.KeySize)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(dir, "codec.keys")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	stop, done := make(chan interface{}), make(chan error, 1)
	go func() {
		done <- run(Config{Site: "secure", StateDir: t.TempDir(), LogLevel: "error", CodecKey: "file:" + keyFile}, zap.NewNop(), stop)
	}()
	defer func() {
		close(stop)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("the worker did not stop within a minute")
		}
	}()

	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	cd, err := codec.Load("file:" + keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cd.Apply(&opts)
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := client.Dial(client.Options{HostPort: temporalAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"ok","db":{"reachable":true,"writable":true}}`)
	}))
	defer app.Close()
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce)
	canary := "/run/drover-canary-" + hex.EncodeToString(nonce) + "/db.pw"
	r := recipe.Recipe{App: "securetest", Primary: "secure",
		Sites: []recipe.Site{{Name: "secure", Provider: "local", Address: "127.0.0.1",
			DB:  recipe.Database{Host: "127.0.0.1", Port: db.Config.Port, User: db.AdminUser, Password: recipe.SecretRef("file:" + canary)},
			App: recipe.AppTier{Endpoints: []string{app.URL}}}},
		DNS: recipe.DNS{Zone: "drover.test", Record: "app.drover.test", Driver: "rfc2136", Server: "127.0.0.1:5354",
			TSIG: recipe.TSIG{Name: "k", Secret: "env:UNUSED"}},
	}
	r.ApplyDefaults()
	wr, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "worker-test-secure-status", TaskQueue: workflows.SharedTaskQueue},
		workflows.SiteStatus, workflows.SiteStatusInput{Recipe: r})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.SiteStatusResult
	if err := wr.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	// The probe ran at the worker and could not read the (missing) secret.
	if len(res.Rows) != 1 || res.Rows[0].DB == nil || res.Rows[0].DB.Reachable || !strings.Contains(res.Rows[0].DB.Error, canary) {
		t.Fatalf("status through the worker:\n%s\n%+v", res.Table, res.Rows)
	}
	if proxy.Handshakes() < 2 {
		t.Errorf("%d TLS handshakes at the proxy; the worker and the client should each have made one", proxy.Handshakes())
	}
	history, err := testenv.StoredHistory(ctx, raw, wr.GetID(), wr.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(history, []byte(canary)) {
		t.Fatal("the stored history contains the recipe in clear")
	}
	if !bytes.Contains(history, []byte(cd.KeyID())) {
		t.Fatalf("no payload of the stored history names key id %s", cd.KeyID())
	}
	var plain workflows.SiteStatusResult
	if err := raw.GetWorkflow(ctx, wr.GetID(), wr.GetRunID()).Get(ctx, &plain); err == nil {
		t.Error("a client without the codec read the result")
	}
}

// --codec-key is checked like any secret reference: a literal key is
// refused without being repeated.
func TestConfigCheckCodecKey(t *testing.T) {
	c := Config{Site: "east", CodecKey: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	err := c.check()
	if err == nil || !strings.Contains(err.Error(), "--codec-key: must be a secret reference") || strings.Contains(err.Error(), "0123456789") {
		t.Errorf("literal key: %v", err)
	}
	c = Config{Site: "east", CodecKey: "env:DROVER_CODEC_TEST_KEY"}
	if err := c.check(); err != nil {
		t.Errorf("env reference: %v", err)
	}
	// A reference that cannot be resolved stops the worker before it dials.
	err = run(Config{Site: "east", StateDir: t.TempDir(), CodecKey: "env:DROVER_CODEC_TEST_UNSET"}, zap.NewNop(), nil)
	if err == nil || !strings.Contains(err.Error(), "--codec-key: resolve env:DROVER_CODEC_TEST_UNSET") {
		t.Errorf("unresolvable key: %v", err)
	}
}
