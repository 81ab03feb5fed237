package codec

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
)

const uiOrigin = "http://127.0.0.1:8233"

// post sends payloads as the Web UI does and returns the status, headers
// and decoded body (nil when the answer is not payloads).
func post(t *testing.T, srv *httptest.Server, path, token, origin string, ps []*commonpb.Payload) (int, http.Header, []*commonpb.Payload, string) {
	t.Helper()
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out commonpb.Payloads
	if resp.StatusCode == http.StatusOK {
		if err := protojson.Unmarshal(raw, &out); err != nil {
			t.Fatalf("answer is not payloads: %v: %s", err, raw)
		}
	}
	return resp.StatusCode, resp.Header, out.Payloads, string(raw)
}

// The codec server encodes and decodes over HTTP exactly as the codec does
// in process (with a namespace path prefix too), refuses what it cannot
// authenticate with 400 and the reason, and checks the bearer token.
func TestHandlerEncodeDecodeAuth(t *testing.T) {
	c := mustNew(t, newKey(t))
	srv := httptest.NewServer(c.Handler(ServerOptions{CORSOrigins: []string{uiOrigin}, Token: "tok-123"}))
	defer srv.Close()
	in := plainPayloads(t, "shown decrypted in the UI")

	code, _, enc, body := post(t, srv, "/encode", "tok-123", "", in)
	if code != http.StatusOK || len(enc) != 1 || string(enc[0].Metadata[converter.MetadataEncoding]) != MetadataEncoding {
		t.Fatalf("POST /encode: %d %s", code, body)
	}
	if strings.Contains(body, "shown decrypted") {
		t.Fatal("/encode answered plaintext")
	}
	code, hdr, dec, body := post(t, srv, "/default/decode", "tok-123", uiOrigin, enc)
	if code != http.StatusOK || len(dec) != 1 {
		t.Fatalf("POST /default/decode: %d %s", code, body)
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(dec[0], &s); err != nil || s != "shown decrypted in the UI" {
		t.Fatalf("decoded %q, %v", s, err)
	}
	if got := hdr.Get("Access-Control-Allow-Origin"); got != uiOrigin {
		t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, uiOrigin)
	}

	// Another key's payload: 400 with the reason.
	foreign, _ := mustNew(t, newKey(t)).Encode(in)
	if code, _, _, body := post(t, srv, "/decode", "tok-123", "", foreign); code != http.StatusBadRequest || !strings.Contains(body, "not in the key ring") {
		t.Errorf("decode of a foreign payload: %d %q; want 400 naming the key", code, body)
	}
	// Missing or wrong token: 401 and nothing decoded.
	for _, tok := range []string{"", "tok-124", "tok-1234"} {
		code, hdr, _, body := post(t, srv, "/decode", tok, uiOrigin, enc)
		if code != http.StatusUnauthorized || strings.Contains(body, "shown decrypted") {
			t.Errorf("token %q: %d %q; want 401", tok, code, body)
		}
		if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("token %q: no WWW-Authenticate: Bearer", tok)
		}
	}
	// Wrong method and path.
	resp, err := srv.Client().Get(srv.URL + "/decode")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /decode: %d, want 405", resp.StatusCode)
	}
	if code, _, _, _ := post(t, srv, "/other", "tok-123", "", enc); code != http.StatusNotFound {
		t.Errorf("POST /other: %d, want 404", code)
	}
}

// CORS: the preflight of an allowed origin succeeds without a token and
// allows the headers the Web UI sends; another origin gets no CORS headers
// and its preflight is refused.
func TestHandlerCORSPreflight(t *testing.T) {
	c := mustNew(t, newKey(t))
	srv := httptest.NewServer(c.Handler(ServerOptions{CORSOrigins: []string{uiOrigin}, Token: "tok"}))
	defer srv.Close()
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-namespace")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := preflight(uiOrigin)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight from %s: %d, want 204", uiOrigin, resp.StatusCode)
	}
	h := resp.Header
	if h.Get("Access-Control-Allow-Origin") != uiOrigin || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight headers: %v", h)
	}
	for _, want := range []string{"Authorization", "Content-Type", "X-Namespace"} {
		if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
		}
	}
	resp = preflight("http://evil.example")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v; want 403 without CORS headers", resp.StatusCode, resp.Header)
	}
	if code, hdr, _, _ := post(t, srv, "/encode", "tok", "http://evil.example", plainPayloads(t, "x")); hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("POST from another origin (%d) got CORS headers", code)
	}
}

// Without a token the server decodes for anyone who reaches it; bodies over
// MaxBody are refused.
func TestHandlerNoTokenAndBodyLimit(t *testing.T) {
	c := mustNew(t, newKey(t))
	srv := httptest.NewServer(c.Handler(ServerOptions{MaxBody: 1000}))
	defer srv.Close()
	enc, _ := c.Encode(plainPayloads(t, "x"))
	if code, _, _, body := post(t, srv, "/decode", "", "", enc); code != http.StatusOK {
		t.Fatalf("decode without a configured token: %d %s", code, body)
	}
	big := plainPayloads(t, strings.Repeat("y", 2000))
	if code, _, _, _ := post(t, srv, "/encode", "", "", big); code == http.StatusOK {
		t.Error("a body over MaxBody was accepted")
	}
}
