package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/drover-sre/drover/activities/provider"
)

// classify turns a gophercloud error into a *provider.Error: a quota
// message ("Quota exceeded …", whatever the status: Nova answers 403, older
// releases 413) is Quota; 413 and 429 otherwise (over the rate limit) are
// Throttled; 401, 403 and a failed re-authentication are Auth; 400 and 404
// (an unknown image, flavor, network or key pair, a rejected request) and a
// region without a compute endpoint are Config; 409 (a server busy with
// another task), 5xx and network failures are Transient. The message
// carries the service's own explanation.
func classify(op, site, target string, err error) error {
	e := &provider.Error{Op: op, Site: site, Target: target, Kind: provider.Transient, Msg: err.Error(), Err: err}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return e
	}
	if errors.As(err, new(*gophercloud.ErrUnableToReauthenticate)) || errors.As(err, new(gophercloud.ErrUnableToReauthenticate)) {
		e.Kind, e.Msg = provider.Auth, "authentication failed: "+err.Error()
		return e
	}
	if errors.As(err, new(*gophercloud.ErrEndpointNotFound)) || errors.As(err, new(gophercloud.ErrEndpointNotFound)) {
		e.Kind = provider.Config
		e.Msg = "no compute endpoint for this region and interface in the service catalog (check the site's region and the interface in clouds.yaml or OS_INTERFACE)"
		return e
	}
	var code gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &code) {
		var pcode *gophercloud.ErrUnexpectedResponseCode
		if !errors.As(err, &pcode) {
			return e
		}
		code = *pcode
	}
	msg := bodyMessage(code.Body)
	e.Msg = fmt.Sprintf("HTTP %d", code.Actual)
	if msg != "" {
		e.Msg += ": " + msg
	}
	switch {
	case strings.Contains(strings.ToLower(msg), "quota exceeded"):
		e.Kind = provider.Quota
		e.Msg += " (quota: the project cannot hold more servers, cores or RAM; raise the project's quota or free resources)"
	case code.Actual == http.StatusRequestEntityTooLarge || code.Actual == http.StatusTooManyRequests:
		e.Kind = provider.Throttled
		if ra := code.ResponseHeader.Get("Retry-After"); ra != "" {
			e.Msg += " (retry after " + ra + "s)"
		}
	case code.Actual == http.StatusUnauthorized || code.Actual == http.StatusForbidden:
		e.Kind = provider.Auth
		e.Msg += " (check the worker's OpenStack credentials and its role in the project: Drover needs the member role)"
	case code.Actual == http.StatusBadRequest || code.Actual == http.StatusNotFound:
		e.Kind = provider.Config
		e.Msg += " (check the site's openstack block in the recipe)"
	}
	return e
}

// bodyMessage extracts the explanation of an OpenStack error body: Nova's
// {"forbidden": {"code": 403, "message": "…"}}, Keystone's {"error":
// {"message": "…"}} or a bare {"message": "…"}.
func bodyMessage(body []byte) string {
	var flat struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &flat) == nil && flat.Message != "" {
		return strings.TrimSpace(flat.Message)
	}
	var wrapped map[string]json.RawMessage
	if json.Unmarshal(body, &wrapped) != nil {
		return ""
	}
	for _, v := range wrapped {
		var inner struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(v, &inner) == nil && inner.Message != "" {
			return strings.TrimSpace(inner.Message)
		}
	}
	return ""
}

// isCapacity reports whether a Nova fault says the cloud had no room for
// the server ("No valid host was found"), which no retry fixes by itself.
func isCapacity(fault string) bool {
	f := strings.ToLower(fault)
	return strings.Contains(f, "no valid host") || strings.Contains(f, "quota exceeded") || strings.Contains(f, "insufficient")
}
