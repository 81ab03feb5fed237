// Package deploy_test checks the deployment files under deploy/ against the
// programs they run: every Kubernetes manifest is well formed, pins its
// images and carries no secret value; every secret the recipe references is
// mounted where the pods resolve it; every flag a systemd unit or a
// container passes exists in the program's own flag set; the IAM policy
// allows exactly the AWS calls the code makes.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/provider/aws"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
)

// helpCache builds drover and drover-worker into dir once and remembers
// each command's -h output.
type helpCache struct {
	once sync.Once
	dir  string // set by the creator; outlives every test using the cache
	err  error
	mu   sync.Mutex
	help map[string]string
}

// unknownFlags returns the flags of args (a command line without the program)
// that program (drover or drover-worker) does not accept.
func (h *helpCache) unknownFlags(t *testing.T, program string, args []string) []string {
	t.Helper()
	h.once.Do(func() {
		_, h.err = testenv.Build(h.dir, "drover", "drover-worker")
		h.help = map[string]string{}
	})
	if h.err != nil {
		t.Fatal(h.err)
	}
	cmd := []string{}
	if program == "drover" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			t.Fatalf("drover %v: no subcommand", args)
		}
		cmd, args = []string{args[0]}, args[1:]
	}
	key := strings.TrimSpace(program + " " + strings.Join(cmd, " "))
	h.mu.Lock()
	out, ok := h.help[key]
	h.mu.Unlock()
	if !ok {
		b, _ := exec.Command(filepath.Join(h.dir, program), append(cmd, "-h")...).CombinedOutput()
		out = string(b)
		if !strings.Contains(out, "  -") {
			t.Fatalf("%s -h lists no flags (unknown command?):\n%s", key, out)
		}
		h.mu.Lock()
		h.help[key] = out
		h.mu.Unlock()
	}
	var unknown []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `(\s|$)`).MatchString(out) {
			unknown = append(unknown, key+": "+a)
		}
	}
	return unknown
}

// TestDeployFiles checks the Kubernetes manifests and the systemd units
// against the programs they run, built once for both.
func TestDeployFiles(t *testing.T) {
	programs := helpCache{dir: t.TempDir()}
	t.Run("kubernetes", func(t *testing.T) { checkKubernetesManifests(t, &programs) })
	t.Run("systemd", func(t *testing.T) { checkSystemdUnits(t, &programs) })
}

// doc is one YAML document as generic maps.
type doc = map[string]any

func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(doc)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

func str(m any, path ...string) string {
	s, _ := get(m, path...).(string)
	return s
}

func list(m any, path ...string) []any {
	l, _ := get(m, path...).([]any)
	return l
}

// loadManifests decodes every document of every YAML file under dir.
func loadManifests(t *testing.T, dir string) map[string][]doc {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	out := map[string][]doc{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var d doc
			err := dec.Decode(&d)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if d != nil {
				out[filepath.Base(f)] = append(out[filepath.Base(f)], d)
			}
		}
	}
	return out
}

// secretish are names of values that must never be literal secrets.
var secretish = regexp.MustCompile(`(?i)(password|passwd|secret|token|api_key|codec_key|codec-key|private)`)

// refOK reports whether v may stand where a secret could: a secret
// reference, a file path, or empty.
func refOK(v string) bool {
	return v == "" || strings.HasPrefix(v, "file:/") || strings.HasPrefix(v, "env:") || strings.HasPrefix(v, "/")
}

// mounted reports whether path lies under one of the container's mounts of a
// volume of the given kinds ("secret", "configMap").
func mounted(pod, container doc, path string, kinds ...string) bool {
	for _, m := range list(container, "volumeMounts") {
		mp := strings.TrimSuffix(str(m, "mountPath"), "/")
		if !strings.HasPrefix(path, mp+"/") {
			continue
		}
		for _, v := range list(pod, "volumes") {
			if str(v, "name") != str(m, "name") {
				continue
			}
			for _, k := range kinds {
				if get(v, k) != nil {
					return true
				}
			}
		}
	}
	return false
}

// checkKubernetesManifests checks every document under deploy/kubernetes:
// apiVersion, kind, metadata.name and namespace; Deployments whose selector
// selects their pods, pods that run as non-root with a read-only root, no
// privilege escalation and no service-account token, images pinned to a
// version (never "latest" or untagged), flags the programs accept, volume
// mounts of declared volumes, secrets only as references (no Secret object
// with data, no literal in env or args); Services that select a
// Deployment's pods on a named container port; the recipe ConfigMap is a
// valid recipe; each of its sites has a worker Deployment; every file the
// recipe references is mounted from a Secret in every worker (workers
// resolve other sites' secrets too) and the webhook's auth secrets and the
// recipe itself are mounted in the webhook.
func checkKubernetesManifests(t *testing.T, programs *helpCache) {
	manifests := loadManifests(t, "kubernetes")
	var deployments, services []doc
	var rcp *recipe.Recipe
	for file, docs := range manifests {
		for i, d := range docs {
			where := file + "#" + string(rune('0'+i))
			kind, name := str(d, "kind"), str(d, "metadata", "name")
			if str(d, "apiVersion") == "" || kind == "" || name == "" {
				t.Errorf("%s: apiVersion, kind and metadata.name are required", where)
				continue
			}
			where += " " + kind + "/" + name
			if kind != "Namespace" && str(d, "metadata", "namespace") != "drover" {
				t.Errorf("%s: metadata.namespace must be drover", where)
			}
			switch kind {
			case "Secret":
				if get(d, "data") != nil || get(d, "stringData") != nil {
					t.Errorf("%s: a Secret with values; create Secrets with kubectl, never in the repository", where)
				}
			case "Deployment":
				deployments = append(deployments, d)
			case "Service":
				services = append(services, d)
			case "ConfigMap":
				if y := str(d, "data", "recipe.yaml"); y != "" {
					r, err := recipe.Parse([]byte(y))
					if err != nil {
						t.Fatalf("%s: recipe.yaml: %v", where, err)
					}
					rcp = r
				}
			}
		}
	}
	if rcp == nil {
		t.Fatal("no ConfigMap holds a recipe.yaml")
	}
	if len(deployments) == 0 || len(services) == 0 {
		t.Fatalf("%d Deployments and %d Services; want both", len(deployments), len(services))
	}
	var recipeFiles []string
	for _, s := range rcp.Sites {
		for _, ref := range []recipe.SecretRef{s.DB.Password, s.DB.Stream.Password, s.DB.Apply.Password, s.DB.TLS.Key} {
			if p, ok := strings.CutPrefix(string(ref), "file:"); ok {
				recipeFiles = append(recipeFiles, p)
			}
		}
		for _, p := range []string{s.DB.TLS.CA, s.DB.TLS.Cert} {
			if p != "" {
				recipeFiles = append(recipeFiles, p)
			}
		}
	}
	if p, ok := strings.CutPrefix(string(rcp.DNS.TSIG.Secret), "file:"); ok {
		recipeFiles = append(recipeFiles, p)
	}
	slices.Sort(recipeFiles)
	recipeFiles = slices.Compact(recipeFiles)
	workerSites := map[string]bool{}

	for _, d := range deployments {
		name := str(d, "metadata", "name")
		sel, _ := get(d, "spec", "selector", "matchLabels").(doc)
		labels, _ := get(d, "spec", "template", "metadata", "labels").(doc)
		if len(sel) == 0 {
			t.Errorf("%s: no spec.selector.matchLabels", name)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s: selector %s=%v does not select its own pods", name, k, v)
			}
		}
		pod, _ := get(d, "spec", "template", "spec").(doc)
		if get(pod, "automountServiceAccountToken") != false {
			t.Errorf("%s: automountServiceAccountToken must be false (Drover does not use the Kubernetes API)", name)
		}
		if get(pod, "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: securityContext.runAsNonRoot must be true", name)
		}
		volumes := map[string]bool{}
		for _, v := range list(pod, "volumes") {
			volumes[str(v, "name")] = true
		}
		containers := append(list(pod, "initContainers"), list(pod, "containers")...)
		if len(containers) == 0 {
			t.Errorf("%s: no containers", name)
		}
		for _, ci := range containers {
			c, _ := ci.(doc)
			cn := name + "/" + str(c, "name")
			img := str(c, "image")
			repo, tag, hasTag := strings.Cut(img[strings.LastIndex(img, "/")+1:], ":")
			if img == "" || repo == "" || (!strings.Contains(img, "@sha256:") && (!hasTag || tag == "" || tag == "latest")) {
				t.Errorf("%s: image %q is not pinned to a version or digest", cn, img)
			}
			if get(c, "securityContext", "allowPrivilegeEscalation") != false || get(c, "securityContext", "readOnlyRootFilesystem") != true {
				t.Errorf("%s: want allowPrivilegeEscalation false and readOnlyRootFilesystem true", cn)
			}
			if !slices.Contains(list(c, "securityContext", "capabilities", "drop"), any("ALL")) {
				t.Errorf("%s: capabilities must drop ALL", cn)
			}
			for _, m := range list(c, "volumeMounts") {
				if !volumes[str(m, "name")] {
					t.Errorf("%s: mounts undeclared volume %q", cn, str(m, "name"))
				}
			}
			var argv []string
			for _, a := range append(list(c, "command"), list(c, "args")...) {
				s, _ := a.(string)
				argv = append(argv, s)
			}
			if len(argv) == 0 {
				t.Errorf("%s: no command", cn)
				continue
			}
			program := filepath.Base(argv[0])
			for _, u := range programs.unknownFlags(t, program, argv[1:]) {
				t.Errorf("%s: unknown flag %s", cn, u)
			}
			// Secrets: env and flags hold references or paths only, and
			// every file they name is mounted from a Secret.
			var files []string
			check := func(what, key, val string) {
				if secretish.MatchString(key) && !refOK(val) {
					t.Errorf("%s: %s %s holds a literal value; use a file: reference to a mounted Secret", cn, what, key)
				}
				if p, ok := strings.CutPrefix(val, "file:"); ok {
					files = append(files, p)
				} else if strings.HasSuffix(key, "_PATH") {
					files = append(files, val)
				}
			}
			for _, e := range list(c, "env") {
				check("env", str(e, "name"), str(e, "value"))
			}
			for _, a := range argv[1:] {
				if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
					check("flag", k, v)
				}
			}
			for i, a := range argv {
				if a == "--site" && i+1 < len(argv) {
					workerSites[argv[i+1]] = true
				} else if s, ok := strings.CutPrefix(a, "--site="); ok {
					workerSites[s] = true
				}
			}
			switch program {
			case "drover-worker":
				files = append(files, recipeFiles...)
			case "drover":
				for i, a := range argv {
					if a == "-f" && i+1 < len(argv) && !mounted(pod, c, argv[i+1], "configMap") {
						t.Errorf("%s: recipe %s is not mounted from a ConfigMap", cn, argv[i+1])
					}
				}
				if argv[1] == "webhook" {
					for _, ref := range []recipe.SecretRef{rcp.Alerts.Auth.BearerToken, rcp.Alerts.Auth.HMACSecret} {
						if p, ok := strings.CutPrefix(string(ref), "file:"); ok {
							files = append(files, p)
						}
					}
				}
			}
			for _, f := range files {
				if !mounted(pod, c, f, "secret") {
					t.Errorf("%s: %s is not under a mounted Secret", cn, f)
				}
			}
		}
	}
	for _, s := range rcp.Sites {
		if !workerSites[s.Name] {
			t.Errorf("site %s of the recipe has no worker Deployment (drover-worker --site=%s)", s.Name, s.Name)
		}
	}
	for _, s := range services {
		name := str(s, "metadata", "name")
		sel, _ := get(s, "spec", "selector").(doc)
		var target doc
		for _, d := range deployments {
			labels, _ := get(d, "spec", "template", "metadata", "labels").(doc)
			ok := len(sel) > 0
			for k, v := range sel {
				ok = ok && labels[k] == v
			}
			if ok {
				target = d
			}
		}
		if target == nil {
			t.Errorf("Service %s selects no Deployment's pods", name)
			continue
		}
		var ports []string
		for _, c := range list(target, "spec", "template", "spec", "containers") {
			for _, p := range list(c, "ports") {
				ports = append(ports, str(p, "name"))
			}
		}
		for _, p := range list(s, "spec", "ports") {
			if tp := str(p, "targetPort"); !slices.Contains(ports, tp) {
				t.Errorf("Service %s: targetPort %q is not a named port of %s", name, tp, str(target, "metadata", "name"))
			}
		}
	}
}

// unit is a systemd unit file as section → key → values.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// checkSystemdUnits checks every unit under deploy/systemd: it runs one of
// Drover's programs as an unprivileged user with the hardening options set,
// every flag it passes exists in that program's flag set, every variable it
// expands is documented in drover.env.example, the worker template passes
// its instance as --site, and the sysusers file creates the unit's user.
func checkSystemdUnits(t *testing.T, programs *helpCache) {
	units, err := filepath.Glob(filepath.Join("systemd", "*.service"))
	if err != nil || len(units) == 0 {
		t.Fatalf("no units (%v)", err)
	}
	envExample, err := os.ReadFile(filepath.Join("systemd", "drover.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	sysusers, err := os.ReadFile(filepath.Join("systemd", "drover.sysusers.conf"))
	if err != nil {
		t.Fatal(err)
	}
	hardening := map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": ""}
	varRE := regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)\}`)
	for _, path := range units {
		name := filepath.Base(path)
		u := parseUnit(t, path)
		svc := u["Service"]
		if svc == nil || u["Unit"] == nil || u["Install"] == nil {
			t.Errorf("%s: want [Unit], [Service] and [Install]", name)
			continue
		}
		for k, want := range hardening {
			if got := svc[k]; len(got) != 1 || got[0] != want {
				t.Errorf("%s: %s=%v, want %q", name, k, got, want)
			}
		}
		user := first(svc["User"])
		if first(svc["DynamicUser"]) != "yes" && (user == "" || user == "root") {
			t.Errorf("%s: runs as %q; want User=drover or DynamicUser=yes", name, user)
		}
		if user != "" && !regexp.MustCompile(`(?m)^u\s+`+regexp.QuoteMeta(user)+`\s`).Match(sysusers) {
			t.Errorf("%s: user %s is not created by drover.sysusers.conf", name, user)
		}
		if len(svc["EnvironmentFile"]) == 0 {
			t.Errorf("%s: no EnvironmentFile (settings and secret references)", name)
		}
		for _, ef := range svc["EnvironmentFile"] {
			if p := strings.TrimPrefix(ef, "-"); !filepath.IsAbs(p) {
				t.Errorf("%s: EnvironmentFile %q is not absolute", name, ef)
			}
		}
		exec := svc["ExecStart"]
		if len(exec) != 1 {
			t.Errorf("%s: want one ExecStart, got %d", name, len(exec))
			continue
		}
		for _, m := range varRE.FindAllStringSubmatch(exec[0], -1) {
			if !regexp.MustCompile(`(?m)^#?\s*` + m[1] + `=`).Match(envExample) {
				t.Errorf("%s: ExecStart expands ${%s}, which drover.env.example does not document", name, m[1])
			}
		}
		argv := strings.Fields(exec[0])
		program := filepath.Base(argv[0])
		if !filepath.IsAbs(argv[0]) || (program != "drover" && program != "drover-worker") {
			t.Errorf("%s: ExecStart runs %q; want /…/drover or /…/drover-worker", name, argv[0])
			continue
		}
		for _, bad := range programs.unknownFlags(t, program, argv[1:]) {
			t.Errorf("%s: unknown flag %s", name, bad)
		}
		if strings.Contains(name, "@") && !slices.Contains(argv, "--site=%i") {
			t.Errorf("%s: a template unit must pass its instance as --site=%%i", name)
		}
		for _, a := range argv {
			if k, v, ok := strings.Cut(a, "="); ok && secretish.MatchString(k) && !refOK(v) {
				t.Errorf("%s: %s holds a literal value; use a file: reference", name, k)
			}
		}
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// TestIAMPolicyCoversTheAPICalls checks deploy/aws/iam-policy.json against
// the code: every method of the EC2 and Route 53 client interfaces the
// provider and the DNS driver call is allowed, and nothing else is (but
// ec2:CreateTags, which tagging at launch needs).
func TestIAMPolicyCoversTheAPICalls(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("aws", "iam-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Version   string
		Statement []struct {
			Effect string
			Action any
		}
	}
	if err := json.Unmarshal(b, &policy); err != nil {
		t.Fatal(err)
	}
	if policy.Version != "2012-10-17" {
		t.Errorf("Version %q, want 2012-10-17", policy.Version)
	}
	allowed := map[string]bool{}
	for _, s := range policy.Statement {
		if s.Effect != "Allow" {
			continue
		}
		switch a := s.Action.(type) {
		case string:
			allowed[a] = true
		case []any:
			for _, x := range a {
				allowed[x.(string)] = true
			}
		}
	}
	want := map[string]bool{"ec2:CreateTags": true}
	for prefix, iface := range map[string]reflect.Type{
		"ec2":     reflect.TypeFor[aws.EC2API](),
		"route53": reflect.TypeFor[dns.Route53API](),
	} {
		for i := range iface.NumMethod() {
			want[prefix+":"+iface.Method(i).Name] = true
		}
	}
	for a := range want {
		if !allowed[a] {
			t.Errorf("the code calls %s, which the policy does not allow", a)
		}
	}
	for a := range allowed {
		if !want[a] {
			t.Errorf("the policy allows %s, which the code never calls", a)
		}
	}
}
