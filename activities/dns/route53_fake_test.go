package dns_test

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// route53NS is the XML namespace of Route 53 API version 2013-04-01.
const route53NS = "https://route53.amazonaws.com/doc/2013-04-01/"

// The Route 53 REST-XML shapes the fake reads and writes, as the API
// reference documents them.
type (
	r53ResourceRecord struct {
		Value string `xml:"Value"`
	}
	r53AliasTarget struct {
		HostedZoneId         string `xml:"HostedZoneId"`
		DNSName              string `xml:"DNSName"`
		EvaluateTargetHealth bool   `xml:"EvaluateTargetHealth"`
	}
	r53RecordSet struct {
		Name            string              `xml:"Name"`
		Type            string              `xml:"Type"`
		SetIdentifier   string              `xml:"SetIdentifier,omitempty"`
		TTL             *int64              `xml:"TTL,omitempty"`
		ResourceRecords []r53ResourceRecord `xml:"ResourceRecords>ResourceRecord,omitempty"`
		AliasTarget     *r53AliasTarget     `xml:"AliasTarget,omitempty"`
	}
	r53Change struct {
		Action            string       `xml:"Action"`
		ResourceRecordSet r53RecordSet `xml:"ResourceRecordSet"`
	}
	r53ChangeRequest struct {
		XMLName     xml.Name    `xml:"ChangeResourceRecordSetsRequest"`
		Comment     string      `xml:"ChangeBatch>Comment"`
		Changes     []r53Change `xml:"ChangeBatch>Changes>Change"`
		namespace   string
		contentType string
	}
	r53ChangeInfo struct {
		Id          string `xml:"Id"`
		Status      string `xml:"Status"`
		SubmittedAt string `xml:"SubmittedAt"`
		Comment     string `xml:"Comment,omitempty"`
	}
)

// fakeRoute53 speaks the Route 53 API for ListResourceRecordSets,
// ChangeResourceRecordSets and GetChange over one hosted zone, checks that
// every request is SigV4-signed for route53/us-east-1 with the expected
// access key, and records the change batches it accepted.
type fakeRoute53 struct {
	t      *testing.T
	srv    *httptest.Server
	zoneID string
	akid   string // the only access key accepted

	mu      sync.Mutex
	records map[string]r53RecordSet // by lower-case name + "/" + type
	changes map[string]int          // change id → GetChange calls left before INSYNC
	// insyncAfter is how many GetChange calls a new change answers PENDING.
	insyncAfter int
	// fail, when set, may answer a request with an error instead: it gets
	// the operation name and returns (HTTP status, XML body) or (0, "").
	fail func(op string) (int, string)

	lists, gets int
	batches     []r53ChangeRequest
	listQueries []string
}

func newFakeRoute53(t *testing.T, zoneID string) *fakeRoute53 {
	f := &fakeRoute53{t: t, zoneID: zoneID, akid: testAccessKey, records: map[string]r53RecordSet{}, changes: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// put stores a record set directly, as if created in the console.
func (f *fakeRoute53) put(rs r53RecordSet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records[strings.ToLower(rs.Name)+"/"+rs.Type] = rs
}

// snapshot returns how many requests of each kind were served and the
// change batches accepted so far.
func (f *fakeRoute53) snapshot() (lists, gets int, batches []r53ChangeRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.gets, slices.Clone(f.batches)
}

var (
	rrsetPath  = regexp.MustCompile(`^/2013-04-01/hostedzone/([^/]+)/rrset/?$`)
	changePath = regexp.MustCompile(`^/2013-04-01/change/([^/]+)$`)
	sigV4      = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/us-east-1/route53/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$`)
)

func (f *fakeRoute53) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	m := sigV4.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || r.Header.Get("X-Amz-Date") == "" {
		f.t.Errorf("route53 fake: request %s %s is not SigV4-signed for route53/us-east-1: %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		f.error(w, http.StatusForbidden, "IncompleteSignature", "not signed")
		return
	}
	if m[1] != f.akid {
		f.error(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	var op string
	var zone string
	switch {
	case r.Method == http.MethodGet && rrsetPath.MatchString(r.URL.Path):
		op, zone = "ListResourceRecordSets", rrsetPath.FindStringSubmatch(r.URL.Path)[1]
	case r.Method == http.MethodPost && rrsetPath.MatchString(r.URL.Path):
		op, zone = "ChangeResourceRecordSets", rrsetPath.FindStringSubmatch(r.URL.Path)[1]
	case r.Method == http.MethodGet && changePath.MatchString(r.URL.Path):
		op = "GetChange"
	default:
		f.t.Errorf("route53 fake: unexpected request %s %s", r.Method, r.URL)
		f.error(w, http.StatusNotFound, "UnknownOperationException", "unknown operation")
		return
	}
	if f.fail != nil {
		if status, xmlBody := f.fail(op); status != 0 {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(status)
			io.WriteString(w, xmlBody)
			return
		}
	}
	if zone != "" && zone != f.zoneID {
		f.error(w, http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found with ID: "+zone)
		return
	}
	switch op {
	case "ListResourceRecordSets":
		f.list(w, r)
	case "ChangeResourceRecordSets":
		f.change(w, r, body)
	case "GetChange":
		f.getChange(w, changePath.FindStringSubmatch(r.URL.Path)[1])
	}
}

func (f *fakeRoute53) list(w http.ResponseWriter, r *http.Request) {
	f.lists++
	q := r.URL.Query()
	f.listQueries = append(f.listQueries, q.Encode())
	start, typ := strings.ToLower(q.Get("name")), q.Get("type")
	if typ != "" && start == "" {
		f.error(w, http.StatusBadRequest, "InvalidInput", "type given without name")
		return
	}
	max := 300
	if s := q.Get("maxitems"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			f.error(w, http.StatusBadRequest, "InvalidInput", "bad maxitems")
			return
		}
		max = n
	}
	keys := make([]string, 0, len(f.records))
	for k := range f.records {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []r53RecordSet
	truncated := false
	for _, k := range keys {
		if k < start+"/"+typ {
			continue
		}
		if len(out) == max {
			truncated = true
			break
		}
		out = append(out, f.records[k])
	}
	f.write(w, struct {
		XMLName     xml.Name       `xml:"ListResourceRecordSetsResponse"`
		Xmlns       string         `xml:"xmlns,attr"`
		Sets        []r53RecordSet `xml:"ResourceRecordSets>ResourceRecordSet"`
		IsTruncated bool           `xml:"IsTruncated"`
		MaxItems    string         `xml:"MaxItems"`
	}{Xmlns: route53NS, Sets: out, IsTruncated: truncated, MaxItems: strconv.Itoa(max)})
}

func (f *fakeRoute53) change(w http.ResponseWriter, r *http.Request, body []byte) {
	var req r53ChangeRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		f.t.Errorf("route53 fake: change body is not a ChangeResourceRecordSetsRequest: %v\n%s", err, body)
		f.error(w, http.StatusBadRequest, "InvalidInput", "malformed body")
		return
	}
	req.namespace, req.contentType = req.XMLName.Space, r.Header.Get("Content-Type")
	if len(req.Changes) == 0 {
		f.error(w, http.StatusBadRequest, "InvalidInput", "no changes")
		return
	}
	// Validate the whole batch first: Route 53 applies all or nothing.
	next := map[string]r53RecordSet{}
	for k, v := range f.records {
		next[k] = v
	}
	var problems []string
	for _, c := range req.Changes {
		rs := c.ResourceRecordSet
		key := strings.ToLower(rs.Name) + "/" + rs.Type
		cur, exists := next[key]
		switch c.Action {
		case "UPSERT":
			next[key] = rs
		case "CREATE":
			if exists {
				problems = append(problems, fmt.Sprintf("Tried to create resource record set [name='%s', type='%s'] but it already exists", rs.Name, rs.Type))
			}
			next[key] = rs
		case "DELETE":
			switch {
			case !exists:
				problems = append(problems, fmt.Sprintf("Tried to delete resource record set [name='%s', type='%s'] but it was not found", rs.Name, rs.Type))
			case !sameRecordSet(cur, rs):
				problems = append(problems, fmt.Sprintf("Tried to delete resource record set [name='%s', type='%s'] but the values provided do not match the current values", rs.Name, rs.Type))
			}
			delete(next, key)
		default:
			problems = append(problems, "unknown action "+c.Action)
		}
	}
	if len(problems) > 0 {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		var b strings.Builder
		fmt.Fprintf(&b, `<?xml version="1.0"?><InvalidChangeBatch xmlns="%s"><Messages>`, route53NS)
		for _, p := range problems {
			b.WriteString("<Message>")
			xml.EscapeText(&b, []byte(p))
			b.WriteString("</Message>")
		}
		b.WriteString(`</Messages><RequestId>fake-request</RequestId></InvalidChangeBatch>`)
		io.WriteString(w, b.String())
		return
	}
	f.records = next
	f.batches = append(f.batches, req)
	id := fmt.Sprintf("C%04dDROVER", len(f.batches))
	f.changes[id] = f.insyncAfter
	status := "PENDING"
	if f.insyncAfter == 0 {
		status = "INSYNC"
	}
	f.write(w, struct {
		XMLName    xml.Name      `xml:"ChangeResourceRecordSetsResponse"`
		Xmlns      string        `xml:"xmlns,attr"`
		ChangeInfo r53ChangeInfo `xml:"ChangeInfo"`
	}{Xmlns: route53NS, ChangeInfo: r53ChangeInfo{Id: "/change/" + id, Status: status, SubmittedAt: time.Now().UTC().Format(time.RFC3339), Comment: req.Comment}})
}

func (f *fakeRoute53) getChange(w http.ResponseWriter, id string) {
	f.gets++
	left, ok := f.changes[id]
	if !ok {
		f.error(w, http.StatusNotFound, "NoSuchChange", "A change with the specified change ID does not exist.")
		return
	}
	status := "INSYNC"
	if left > 0 {
		status = "PENDING"
		f.changes[id] = left - 1
	}
	f.write(w, struct {
		XMLName    xml.Name      `xml:"GetChangeResponse"`
		Xmlns      string        `xml:"xmlns,attr"`
		ChangeInfo r53ChangeInfo `xml:"ChangeInfo"`
	}{Xmlns: route53NS, ChangeInfo: r53ChangeInfo{Id: "/change/" + id, Status: status, SubmittedAt: time.Now().UTC().Format(time.RFC3339)}})
}

func (f *fakeRoute53) write(w http.ResponseWriter, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		f.t.Errorf("route53 fake: %v", err)
	}
	w.Header().Set("Content-Type", "text/xml")
	io.WriteString(w, xml.Header)
	w.Write(b)
}

func (f *fakeRoute53) error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	io.WriteString(w, route53ErrorBody(code, msg))
}

// route53ErrorBody is Route 53's error document.
func route53ErrorBody(code, msg string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0"?><ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code><Message>`, route53NS, code)
	xml.EscapeText(&b, []byte(msg))
	b.WriteString(`</Message></Error><RequestId>fake-request</RequestId></ErrorResponse>`)
	return b.String()
}

func sameRecordSet(a, b r53RecordSet) bool {
	if !strings.EqualFold(a.Name, b.Name) || a.Type != b.Type || (a.TTL == nil) != (b.TTL == nil) || (a.TTL != nil && *a.TTL != *b.TTL) {
		return false
	}
	va, vb := values(a), values(b)
	slices.Sort(va)
	slices.Sort(vb)
	return slices.Equal(va, vb)
}

func values(rs r53RecordSet) []string {
	var out []string
	for _, r := range rs.ResourceRecords {
		out = append(out, r.Value)
	}
	return out
}
