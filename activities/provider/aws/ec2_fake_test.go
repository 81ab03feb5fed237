package aws_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ec2NS is the XML namespace of the EC2 API version the SDK speaks.
const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

// EC2 instance state codes and names, as the API reference documents them.
var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

// fakeInstance is one instance the fake EC2 holds.
type fakeInstance struct {
	id, reservation, image, itype, subnet, key, token string
	state                                             string
	sgs                                               []string
	tags                                              map[string]string
	privateIP, publicIP                               string
	launch                                            time.Time
	// settle is how many DescribeInstances calls a transitional state
	// (pending, stopping, shutting-down) lasts.
	settle int
	// hidden is how many tag-filtered DescribeInstances calls do not show
	// a new instance yet (EC2's eventual consistency).
	hidden int
	// failReason, when set, makes a pending instance end terminated with
	// this state reason code instead of running.
	failReason string
	reasonCode string
	reasonMsg  string
}

// fakeCall is one API request the fake served.
type fakeCall struct {
	Action string
	Form   url.Values
}

// fakeEC2 speaks the EC2 Query API (form-encoded POST, XML answers in the
// EC2 namespace) for RunInstances, DescribeInstances, StartInstances,
// StopInstances and TerminateInstances, with the documented request
// parameters, response shapes, error document and error codes. It checks
// that every request is SigV4-signed for ec2 in its region with the
// expected access key, keeps instances with tags and state transitions,
// honours ClientToken idempotency, and records every request.
type fakeEC2 struct {
	t      *testing.T
	srv    *httptest.Server
	region string
	akid   string

	mu        sync.Mutex
	instances []*fakeInstance
	tokens    map[string]fakeToken // ClientToken → reservation and parameter hash
	calls     []fakeCall
	seq       int
	// settle is the transitional-state length given to new transitions.
	settle int
	// hide is fakeInstance.hidden for new instances.
	hide int
	// limit, when > 0, is the most live instances the account may run
	// (InstanceLimitExceeded beyond it).
	limit int
	// failLaunch is fakeInstance.failReason for new instances.
	failLaunch string
	// amis and templates are the images and launch templates that exist.
	amis      map[string]bool
	templates map[string]string // id or name → its AMI
	// fail, when set, may answer a request with an error instead: it gets
	// the action and returns (HTTP status, code, message) or (0, "", "").
	fail func(action string) (int, string, string)
	// dropRun makes the next RunInstances do its work and then answer
	// 500 InternalError, as when the answer is lost on the way.
	dropRun bool
}

type fakeToken struct {
	reservation string
	params      string
}

func newFakeEC2(t *testing.T, region string) *fakeEC2 {
	f := &fakeEC2{t: t, region: region, akid: testAccessKey, tokens: map[string]fakeToken{}, settle: 1,
		amis: map[string]bool{testAMI: true}, templates: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// put adds a running instance directly, as if launched outside Drover.
func (f *fakeEC2) put(tags map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.newInstance("r-outside", testAMI, "t3.micro", "subnet-0aaaaaaaaaaaaaaaa", "", nil, tags)
	i.state, i.settle, i.hidden = "running", 0, 0
	return i.id
}

// stateOf returns an instance's state.
func (f *fakeEC2) stateOf(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, i := range f.instances {
		if i.id == id {
			return i.state
		}
	}
	return ""
}

// actions returns the actions served so far, in order.
func (f *fakeEC2) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Action)
	}
	return out
}

// requests returns the requests of one action served so far.
func (f *fakeEC2) requests(action string) []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []url.Values
	for _, c := range f.calls {
		if c.Action == action {
			out = append(out, c.Form)
		}
	}
	return out
}

// count returns how many requests of action were served.
func (f *fakeEC2) count(action string) int { return len(f.requests(action)) }

var sigV4EC2 = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([a-z0-9-]+)/ec2/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$`)

func (f *fakeEC2) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		f.t.Errorf("ec2 fake: unexpected request %s %s (%s)", r.Method, r.URL, r.Header.Get("Content-Type"))
		f.error(w, http.StatusBadRequest, "InvalidAction", "not a Query API request")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		f.error(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	m := sigV4EC2.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || r.Header.Get("X-Amz-Date") == "" || m[2] != f.region {
		f.t.Errorf("ec2 fake: request is not SigV4-signed for ec2/%s: %q", f.region, r.Header.Get("Authorization"))
		f.error(w, http.StatusBadRequest, "IncompleteSignature", "not signed")
		return
	}
	if m[1] != f.akid {
		f.error(w, http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
		return
	}
	action := form.Get("Action")
	if form.Get("Version") != "2016-11-15" {
		f.t.Errorf("ec2 fake: %s with API version %q", action, form.Get("Version"))
	}
	f.calls = append(f.calls, fakeCall{action, form})
	if f.fail != nil {
		if status, code, msg := f.fail(action); status != 0 {
			f.error(w, status, code, msg)
			return
		}
	}
	switch action {
	case "RunInstances":
		f.run(w, form)
	case "DescribeInstances":
		f.describe(w, form)
	case "StartInstances", "StopInstances", "TerminateInstances":
		f.change(w, action, form)
	default:
		f.t.Errorf("ec2 fake: unexpected action %q", action)
		f.error(w, http.StatusBadRequest, "InvalidAction", "The action "+action+" is not valid for this web service.")
	}
}

// list reads a flat list parameter: Name.1, Name.2, …
func list(form url.Values, name string) []string {
	var out []string
	for n := 1; ; n++ {
		v, ok := form[name+"."+strconv.Itoa(n)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func (f *fakeEC2) newInstance(reservation, image, itype, subnet, key string, sgs []string, tags map[string]string) *fakeInstance {
	f.seq++
	i := &fakeInstance{
		id: fmt.Sprintf("i-%017x", 0xd0000+f.seq), reservation: reservation, image: image, itype: itype, subnet: subnet, key: key,
		state: "pending", sgs: sgs, tags: tags, settle: f.settle, hidden: f.hide, failReason: f.failLaunch,
		privateIP: fmt.Sprintf("10.0.%d.%d", f.seq/250, f.seq%250+4), publicIP: fmt.Sprintf("203.0.113.%d", f.seq%250+1),
		launch: time.Date(2026, 11, 1, 12, 0, f.seq, 0, time.UTC),
	}
	f.instances = append(f.instances, i)
	return i
}

func (f *fakeEC2) run(w http.ResponseWriter, form url.Values) {
	minCount, err1 := strconv.Atoi(form.Get("MinCount"))
	maxCount, err2 := strconv.Atoi(form.Get("MaxCount"))
	if err1 != nil || err2 != nil || minCount < 1 || maxCount < minCount {
		f.error(w, http.StatusBadRequest, "InvalidParameterValue", "MinCount and MaxCount must be positive, MinCount <= MaxCount")
		return
	}
	// Parameters other than the token identify the request for idempotency.
	keys := make([]string, 0, len(form))
	for k := range form {
		if k != "ClientToken" {
			keys = append(keys, k+"="+strings.Join(form[k], ","))
		}
	}
	sort.Strings(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "&")))
	params := hex.EncodeToString(sum[:])
	token := form.Get("ClientToken")
	if prev, ok := f.tokens[token]; ok && token != "" {
		if prev.params != params {
			f.error(w, http.StatusBadRequest, "IdempotentParameterMismatch", "The client token you have provided is associated with a resource that is already deleted or has different parameters.")
			return
		}
		f.runResponse(w, prev.reservation)
		return
	}
	image := form.Get("ImageId")
	itype := form.Get("InstanceType")
	if lt := firstNonEmpty(form.Get("LaunchTemplate.LaunchTemplateId"), form.Get("LaunchTemplate.LaunchTemplateName")); lt != "" {
		ami, ok := f.templates[lt]
		if !ok {
			f.error(w, http.StatusBadRequest, "InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name "+lt+", does not exist.")
			return
		}
		image, itype = firstNonEmpty(image, ami), firstNonEmpty(itype, "t3.micro")
	}
	switch {
	case image == "":
		f.error(w, http.StatusBadRequest, "MissingParameter", "The request must contain the parameter ImageId")
		return
	case !f.amis[image]:
		f.error(w, http.StatusBadRequest, "InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", image))
		return
	}
	if f.limit > 0 {
		live := 0
		for _, i := range f.instances {
			if i.state != "terminated" && i.state != "shutting-down" {
				live++
			}
		}
		if live+minCount > f.limit {
			f.error(w, http.StatusBadRequest, "InstanceLimitExceeded",
				fmt.Sprintf("You have requested more instances (%d) than your current instance limit of %d allows for the specified instance type.", live+minCount, f.limit))
			return
		}
	}
	tags := map[string]string{}
	sawVolume := false
	for n := 1; ; n++ {
		p := fmt.Sprintf("TagSpecification.%d.", n)
		rt, ok := form[p+"ResourceType"]
		if !ok {
			break
		}
		if rt[0] == "volume" {
			sawVolume = true
		}
		if rt[0] != "instance" {
			continue
		}
		for m := 1; ; m++ {
			k, ok := form[fmt.Sprintf("%sTag.%d.Key", p, m)]
			if !ok {
				break
			}
			tags[k[0]] = form.Get(fmt.Sprintf("%sTag.%d.Value", p, m))
		}
	}
	if !sawVolume {
		f.t.Errorf("ec2 fake: RunInstances without a volume tag specification")
	}
	f.seq++
	reservation := fmt.Sprintf("r-%017x", 0xe0000+f.seq)
	for n := 0; n < maxCount; n++ {
		i := f.newInstance(reservation, image, itype, form.Get("SubnetId"), form.Get("KeyName"), list(form, "SecurityGroupId"), maps(tags))
		i.token = token
	}
	if token != "" {
		f.tokens[token] = fakeToken{reservation, params}
	}
	if f.dropRun {
		f.dropRun = false
		f.error(w, http.StatusInternalServerError, "InternalError", "An internal error has occurred.")
		return
	}
	f.runResponse(w, reservation)
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// XML shapes of the responses, as the EC2 API reference documents them.
type (
	xState struct {
		Code int    `xml:"code"`
		Name string `xml:"name"`
	}
	xTag struct {
		Key   string `xml:"key"`
		Value string `xml:"value"`
	}
	xGroup struct {
		GroupID string `xml:"groupId"`
	}
	xReason struct {
		Code    string `xml:"code"`
		Message string `xml:"message"`
	}
	xInstance struct {
		InstanceID   string   `xml:"instanceId"`
		ImageID      string   `xml:"imageId"`
		State        xState   `xml:"instanceState"`
		PrivateIP    string   `xml:"privateIpAddress,omitempty"`
		PublicIP     string   `xml:"ipAddress,omitempty"`
		KeyName      string   `xml:"keyName,omitempty"`
		InstanceType string   `xml:"instanceType"`
		LaunchTime   string   `xml:"launchTime"`
		SubnetID     string   `xml:"subnetId,omitempty"`
		ClientToken  string   `xml:"clientToken,omitempty"`
		StateReason  *xReason `xml:"stateReason,omitempty"`
		Groups       []xGroup `xml:"groupSet>item"`
		Tags         []xTag   `xml:"tagSet>item"`
	}
	xReservation struct {
		ReservationID string      `xml:"reservationId"`
		OwnerID       string      `xml:"ownerId"`
		Instances     []xInstance `xml:"instancesSet>item"`
	}
	xStateChange struct {
		InstanceID    string `xml:"instanceId"`
		CurrentState  xState `xml:"currentState"`
		PreviousState xState `xml:"previousState"`
	}
)

func (i *fakeInstance) xml() xInstance {
	x := xInstance{InstanceID: i.id, ImageID: i.image, State: xState{stateCodes[i.state], i.state}, KeyName: i.key,
		InstanceType: i.itype, LaunchTime: i.launch.Format("2006-01-02T15:04:05.000Z"), SubnetID: i.subnet, ClientToken: i.token}
	if i.state != "terminated" {
		x.PrivateIP = i.privateIP
	}
	if i.state == "running" {
		x.PublicIP = i.publicIP
	}
	if i.reasonCode != "" {
		x.StateReason = &xReason{i.reasonCode, i.reasonMsg}
	}
	for _, g := range i.sgs {
		x.Groups = append(x.Groups, xGroup{g})
	}
	keys := make([]string, 0, len(i.tags))
	for k := range i.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x.Tags = append(x.Tags, xTag{k, i.tags[k]})
	}
	return x
}

func (f *fakeEC2) runResponse(w http.ResponseWriter, reservation string) {
	var out []xInstance
	for _, i := range f.instances {
		if i.reservation == reservation {
			out = append(out, i.xml())
		}
	}
	f.write(w, struct {
		XMLName       xml.Name    `xml:"RunInstancesResponse"`
		Xmlns         string      `xml:"xmlns,attr"`
		RequestID     string      `xml:"requestId"`
		ReservationID string      `xml:"reservationId"`
		OwnerID       string      `xml:"ownerId"`
		Instances     []xInstance `xml:"instancesSet>item"`
	}{Xmlns: ec2NS, RequestID: f.requestID(), ReservationID: reservation, OwnerID: "123456789012", Instances: out})
}

// tick advances every transitional state by one DescribeInstances call.
func (f *fakeEC2) tick() {
	for _, i := range f.instances {
		switch i.state {
		case "pending", "stopping", "shutting-down":
		default:
			continue
		}
		if i.settle > 0 {
			i.settle--
			continue
		}
		switch i.state {
		case "pending":
			if i.failReason != "" {
				i.state, i.reasonCode, i.reasonMsg = "terminated", i.failReason, "Server error while launching: "+i.failReason
			} else {
				i.state = "running"
			}
		case "stopping":
			i.state, i.reasonCode, i.reasonMsg = "stopped", "Client.UserInitiatedShutdown", "User initiated shutdown"
		case "shutting-down":
			i.state = "terminated"
		}
	}
}

var knownFilters = regexp.MustCompile(`^(tag:.+|tag-key|instance-state-name|instance-id)$`)

func (f *fakeEC2) describe(w http.ResponseWriter, form url.Values) {
	f.tick()
	ids := list(form, "InstanceId")
	if len(ids) > 0 && form.Get("MaxResults") != "" {
		f.error(w, http.StatusBadRequest, "InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		return
	}
	type filter struct {
		name   string
		values []string
	}
	var filters []filter
	for n := 1; ; n++ {
		name, ok := form[fmt.Sprintf("Filter.%d.Name", n)]
		if !ok {
			break
		}
		if !knownFilters.MatchString(name[0]) {
			f.error(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", name[0]))
			return
		}
		filters = append(filters, filter{name[0], list(form, fmt.Sprintf("Filter.%d.Value", n))})
	}
	var matched []*fakeInstance
	for _, id := range ids {
		found := false
		for _, i := range f.instances {
			if i.id == id {
				matched, found = append(matched, i), true
			}
		}
		if !found {
			f.error(w, http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
			return
		}
	}
	if len(ids) == 0 {
		matched = slices.Clone(f.instances)
	}
	matched = slices.DeleteFunc(matched, func(i *fakeInstance) bool {
		for _, fl := range filters {
			var v string
			var has bool
			switch {
			case strings.HasPrefix(fl.name, "tag:"):
				v, has = i.tags[strings.TrimPrefix(fl.name, "tag:")]
			case fl.name == "instance-state-name":
				v, has = i.state, true
			case fl.name == "instance-id":
				v, has = i.id, true
			}
			if !has || !slices.Contains(fl.values, v) {
				return true
			}
		}
		if len(filters) > 0 && i.hidden > 0 {
			i.hidden--
			return true
		}
		return false
	})
	// Paging: MaxResults 5-1000, NextToken is an offset.
	start, size := 0, len(matched)
	if s := form.Get("MaxResults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 5 || n > 1000 {
			f.error(w, http.StatusBadRequest, "InvalidParameterValue", "MaxResults must be 5-1000")
			return
		}
		size = n
	}
	if tok := form.Get("NextToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
		if err != nil {
			f.error(w, http.StatusBadRequest, "InvalidPaginationToken", "bad token")
			return
		}
		start = n
	}
	end := min(start+size, len(matched))
	next := ""
	if end < len(matched) {
		next = "page-" + strconv.Itoa(end)
	}
	var res []xReservation
	for _, i := range matched[start:end] {
		if len(res) == 0 || res[len(res)-1].ReservationID != i.reservation {
			res = append(res, xReservation{ReservationID: i.reservation, OwnerID: "123456789012"})
		}
		res[len(res)-1].Instances = append(res[len(res)-1].Instances, i.xml())
	}
	f.write(w, struct {
		XMLName      xml.Name       `xml:"DescribeInstancesResponse"`
		Xmlns        string         `xml:"xmlns,attr"`
		RequestID    string         `xml:"requestId"`
		Reservations []xReservation `xml:"reservationSet>item"`
		NextToken    string         `xml:"nextToken,omitempty"`
	}{Xmlns: ec2NS, RequestID: f.requestID(), Reservations: res, NextToken: next})
}

func (f *fakeEC2) change(w http.ResponseWriter, action string, form url.Values) {
	ids := list(form, "InstanceId")
	if len(ids) == 0 {
		f.error(w, http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId")
		return
	}
	var targets []*fakeInstance
	for _, id := range ids {
		idx := slices.IndexFunc(f.instances, func(i *fakeInstance) bool { return i.id == id })
		if idx < 0 {
			f.error(w, http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
			return
		}
		i := f.instances[idx]
		ok := true
		switch action {
		case "StartInstances":
			ok = i.state == "stopped" || i.state == "running" || i.state == "pending"
		case "StopInstances":
			ok = i.state == "running" || i.state == "stopped" || i.state == "stopping"
		}
		if !ok {
			f.error(w, http.StatusBadRequest, "IncorrectInstanceState",
				fmt.Sprintf("The instance '%s' is not in a state from which it can be %s.", id, map[string]string{
					"StartInstances": "started", "StopInstances": "stopped"}[action]))
			return
		}
		targets = append(targets, i)
	}
	var out []xStateChange
	for _, i := range targets {
		prev := i.state
		switch {
		case action == "StartInstances" && i.state == "stopped":
			i.state, i.settle, i.reasonCode, i.reasonMsg = "pending", f.settle, "", ""
		case action == "StopInstances" && i.state == "running":
			i.state, i.settle = "stopping", f.settle
		case action == "TerminateInstances" && i.state != "terminated" && i.state != "shutting-down":
			i.state, i.settle = "shutting-down", f.settle
		}
		out = append(out, xStateChange{i.id, xState{stateCodes[i.state], i.state}, xState{stateCodes[prev], prev}})
	}
	f.write(w, struct {
		XMLName   xml.Name       `xml:""`
		Xmlns     string         `xml:"xmlns,attr"`
		RequestID string         `xml:"requestId"`
		Instances []xStateChange `xml:"instancesSet>item"`
	}{XMLName: xml.Name{Local: action + "Response"}, Xmlns: ec2NS, RequestID: f.requestID(), Instances: out})
}

func (f *fakeEC2) requestID() string {
	return fmt.Sprintf("59dbff89-35bd-4eac-99ed-%012d", len(f.calls))
}

func (f *fakeEC2) write(w http.ResponseWriter, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		f.t.Errorf("ec2 fake: %v", err)
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	io.WriteString(w, xml.Header)
	w.Write(b)
}

// error writes EC2's error document.
func (f *fakeEC2) error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Response><Errors><Error><Code>%s</Code><Message>`, code)
	xml.EscapeText(&b, []byte(msg))
	fmt.Fprintf(&b, `</Message></Error></Errors><RequestID>%s</RequestID></Response>`, f.requestID())
	io.WriteString(w, b.String())
}
