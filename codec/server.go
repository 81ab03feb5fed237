package codec

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// DefaultMaxBody is the largest request body ServerOptions allows by
// default, in bytes: Temporal's own limit on a gRPC message.
const DefaultMaxBody = 4 << 20

// ServerOptions configure Handler.
type ServerOptions struct {
	// CORSOrigins are the browser origins (scheme://host[:port], e.g. the
	// Temporal Web UI's "http://127.0.0.1:8233") allowed to call the codec
	// server; other origins get no CORS headers, and their preflight is
	// refused. Empty: no browser access.
	CORSOrigins []string
	// Token, when not empty, must arrive as "Authorization: Bearer TOKEN"
	// on every /encode and /decode request; anything else is 401.
	Token string
	// MaxBody bounds a request body (default DefaultMaxBody).
	MaxBody int64
}

// Handler serves the Temporal codec-server protocol with c: POST …/encode
// and POST …/decode, each taking and returning JSON {"payloads": [...]}
// (as the Temporal Web UI and CLI send them; any path prefix, such as a
// namespace, is accepted). It answers CORS preflights (OPTIONS) for the
// allowed origins without asking for the token, as browsers send none
// there. A payload that fails to decrypt makes the whole request 400 with
// the reason.
func (c *Codec) Handler(o ServerOptions) http.Handler {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	inner := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && slices.Contains(o.CORSOrigins, origin)
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
			h.Set("Access-Control-Max-Age", "600")
		}
		if origin != "" {
			w.Header().Add("Vary", "Origin")
		}
		if r.Method == http.MethodOptions {
			if !allowed {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, "method not allowed: use POST", http.StatusMethodNotAllowed)
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/encode") && !strings.HasSuffix(r.URL.Path, "/decode") {
			http.Error(w, "not found: use /encode or /decode", http.StatusNotFound)
			return
		}
		if o.Token != "" && !bearerOK(r.Header.Get("Authorization"), o.Token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="drover codec-server"`)
			http.Error(w, "unauthorized: a bearer token is required", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, o.MaxBody)
		inner.ServeHTTP(w, r)
	})
}

// bearerOK compares the header's bearer token with want in constant time.
func bearerOK(header, want string) bool {
	got, ok := strings.CutPrefix(header, "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
