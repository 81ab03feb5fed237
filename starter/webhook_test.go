package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/webhook"
)

// webhookRecipe has an alerts section whose bearer token is the variable
// DROVER_TEST_WEBHOOK_TOKEN.
const webhookRecipe = "../webhook/testdata/recipe.yaml"

// Bad usage exits 2 naming the flag or field, before anything listens or
// Temporal is dialled.
func TestWebhookUsageErrors(t *testing.T) {
	t.Setenv("DROVER_TEST_WEBHOOK_TOKEN", "test-token-0123456789abcdef")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "127.0.0.1:0"}, "drover webhook: -f RECIPE is required"},
		{[]string{"-f", webhookRecipe}, "drover webhook: --listen: required (e.g. 127.0.0.1:9095)"},
		{[]string{"-f", webhookRecipe, "--listen", "9095"}, `drover webhook: --listen: "9095" is not host:port`},
		{[]string{"-f", webhookRecipe, "--listen", "127.0.0.1:0", "--tls-cert", bad}, "drover webhook: --tls-cert and --tls-key: give both or neither"},
		{[]string{"-f", webhookRecipe, "--listen", "127.0.0.1:0", "--max-body", "0"}, "drover webhook: --max-body: 0, want 1-67108864 bytes"},
		{[]string{"-f", webhookRecipe, "--listen", "127.0.0.1:0", "--log-level", "loud"}, `drover webhook: --log-level: unrecognized level: "loud"`},
		{[]string{"-f", webhookRecipe, "--listen", "127.0.0.1:0", "--cooldown", "soon"}, `invalid value "soon" for flag -cooldown`},
		{[]string{"-f", webhookRecipe, "--listen", "127.0.0.1:0", "extra"}, `drover webhook: unexpected argument "extra"`},
		{[]string{"-f", "/nonexistent/recipe.yaml", "--listen", "127.0.0.1:0"}, "/nonexistent/recipe.yaml"},
		{[]string{"-f", exampleRecipe, "--listen", "127.0.0.1:0"}, "drover webhook: " + exampleRecipe + " has no alerts.routes: the webhook would start nothing"},
		{[]string{"-f", webhookRecipe, "--listen", "127.0.0.1:0", "--tls-cert", bad, "--tls-key", bad}, "drover webhook: --tls-cert/--tls-key: tls: "},
	} {
		code, out, errOut := runCLI(t, append([]string{"webhook"}, tc.args...)...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}

	os.Unsetenv("DROVER_TEST_WEBHOOK_TOKEN")
	code, _, errOut := runCLI(t, "webhook", "-f", webhookRecipe, "--listen", "127.0.0.1:0")
	if want := "alerts.auth.bearer_token: resolve env:DROVER_TEST_WEBHOOK_TOKEN: environment variable is not set"; code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("unset token: exit %d, %q; want 2 and %q", code, errOut, want)
	}
}

// devServerForCLI starts a Temporal dev server, points the CLI at it
// (TEMPORAL_ADDRESS) and stops it when the test ends.
func devServerForCLI(t *testing.T) *testsuite.DevServer {
	t.Helper()
	srv, err := testenv.StartTemporal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	t.Setenv("TEMPORAL_ADDRESS", srv.FrontendHostPort())
	return srv
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `drover webhook` against a real Temporal dev server: it serves /healthz
// and /alerts, the test payload starts the Failover runbook (no worker is
// needed to start one), a GET is refused, every decision is logged as
// JSON, and SIGTERM (context cancelled) stops it with exit 0.
func TestWebhookCommandAgainstTemporal(t *testing.T) {
	const token = "test-token-0123456789abcdef"
	t.Setenv("DROVER_TEST_WEBHOOK_TOKEN", token)
	ctx := context.Background()
	devServerForCLI(t)
	port, err := testenv.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(runCtx, []string{"webhook", "-f", webhookRecipe, "--listen", addr, "--max-body", "65536"}, &stdout, &stderr)
	}()
	base := "http://" + addr
	if !testenv.WaitFor(20*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		stop()
		t.Fatalf("never answered /healthz\nstdout %s\nstderr %s", stdout.String(), stderr.String())
	}
	if want := fmt.Sprintf("drover webhook: serving the alerts of petclinic at http://%s/alerts\n", addr); stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}

	body, err := os.ReadFile("../webhook/testdata/sitedown-firing.json")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/alerts", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got webhook.Response
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	// No replication runs here, so the standby's lag is unknown: the
	// failover is refused (the production starter asks the supervisor).
	if err != nil || resp.StatusCode != http.StatusOK || len(got.Alerts) != 1 || got.Alerts[0].Outcome != webhook.OutcomeRefused ||
		!strings.Contains(got.Alerts[0].Message, "the lag of standby west is unknown") {
		t.Fatalf("POST: %d %v %+v", resp.StatusCode, err, got)
	}
	// A drill alert starts the drill.
	var m webhook.Message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m.Alerts[0].Labels = map[string]string{"alertname": "DRDrillDue", "app": "petclinic"}
	if body, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/alerts", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(got.Alerts) != 1 || got.Alerts[0].Outcome != webhook.OutcomeStarted ||
		got.Alerts[0].WorkflowID != "drill-petclinic" {
		t.Fatalf("POST drill: %d %v %+v", resp.StatusCode, err, got)
	}
	resp, err = http.Get(base + "/alerts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /alerts: %d", resp.StatusCode)
	}

	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop after its context was cancelled")
	}
	logs := stderr.String()
	for _, want := range []string{`"msg":"serving Alertmanager's webhook"`, `"outcome":"refused"`, `"outcome":"started"`, `"workflow_id":"drill-petclinic"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, token) {
		t.Error("the token is in the log")
	}
}

// With --tls-cert and --tls-key the webhook serves HTTPS only: a client
// trusting the certificate's CA gets its answers, a plain HTTP request
// does not.
func TestWebhookServesTLS(t *testing.T) {
	t.Setenv("DROVER_TEST_WEBHOOK_TOKEN", "test-token-0123456789abcdef")
	devServerForCLI(t)
	pki, err := testenv.NewPKI(t.TempDir(), "webhook", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	port, err := testenv.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(runCtx, []string{"webhook", "-f", webhookRecipe, "--listen", addr, "--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey}, &stdout, &stderr)
	}()
	caPEM, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	if !testenv.WaitFor(20*time.Second, func() bool {
		resp, err := hc.Get("https://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		stop()
		t.Fatalf("never answered https://%s/healthz\nstdout %s\nstderr %s", addr, stdout.String(), stderr.String())
	}
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP was answered")
		}
	}
	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop after its context was cancelled")
	}
}
