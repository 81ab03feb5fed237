package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"time"
)

// requestTimeout bounds the database work of one API request.
const requestTimeout = 10 * time.Second

// Server is the HTTP layer: it decodes and validates requests, calls the
// Store and maps its errors onto statuses. It holds no other state.
type Server struct {
	store  *Store
	logger *slog.Logger
	index  *template.Template
}

// newServer returns the complete HTTP handler of the application for db. It
// neither connects nor creates the schema; see ensureSchemaLoop.
func newServer(db *sql.DB, logger *slog.Logger) http.Handler {
	s := &Server{
		store:  NewStore(db),
		logger: logger,
		index:  template.Must(template.New("index").Parse(indexHTML)),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /api/owners", s.listOwners)
	mux.HandleFunc("POST /api/owners", s.createOwner)
	mux.HandleFunc("GET /api/owners/{id}", s.getOwner)
	mux.HandleFunc("POST /api/owners/{id}/pets", s.createPet)
	mux.HandleFunc("GET /api/pets/{id}", s.getPet)
	mux.HandleFunc("POST /api/pets/{id}/visits", s.createVisit)
	mux.HandleFunc("GET /api/pets/{id}/visits", s.listVisits)
	return withTimeout(mux, requestTimeout)
}

// withTimeout bounds the context of every request by d.
func withTimeout(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// healthResponse is the body of GET /healthz.
type healthResponse struct {
	Status    string   `json:"status"` // "ok", "read-only" or "down"
	DB        DBHealth `json:"db"`
	LatencyMS float64  `json:"latency_ms"`
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h := s.store.Health(r.Context())
	resp := healthResponse{DB: h, LatencyMS: math.Round(float64(time.Since(start).Microseconds())) / 1000}
	status := http.StatusOK
	switch {
	case h.Writable:
		resp.Status = "ok"
	case h.Reachable:
		resp.Status = "read-only"
	default:
		resp.Status = "down"
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, resp)
}

func (s *Server) listOwners(w http.ResponseWriter, r *http.Request) {
	prefix, err := checkLastNamePrefix(r.URL.Query().Get("last_name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	owners, err := s.store.ListOwners(r.Context(), prefix)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, owners)
}

func (s *Server) createOwner(w http.ResponseWriter, r *http.Request) {
	var in OwnerInput
	if err := decodeJSON(http.MaxBytesReader(w, r.Body, maxBodyBytes), &in); err != nil {
		s.fail(w, r, err)
		return
	}
	valid, err := in.validate()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o, err := s.store.CreateOwner(r.Context(), valid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/owners/%d", o.ID))
	writeJSON(w, http.StatusCreated, o)
}

func (s *Server) getOwner(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o, err := s.store.GetOwner(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) createPet(w http.ResponseWriter, r *http.Request) {
	ownerID, err := parseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in PetInput
	if err := decodeJSON(http.MaxBytesReader(w, r.Body, maxBodyBytes), &in); err != nil {
		s.fail(w, r, err)
		return
	}
	valid, err := in.validate(time.Now().UTC())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.store.CreatePet(r.Context(), ownerID, valid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/pets/%d", p.ID))
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) getPet(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.store.GetPet(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) createVisit(w http.ResponseWriter, r *http.Request) {
	petID, err := parseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in VisitInput
	if err := decodeJSON(http.MaxBytesReader(w, r.Body, maxBodyBytes), &in); err != nil {
		s.fail(w, r, err)
		return
	}
	valid, err := in.validate()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.store.CreateVisit(r.Context(), petID, valid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listVisits(w http.ResponseWriter, r *http.Request) {
	petID, err := parseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	visits, err := s.store.ListVisits(r.Context(), petID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, visits)
}

// errorResponse is the body of every error reply. Field is set for 400s.
type errorResponse struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// classifyForHTTP maps err onto a status and the message the client may see.
// Only 500s hide the cause.
func classifyForHTTP(err error) (status int, body errorResponse) {
	var fe *fieldError
	var nf *notFoundError
	switch {
	case errors.As(err, &fe):
		return http.StatusBadRequest, errorResponse{Error: fe.Error(), Field: fe.Field}
	case errors.As(err, &nf):
		return http.StatusNotFound, errorResponse{Error: nf.Error()}
	case errors.Is(err, ErrReadOnly):
		return http.StatusServiceUnavailable, errorResponse{Error: ErrReadOnly.Error()}
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, errorResponse{Error: ErrUnavailable.Error()}
	}
	return http.StatusInternalServerError, errorResponse{Error: "internal error"}
}

// fail writes the JSON error reply for err and logs what the client cannot
// see: the cause of 5xx replies.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away; nobody is left to answer
	}
	status, body := classifyForHTTP(err)
	switch {
	case status == http.StatusInternalServerError:
		s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	case status == http.StatusServiceUnavailable:
		s.logger.Warn("database refused request", "method", r.Method, "path", r.URL.Path, "error", err)
		w.Header().Set("Retry-After", "2")
	}
	writeJSON(w, status, body)
}

// writeJSON writes v as the JSON body of a reply with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// An encoding error here means the client disconnected; nothing to do.
	_ = json.NewEncoder(w).Encode(v)
}

// indexHTML is the page served at /, rendered with html/template so every
// value is escaped.
const indexHTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Petclinic</title></head>
<body>
<h1>Petclinic owners</h1>
{{if .Error}}<p><strong>Owners are unavailable: {{.Error}}</strong></p>
{{else if not .Owners}}<p>No owners yet.</p>
{{else}}<table border="1" cellpadding="4">
<tr><th>ID</th><th>Name</th><th>City</th><th>Telephone</th></tr>
{{range .Owners}}<tr><td><a href="/api/owners/{{.ID}}">{{.ID}}</a></td><td>{{.FirstName}} {{.LastName}}</td><td>{{.City}}</td><td>{{.Telephone}}</td></tr>
{{end}}</table>
{{end}}<p><a href="/healthz">health</a></p>
</body>
</html>
`

// indexData is what indexHTML renders.
type indexData struct {
	Owners []Owner
	Error  string
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	owners, err := s.store.ListOwners(r.Context(), "")
	data := indexData{Owners: owners}
	status := http.StatusOK
	if err != nil {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			return
		}
		var body errorResponse
		status, body = classifyForHTTP(err)
		data.Error = body.Error
		if status == http.StatusInternalServerError {
			s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.index.Execute(w, data); err != nil {
		s.logger.Error("render index", "error", err)
	}
}
