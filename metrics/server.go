package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Path is where Server serves the registry.
const Path = "/metrics"

// Server is a running HTTP endpoint serving a Registry at Path.
type Server struct {
	srv  *http.Server
	addr string
	done chan error

	once     sync.Once
	closeErr error
}

// Listen binds addr (host:port; port 0 picks a free one) and serves the
// registry at Path in the background until Close. It fails only when addr
// cannot be bound: once it returns, the endpoint answers.
func (r *Registry) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(Path, r.Handler())
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on (host:port).
func (s *Server) Addr() string { return s.addr }

// URL is the endpoint's address, http://host:port/metrics.
func (s *Server) URL() string { return "http://" + s.addr + Path }

// Close stops accepting connections and waits, at most until ctx is done,
// for scrapes in progress; then the port is free. It returns the error
// that stopped serving early, if any. Later calls return the same.
func (s *Server) Close(ctx context.Context) error {
	s.once.Do(func() {
		err := s.srv.Shutdown(ctx)
		if err != nil {
			_ = s.srv.Close()
		}
		if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
		s.closeErr = err
	})
	return s.closeErr
}
