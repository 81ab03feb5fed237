package dns_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// desRecordset is a Designate v2 recordset as the API returns it.
type desRecordset struct {
	ID          string   `json:"id"`
	ZoneID      string   `json:"zone_id"`
	ProjectID   string   `json:"project_id"`
	Name        string   `json:"name"`
	ZoneName    string   `json:"zone_name"`
	Type        string   `json:"type"`
	Records     []string `json:"records"`
	TTL         *int     `json:"ttl"`
	Status      string   `json:"status"`
	Action      string   `json:"action"`
	Description *string  `json:"description"`
	Version     int      `json:"version"`
	CreatedAt   string   `json:"created_at"`
	UpdatedAt   *string  `json:"updated_at"`
	Links       struct {
		Self string `json:"self"`
	} `json:"links"`

	pending int // GETs left before ACTIVE (or gone, after a delete)
}

// desRequest is one write request the fake accepted.
type desRequest struct {
	Method, Path string
	Body         map[string]any
}

// fakeDesignate serves the Designate v2 recordset API of one zone, with the
// version document at its root. Writes answer 202 with status PENDING; a
// recordset turns ACTIVE (or, deleted, disappears) after activeAfter GETs
// of it. Every request must carry a token that valid accepts.
type fakeDesignate struct {
	t      *testing.T
	srv    *httptest.Server
	zoneID string
	zone   string
	// valid reports whether an X-Auth-Token is acceptable.
	valid func(token string) bool
	// activeAfter is how many GETs a new change answers PENDING.
	activeAfter int
	// fail, when set, may answer a request with an error: it gets the
	// method and path and returns (status, JSON body) or (0, "").
	fail func(method, path string) (int, string)

	mu     sync.Mutex
	sets   map[string]*desRecordset
	writes []desRequest
	gets   int
	lists  []string
	seq    int
}

func newFakeDesignate(t *testing.T, zoneID, zone string) *fakeDesignate {
	d := &fakeDesignate{t: t, zoneID: zoneID, zone: zone, sets: map[string]*desRecordset{}, valid: func(string) bool { return true }}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

// put stores an ACTIVE A recordset directly.
func (d *fakeDesignate) put(name string, ttl int, records ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.newSet(name, "A", ttl, records, "NONE")
}

func (d *fakeDesignate) newSet(name, typ string, ttl int, records []string, action string) *desRecordset {
	d.seq++
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", d.seq)
	rs := &desRecordset{ID: id, ZoneID: d.zoneID, ProjectID: "p-1", Name: name, ZoneName: d.zone, Type: typ, Records: records,
		TTL: &ttl, Status: "ACTIVE", Action: action, Version: 1, CreatedAt: time.Now().UTC().Format("2006-01-02T15:04:05.000000")}
	rs.Links.Self = d.srv.URL + "/v2/zones/" + d.zoneID + "/recordsets/" + id
	d.sets[id] = rs
	return rs
}

// snapshot returns the writes accepted and recordset GETs served so far.
func (d *fakeDesignate) snapshot() ([]desRequest, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.writes), d.gets
}

var (
	desListPath = regexp.MustCompile(`^/v2/zones/([^/]+)/recordsets$`)
	desSetPath  = regexp.MustCompile(`^/v2/zones/([^/]+)/recordsets/([^/]+)$`)
)

func (d *fakeDesignate) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.URL.Path == "/" && r.Method == http.MethodGet {
		// Version discovery, before any token is needed.
		d.json(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{
			"id": "v2.0", "status": "CURRENT", "links": []any{map[string]any{"href": d.srv.URL + "/v2/", "rel": "self"}}}}})
		return
	}
	if tok := r.Header.Get("X-Auth-Token"); tok == "" || !d.valid(tok) {
		d.json(w, http.StatusUnauthorized, map[string]any{"code": 401, "type": "unauthorized", "message": "Authentication required"})
		return
	}
	if d.fail != nil {
		if status, body := d.fail(r.Method, r.URL.Path); status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
	}
	var zone, id string
	if m := desListPath.FindStringSubmatch(r.URL.Path); m != nil {
		zone = m[1]
	} else if m := desSetPath.FindStringSubmatch(r.URL.Path); m != nil {
		zone, id = m[1], m[2]
	} else {
		d.t.Errorf("designate fake: unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
		return
	}
	if zone != d.zoneID {
		d.json(w, http.StatusNotFound, map[string]any{"code": 404, "type": "zone_not_found", "message": "Could not find Zone", "request_id": "req-fake"})
		return
	}
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			d.t.Errorf("designate fake: %s %s with Content-Type %q", r.Method, r.URL.Path, ct)
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			d.json(w, http.StatusBadRequest, map[string]any{"code": 400, "type": "invalid_object", "message": "Malformed body"})
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && id == "":
		d.list(w, r)
	case r.Method == http.MethodGet:
		d.get(w, id)
	case r.Method == http.MethodPost && id == "":
		d.create(w, r, body)
	case r.Method == http.MethodPut:
		d.update(w, r, id, body)
	case r.Method == http.MethodDelete:
		d.delete(w, r, id)
	default:
		d.t.Errorf("designate fake: unexpected request %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (d *fakeDesignate) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d.lists = append(d.lists, q.Encode())
	var out []*desRecordset
	for _, rs := range d.sets {
		if (q.Get("name") == "" || strings.EqualFold(q.Get("name"), rs.Name)) && (q.Get("type") == "" || q.Get("type") == rs.Type) {
			out = append(out, rs)
		}
	}
	slices.SortFunc(out, func(a, b *desRecordset) int { return strings.Compare(a.ID, b.ID) })
	d.json(w, http.StatusOK, map[string]any{
		"recordsets": out,
		"links":      map[string]any{"self": d.srv.URL + r.URL.String()},
		"metadata":   map[string]any{"total_count": len(out)},
	})
}

func (d *fakeDesignate) get(w http.ResponseWriter, id string) {
	d.gets++
	rs, ok := d.sets[id]
	if !ok {
		d.json(w, http.StatusNotFound, map[string]any{"code": 404, "type": "recordset_not_found", "message": "Could not find RecordSet"})
		return
	}
	if rs.pending > 0 {
		rs.pending--
	} else if rs.Status == "PENDING" {
		if rs.Action == "DELETE" {
			delete(d.sets, id)
			d.json(w, http.StatusNotFound, map[string]any{"code": 404, "type": "recordset_not_found", "message": "Could not find RecordSet"})
			return
		}
		rs.Status, rs.Action = "ACTIVE", "NONE"
	}
	d.json(w, http.StatusOK, rs)
}

func (d *fakeDesignate) create(w http.ResponseWriter, r *http.Request, body map[string]any) {
	name, _ := body["name"].(string)
	typ, _ := body["type"].(string)
	ttl, _ := body["ttl"].(float64)
	records := stringList(body["records"])
	if name == "" || typ == "" || len(records) == 0 {
		d.json(w, http.StatusBadRequest, map[string]any{"code": 400, "type": "invalid_object", "message": "name, type and records are required"})
		return
	}
	for _, rs := range d.sets {
		if strings.EqualFold(rs.Name, name) && rs.Type == typ {
			d.json(w, http.StatusConflict, map[string]any{"code": 409, "type": "duplicate_recordset", "message": "Duplicate RecordSet"})
			return
		}
	}
	d.writes = append(d.writes, desRequest{r.Method, r.URL.Path, body})
	rs := d.newSet(name, typ, int(ttl), records, "CREATE")
	rs.Status, rs.pending = "PENDING", d.activeAfter
	d.json(w, http.StatusAccepted, rs)
}

func (d *fakeDesignate) update(w http.ResponseWriter, r *http.Request, id string, body map[string]any) {
	rs, ok := d.sets[id]
	if !ok {
		d.json(w, http.StatusNotFound, map[string]any{"code": 404, "type": "recordset_not_found", "message": "Could not find RecordSet"})
		return
	}
	d.writes = append(d.writes, desRequest{r.Method, r.URL.Path, body})
	if v, ok := body["records"]; ok {
		rs.Records = stringList(v)
	}
	if v, ok := body["ttl"].(float64); ok {
		ttl := int(v)
		rs.TTL = &ttl
	}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000")
	rs.UpdatedAt, rs.Status, rs.Action, rs.pending = &now, "PENDING", "UPDATE", d.activeAfter
	rs.Version++
	d.json(w, http.StatusAccepted, rs)
}

func (d *fakeDesignate) delete(w http.ResponseWriter, r *http.Request, id string) {
	rs, ok := d.sets[id]
	if !ok {
		d.json(w, http.StatusNotFound, map[string]any{"code": 404, "type": "recordset_not_found", "message": "Could not find RecordSet"})
		return
	}
	d.writes = append(d.writes, desRequest{r.Method, r.URL.Path, nil})
	rs.Status, rs.Action, rs.pending = "PENDING", "DELETE", d.activeAfter
	d.json(w, http.StatusAccepted, rs)
}

func (d *fakeDesignate) json(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		d.t.Errorf("designate fake: %v", err)
	}
}

// stringList converts a decoded JSON array of strings.
func stringList(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
