// Package keystone finds the worker's OpenStack credentials and
// authenticates with them, the standard gophercloud way, for Drover's
// OpenStack clients: the openstack provider's Nova client and the dns
// package's Designate client. Credentials come only from the worker's
// environment, never from workflow input.
package keystone

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
)

// Config is how the worker reaches OpenStack: whom to authenticate as, and
// which region and interface of the service catalog to use.
type Config struct {
	Auth     gophercloud.AuthOptions
	Endpoint gophercloud.EndpointOpts
	TLS      *tls.Config
}

// Load reads the worker's OpenStack configuration. With OS_CLOUD set,
// credentials, region and interface come from clouds.yaml (and
// secure.yaml), found as python-openstackclient finds them
// (OS_CLIENT_CONFIG_FILE, ./, the user's config directory,
// /etc/openstack); otherwise from the OS_* environment variables
// (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, …,
// OS_REGION_NAME, OS_INTERFACE). Its error, when nothing usable is found,
// says what to set and holds no secret.
func Load() (Config, error) {
	var c Config
	if os.Getenv("OS_CLOUD") != "" {
		ao, eo, tlsConfig, err := clouds.Parse()
		if err != nil {
			return Config{}, fmt.Errorf("clouds.yaml: %w", err)
		}
		c.Auth, c.Endpoint, c.TLS = ao, eo, tlsConfig
		return c, nil
	}
	ao, err := openstack.AuthOptionsFromEnv()
	if err != nil {
		return Config{}, fmt.Errorf("OpenStack credentials: set OS_CLOUD (clouds.yaml) or the OS_* variables: %w", err)
	}
	c.Auth = ao
	c.Endpoint.Region = os.Getenv("OS_REGION_NAME")
	if i := os.Getenv("OS_INTERFACE"); i != "" {
		c.Endpoint.Availability = gophercloud.Availability(strings.TrimSuffix(i, "URL"))
	}
	return c, nil
}

// Authenticate gets a token from Keystone and returns a provider client
// that authenticates again by itself when its token expires, as a
// long-running worker needs. Its error is gophercloud's.
func (c Config) Authenticate(ctx context.Context) (*gophercloud.ProviderClient, error) {
	ao := c.Auth
	ao.AllowReauth = true
	return config.NewProviderClient(ctx, ao, config.WithTLSConfig(c.TLS))
}
