package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/drover-sre/drover/codec"
	"github.com/drover-sre/drover/tests/testenv"
)

// writeKeyRing writes a fresh one-key ring into dir and returns its file:
// reference and key ID.
func writeKeyRing(t *testing.T, dir string) (ref, keyID string) {
	t.Helper()
	k := make([]byte, codec.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "codec.keys")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + p, codec.KeyID(k)
}

func TestCodecServerUsageErrors(t *testing.T) {
	ref, _ := writeKeyRing(t, t.TempDir())
	t.Setenv(codec.EnvKey, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--codec-key: required (or set DROVER_CODEC_KEY)"},
		{[]string{"--codec-key", "c2VjcmV0"}, "--codec-key: must be a secret reference"},
		{[]string{"--codec-key", ref, "--listen", "0.0.0.0:8234"}, "--listen: 0.0.0.0:8234 is not a loopback address: give --auth-token"},
		{[]string{"--codec-key", ref, "--listen", ":8234"}, "is not a loopback address"},
		{[]string{"--codec-key", ref, "--listen", "8234"}, `--listen: "8234" is not host:port`},
		{[]string{"--codec-key", ref, "--auth-token", "hunter2"}, "--auth-token: must be a secret reference"},
		{[]string{"--codec-key", ref, "--cors-origin", "127.0.0.1:8233"}, `--cors-origin: "127.0.0.1:8233" must be an origin`},
		{[]string{"--codec-key", ref, "--cors-origin", "http://ui.example/path"}, "must be an origin"},
		{[]string{"--codec-key", ref, "--tls-cert", "/x.pem"}, "--tls-cert and --tls-key: give both or neither"},
		{[]string{"--codec-key", "env:DROVER_TEST_NO_SUCH_KEY"}, "--codec-key: resolve env:DROVER_TEST_NO_SUCH_KEY: environment variable is not set"},
		{[]string{"--codec-key", ref, "--auth-token", "env:DROVER_TEST_NO_SUCH_TOKEN"}, "--auth-token: resolve env:DROVER_TEST_NO_SUCH_TOKEN"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"codec-server"}, tc.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
		if strings.Contains(stderr.String(), "hunter2") || strings.Contains(stderr.String(), "c2VjcmV0") {
			t.Errorf("%v: a literal secret is echoed: %q", tc.args, stderr.String())
		}
	}
}

// drover codec-server serves the codec with the key ring from a file
// reference (the same key a worker would use), checks its bearer token
// (from an env reference), answers /healthz, allows the default Web UI
// origin, and stops cleanly (exit 0) when its context ends.
func TestCodecServerServes(t *testing.T) {
	dir := t.TempDir()
	ref, keyID := writeKeyRing(t, dir)
	t.Setenv("DROVER_TEST_CODEC_TOKEN", "tok-5e1f")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"codec-server", "--listen", "127.0.0.44:0", "--codec-key", ref,
			"--auth-token", "env:DROVER_TEST_CODEC_TOKEN"}, &stdout, &stderr)
	}()
	addrRE := regexp.MustCompile(`codec server at (http://127\.0\.0\.44:\d+) \(key id ` + keyID + `, 1 key\(s\)\)`)
	var base string
	if !testenv.WaitFor(10*time.Second, func() bool {
		if m := addrRE.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			return true
		}
		return false
	}) {
		t.Fatalf("no start line; stdout %q stderr %q", stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "CORS origins: "+defaultCORSOrigin) {
		t.Errorf("start line does not name the default CORS origin: %q", stdout.String())
	}

	call := func(path, token string, ps []*commonpb.Payload) (int, []*commonpb.Payload) {
		t.Helper()
		body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", defaultCORSOrigin)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && resp.Header.Get("Access-Control-Allow-Origin") != defaultCORSOrigin {
			t.Errorf("%s: no CORS header for the UI origin", path)
		}
		var out commonpb.Payloads
		if resp.StatusCode == http.StatusOK {
			if err := protojson.Unmarshal(raw, &out); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, out.Payloads
	}
	p, _ := converter.GetDefaultDataConverter().ToPayload("hello codec server")
	code, enc := call("/encode", "tok-5e1f", []*commonpb.Payload{p})
	if code != http.StatusOK || len(enc) != 1 || string(enc[0].Metadata[codec.MetadataKeyID]) != keyID {
		t.Fatalf("/encode: %d %v", code, enc)
	}
	code, dec := call("/decode", "tok-5e1f", enc)
	if code != http.StatusOK || len(dec) != 1 || !proto.Equal(dec[0], p) {
		t.Fatalf("/decode: %d %v", code, dec)
	}
	if code, _ := call("/decode", "wrong", enc); code != http.StatusUnauthorized {
		t.Errorf("/decode with a wrong token: %d, want 401", code)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cancel; stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("codec-server did not stop within 10s of its context ending")
	}
}

// The CLI's Temporal client honours the SDK's TLS variables — through a
// TLS-only, client-certificate-checking proxy in front of a dev server, with
// a server name that differs from the address — and DROVER_CODEC_KEY: what
// it starts is stored encrypted. A wrong CA fails to connect, naming the
// certificate problem; a bad key reference fails naming DROVER_CODEC_KEY.
// A TOML profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE) with the same TLS
// settings, and no variable, connects the same way.
func TestDialTemporalHonoursTLSAndCodec(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testenv.StartTemporal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop() }()
	dir := t.TempDir()
	pki, proxy := testenv.TemporalTLS(t, "127.0.0.44", srv.FrontendHostPort())
	other, err := testenv.NewPKI(dir, "other", testenv.TemporalServerName)
	if err != nil {
		t.Fatal(err)
	}
	ref, keyID := writeKeyRing(t, dir)
	t.Setenv(codec.EnvKey, ref)

	c, err := dialTemporal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if proxy.Handshakes() == 0 {
		t.Fatal("the client reached Temporal without a TLS handshake at the proxy")
	}
	const secret = "cli-canary-3b9d"
	r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "codec-cli", TaskQueue: "nobody-polls"}, "Nothing", secret)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ev, err := raw.GetWorkflowHistory(ctx, r.GetID(), r.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT).Next()
	if err != nil {
		t.Fatal(err)
	}
	in := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	b, _ := proto.Marshal(ev)
	if len(in) != 1 || string(in[0].Metadata[codec.MetadataKeyID]) != keyID || bytes.Contains(b, []byte(secret)) {
		t.Errorf("stored input is not encrypted with key %s: %v", keyID, in)
	}
	_ = raw.TerminateWorkflow(ctx, r.GetID(), "", "test over")

	t.Setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", other.CA)
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	if c, err := dialTemporal(dctx); err == nil {
		c.Close()
		t.Error("connected with the wrong CA")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("wrong CA: %v; want it to name the certificate problem", err)
	}
	t.Setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", pki.CA)
	t.Setenv(codec.EnvKey, "env:DROVER_TEST_NO_SUCH_KEY")
	if _, err := dialTemporal(ctx); err == nil || !strings.Contains(err.Error(), codec.EnvKey+": resolve env:DROVER_TEST_NO_SUCH_KEY") {
		t.Errorf("bad key reference: %v", err)
	}

	// The same connection from a TOML profile alone (no TEMPORAL_ADDRESS or
	// TLS variable set; t.Setenv restores them afterwards).
	for _, v := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_SERVER_NAME",
		"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", codec.EnvKey} {
		os.Unsetenv(v)
	}
	profile := filepath.Join(dir, "temporal.toml")
	toml := fmt.Sprintf("[profile.dr]\naddress = %q\n[profile.dr.tls]\nserver_ca_cert_path = %q\nserver_name = %q\n"+
		"client_cert_path = %q\nclient_key_path = %q\n", proxy.Addr, pki.CA, testenv.TemporalServerName, pki.ClientCert, pki.ClientKey)
	if err := os.WriteFile(profile, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", profile)
	t.Setenv("TEMPORAL_PROFILE", "dr")
	before := proxy.Handshakes()
	pc, err := dialTemporal(ctx)
	if err != nil {
		t.Fatalf("dial from the TOML profile: %v", err)
	}
	defer pc.Close()
	if _, err := pc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil || proxy.Handshakes() == before {
		t.Errorf("profile client: health %v, %d new TLS handshakes", err, proxy.Handshakes()-before)
	}
}
