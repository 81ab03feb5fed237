package openstack_test

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

// novaServer is one server the fake Nova holds.
type novaServer struct {
	ID, Name, Status, Image, Flavor, Network, KeyName string
	Metadata                                          map[string]string
	SecurityGroups                                    []string
	IP                                                string
	Created                                           time.Time
	// next is the status the server reaches after settle more reads;
	// "GONE" means deleted.
	next   string
	settle int
	fault  string
}

// novaRequest is one write request the fake accepted.
type novaRequest struct {
	Method, Path string
	Body         map[string]any
}

// fakeNova serves the Nova (compute API v2.1) calls the provider uses —
// GET /flavors/detail, GET /servers/detail with the name filter (a regular
// expression), POST /servers, GET /servers/{id}, POST /servers/{id}/action
// (os-start, os-stop), DELETE /servers/{id} — with the documented bodies,
// error bodies and status codes. Writes return 202 and the server reaches
// its next status after settle reads of the server list. Every request must
// carry a token that valid accepts.
type fakeNova struct {
	t     *testing.T
	srv   *httptest.Server
	valid func(token string) bool

	mu       sync.Mutex
	servers  []*novaServer
	flavors  map[string]string // id → name
	images   map[string]bool
	networks map[string]bool
	keypairs map[string]bool
	writes   []novaRequest
	lists    []string
	seq      int
	// settle is how many server listings a transition lasts.
	settle int
	// quota, when > 0, is the most servers the project may have.
	quota int
	// buildFault, when set, makes new servers end in ERROR with this fault.
	buildFault string
	// fail, when set, may answer a request with an error: it gets the
	// method and path and returns (status, JSON body) or (0, "").
	fail func(method, path string) (int, string)
}

const (
	testImage   = "7d3bf4d6-5a7c-4f6e-9a51-2b0c6c3a9f10"
	testNetwork = "3f1a9a52-8a43-4a4f-b1d2-6f0f9b1c2d3e"
)

func newFakeNova(t *testing.T) *fakeNova {
	n := &fakeNova{t: t, valid: func(string) bool { return true }, settle: 1,
		flavors: map[string]string{"1": "m1.tiny", "2": "m1.small", "3": "m1.medium"}, images: map[string]bool{testImage: true},
		networks: map[string]bool{testNetwork: true}, keypairs: map[string]bool{"drover-ops": true}}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	return n
}

// endpoint is the compute endpoint as a catalog lists it.
func (n *fakeNova) endpoint() string { return n.srv.URL + "/v2.1/" }

// put adds an ACTIVE server directly, as if created outside Drover.
func (n *fakeNova) put(name string, md map[string]string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.newServer(name, testImage, "1", testNetwork, "", md, nil)
	s.Status, s.next = "ACTIVE", ""
	return s.ID
}

func (n *fakeNova) statusOf(id string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.servers {
		if s.ID == id {
			return s.Status
		}
	}
	return "GONE"
}

// requests returns the write requests accepted so far.
func (n *fakeNova) requests() []novaRequest {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.writes)
}

// count returns how many accepted writes match method and a path suffix.
func (n *fakeNova) count(method, suffix string) int {
	c := 0
	for _, w := range n.requests() {
		if w.Method == method && strings.HasSuffix(w.Path, suffix) {
			c++
		}
	}
	return c
}

func (n *fakeNova) newServer(name, image, flavor, network, key string, md map[string]string, sgs []string) *novaServer {
	n.seq++
	s := &novaServer{
		ID: fmt.Sprintf("0d5c6a1e-0000-4000-8000-%012d", n.seq), Name: name, Status: "BUILD", Image: image, Flavor: flavor,
		Network: network, KeyName: key, Metadata: md, SecurityGroups: sgs, IP: fmt.Sprintf("10.1.0.%d", n.seq+10),
		Created: time.Date(2026, 11, 1, 12, 0, n.seq, 0, time.UTC), next: "ACTIVE", settle: n.settle,
	}
	if n.buildFault != "" {
		s.next, s.fault = "ERROR", n.buildFault
	}
	n.servers = append(n.servers, s)
	return s
}

var (
	novaServerPath = regexp.MustCompile(`^/v2\.1/servers/([0-9a-f-]+)$`)
	novaActionPath = regexp.MustCompile(`^/v2\.1/servers/([0-9a-f-]+)/action$`)
)

func (n *fakeNova) serve(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if tok := r.Header.Get("X-Auth-Token"); tok == "" || !n.valid(tok) {
		n.json(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401, "title": "Unauthorized",
			"message": "The request you have made requires authentication."}})
		return
	}
	if n.fail != nil {
		if status, body := n.fail(r.Method, r.URL.Path); status != 0 {
			w.Header().Set("Content-Type", "application/json")
			if status == http.StatusRequestEntityTooLarge || status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "2")
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
	}
	var body map[string]any
	if r.Method == http.MethodPost {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			n.t.Errorf("nova fake: %s %s with Content-Type %q", r.Method, r.URL.Path, ct)
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			n.fault(w, http.StatusBadRequest, "badRequest", "Malformed request body")
			return
		}
	}
	path := r.URL.Path
	switch {
	case r.Method == http.MethodGet && path == "/v2.1/flavors/detail":
		n.listFlavors(w)
	case r.Method == http.MethodGet && path == "/v2.1/servers/detail":
		n.listServers(w, r)
	case r.Method == http.MethodPost && path == "/v2.1/servers":
		n.create(w, r, body)
	case r.Method == http.MethodGet && novaServerPath.MatchString(path):
		n.get(w, novaServerPath.FindStringSubmatch(path)[1])
	case r.Method == http.MethodPost && novaActionPath.MatchString(path):
		n.action(w, r, novaActionPath.FindStringSubmatch(path)[1], body)
	case r.Method == http.MethodDelete && novaServerPath.MatchString(path):
		n.delete(w, r, novaServerPath.FindStringSubmatch(path)[1])
	default:
		n.t.Errorf("nova fake: unexpected request %s %s", r.Method, r.URL)
		n.fault(w, http.StatusNotFound, "itemNotFound", "The resource could not be found.")
	}
}

func (n *fakeNova) listFlavors(w http.ResponseWriter) {
	var out []map[string]any
	for id, name := range n.flavors {
		out = append(out, map[string]any{"id": id, "name": name, "ram": 2048, "vcpus": 1, "disk": 20, "swap": "",
			"os-flavor-access:is_public": true, "OS-FLV-EXT-DATA:ephemeral": 0, "rxtx_factor": 1.0, "links": []any{}})
	}
	slices.SortFunc(out, func(a, b map[string]any) int { return strings.Compare(a["id"].(string), b["id"].(string)) })
	n.json(w, http.StatusOK, map[string]any{"flavors": out})
}

// tick advances every transition by one listing.
func (n *fakeNova) tick() {
	n.servers = slices.DeleteFunc(n.servers, func(s *novaServer) bool {
		if s.next == "" {
			return false
		}
		if s.settle > 0 {
			s.settle--
			return false
		}
		if s.next == "GONE" {
			return true
		}
		s.Status, s.next = s.next, ""
		return false
	})
}

func (n *fakeNova) listServers(w http.ResponseWriter, r *http.Request) {
	n.tick()
	q := r.URL.Query()
	n.lists = append(n.lists, q.Encode())
	var re *regexp.Regexp
	if name := q.Get("name"); name != "" {
		var err error
		if re, err = regexp.Compile(name); err != nil {
			n.fault(w, http.StatusBadRequest, "badRequest", "Invalid name filter")
			return
		}
	}
	out := []map[string]any{}
	for _, s := range n.servers {
		if re == nil || re.MatchString(s.Name) {
			out = append(out, n.view(s))
		}
	}
	n.json(w, http.StatusOK, map[string]any{"servers": out})
}

func (n *fakeNova) get(w http.ResponseWriter, id string) {
	for _, s := range n.servers {
		if s.ID == id {
			n.json(w, http.StatusOK, map[string]any{"server": n.view(s)})
			return
		}
	}
	n.fault(w, http.StatusNotFound, "itemNotFound", "Instance "+id+" could not be found.")
}

// view is a server as GET /servers/{id} shows it.
func (n *fakeNova) view(s *novaServer) map[string]any {
	vm := map[string]string{"BUILD": "building", "ACTIVE": "active", "SHUTOFF": "stopped", "ERROR": "error"}[s.Status]
	var task any
	switch {
	case s.next == "SHUTOFF":
		task = "powering-off"
	case s.next == "ACTIVE" && s.Status == "SHUTOFF":
		task = "powering-on"
	case s.next == "GONE":
		task = "deleting"
	case s.Status == "BUILD":
		task = "spawning"
	}
	link := []any{map[string]any{"rel": "self", "href": n.srv.URL + "/v2.1/servers/" + s.ID}}
	v := map[string]any{
		"id": s.ID, "name": s.Name, "status": s.Status, "tenant_id": "p-1", "user_id": "u-1", "metadata": s.Metadata,
		"hostId": "f00d", "image": map[string]any{"id": s.Image, "links": []any{}}, "flavor": map[string]any{"id": s.Flavor, "links": []any{}},
		"created": s.Created.Format(time.RFC3339), "updated": s.Created.Format(time.RFC3339),
		"addresses": map[string]any{}, "accessIPv4": "", "accessIPv6": "", "key_name": s.KeyName, "progress": 0,
		"links": link, "OS-EXT-STS:vm_state": vm, "OS-EXT-STS:task_state": task, "OS-EXT-STS:power_state": 1,
		"OS-DCF:diskConfig": "MANUAL", "config_drive": "",
	}
	if s.Status != "BUILD" && s.Status != "ERROR" {
		v["addresses"] = map[string]any{"drover-net": []any{
			map[string]any{"version": 4, "addr": s.IP, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"},
			map[string]any{"version": 6, "addr": "2001:db8::" + s.ID[len(s.ID)-2:], "OS-EXT-IPS:type": "fixed"},
			map[string]any{"version": 4, "addr": strings.Replace(s.IP, "10.1.0.", "198.51.100.", 1), "OS-EXT-IPS:type": "floating"},
		}}
	}
	var sgs []any
	for _, g := range s.SecurityGroups {
		sgs = append(sgs, map[string]any{"name": g})
	}
	v["security_groups"] = sgs
	if s.Status == "ERROR" {
		v["fault"] = map[string]any{"code": 500, "created": s.Created.Format(time.RFC3339), "message": s.fault}
	}
	return v
}

func (n *fakeNova) create(w http.ResponseWriter, r *http.Request, body map[string]any) {
	srv, _ := body["server"].(map[string]any)
	name, _ := srv["name"].(string)
	image, _ := srv["imageRef"].(string)
	flavor, _ := srv["flavorRef"].(string)
	key, _ := srv["key_name"].(string)
	var network string
	if nets, _ := srv["networks"].([]any); len(nets) == 1 {
		m, _ := nets[0].(map[string]any)
		network, _ = m["uuid"].(string)
	}
	md := map[string]string{}
	if m, ok := srv["metadata"].(map[string]any); ok {
		for k, v := range m {
			md[k], _ = v.(string)
		}
	}
	var sgs []string
	if list, ok := srv["security_groups"].([]any); ok {
		for _, g := range list {
			m, _ := g.(map[string]any)
			s, _ := m["name"].(string)
			sgs = append(sgs, s)
		}
	}
	switch {
	case name == "":
		n.fault(w, http.StatusBadRequest, "badRequest", "Invalid input for field/attribute name.")
		return
	case !n.images[image]:
		n.fault(w, http.StatusBadRequest, "badRequest", "Image "+image+" could not be found.")
		return
	case n.flavors[flavor] == "":
		n.fault(w, http.StatusBadRequest, "badRequest", "Flavor "+flavor+" could not be found.")
		return
	case !n.networks[network]:
		n.fault(w, http.StatusBadRequest, "badRequest", "Network "+network+" could not be found.")
		return
	case key != "" && !n.keypairs[key]:
		n.fault(w, http.StatusBadRequest, "badRequest", "Invalid key_name provided.")
		return
	}
	if n.quota > 0 && len(n.servers) >= n.quota {
		n.fault(w, http.StatusForbidden, "forbidden", fmt.Sprintf("Quota exceeded for instances: Requested 1, but already used %d of %d instances", len(n.servers), n.quota))
		return
	}
	n.writes = append(n.writes, novaRequest{r.Method, r.URL.Path, body})
	s := n.newServer(name, image, flavor, network, key, md, sgs)
	n.json(w, http.StatusAccepted, map[string]any{"server": map[string]any{
		"id": s.ID, "links": []any{map[string]any{"rel": "self", "href": n.srv.URL + "/v2.1/servers/" + s.ID}},
		"OS-DCF:diskConfig": "MANUAL", "security_groups": []any{map[string]any{"name": "default"}}, "adminPass": "fake-admin-pass"}})
}

func (n *fakeNova) find(id string) *novaServer {
	for _, s := range n.servers {
		if s.ID == id {
			return s
		}
	}
	return nil
}

func (n *fakeNova) action(w http.ResponseWriter, r *http.Request, id string, body map[string]any) {
	s := n.find(id)
	if s == nil {
		n.fault(w, http.StatusNotFound, "itemNotFound", "Instance "+id+" could not be found.")
		return
	}
	_, stop := body["os-stop"]
	_, start := body["os-start"]
	switch {
	case stop && (s.Status != "ACTIVE" || s.next != ""):
		n.fault(w, http.StatusConflict, "conflictingRequest",
			fmt.Sprintf("Cannot 'stop' instance %s while it is in vm_state %s", id, strings.ToLower(s.Status)))
		return
	case start && (s.Status != "SHUTOFF" || s.next != ""):
		n.fault(w, http.StatusConflict, "conflictingRequest",
			fmt.Sprintf("Cannot 'start' instance %s while it is in vm_state %s", id, strings.ToLower(s.Status)))
		return
	case stop:
		s.next, s.settle = "SHUTOFF", n.settle
	case start:
		s.next, s.settle = "ACTIVE", n.settle
	default:
		n.t.Errorf("nova fake: unexpected action %v", body)
		n.fault(w, http.StatusBadRequest, "badRequest", "Unsupported action")
		return
	}
	n.writes = append(n.writes, novaRequest{r.Method, r.URL.Path, body})
	w.WriteHeader(http.StatusAccepted)
}

func (n *fakeNova) delete(w http.ResponseWriter, r *http.Request, id string) {
	s := n.find(id)
	if s == nil {
		n.fault(w, http.StatusNotFound, "itemNotFound", "Instance "+id+" could not be found.")
		return
	}
	n.writes = append(n.writes, novaRequest{r.Method, r.URL.Path, nil})
	s.next, s.settle = "GONE", n.settle
	w.WriteHeader(http.StatusNoContent)
}

// fault writes Nova's error body: {"<type>": {"code": N, "message": "…"}}.
func (n *fakeNova) fault(w http.ResponseWriter, status int, kind, msg string) {
	n.json(w, status, map[string]any{kind: map[string]any{"code": status, "message": msg}})
}

func (n *fakeNova) json(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		n.t.Errorf("nova fake: %v", err)
	}
}
