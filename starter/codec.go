package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/drover-sre/drover/codec"
	"github.com/drover-sre/drover/recipe"
)

// defaultCORSOrigin is the local dev server's Web UI.
const defaultCORSOrigin = "http://127.0.0.1:8233"

// cmdCodecServer serves the Temporal codec-server protocol (POST /encode,
// POST /decode) with the payload encryption key ring, so the Temporal Web
// UI and CLI can show decrypted payloads, until ctx ends. It refuses to
// listen beyond loopback without --auth-token: whoever reaches it can have
// any payload decrypted.
func cmdCodecServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("codec-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8234", "host:port to serve on")
	keyRef := fs.String("codec-key", os.Getenv(codec.EnvKey), "secret reference (env:NAME or file:/path) of the key ring (default $"+codec.EnvKey+")")
	origins := fs.String("cors-origin", defaultCORSOrigin, "comma-separated browser origins allowed to call it (the Temporal Web UI's); empty: none")
	tokenRef := fs.String("auth-token", "", "secret reference of a bearer token every request must carry (required unless --listen is a loopback address)")
	tlsCert := fs.String("tls-cert", "", "PEM certificate chain file: serve HTTPS (with --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key file of --tls-cert")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts, err := codecServerOptions(*listen, *keyRef, *origins, *tokenRef, *tlsCert, *tlsKey)
	if err != nil {
		fmt.Fprintln(stderr, "drover codec-server:", err)
		return 2
	}
	cd, err := codec.Load(*keyRef)
	if err != nil {
		fmt.Fprintf(stderr, "drover codec-server: --codec-key: %v\n", err)
		return 2
	}
	if *tokenRef != "" {
		if opts.Token, err = recipe.SecretRef(*tokenRef).Resolve(); err != nil {
			fmt.Fprintf(stderr, "drover codec-server: --auth-token: %v\n", err)
			return 2
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", cd.Handler(opts))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "drover codec-server: --listen: %v\n", err)
		return 1
	}
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "codec server at %s://%s (key id %s, %d key(s)); CORS origins: %s; bearer token: %t\n",
		scheme, ln.Addr(), cd.KeyID(), len(cd.KeyIDs()), orNone(strings.Join(opts.CORSOrigins, ", ")), opts.Token != "")
	done := make(chan error, 1)
	go func() {
		if *tlsCert != "" {
			done <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(sctx)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "drover codec-server:", err)
		return 1
	}
	return 0
}

// codecServerOptions checks the flags of codec-server and returns the
// handler options they describe (the token is resolved later).
func codecServerOptions(listen, keyRef, origins, tokenRef, tlsCert, tlsKey string) (codec.ServerOptions, error) {
	var o codec.ServerOptions
	var errs []error
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("--listen: %q is not host:port", listen))
	} else if tokenRef == "" && !isLoopback(host) {
		errs = append(errs, fmt.Errorf("--listen: %s is not a loopback address: give --auth-token (anyone who reaches the server can decrypt payloads)", listen))
	}
	if keyRef == "" {
		errs = append(errs, fmt.Errorf("--codec-key: required (or set %s)", codec.EnvKey))
	} else if err := recipe.SecretRef(keyRef).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--codec-key: %w", err))
	}
	if tokenRef != "" {
		if err := recipe.SecretRef(tokenRef).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--auth-token: %w", err))
		}
	}
	for _, s := range strings.Split(origins, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("--cors-origin: %q must be an origin such as %s", s, defaultCORSOrigin))
			continue
		}
		o.CORSOrigins = append(o.CORSOrigins, u.Scheme+"://"+u.Host)
	}
	if (tlsCert == "") != (tlsKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key: give both or neither"))
	}
	return o, errors.Join(errs...)
}

// isLoopback reports whether host (from host:port) only listens on
// loopback: "localhost" or a loopback IP. "" means every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
