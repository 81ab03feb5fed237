package dns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/dns/v2/recordsets"

	"github.com/drover-sre/drover/activities/internal/keystone"
)

// Designate manages A record sets of one OpenStack Designate zone. A change
// creates, updates or deletes the recordset, then the driver polls it until
// Designate reports it ACTIVE (or gone, after a delete), that is until the
// zone's name servers serve it. Designate has no conditional write, so two
// writers of the same name overwrite each other.
type Designate struct {
	// Client is a Designate (DNS v2) service client, e.g.
	// NewDesignateClient's; tests may build one by hand.
	Client *gophercloud.ServiceClient
	// ZoneID is the Designate zone id (a UUID).
	ZoneID string
	// PollInterval is how often the recordset is read while waiting; zero
	// means DefaultPollInterval.
	PollInterval time.Duration
	// SyncTimeout bounds that wait; zero means DefaultSyncTimeout.
	SyncTimeout time.Duration
}

// NewDesignateClient authenticates to Keystone the standard gophercloud way
// and returns a Designate service client. With OS_CLOUD set, credentials,
// region and interface come from clouds.yaml (and secure.yaml), found as
// python-openstackclient finds them (OS_CLIENT_CONFIG_FILE, ./, the user's
// config directory, /etc/openstack); otherwise from the OS_* environment
// variables (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, …,
// OS_REGION_NAME). The client re-authenticates when its token expires.
// Failures are Auth (Keystone refused) or Config (nothing usable found)
// errors.
func NewDesignateClient(ctx context.Context) (*gophercloud.ServiceClient, error) {
	const op = "designate client"
	cfg, err := keystone.Load()
	if err != nil {
		return nil, &Error{Op: op, Kind: Config, Msg: err.Error(), Err: err}
	}
	pc, err := cfg.Authenticate(ctx)
	if err != nil {
		return nil, gopherError("keystone auth", "", cfg.Auth.IdentityEndpoint, err)
	}
	sc, err := openstack.NewDNSV2(pc, cfg.Endpoint)
	if err != nil {
		return nil, gopherError(op, "", "service catalog", err)
	}
	return sc, nil
}

// target names the zone in errors.
func (d *Designate) target() string { return "designate zone " + d.ZoneID }

func (d *Designate) check(op, name string) (string, error) {
	if d.Client == nil {
		return "", &Error{Op: op, Target: d.target(), Kind: Config, Msg: "no Designate client"}
	}
	if d.ZoneID == "" {
		return "", &Error{Op: op, Kind: Config, Msg: "dns.zone_id (Designate zone id) is empty"}
	}
	return checkName(op, name, "", d.target())
}

// Get implements Driver by listing the zone's recordsets of name and type A.
func (d *Designate) Get(ctx context.Context, name string) (RecordSet, error) {
	n, err := d.check("designate list", name)
	if err != nil {
		return RecordSet{}, err
	}
	rs, _, err := d.get(ctx, n)
	return rs, err
}

// Set implements Driver: it creates the recordset when there is none and
// updates its records and TTL otherwise, then waits until it is ACTIVE.
func (d *Designate) Set(ctx context.Context, name string, want RecordSet) (RecordSet, bool, error) {
	const op = "designate change"
	n, err := d.check(op, name)
	if err != nil {
		return RecordSet{}, false, err
	}
	if want, err = checkWant(op, n, d.target(), want); err != nil {
		return RecordSet{}, false, err
	}
	prev, id, err := d.get(ctx, n)
	if err != nil {
		return RecordSet{}, false, err
	}
	if prev.Equal(want) {
		return prev, false, nil
	}
	if id == "" {
		created, err := recordsets.Create(ctx, d.Client, d.ZoneID, recordsets.CreateOpts{
			Name: n, Type: "A", TTL: int(want.TTL), Records: want.Strings(), Description: "managed by drover",
		}).Extract()
		if err != nil {
			return prev, false, gopherError("designate create", n, d.target(), err)
		}
		id = created.ID
	} else if err := d.update(ctx, n, id, want); err != nil {
		return prev, false, err
	}
	if err := d.wait(ctx, n, id, false); err != nil {
		return prev, false, err
	}
	return prev, true, nil
}

// Remove implements Driver: it updates the recordset without addr, or
// deletes it when addr is its only address, then waits until the change is
// ACTIVE (or the recordset gone).
func (d *Designate) Remove(ctx context.Context, name string, addr netip.Addr) (RecordSet, bool, error) {
	const op = "designate change"
	n, err := d.check(op, name)
	if err != nil {
		return RecordSet{}, false, err
	}
	if addr, err = checkAddr(op, n, d.target(), addr); err != nil {
		return RecordSet{}, false, err
	}
	prev, id, err := d.get(ctx, n)
	if err != nil {
		return RecordSet{}, false, err
	}
	if !prev.Contains(addr) {
		return prev, false, nil
	}
	rest := prev.Without(addr)
	gone := rest.Empty()
	if gone {
		if err := recordsets.Delete(ctx, d.Client, d.ZoneID, id).ExtractErr(); err != nil {
			return prev, false, gopherError("designate delete", n, d.target(), err)
		}
	} else if err := d.update(ctx, n, id, rest); err != nil {
		return prev, false, err
	}
	if err := d.wait(ctx, n, id, gone); err != nil {
		return prev, false, err
	}
	return prev, true, nil
}

// update replaces the records and TTL of recordset id.
func (d *Designate) update(ctx context.Context, n, id string, want RecordSet) error {
	ttl := int(want.TTL)
	_, err := recordsets.Update(ctx, d.Client, d.ZoneID, id, recordsets.UpdateOpts{TTL: &ttl, Records: want.Strings()}).Extract()
	if err != nil {
		return gopherError("designate update", n, d.target(), err)
	}
	return nil
}

// get reads the A recordset of the canonical name n and returns it with its
// id ("" when there is none).
func (d *Designate) get(ctx context.Context, n string) (RecordSet, string, error) {
	pages, err := recordsets.ListByZone(d.Client, d.ZoneID, recordsets.ListOpts{Name: n, Type: "A"}).AllPages(ctx)
	if err != nil {
		return RecordSet{}, "", gopherError("designate list", n, d.target(), err)
	}
	all, err := recordsets.ExtractRecordSets(pages)
	if err != nil {
		return RecordSet{}, "", &Error{Op: "designate list", Name: n, Target: d.target(), Kind: Transient, Msg: "unreadable answer: " + err.Error(), Err: err}
	}
	for _, s := range all {
		if !strings.EqualFold(s.Type, "A") || fqdn(s.Name) != n {
			continue
		}
		rs, err := ParseRecordSet(s.Records, uint32(s.TTL))
		if err != nil {
			return RecordSet{}, "", &Error{Op: "designate list", Name: n, Target: d.target(), Kind: Config, Msg: err.(*Error).Msg}
		}
		return rs, s.ID, nil
	}
	return RecordSet{}, "", nil
}

// wait polls recordset id until Designate reports it ACTIVE or, when gone
// is set, until it no longer exists; bounded by SyncTimeout and ctx.
func (d *Designate) wait(ctx context.Context, n, id string, gone bool) error {
	at := Error{Op: "designate change", Name: n, Target: d.target()}
	status := "PENDING"
	pending := func() string { return fmt.Sprintf("recordset %s still %s", id, status) }
	return waitFor(ctx, d.PollInterval, d.SyncTimeout, false, at, pending, func() (bool, error) {
		s, err := recordsets.Get(ctx, d.Client, d.ZoneID, id).Extract()
		switch {
		case gone && gophercloud.ResponseCodeIs(err, http.StatusNotFound):
			return true, nil
		case err != nil:
			return false, gopherError("designate get", n, d.target(), err)
		case s.Status == "ERROR":
			return false, &Error{Op: "designate change", Name: n, Target: d.target(), Kind: Transient,
				Msg: fmt.Sprintf("recordset %s is in status ERROR (action %s)", id, s.Action)}
		}
		status = s.Status
		return status == "ACTIVE" && !gone, nil
	})
}

// gopherError classifies a gophercloud error: 401/403 and failed
// re-authentication are Auth, 404 and 400 Config (an unknown zone, a
// rejected recordset), 429 Throttled, anything else Transient. The message
// carries Designate's own explanation when the body has one.
func gopherError(op, name, target string, err error) error {
	e := &Error{Op: op, Name: name, Target: target, Kind: Transient, Msg: err.Error(), Err: err}
	if c := contextError(err); c != nil {
		e.Msg = c.Error()
		return e
	}
	var reauth *gophercloud.ErrUnableToReauthenticate
	if errors.As(err, &reauth) {
		e.Kind, e.Msg = Auth, "authentication failed: "+err.Error()
		return e
	}
	var code gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &code) {
		var pcode *gophercloud.ErrUnexpectedResponseCode
		if !errors.As(err, &pcode) {
			if errors.As(err, new(*gophercloud.ErrEndpointNotFound)) || errors.As(err, new(gophercloud.ErrEndpointNotFound)) {
				e.Kind, e.Msg = Config, "no dns endpoint in the service catalog for this region and interface"
			}
			return e
		}
		code = *pcode
	}
	e.Msg = fmt.Sprintf("HTTP %d", code.Actual)
	var body struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Error   struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(code.Body, &body) == nil {
		switch {
		case body.Message != "":
			e.Msg += ": " + strings.TrimSpace(strings.Join([]string{body.Type, body.Message}, " "))
		case body.Error.Message != "":
			e.Msg += ": " + body.Error.Message
		}
	}
	switch code.Actual {
	case http.StatusUnauthorized, http.StatusForbidden:
		e.Kind = Auth
		e.Msg += " (check the worker's OpenStack credentials and its role in the zone's project)"
	case http.StatusNotFound:
		e.Kind = Config
		e.Msg += " (check dns.zone_id)"
	case http.StatusBadRequest:
		e.Kind = Config
	case http.StatusTooManyRequests:
		e.Kind = Throttled
	}
	return e
}
