// Package recipe is the model of a Drover disaster-recovery recipe: the YAML
// file that names an application's sites, how their MariaDB databases
// replicate, which DNS record points clients at the primary, how sites are
// probed and when failover may happen on its own.
//
// Parse and Load are the only ways in from untrusted input. They decode
// strictly (unknown fields, duplicate keys and wrong types are errors that
// name their path in the document), fill in defaults with ApplyDefaults and
// check every rule with Validate. Every problem found is returned at once as
// a Problems error, so a user can fix a recipe in one pass. A recipe that
// Parse returns is always valid and has its defaults applied.
//
// Secrets never live in a recipe: passwords and keys are SecretRef values
// ("env:NAME" or "file:/absolute/path") that are resolved only when needed,
// and a literal value put where a reference belongs is rejected without ever
// being echoed in an error.
package recipe

import (
	"net"
	"strconv"
	"time"
)

// Providers a site can run on.
const (
	// ProviderLocal is a site on this machine: its address is in 127.0.0.0/8.
	ProviderLocal = "local"
	// ProviderAWS is a site in Amazon Web Services; it needs a region.
	ProviderAWS = "aws"
	// ProviderOpenStack is a site in an OpenStack cloud; it needs a region.
	ProviderOpenStack = "openstack"
)

// DNS drivers that can move the service record.
const (
	// DriverRFC2136 sends TSIG-signed dynamic updates to DNS.Server.
	DriverRFC2136 = "rfc2136"
	// DriverRoute53 updates the AWS Route 53 hosted zone DNS.ZoneID.
	DriverRoute53 = "route53"
	// DriverDesignate updates the OpenStack Designate zone DNS.ZoneID.
	DriverDesignate = "designate"
)

// Probe kinds.
const (
	// ProbeHTTP requests Probe.Target (a path) on every app endpoint of each site.
	ProbeHTTP = "http"
	// ProbeTCP connects to the "db" or "app" endpoint of each site, or to a
	// literal host:port.
	ProbeTCP = "tcp"
	// ProbeMySQL logs in to each site's database and runs a trivial query.
	ProbeMySQL = "mysql"
	// ProbeDNS resolves Probe.Target (default: DNS.Record).
	ProbeDNS = "dns"
)

// Defaults that ApplyDefaults fills in for fields left at their zero value.
const (
	// DefaultDBPort is Database.Port's default, MariaDB's standard port.
	DefaultDBPort = 3306
	// DefaultInstances is AppTier.Instances' default.
	DefaultInstances = 1
	// DefaultLaunchTemplateVersion is AWSCompute.LaunchTemplateVersion's
	// default when a launch template is named: the template's default version.
	DefaultLaunchTemplateVersion = "$Default"
	// DefaultTTL is DNS.TTL's default, in seconds.
	DefaultTTL = 60
	// DefaultTSIGAlgorithm is TSIG.Algorithm's default for the rfc2136 driver.
	DefaultTSIGAlgorithm = "hmac-sha256"
	// DefaultProbeInterval is Probe.Interval's default.
	DefaultProbeInterval = Duration(5 * time.Second)
	// DefaultProbeTimeout is Probe.Timeout's default.
	DefaultProbeTimeout = Duration(2 * time.Second)
	// DefaultFailureThreshold is Probe.FailureThreshold's default.
	DefaultFailureThreshold = 3
	// DefaultRecoveryThreshold is Probe.RecoveryThreshold's default.
	DefaultRecoveryThreshold = 2
	// DefaultRTO is SLA.RTO's default.
	DefaultRTO = Duration(2 * time.Minute)
	// DefaultRPO is SLA.RPO's default, and through it Policy.MaxRPO's.
	DefaultRPO = Duration(30 * time.Second)
)

// MaxSize is the largest recipe, in bytes, that Parse and Load accept.
const MaxSize = 1 << 20

// Recipe is one application's disaster-recovery plan. The zero value is not
// valid; obtain one from Parse or Load, or build one and call ApplyDefaults
// and Validate.
type Recipe struct {
	App         string   `yaml:"app" json:"app"`
	Primary     string   `yaml:"primary" json:"primary"` // site that is primary at the start
	Sites       []Site   `yaml:"sites" json:"sites"`
	Replication []Stream `yaml:"replication" json:"replication,omitempty"`
	DNS         DNS      `yaml:"dns" json:"dns"`
	Probes      []Probe  `yaml:"probes" json:"probes,omitempty"`
	Policy      Policy   `yaml:"policy" json:"policy"`
	// Alerts routes Alertmanager alerts to runbooks (drover webhook); see
	// alerts.go. Optional.
	Alerts Alerts `yaml:"alerts,omitempty" json:"alerts,omitzero"`
	// Smoke are the HTTP checks a DR drill runs against the promoted copy's
	// app, in order (e.g. create a record, read it back); optional.
	Smoke []SmokeCheck `yaml:"smoke,omitempty" json:"smoke,omitempty"`
	// Drill says where an isolated DR drill of a local standby runs, so
	// that a drill started by an alert or a schedule needs no more input.
	Drill DrillSettings `yaml:"drill,omitempty" json:"drill,omitzero"`
}

// Site is one place the application can run: a database and an app tier
// reachable at Address.
type Site struct {
	Name     string   `yaml:"name" json:"name"`
	Provider string   `yaml:"provider" json:"provider"` // "local" | "aws" | "openstack"
	Region   string   `yaml:"region" json:"region,omitempty"`
	Address  string   `yaml:"address" json:"address"` // local: an IPv4 in 127.0.0.0/8; cloud: IP or hostname
	DB       Database `yaml:"db" json:"db"`
	App      AppTier  `yaml:"app" json:"app"`
	// AWS is how the aws provider creates this site's EC2 instances; only
	// for provider "aws", and needed only to create (clone) the site.
	AWS AWSCompute `yaml:"aws,omitempty" json:"aws,omitzero"`
	// OpenStack is how the openstack provider creates this site's Nova
	// servers; only for provider "openstack", and needed only to create
	// (clone) the site.
	OpenStack OpenStackCompute `yaml:"openstack,omitempty" json:"openstack,omitzero"`
}

// AWSCompute describes the EC2 instances of an aws site: from a launch
// template, or from an AMI with an instance type, a subnet and security
// groups (fields given next to a launch template override it). The same
// description is used for the database instance and the app instances; each
// instance carries its role in the tag drover:role. Credentials are never
// part of it: they come from the AWS SDK's standard chain on the worker.
type AWSCompute struct {
	AMI                   string   `yaml:"ami" json:"ami,omitempty"`                                         // ami-0123456789abcdef0; required unless launch_template
	LaunchTemplate        string   `yaml:"launch_template" json:"launch_template,omitempty"`                 // lt-… id or a template name
	LaunchTemplateVersion string   `yaml:"launch_template_version" json:"launch_template_version,omitempty"` // $Default (default), $Latest or a number
	InstanceType          string   `yaml:"instance_type" json:"instance_type,omitempty"`                     // e.g. t3.medium; required unless launch_template
	SubnetID              string   `yaml:"subnet_id" json:"subnet_id,omitempty"`                             // subnet-…; required unless launch_template
	SecurityGroupIDs      []string `yaml:"security_group_ids" json:"security_group_ids,omitempty"`           // sg-…; at least one unless launch_template
	KeyName               string   `yaml:"key_name" json:"key_name,omitempty"`                               // EC2 key pair name; optional
}

// IsZero reports whether no field is set (the recipe has no aws block).
func (c AWSCompute) IsZero() bool {
	return c.AMI == "" && c.LaunchTemplate == "" && c.LaunchTemplateVersion == "" && c.InstanceType == "" &&
		c.SubnetID == "" && len(c.SecurityGroupIDs) == 0 && c.KeyName == ""
}

// OpenStackCompute describes the Nova servers of an openstack site. The
// same description is used for the database server and the app servers;
// each server carries its role in the metadata key drover:role. Credentials
// are never part of it: they come from clouds.yaml or the OS_* variables on
// the worker.
type OpenStackCompute struct {
	Image          string   `yaml:"image" json:"image,omitempty"`                     // Glance image id (UUID); required
	Flavor         string   `yaml:"flavor" json:"flavor,omitempty"`                   // flavor id or name; required
	Network        string   `yaml:"network" json:"network,omitempty"`                 // Neutron network id (UUID); required
	KeyPair        string   `yaml:"key_pair" json:"key_pair,omitempty"`               // Nova key pair name; optional
	SecurityGroups []string `yaml:"security_groups" json:"security_groups,omitempty"` // security group names; optional
}

// IsZero reports whether no field is set (the recipe has no openstack block).
func (c OpenStackCompute) IsZero() bool {
	return c.Image == "" && c.Flavor == "" && c.Network == "" && c.KeyPair == "" && len(c.SecurityGroups) == 0
}

// Database is how Drover reaches a site's MariaDB server and the
// replication identity that server must have.
type Database struct {
	Host         string    `yaml:"host" json:"host"`                     // default: site address
	Port         int       `yaml:"port" json:"port"`                     // default 3306; must be 1-65535
	User         string    `yaml:"user" json:"user"`                     // required
	Password     SecretRef `yaml:"password" json:"password"`             // required
	ServerID     uint32    `yaml:"server_id" json:"server_id"`           // default index+1; unique; non-zero
	GTIDDomainID uint32    `yaml:"gtid_domain_id" json:"gtid_domain_id"` // default index+1; unique across sites
	// Stream is the account peers use to read this site's binlog when it is
	// a replication source (REPLICATION SLAVE, REPLICATION CLIENT, BINLOG
	// MONITOR, SELECT); Apply is the account that writes replicated
	// transactions into it when it is a target (DML/DDL, READ_ONLY ADMIN,
	// BINLOG REPLAY). Either may be left out: the admin account is used.
	Stream Account `yaml:"stream" json:"stream"`
	Apply  Account `yaml:"apply" json:"apply"`
	// TLS secures every Drover connection to this database; zero (no
	// block) is plain TCP. See DBTLS.
	TLS DBTLS `yaml:"tls,omitempty" json:"tls,omitzero"`
}

// Account is a database account given by name and secret reference.
type Account struct {
	User     string    `yaml:"user" json:"user,omitempty"`
	Password SecretRef `yaml:"password" json:"password,omitempty"`
}

// StreamAccount is the account that reads this site's binlog: Stream if
// set, else the admin account.
func (d Database) StreamAccount() Account {
	if d.Stream.User != "" {
		return d.Stream
	}
	return Account{User: d.User, Password: d.Password}
}

// ApplyAccount is the account that writes replicated transactions into this
// site: Apply if set, else the admin account.
func (d Database) ApplyAccount() Account {
	if d.Apply.User != "" {
		return d.Apply
	}
	return Account{User: d.User, Password: d.Password}
}

// AppTier is the application tier of a site.
type AppTier struct {
	Endpoints []string `yaml:"endpoints" json:"endpoints"` // absolute http/https URLs, no path other than "" or "/", at least one
	Instances int      `yaml:"instances" json:"instances"` // default 1; 1..100 after defaults
}

// Stream is one replication channel: the database of site To replicates
// from the database of site From.
type Stream struct {
	From string `yaml:"from" json:"from"`
	To   string `yaml:"to" json:"to"`
}

// DNS is the record clients use to find the primary site and how to change it.
type DNS struct {
	Zone   string `yaml:"zone" json:"zone"`                 // FQDN; stored with trailing dot after ApplyDefaults
	Record string `yaml:"record" json:"record"`             // FQDN inside Zone; trailing dot added
	TTL    int    `yaml:"ttl" json:"ttl"`                   // default 60; 1..86400
	Driver string `yaml:"driver" json:"driver"`             // "rfc2136" | "route53" | "designate"
	Server string `yaml:"server" json:"server,omitempty"`   // rfc2136: host:port required
	ZoneID string `yaml:"zone_id" json:"zone_id,omitempty"` // route53 hosted zone id / designate zone id: required for those drivers
	TSIG   TSIG   `yaml:"tsig" json:"tsig,omitempty"`
}

// TSIG is the key that signs RFC 2136 dynamic updates.
type TSIG struct {
	Name      string    `yaml:"name" json:"name,omitempty"`           // key name, required for rfc2136
	Algorithm string    `yaml:"algorithm" json:"algorithm,omitempty"` // default "hmac-sha256" for rfc2136
	Secret    SecretRef `yaml:"secret" json:"secret,omitempty"`       // required for rfc2136
}

// Probe is one health check run against every site.
//
// Target depends on Kind: http: a URL path starting with "/" requested on
// every site's app endpoints (e.g. "/healthz"); tcp: "db" or "app" (which
// endpoint of each site to connect to) or a literal host:port (a dependency
// checked from every site); mysql: "" or "db"; dns: "" (meaning
// DNS.Record) or an FQDN.
type Probe struct {
	Kind              string   `yaml:"kind" json:"kind"` // http | tcp | mysql | dns
	Target            string   `yaml:"target" json:"target,omitempty"`
	Interval          Duration `yaml:"interval" json:"interval"`                     // default 5s
	Timeout           Duration `yaml:"timeout" json:"timeout"`                       // default 2s; must be < interval
	FailureThreshold  int      `yaml:"failure_threshold" json:"failure_threshold"`   // default 3; >=1
	RecoveryThreshold int      `yaml:"recovery_threshold" json:"recovery_threshold"` // default 2; >=1
}

// Policy says when Drover may act on its own and what it promises.
type Policy struct {
	AutoFailover bool     `yaml:"auto_failover" json:"auto_failover"` // default false (safe)
	MaxRPO       Duration `yaml:"max_rpo" json:"max_rpo"`             // max standby lag for automatic promotion; default sla.rpo
	SLA          SLA      `yaml:"sla" json:"sla"`
}

// SLA is the recovery objective the recipe promises.
type SLA struct {
	RTO Duration `yaml:"rto" json:"rto"` // default 2m
	RPO Duration `yaml:"rpo" json:"rpo"` // default 30s
}

// Site returns the site called name and true, or a zero Site and false if
// the recipe has no such site.
func (r *Recipe) Site(name string) (Site, bool) {
	for _, s := range r.Sites {
		if s.Name == name {
			return s, true
		}
	}
	return Site{}, false
}

// Standbys returns every site other than the one named by Primary, in recipe
// order. The result is a new slice; changing it does not change r.
func (r *Recipe) Standbys() []Site {
	var out []Site
	for _, s := range r.Sites {
		if s.Name != r.Primary {
			out = append(out, s)
		}
	}
	return out
}

// TaskQueue returns the Temporal task queue served by the site's worker:
// "drover-site-" followed by the site name.
func (s Site) TaskQueue() string {
	return "drover-site-" + s.Name
}

// IsLocal reports whether the site runs on this machine (provider "local").
func (s Site) IsLocal() bool {
	return s.Provider == ProviderLocal
}

// Addr returns the database's "host:port" for dialing. It uses the values as
// they are, so call it on a recipe whose defaults are applied.
func (d Database) Addr() string {
	return joinHostPort(d.Host, d.Port)
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
