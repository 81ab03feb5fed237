// Package cloudtest holds test helpers shared by the tests of Drover's
// cloud activities (packages provider/aws, provider/openstack and dns): a
// fake Keystone v3 with a service catalog of the test's choosing, the
// OpenStack environment a worker is set up with, and running an activity in
// a test environment and checking the Temporal error it returns. Only tests
// import it.
package cloudtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Endpoint is one endpoint of a service in the catalog.
type Endpoint struct {
	// Interface is "public", "internal" or "admin".
	Interface string
	// Region is the endpoint's region, e.g. "RegionOne".
	Region string
	// URL is the endpoint's base URL.
	URL string
}

// Service is one service of the catalog, e.g. Type "compute" and Name
// "nova", or Type "dns" and Name "designate".
type Service struct {
	Type, Name string
	Endpoints  []Endpoint
}

// Keystone is a fake Keystone v3 that issues tokens (password method,
// project scope) for one user. Its service catalog lists itself as the
// public identity endpoint in RegionOne, then the services given to
// NewKeystone. It fails the test on any request but POST /v3/auth/tokens
// and on a token request of another shape, answers a wrong password with
// Keystone's 401, and records every token it issued.
type Keystone struct {
	// URL is the server's base URL; the auth URL is URL + "/v3".
	URL string
	// User, Password, Project and Domain are the only credentials it
	// accepts (the domain is both the user's and the project's).
	User, Password, Project, Domain string

	t       testing.TB
	catalog []Service

	mu     sync.Mutex
	tokens []string
}

// NewKeystone starts a fake Keystone whose catalog holds services, for the
// duration of the test.
func NewKeystone(t testing.TB, services ...Service) *Keystone {
	k := &Keystone{User: "drover", Password: "keystone-test-password", Project: "dr", Domain: "Default", t: t, catalog: services}
	srv := httptest.NewServer(http.HandlerFunc(k.serve))
	t.Cleanup(srv.Close)
	k.URL = srv.URL
	return k
}

// Issued returns the tokens issued so far, oldest first.
func (k *Keystone) Issued() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.tokens)
}

// tokenRequest is the body of a password-authenticated, project-scoped
// token request of the Identity API v3.
type tokenRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password struct {
				User struct {
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   struct {
						Name string `json:"name"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope struct {
			Project struct {
				Name   string `json:"name"`
				Domain struct {
					Name string `json:"name"`
				} `json:"domain"`
			} `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

func (k *Keystone) serve(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v3/auth/tokens" {
		k.t.Errorf("keystone fake: unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
		return
	}
	var req tokenRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		k.t.Errorf("keystone fake: token request is not JSON: %v", err)
	}
	id, u := req.Auth.Identity, req.Auth.Identity.Password.User
	if !slices.Equal(id.Methods, []string{"password"}) || u.Name != k.User || u.Domain.Name != k.Domain ||
		req.Auth.Scope.Project.Name != k.Project || req.Auth.Scope.Project.Domain.Name != k.Domain {
		k.t.Errorf("keystone fake: unexpected token request shape: %+v", req)
	}
	if u.Password != k.Password {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`)
		return
	}
	token := fmt.Sprintf("gAAAAA-drover-token-%d", len(k.tokens)+1)
	k.tokens = append(k.tokens, token)
	now := time.Now().UTC()
	domain := map[string]any{"id": "default", "name": k.Domain}
	resp := map[string]any{"token": map[string]any{
		"methods":    []string{"password"},
		"issued_at":  now.Format("2006-01-02T15:04:05.000000Z"),
		"expires_at": now.Add(time.Hour).Format("2006-01-02T15:04:05.000000Z"),
		"user":       map[string]any{"id": "u-1", "name": k.User, "domain": domain},
		"project":    map[string]any{"id": "p-1", "name": k.Project, "domain": domain},
		"roles":      []any{map[string]any{"id": "r-1", "name": "member"}},
		"catalog":    k.catalogJSON(),
	}}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Subject-Token", token)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(resp)
}

// catalogJSON is the token's catalog: Keystone itself, then the services,
// with ids s-1, s-2, … and e-1, e-2, … in order.
func (k *Keystone) catalogJSON() []any {
	services := append([]Service{{Type: "identity", Name: "keystone", Endpoints: []Endpoint{{"public", "RegionOne", k.URL + "/v3/"}}}}, k.catalog...)
	var out []any
	n := 0
	for i, s := range services {
		var eps []any
		for _, e := range s.Endpoints {
			n++
			eps = append(eps, map[string]any{"id": fmt.Sprintf("e-%d", n), "interface": e.Interface, "region": e.Region, "region_id": e.Region, "url": e.URL})
		}
		out = append(out, map[string]any{"id": fmt.Sprintf("s-%d", i+1), "type": s.Type, "name": s.Name, "endpoints": eps})
	}
	return out
}

// CloudsYAML sets the worker up as an operator would with clouds.yaml:
// it clears the OS_* variables (ClearEnv), writes a clouds.yaml whose cloud
// "drover-lab" authenticates to k with password, in region, on the public
// interface, and points OS_CLIENT_CONFIG_FILE and OS_CLOUD at it, for the
// duration of the test.
func (k *Keystone) CloudsYAML(t testing.TB, password, region string) {
	t.Helper()
	ClearEnv(t)
	path := filepath.Join(t.TempDir(), "clouds.yaml")
	yaml := `clouds:
  drover-lab:
    auth:
      auth_url: ` + k.URL + `/v3
      username: ` + k.User + `
      password: ` + password + `
      project_name: ` + k.Project + `
      user_domain_name: ` + k.Domain + `
      project_domain_name: ` + k.Domain + `
    region_name: ` + region + `
    interface: public
    identity_api_version: 3
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OS_CLIENT_CONFIG_FILE", path)
	t.Setenv("OS_CLOUD", "drover-lab")
}

// Env sets the worker up with the OS_* variables instead: it clears them
// (ClearEnv) and sets OS_AUTH_URL, OS_USERNAME, OS_PASSWORD,
// OS_PROJECT_NAME and OS_DOMAIN_NAME for k, for the duration of the test.
func (k *Keystone) Env(t testing.TB) {
	ClearEnv(t)
	t.Setenv("OS_AUTH_URL", k.URL+"/v3")
	t.Setenv("OS_USERNAME", k.User)
	t.Setenv("OS_PASSWORD", k.Password)
	t.Setenv("OS_PROJECT_NAME", k.Project)
	t.Setenv("OS_DOMAIN_NAME", k.Domain)
}

// ClearEnv unsets every OS_* variable gophercloud reads, for the duration
// of the test.
func ClearEnv(t testing.TB) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}
