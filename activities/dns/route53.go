package dns

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"
)

// Defaults of the cloud drivers' wait for a change to propagate.
const (
	// DefaultPollInterval is how often Route53 and Designate ask whether a
	// change has propagated.
	DefaultPollInterval = 2 * time.Second
	// DefaultSyncTimeout bounds that wait.
	DefaultSyncTimeout = 3 * time.Minute
)

// Route53API is the part of the Route 53 client the driver uses;
// *route53.Client implements it.
type Route53API interface {
	ListResourceRecordSets(ctx context.Context, in *route53.ListResourceRecordSetsInput, opts ...func(*route53.Options)) (*route53.ListResourceRecordSetsOutput, error)
	ChangeResourceRecordSets(ctx context.Context, in *route53.ChangeResourceRecordSetsInput, opts ...func(*route53.Options)) (*route53.ChangeResourceRecordSetsOutput, error)
	GetChange(ctx context.Context, in *route53.GetChangeInput, opts ...func(*route53.Options)) (*route53.GetChangeOutput, error)
}

// Route53 manages simple (non-alias, no routing policy) A record sets of one
// Route 53 hosted zone. A change is an UPSERT, or a DELETE of the exact set
// read when the last address goes; after submitting it the driver polls
// GetChange until Route 53 reports INSYNC, that is until every Route 53
// authoritative server serves it. Route 53 has no conditional write, so two
// writers of the same name overwrite each other.
type Route53 struct {
	// Client is the Route 53 client, e.g. NewRoute53Client's.
	Client Route53API
	// ZoneID is the hosted zone id, "Z123…" or "/hostedzone/Z123…".
	ZoneID string
	// PollInterval is the GetChange interval; zero means DefaultPollInterval.
	PollInterval time.Duration
	// SyncTimeout bounds the wait for INSYNC; zero means DefaultSyncTimeout.
	SyncTimeout time.Duration
}

// NewRoute53Client returns a Route 53 client configured the AWS SDK's
// standard way (environment, shared config and credentials files, SSO,
// instance or container role), never from workflow input. Route 53 is a
// global service, so an unset region becomes us-east-1. A failure is a
// Config error.
func NewRoute53Client(ctx context.Context) (*route53.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, &Error{Op: "route53 client", Kind: Config, Msg: "load AWS configuration: " + err.Error(), Err: err}
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return route53.NewFromConfig(cfg), nil
}

// zone returns the hosted zone id without its "/hostedzone/" prefix.
func (r *Route53) zone() string {
	return strings.TrimPrefix(strings.TrimSpace(r.ZoneID), "/hostedzone/")
}

// target names the hosted zone in errors.
func (r *Route53) target() string { return "hosted zone " + r.zone() }

func (r *Route53) check(op, name string) (string, error) {
	if r.Client == nil {
		return "", &Error{Op: op, Target: r.target(), Kind: Config, Msg: "no Route 53 client"}
	}
	if r.zone() == "" {
		return "", &Error{Op: op, Kind: Config, Msg: "dns.zone_id (hosted zone id) is empty"}
	}
	return checkName(op, name, "", r.target())
}

// Get implements Driver with ListResourceRecordSets starting at name/A. It
// fails with Config when the name's A records are an alias or use a routing
// policy: those are not Drover's to change.
func (r *Route53) Get(ctx context.Context, name string) (RecordSet, error) {
	n, err := r.check("route53 list", name)
	if err != nil {
		return RecordSet{}, err
	}
	rs, _, err := r.get(ctx, n)
	return rs, err
}

// Set implements Driver with an UPSERT of the whole set, then waits for INSYNC.
func (r *Route53) Set(ctx context.Context, name string, want RecordSet) (RecordSet, bool, error) {
	n, err := r.check("route53 change", name)
	if err != nil {
		return RecordSet{}, false, err
	}
	if want, err = checkWant("route53 change", n, r.target(), want); err != nil {
		return RecordSet{}, false, err
	}
	prev, _, err := r.get(ctx, n)
	if err != nil {
		return RecordSet{}, false, err
	}
	if prev.Equal(want) {
		return prev, false, nil
	}
	if err := r.change(ctx, n, types.ChangeActionUpsert, want); err != nil {
		return prev, false, err
	}
	return prev, true, nil
}

// Remove implements Driver with an UPSERT of the remaining addresses, or a
// DELETE of the exact set read when addr is its only address, then waits for
// INSYNC.
func (r *Route53) Remove(ctx context.Context, name string, addr netip.Addr) (RecordSet, bool, error) {
	n, err := r.check("route53 change", name)
	if err != nil {
		return RecordSet{}, false, err
	}
	if addr, err = checkAddr("route53 change", n, r.target(), addr); err != nil {
		return RecordSet{}, false, err
	}
	prev, _, err := r.get(ctx, n)
	if err != nil {
		return RecordSet{}, false, err
	}
	if !prev.Contains(addr) {
		return prev, false, nil
	}
	rest := prev.Without(addr)
	if rest.Empty() {
		err = r.change(ctx, n, types.ChangeActionDelete, prev)
	} else {
		err = r.change(ctx, n, types.ChangeActionUpsert, rest)
	}
	if err != nil {
		return prev, false, err
	}
	return prev, true, nil
}

// get reads the simple A record set of the canonical name n.
func (r *Route53) get(ctx context.Context, n string) (RecordSet, bool, error) {
	out, err := r.Client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
		HostedZoneId:    aws.String(r.zone()),
		StartRecordName: aws.String(n),
		StartRecordType: types.RRTypeA,
		MaxItems:        aws.Int32(10),
	})
	if err != nil {
		return RecordSet{}, false, awsError("route53 list", n, r.target(), err)
	}
	var addrs []netip.Addr
	var ttl uint32
	found := false
	for _, set := range out.ResourceRecordSets {
		if set.Type != types.RRTypeA || fqdn(aws.ToString(set.Name)) != n {
			continue
		}
		if set.AliasTarget != nil || set.SetIdentifier != nil {
			return RecordSet{}, false, &Error{Op: "route53 list", Name: n, Target: r.target(), Kind: Config,
				Msg: "the A record set is an alias or uses a routing policy; Drover manages only simple record sets"}
		}
		found = true
		ttl = uint32(aws.ToInt64(set.TTL))
		for _, rr := range set.ResourceRecords {
			a, err := netip.ParseAddr(aws.ToString(rr.Value))
			if err != nil {
				return RecordSet{}, false, &Error{Op: "route53 list", Name: n, Target: r.target(), Kind: Config,
					Msg: fmt.Sprintf("record value %q is not an IP address", aws.ToString(rr.Value))}
			}
			addrs = append(addrs, a)
		}
	}
	rs, err := NewRecordSet(addrs, ttl)
	return rs, found, err
}

// change submits one change of name's A record set and waits for INSYNC.
func (r *Route53) change(ctx context.Context, n string, action types.ChangeAction, set RecordSet) error {
	records := make([]types.ResourceRecord, len(set.Addrs))
	for i, a := range set.Addrs {
		records[i] = types.ResourceRecord{Value: aws.String(a.String())}
	}
	out, err := r.Client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(r.zone()),
		ChangeBatch: &types.ChangeBatch{
			Comment: aws.String("drover: point " + n),
			Changes: []types.Change{{
				Action: action,
				ResourceRecordSet: &types.ResourceRecordSet{
					Name:            aws.String(n),
					Type:            types.RRTypeA,
					TTL:             aws.Int64(int64(set.TTL)),
					ResourceRecords: records,
				},
			}},
		},
	})
	if err != nil {
		return awsError("route53 change", n, r.target(), err)
	}
	if out.ChangeInfo == nil || out.ChangeInfo.Id == nil {
		return &Error{Op: "route53 change", Name: n, Target: r.target(), Kind: Transient, Msg: "response has no change id"}
	}
	return r.waitInSync(ctx, n, *out.ChangeInfo.Id, out.ChangeInfo.Status)
}

// waitInSync polls GetChange for id until INSYNC, SyncTimeout or ctx ends.
func (r *Route53) waitInSync(ctx context.Context, n, id string, status types.ChangeStatus) error {
	if status == types.ChangeStatusInsync {
		return nil
	}
	at := Error{Op: "route53 change", Name: n, Target: r.target()}
	pending := func() string { return fmt.Sprintf("change %s still %s", id, status) }
	return waitFor(ctx, r.PollInterval, r.SyncTimeout, true, at, pending, func() (bool, error) {
		out, err := r.Client.GetChange(ctx, &route53.GetChangeInput{Id: aws.String(id)})
		if err != nil {
			return false, awsError("route53 get change", n, r.target(), err)
		}
		if out.ChangeInfo == nil {
			return false, &Error{Op: "route53 get change", Name: n, Target: r.target(), Kind: Transient, Msg: "response has no change info"}
		}
		status = out.ChangeInfo.Status
		return status == types.ChangeStatusInsync, nil
	})
}

// AWS error codes by class. Codes not listed are Transient.
var (
	awsThrottleCodes = []string{"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
		"RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded", "PriorRequestNotComplete",
		"SlowDown"}
	awsAuthCodes = []string{"AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
		"UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException", "InvalidSignatureException",
		"MissingAuthenticationToken", "IncompleteSignature", "AuthFailure", "NotAuthorized", "UnauthorizedOperation",
		"InvalidAccessKeyId", "InvalidToken"}
	awsConfigCodes = []string{"NoSuchHostedZone", "InvalidChangeBatch", "InvalidInput", "InvalidArgument",
		"InvalidDomainName", "NoSuchChange", "HostedZoneNotFound", "InvalidPaginationToken"}
)

// awsError classifies an AWS SDK error: throttling is Throttled, refused
// credentials or permissions Auth, an unknown zone or rejected change batch
// Config, anything else (network, 5xx, timeouts) Transient.
func awsError(op, name, target string, err error) error {
	e := &Error{Op: op, Name: name, Target: target, Kind: Transient, Msg: err.Error(), Err: err}
	if c := contextError(err); c != nil && !isAPIError(err) {
		e.Msg = c.Error()
		return e
	}
	var icb *types.InvalidChangeBatch
	if errors.As(err, &icb) {
		e.Kind = Config
		msgs := icb.Messages
		if len(msgs) == 0 && icb.Message != nil {
			msgs = []string{*icb.Message}
		}
		e.Msg = "InvalidChangeBatch: " + strings.Join(msgs, "; ")
		return e
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		e.Msg = code + ": " + ae.ErrorMessage()
		switch {
		case containsFold(awsThrottleCodes, code):
			e.Kind = Throttled
		case containsFold(awsAuthCodes, code):
			e.Kind = Auth
			e.Msg += " (check the worker's AWS credentials and its route53:ListResourceRecordSets, ChangeResourceRecordSets and GetChange permissions)"
		case containsFold(awsConfigCodes, code):
			e.Kind = Config
			if strings.EqualFold(code, "NoSuchHostedZone") {
				e.Msg += " (check dns.zone_id)"
			}
		default:
			e.Kind = kindOfStatus(httpStatus(err))
		}
		return e
	}
	if status := httpStatus(err); status != 0 {
		e.Kind = kindOfStatus(status)
		return e
	}
	// Credential retrieval failures never reach the service.
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role found") {
		e.Kind = Auth
	}
	return e
}

// isAPIError reports whether err carries a service error response.
func isAPIError(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae)
}

// httpStatus is the HTTP status of the response behind err, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// kindOfStatus classifies an HTTP status that came without a known code.
func kindOfStatus(status int) Kind {
	switch {
	case status == http.StatusTooManyRequests:
		return Throttled
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Auth
	case status == http.StatusNotFound || status == http.StatusBadRequest:
		return Config
	default:
		return Transient
	}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
