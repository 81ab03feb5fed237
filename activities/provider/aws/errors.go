package aws

import (
	"errors"
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/drover-sre/drover/activities/provider"
)

// EC2 error codes by class, from the EC2 API reference ("Error codes for the
// Amazon EC2 API"). Codes not listed are Transient, except the
// *.NotFound / *.Malformed family (a recipe names something that does not
// exist), which is Config.
var (
	throttleCodes = []string{"RequestLimitExceeded", "Throttling", "ThrottlingException", "EC2ThrottledException",
		"RequestThrottled", "RequestThrottledException", "TooManyRequestsException", "SlowDown"}
	quotaCodes = []string{"InstanceLimitExceeded", "InsufficientInstanceCapacity", "VcpuLimitExceeded",
		"InsufficientCapacity", "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
		"InsufficientAddressCapacity", "InsufficientFreeAddressesInSubnet", "VolumeLimitExceeded",
		"MaxSpotInstanceCountExceeded", "ResourceLimitExceeded", "AddressLimitExceeded",
		"NetworkInterfaceLimitExceeded", "MaxIOPSLimitExceeded", "TagLimitExceeded"}
	authCodes = []string{"AuthFailure", "UnauthorizedOperation", "Blocked", "OptInRequired", "PendingVerification",
		"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "RequestExpired", "MissingAuthenticationToken",
		"IncompleteSignature", "InvalidAccessKeyId", "AccessDenied", "AccessDeniedException", "UnrecognizedClientException"}
	configCodes = []string{"InvalidParameterValue", "InvalidParameterCombination", "InvalidParameter", "MissingParameter",
		"UnknownParameter", "Unsupported", "UnsupportedOperation", "InvalidBlockDeviceMapping", "IdempotentParameterMismatch",
		"OperationNotPermitted", "InvalidAction", "InvalidUserData.Malformed", "VPCIdNotSpecified",
		"InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateName.MalformedException"}
	// transientCodes are transient despite looking like configuration:
	// right after RunInstances, EC2 may not know an instance id yet, and
	// an instance changing state cannot take another state change.
	transientCodes = []string{"InvalidInstanceID.NotFound", "IncorrectInstanceState", "IncorrectState",
		"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"}
)

// classify turns an SDK error of call into a *provider.Error: throttling is
// Throttled (retryable), instance quotas and capacity Quota, refused
// credentials or permissions Auth, an unknown image, subnet, group, key or
// template and rejected parameters Config (all three not retryable), the
// rest Transient. The message names the call and carries EC2's code and
// message, plus what to do for the non-retryable kinds.
func classify(op, site, region, call string, err error) error {
	e := &provider.Error{Op: op, Site: site, Target: region, Kind: provider.Transient, Msg: call + ": " + err.Error(), Err: err}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		e.Msg = call + ": " + code + ": " + ae.ErrorMessage()
		e.Kind = codeKind(code, httpStatus(err))
		switch e.Kind {
		case provider.Quota:
			e.Msg += " (quota or capacity: EC2 cannot run more instances of this type here; raise the service quota or choose another instance type or subnet)"
		case provider.Auth:
			e.Msg += " (check the worker's AWS credentials and that its policy allows ec2:" + call + " on instances tagged " + provider.TagApp + ")"
		case provider.Config:
			e.Msg += " (check the site's aws block in the recipe)"
		}
		return e
	}
	if status := httpStatus(err); status != 0 {
		e.Kind = statusKind(status)
		return e
	}
	// Credential retrieval fails before any request reaches EC2.
	msg := err.Error()
	if strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "no EC2 IMDS role found") ||
		strings.Contains(msg, "failed to refresh cached credentials") {
		e.Kind = provider.Auth
		e.Msg = call + ": no usable AWS credentials on the worker (environment, shared config, SSO or instance role): " + msg
	}
	return e
}

// codeKind classifies an EC2 error code, falling back on the HTTP status.
func codeKind(code string, status int) provider.Kind {
	switch {
	case containsFold(transientCodes, code):
		return provider.Transient
	case containsFold(throttleCodes, code):
		return provider.Throttled
	case containsFold(quotaCodes, code) || strings.HasSuffix(code, "LimitExceeded"):
		return provider.Quota
	case containsFold(authCodes, code):
		return provider.Auth
	case containsFold(configCodes, code) || strings.HasSuffix(code, ".NotFound") || strings.HasSuffix(code, ".Malformed") ||
		strings.HasSuffix(code, ".VersionNotFound") || strings.HasSuffix(code, ".Unavailable"):
		return provider.Config
	}
	return statusKind(status)
}

// statusKind classifies an HTTP status that came without a known code.
func statusKind(status int) provider.Kind {
	switch {
	case status == http.StatusTooManyRequests:
		return provider.Throttled
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return provider.Auth
	case status == http.StatusBadRequest:
		return provider.Config
	}
	return provider.Transient
}

// reasonKind classifies why an instance terminated on its way up, from its
// state reason ("Server.InsufficientInstanceCapacity: …"): capacity and
// limits are Quota, anything else Failed.
func reasonKind(reason string) provider.Kind {
	for _, c := range quotaCodes {
		if strings.Contains(reason, c) {
			return provider.Quota
		}
	}
	return provider.Failed
}

// httpStatus is the HTTP status of the response behind err, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
